"""One user's arrivals: open-loop schedule, op mix, keys, values, the ledger, the request event.

An :class:`OpDriver` is what a Locust user does, without Locust. Arrivals are true open
loop (k6's ``constant-arrival-rate``, wrk2's intended starts): :meth:`~OpDriver.step`
launches every op that is due, each in its own greenlet, and returns at once;
:meth:`~OpDriver.delay` answers "how long until my next arrival" (the user's
``wait_time``). A user may have at most ``max_inflight`` ops in flight: an arrival that
finds them all busy is *dropped* and counted (per policy, partition and second, in the
recorder), never delayed. So an op stuck on a dead partition never holds back an op to a
healthy one, as in a Go or Java application that sends its writes concurrently. Arrivals
more than ``max_lag_s`` behind (the load generator itself was late) are *missed*
(:mod:`loadgen.load.pacing`). An op's greenlet comes from the user's pool of idle ones (a new one
when none is idle): it runs that op alone until the op ends, then waits for the next, so an
arrival costs a switch, not a greenlet's creation and teardown.

Each op goes through the policy's shared client with ``intended_start`` = its slot on the
schedule, so the recorder measures response time from there and service time from the
hand-off. The user's keys are ``<prefix><index>`` with index uniform in ``[0, key_space)``
and prefix ``run/policy/worker/seq/``; ``put`` writes sort key ``v``, ``multi_put`` the sort
keys ``m0`` … ``m2`` (one value, atomically), ``get`` reads ``v``. A write never goes to a
key the same user is still writing (the next free index is taken), so each key's writes
stay ordered and the durability ledger exact. Value sizes are uniform in ``value_bytes``.
Acknowledged writes go to the user's durability ledger.

``fire`` is Locust's ``events.request.fire``: ``request_type`` ``"pegasus"``, ``name``
``"<policy>:<op>"``, ``response_time`` in ms **from the intended start** (the same
coordinated-omission-free response time as the recorder's, so Locust's charts show what the
users of an open-loop schedule saw), ``response_length`` the value bytes written or read, and
on failure an :class:`OpFailed` naming the error code and outcome (one instance per kind, so
Locust's error table groups them).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from gevent.event import Event
from gevent.hub import get_hub
from greenlet import GreenletExit, getcurrent, greenlet

from ..errors import PegasusError
from .durability import MULTI_SLOT, MULTI_SORT_KEYS, PUT_SLOT, PUT_SORT_KEY, pack_token
from .pacing import OpenLoopSchedule
from .workload import WORKLOAD_OPS, Workload

log = logging.getLogger(__name__)

REQUEST_TYPE = "pegasus"
_PUT, _MULTI_PUT, _GET = WORKLOAD_OPS
#: Arrivals launched by one step at most: a backlog (the hub was late) goes out in slices,
#: with the hub free between them.
MAX_LAUNCH_PER_STEP = 256


class OpFailed(Exception):
    """A failed op as Locust sees it: ``<code> (<outcome>)``."""


_FAILURES: dict[tuple[str, str], OpFailed] = {}


def failure(code: str, outcome: str | None) -> OpFailed:
    """The one :class:`OpFailed` of ``(code, outcome)``."""
    key = (code, outcome or "fail")
    exc = _FAILURES.get(key)
    if exc is None:
        exc = _FAILURES[key] = OpFailed(f"{key[0]} ({key[1]})")
    return exc


def _kill(runner: greenlet) -> None:
    """End an op greenlet (in the hub): GreenletExit where it waits."""
    if not runner.dead:
        runner.throw(GreenletExit)


class OpDriver:
    """One user's open-loop op loop (see the module docstring)."""

    def __init__(self, workload: Workload, policy: str, fire: Callable[..., Any], *,
                 clock: Callable[[], float] = time.monotonic,
                 on_crash: Callable[[BaseException], Any] | None = None):
        s, w = workload.settings, workload.settings.workload
        self.workload, self.policy, self.fire, self.clock = workload, policy, fire, clock
        self.on_crash = on_crash          # an op greenlet's unexpected exception (a bug)
        self.max_inflight = w.max_inflight
        #: One entry per op in flight: the event set when it ends (joinable with
        #: ``gevent.joinall``) -> the job (op, intended start, key index, event, runner).
        self.inflight: dict[Event, list] = {}
        self._hub = get_hub()
        self._idle: list[greenlet] = []   # op greenlets waiting for their next op
        self._closed = False
        self.busy_keys: set[int] = set()  # key indexes with a write in flight
        self.seq, self.prefix = workload.new_user(policy)
        self.rng = random.Random(f"{s.seed}/{self.prefix.decode()}")
        self.schedule = OpenLoopSchedule.with_phase(clock(), w.rate_per_user, w.max_lag_s,
                                                    self.rng.random())
        self.ledger = workload.book.ledger(self.prefix, workload.labels.get(policy, policy))
        self.values = workload.book.values
        self.names = {op: f"{policy}:{op}" for op in (*WORKLOAD_OPS, "open_table")}
        self.key_space = w.key_space
        self.size_lo, self.size_span = w.value_bytes[0], w.value_bytes[1] - w.value_bytes[0] + 1
        self.mix: list[tuple[str, float]] = []
        total = 0.0
        for op in WORKLOAD_OPS:
            share = getattr(w.mix, op)
            if share > 0:
                total += share
                self.mix.append((op, total))
        if not self.mix:
            raise ValueError("the op mix has no op with a positive share")
        self.total_share, self.last_op = total, self.mix[-1][0]
        self.counter = 0        # writes issued by this user: the token's counter
        self.table = None

    def delay(self) -> float:
        """Seconds until the next arrival (Locust's ``wait_time``; 0 while a backlog is left)."""
        return self.schedule.delay(self.clock())

    def step(self) -> int:
        """Launch the ops due now, each in its own greenlet (at most ``MAX_LAUNCH_PER_STEP``);
        an arrival that finds ``max_inflight`` ops in flight is dropped. Returns how many
        arrivals were handled."""
        now = self.clock()
        handled = 0
        while handled < MAX_LAUNCH_PER_STEP:
            due = self.schedule.take(now)
            if due is None:
                break
            handled += 1
            if due.missed:
                self.workload.add_missed(self.policy, due.missed)
            op = self._pick_op()
            idx = int(self.rng.random() * self.key_space)
            if len(self.inflight) >= self.max_inflight:
                table = self.table
                partition = -1 if table is None else table.partition_of(self.prefix + b"%d" % idx)
                self.workload.add_dropped(self.policy, partition, due.t_intended)
                continue
            self.launch(op, due.t_intended, idx)
        return handled

    def launch(self, op: str, t_intended: float, idx: int) -> Event:
        """Run one op in a greenlet of its own (an idle one of the pool, or a new one), which
        starts once this greenlet yields; returns the event set when the op has ended."""
        done = Event()
        runner = self._idle.pop() if self._idle else greenlet(self._serve, parent=self._hub)
        job = self.inflight[done] = [op, t_intended, idx, done, None]
        self._hub.loop.run_callback(runner.switch, job)
        return done

    def _serve(self, job: list) -> None:
        """An op greenlet: run the job it was given, then go idle until the next; a kill
        (GreenletExit) ends it."""
        me = getcurrent()
        try:
            while True:
                done = job[3]
                if done in self.inflight:       # else cancelled by close() before it started
                    job[4] = me
                    try:
                        self.run(job[0], job[1], job[2])
                    except Exception as exc:  # noqa: BLE001 - a bug in one op must not go unseen
                        log.exception("%s: op %s failed unexpectedly", self.policy, job[0])
                        if self.on_crash is not None:
                            self.on_crash(exc)
                    finally:
                        self.inflight.pop(done, None)
                        done.set()
                if self._closed:
                    return
                self._idle.append(me)
                job = self._hub.switch()        # the next job, from launch()
        except GreenletExit:
            pass
        except BaseException:  # noqa: BLE001 - never into the hub: report it as gevent does
            self._hub.handle_error(me, *sys.exc_info())

    def _pick_op(self) -> str:
        r = self.rng.random() * self.total_share
        for name, edge in self.mix:
            if r < edge:
                return name
        return self.last_op

    def close(self) -> None:
        """The user stops: arrivals due but never launched count as missed (not silently
        skipped; the last interval is spared, so a user on schedule misses none), and ops
        still in flight are abandoned (a write among them stays "possibly applied")."""
        n = self.schedule.close(self.clock() - self.schedule.interval_s)
        if n:
            self.workload.add_missed(self.policy, n)
        self._closed = True
        jobs, self.inflight = list(self.inflight.values()), {}
        idle, self._idle = self._idle, []
        later = self._hub.loop.run_callback    # as gevent.killall(block=False) kills
        for job in jobs:       # a job not started yet is cancelled (it never runs)
            job[3].set()
            if job[4] is not None:
                later(_kill, job[4])
        for runner in idle:
            later(_kill, runner)

    def run(self, op: str, t_intended: float, idx: int) -> None:
        """Issue one ``op`` intended at ``t_intended`` on key index ``idx`` and report it.
        Blocks this greenlet until the op ends."""
        table = self.table
        if table is None:
            try:
                table = self.table = self.workload.table(self.policy)
            except PegasusError as exc:
                # no client op happened, so the recorder saw nothing: count it apart
                self.workload.add_open_failure(self.policy)
                self._report("open_table", t_intended, 0, exc)
                return
        rand = self.rng.random     # int(random() * n): a third of randrange's cost
        exc: PegasusError | None = None
        if op == _GET:
            hash_key = self.prefix + b"%d" % idx
            try:
                value = table.get(hash_key, PUT_SORT_KEY, intended_start=t_intended)
            except PegasusError as e:
                exc, value = e, None
            self._report(op, t_intended, len(value) if value else 0, exc)
            return
        busy = self.busy_keys
        if idx in busy:   # free within max_inflight steps: fewer writes than keys are in flight
            idx = next(i % self.key_space for i in range(idx + 1, idx + self.key_space)
                       if i % self.key_space not in busy)   # key_space > max_inflight
        hash_key = self.prefix + b"%d" % idx
        busy.add(idx)
        self.counter += 1
        size = self.size_lo + int(rand() * self.size_span)
        token = pack_token(self.counter, size)
        value = self.values.value(token)
        ledger = self.ledger
        if op == _PUT:
            slot, length = idx * 2 + PUT_SLOT, size
        else:
            slot, length = idx * 2 + MULTI_SLOT, size * len(MULTI_SORT_KEYS)
        # Set before sending and cleared only on return: an op killed mid-way leaves its
        # write "in flight", which the read-back treats as possibly applied.
        ledger.inflight[slot] = token
        try:
            if op == _PUT:
                table.put(hash_key, PUT_SORT_KEY, value, intended_start=t_intended)
            else:
                table.multi_put(hash_key, dict.fromkeys(MULTI_SORT_KEYS, value),
                                intended_start=t_intended)
        except PegasusError as e:
            exc = e
            if e.outcome != "fail":
                ledger.unknown(slot, token)
        else:
            ledger.ok(slot, token)
        del ledger.inflight[slot]
        busy.discard(idx)
        self._report(op, t_intended, length, exc)

    def _report(self, op: str, t_intended: float, length: int, exc: PegasusError | None) -> None:
        self.fire(request_type=REQUEST_TYPE, name=self.names[op],
                  response_time=(self.clock() - t_intended) * 1000.0, response_length=length,
                  exception=None if exc is None else failure(exc.code, exc.outcome),
                  context={})
