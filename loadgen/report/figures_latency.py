"""The latency percentile distribution figure, in HdrHistogram's convention: x = 1/(1−p)
on a log axis labelled 90 %, 99 %, 99.9 %, …; service time and response time side by side;
colour per policy, dash per op."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .latency import FROM_SUMMARY, LatencyCurve
from .style import base_layout, dash_for

OP_ORDER = ("put", "multi_put", "get")
#: 1/(1-p) at the labelled percentiles
TICKS = ((1.0, "0 %"), (10.0, "90 %"), (100.0, "99 %"), (1e3, "99.9 %"), (1e4, "99.99 %"),
         (1e5, "99.999 %"), (1e6, "99.9999 %"))
KINDS = ("service", "response")
MIN_RIGHT = 1e4         # the x axis reaches at least 99.99 %


def inverse_tail(percentile: float) -> float:
    """1/(1−p) for a percentile given in 0–100 (below 100)."""
    return 1.0 / (1.0 - percentile / 100.0)


def _percentile_axes(fig: go.Figure, curves: Sequence[LatencyCurve]) -> go.Figure:
    """Log axes in HdrHistogram's convention: x up to 99.99 % at least (so runs read alike),
    further when the data goes further; y in ms."""
    right = max([MIN_RIGHT] + [inverse_tail(p) for c in curves for p in c.percentiles])
    ticks = [t for t in TICKS if t[0] <= right * 1.001]
    fig.update_xaxes(type="log", tickvals=[t for t, _ in ticks], ticktext=[s for _, s in ticks],
                     range=[0, math.log10(right) + 0.05], title_text="percentile")
    fig.update_yaxes(type="log", title_text="ms (log)", row=1, col=1)
    fig.update_layout(**base_layout(height=460))
    return fig


def latency_figure(curves: Sequence[LatencyCurve], order: Sequence[str],
                   colours: Mapping[str, str]) -> go.Figure | None:
    """The figure, or None without curves."""
    curves = [c for c in curves if c.percentiles]
    if not curves:
        return None
    ops = sorted({c.op for c in curves},
                 key=lambda o: (OP_ORDER.index(o) if o in OP_ORDER else len(OP_ORDER), o))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=("service time (from hand-off to the client)",
                                        "response time (from the intended start)"))
    rank = {p: i for i, p in enumerate(order)}
    for c in sorted(curves, key=lambda c: (rank.get(c.policy, len(rank)), ops.index(c.op))):
        col = KINDS.index(c.kind) + 1
        fig.add_trace(go.Scatter(
            x=[inverse_tail(p) for p in c.percentiles], y=list(c.values_ms),
            # summary points, or a distribution of one or two distinct values: show the dots
            mode="lines+markers" if c.source == FROM_SUMMARY or len(c.percentiles) <= 2
            else "lines",
            name=f"{c.policy} {c.op}", meta=c.policy, legendgroup=f"{c.policy} {c.op}",
            showlegend=col == 1,
            customdata=list(c.percentiles),
            hovertemplate=(f"{c.policy} {c.op} {c.kind}: p%{{customdata:.4f}} = %{{y:.3f}} ms"
                           f"<br>max {c.max_ms:.3f} ms, {c.count} ops<extra></extra>"),
            line={"color": colours[c.policy], "dash": dash_for(c.op, ops), "width": 1.8}),
            1, col)
    return _percentile_axes(fig, curves)


#: Phases in reading order, each with its dash: steady solid, faults dashed, recovery dotted.
PHASE_DASHES = (("steady", "solid"), ("fault", "dash"), ("recovery", "dot"))


def phase_latency_figure(curves: Sequence[LatencyCurve], order: Sequence[str],
                         colours: Mapping[str, str]) -> go.Figure | None:
    """Response time per phase: one panel per op, colour per policy, dash per phase (what a
    write took while a primary was down, next to steady state); None without curves."""
    curves = [c for c in curves if c.percentiles and c.phase]
    if not curves:
        return None
    ops = sorted({c.op for c in curves},
                 key=lambda o: (OP_ORDER.index(o) if o in OP_ORDER else len(OP_ORDER), o))
    dashes = dict(PHASE_DASHES)
    fig = make_subplots(rows=1, cols=len(ops), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"{op} response time" for op in ops])
    rank = {p: i for i, p in enumerate(order)}
    phase_rank = {name: i for i, (name, _) in enumerate(PHASE_DASHES)}
    for c in sorted(curves, key=lambda c: (rank.get(c.policy, len(rank)),
                                           phase_rank.get(c.phase, len(phase_rank)))):
        col = ops.index(c.op) + 1
        fig.add_trace(go.Scatter(
            x=[inverse_tail(p) for p in c.percentiles], y=list(c.values_ms),
            mode="lines+markers" if len(c.percentiles) <= 2 else "lines",
            name=f"{c.policy} {c.phase}", meta=c.policy, legendgroup=f"{c.policy} {c.phase}",
            showlegend=col == 1, customdata=list(c.percentiles),
            hovertemplate=(f"{c.policy} {c.op}, {c.phase}: p%{{customdata:.4f}} = %{{y:.3f}} ms"
                           f"<br>max {c.max_ms:.3f} ms, {c.count} ops<extra></extra>"),
            line={"color": colours[c.policy], "dash": dashes.get(c.phase, "solid"),
                  "width": 1.8}),
            1, col)
    return _percentile_axes(fig, curves)
