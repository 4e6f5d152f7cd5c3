"""``pegbench compare``'s merged figures: per policy and side, TTR-first and client-lag
percentiles from the sum of the side's runs' TTR histograms (``policies.<p>.ttr_hdr``), and
the put response p99 during faults from the sum of their ``latency_by_phase_us.put.response
.fault.hdr`` histograms. Adding histograms is exact (same HDR layout), unlike averaging each
run's percentiles. Shown beside the judgements, never part of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..metrics import hdr, ttr_hist
from ..metrics.ttr_hist import Summary
from .compare_samples import RunSamples
from .html import number


@dataclass(frozen=True)
class Merged:
    """One policy on one side: merged summaries (None: no run had the histograms) and how
    many runs went into each."""

    policy: str
    side: str
    first: Summary | None
    lag: Summary | None
    ttr_runs: int
    put_fault_p99_ms: float | None
    put_runs: int


def merged_ttr(runs: Sequence[RunSamples], policy: str) -> tuple[ttr_hist.TTRHistograms, int]:
    """The sum of the runs' TTR histograms of ``policy`` and how many runs had them."""
    parts = [ttr_hist.from_block(p.ttr_hdr) for r in runs
             if (p := r.results.policies.get(policy)) is not None and p.ttr_hdr is not None]
    return ttr_hist.merge(parts), len(parts)


def merged_put_fault_p99_ms(runs: Sequence[RunSamples], policy: str) -> tuple[float | None, int]:
    """Put response p99 during faults (ms) over the runs' merged histograms, and how many
    runs had one (a run without puts intended in a fault phase, or older, has none)."""
    total, used = hdr.new_histogram(), 0
    for r in runs:
        p = r.results.policies.get(policy)
        phase = None if p is None else (
            p.latency_by_phase_us.get("put", {}).get("response", {}).get("fault"))
        if phase is None or not phase.hdr:
            continue
        total.add(hdr.decode(phase.hdr))
        used += 1
    if not total.get_total_count():
        return None, used
    return total.get_value_at_percentile(99.0) / 1000, used


def merge_side(runs: Sequence[RunSamples], policy: str, side: str) -> Merged:
    """:class:`Merged` of ``policy`` over ``runs``."""
    hists, ttr_runs = merged_ttr(runs, policy)
    put, put_runs = merged_put_fault_p99_ms(runs, policy)
    return Merged(policy, side,
                  ttr_hist.summarize(hists.first) if ttr_runs else None,
                  ttr_hist.summarize(hists.lag) if ttr_runs else None,
                  ttr_runs, put, put_runs)


def merge_sides(base: Sequence[RunSamples], candidate: Sequence[RunSamples],
                policies: Sequence[str]) -> list[Merged]:
    """Per compared policy, the base then the candidate side."""
    return [merge_side(runs, policy, side) for policy in policies
            for side, runs in (("base", base), ("candidate", candidate))]


def skipped_notes(base: Sequence[RunSamples], candidate: Sequence[RunSamples]) -> list[str]:
    """One note per run left out of the merged TTR histograms (results.json without
    ``ttr_hdr``: written before it)."""
    return [f"{r.label}: no ttr_hdr in its results.json (an older run): left out of the "
            "merged TTR histograms" for r in (*base, *candidate)
            if any(p.ttr_hdr is None for p in r.results.policies.values())]


def summary_text(s: Summary | None, *, lag: bool = False) -> str:
    """``p50 955 / p99 1,010 / max 1,010 ms (n=14, 0 censored)``; n/a without histograms."""
    if s is None:
        return "n/a"
    counts = f"n={s.count}, {s.censored} censored" + (f", {s.negative} negative" if lag else "")
    if not s.count:
        return f"none recovered ({counts})"
    return (f"p50 {number(s.p50, 4)} / p99 {number(s.p99, 4)} / max {number(s.max, 4)} ms "
            f"({counts})")


def cells(m: Merged) -> tuple[str, ...]:
    """policy, side, TTR-first, client lag, put p99 during faults (runs merged in each)."""
    put = "n/a" if m.put_fault_p99_ms is None else f"{number(m.put_fault_p99_ms, 4)} ms"
    return (m.policy, m.side, f"{summary_text(m.first)} [{_runs(m.ttr_runs)}]",
            f"{summary_text(m.lag, lag=True)}", f"{put} [{_runs(m.put_runs)}]")


HEADER = ("policy", "side", "TTR-first (merged)", "client lag (merged)",
          "put p99 during faults (merged)")


def format_merged(merged: Sequence[Merged], notes: Sequence[str] = ()) -> list[str]:
    """The text section: a heading, one row per policy and side, the notes."""
    if not merged:
        return []
    table = [HEADER] + [cells(m) for m in merged]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["", ("merged histograms (each side's runs added up; percentiles of the recovered "
                  "samples, censored counted beside; not part of the verdict):")]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines += [f"note: {n}" for n in notes]
    return lines


def _runs(n: int) -> str:
    return f"{n} run{'s' * (n != 1)}"
