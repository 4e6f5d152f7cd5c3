"""TTR as HDR histograms (ms), so that runs merge losslessly: pure functions.

One histogram per policy and metric (TTR-first, TTR-stable, client lag), 1 ms … 1 h, 3
significant digits, over the recovered samples of a run. Adding histograms of several runs
(a soak, a nightly series, several workers) gives exactly the histogram of all their samples.

* Censored (not recovered before the horizon) samples are counted in ``censored`` and never
  recorded: their value is only the time observed so far, a lower bound, which would pull
  percentiles down.
* Client lag: recorded only where the server failover time is known and the client
  recovered. A negative lag (the client wrote before the server's failover was seen) is
  counted in ``negative`` and not recorded: HDR holds no values below 1, and clamping it to
  1 ms would pass "ahead of the server" off as "1 ms behind". A lag with no server failover
  time is left out altogether (results.json's ``client_lag_ms.unknown`` counts those).
* Values are rounded to whole ms; one below 1 ms is recorded as 1 ms, one above 1 h as 1 h
  (clamped: HDR's range; a recovered sample is never dropped).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hdrh.histogram import HdrHistogram

from . import hdr, hlog
from .results import LagHdr, Results, TTRHdr, TTRHdrs
from .ttr import PartitionTTR

LOWEST_MS = 1
HIGHEST_MS = 3_600_000          # one hour
SIGNIFICANT_FIGURES = 3
FIRST, STABLE, LAG = "ttr_first_ms", "ttr_stable_ms", "client_lag_ms"
METRICS = (FIRST, STABLE, LAG)


def new_histogram() -> HdrHistogram:
    """An empty TTR histogram (ms, 1 ms … 1 h, 3 digits)."""
    return HdrHistogram(LOWEST_MS, HIGHEST_MS, SIGNIFICANT_FIGURES)


def to_ms(value_s: float) -> int:
    """Seconds as whole ms, clamped into the histogram's range (see the module docstring).
    Rounded to whole µs first, as results.json's samples (``faults[].ttr``) are, so that a
    sample on a half ms lands in the same bucket whether taken from there or from here."""
    return min(max(round(round(value_s * 1_000_000) / 1000), LOWEST_MS), HIGHEST_MS)


@dataclass
class MetricHistogram:
    """One metric's recovered samples (``hist``, ms) and the samples kept out of it."""

    hist: HdrHistogram = field(default_factory=new_histogram)
    censored: int = 0
    negative: int = 0            # client lag only

    @property
    def count(self) -> int:
        """Samples recorded in ``hist`` (recovered, non-negative)."""
        return self.hist.get_total_count()

    def add(self, other: MetricHistogram) -> None:
        """Add ``other``'s samples and counts into this one."""
        self.hist.add(other.hist)
        self.censored += other.censored
        self.negative += other.negative


@dataclass
class TTRHistograms:
    """A policy's TTR-first, TTR-stable and client-lag histograms."""

    first: MetricHistogram = field(default_factory=MetricHistogram)
    stable: MetricHistogram = field(default_factory=MetricHistogram)
    lag: MetricHistogram = field(default_factory=MetricHistogram)

    def items(self) -> Iterator[tuple[str, MetricHistogram]]:
        """(results.json key, histogram) in METRICS order."""
        return iter(zip(METRICS, (self.first, self.stable, self.lag)))


def ttr_histograms(ttrs: Iterable[PartitionTTR], policy: str) -> TTRHistograms:
    """The histograms of ``policy``'s samples among ``ttrs``."""
    out = TTRHistograms()
    for t in ttrs:
        if t.policy != policy:
            continue
        _record(out.first, t.first_s if t.recovered else None)
        _record(out.stable, t.stable_s if t.stable_recovered else None)
        if t.lag_s is None:
            continue                      # no server failover time: no lag at all
        if not t.recovered:
            out.lag.censored += 1
        elif t.lag_s < 0:
            out.lag.negative += 1
        else:
            out.lag.hist.record_value(to_ms(t.lag_s))
    return out


def _record(target: MetricHistogram, value_s: float | None) -> None:
    if value_s is None:
        target.censored += 1
    else:
        target.hist.record_value(to_ms(value_s))


def merge(parts: Iterable[TTRHistograms]) -> TTRHistograms:
    """The sum of ``parts`` (e.g. several runs of one policy); the inputs are unchanged."""
    out = TTRHistograms()
    for part in parts:
        for (_, mine), (_, theirs) in zip(out.items(), part.items()):
            mine.add(theirs)
    return out


def to_block(hists: TTRHistograms) -> TTRHdrs:
    """results.json's ``policies.<p>.ttr_hdr``."""
    def one(m: MetricHistogram) -> TTRHdr:
        return TTRHdr(count=m.count, censored=m.censored, hdr=hdr.encode(m.hist))
    return TTRHdrs(ttr_first_ms=one(hists.first), ttr_stable_ms=one(hists.stable),
                   client_lag_ms=LagHdr(count=hists.lag.count, censored=hists.lag.censored,
                                        hdr=hdr.encode(hists.lag.hist),
                                        negative=hists.lag.negative))


def from_block(block: TTRHdrs) -> TTRHistograms:
    """The histograms of a ``ttr_hdr`` block (inverse of :func:`to_block`)."""
    def one(b: TTRHdr, negative: int = 0) -> MetricHistogram:
        hist = new_histogram()
        if b.hdr:
            hist.add(hdr.decode(b.hdr))
        return MetricHistogram(hist, b.censored, negative)
    return TTRHistograms(first=one(block.ttr_first_ms), stable=one(block.ttr_stable_ms),
                         lag=one(block.client_lag_ms, block.client_lag_ms.negative))


@dataclass(frozen=True)
class Summary:
    """Percentiles of the recovered samples (ms; None when there are none) and the counts."""

    count: int
    censored: int
    negative: int
    p50: int | None
    p99: int | None
    max: int | None


def summarize(m: MetricHistogram) -> Summary:
    """p50, p99 and max of the recovered samples, as hdrh reports them (the highest value
    equivalent to the sample's bucket), beside the censored and negative counts."""
    if not m.count:
        return Summary(0, m.censored, m.negative, None, None, None)
    values = m.hist.get_percentile_to_value_dict([50.0, 99.0])
    return Summary(m.count, m.censored, m.negative, values[50.0], values[99.0],
                   m.hist.get_max_value())


#: The TTR log in a run's ``hlog/`` folder.
TTR_LOG = "ttr.hlog"


def tag(policy: str, metric: str) -> str:
    """A histogram's tag in :data:`TTR_LOG`: ``<policy>.<metric>`` (unsafe characters of the
    policy name, e.g. a dotted path's commas or spaces, become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", policy) + f".{metric}"


def tagged(results: Results) -> dict[str, HdrHistogram]:
    """Every policy's TTR histograms from results.json's ``ttr_hdr``, by :func:`tag`."""
    out = {}
    for name, policy in results.policies.items():
        if policy.ttr_hdr is None:
            continue
        for metric, m in from_block(policy.ttr_hdr).items():
            out[tag(name, metric)] = m.hist
    return out


def write_ttr_log(directory: str | os.PathLike[str], results: Results, *, t0: float,
                  start_wall_s: float | None = None) -> Path:
    """``<directory>/ttr.hlog``: one interval, the analysed window (``results.run``, s after
    ``t0``, the other logs' origin), one tagged histogram per policy × metric, values and
    max column in ms. Written from ``ttr_hdr``, so it holds exactly what results.json does;
    the censored and negative counts are not in it (HDR cannot hold them)."""
    run = results.run
    start = (run.t_start if run.t_start is not None else t0) - t0
    end = (run.t_end if run.t_end is not None else t0) - t0
    return hlog.write_tagged(
        Path(directory) / TTR_LOG, tagged(results), start_s=start, end_s=end,
        start_wall_s=start_wall_s, max_value_unit_ratio=1.0,
        comment="[pegbench TTR histograms: tag=<policy>.<metric> unit=ms; censored and "
                "negative samples: results.json policies.<policy>.ttr_hdr]")
