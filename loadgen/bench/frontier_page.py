"""The ``pegbench bench frontier --html`` page: lag against meta cost, one subplot per scenario.

x = meta queries/s from the fault to the end of the load (log scale; a cost below
:data:`MIN_X` is drawn at it), y = the client lag percentile the run was asked for, ms. One
trace per policy, its settings as points joined in sweep order, each labelled with its knob's
value (hover for the rest); the Pareto front (least
lag for at most that cost) as open rings on a dashed step line. Settings that never
recovered at that percentile have no y: the page lists them. Below: the dominance verdicts
and every point. Offline: plotly.js inlined once, the JSON document embedded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from ..report.html import badge, esc, figure_div, note, script_json, table, write_page
from ..report.page import CSS
from ..report.style import NEUTRAL, base_layout, policy_colours
from .frontier_analysis import Point, pareto_front

FIGURE_ID = "fig-frontier"
DATA_ID = "pegbench-frontier-data"
MIN_X = 0.05       # meta q/s: log axes cannot show 0
COLUMNS = 2


def _x(p: Point) -> float:
    return max(p.meta_queries_per_s, MIN_X)


def _hover(p: Point, lag: str) -> str:
    replicas = f"<br>replica {p.replica_queries_per_s:.2f} q/s" if p.replica_queries_per_s else ""
    return (f"{p.label}<br>meta {p.meta_queries_per_s:.2f} q/s{replicas}<br>lag {lag} "
            f"{p.lag_ms(lag):.0f} ms<br>failed {p.failed:g}")


def _knob(p: Point) -> str:
    """The setting's values alone (``repoll_ms=30`` -> ``30``), as a point's label."""
    return "" if p.setting == "default" else " ".join(
        part.partition("=")[2] for part in p.setting.split())


def frontier_figure(points: Sequence[Point], lag: str) -> go.Figure:
    """One subplot per scenario: a trace per policy, the Pareto front marked."""
    scenarios = list(dict.fromkeys(p.scenario for p in points))
    colours = policy_colours(p.policy for p in points)
    rows = math.ceil(len(scenarios) / COLUMNS)
    fig = make_subplots(rows=rows, cols=COLUMNS, subplot_titles=scenarios,
                        horizontal_spacing=0.08, vertical_spacing=min(0.3, 0.32 / rows))
    in_legend: set[str] = set()
    for i, scenario in enumerate(scenarios):
        cell = {"row": i // COLUMNS + 1, "col": i % COLUMNS + 1}
        mine = [p for p in points if p.scenario == scenario and not math.isinf(p.lag_ms(lag))]
        for policy in colours:
            shown = [p for p in mine if p.policy == policy]   # in sweep order
            if shown:
                fig.add_trace(go.Scatter(
                    x=[_x(p) for p in shown], y=[p.lag_ms(lag) for p in shown],
                    mode="lines+markers+text", name=policy, legendgroup=policy,
                    legendrank=list(colours).index(policy), showlegend=policy not in in_legend, text=[_knob(p) for p in shown],
                    textposition="top right", textfont={"size": 9, "color": colours[policy]},
                    marker={"color": colours[policy], "size": 8},
                    line={"color": colours[policy], "width": 1.5},
                    hovertext=[_hover(p, lag) for p in shown], hoverinfo="text"), **cell)
                in_legend.add(policy)
        front = pareto_front(mine, lag)
        fig.add_trace(go.Scatter(
            x=[_x(p) for p in front], y=[p.lag_ms(lag) for p in front], mode="lines+markers",
            name="Pareto front", legendgroup="front", legendrank=len(colours), showlegend=i == 0,
            line_shape="hv",
            marker={"symbol": "circle-open", "size": 16, "color": NEUTRAL, "line": {"width": 2}},
            line={"color": NEUTRAL, "dash": "dash", "width": 1},
            hovertext=[_hover(p, lag) for p in front], hoverinfo="text"), **cell)
        fig.update_xaxes(type="log", title_text="meta queries/s", **cell)
        fig.update_yaxes(title_text=f"client lag {lag} (ms)", rangemode="tozero", **cell)
    fig.update_layout(**base_layout(height=420 * rows))
    return fig


def _never(points: Sequence[Point], lag: str) -> str:
    missing = [f"{p.scenario}: {p.label}" for p in points if math.isinf(p.lag_ms(lag))]
    return note(f"Never recovered at {lag} (not drawn): {'; '.join(missing)}.") if missing else ""


def _rows(points: Sequence[Point]) -> list[list[Any]]:
    def ms(value: float | None) -> str:
        return "never" if value is None else f"{value:.0f}"

    return [[p.scenario, p.policy, p.setting, f"{p.meta_queries_per_s:.2f}", ms(p.lag_p50_ms),
             ms(p.lag_p99_ms), f"{p.failed:g}",
             "-" if p.writes_per_ack is None else f"{p.writes_per_ack:.2f}",
             f"{p.replica_queries_per_s:.2f}"] for p in points]


def render_frontier(points: Sequence[Point], lag: str, document: dict[str, Any]) -> str:
    """The whole page; ``document`` (the ``--json`` document) is embedded."""
    verdict_rows = [[esc(v["scenario"]), esc(v["client"]), badge(v["holds"]), esc(v["reason"])]
                    for v in document["dominance"]]
    return "\n".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>pegbench frontier</title><style>{CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body><header><h1>pegbench frontier</h1>",
        note(f"Client lag {lag} (ms) against meta queries/s, medians over {document['runs']} "
             f"run(s) per setting; meta queries/s below {MIN_X:g} are drawn at {MIN_X:g}. "
             "Lag: per writer, its first acknowledged write after the server side was ready "
             "again (see loadgen/bench/frontier_analysis.py)."),
        "</header>",
        f'<section id="sec-frontier"><div class="figure">'
        f"{figure_div(frontier_figure(points, lag), FIGURE_ID)}</div>{_never(points, lag)}</section>",
        '<section id="sec-dominance"><h2>Dominance</h2>',
        table(("scenario", "client", "verdict", "why"), verdict_rows, raw=True),
        "</section>",
        '<section id="sec-points"><h2>Points</h2>',
        table(("scenario", "policy", "setting", "meta q/s", "lag p50 ms", "lag p99 ms",
               "failed", "writes/ack", "replica q/s"), _rows(points)),
        "</section>",
        f'<script type="application/json" id="{DATA_ID}">{script_json(document)}</script>',
        "</body></html>\n"])


def write_frontier_page(path: Path, points: Sequence[Point], lag: str,
                        document: dict[str, Any]) -> Path:
    """Write the page atomically."""
    return write_page(path, render_frontier(points, lag, document))
