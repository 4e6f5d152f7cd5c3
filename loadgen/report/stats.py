"""Small statistics for the report: nearest-rank median, empirical CDF with censoring, and
a seeded cluster bootstrap of the old/new difference of medians.

Censored samples (not recovered) are +inf throughout: they count in ``n`` and in every rank,
as in results.json. The bootstrap resamples fault events, not partitions: the partitions of
one event fail and recover together, so treating them as independent would make the interval
too narrow. Old and new are resampled together (the same events), as both faced the same
faults. For the same reason the interval needs enough events, not enough samples: from 3
events there are at most 10 distinct resamples. Below ``min_events`` (the profile's
``report.min_fault_events``) only the difference of medians is given, with the reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..config.schema import DEFAULT_MIN_FAULT_EVENTS, MIN_FAULT_EVENTS_FLOOR

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
#: Fault events both policies have samples of, for a confidence interval to be shown.
MIN_FAULT_EVENTS = DEFAULT_MIN_FAULT_EVENTS
MAX_UNDEFINED = 0.05          # share of resamples allowed an undefined (∞ − ∞) difference


def median(values: Sequence[float]) -> float:
    """Nearest-rank median (rank ``max(int(n/2 + 0.5), 1)``, as hdrh and results.json rank
    percentiles); +inf samples rank last."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    return ordered[max(int(50 * len(ordered) / 100 + 0.5), 1) - 1]


def difference(new: float, old: float) -> float | None:
    """new − old; None when both are +inf (neither recovered: no difference to speak of)."""
    if math.isinf(new) and math.isinf(old) and (new > 0) == (old > 0):
        return None
    return new - old


def cdf_points(values: Sequence[float]) -> tuple[list[float], list[float], int]:
    """A step CDF over every sample: (x, y, censored). Finite samples give the steps; each
    +inf (censored) one counts in the denominator only, so the curve ends below 1."""
    finite = sorted(v for v in values if not math.isinf(v))
    n = len(values)
    xs, ys = [0.0], [0.0]
    for i, v in enumerate(finite, 1):
        xs.append(v)
        ys.append(i / n)
    return xs, ys, n - len(finite)


@dataclass(frozen=True)
class BootstrapCI:
    """median(new) − median(old) (ms) with its percentile bootstrap interval, or with
    ``reason`` saying why there is none (too few events, too many undefined resamples)."""

    old: str
    new: str
    observed: float | None        # None: both medians are +inf
    low: float | None             # None: too many resamples had no defined difference
    high: float | None
    events: int                   # fault events resampled
    n_old: int
    n_new: int
    resamples: int
    seed: int
    confidence: float
    undefined: int                # resamples where both medians were +inf
    min_events: int = MIN_FAULT_EVENTS
    reason: str = ""              # why low/high are None; "" when they are set


def defined_enough(undefined: int, resamples: int) -> bool:
    """An interval is given while at most ``MAX_UNDEFINED`` of the resamples had no defined
    difference (neither policy recovered in them)."""
    return undefined <= MAX_UNDEFINED * resamples


def percentile_interval(diffs: Sequence[float], confidence: float) -> tuple[float, float]:
    """The percentile bootstrap interval of ``diffs`` (not empty): its ends leave at most
    (1 − confidence) / 2 of the resampled differences below ``low`` and above ``high``."""
    ordered = sorted(diffs)
    # rounded first: in floats (1 − 0.9) / 2 × 20 is 0.999…, which would floor to 0;
    # 0 < confidence < 1 keeps k below half the list, so both ends are in it
    k = math.floor(round((1 - confidence) / 2 * len(ordered), 9))
    return ordered[k], ordered[-1 - k]


def median_difference_ci(old: str, new: str, old_by_event: Mapping[str, Sequence[float]],
                         new_by_event: Mapping[str, Sequence[float]], *, seed: int,
                         min_events: int = MIN_FAULT_EVENTS,
                         resamples: int = BOOTSTRAP_RESAMPLES,
                         confidence: float = CONFIDENCE) -> BootstrapCI | None:
    """The difference of medians over the fault events both policies have samples of, with
    its bootstrap interval when there are at least ``min_events`` of them (else ``reason``
    says so and no resample is drawn); None when they share no event with samples."""
    if min_events < MIN_FAULT_EVENTS_FLOOR:
        raise ValueError(f"min_events must be at least {MIN_FAULT_EVENTS_FLOOR}, got {min_events}")
    events = [e for e in old_by_event if e in new_by_event
              and old_by_event[e] and new_by_event[e]]
    old_all = [v for e in events for v in old_by_event[e]]
    new_all = [v for e in events for v in new_by_event[e]]
    if not events:
        return None
    observed = difference(median(new_all), median(old_all))
    base = dict(old=old, new=new, observed=observed, events=len(events), n_old=len(old_all),
                n_new=len(new_all), seed=seed, confidence=confidence, min_events=min_events)
    if len(events) < min_events:
        return BootstrapCI(**base, low=None, high=None, resamples=0, undefined=0,
                           reason=f"too few fault events for an interval "
                                  f"({len(events)} < {min_events})")
    rng = random.Random(seed)
    diffs: list[float] = []
    undefined = 0
    for _ in range(resamples):
        picked = [events[rng.randrange(len(events))] for _ in events]
        d = difference(median([v for e in picked for v in new_by_event[e]]),
                       median([v for e in picked for v in old_by_event[e]]))
        if d is None:
            undefined += 1
        else:
            diffs.append(d)
    low = high = None
    reason = ""
    if diffs and defined_enough(undefined, resamples):
        low, high = percentile_interval(diffs, confidence)
    else:
        reason = f"undefined ({undefined} of {resamples} resamples had neither recover)"
    return BootstrapCI(**base, low=low, high=high, resamples=resamples, undefined=undefined,
                       reason=reason)
