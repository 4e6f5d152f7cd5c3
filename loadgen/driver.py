"""One user's op loop: open-loop schedule, op mix, keys, values, the ledger, the request event.

An :class:`OpDriver` is what a Locust user does, without Locust: :meth:`~OpDriver.delay`
answers "how long until my next op is due" (the user's ``wait_time``) and
:meth:`~OpDriver.step` issues the op that is due, if any (the user's one task). Each step is
bounded: at most one op, itself bounded by the client's op timeout.

Each op goes through the policy's shared client with ``intended_start`` = its slot on the
schedule (:mod:`loadgen.pacing`), so the recorder measures response time from there. The
user's keys are ``<prefix><index>`` with index uniform in ``[0, key_space)`` and prefix
``run/policy/worker/seq/``; ``put`` writes sort key ``v``, ``multi_put`` the sort keys ``m0``
… ``m2`` (one value, atomically), ``get`` reads ``v``. Value sizes are uniform in
``value_bytes``. Acknowledged writes go to the user's durability ledger.

``fire`` is Locust's ``events.request.fire``: ``request_type`` ``"pegasus"``, ``name``
``"<policy>:<op>"``, ``response_time`` in ms **from the intended start** (the same
coordinated-omission-free response time as the recorder's, so Locust's charts show what the
users of an open-loop schedule saw), ``response_length`` the value bytes written or read, and
on failure an :class:`OpFailed` naming the error code and outcome (one instance per kind, so
Locust's error table groups them).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from .durability import MULTI_SLOT, MULTI_SORT_KEYS, PUT_SLOT, PUT_SORT_KEY, pack_token
from .errors import PegasusError
from .pacing import OpenLoopSchedule
from .workload import WORKLOAD_OPS, Workload

REQUEST_TYPE = "pegasus"
_PUT, _MULTI_PUT, _GET = WORKLOAD_OPS


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


class OpDriver:
    """One user's open-loop op loop (see the module docstring)."""

    def __init__(self, workload: Workload, policy: str, fire: Callable[..., Any], *,
                 clock: Callable[[], float] = time.monotonic):
        s = workload.settings
        self.workload, self.policy, self.fire, self.clock = workload, policy, fire, clock
        self.seq, self.prefix = workload.new_user(policy)
        self.rng = random.Random(f"{s.seed}/{self.prefix.decode()}")
        self.schedule = OpenLoopSchedule.with_phase(clock(), s.rate_per_user, s.max_lag_s,
                                                    self.rng.random())
        self.ledger = workload.book.ledger(self.prefix)
        self.values = workload.book.values
        self.names = {op: f"{policy}:{op}" for op in (*WORKLOAD_OPS, "open_table")}
        self.key_space = s.key_space
        self.size_lo, self.size_span = s.value_bytes[0], s.value_bytes[1] - s.value_bytes[0] + 1
        self.mix: list[tuple[str, float]] = []
        total = 0.0
        for op in WORKLOAD_OPS:
            share = s.mix.get(op, 0.0)
            if share > 0:
                total += share
                self.mix.append((op, total))
        if not self.mix:
            raise ValueError("the op mix has no op with a positive share")
        self.total_share, self.last_op = total, self.mix[-1][0]
        self.counter = 0        # writes issued by this user: the token's counter
        self.table = None

    def delay(self) -> float:
        """Seconds until the next op is due (Locust's ``wait_time``)."""
        return self.schedule.delay(self.clock())

    def step(self) -> None:
        """Issue the op that is due now (nothing if none is)."""
        due = self.schedule.take(self.clock())
        if due is None:
            return
        if due.missed:
            self.workload.add_missed(self.policy, due.missed)
        r = self.rng.random() * self.total_share
        op = self.last_op
        for name, edge in self.mix:
            if r < edge:
                op = name
                break
        self.run(op, due.t_intended)

    def close(self) -> None:
        """The user stops: ops due but never issued count as missed (not silently skipped);
        the last interval is spared, so a user on schedule that stops between ops misses none."""
        n = self.schedule.close(self.clock() - self.schedule.interval_s)
        if n:
            self.workload.add_missed(self.policy, n)

    def run(self, op: str, t_intended: float) -> None:
        """Issue one ``op`` intended at ``t_intended`` and report it."""
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
        idx = int(rand() * self.key_space)
        hash_key = self.prefix + b"%d" % idx
        exc: PegasusError | None = None
        if op == _GET:
            try:
                value = table.get(hash_key, PUT_SORT_KEY, intended_start=t_intended)
            except PegasusError as e:
                exc, value = e, None
            self._report(op, t_intended, len(value) if value else 0, exc)
            return
        self.counter += 1
        size = self.size_lo + int(rand() * self.size_span)
        token = pack_token(self.counter, size)
        value = self.values.value(token)
        ledger = self.ledger
        if op == _PUT:
            slot, length = idx * 2 + PUT_SLOT, size
        else:
            slot, length = idx * 2 + MULTI_SLOT, size * len(MULTI_SORT_KEYS)
        # Set before sending and cleared only on return: a user killed mid-op leaves its
        # write "in flight", which the read-back treats as possibly applied.
        ledger.inflight = (slot, token)
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
        ledger.inflight = None
        self._report(op, t_intended, length, exc)

    def _report(self, op: str, t_intended: float, length: int, exc: PegasusError | None) -> None:
        self.fire(request_type=REQUEST_TYPE, name=self.names[op],
                  response_time=(self.clock() - t_intended) * 1000.0, response_length=length,
                  exception=None if exc is None else failure(exc.code, exc.outcome),
                  context={})
