"""Is the load generator its own bottleneck? A generator that saturates itself measures itself.

Three checks: :class:`LoadMonitor` watches the load process while it runs (below);
:func:`schedule_checks` asks afterwards whether each policy's schedule actually went out
outside the fault windows (dropped or missed arrivals above ``SCHEDULE_SHORTFALL_LIMIT``
while the policy's ops succeed), naming whether the generator or the cluster fell behind;
:class:`ClusterQueueCheck` asks whether the cluster answered near its unloaded speed
(:mod:`loadgen.runner.baseline`), since a queue of replies, not the client, then sets recovery times.

:class:`LoadMonitor` runs one greenlet per load process that ticks every ``TICK_S`` and
measures two things:

* CPU: the process's CPU time (``time.process_time``) over wall time, per ``SAMPLE_S``;
  one core fully used is 1.0 (gevent runs the load on one thread);
* hub lateness: how much later than asked each tick wakes up (jHiccup's method). When the
  hub is overloaded every greenlet wakes late, users included, so their ops go out behind
  schedule: this is the part of the schedule lag the generator causes. Lag from slow
  replies (a stalled op during a fault) does not show here, so a fault run is not flagged.

A mean CPU of at least ``CPU_LIMIT`` over ``WINDOW_S``, or a median of per-second worst
lateness of at least ``LATE_LIMIT_S`` over ``LATE_WINDOW_S``, flags the process as saturated.
Lateness must last (the schedule lag *grows*): a few seconds of it, while a restarted node
learns on the other core of a small machine, is contention the run survives, not a generator
that cannot keep up. The flag is sticky until :meth:`LoadMonitor.reset` (the end of warm-up)
and comes with a reason; results with it carry an ``unknown`` verdict.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import gevent

from ..metrics.events import STEADY, Phase, PhaseLookup
from ..metrics.state import RecorderState

TICK_S = 0.01
SAMPLE_S = 1.0
WINDOW_S = 5.0
LATE_WINDOW_S = 15.0
CPU_LIMIT = 0.90
LATE_LIMIT_S = 0.05


@dataclass(frozen=True)
class Saturation:
    """Whether a load process was its own bottleneck, why, and the figures behind it."""

    saturated: bool = False
    reason: str = ""
    cpu_max: float = 0.0          # highest window-mean CPU fraction seen
    late_max_ms: float = 0.0      # worst single hub lateness seen
    since: float | None = None    # monotonic instant it was first flagged

    def as_dict(self) -> dict[str, object]:
        """Plain data for results.json and worker reports."""
        return {"saturated": self.saturated, "reason": self.reason,
                "cpu_max": round(self.cpu_max, 3), "late_max_ms": round(self.late_max_ms, 3),
                "since": self.since}

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> Saturation:
        """The inverse of :meth:`as_dict`."""
        return Saturation(saturated=bool(data.get("saturated")), reason=str(data.get("reason", "")),
                          cpu_max=float(data.get("cpu_max", 0.0)),
                          late_max_ms=float(data.get("late_max_ms", 0.0)),
                          since=data.get("since"))  # type: ignore[arg-type]

    def plus(self, other: Saturation) -> Saturation:
        """Saturated if either is; both reasons, the figures' maxima, the earliest flag."""
        since = [s.since for s in (self, other) if s.saturated and s.since is not None]
        return Saturation(saturated=self.saturated or other.saturated,
                          reason="; ".join(r for r in (self.reason, other.reason) if r),
                          cpu_max=max(self.cpu_max, other.cpu_max),
                          late_max_ms=max(self.late_max_ms, other.late_max_ms),
                          since=min(since, default=None))

    @staticmethod
    def combine(parts: Mapping[str, Saturation]) -> Saturation:
        """Several processes (by label): saturated if any is, reasons named by process."""
        flagged = {name: s for name, s in parts.items() if s.saturated}
        reason = "; ".join(f"{name}: {s.reason}" for name, s in sorted(flagged.items()))
        since = [s.since for s in flagged.values() if s.since is not None]
        return Saturation(saturated=bool(flagged), reason=reason,
                          cpu_max=max((s.cpu_max for s in parts.values()), default=0.0),
                          late_max_ms=max((s.late_max_ms for s in parts.values()), default=0.0),
                          since=min(since, default=None))


class LoadMonitor:
    """CPU and hub-lateness watch of this process (see the module docstring)."""

    def __init__(self, *, cpu_limit: float = CPU_LIMIT, late_limit_s: float = LATE_LIMIT_S,
                 window_s: float = WINDOW_S, late_window_s: float = LATE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.process_time):
        self.cpu_limit, self.late_limit_s = cpu_limit, late_limit_s
        self._samples: deque[float] = deque(maxlen=max(1, round(window_s / SAMPLE_S)))
        self._lates: deque[float] = deque(maxlen=max(1, round(late_window_s / SAMPLE_S)))
        self._clock, self._cpu_clock = clock, cpu_clock
        self._greenlet: gevent.Greenlet | None = None
        self.reset()

    def reset(self) -> None:
        """Forget what was seen so far (e.g. the end of warm-up)."""
        self._samples.clear()
        self._lates.clear()
        self._status = Saturation()
        self._t_last, self._cpu_last = self._clock(), self._cpu_clock()
        self._late_in_sample = 0.0

    def start(self) -> None:
        """Start the ticking greenlet (once)."""
        if self._greenlet is None or self._greenlet.dead:
            self.reset()
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Stop the ticking greenlet (it has ended on return); the status stays readable."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)     # not False: a last tick could land after stop
            self._greenlet = None

    def status(self) -> Saturation:
        """The current flag, reason and figures."""
        return self._status

    def sample(self, now: float, cpu_now: float, late_s: float) -> None:
        """Close one sample: CPU since the last one, and the worst lateness within it."""
        wall = now - self._t_last
        if wall <= 0:
            return
        cpu = (cpu_now - self._cpu_last) / wall
        self._t_last, self._cpu_last = now, cpu_now
        self._samples.append(cpu)
        self._lates.append(late_s)
        full = len(self._samples) == self._samples.maxlen
        cpu_mean = statistics.fmean(self._samples)
        late_median = statistics.median(self._lates)
        s = self._status
        reason = s.reason
        if not s.saturated:
            if full and cpu_mean >= self.cpu_limit:
                reason = (f"load process CPU {cpu_mean:.0%} over {len(self._samples)} s "
                          f"(limit {self.cpu_limit:.0%})")
            elif len(self._lates) == self._lates.maxlen and late_median >= self.late_limit_s:
                reason = (f"gevent hub late by {late_median * 1000:.0f} ms (median of the "
                          f"worst per second over {len(self._lates)} s; limit "
                          f"{self.late_limit_s * 1000:.0f} ms): ops leave behind schedule")
        self._status = Saturation(
            saturated=bool(reason), reason=reason,
            cpu_max=max(s.cpu_max, cpu_mean if full else 0.0),
            late_max_ms=max(s.late_max_ms, late_s * 1000),
            since=s.since if s.since is not None or not reason else now)

    def _run(self) -> None:
        clock = self._clock
        next_sample = clock() + SAMPLE_S
        while True:   # ends when stop() kills the greenlet
            t = clock()
            gevent.sleep(TICK_S)
            now = clock()
            self._late_in_sample = max(self._late_in_sample, now - t - TICK_S)
            if now >= next_sample:
                self.sample(now, self._cpu_clock(), self._late_in_sample)
                self._late_in_sample = 0.0
                next_sample = now + SAMPLE_S


# ------------------------------------------------------------------ the schedule, after a run

#: Arrivals of a policy that may go unsent outside faults before the run is UNKNOWN.
SCHEDULE_SHORTFALL_LIMIT = 0.01
#: A second counts for the schedule check only if its ops (by intended start) failed less
#: than this: the check asks whether the *load* went out, not whether a policy coped.
SCHEDULE_OK_ERROR_RATE = 0.01


@dataclass(frozen=True)
class ScheduleCheck:
    """How much of one policy's open-loop schedule went out in the steady seconds where its
    ops succeeded (see :func:`schedule_checks`)."""

    policy: str
    seconds: int          # whole steady seconds checked
    intended: float       # arrivals the schedule held in them
    sent: int             # ops that went out (and came back) with an intended start in them
    dropped: int          # arrivals in them that found the in-flight cap full
    missed: int           # arrivals more than max_lag_s late, over the whole run

    @property
    def shortfall(self) -> float:
        """Fraction of the intended arrivals that did not go out (0 when none were due)."""
        return max(0.0, 1.0 - self.sent / self.intended) if self.intended > 0 else 0.0

    @property
    def behind(self) -> str | None:
        """Who fell behind when the shortfall is over the limit: ``"cluster"`` when most
        unsent arrivals were dropped at the in-flight cap (replies were slow), else
        ``"generator"`` (this process did not send them in time); None when on schedule."""
        if self.shortfall <= SCHEDULE_SHORTFALL_LIMIT:
            return None
        unsent = self.intended - self.sent
        return "cluster" if self.dropped >= unsent / 2 else "generator"

    def as_dict(self) -> dict[str, object]:
        """Plain data for results.json."""
        return {"seconds": self.seconds, "intended": round(self.intended),
                "sent": self.sent, "dropped": self.dropped, "missed": self.missed,
                "shortfall": round(self.shortfall, 4), "behind": self.behind}


def schedule_checks(state: RecorderState, spans: Iterable[Phase], *, t_start: float,
                    t_end: float, offered_per_s: float, settle_s: float,
                    missed: Mapping[str, int] | None = None,
                    changes: Sequence[tuple[float, float]] = ()) -> dict[str, ScheduleCheck]:
    """Per policy: the whole steady seconds in ``[t_start, t_end − settle_s)`` (``settle_s``:
    ops still in flight at the end were never recorded) whose ops failed less than
    ``SCHEDULE_OK_ERROR_RATE``, and how many of their ``offered_per_s`` intended arrivals
    per second went out. A second with no op back at all counts (nothing went out).

    ``changes``: (instant, offered_per_s from then on) where the user count changed mid-run
    (Locust's *Edit*); the seconds from ``SPAWN_MARGIN_S`` before a change to one second
    after it (users spawning or stopping) are left out."""
    lookup = PhaseLookup(list(spans))
    first, last = math.ceil(t_start), math.floor(t_end - settle_s)   # whole seconds [first, last)
    out = {}
    for name, p in state.policies.items():
        per_sec: dict[int, list[int]] = {}
        for start, _width, counts in p.series.buckets(first, last):
            row = per_sec.setdefault(int(math.floor(start)), [0, 0])
            row[0] += counts[0] + counts[1] + counts[2]
            row[1] += counts[1] + counts[2]
        seconds = sent = dropped = 0
        intended = 0.0
        for sec in range(first, last):
            if lookup.phase_of(sec) != STEADY or lookup.phase_of(sec + 0.999) != STEADY:
                continue
            rate = offered_at(sec, offered_per_s, changes)
            ops, failed = per_sec.get(sec, (0, 0))
            if rate is None or (ops and failed > SCHEDULE_OK_ERROR_RATE * ops):
                continue
            seconds += 1
            intended += rate
            sent += ops
            dropped += p.dropped_by_second.get(sec, 0)
        out[name] = ScheduleCheck(policy=name, seconds=seconds, intended=intended,
                                  sent=sent, dropped=dropped,
                                  missed=0 if missed is None else missed.get(name, 0))
    return out


#: Seconds before a user-count change that may still see users spawning or stopping.
SPAWN_MARGIN_S = 2.0


def offered_at(sec: int, offered_per_s: float,
               changes: Sequence[tuple[float, float]]) -> float | None:
    """The intended arrivals per second in second ``[sec, sec + 1)``: ``offered_per_s``, or
    the last change's before it; None near a change (see :func:`schedule_checks`)."""
    rate = offered_per_s
    for t, after in sorted(changes):
        if sec < t + 1 and sec + 1 > t - SPAWN_MARGIN_S:
            return None
        if t <= sec:
            rate = after
    return rate


def schedule_saturation(checks: Mapping[str, ScheduleCheck], max_inflight: int) -> Saturation:
    """The self-bottleneck flag of a run whose schedule did not go out (see
    :func:`schedule_checks`): one clause per side that fell behind, naming its policies."""
    clauses = []
    for behind in ("generator", "cluster"):
        late = [c for _, c in sorted(checks.items()) if c.behind == behind]
        if not late:
            continue
        short = ", ".join(f"{c.policy} {c.shortfall:.1%}" for c in late)
        what = (f"the {behind} fell behind: part of the schedule outside faults was not sent "
                f"({short} of it; limit {SCHEDULE_SHORTFALL_LIMIT:.0%})")
        if behind == "cluster":
            clauses.append(f"{what}; {sum(c.dropped for c in late):,} arrivals found all "
                           f"{max_inflight} ops of their user in flight")
        else:
            clauses.append(f"{what}; {sum(c.missed for c in late):,} arrivals missed (more "
                           f"than max_lag_s late), the rest never left the load process")
    return Saturation(saturated=bool(clauses), reason="; ".join(clauses))


#: The steady put response time may be at most this many times the unloaded one: beyond it
#: replies queue, and a write after a failover waits behind the backlog (client lag then
#: measures the cluster's queue). Measured on 2 cores: the baseline itself moves with the
#: host (2.4-4.9 ms on one day), and a clean quick run reached 4.4x (failover lag p99 52 ms),
#: so the limit only catches a cluster far gone: quick at 12 users per policy (put p50 36 ms,
#: lag 236-259 ms) and at 800 arrivals/s on 8 partitions (p50 42 ms, lag 403 ms).
CLUSTER_QUEUE_LIMIT = 10.0


@dataclass(frozen=True)
class ClusterQueueCheck:
    """The run's put response p50 per policy against the cluster's unloaded put time."""

    baseline_p50_ms: float | None        # None: not measured (then nothing is checked)
    put_p50_ms: Mapping[str, float]      # per policy, over the run
    limit: float = CLUSTER_QUEUE_LIMIT

    @property
    def ratio(self) -> float | None:
        """The policies' median put p50 over the baseline (a policy stuck in an outage
        cannot move the median); None when either is unknown."""
        if not self.baseline_p50_ms or not self.put_p50_ms:
            return None
        return statistics.median(self.put_p50_ms.values()) / self.baseline_p50_ms

    @property
    def queued(self) -> bool:
        """Replies queued beyond the limit."""
        return self.ratio is not None and self.ratio > self.limit

    def as_dict(self) -> dict[str, object]:
        """Plain data for results.json."""
        ratio = self.ratio
        return {"baseline_put_p50_ms": self.baseline_p50_ms,
                "put_p50_ms": {k: round(v, 3) for k, v in sorted(self.put_p50_ms.items())},
                "ratio": None if ratio is None else round(ratio, 2), "limit": self.limit,
                "queued": self.queued}


def cluster_queue_saturation(check: ClusterQueueCheck) -> Saturation:
    """The self-bottleneck flag of a run whose cluster answered far slower than unloaded."""
    if not check.queued:
        return Saturation()
    median = statistics.median(check.put_p50_ms.values())
    return Saturation(saturated=True, reason=(
        f"the cluster fell behind: put response p50 {median:.1f} ms over the run is "
        f"{check.ratio:.0f}x its unloaded {check.baseline_p50_ms:.1f} ms (limit "
        f"{check.limit:g}x): replies queue, so recovery times measure the backlog, not the "
        f"client; lower the load (users, rate_per_user) or give the cluster more cores"))
