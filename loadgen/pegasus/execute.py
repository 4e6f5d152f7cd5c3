"""Execute: one op from its first attempt to its outcome, as the client's policy directs.

An op has a deadline ``op_timeout`` after it is handed over. Each attempt goes to the primary
the cached config names (or, for a policy that does not re-route retries, the one the op
started with) and waits up to the policy's attempt timeout. Every failure — a lost or refused
connection, no reply in time, an error reply, no primary — is an exception whose type picks
the policy hook; the hook's :class:`~loadgen.pegasus.policies.Reaction` says what happens
next: refresh, retry after a pause, wait for the route to move, or keep waiting. A reply to
*any* attempt of the op completes it, whichever attempt it belongs to, until the op ends.

The observer gets an :class:`~loadgen.pegasus.outcome.Outcome` per attempt (when its fate is
known) and one per op; the error an op raises carries its outcome (``fail`` / ``unknown``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from gevent.event import Event

from ..errors import (NoPrimary, NotConnected, OpTimeout, PegasusError, ServerError, SessionReset,
                      StorageError)
from . import keys
from .outcome import ATTEMPT, FAIL, OK, OP, UNKNOWN, Outcome, classify
from .policies import NOTHING, AttemptContext, Policy, Reaction
from .probe import ReplicaProbe
from .refresh import Refresher, Silence
from .routing import PartitionRoute, TableRouting
from .session import Call, Inbox, Session
from .table import Op, Table

log = logging.getLogger(__name__)

#: Safety bound on attempts per op; the op deadline normally ends retries long before.
MAX_ATTEMPTS_PER_OP = 10_000

_OUTCOME_FIELDS = ("level", "op", "table", "partition", "node", "start", "end", "outcome",
                   "error", "attempt", "refreshed", "policy", "intended_start")


def _outcome_maker() -> Callable[..., Outcome]:
    """``make(level, op, ..., intended_start)``, all of Outcome's fields in order: the same
    object as ``Outcome(...)`` at half the cost, two per op. A frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__``; this sets its slots directly. Should
    Outcome's fields change, it is Outcome itself (tests/test_client.py compares both)."""
    if tuple(f.name for f in fields(Outcome)) != _OUTCOME_FIELDS or "__slots__" not in vars(Outcome):
        return Outcome
    new = object.__new__
    (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12) = [
        getattr(Outcome, name).__set__ for name in _OUTCOME_FIELDS]

    def make(level, op, table, partition, node, start, end, outcome, error, attempt, refreshed,
             policy, intended_start) -> Outcome:
        o = new(Outcome)
        s0(o, level), s1(o, op), s2(o, table), s3(o, partition), s4(o, node), s5(o, start)
        s6(o, end), s7(o, outcome), s8(o, error), s9(o, attempt), s10(o, refreshed)
        s11(o, policy), s12(o, intended_start)
        return o

    return make


make_outcome = _outcome_maker()


@dataclass(frozen=True)
class ClientContext:
    """What an op needs from its client."""

    policy: Policy
    op_timeout_s: float
    attempt_timeout_s: float
    session: Callable[[str], Session]         # the session to an address
    emit: Callable[[Outcome], None] | None    # the observer, guarded; None: no observer
    closing: Event                            # set when the client closes


class TableExecutor:
    """Runs one table's ops for one client: its routing cache and its meta-query pacing."""

    def __init__(self, ctx: ClientContext, routing: TableRouting, refresher: Refresher,
                 probe: ReplicaProbe | None = None):
        self.ctx = ctx
        self.routing = routing
        self.refresher = refresher
        #: Asks the replicas who is primary when one goes silent (the policy's option).
        self.probe = probe
        #: The public face of this table (set by the client).
        self.table: Table | None = None

    def run(self, op: Op, intended_start: float | None = None) -> Any:
        """Run ``op`` to its value, or raise its :class:`PegasusError`."""
        return _OpRun(self, op, intended_start).run()

    def request_refresh(self, reaction: Reaction) -> None:
        """Carry out a reaction that is not about one op (a silent connection)."""
        if reaction.refresh:
            self.refresher.request(self.routing.generation)


class _Attempt:
    """One try: where it went, with which config, and its call while it waits."""

    __slots__ = ("call", "generation", "number", "pidx", "refreshed", "route", "start", "until")

    def __init__(self, number: int, pidx: int, route: PartitionRoute, generation: int, start: float):
        self.number, self.pidx, self.route, self.generation = number, pidx, route, generation
        self.start = start
        self.until = start
        self.call: Call | None = None
        self.refreshed = False


# What an op does next.
_SEND, _AWAIT, _KEEP, _ROUTE, _PAUSE, _DONE = "send", "await", "keep", "route", "pause", "done"


class _OpRun:
    """The state of one op while it runs (one per op: plain attributes, no locking). The
    class attributes are each op's starting values, set on the instance once they change
    (most ops succeed at their first attempt and never change them)."""

    latest: _Attempt | None = None
    attempts = retries = 0
    last_error: PegasusError | None = None
    any_unknown = any_refresh = False
    tick = resume_at = 0.0
    need_generation: int | None = None
    value: Any = None
    error: PegasusError | None = None

    def __init__(self, executor: TableExecutor, op: Op, intended_start: float | None):
        self.x, self.op, self.intended_start = executor, op, intended_start
        self.inbox = Inbox()
        self.pending: list[_Attempt] = []

    def run(self) -> Any:
        ctx = self.x.ctx
        self.start = time.monotonic()
        self.deadline = self.start + ctx.op_timeout_s
        steps, closing = _STEPS, ctx.closing
        mode = _SEND
        while mode is not _DONE:  # every step waits at most until the deadline, or ends the op
            if closing.is_set():
                closed = SessionReset(f"{self._where()}: client closed")
                mode = self._finish(closed, abandoned=closed)
            else:
                mode = steps[mode](self)
        if self.error is not None:
            raise self.error
        return self.value

    # ------------------------------------------------------------------ steps

    def _send(self) -> str:
        x = self.x
        routing, ctx, op = x.routing, x.ctx, self.op
        policy = ctx.policy
        if self.attempts >= MAX_ATTEMPTS_PER_OP:
            return self._finish(self.last_error or OpTimeout("too many attempts"), out_of_time=True)
        now = time.monotonic()
        previous = self.latest
        config = routing.config
        if previous is None or policy.reroute_retries:
            pidx = keys.partition_index(op.partition_hash, config.partition_count)
            a = _Attempt(self.attempts + 1, pidx, config.partitions[pidx], routing.generation, now)
        else:  # Go's runPartitionOp: gpid and session were picked before the retry loop
            a = _Attempt(self.attempts + 1, previous.pidx, previous.route, previous.generation, now)
        self.retries = self.attempts
        self.attempts += 1
        self.latest = a
        node = a.route.primary
        if node is None:
            return self._react(a, NoPrimary(f"{self._where(a)}: the meta names no primary"))
        until = now + ctx.attempt_timeout_s
        deadline = self.deadline
        if not policy.attempt_outlives_op and deadline < until:
            until = deadline
        a.until = until
        try:
            a.call = ctx.session(node).send(
                op.rpc, op.args, inbox=self.inbox, deadline=until, tag=a,
                app_id=config.app_id, partition_index=a.pidx,
                partition_hash=op.partition_hash,
                client_timeout_ms=max(0, int(((deadline if deadline > until else until) - now)
                                              * 1000)))
        except NotConnected as exc:
            return self._react(a, exc)
        self.pending.append(a)
        return _AWAIT

    def _await(self) -> str:
        """Wait for a reply to the latest attempt until its own timeout (for a policy that
        follows route moves: or until a config another op fetched names another primary)."""
        a, x = self.latest, self.x
        follow = x.ctx.policy.follow_route_moves
        wake = (x.ctx.closing, x.routing.next_result()) if follow else (x.ctx.closing,)
        item = self.inbox.get(a.until - time.monotonic(), wake)
        if item is not None:
            return self._take(item) or _AWAIT
        if follow and _elsewhere(x.routing.route(a.pidx), a.route):
            return _SEND  # the attempt stays pending: its reply still counts
        if time.monotonic() < a.until:
            return _AWAIT  # woken by the client closing (run() sees it) or a refresh
        return self._timed_out(a)

    def _keep(self) -> str:
        """The latest attempt is slow: keep waiting for it, and keep polling the meta (at the
        refresher's pace, shared by every op), until it answers or the config names another
        primary. (A higher ballot naming the same node does not count: the call is still
        pending on that node's live connection, so sending again would only run it twice;
        had the connection gone, the call would have failed.)"""
        a, routing = self.latest, self.x.routing
        if _elsewhere(routing.route(a.pidx), a.route):
            return _SEND
        now = time.monotonic()
        if now >= self.deadline:
            return self._finish(self._timeout_of(a), out_of_time=True)
        if now >= self.tick:
            return self._timed_out(a)
        # A hung primary is replaced only when the meta's grace period ends: the op learns
        # of it within one poll, not at its next attempt timeout.
        self.x.refresher.request(routing.generation, self._silence(a.route, lost=False))
        item = self.inbox.get(min(self.deadline, self.tick) - now,
                              (routing.next_result(), self.x.ctx.closing))
        return (self._take(item) if item is not None else None) or _KEEP

    def _route(self) -> str:
        """The primary is unreachable: redial it and poll the meta, whichever answers first."""
        a, routing = self.latest, self.x.routing
        route = routing.route(a.pidx)
        if _moved(route, a.route):
            return _SEND
        session = self.x.ctx.session(route.primary) if route.primary is not None else None
        if session is not None and session.connected:
            return _SEND
        now = time.monotonic()
        if now >= self.deadline:
            return self._finish(self.last_error, out_of_time=True)
        self.x.refresher.request(routing.generation, self._silence(route, lost=True))
        wake = [routing.next_result(), self.x.ctx.closing]
        if session is not None:
            wake.append(session.redial())
        item = self.inbox.get(self.deadline - now, wake)
        return (self._take(item) if item is not None else None) or _ROUTE

    def _pause(self) -> str:
        """Back off before the retry; with ``need_generation``, also await a newer config."""
        routing, policy = self.x.routing, self.x.ctx.policy
        now = time.monotonic()
        if now >= self.deadline and not policy.attempt_outlives_op:
            return self._finish(self.last_error, out_of_time=True)
        stale = self.need_generation is not None and routing.generation <= self.need_generation
        if now >= self.resume_at and not stale:
            return _SEND
        wake = [self.x.ctx.closing]
        if stale:
            self.x.refresher.request(self.need_generation)
            wake.append(routing.next_result())
        until = self.resume_at if now < self.resume_at else self.deadline
        if policy.attempt_outlives_op:
            until = self.resume_at
        item = self.inbox.get(until - now, wake)
        return (self._take(item) if item is not None else None) or _PAUSE

    # ------------------------------------------------------------------ events

    def _take(self, item: tuple[Call, Any]) -> str | None:
        """A reply or failure for one of the op's attempts; None if it changes nothing."""
        call, result = item
        a: _Attempt = call.tag
        if a not in self.pending:  # given up on already (e.g. a reset after its time-out)
            return None
        self.pending.remove(a)
        if isinstance(result, PegasusError):
            exc = result
        elif result.error == "ERR_OK":
            try:
                value = self.op.parse(result.result)
            except StorageError as storage:  # a result, never retried
                self._emit_attempt(a, storage)
                return self._finish(storage)
            self._emit_attempt(a, None)
            self.value = value
            return self._finish(None)
        else:
            exc = ServerError(result.error, f"from {a.route.primary}, {self._where(a)}")
        if a is not self.latest:  # a superseded attempt: recorded, but the latest one leads
            self._emit_attempt(a, exc)
            return None
        return self._react(a, exc)

    def _timed_out(self, a: _Attempt) -> str:
        """The latest attempt's wait ran out."""
        exc = self._timeout_of(a)
        session = self.x.ctx.session(a.route.primary)
        if session.rules.timeout_reset_window_s is not None:
            a.call.cancel()  # before the session may fail its pending calls
            self._drop_pending(a)
            if session.note_timeout():
                exc = SessionReset(f"{a.route.primary}: session reset after time-outs only "
                                   f"({self._where(a)})")
        mode = self._react(a, exc)
        if mode is not _KEEP and a in self.pending:
            a.call.cancel()
            self._drop_pending(a)
        return mode

    def _react(self, a: _Attempt, exc: PegasusError) -> str:
        """Ask the policy what the latest attempt's failure leads to, and set it going."""
        policy = self.x.ctx.policy
        now = time.monotonic()
        reaction = _hook(policy, exc, AttemptContext(
            op=self.op.name, table=self.x.routing.table, partition=a.pidx, node=a.route.primary,
            attempt=a.number, retries=self.retries, time_left_s=self.deadline - now,
            op_timeout_s=self.x.ctx.op_timeout_s))
        # Ops that will look at the route again ask for one newer than the one in the cache
        # now; the others for one newer than their attempt's (Java's cachedConfigVersion).
        waits = reaction.keep_waiting or reaction.wait_for_route
        seen = self.x.routing.generation if waits else a.generation
        if reaction.refresh:
            lost = isinstance(exc, (SessionReset, NotConnected))
            silence = (self._silence(a.route, lost=lost)
                       if lost or isinstance(exc, OpTimeout) else None)
            if self.x.refresher.request(seen, silence):
                a.refreshed = self.any_refresh = True
        elif reaction.strike:
            refresher = self.x.refresher
            strike = getattr(refresher, "strike", refresher.request)
            if strike(seen, self._silence(a.route, lost=isinstance(exc, (SessionReset, NotConnected)))):
                a.refreshed = self.any_refresh = True
        self.last_error = (exc.last_error or self.last_error) if isinstance(exc, OpTimeout) else exc
        if not reaction.keep_waiting:
            self._emit_attempt(a, exc, now)
            if a in self.pending:  # recorded now: _finish must not record it again
                a.call.cancel()
                self.pending.remove(a)
        if not reaction.retry:
            return self._finish(exc)
        if now >= self.deadline:
            return self._finish(exc, out_of_time=True)
        if reaction.keep_waiting:
            self.tick = now + self.x.ctx.attempt_timeout_s
            return _KEEP
        if reaction.wait_for_route:
            return _ROUTE
        self.resume_at = now + reaction.delay_s
        self.need_generation = a.generation if reaction.wait_for_refresh else None
        return _PAUSE

    def _finish(self, exc: PegasusError | None, *, out_of_time: bool = False,
                abandoned: PegasusError | None = None) -> str:
        """End the op: success when ``exc`` is None, else fail with it (or a time-out).
        Attempts still waiting end with ``abandoned`` (default: no reply in time)."""
        end = time.monotonic()
        for a in self.pending:  # attempts nobody answered before the op ended
            a.call.cancel()
            self._emit_attempt(a, abandoned or self._timeout_of(a), end)
        self.pending.clear()
        if exc is not None:
            if out_of_time or isinstance(exc, OpTimeout) or (
                    isinstance(exc, NotConnected) and end >= self.deadline):
                exc = OpTimeout(f"{self.op.name} on {self._where()}: no success within "
                                f"{round(self.x.ctx.op_timeout_s * 1000)} ms ({self.attempts} "
                                "attempts)", last_error=self.last_error)
            exc.outcome = UNKNOWN if self.any_unknown else FAIL
            self.error = exc
        emit = self.x.ctx.emit
        if emit is not None:
            a = self.latest
            emit(make_outcome(OP, self.op.name, self.x.routing.table, a.pidx if a else -1,
                              a.route.primary if a else None, self.start, end,
                              OK if exc is None else exc.outcome,
                              None if exc is None else exc.code, self.attempts,
                              self.any_refresh, self.x.ctx.policy.name, self.intended_start))
        return _DONE

    # ------------------------------------------------------------------ helpers

    def _emit_attempt(self, a: _Attempt, exc: PegasusError | None, end: float | None = None) -> None:
        if exc is None:
            result = OK   # what classify() says of a success
        else:
            result = classify(exc.code, write=self.op.write, sent=not exc.unsent)
            self.any_unknown |= result == UNKNOWN
        x = self.x
        emit = x.ctx.emit
        if emit is not None:
            emit(make_outcome(ATTEMPT, self.op.name, x.routing.table, a.pidx, a.route.primary,
                              a.start, time.monotonic() if end is None else end, result,
                              None if exc is None else exc.code, a.number, a.refreshed,
                              x.ctx.policy.name, self.intended_start))

    def _silence(self, route: PartitionRoute, *, lost: bool) -> Silence | None:
        """Since when ``route``'s primary has been silent (``lost``: its connection is
        gone); the replica probe, if the policy has one, is set on it."""
        node = route.primary
        if node is None:
            return None
        x = self.x
        session, routing = x.ctx.session(node), x.routing
        heard = session.last_heard
        gone = max(heard, session.lost_at) if lost else heard

        def over() -> bool:
            return session.last_heard > heard or _elsewhere(routing.route(route.index), route)

        probed = x.probe is not None and x.probe.request(route, Silence(heard, gone, over))
        return Silence(heard, gone, over, probed)

    def _drop_pending(self, a: _Attempt) -> None:
        if a in self.pending:
            self.pending.remove(a)

    def _timeout_of(self, a: _Attempt) -> OpTimeout:
        lost = a.call.connection_lost if a.call is not None else None
        return OpTimeout(f"no reply from {a.route.primary} in time ({self._where(a)})",
                         last_error=lost)

    def _where(self, a: _Attempt | None = None) -> str:
        a = a or self.latest
        where = f"table {self.x.routing.table!r}"
        return where if a is None else f"{where} partition {a.pidx}"


#: mode -> the step that carries it out
_STEPS = {_SEND: _OpRun._send, _AWAIT: _OpRun._await, _KEEP: _OpRun._keep,
          _ROUTE: _OpRun._route, _PAUSE: _OpRun._pause}


def _elsewhere(route: PartitionRoute, old: PartitionRoute) -> bool:
    """The config now names a primary other than the attempt's."""
    return route.primary is not None and route.primary != old.primary


def _moved(route: PartitionRoute, old: PartitionRoute) -> bool:
    """The config now names a primary other than the attempt's, or a higher ballot."""
    return route.primary is not None and (route.primary != old.primary or route.ballot > old.ballot)


def _hook(policy: Policy, exc: PegasusError, ctx: AttemptContext) -> Reaction:
    """The policy hook for a failure, chosen by its type."""
    if isinstance(exc, NotConnected):
        return policy.on_not_connected(ctx)
    if isinstance(exc, SessionReset):
        return policy.on_connection_lost(ctx)
    if isinstance(exc, OpTimeout):
        return policy.on_timeout(ctx)
    if isinstance(exc, NoPrimary):
        return policy.on_no_primary(ctx)
    if isinstance(exc, StorageError):
        return NOTHING
    if isinstance(exc, ServerError):
        return policy.on_error(exc.code, ctx)
    return NOTHING
