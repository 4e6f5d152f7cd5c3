"""The ``pegbench compare --html`` page: the comparison table (benchstat-style: "~" where
the difference is not significant, with p and the sample counts), a bar chart of the relative
change of each metric's median (colour per policy, as in the report; a red outline marks a
regression, a faded bar a change that is not significant), and every run's results.json
embedded as JSON. Self-contained and offline, plotly.js inlined once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .compare import FEW, NA, WORSE, Comparison, row_cells, run_label
from .compare_merged import HEADER as MERGED_HEADER
from .compare_merged import cells as merged_cells
from .compare_merged import merge_sides, skipped_notes
from .compare_samples import METRICS, RunSamples
from .html import badge, esc, figure_div, no_data, note, script_json, table, write_page
from .page import CSS
from .style import base_layout, policy_colours

FIGURE_ID = "fig-compare"
DATA_ID = "pegbench-compare-data"
INF_BAR = 10.0          # an infinite change is drawn as +1000 % and labelled ∞


def compare_figure(comparison: Comparison) -> go.Figure | None:
    """Relative change (%) of the median per metric, one bar group per metric, one colour
    per policy."""
    colours = policy_colours(comparison.policies)
    shown = [r for r in comparison.rows if r.change is not None]
    if not shown:
        return None
    fig = go.Figure()
    for policy in comparison.policies:
        mine = [r for r in shown if r.policy == policy]
        if not mine:
            continue
        y = [math.copysign(INF_BAR, r.change) * 100 if math.isinf(r.change) else r.change * 100
             for r in mine]
        fig.add_trace(go.Bar(
            x=[r.name for r in mine], y=y, name=policy, meta=policy,
            marker={"color": colours[policy],
                    "opacity": [1.0 if r.significant else 0.35 for r in mine],
                    "line": {"color": ["#c62828" if r.worse else "white" for r in mine],
                             "width": 2}},
            text=[("∞" if math.isinf(r.change) else f"{r.change * 100:+.1f} %")
                  + ("" if r.significant else " ~") for r in mine],
            textposition="outside"))
    limit = comparison.max_regression * 100
    fig.add_hline(y=limit, line={"dash": "dot", "color": "#c62828", "width": 1},
                  annotation_text=f"+{limit:g} % allowed", annotation_position="top left")
    fig.update_yaxes(title_text="candidate vs base, median (%)")
    fig.update_layout(**base_layout(barmode="group", height=440))
    return fig


def _gate(status: str) -> str:
    """FAIL for a regression, UNKNOWN for too few samples, nothing for n/a, else PASS."""
    if status == NA:
        return ""
    return badge(False) if status == WORSE else badge("unknown") if status == FEW else badge(True)


def render_compare(comparison: Comparison, base: Sequence[RunSamples],
                   candidate: Sequence[RunSamples]) -> str:
    """The whole page; the embedded JSON is ``{"base": [results…], "candidate": [results…]}``."""
    rows = [[*(esc(c) for c in row_cells(r)[:6]), _gate(r.status), esc(r.reason)]
            for r in comparison.rows]
    fig = compare_figure(comparison)
    embedded = {"base": [r.results.to_dict() for r in base],
                "candidate": [r.results.to_dict() for r in candidate]}
    labels = [(f"base ({len(base)})", base), (f"candidate ({len(candidate)})", candidate)]
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>pegbench compare</title><style>{CSS}</style>"]
    if fig is not None:
        parts.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    parts += [
        "</head><body><header><h1>pegbench compare</h1>",
        "".join(note(f"{name}: {', '.join(run_label(r) for r in runs)}") for name, runs in labels),
        note(f"A regression is a difference that is significant (two-sided p < "
             f"{comparison.alpha:g}: Mann–Whitney U; Fisher's exact test for "
             f"recovered_fraction) and a median worse by more than "
             f"{comparison.max_regression * 100:g} % plus the metric's floor. "
             "“~”: not significant."),
        note("Samples: " + "; ".join(f"{m.key} {m.sample}" for m in METRICS)),
        "</header>",
        (f'<section id="sec-verdict"><div class="verdict">Verdict {badge(comparison.passed)} '
         f"{len(comparison.regressions)} regressions</div>"),
        table(("policy", "metric", "base", "candidate", "change", "test", "gate", "why"), rows,
              cls="compare", raw=True),
        "".join(note(f"{label} (not compared): {', '.join(names)}") for label, names in
                (("only in base", comparison.only_base),
                 ("only in candidate", comparison.only_candidate)) if names),
        "".join(note(n) for n in comparison.notes),
        "</section>",
        '<section id="sec-merged"><h2>Merged histograms</h2>',
        note("Each side's runs' histograms added up: TTR-first and client-lag percentiles of "
             "the recovered samples (censored and negative lags counted beside), put response "
             "p99 during faults. Figures, not part of the verdict."),
        table(MERGED_HEADER, [merged_cells(m) for m in
                              merge_sides(base, candidate, comparison.policies)], cls="compare"),
        "".join(note(n) for n in skipped_notes(base, candidate)),
        "</section>",
        '<section id="sec-changes"><h2>Relative change of the medians</h2>',
        f'<div class="figure">{figure_div(fig, FIGURE_ID)}</div>' if fig is not None
        else no_data("No metric has a median on both sides."),
        "</section>",
        (f'<script type="application/json" id="{DATA_ID}">{script_json(embedded)}</script>'),
        "</body></html>\n"]
    return "\n".join(parts)


def write_compare_page(path: Path, comparison: Comparison, base: Sequence[RunSamples],
                       candidate: Sequence[RunSamples]) -> Path:
    """Write the page atomically; RunInputError if it cannot be written."""
    return write_page(path, render_compare(comparison, base, candidate))
