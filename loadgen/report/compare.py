"""``pegbench compare BASE CANDIDATE [--max-regression 10%] [--html FILE]``: two runs (e.g.
two client builds) side by side, per policy, with a verdict.

BASE and CANDIDATE are run folders (or their ``results.json``). Policies present in both
are compared; the others are listed. Every summary metric is shown with its relative
change ``(candidate − base) / |base|``; these gate the verdict (r = ``--max-regression``):

==============================  ==============================================  ============
metric (policies.<name>.…)      the candidate is worse when                     floor
==============================  ==============================================  ============
ttr_first_ms.p50, .p99          candidate > base + |base|·r + floor             1 ms
client_lag_ms.p99               candidate > base + |base|·r + floor             1 ms
error_rate_by_phase.fault       candidate > base + |base|·r + floor             0.1 % point
meta_queries_per_s              candidate > base + |base|·r + floor             0.1 /s
recovered_fraction              candidate < base (any drop: a recovery lost)    —
==============================  ==============================================  ============

The floor keeps a metric near zero from failing on noise (0 → 0.05 % errors is not a
regression of +∞ %). A TTR percentile that landed on a not-recovered sample is +∞: a
finite base against a +∞ candidate is worse, +∞ against +∞ is not. A metric missing or null
on either side (e.g. a run without faults) is "n/a" and never worse.

Exit codes: 0 no regression, 1 at least one (each named on stderr), 2 unreadable input
(naming the file and what is wrong), runs with no policy in common, a bad argument, or an
unwritable --html file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .html import number
from .run_dir import RunInputError, read_results, results_path
from .summary import (ERROR_RATE_FAULT, LAG_P99, META_QPS, RECOVERED, SUMMARY_METRICS, TTR_P50,
                      TTR_P99, Metric, metric_value)
from .tables import format_metric
from .views import policy_order

EXIT_OK, EXIT_WORSE, EXIT_INPUT = 0, 1, 2
DEFAULT_MAX_REGRESSION = "10%"
#: metric -> absolute floor (display units) added to the allowed regression
GATES: dict[str, float] = {TTR_P50.key: 1.0, TTR_P99.key: 1.0, LAG_P99.key: 1.0,
                           ERROR_RATE_FAULT.key: 0.1, META_QPS.key: 0.1, RECOVERED.key: 0.0}


@dataclass(frozen=True)
class Row:
    """One metric of one policy in both runs (display units)."""

    policy: str
    metric: Metric
    base: float | None
    candidate: float | None
    change: float | None          # relative; None when base is 0 / unknown / infinite
    gated: bool
    worse: bool
    reason: str = ""


@dataclass(frozen=True)
class Comparison:
    """Every row, the policies compared and those found in one run only."""

    rows: tuple[Row, ...]
    policies: tuple[str, ...]
    only_base: tuple[str, ...]
    only_candidate: tuple[str, ...]
    max_regression: float

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


def judge(metric: Metric, base: float | None, candidate: float | None,
          max_regression: float) -> tuple[bool, str]:
    """(worse, why) for one gated metric (see the module docstring)."""
    if base is None or candidate is None:
        return False, "n/a"
    if metric.key == RECOVERED.key:
        worse = candidate < base - 1e-9
        return worse, (f"lower than the base ({number(candidate, 4)} % < {number(base, 4)} %)"
                       if worse else "")
    if math.isinf(base):
        return False, ""
    allowed = base + abs(base) * max_regression + GATES[metric.key]
    if candidate > allowed:
        unit = f" {metric.unit}" if metric.unit else ""
        return True, (f"above the allowed {number(allowed, 4)}{unit} (base + "
                      f"{max_regression * 100:g} % + {GATES[metric.key]:g}{unit})")
    return False, ""


def compare_results(base: Mapping[str, Any], candidate: Mapping[str, Any], *,
                    max_regression: float) -> Comparison:
    """Compare two results.json documents (see the module docstring)."""
    base_order, cand_order = policy_order(base), policy_order(candidate)
    policies = [p for p in base_order if p in cand_order]
    rows = []
    for policy in policies:
        b_block, c_block = base["policies"][policy], candidate["policies"][policy]
        for metric in SUMMARY_METRICS:
            b, c = metric_value(b_block, metric), metric_value(c_block, metric)
            gated = metric.key in GATES
            worse, reason = judge(metric, b, c, max_regression) if gated else (False, "")
            rows.append(Row(policy, metric, b, c, relative_change(b, c), gated, worse, reason))
    return Comparison(tuple(rows), tuple(policies),
                      tuple(p for p in base_order if p not in cand_order),
                      tuple(p for p in cand_order if p not in base_order), max_regression)


def with_unit(metric: Metric, v: float | None) -> str:
    """A value as shown by compare: formatted as in the report, with its unit."""
    if v is None:
        return "n/a"
    text = format_metric(metric, v)
    return f"{text} {metric.unit}" if metric.unit not in ("", "%") and math.isfinite(v) else text


def _change(v: float | None) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "+∞" if v > 0 else "−∞"
    return f"{v * 100:+.1f} %"


def format_text(comparison: Comparison, base_label: str, candidate_label: str) -> str:
    """The side-by-side table printed on stdout."""
    lines = [f"base: {base_label}", f"candidate: {candidate_label}",
             f"max regression: {comparison.max_regression * 100:g} %", ""]
    header = ("policy", "metric", "base", "candidate", "change", "")
    table = [header] + [(r.policy, r.metric.key, with_unit(r.metric, r.base),
                         with_unit(r.metric, r.candidate), _change(r.change),
                         "WORSE" if r.worse else ("gated" if r.gated else ""))
                        for r in comparison.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for label, names in (("only in base", comparison.only_base),
                         ("only in candidate", comparison.only_candidate)):
        if names:
            lines.append(f"{label} (not compared): {', '.join(names)}")
    verdict = "PASS" if comparison.passed else f"FAIL ({len(comparison.regressions)} regressions)"
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines) + "\n"


def regression_lines(comparison: Comparison) -> list[str]:
    """One line per regression, naming the policy and the metric."""
    return [f"REGRESSION {r.policy} {r.metric.key}: {with_unit(r.metric, r.base)} -> "
            f"{with_unit(r.metric, r.candidate)} ({_change(r.change)}): {r.reason}"
            for r in comparison.regressions]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pegbench compare",
        description="Compare two runs per policy and fail when the candidate regressed.",
        epilog="exit codes: 0 no regression, 1 regression, 2 unreadable input or bad argument")
    parser.add_argument("base", metavar="BASE_DIR", help="the reference run folder (or results.json)")
    parser.add_argument("candidate", metavar="CANDIDATE_DIR", help="the run folder to judge")
    parser.add_argument("--max-regression", default=DEFAULT_MAX_REGRESSION, metavar="AMOUNT",
                        help="allowed worsening, e.g. 10%% or 0.1 (default %(default)s)")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write the comparison as a self-contained HTML page")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 for --help
        return int(exc.code or 0)
    try:
        max_regression = parse_regression(args.max_regression)
        base_file, cand_file = results_path(args.base), results_path(args.candidate)
        base, candidate = read_results(base_file), read_results(cand_file)
        comparison = compare_results(base, candidate, max_regression=max_regression)
        if not comparison.policies:
            raise RunInputError(cand_file, "no policy in common with the base run "
                                           f"({', '.join(comparison.only_base) or 'none'})")
        if args.html:
            from .compare_page import write_compare_page
            write_compare_page(Path(args.html), comparison, base, candidate,
                               str(base_file), str(cand_file))
    except (RunInputError, ValueError) as exc:
        print(f"pegbench compare: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    sys.stdout.write(format_text(comparison, str(base_file), str(cand_file)))
    for line in regression_lines(comparison):
        print(line, file=sys.stderr)
    return EXIT_OK if comparison.passed else EXIT_WORSE

