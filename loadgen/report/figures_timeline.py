"""The timeline figure: per second and per policy, throughput, p99 response time, errors by
kind and meta queries, on one shared time axis, with every fault window shaded and labelled
and every server failover instant marked.

Time is seconds since the run's ``t_start`` (monotonic); per-second values are drawn as steps
over the second they belong to (ops by intended start, meta queries by start).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..metrics.results import Results
from .style import FAILOVER_LINE, FAULT_FILL, RECOVERY_FILL, base_layout, dash_for
from .views import injected_faults

ROWS = ("throughput (ops/s)", "p99 response time (ms)", "errors/s by kind", "meta queries/s")
#: Beyond this many distinct failover instants (soak runs), only their markers are drawn:
#: thousands of shapes make the page slow to draw.
MAX_FAILOVER_LINES = 60


def _line(x: Sequence[float], y: Sequence[Any], *, policy: str, colour: str, name: str,
          dash: str = "solid", showlegend: bool = True) -> go.Scatter:
    return go.Scatter(x=list(x), y=list(y), mode="lines", name=name, meta=policy,
                      legendgroup=policy, showlegend=showlegend, connectgaps=False,
                      line={"color": colour, "dash": dash, "width": 1.6, "shape": "hv"})


def failover_instants(results: Results) -> list[tuple[float, str]]:
    """(monotonic instant, hover text) of each distinct server failover (to the ms)."""
    seen: dict[float, list[str]] = {}
    for fault in injected_faults(results):
        for pidx, ms in sorted((fault.server_failover_ms or {}).items()):
            if isinstance(ms, (int, float)):
                t = round(float(fault.t_inject) + ms / 1000.0, 3)
                seen.setdefault(t, []).append(f"fault {fault.id} partition {pidx}: {ms:g} ms")
    return sorted((t, "<br>".join(texts)) for t, texts in seen.items())


def _every_row(shape: dict[str, Any]) -> list[dict[str, Any]]:
    """One copy of ``shape`` per subplot, spanning its height. (Built by hand: plotly's
    add_vrect(row="all") rescans the figure per call, seconds for a few dozen faults.)"""
    out = []
    for row in range(1, len(ROWS) + 1):
        suffix = "" if row == 1 else str(row)
        out.append({**shape, "xref": f"x{suffix}", "yref": f"y{suffix} domain",
                    "y0": 0, "y1": 1})
    return out


def _shapes(results: Results, timeline: Mapping[str, Any], t0: float, t_end: float,
            instants: Sequence[tuple[float, str]]) -> list[dict[str, Any]]:
    """Recovery phases, fault windows and (up to MAX_FAILOVER_LINES) failover instants."""
    shapes = []
    for phase in timeline.get("phases") or []:
        if phase.get("name") == "recovery":
            end = t_end if phase.get("end") is None else phase["end"]
            shapes += _every_row({"type": "rect", "x0": phase["start"] - t0, "x1": end - t0,
                                  "fillcolor": RECOVERY_FILL, "line": {"width": 0},
                                  "layer": "below"})
    for fault in injected_faults(results):
        start = float(fault.t_inject) - t0
        end = (t_end if fault.t_heal is None else float(fault.t_heal)) - t0
        shapes += _every_row({"type": "rect", "x0": start, "x1": max(end, start + 0.05),
                              "fillcolor": FAULT_FILL, "line": {"width": 0}, "layer": "below"})
    if len(instants) <= MAX_FAILOVER_LINES:
        for t, _ in instants:
            shapes += _every_row({"type": "line", "x0": t - t0, "x1": t - t0,
                                  "line": {"color": FAILOVER_LINE, "width": 1, "dash": "dot"}})
    return shapes


def _labels(results: Results, t0: float) -> list[dict[str, Any]]:
    """Each fault's label, above the top row at its start."""
    return [{"x": float(f.t_inject) - t0, "y": 1.0, "xref": "x", "yref": "paper",
             "yanchor": "bottom", "xanchor": "left", "showarrow": False, "font": {"size": 11},
             "text": f"{f.id}: {f.kind} {f.node}"}
            for f in injected_faults(results)]


def timeline_figure(results: Results, timeline: Mapping[str, Any] | None,
                    order: Sequence[str], colours: Mapping[str, str]) -> go.Figure | None:
    """The figure, or None when the run has no per-second data."""
    if not timeline:
        return None
    series = {p: (timeline.get("policies", {}).get(p) or {}).get("per_second") or {}
              for p in order}
    if not any(s.get("t") for s in series.values()):
        return None
    run = results.run
    t0 = float(timeline.get("t_start", 0.0) if run.t_start is None else run.t_start)
    t_end = float(timeline.get("t_end", t0) if run.t_end is None else run.t_end)
    fig = make_subplots(rows=len(ROWS), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=ROWS)
    kinds = sorted({k for s in series.values() for k in (s.get("errors") or {})})
    for policy in order:
        s, colour = series[policy], colours[policy]
        if not s.get("t"):
            continue
        x = [t - t0 for t in s["t"]]
        fig.add_trace(_line(x, s.get("ops", []), policy=policy, colour=colour, name=policy), 1, 1)
        fig.add_trace(_line(x, s.get("p99_response_ms", []), policy=policy, colour=colour,
                            name=f"{policy} p99", showlegend=False), 2, 1)
        for kind, counts in sorted((s.get("errors") or {}).items()):
            fig.add_trace(_line(x, counts, policy=policy, colour=colour, name=f"{policy} {kind}",
                                dash=dash_for(kind, kinds)), 3, 1)
        fig.add_trace(_line(x, s.get("meta_queries", []), policy=policy, colour=colour,
                            name=f"{policy} meta", showlegend=False), 4, 1)
    instants = failover_instants(results)
    if instants:
        fig.add_trace(go.Scatter(
            x=[t - t0 for t, _ in instants], y=[0] * len(instants), mode="markers",
            name="server failover", meta="server-failover", hovertext=[h for _, h in instants],
            hoverinfo="text+x", marker={"symbol": "triangle-up", "size": 9,
                                        "color": FAILOVER_LINE}), 1, 1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="seconds since run start", row=len(ROWS), col=1)
    fig.update_layout(**base_layout(height=950, legend={"orientation": "v"},
                                    hovermode="x unified"))
    fig.update_layout(shapes=_shapes(results, timeline, t0, t_end, instants),
                      annotations=[*fig.layout.annotations, *_labels(results, t0)])
    return fig
