"""TTR figures: the per-fault dot plot and the TTR distribution (CDF) per policy.

Dot plot: one row per (fault event, affected partition); per policy, TTR-first (filled
circle) and TTR-stable (open diamond) beside the server failover time (black bar). A sample
not recovered is drawn at the time observed (its horizon) as an arrow "▶" and said so on hover.
A row whose new primary was itself faulted shortly before (results.json's
``faults[].new_primary``) carries the flag in its label and in every hover of that row.

CDF: over every (event, partition) sample of a policy; a censored sample counts in the
denominator but never steps the curve, so a policy that did not always recover stays below 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .stats import cdf_points
from .style import NEUTRAL, base_layout
from .views import TTRSample, new_primary_flag

ROW_SPREAD = 0.6       # policies of one row are spread over this much of the y unit


def row_label(s: TTRSample) -> str:
    """The dot plot's row name of a sample, with the new-primary flag on a second line."""
    flag = new_primary_flag(s)
    label = f"{s.event_id} {s.kind} {s.node} · p{s.partition}"
    return f"{label}<br>⚠ {flag}" if flag else label


def _hover_flags(samples: Sequence[TTRSample]) -> list[str]:
    """Per sample, the flag as a hover line ("" when not flagged)."""
    return [f"<br>⚠ {flag}" if (flag := new_primary_flag(s)) else "" for s in samples]


def fault_detail_figure(samples: Sequence[TTRSample], order: Sequence[str],
                        colours: Mapping[str, str]) -> go.Figure | None:
    """The per-fault dot plot, or None without samples."""
    if not samples:
        return None
    rows = list(dict.fromkeys((s.event_id, s.partition) for s in samples))
    index = {key: i for i, key in enumerate(rows)}
    labels = {(s.event_id, s.partition): row_label(s) for s in samples}
    policies = [p for p in order if any(s.policy == p for s in samples)]
    step = ROW_SPREAD / max(len(policies), 1)
    fig = go.Figure()
    first_of_row = {}
    for s in samples:
        first_of_row.setdefault((s.event_id, s.partition), s)
    fx = [(s.server_failover_ms, index[key], flag) for (key, s), flag in
          zip(first_of_row.items(), _hover_flags(list(first_of_row.values())))
          if s.server_failover_ms is not None]
    fig.add_trace(go.Scatter(
        x=[ms for ms, _, _ in fx], y=[i for _, i, _ in fx], text=[f for _, _, f in fx],
        mode="markers", name="server failover", meta="server-failover",
        marker={"symbol": "line-ns-open", "size": 22, "color": NEUTRAL, "line": {"width": 2}},
        hovertemplate="server failover %{x:.1f} ms%{text}<extra></extra>"))
    for j, policy in enumerate(policies):
        offset = (j - (len(policies) - 1) / 2) * step
        mine = [s for s in samples if s.policy == policy]
        colour = colours[policy]
        for label, symbol, pick in (
                ("TTR-first", "circle", lambda s: (s.first_ms, s.recovered)),
                ("TTR-stable", "diamond-open", lambda s: (s.stable_ms, s.stable_recovered)),
        ):
            done = [(pick(s)[0], index[(s.event_id, s.partition)] + offset, flag)
                    for s, flag in zip(mine, _hover_flags(mine)) if pick(s)[1]]
            fig.add_trace(go.Scatter(
                x=[x for x, _, _ in done], y=[y for _, y, _ in done],
                text=[f for _, _, f in done], mode="markers",
                name=f"{policy} {label}", meta=policy, legendgroup=policy,
                marker={"symbol": symbol, "size": 9, "color": colour},
                hovertemplate=f"{policy} {label} %{{x:.1f}} ms%{{text}}<extra></extra>"))
        censored = [(s.first_ms, index[(s.event_id, s.partition)] + offset, flag)
                    for s, flag in zip(mine, _hover_flags(mine)) if not s.recovered]
        if censored:
            fig.add_trace(go.Scatter(
                x=[x for x, _, _ in censored], y=[y for _, y, _ in censored],
                text=[f for _, _, f in censored], mode="markers",
                name=f"{policy} not recovered", meta=policy, legendgroup=policy,
                marker={"symbol": "triangle-right", "size": 11, "color": colour},
                hovertemplate=(f"{policy}: not recovered within %{{x:.0f}} ms "
                               "(censored)%{text}<extra></extra>")))
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=[labels[k] for k in rows],
                     autorange="reversed", zeroline=False)
    fig.update_xaxes(type="log", title_text="ms after t_inject (log)")
    fig.update_layout(**base_layout(height=max(260, 70 + 38 * len(rows)),
                                    title={"text": "Per fault: TTR vs server failover"}))
    return fig


def ttr_cdf_figure(samples: Sequence[TTRSample], order: Sequence[str],
                   colours: Mapping[str, str]) -> go.Figure | None:
    """TTR-first and TTR-stable CDFs per policy, or None without samples."""
    if not samples:
        return None
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("TTR-first", "TTR-stable"))
    right = max(s.first_ms for s in samples) * 1.05
    right = max(right, max(s.stable_ms for s in samples) * 1.05)
    for policy in order:
        mine = [s for s in samples if s.policy == policy]
        if not mine:
            continue
        for col, values in ((1, [s.first_ms if s.recovered else math.inf for s in mine]),
                            (2, [s.stable_ms if s.stable_recovered else math.inf for s in mine])):
            xs, ys, censored = cdf_points(values)
            xs.append(right)            # carry the last level on: below 1 if any censored
            ys.append(ys[-1])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", meta=policy, legendgroup=policy,
                name=f"{policy}: {censored} of {len(values)} not recovered" if censored
                else f"{policy}: all {len(values)} recovered",
                showlegend=True, line={"color": colours[policy], "shape": "hv", "width": 2}),
                1, col)
    fig.update_yaxes(range=[0, 1.05], title_text="fraction of (fault, partition) samples",
                     row=1, col=1)
    fig.update_xaxes(title_text="ms after t_inject")
    fig.update_layout(**base_layout(height=420))
    return fig
