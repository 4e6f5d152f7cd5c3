"""``pegbench compare BASE_DIR [BASE_DIR ...] [--candidate CAND_DIR ...]``: runs of two
builds side by side, per policy, with a verdict that knows run-to-run noise (as Go's
``benchstat``).

``pegbench compare BASE_DIR CANDIDATE_DIR`` compares one run with one run. With
``--candidate`` every positional folder is a base run and every folder after
``--candidate`` a candidate run; each side's samples are pooled. A folder may be given as its
``results.json``; its ``timeline.json`` is read from the same folder when present.

Per policy in both sides, each metric of :mod:`.compare_samples` compares the two sides'
sample distributions (one sample per (fault, partition) for TTR-first and client lag, per
fault for the error rate and meta queries/s). A metric is a regression only when
both hold:

* significant: the two-sided Mann–Whitney U test gives p < ``--alpha`` (0.05); censored
  (not recovered) samples rank as +∞, worse than any recovered one. For
  ``recovered_fraction``: Fisher's exact test, two-sided, on recovered / not recovered;
* worse beyond the threshold: the candidate's median > base median + |base median| × r +
  floor (r = ``--max-regression``, floor per metric). ``recovered_fraction`` is worse on any
  significant drop, whatever r: a recovery lost is never noise-sized.

``--by-kind`` runs the ranked tests once per fault kind (rows ``ttr_first_ms[kill]``, …):
pooled over kinds, a change that hits only pauses is diluted by the kills' samples, both in
the test and in the median.

Otherwise the change shows "~" with the p-value and the sample counts. Fewer than
:data:`MIN_SAMPLES` samples on a side, or sizes at which no outcome could reach p < alpha,
print "~ too few samples". Below the table, per policy and side, TTR-first and client-lag
percentiles and the put response p99 during faults from the side's runs' histograms added up
(:mod:`.compare_merged`): figures, not judgements. Exit codes: 0 no regression, 1 at least
one (each named on stderr), 2 unreadable input (naming the file), no policy in common, a bad
argument, or an unwritable --html file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..exitcodes import EXIT_OK, EXIT_USAGE, EXIT_VERDICT
from .compare_merged import format_merged, merge_sides, skipped_notes
from .compare_samples import (HIGHER, METRICS, RECOVERED, RunSamples, SampleMetric, fault_kinds,
                              load_run_samples, pooled, pooled_recovered)
from .html import number
from .run_dir import RunInputError
from .significance import fisher_exact, mann_whitney, median, min_attainable_p, quantile

DEFAULT_MAX_REGRESSION = "10%"
DEFAULT_ALPHA = 0.05
MIN_SAMPLES = 3
SAME, WORSE, BETTER, FEW, NA = "~", "worse", "better", "few", "n/a"


@dataclass(frozen=True)
class Side:
    """One side's samples of one metric: n, median, quartiles (display units); for
    recovered_fraction, ``recovered`` of ``n`` and median = the fraction in %."""

    n: int
    median: float
    q1: float
    q3: float
    recovered: int | None = None

    @property
    def spread(self) -> float:
        """Half the interquartile range (+inf when the upper quartile is censored)."""
        return (self.q3 - self.q1) / 2


@dataclass(frozen=True)
class Row:
    """One metric of one policy on both sides, and the judgement."""

    policy: str
    metric: SampleMetric
    base: Side | None
    candidate: Side | None
    change: float | None          # relative change of medians; None when meaningless
    p: float | None               # None: not tested (n/a or too few samples)
    status: str                   # SAME, WORSE, BETTER, FEW or NA
    reason: str = ""
    significant: bool = False     # p < alpha
    kind: str = ""                # with --by-kind: the fault kind of the samples

    @property
    def name(self) -> str:
        """The metric as printed: ``ttr_first_ms``, or ``ttr_first_ms[pause]`` by kind."""
        return f"{self.metric.key}[{self.kind}]" if self.kind else self.metric.key

    @property
    def worse(self) -> bool:
        return self.status == WORSE


@dataclass(frozen=True)
class Comparison:
    """Every row, the policies compared, those on one side only, the settings and notes."""

    rows: tuple[Row, ...]
    policies: tuple[str, ...]
    only_base: tuple[str, ...]
    only_candidate: tuple[str, ...]
    max_regression: float
    alpha: float = DEFAULT_ALPHA
    notes: tuple[str, ...] = ()

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.worse]

    @property
    def passed(self) -> bool:
        return not self.regressions


def parse_regression(text: str) -> float:
    """``"10%"`` → 0.10; a bare number is a fraction (``"0.1"``). ValueError otherwise."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"--max-regression: expected a percentage such as 10% or a "
                         f"fraction such as 0.1, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"--max-regression: expected a non-negative amount, got {text!r}")
    return value


def relative_change(base: float | None, candidate: float | None) -> float | None:
    """(candidate − base) / |base|, or None when it means nothing."""
    if base is None or candidate is None or math.isinf(base) or base == 0:
        return 0.0 if base == 0 and candidate == 0 else None
    if math.isinf(candidate):
        return math.copysign(math.inf, candidate)
    return (candidate - base) / abs(base)


def beyond(metric: SampleMetric, base: float, candidate: float, max_regression: float) -> bool:
    """Whether the candidate's median is worse than base ± |base|·r ± floor (a median that is
    +inf, not recovered, is worse than any finite one and equal to another +inf)."""
    if metric.better == HIGHER:
        return candidate < base - abs(base) * max_regression - metric.floor
    if math.isinf(base):
        return False
    return candidate > base + abs(base) * max_regression + metric.floor


def side(values: Sequence[float]) -> Side | None:
    """Median and quartiles of a non-empty sample, else None."""
    if not values:
        return None
    return Side(len(values), median(values), quantile(values, 0.25), quantile(values, 0.75))


def judge_ranked(policy: str, metric: SampleMetric, base: Sequence[float],
                 candidate: Sequence[float], *, max_regression: float, alpha: float) -> Row:
    """One ranked metric: Mann–Whitney U, then the threshold (see the module docstring)."""
    b, c = side(base), side(candidate)
    if b is None or c is None:
        return Row(policy, metric, b, c, None, None, NA, _missing(b, c))
    change = relative_change(b.median, c.median)
    if min(b.n, c.n) < MIN_SAMPLES or min_attainable_p(b.n, c.n) >= alpha:
        return Row(policy, metric, b, c, change, None, FEW, "too few samples")
    p = mann_whitney(candidate, base).p
    if p >= alpha:
        return Row(policy, metric, b, c, change, p, SAME)
    if beyond(metric, b.median, c.median, max_regression):
        return Row(policy, metric, b, c, change, p, WORSE,
                   f"median beyond the allowed base + {max_regression * 100:g} % + "
                   f"{metric.floor:g}{_unit(metric)}, p = {_p(p)}", significant=True)
    if c.median < b.median:
        return Row(policy, metric, b, c, change, p, BETTER, significant=True)
    return Row(policy, metric, b, c, change, p, SAME, "significant, within the threshold",
               significant=True)


def _missing(b: Side | None, c: Side | None) -> str:
    return "no samples" if b is None and c is None else "no samples on one side"


def judge_recovered(policy: str, base: tuple[int, int], candidate: tuple[int, int], *,
                    alpha: float) -> Row:
    """recovered_fraction: Fisher's exact test on the counts; any significant drop is worse."""
    (rb, nb), (rc, nc) = base, candidate
    b = Side(nb, 100.0 * rb / nb, 0.0, 0.0, rb) if nb else None
    c = Side(nc, 100.0 * rc / nc, 0.0, 0.0, rc) if nc else None
    if b is None or c is None:
        return Row(policy, RECOVERED, b, c, None, None, NA, _missing(b, c))
    change = relative_change(b.median, c.median)
    if min(nb, nc) < MIN_SAMPLES or fisher_exact(nb, 0, 0, nc) >= alpha:
        return Row(policy, RECOVERED, b, c, change, None, FEW, "too few samples")
    p = fisher_exact(rb, nb - rb, rc, nc - rc)
    if p >= alpha:
        return Row(policy, RECOVERED, b, c, change, p, SAME)
    if c.median < b.median:
        return Row(policy, RECOVERED, b, c, change, p, WORSE,
                   f"fewer recoveries ({rc}/{nc} vs {rb}/{nb}), p = {_p(p)}", significant=True)
    return Row(policy, RECOVERED, b, c, change, p, BETTER, significant=True)


def compare_runs(base: Sequence[RunSamples], candidate: Sequence[RunSamples], *,
                 max_regression: float, alpha: float = DEFAULT_ALPHA,
                 by_kind: bool = False) -> Comparison:
    """Compare two sides of one or more runs each (see the module docstring); ``by_kind``
    tests each ranked metric once per fault kind instead of over all faults."""
    kinds: list[str | None] = list(fault_kinds([*base, *candidate])) if by_kind else [None]
    base_order = list(dict.fromkeys(p for r in base for p in r.order))
    cand_order = list(dict.fromkeys(p for r in candidate for p in r.order))
    policies = [p for p in base_order if p in cand_order]
    rows = []
    for policy in policies:
        for metric in METRICS:
            if metric is RECOVERED:
                rows.append(judge_recovered(policy, pooled_recovered(base, policy),
                                            pooled_recovered(candidate, policy), alpha=alpha))
                continue
            for kind in kinds:
                row = judge_ranked(policy, metric, pooled(base, policy, metric, kind),
                                   pooled(candidate, policy, metric, kind),
                                   max_regression=max_regression, alpha=alpha)
                rows.append(replace(row, kind=kind or ""))
    return Comparison(tuple(rows), tuple(policies),
                      tuple(p for p in base_order if p not in cand_order),
                      tuple(p for p in cand_order if p not in base_order),
                      max_regression, alpha, tuple(input_notes(base, candidate)))


def input_notes(base: Sequence[RunSamples], candidate: Sequence[RunSamples]) -> list[str]:
    """Warnings about the inputs: different profiles, runs whose own verdict is unknown,
    runs without a timeline.json."""
    notes = []
    profiles = sorted({r.profile for r in (*base, *candidate) if r.profile is not None})
    if len(profiles) > 1:
        notes.append(f"the runs come from different profiles ({', '.join(profiles)}): their "
                     "samples may differ by design, not by build")
    for r in (*base, *candidate):
        if r.verdict == "unknown":
            notes.append(f"{r.label}: its own verdict is unknown "
                         f"({r.unknown_reason or 'no reason given'})")
        if not r.timeline:
            notes.append(f"{r.label}: no timeline.json next to it, so no error-rate or "
                         "meta-query samples from this run")
    return notes


# ---------------------------------------------------------------- text

def _unit(metric: SampleMetric) -> str:
    return f" {metric.unit}" if metric.unit and metric.unit != "%" else (
        " %" if metric.unit == "%" else "")


def _p(p: float) -> str:
    return f"{p:.2g}"


def _value(metric: SampleMetric, v: float) -> str:
    if math.isinf(v):
        return "not recovered"
    return number(v, 4 if metric.unit == "ms" else 3)


def describe(metric: SampleMetric, s: Side | None) -> str:
    """``median ± half-IQR unit (n=…)``; recovered_fraction as ``fraction % (r/n)``."""
    if s is None:
        return "n/a"
    if s.recovered is not None:
        return f"{number(s.median, 3)} % ({s.recovered}/{s.n})"
    spread = "" if math.isinf(s.median) else (
        " ± ∞" if math.isinf(s.spread) else f" ± {number(s.spread, 2)}")
    unit = "" if math.isinf(s.median) else _unit(metric)
    return f"{_value(metric, s.median)}{spread}{unit} (n={s.n})"


def change_text(change: float | None) -> str:
    """A relative change as +12.3 % (or ±∞, n/a)."""
    if change is None:
        return "n/a"
    if math.isinf(change):
        return "+∞" if change > 0 else "−∞"
    return f"{change * 100:+.1f} %"


def test_text(row: Row) -> str:
    """benchstat's right-hand column: ``p=0.43 n=12+12`` or the reason it was not tested."""
    n = f"n={row.base.n if row.base else 0}+{row.candidate.n if row.candidate else 0}"
    if row.status == NA:
        return f"{row.reason} ({n})"
    if row.status == FEW:
        return f"too few samples ({n})"
    return f"p={_p(row.p)} {n}" if row.p is not None else n


def row_cells(row: Row) -> tuple[str, ...]:
    """policy, metric, base, candidate, change ("~" when not significant), test, mark."""
    change = change_text(row.change) if row.significant else NA if row.status == NA else SAME
    mark = {WORSE: "WORSE", BETTER: "better"}.get(row.status, "")
    return (row.policy, row.name, describe(row.metric, row.base),
            describe(row.metric, row.candidate), change, test_text(row), mark)


HEADER = ("policy", "metric", "base", "candidate", "change", "test", "")


def format_text(comparison: Comparison, base_labels: Sequence[str],
                candidate_labels: Sequence[str], merged: Sequence[str] = ()) -> str:
    """The side-by-side table printed on stdout; ``merged``: the lines of the merged
    histograms (:func:`.compare_merged.format_merged`), before the verdict."""
    lines = [f"base ({len(base_labels)} run{'s' * (len(base_labels) != 1)}): "
             f"{', '.join(base_labels)}",
             f"candidate ({len(candidate_labels)} run{'s' * (len(candidate_labels) != 1)}): "
             f"{', '.join(candidate_labels)}",
             f"regression = Mann-Whitney U (Fisher's exact for recovered_fraction), two-sided "
             f"p < {comparison.alpha:g}, and the median worse by more than "
             f"{comparison.max_regression * 100:g} % + floor; '~' = not significant", ""]
    table = [HEADER] + [row_cells(r) for r in comparison.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for label, names in (("only in base", comparison.only_base),
                         ("only in candidate", comparison.only_candidate)):
        if names:
            lines.append(f"{label} (not compared): {', '.join(names)}")
    lines += [f"note: {n}" for n in comparison.notes]
    lines += merged
    verdict = "PASS" if comparison.passed else f"FAIL ({len(comparison.regressions)} regressions)"
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines) + "\n"


def run_label(run: RunSamples) -> str:
    """The run's file and its own verdict, e.g. ``reports/ci-1/results.json [pass]``."""
    return f"{run.label} [{run.verdict}]"


def regression_lines(comparison: Comparison) -> list[str]:
    """One line per regression, naming the policy and the metric."""
    return [f"REGRESSION {r.policy} {r.name}: {describe(r.metric, r.base)} -> "
            f"{describe(r.metric, r.candidate)} ({change_text(r.change)}): {r.reason}"
            for r in comparison.regressions]


# ---------------------------------------------------------------- command

USAGE = ("pegbench compare BASE_DIR CANDIDATE_DIR [options]\n"
         "       pegbench compare BASE_DIR [BASE_DIR ...] --candidate CAND_DIR [CAND_DIR ...] "
         "[options]")
EPILOG = f"""\
Samples (pooled over each side's runs):
  ttr_first_ms, client_lag_ms   one per (fault, affected partition); not recovered = +inf
  error_rate_fault              one per injected fault: errors / ops in its fault phase
  meta_queries_per_s            one per injected fault: over its fault and recovery phases
  recovered_fraction            recovered / all (fault, partition) pairs (Fisher's exact test)
A metric regresses only if its difference is significant (two-sided, p < --alpha) AND the
candidate's median is worse than the base median by more than --max-regression plus a floor
(1 ms; 0.1 %-point; 0.1 /s); recovered_fraction regresses on any significant drop. Otherwise
the change reads "~". With fewer than {MIN_SAMPLES} samples a side, or too few for any p < alpha,
it reads "~" with "too few samples": give each side several runs.

exit codes: 0 no regression, 1 regression, 2 unreadable input or bad argument"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegbench compare", usage=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare runs of a base and a candidate build per policy; fail only on "
                    "a regression that is both significant and beyond the threshold.",
        epilog=EPILOG)
    parser.add_argument("runs", nargs="+", metavar="BASE_DIR",
                        help="base run folders (or their results.json); without --candidate, "
                             "exactly two: BASE_DIR CANDIDATE_DIR")
    parser.add_argument("--candidate", nargs="+", metavar="CAND_DIR", default=None,
                        help="candidate run folders; every positional folder is then a base run")
    parser.add_argument("--max-regression", default=DEFAULT_MAX_REGRESSION, metavar="AMOUNT",
                        help="allowed worsening of a median, e.g. 10%% or 0.1 "
                             "(default %(default)s)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, metavar="P",
                        help="significance level of the two-sided tests (default %(default)s)")
    parser.add_argument("--by-kind", action="store_true",
                        help="test TTR-first, client lag, error rate and meta queries/s once "
                             "per fault kind (kill, pause, …) instead of over all faults: more "
                             "sensitive to a change that hits one kind, fewer samples per test")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write the comparison as a self-contained HTML page")
    return parser


def split_sides(runs: Sequence[str], candidate: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(base, candidate) locations; ValueError when the sides are ambiguous."""
    if candidate:
        return list(runs), list(candidate)
    if len(runs) != 2:
        raise ValueError(f"expected BASE_DIR CANDIDATE_DIR, got {len(runs)} folder(s); with "
                         "several runs per side write BASE_DIR ... --candidate CAND_DIR ...")
    return [runs[0]], [runs[1]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 for --help
        return int(exc.code or 0)
    try:
        max_regression = parse_regression(args.max_regression)
        if not 0 < args.alpha < 1:
            raise ValueError(f"--alpha: expected a level between 0 and 1, got {args.alpha:g}")
        base_dirs, cand_dirs = split_sides(args.runs, args.candidate)
        base = [load_run_samples(d) for d in base_dirs]
        candidate = [load_run_samples(d) for d in cand_dirs]
        comparison = compare_runs(base, candidate, max_regression=max_regression,
                                  alpha=args.alpha, by_kind=args.by_kind)
        if not comparison.policies:
            raise RunInputError(candidate[0].label, "no policy in common with the base runs "
                                f"({', '.join(comparison.only_base) or 'none'})")
        if args.html:
            from .compare_page import write_compare_page
            write_compare_page(Path(args.html), comparison, base, candidate)
    except (RunInputError, ValueError) as exc:
        print(f"pegbench compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    merged = format_merged(merge_sides(base, candidate, comparison.policies),
                           skipped_notes(base, candidate))
    sys.stdout.write(format_text(comparison, [run_label(r) for r in base],
                                 [run_label(r) for r in candidate], merged))
    for line in regression_lines(comparison):
        print(line, file=sys.stderr)
    return EXIT_OK if comparison.passed else EXIT_VERDICT
