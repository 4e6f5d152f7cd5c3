"""Open-loop pacing, wrk2-style: each op has an intended start fixed in advance.

A user's op ``k`` is due at ``start + k / rate`` (``start`` = the user's start instant plus a
random phase, so users do not fire in lockstep). The schedule never waits for replies: when an
op stalls, the ops that came due meanwhile are issued back to back as soon as it returns, and
each is measured from its own intended start (``Outcome.intended_start``), so a stall shows in
the response times instead of silently thinning the load (coordinated omission).

An op more than ``max_lag_s`` behind its intended start is *missed*: counted, never issued and
never silently dropped; so is the backlog left when the schedule ends (:meth:`close`, at the
user's stop). Skipping over missed ops is arithmetic, so a long stall costs nothing however
many ops it swallowed. The op in flight when a user is killed is neither issued to the end nor
missed: it is simply absent from the records.

Pure and clock-injected (``now`` is passed in): no Locust, no client, no sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    """What to do now: issue op ``k`` (intended at ``t_intended``) after skipping ``missed``."""

    k: int
    t_intended: float
    missed: int


class OpenLoopSchedule:
    """The intended starts of one user's ops (see the module docstring)."""

    __slots__ = ("interval_s", "max_lag_s", "missed", "next_k", "start")

    def __init__(self, start: float, rate_per_s: float, max_lag_s: float):
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s!r}")
        if not max_lag_s >= 0:
            raise ValueError(f"max_lag_s must be >= 0, got {max_lag_s!r}")
        self.start = start
        self.interval_s = 1.0 / rate_per_s
        self.max_lag_s = max_lag_s
        self.next_k = 0          # the next op not yet issued nor missed
        self.missed = 0          # ops skipped so far for being more than max_lag_s late

    @staticmethod
    def with_phase(t0: float, rate_per_s: float, max_lag_s: float, phase: float) -> OpenLoopSchedule:
        """A schedule starting at ``t0`` plus ``phase`` (0 ≤ phase < 1) of one interval."""
        if not 0 <= phase < 1:
            raise ValueError(f"phase must be in [0, 1), got {phase!r}")
        return OpenLoopSchedule(t0 + phase / rate_per_s, rate_per_s, max_lag_s)

    def due_at(self, k: int) -> float:
        """The intended start of op ``k``."""
        return self.start + k * self.interval_s

    def delay(self, now: float) -> float:
        """Seconds until the next op is due (0 when it is already due or late)."""
        return max(0.0, self.start + self.next_k * self.interval_s - now)

    def take(self, now: float) -> Due | None:
        """The op to issue now, or None if the next one is not due yet.

        Ops that are more than ``max_lag_s`` late are counted as missed first; the op
        returned is the oldest one still within ``max_lag_s`` (issue it at once).
        """
        k = self.next_k
        due = self.start + k * self.interval_s
        if due > now:
            return None
        skipped = 0
        if now - due > self.max_lag_s:
            # the first op whose intended start is within max_lag_s of now
            first_ok = math.ceil((now - self.max_lag_s - self.start) / self.interval_s)
            first_ok = max(first_ok, k + 1)
            while self.start + first_ok * self.interval_s < now - self.max_lag_s:  # float slack
                first_ok += 1
            skipped, k = first_ok - k, first_ok
            due = self.start + k * self.interval_s
            self.missed += skipped
            if due > now:  # max_lag_s below one interval: the next op is not due yet
                self.next_k = k
                return None
        self.next_k = k + 1
        return Due(k=k, t_intended=due, missed=skipped)

    def backlog(self, now: float) -> int:
        """Ops due by ``now`` that were neither issued nor missed yet."""
        if now < self.start:
            return 0
        due = math.floor((now - self.start) / self.interval_s) + 1
        return max(0, due - self.next_k)

    def close(self, now: float) -> int:
        """The schedule ends at ``now``: its backlog counts as missed; returns how many."""
        n = self.backlog(now)
        self.missed += n
        self.next_k += n
        return n
