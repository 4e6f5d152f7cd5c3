"""Errors by kind and phase per policy: the numbers and their figure.

results.json gives exact error counts per phase and per kind, but not per (kind, phase).
That split comes from timeline.json's per-second errors by kind, each second given to the
global phase holding its middle (so it is exact to 1 s; the phase totals in the table are
exact to 10 ms). Bars: colour per policy, hatching per error kind, stacked per phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ..metrics.events import PHASES, PhaseLookup, phases_from_dicts
from .style import base_layout

PATTERNS = ("", "/", "x", ".", "\\", "+", "-", "|")


def errors_by_kind_phase(timeline: Mapping[str, Any] | None,
                         order: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
    """policy -> error kind -> phase -> failed ops (1 s resolution, see the module docstring)."""
    if not timeline:
        return {}
    lookup = PhaseLookup(phases_from_dicts(timeline.get("phases") or []))
    out: dict[str, dict[str, dict[str, int]]] = {}
    for policy in order:
        per_second = (timeline.get("policies", {}).get(policy) or {}).get("per_second") or {}
        seconds = per_second.get("t") or []
        for kind, counts in sorted((per_second.get("errors") or {}).items()):
            by_phase = {name: 0 for name in PHASES}
            for t, count in zip(seconds, counts):
                if count:
                    by_phase[lookup.phase_of(t + 0.5)] += count
            if any(by_phase.values()):
                out.setdefault(policy, {})[kind] = by_phase
    return out


def errors_figure(split: Mapping[str, Mapping[str, Mapping[str, int]]], order: Sequence[str],
                  colours: Mapping[str, str]) -> go.Figure | None:
    """Stacked bars per phase and policy, or None when no policy had an error."""
    if not split:
        return None
    kinds = sorted({k for per_kind in split.values() for k in per_kind})
    policies = [p for p in order if p in split]
    fig = go.Figure()
    for policy in policies:
        for kind in kinds:
            by_phase = split[policy].get(kind)
            if not by_phase:
                continue
            fig.add_trace(go.Bar(
                x=[list(PHASES), [policy] * len(PHASES)], y=[by_phase[p] for p in PHASES],
                name=f"{policy} {kind}", meta=policy, legendgroup=policy,
                marker={"color": colours[policy],
                        "pattern": {"shape": PATTERNS[kinds.index(kind) % len(PATTERNS)]},
                        "line": {"color": "white", "width": 0.5}},
                hovertemplate=f"{policy} {kind}: %{{y}} errors<extra></extra>"))
    fig.update_yaxes(title_text="failed ops")
    fig.update_layout(**base_layout(barmode="stack", height=420))
    return fig
