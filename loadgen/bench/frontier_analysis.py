"""Frontier analysis: client lag per run, medians per setting, the Pareto front, the dominance check.

Pure functions over what ``pegbench bench frontier`` measured (:mod:`loadgen.bench.frontier`).

**Client lag.** The *ready instant* is when the server side could serve the faulted partition
again (:attr:`loadgen.bench.policies.Trace.t_ready`). For each writer (an application thread
that issues one write at a time on a fixed schedule) with a write ending after it: lag = the
end of the writer's first acknowledged write after the ready instant − the later of the ready
instant and the intended start of the writer's first write ending after it. A writer that
was waiting at the ready instant counts from that instant; an idle one from when it next
wanted to write. A write that fails on the way counts with the wait for the writer's next
scheduled write (its data is stored only then). A writer with no acknowledged write after
the ready instant is censored (+∞): a percentile that lands on it is None ("never"), as in
results.json. Each run gives p50 and p99 over its writers; a setting reports the medians
over its runs (+∞ ranked last).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..metrics.distribution import CensoredDistribution
from ..report.stats import median

if TYPE_CHECKING:
    from .policies import WriterOp

#: The policy that must dominate every other one.
CHALLENGER = "failover"
#: Lag percentile the plot and the dominance check use by default.
DEFAULT_LAG = "p99"
LAG_TOLERANCE_MS = 10.0
FAILED_TOLERANCE = 1.0


@dataclass(frozen=True)
class Sample:
    """One run of one (scenario, policy, setting)."""

    meta_queries_per_s: float         # over the load's window from the fault on
    lag_p50_ms: float | None          # None: the rank is a writer that never recovered
    lag_p99_ms: float | None
    failed: int                       # ops that failed after the fault
    writes_per_ack: float | None      # writes the servers executed per acknowledged one
    writers: int                      # writers in the lag sample
    replica_queries_per_s: float = 0.0   # a replica probe's reads, same window


@dataclass(frozen=True)
class Point:
    """One (scenario, policy, setting): the medians over its runs, and the runs."""

    scenario: str
    policy: str
    setting: str                      # "default", "repoll_ms=30", "op_timeout_ms=500", ...
    meta_queries_per_s: float
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    failed: float
    writes_per_ack: float | None
    samples: tuple[Sample, ...]
    replica_queries_per_s: float = 0.0

    @property
    def label(self) -> str:
        """``policy`` or ``policy setting``."""
        return self.policy if self.setting == "default" else f"{self.policy} {self.setting}"

    def lag_ms(self, which: str = DEFAULT_LAG) -> float:
        """The ``p50`` or ``p99`` lag; +inf for never."""
        value = getattr(self, f"lag_{which}_ms")
        return math.inf if value is None else value


def writer_lags_s(writers: Sequence[Sequence[WriterOp]], t_ready: float) -> list[float]:
    """Each writer's client lag (see the module docstring), seconds; +inf for never."""
    lags = []
    for ops in writers:
        after = [op for op in ops if op.end > t_ready]
        if not after:
            continue
        since = max(t_ready, after[0].intended)
        first_ok = next((op.end for op in after if op.ok), math.inf)
        lags.append(first_ok - since)
    return lags


def lag_percentiles_ms(lags_s: Iterable[float]) -> tuple[float | None, float | None]:
    """(p50, p99) of the lags in ms, nearest rank; None where the rank is censored."""
    dist = CensoredDistribution()
    for lag in lags_s:
        dist.add(None if math.isinf(lag) else lag)
    return tuple(None if (v := dist.percentile_s(p)) is None else round(v * 1000, 3)
                 for p in (50.0, 99.0))


def _median(values: Iterable[float | None]) -> float | None:
    """Nearest-rank median, None counting as +inf (and a +inf median as None)."""
    value = median([math.inf if v is None else v for v in values])
    return None if math.isinf(value) else value


def point(scenario: str, policy: str, setting: str, samples: Sequence[Sample]) -> Point:
    """The medians of one setting's runs."""
    return Point(scenario, policy, setting,
                 meta_queries_per_s=median([s.meta_queries_per_s for s in samples]),
                 lag_p50_ms=_median(s.lag_p50_ms for s in samples),
                 lag_p99_ms=_median(s.lag_p99_ms for s in samples),
                 failed=median([s.failed for s in samples]),
                 writes_per_ack=_median(s.writes_per_ack for s in samples),
                 replica_queries_per_s=median([s.replica_queries_per_s for s in samples]),
                 samples=tuple(samples))


def pareto_front(points: Iterable[Point], lag: str = DEFAULT_LAG) -> list[Point]:
    """The points no other point beats on both meta queries/s and lag (the least lag for
    at most that cost), cheapest first; points that never recovered are not on it."""
    front: list[Point] = []
    for p in sorted((p for p in points if not math.isinf(p.lag_ms(lag))),
                    key=lambda p: (p.meta_queries_per_s, p.lag_ms(lag))):
        if not front or p.lag_ms(lag) < front[-1].lag_ms(lag):
            front.append(p)
    return front


@dataclass(frozen=True)
class Verdict:
    """Whether a challenger setting dominates ``client`` in ``scenario``, and why."""

    scenario: str
    client: Point
    holds: bool
    best: Point | None                # the dominating setting, or the closest one at ≤ cost
    reason: str


def dominance(points: Iterable[Point], lag: str = DEFAULT_LAG, *,
              challenger: str = CHALLENGER, lag_tolerance_ms: float = LAG_TOLERANCE_MS,
              failed_tolerance: float = FAILED_TOLERANCE) -> list[Verdict]:
    """For each scenario and each setting X of every other policy: is there a challenger
    setting with meta q/s ≤ X's, lag ≤ X's + ``lag_tolerance_ms`` and failed ops ≤ X's +
    ``failed_tolerance``? (Medians over runs; a lag that never came is +inf.)"""
    points = list(points)
    verdicts = []
    for x in points:
        if x.policy == challenger:
            continue
        mine = [p for p in points if p.scenario == x.scenario and p.policy == challenger]
        verdicts.append(_verdict(x, mine, lag, lag_tolerance_ms, failed_tolerance))
    return verdicts


def _verdict(x: Point, challengers: list[Point], lag: str, lag_tolerance_ms: float,
             failed_tolerance: float) -> Verdict:
    if not challengers:
        return Verdict(x.scenario, x, False, None, "no challenger setting was measured")
    cheap = [p for p in challengers if p.meta_queries_per_s <= x.meta_queries_per_s]
    if not cheap:
        least = min(challengers, key=lambda p: p.meta_queries_per_s)
        return Verdict(x.scenario, x, False, least,
                       f"no setting at ≤ {x.meta_queries_per_s:.2f} meta q/s (cheapest: "
                       f"{least.label}, {least.meta_queries_per_s:.2f} q/s; lag {lag} "
                       f"{_ms(least.lag_ms(lag))} vs {_ms(x.lag_ms(lag))} ms)")

    def shortfall(p: Point) -> tuple[float, float]:
        """How far ``p`` is past the lag and the failed-ops bound (0, 0: within both)."""
        x_lag = x.lag_ms(lag)
        lag_over = 0.0 if math.isinf(x_lag) else max(0.0, p.lag_ms(lag) - x_lag - lag_tolerance_ms)
        return lag_over, max(0.0, p.failed - x.failed - failed_tolerance)

    # A dominating setting if there is one (the least lag), else the nearest to the bounds.
    best = min(cheap, key=lambda p: (shortfall(p), p.lag_ms(lag)))
    lag_over, failed_over = shortfall(best)
    holds = lag_over == failed_over == 0
    over = ["never recovered" if math.isinf(lag_over) else f"lag {lag_over:.0f} ms" if lag_over else "",
            f"{failed_over:g} failed ops" if failed_over else ""]
    return Verdict(x.scenario, x, holds, best,
                   f"{best.label}: {best.meta_queries_per_s:.2f} vs {x.meta_queries_per_s:.2f} "
                   f"meta q/s{_replicas(best)}, lag {lag} {_ms(best.lag_ms(lag))} vs {_ms(x.lag_ms(lag))} ms, "
                   f"failed {best.failed:g} vs {x.failed:g}"
                   + ("" if holds else f" ({' and '.join(o for o in over if o)} over the bound)"))


def _replicas(p: Point) -> str:
    return f" (+ {p.replica_queries_per_s:.2f} replica q/s)" if p.replica_queries_per_s else ""


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f}"
