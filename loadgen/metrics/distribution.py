"""Duration distributions with censored samples: TTR-first, TTR-stable, client lag.

Values go into an HDR histogram (µs, pegbench's configuration). A censored sample (not
recovered before its horizon) counts as +∞: it is part of ``n`` and of every rank, and a
percentile that lands on it is None (``null`` in JSON), never 0 and never dropped. Client lag
may be negative; HDR cannot hold that, so negative samples are kept exactly, apart, and rank
below every histogram value.
"""

from __future__ import annotations

from . import hdr
from .results import Distribution, LagDistribution


class CensoredDistribution:
    """Samples in seconds; ``add(None)`` adds a censored (+∞) one."""

    def __init__(self) -> None:
        self.hist = hdr.new_histogram()
        self.negative: list[float] = []     # exact, seconds
        self.censored = 0
        self.clamped = 0

    def add(self, value_s: float | None) -> None:
        """Add one sample (seconds), or a censored one (None)."""
        if value_s is None:
            self.censored += 1
        elif value_s < 0:
            self.negative.append(value_s)
        else:
            us = int(value_s * 1e6 + 0.5)
            if not hdr.LOWEST_US <= us <= hdr.HIGHEST_US:
                self.clamped += 1
                us = hdr.clamp_us(us)
            self.hist.record_value(us)

    @property
    def n(self) -> int:
        """Every sample, censored ones included."""
        return len(self.negative) + self.hist.get_total_count() + self.censored

    def value_at_rank_s(self, rank: int) -> float | None:
        """The ``rank``-th smallest sample (1-based) in seconds; None if it is censored."""
        negative = sorted(self.negative)
        if rank <= len(negative):
            return negative[rank - 1]
        rank -= len(negative)
        if rank <= self.hist.get_total_count():
            return hdr.value_at_rank(self.hist, rank) / 1e6
        return None

    def percentile_s(self, percentile: float) -> float | None:
        """Nearest-rank percentile as hdrh computes it; None when it lands on a censored one."""
        n = self.n
        if not n:
            return None
        return self.value_at_rank_s(max(int(percentile * n / 100 + 0.5), 1))

    def summary_ms(self) -> Distribution:
        """``{n, recovered, censored, p50, p99, max}`` in ms (percentiles null when censored
        or when there are no samples)."""
        n = self.n
        return Distribution(n=n, recovered=n - self.censored, censored=self.censored,
                            p50=_ms(self.percentile_s(50.0)),
                            p99=_ms(self.percentile_s(99.0)),
                            max=_ms(self.value_at_rank_s(n)) if n else None)

    def lag_summary_ms(self, unknown: int = 0) -> LagDistribution:
        """:meth:`summary_ms` of signed samples (client lag), plus ``negative`` (how many were
        below 0), the ``min`` and ``unknown`` (samples left out: no server failover time)."""
        n, s = self.n, self.summary_ms()
        return LagDistribution(n=s.n, recovered=s.recovered, censored=s.censored, p50=s.p50,
                               p99=s.p99, max=s.max, negative=len(self.negative),
                               min=_ms(self.value_at_rank_s(1)) if n else None,
                               unknown=unknown)


def _ms(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s * 1000, 3)
