"""Client: the public Pegasus client API, over pipelined sessions, driven by a retry policy.

    client = Client(["127.0.0.1:34601"], policy="failover", op_timeout_ms=1000)
    table = client.open_table("temp")
    table.put("user1", "name", b"value", ttl=60)
    assert table.get("user1", "name") == b"value"
    client.close()

Every op has a deadline ``op_timeout_ms`` after it is handed to the client. Each attempt goes
to the partition's primary in the cached config; what a failure leads to (refresh, retry,
re-poll) is the policy's answer (:mod:`loadgen.pegasus.policies`). The ``observer`` gets an
:class:`~loadgen.pegasus.outcome.Outcome` per attempt and one per op; a failing observer is
logged, never fatal. Safe for any number of greenlets of one gevent hub. The ops themselves
(request building, reply reading) are :class:`~loadgen.pegasus.table.Table`'s.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from collections.abc import Callable

from gevent.event import AsyncResult, Event

from ..errors import ConfigError, OpTimeout, PegasusError, ServerError, SessionReset, StorageError
from . import keys, policies
from .addr import parse_addr
from .meta import MetaSession
from .outcome import ATTEMPT, FAIL, OK, OP, UNKNOWN, Outcome, classify
from .policies import AttemptContext, Policy, Reaction
from .routing import PartitionRoute, TableRouting
from .session import Session
from .table import Table

log = logging.getLogger(__name__)

#: How long ``open_table`` may take to get the table's config.
OPEN_TIMEOUT_S = 5.0
#: Safety bound on attempts per op; the op deadline normally ends retries long before.
MAX_ATTEMPTS_PER_OP = 10_000

Observer = Callable[[Outcome], None]


class Client:
    """A Pegasus client for one cluster: its metas, sessions to replicas, and a policy.

    ``policy`` is a registered name, a dotted path (``"pkg.mod:Class"``) or a
    :class:`~loadgen.pegasus.policies.Policy` instance; ``policy_params`` override its fields.
    """

    def __init__(self, meta: list[str] | str, policy: str | Policy = "failover",
                 op_timeout_ms: int = 1000, observer: Observer | None = None, **policy_params: Any):
        addrs = [a.strip() for a in meta.split(",")] if isinstance(meta, str) else list(meta)
        try:
            for addr in addrs or [""]:  # no address at all is as bad as a malformed one
                parse_addr(addr)
        except ValueError:
            raise ConfigError("", "cluster.meta", f"meta addresses as 'host:port', got {meta!r}") from None
        if not op_timeout_ms > 0:
            raise ConfigError("", "workload.op_timeout_ms",
                              f"a positive number of ms, got {op_timeout_ms!r}")
        self.policy: Policy = policies.create(policy, **policy_params)
        self.op_timeout_ms = op_timeout_ms
        self.observer = observer
        self._op_timeout_s = op_timeout_ms / 1000
        self._attempt_timeout_s = self.policy.attempt_timeout_s(self._op_timeout_s)
        self._meta = MetaSession(addrs)
        self._sessions: dict[str, Session] = {}
        self._tables: dict[str, Table] = {}
        self._opening: dict[str, AsyncResult] = {}
        self._closed = False
        self._closing = Event()  # wakes ops pausing between attempts

    def open_table(self, name: str) -> Table:
        """The table ``name``, its config fetched from the metas on first open.

        Greenlets opening the same table at once (Locust users starting together) share
        one meta query and get the same :class:`Table`.
        """
        table = self._tables.get(name)
        if table is not None:
            return table
        if self._closed:
            raise SessionReset("client closed")
        opening = self._opening.get(name)
        if opening is not None:
            return opening.get()  # raises what the first opener met
        opening = self._opening[name] = AsyncResult()
        try:
            routing = TableRouting(
                name, self._meta,
                keep_routes_without_primary=self.policy.keep_routes_without_primary)
            routing.load(time.monotonic() + max(OPEN_TIMEOUT_S, self._op_timeout_s))
            table = self._tables[name] = Table(self, routing)
        except Exception as exc:
            opening.set_exception(exc)
            raise
        except BaseException:  # the opener was killed: the others must not hang or die with it
            opening.set_exception(SessionReset(f"opening table {name!r} was interrupted"))
            raise
        else:
            opening.set(table)
        finally:
            del self._opening[name]
        return table

    def close(self) -> None:
        """Close every connection; ops in flight fail at once with ERR_SESSION_RESET."""
        self._closed = True
        self._closing.set()
        for table in self._tables.values():
            table._routing.close()
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        self._meta.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _session(self, addr: str) -> Session:
        session = self._sessions.get(addr)
        if session is None:
            if self._closed:
                raise SessionReset("client closed")
            session = self._sessions[addr] = Session(
                addr, fail_pending_on_loss=self.policy.fail_pending_on_loss,
                reconnect_interval_s=self.policy.reconnect_interval_s)
        return session

    def _emit(self, outcome: Outcome) -> None:
        try:
            self.observer(outcome)
        except Exception:  # an observer bug must not fail the op it observes
            log.exception("observer failed on %s", outcome)

    def _attempt(self, table: str, node: str | None, rpc: str, args: Any, app_id: int, pidx: int,
                 phash: int, parse: Callable[[Any], Any], t_attempt: float, deadline: float,
                 ) -> tuple[Any, PegasusError | None, str, bool]:
        """One try at the primary: ``(value, error, kind of failure, whether it was sent)``."""
        if node is None:
            return (None, ServerError("ERR_NO_PRIMARY", f"table {table!r} partition {pidx}: the meta "
                                                        "names no primary"), _NO_PRIMARY, False)
        sent = False
        try:
            call = self._session(node).send(
                rpc, args, deadline=min(deadline, t_attempt + self._attempt_timeout_s),
                app_id=app_id, partition_index=pidx, partition_hash=phash,
                client_timeout_ms=max(0, int((deadline - t_attempt) * 1000)))
            sent = True
            reply = call.wait()
        except SessionReset as exc:
            return None, exc, _LOST, sent
        except OpTimeout as exc:
            return None, exc, _TIMEOUT, sent
        if reply.error != "ERR_OK":
            return (None, ServerError(reply.error, f"from {node}, table {table!r} partition {pidx}"),
                    _REPLY, True)
        try:
            return parse(reply.result), None, "", True
        except StorageError as exc:  # a storage status: a result, never retried
            return None, exc, _STORAGE, True

    def _execute(self, table: Table, op: str, rpc: str, args: Any, phash: int,
                 parse: Callable[[Any], Any], intended_start: float | None, *, write: bool) -> Any:
        """Run one op to success, a final error or its deadline; report its outcomes.

        ``parse`` turns an ERR_OK reply's result into the op's value, raising
        :class:`StorageError` for a storage status that is an error.
        """
        start = time.monotonic()
        deadline = start + self._op_timeout_s
        routing, policy, observer = table._routing, self.policy, self.observer
        error: PegasusError | None = None
        last_error: PegasusError | None = None
        any_unknown = any_refresh = out_of_time = False
        node: str | None = None
        pidx = attempt = 0
        for attempt in range(1, MAX_ATTEMPTS_PER_OP + 1):
            config = routing.config
            pidx = keys.partition_index(phash, config.partition_count)
            route = config.partitions[pidx]
            generation = routing.generation
            node = route.primary
            t_attempt = time.monotonic()
            value, error, kind, sent = self._attempt(table.name, node, rpc, args, config.app_id,
                                                     pidx, phash, parse, t_attempt, deadline)
            if error is None:
                if observer is not None:
                    end = time.monotonic()
                    self._emit(Outcome(ATTEMPT, op, table.name, pidx, node, t_attempt, end, OK,
                                       None, attempt, False, policy.name, intended_start))
                    self._emit(Outcome(OP, op, table.name, pidx, node, start, end, OK, None,
                                       attempt, any_refresh, policy.name, intended_start))
                return value
            end = time.monotonic()
            reaction = _react(policy, kind, error,
                              AttemptContext(op, table.name, pidx, node, attempt, deadline - end))
            last_error = (error.last_error or last_error) if isinstance(error, OpTimeout) else error
            retry = reaction.retry and end < deadline and not self._closed
            out_of_time = reaction.retry and end >= deadline
            refreshed = _refresh(routing, reaction, deadline, generation, wait=retry)
            any_refresh |= refreshed
            result = classify(error.code, write=write, sent=sent)
            any_unknown |= result == UNKNOWN
            if observer is not None:
                self._emit(Outcome(ATTEMPT, op, table.name, pidx, node, t_attempt, end, result,
                                   error.code, attempt, refreshed, policy.name, intended_start))
            if not retry:
                break
            if not _pause_before_retry(routing, pidx, route, reaction, policy, attempt, deadline,
                                       self._closing):
                if self._closed:
                    error = SessionReset(f"{op} on {table.name!r} partition {pidx}: client closed "
                                         f"between attempts (last error: {error.code})")
                else:
                    out_of_time = True
                break
        if out_of_time or isinstance(error, OpTimeout):
            error = OpTimeout(f"{op} on {table.name!r} partition {pidx}: no success within "
                              f"{self.op_timeout_ms} ms ({attempt} attempts)", last_error=last_error)
        if observer is not None:
            self._emit(Outcome(OP, op, table.name, pidx, node, start, time.monotonic(),
                               UNKNOWN if any_unknown else FAIL, error.code, attempt,
                               any_refresh, policy.name, intended_start))
        raise error


# How an attempt failed, i.e. which policy hook is asked about it.
_LOST, _TIMEOUT, _REPLY, _NO_PRIMARY, _STORAGE = "lost", "timeout", "reply", "no_primary", "storage"


def _react(policy: Policy, kind: str, error: PegasusError, ctx: AttemptContext) -> Reaction:
    """Ask the policy what a failed attempt leads to."""
    if kind == _LOST:
        return policy.on_connection_lost(ctx)
    if kind == _TIMEOUT:
        return policy.on_timeout(ctx)
    if kind == _REPLY:
        return policy.on_error(error.code, ctx)
    if kind == _NO_PRIMARY:
        return policy.on_no_primary(ctx)
    return policies.NOTHING


def _refresh(routing: TableRouting, reaction: Reaction, deadline: float, generation: int, *,
             wait: bool) -> bool:
    """Carry out the reaction's refresh; returns whether one was started or joined
    (:attr:`Outcome.refreshed`)."""
    if reaction.refresh == policies.REFRESH_NOW:
        if wait:
            routing.refresh(deadline, newer_than=generation)
            return True
        # Nobody would wait for it (no retry, or the op is over): let it run on its own.
        return routing.refresh_in_background()
    if reaction.refresh == policies.REFRESH_BACKGROUND:
        return routing.refresh_in_background(reaction.refresh_min_interval_s)
    return False


def _pause_before_retry(routing: TableRouting, pidx: int, gone: PartitionRoute,
                        reaction: Reaction, policy: Policy, attempt: int, deadline: float,
                        closing: Event) -> bool:
    """Back off, or re-poll the meta until the primary changes.

    False if the deadline came first or the client was closed (``closing`` is set).
    """
    if reaction.repoll_s > 0:
        # The primary counts as gone: wait for the meta to name another one. No backoff
        # afterwards, since the thing we waited for has happened.
        while True:  # bounded by the deadline: every round waits repoll_s or until it
            route = routing.route(pidx)
            if route.primary is not None and (route.primary, route.ballot) != (gone.primary, gone.ballot):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or _closed_while_waiting(closing, min(reaction.repoll_s, left)):
                return False
            routing.refresh(deadline)
    left = deadline - time.monotonic()
    if _closed_while_waiting(closing, max(0.0, min(policy.backoff_s(attempt), left))):
        return False
    return time.monotonic() < deadline


def _closed_while_waiting(closing: Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True if the client is (or gets) closed."""
    # is_set() first: after close(), an op woken by something else may get here while gevent
    # is still notifying this Event's waiters; gevent then parks the wait() until that round
    # reaches it, and such parked ops were seen never to wake (1 run in 4 of
    # test_close_releases_every_greenlet_and_socket). Checking the flag first never parks.
    return closing.is_set() or closing.wait(seconds)
