"""The key metrics of a policy, as the summary table and ``pegbench compare`` read them.

A :class:`Metric` names a path under ``results.json``'s ``policies.<name>``, its display unit
and which direction is better. Values come out as floats, with +inf for a TTR percentile
that landed on a censored (not recovered) sample and None for "not measured".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .views import dig, value_or_inf

LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class Metric:
    """One per-policy figure of results.json (see the module docstring)."""

    key: str                      # its dotted path under policies.<name>: the compare name
    label: str
    unit: str = ""                # after scaling: "ms", "%", "/s", ""
    scale: float = 1.0            # raw value × scale = displayed value (µs → ms: 0.001)
    better: str = LOWER

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


TTR_P50 = Metric("ttr_first_ms.p50", "TTR-first p50", "ms")
TTR_P99 = Metric("ttr_first_ms.p99", "TTR-first p99", "ms")
TTR_MAX = Metric("ttr_first_ms.max", "TTR-first max", "ms")
RECOVERED = Metric("recovered_fraction", "recovered / total", "%", 100.0, HIGHER)
LAG_P99 = Metric("client_lag_ms.p99", "client lag p99", "ms")
ERROR_RATE = Metric("error_rate", "error rate (overall)", "%", 100.0)
ERROR_RATE_FAULT = Metric("error_rate_by_phase.fault", "error rate (during faults)", "%", 100.0)
ATTEMPTS = Metric("attempts_per_op", "attempts / op")
META_QPS = Metric("meta_queries_per_s", "meta queries/s (fault + recovery)", "/s")
MISSED = Metric("missed", "missed arrivals (generator late)")
DROPPED = Metric("dropped", "dropped arrivals (in-flight cap full)")
PUT_P99 = Metric("latency_us.put.response.p99", "put response time p99", "ms", 0.001)
PUT_P999 = Metric("latency_us.put.response.p999", "put response time p99.9", "ms", 0.001)

#: The rows of the summary table, in order (lost writes, run-wide, come after them).
SUMMARY_METRICS = (TTR_P50, TTR_P99, TTR_MAX, RECOVERED, LAG_P99, ERROR_RATE,
                   ERROR_RATE_FAULT, ATTEMPTS, META_QPS, MISSED, DROPPED, PUT_P99,
                   PUT_P999)


def metric_value(policy_block: Mapping[str, Any], metric: Metric) -> float | None:
    """The metric of one ``policies.<name>`` block, scaled; +inf when censored; None when
    absent or null."""
    parent = dig(policy_block, metric.path[:-1])
    value = value_or_inf(parent, metric.path[-1])
    if value is None or math.isinf(value):
        return value
    return value * metric.scale


def recovered_counts(policy_block: Mapping[str, Any]) -> tuple[int, int] | None:
    """(recovered, n) of TTR-first, or None with no samples."""
    ttr = policy_block.get("ttr_first_ms")
    if not isinstance(ttr, Mapping) or not ttr.get("n"):
        return None
    return int(ttr.get("recovered", 0)), int(ttr["n"])


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


def lost_writes(results: Mapping[str, Any]) -> int | None:
    """Run-wide acknowledged writes not read back (``durability.lost``), or None."""
    durability = results.get("durability")
    if isinstance(durability, Mapping) and isinstance(durability.get("lost"), int):
        return durability["lost"]
    return None
