"""Latency percentile distributions (HdrHistogram's convention) per policy × op × kind.

results.json itself carries only p50/p99/p99.9/max per op, too few points for a curve.
Where a full distribution comes from, best first:

1. ``results.json``'s ``latency_hdr.<policy>.<op>.<service|response>``: the histogram in
   hdrh's compressed base64 encoding (a run fact ``pegbench run`` records; then results.json
   alone is enough);
2. the run folder's ``<policy>.<op>.<kind>.hlog`` interval logs, every interval added up
   (read with ``hdrh.log.HistogramLogReader``);
3. the four summary points of ``latency_us`` (drawn as markers, and said so).

Points follow hdrh's percentile iterator (5 ticks per half distance to 100 %); the 100 %
point (the max) is infinitely far right on a 1/(1−p) axis, so it is left out of the curve
and given with the curve instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from ..metrics import hdr
from ..metrics.results import LatencySummary
from .run_dir import LATENCY_KINDS, RunData

EMBEDDED_KEY = "latency_hdr"
FROM_RESULTS, FROM_HLOG, FROM_SUMMARY = "results.json latency_hdr", ".hlog", "summary points"
TICKS_PER_HALF_DISTANCE = 5
#: the percentiles of ``latency_us``'s p50, p99 and p999
SUMMARY_PERCENTILES = (50.0, 99.0, 99.9)


@dataclass(frozen=True)
class LatencyCurve:
    """One distribution: percentiles (0–100, below 100) and their values (ms)."""

    policy: str
    op: str
    kind: str                       # "service" | "response"
    source: str
    percentiles: tuple[float, ...]
    values_ms: tuple[float, ...]
    count: int
    max_ms: float
    #: "steady" | "fault" | "recovery" for a per-phase curve; "" for the whole run's
    phase: str = ""


def percentile_levels(count: int) -> list[float]:
    """The levels hdrh's percentile iterator reports (each step closes 1/(2·ticks) of the
    gap to 100 %), up to where one sample is left above: beyond that every level is the max."""
    levels, level = [], 0.0
    last = 100.0 * (1.0 - 1.0 / count)
    while level <= last:
        levels.append(level)
        level += (100.0 - level) / (2 * TICKS_PER_HALF_DISTANCE)
    return levels


def histogram_points(hist: HdrHistogram) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(percentiles, values in ms) of ``hist`` (µs), without the 100 % point. One pass over
    the counts (hdrh's iterator walks them once per level)."""
    count = hist.get_total_count()
    if not count:
        return (), ()
    levels = percentile_levels(count)
    values = hist.get_percentile_to_value_dict(levels)
    return tuple(levels), tuple(values[p] / 1000.0 for p in levels)


def read_hlog(path: Path) -> HdrHistogram:
    """Every interval of one ``.hlog`` added into one histogram."""
    total = hdr.new_histogram()
    reader = HistogramLogReader(str(path), hdr.new_histogram())
    try:
        while reader.add_next_interval_histogram(total) is not None:
            pass
    finally:
        reader.close()
    return total


def _from_histogram(policy: str, op: str, kind: str, source: str,
                    hist: HdrHistogram) -> LatencyCurve:
    percentiles, values = histogram_points(hist)
    return LatencyCurve(policy, op, kind, source, percentiles, values, hist.get_total_count(),
                        hist.get_max_value() / 1000.0 if hist.get_total_count() else 0.0)


def _from_summary(policy: str, op: str, kind: str, block: LatencySummary) -> LatencyCurve | None:
    if not block.count:
        return None
    points = [(p, value / 1000.0) for value, p in
              zip((block.p50, block.p99, block.p999), SUMMARY_PERCENTILES)
              if isinstance(value, (int, float))]
    return LatencyCurve(policy, op, kind, FROM_SUMMARY, tuple(p for p, _ in points),
                        tuple(v for _, v in points), int(block.count),
                        float(block.max or 0) / 1000.0)


def latency_curves(run: RunData, order: Sequence[str]) -> tuple[list[LatencyCurve], list[str]]:
    """Every (policy, op, kind) distribution of the run, and notes on what could not be read."""
    results = run.results
    embedded = results.facts.latency_hdr
    embedded = embedded if isinstance(embedded, Mapping) else {}
    curves, notes = [], []
    for policy in order:
        block = results.policies.get(policy)
        ops = (block.latency_us if block is not None else None) or {}
        for op in sorted(ops):
            for kind in LATENCY_KINDS:
                curve = None
                encoded = ((embedded.get(policy) or {}).get(op) or {}).get(kind)
                if isinstance(encoded, str):
                    try:
                        curve = _from_histogram(policy, op, kind, FROM_RESULTS, hdr.decode(encoded))
                    except Exception as exc:  # noqa: BLE001 - hdrh raises assorted errors
                        notes.append(f"{EMBEDDED_KEY}.{policy}.{op}.{kind} unreadable ({exc})")
                path = run.hlogs.get((policy, op, kind))
                if curve is None and path is not None:
                    try:
                        curve = _from_histogram(policy, op, kind, FROM_HLOG, read_hlog(path))
                    except Exception as exc:  # noqa: BLE001
                        notes.append(f"{path.name} unreadable ({exc})")
                    if curve is not None and not curve.count:
                        # hdrh's reader skips lines it cannot parse: an empty sum is no data
                        notes.append(f"{path.name} holds no samples")
                        curve = None
                summary = (ops[op] or {}).get(kind)
                if curve is None and summary is not None:
                    curve = _from_summary(policy, op, kind, summary)
                if curve is not None and curve.count:
                    curves.append(curve)
    return curves, notes


def phase_curves(run: RunData, order: Sequence[str]) -> list[LatencyCurve]:
    """The response-time distributions per policy × op × phase, from results.json's
    ``latency_by_phase_us`` histograms (an op belongs to the phase of its intended start);
    empty for a run that predates them."""
    curves = []
    for policy in order:
        block = run.results.policies.get(policy)
        by_op = (block.latency_by_phase_us if block is not None else None) or {}
        for op in sorted(by_op):
            for phase, summary in sorted((by_op[op].get("response") or {}).items()):
                if not summary.count or not summary.hdr:
                    continue
                curve = _from_histogram(policy, op, "response", FROM_RESULTS,
                                        hdr.decode(summary.hdr))
                curves.append(replace(curve, phase=phase))
    return curves
