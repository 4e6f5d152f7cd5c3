"""Is the load generator its own bottleneck? A generator that saturates itself measures itself.

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

import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gevent

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
        """Stop the ticking greenlet; the status stays readable."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
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
