"""The samples ``pegbench compare`` tests, read from run folders: one list of numbers per
(policy, metric) and run, pooled per side.

=====================  =====================================================  ==========  =====
metric                 one sample is                                          unit        floor
=====================  =====================================================  ==========  =====
ttr_first_ms           one (injected fault, affected partition): TTR-first    ms          1
                       (``faults[].ttr.<policy>.<pidx>.first_ms``); not
                       recovered = +inf
client_lag_ms          the same pair's client lag (``lag_ms``); not           ms          1
                       recovered = +inf; no server failover time = no sample
error_rate_fault       one injected fault: 100 × failed / all writes          %           0.1
                       intended in its fault phase (none: no sample)
meta_queries_per_s     one injected fault: meta queries started in its        /s          0.1
                       fault and recovery phases / their length
recovered_fraction     the TTR-first pairs, counted: recovered / all          %           —
=====================  =====================================================  ==========  =====

Every metric is better lower except ``recovered_fraction``. The floor (display units) is the
noise threshold added to the allowed regression, so that 0 → 0.05 % errors is not a
regression of +∞ %.

Why per fault for the rates: per-second values are neither independent (an outage's errors and
a burst of meta queries span consecutive seconds) nor comparable by their median (most
seconds of a good client have no error and no meta query: the median is 0 whatever happens in
the others). One value per fault is one replicate of the experiment; each fault owns the fault
and recovery phases from its injection to the next fault's. From ``timeline.json``: the error
rate from the per-partition write series (10 ms buckets near faults, assigned to the phase
holding their start, as results.json's ``error_rate_by_phase``; reads are not in them); meta
queries from the per-second series, a second counting when its end lies in the phases (the
burst of queries a fault causes comes right after t_inject, in the second that holds it).
A run of ``quick.toml`` has 3 faults, so these two metrics need 2 runs per side before a test
can reach p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..metrics.results import Results
from ..metrics.slo import slo_unknown_reason, slo_verdict
from .run_dir import TIMELINE_JSON, read_results, read_timeline, results_path
from .views import policy_order, ttr_samples

LOWER, HIGHER = "lower", "higher"
FAULT, RECOVERY = "fault", "recovery"
END_EPSILON_S = 1e-6      # a second [t, t + 1) "ends" at t + 1 − ε, inside the half-open span


@dataclass(frozen=True)
class SampleMetric:
    """One compared metric (see the module docstring)."""

    key: str
    label: str
    unit: str
    sample: str                   # what one sample is, for --help and the HTML page
    floor: float = 0.0
    better: str = LOWER


TTR_FIRST = SampleMetric("ttr_first_ms", "TTR-first", "ms",
                         "per (fault, partition); not recovered = +∞", 1.0)
CLIENT_LAG = SampleMetric("client_lag_ms", "client lag", "ms",
                          "per (fault, partition); not recovered = +∞", 1.0)
ERROR_RATE_FAULT = SampleMetric("error_rate_fault", "error rate during faults", "%",
                                "per fault: over its fault phase", 0.1)
META_QPS = SampleMetric("meta_queries_per_s", "meta queries/s (fault + recovery)", "/s",
                        "per fault: over its fault and recovery phases", 0.1)
RECOVERED = SampleMetric("recovered_fraction", "TTR-first recovered", "%",
                         "recovered (fault, partition) pairs / all", 0.0, HIGHER)

#: The tested metrics, in display order (recovered_fraction is counted, not ranked).
RANKED_METRICS = (TTR_FIRST, CLIENT_LAG, ERROR_RATE_FAULT, META_QPS)
METRICS = (*RANKED_METRICS, RECOVERED)


@dataclass(frozen=True)
class RunSamples:
    """One run folder's samples: ``values[(policy, metric key, fault kind)]``;
    ``recovered[policy]`` = (recovered, all) TTR-first pairs. ``timeline`` is False when the
    folder had none (its per-fault rates then have no samples from this run)."""

    label: str
    order: tuple[str, ...]
    values: Mapping[tuple[str, str, str], list[float]] = field(default_factory=dict)
    recovered: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    timeline: bool = True
    profile: str | None = None
    results: Results = field(default_factory=Results)
    verdict: str = "unknown"      # the run's own SLO verdict: pass, fail or unknown
    unknown_reason: str = ""


Key = tuple[str, str, str]          # (policy, metric key, fault kind)


def ttr_values(results: Results) -> tuple[dict[Key, list[float]], dict[str, tuple[int, int]]]:
    """TTR-first and client-lag samples per policy and fault kind (ms, +inf when not
    recovered), and the (recovered, all) counts per policy."""
    values: dict[Key, list[float]] = {}
    counts: dict[str, list[int]] = {}
    for s in ttr_samples(results):
        values.setdefault((s.policy, TTR_FIRST.key, s.kind), []).append(
            s.first_ms if s.recovered else math.inf)
        if isinstance(s.lag_ms, (int, float)):
            values.setdefault((s.policy, CLIENT_LAG.key, s.kind), []).append(
                float(s.lag_ms) if s.recovered else math.inf)
        c = counts.setdefault(s.policy, [0, 0])
        c[0] += int(s.recovered)
        c[1] += 1
    return values, {p: (r, n) for p, (r, n) in counts.items()}


def phase_spans(timeline: Mapping[str, Any], names: Sequence[str]) -> list[tuple[float, float]]:
    """[start, end) of the named phases, clipped to the analysed window."""
    t_start, t_end = float(timeline.get("t_start", -math.inf)), float(timeline.get("t_end", math.inf))
    out = []
    for phase in timeline.get("phases") or []:
        if not isinstance(phase, Mapping) or phase.get("name") not in names:
            continue
        end = phase.get("end")
        start = max(float(phase["start"]), t_start)
        stop = min(t_end if end is None else float(end), t_end)
        if stop > start:
            out.append((start, stop))
    return out


def clip(spans: Sequence[tuple[float, float]], a: float, b: float) -> list[tuple[float, float]]:
    """``spans`` ∩ [a, b)."""
    return [(max(s, a), min(e, b)) for s, e in spans if min(e, b) > max(s, a)]


def inside(spans: Sequence[tuple[float, float]], t: float) -> bool:
    """Whether instant ``t`` lies in one of ``spans``."""
    return any(a <= t < b for a, b in spans)


def fault_windows(timeline: Mapping[str, Any]) -> list[tuple[float, float, str]]:
    """Per injected fault, in t_inject order: [t_inject, the next fault's t_inject or t_end)
    and its kind. Each fault owns the fault and recovery phases from its injection to the
    next one."""
    t_end = float(timeline.get("t_end", math.inf))
    faults = sorted((float(f["t_inject"]), str(f.get("kind", "")))
                    for f in timeline.get("faults") or []
                    if isinstance(f, Mapping) and not f.get("skipped")
                    and isinstance(f.get("t_inject"), (int, float)))
    ends = [t for t, _ in faults[1:]] + [t_end]
    return [(a, b, kind) for (a, kind), b in zip(faults, ends) if b > a]


def write_error_rate(partitions: Mapping[str, Any], spans: Sequence[tuple[float, float]]
                     ) -> float | None:
    """100 × (fail + unknown) / writes over the partition buckets whose start lies in
    ``spans`` (as results.json assigns buckets to phases); None without writes there."""
    ops = errors = 0
    for series in partitions.values():
        for i, t in enumerate(series.get("t") or []):
            if inside(spans, t):
                bad = series["fail"][i] + series["unknown"][i]
                ops += series["ok"][i] + bad
                errors += bad
    return 100.0 * errors / ops if ops else None


def meta_rate(per_second: Mapping[str, Any], spans: Sequence[tuple[float, float]]
              ) -> float | None:
    """Meta queries/s over the whole seconds that end inside ``spans`` (a second missing from
    the series had none); None when no second does."""
    if not spans:
        return None
    meta = dict(zip((float(t) for t in per_second.get("t") or []),
                    per_second.get("meta_queries") or []))
    first, last = math.floor(min(a for a, _ in spans)), math.ceil(max(b for _, b in spans))
    seconds = [float(t) for t in range(first, last) if inside(spans, t + 1 - END_EPSILON_S)]
    if not seconds:
        return None
    return sum(meta.get(t, 0) for t in seconds) / len(seconds)


def per_fault_rates(timeline: Mapping[str, Any]) -> dict[Key, list[float]]:
    """Per policy, fault kind and injected fault: the write error rate (%) of its fault phase
    and its meta queries/s over its fault and recovery phases (see the module docstring)."""
    fault, cost = phase_spans(timeline, (FAULT,)), phase_spans(timeline, (FAULT, RECOVERY))
    windows = [(clip(fault, a, b), clip(cost, a, b), kind)
               for a, b, kind in fault_windows(timeline)]
    values: dict[Key, list[float]] = {}
    for policy, block in (timeline.get("policies") or {}).items():
        block = block or {}
        for fault_spans, cost_spans, kind in windows:
            rate = write_error_rate(block.get("partitions") or {}, fault_spans)
            qps = meta_rate(block.get("per_second") or {}, cost_spans)
            if rate is not None:
                values.setdefault((policy, ERROR_RATE_FAULT.key, kind), []).append(rate)
            if qps is not None:
                values.setdefault((policy, META_QPS.key, kind), []).append(qps)
    return values


def run_samples(results: Results, timeline: Mapping[str, Any] | None,
                label: str) -> RunSamples:
    """One run's samples from its results.json and parsed timeline.json (or None)."""
    values, recovered = ttr_values(results)
    if timeline is not None:
        values.update(per_fault_rates(timeline))
    return RunSamples(label, tuple(policy_order(results)), values, recovered,
                      timeline is not None, results.facts.profile_name, results,
                      slo_verdict(results), slo_unknown_reason(results))


def load_run_samples(location: str) -> RunSamples:
    """A run folder (or its results.json) read into samples. Its timeline.json is read from
    the same folder when present. RunInputError (naming the file) on unreadable input."""
    path = results_path(location)
    results = read_results(path)
    timeline_path = Path(path).parent / TIMELINE_JSON
    timeline = read_timeline(timeline_path) if timeline_path.exists() else None
    return run_samples(results, timeline, str(path))


def pooled(runs: Sequence[RunSamples], policy: str, metric: SampleMetric,
           kind: str | None = None) -> list[float]:
    """Every run's samples of (policy, metric), of one fault kind or of all, concatenated."""
    return [v for r in runs for (p, m, k), values in r.values.items()
            if p == policy and m == metric.key and kind in (None, k) for v in values]


def fault_kinds(runs: Sequence[RunSamples]) -> list[str]:
    """The fault kinds with samples in any of the runs, sorted."""
    return sorted({k for r in runs for (_, _, k) in r.values})


def pooled_recovered(runs: Sequence[RunSamples], policy: str) -> tuple[int, int]:
    """(recovered, all) TTR-first pairs of the policy over the runs."""
    return (sum(r.recovered.get(policy, (0, 0))[0] for r in runs),
            sum(r.recovered.get(policy, (0, 0))[1] for r in runs))
