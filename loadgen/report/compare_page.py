"""The ``pegbench compare --html`` page: the comparison table, a bar chart of the relative
changes of the gated metrics (colour per policy, as in the report), and both runs'
results.json embedded as JSON. Self-contained and offline, plotly.js inlined once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .compare import Comparison, with_unit
from .html import badge, esc, figure_div, no_data, note, script_json, table, write_page
from .page import CSS
from .style import base_layout, policy_colours

FIGURE_ID = "fig-compare"
DATA_ID = "pegbench-compare-data"
INF_BAR = 10.0          # an infinite change is drawn as +1000 % and labelled ∞


def compare_figure(comparison: Comparison) -> go.Figure | None:
    """Relative change (%) per gated metric, one bar group per metric, one colour per policy."""
    colours = policy_colours(comparison.policies)
    gated = [r for r in comparison.rows if r.gated and r.change is not None]
    if not gated:
        return None
    fig = go.Figure()
    for policy in comparison.policies:
        mine = [r for r in gated if r.policy == policy]
        if not mine:
            continue
        y = [math.copysign(INF_BAR, r.change) * 100 if math.isinf(r.change) else r.change * 100
             for r in mine]
        fig.add_trace(go.Bar(
            x=[r.metric.key for r in mine], y=y, name=policy, meta=policy,
            marker={"color": colours[policy],
                    "line": {"color": ["#c62828" if r.worse else "white" for r in mine],
                             "width": 2}},
            text=["∞" if math.isinf(r.change) else f"{r.change * 100:+.1f} %" for r in mine],
            textposition="outside"))
    limit = comparison.max_regression * 100
    fig.add_hline(y=limit, line={"dash": "dot", "color": "#c62828", "width": 1},
                  annotation_text=f"+{limit:g} % allowed", annotation_position="top left")
    fig.update_yaxes(title_text="candidate vs base (%)")
    fig.update_layout(**base_layout(barmode="group", height=440))
    return fig


def render_compare(comparison: Comparison, base: Mapping[str, Any], candidate: Mapping[str, Any],
                   base_label: str, candidate_label: str) -> str:
    """The whole page."""
    rows = [[esc(r.policy), esc(r.metric.key), esc(with_unit(r.metric, r.base)),
             esc(with_unit(r.metric, r.candidate)),
             esc("n/a" if r.change is None else "∞" if math.isinf(r.change)
                 else f"{r.change * 100:+.1f} %"),
             badge(False) if r.worse else (badge(True) if r.gated else ""), esc(r.reason)]
            for r in comparison.rows]
    fig = compare_figure(comparison)
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>pegbench compare</title><style>{CSS}</style>"]
    if fig is not None:
        parts.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    parts += [
        "</head><body><header><h1>pegbench compare</h1>",
        note(f"base: {base_label} · candidate: {candidate_label} · max regression "
             f"{comparison.max_regression * 100:g} %"), "</header>",
        (f'<section id="sec-verdict"><div class="verdict">Verdict {badge(comparison.passed)} '
         f"{len(comparison.regressions)} regressions</div>"),
        table(("policy", "metric", "base", "candidate", "change", "gate", "why"), rows,
              cls="compare", raw=True),
        "".join(note(f"{label} (not compared): {', '.join(names)}") for label, names in
                (("only in base", comparison.only_base),
                 ("only in candidate", comparison.only_candidate)) if names),
        "</section>",
        '<section id="sec-changes"><h2>Relative change of the gated metrics</h2>',
        f'<div class="figure">{figure_div(fig, FIGURE_ID)}</div>' if fig is not None
        else no_data("No gated metric has a value in both runs."),
        "</section>",
        (f'<script type="application/json" id="{DATA_ID}">'
         f"{script_json({'base': base, 'candidate': candidate})}</script>"),
        "</body></html>\n"]
    return "\n".join(parts)


def write_compare_page(path: Path, comparison: Comparison, base: Mapping[str, Any],
                       candidate: Mapping[str, Any], base_label: str, candidate_label: str) -> Path:
    """Write the page atomically; RunInputError if it cannot be written."""
    return write_page(path, render_compare(comparison, base, candidate, base_label,
                                           candidate_label))
