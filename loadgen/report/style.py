"""One look for every figure: the policy palette, line dashes, the plotly template.

Colours are per policy and the same in every figure of a page (and of a compare page):
:func:`policy_colours` is the one mapping, built once per page and passed to each figure.
Built-in policies keep a fixed colour across runs (old = warm, new = green); others take
the next free colour of a qualitative palette, in policy order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go

#: Fixed colours of the built-in policies (Okabe–Ito, readable by colour-blind readers).
BUILTIN_COLOURS = {
    "legacy": "#D55E00",              # vermillion: the old client
    "refresh-on-timeout": "#E69F00",  # orange
    "refresh-on-reset": "#CC79A7",    # purple-pink
    "java": "#0072B2",                # blue
    "pypegasus": "#56B4E9",           # sky blue
    "failover": "#009E73",            # green: the new logic
}
#: For any other policy, in order; colours already taken by a built-in present are skipped.
EXTRA_COLOURS = ("#56B4E9", "#F0E442", "#000000", "#7F7F7F", "#8C564B", "#17BECF",
                 "#BCBD22", "#9467BD", "#1F77B4", "#FF7F0E")
#: Error kinds and ops are told apart by dash inside one policy's colour.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
FAULT_FILL = "rgba(120, 120, 120, 0.18)"   # fault windows: grey, never a policy's colour
RECOVERY_FILL = "rgba(120, 120, 120, 0.07)"
FAILOVER_LINE = "#444444"                   # server failover instants
NEUTRAL = "#444444"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
#: SVG trace types only: WebGL (scattergl) does not render in every browser or headless run.
SVG_TRACES = frozenset({"scatter", "bar"})
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def policy_colours(policies: Iterable[str]) -> dict[str, str]:
    """Policy -> colour, for every policy of the page (see the module docstring)."""
    names = list(dict.fromkeys(policies))
    taken = {BUILTIN_COLOURS[n] for n in names if n in BUILTIN_COLOURS}
    spare = [c for c in EXTRA_COLOURS if c not in taken]
    out = {}
    for name in names:
        if name in BUILTIN_COLOURS:
            out[name] = BUILTIN_COLOURS[name]
        else:
            out[name] = spare[len([n for n in out if n not in BUILTIN_COLOURS]) % len(spare)]
    return out


def dash_for(key: str, keys: Sequence[str]) -> str:
    """A dash style for ``key`` among ``keys`` (error kinds, ops), stable within a figure."""
    return DASHES[list(keys).index(key) % len(DASHES)] if key in keys else DASHES[0]


def base_layout(**overrides: Any) -> dict[str, Any]:
    """Layout shared by every figure: a self-made template (plotly's defaults carry unused
    trace defaults, WebGL ones included), white background, system fonts (no web fonts)."""
    axis = {"gridcolor": "#E6E6E6", "zerolinecolor": "#BBBBBB", "linecolor": "#999999",
            "ticks": "outside", "automargin": True}
    layout: dict[str, Any] = {
        "template": go.layout.Template(layout={
            "font": {"family": FONT, "size": 12, "color": "#222222"},
            "paper_bgcolor": "white", "plot_bgcolor": "white",
            "xaxis": axis, "yaxis": axis, "hovermode": "closest",
            "legend": {"bgcolor": "rgba(255,255,255,0.8)"}}),
        "margin": {"l": 70, "r": 30, "t": 50, "b": 50},
    }
    layout.update(overrides)
    return layout
