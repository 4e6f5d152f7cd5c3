"""The key metrics of a policy, as the summary table and ``pegbench compare`` read them.

A :class:`Metric` names a figure of ``results.json``'s ``policies.<name>`` (its dotted path
there), how to read it from a :class:`PolicyResult`, its display unit and which direction is
better. Values come out as floats, with +inf for a TTR percentile that landed on a censored
(not recovered) sample and None for "not measured".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..metrics.events import FAULT, RECOVERY, STEADY
from ..metrics.results import PolicyResult, Results

LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class Metric:
    """One per-policy figure of results.json (see the module docstring)."""

    key: str                      # its dotted path under policies.<name>: the compare name
    label: str
    #: the raw value (+inf for a censored percentile, None when not measured)
    read: Callable[[PolicyResult], float | None]
    unit: str = ""                # after scaling: "ms", "%", "/s", ""
    scale: float = 1.0            # raw value × scale = displayed value (µs → ms: 0.001)
    better: str = LOWER


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _put_response(p: PolicyResult, percentile: str) -> float | None:
    summary = ((p.latency_us or {}).get("put") or {}).get("response")
    return None if summary is None else _number(getattr(summary, percentile))


TTR_P50 = Metric("ttr_first_ms.p50", "TTR-first p50",
                 lambda p: p.ttr_first_ms.or_inf(p.ttr_first_ms.p50), "ms")
TTR_P99 = Metric("ttr_first_ms.p99", "TTR-first p99",
                 lambda p: p.ttr_first_ms.or_inf(p.ttr_first_ms.p99), "ms")
TTR_MAX = Metric("ttr_first_ms.max", "TTR-first max",
                 lambda p: p.ttr_first_ms.or_inf(p.ttr_first_ms.max), "ms")
RECOVERED = Metric("recovered_fraction", "recovered / total",
                   lambda p: _number(p.recovered_fraction), "%", 100.0, HIGHER)
LAG_P99 = Metric("client_lag_ms.p99", "client lag p99",
                 lambda p: p.client_lag_ms.or_inf(p.client_lag_ms.p99), "ms")
ERROR_RATE = Metric("error_rate", "error rate (overall)", lambda p: _number(p.error_rate), "%",
                    100.0)
ERROR_RATE_FAULT = Metric("error_rate_by_phase.fault", "error rate (during faults)",
                          lambda p: _number((p.error_rate_by_phase or {}).get(FAULT)), "%", 100.0)
ATTEMPTS = Metric("attempts_per_op", "attempts / op", lambda p: _number(p.attempts_per_op))
META_QPS = Metric("meta_queries_per_s", "meta queries/s (fault + recovery)",
                  lambda p: _number(p.meta_queries_per_s), "/s")
MISSED = Metric("missed", "missed arrivals (generator late)", lambda p: _number(p.missed))
DROPPED = Metric("dropped", "dropped arrivals (in-flight cap full)", lambda p: _number(p.dropped))
PUT_P99 = Metric("latency_us.put.response.p99", "put response time p99",
                 lambda p: _put_response(p, "p99"), "ms", 0.001)
PUT_P999 = Metric("latency_us.put.response.p999", "put response time p99.9",
                  lambda p: _put_response(p, "p999"), "ms", 0.001)

def _put_in_phase(phase: str, percentile: str, when: str) -> Metric:
    """The put response time percentile over the puts intended in ``phase`` (ms)."""
    return Metric(f"latency_by_phase_us.put.response.{phase}.{percentile}",
                  f"put response time {percentile} ({when})",
                  lambda p: p.phase_latency_ms("put", "response", phase, percentile), "ms")


PUT_P50_FAULT = _put_in_phase(FAULT, "p50", "during faults")
PUT_P99_FAULT = _put_in_phase(FAULT, "p99", "during faults")
PUT_P99_RECOVERY = _put_in_phase(RECOVERY, "p99", "recovery")
PUT_P99_STEADY = _put_in_phase(STEADY, "p99", "steady")

#: The rows of the summary table, in order (lost writes, run-wide, come after them). What the
#: client adds comes first: with real failure-detector timings the server's failover
#: dominates TTR for every policy, while client lag and the response time during faults
#: differ by orders of magnitude.
SUMMARY_METRICS = (LAG_P99, PUT_P50_FAULT, PUT_P99_FAULT, TTR_P50, TTR_P99, TTR_MAX, RECOVERED, ERROR_RATE,
                   ERROR_RATE_FAULT, ATTEMPTS, META_QPS, MISSED, DROPPED, PUT_P99_STEADY,
                   PUT_P99_RECOVERY, PUT_P99, PUT_P999)


def metric_value(policy: PolicyResult, metric: Metric) -> float | None:
    """The metric of one policy, scaled; +inf when censored; None when absent or null."""
    value = metric.read(policy)
    if value is None or math.isinf(value):
        return value
    return value * metric.scale


def recovered_counts(policy: PolicyResult) -> tuple[int, int] | None:
    """(recovered, n) of TTR-first, or None with no samples."""
    ttr = policy.ttr_first_ms
    if ttr is None or not ttr.n:
        return None
    return int(ttr.recovered or 0), int(ttr.n)


def ratio(old: float | None, new: float | None) -> float | None:
    """old / new, or None when it means nothing (unknown, 0/0, ∞/∞). A censored (+inf)
    old over a finite new is +inf; a finite old over a censored new is 0."""
    if old is None or new is None:
        return None
    if math.isinf(old) and math.isinf(new):
        return None
    if math.isinf(new):
        return 0.0
    if new == 0:
        return None if old == 0 else math.copysign(math.inf, old)
    return old / new


def lost_writes(results: Results) -> int | None:
    """Run-wide acknowledged writes not read back (``durability.lost``), or None."""
    durability = results.durability
    if durability is not None and isinstance(durability.lost, int):
        return durability.lost
    return None
