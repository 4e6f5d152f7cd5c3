"""HTML building blocks: escaping, number formats, tables, "no data" notes, figure divs, and
JSON safe to embed in a ``<script>`` element. Every function returns a string."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from ..metrics.slo import verdict_name
from .run_dir import RunInputError
from .style import PLOT_CONFIG

NOT_RECOVERED = "not recovered"
DASH = "—"


def esc(value: Any) -> str:
    """Text for HTML content or attributes."""
    return html.escape(str(value), quote=True)


def number(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (more for large integers); — for None."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10 ** digits:
        return f"{int(value):,}"
    magnitude = math.floor(math.log10(abs(value))) + 1
    return f"{value:,.{max(digits - magnitude, 0)}f}"


def ttr_ms(value: float | None) -> str:
    """A TTR value: +inf (censored) reads "not recovered"."""
    if value is not None and math.isinf(value):
        return NOT_RECOVERED
    return number(value, 4)


def percent(value: float | None) -> str:
    """A value already scaled to percent."""
    return DASH if value is None else f"{number(value, 3)} %"


def times(value: float | None) -> str:
    """A ratio such as old/new: ×2.5."""
    return DASH if value is None else f"×{number(value, 3)}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "",
          caption: str = "", raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then they are trusted HTML)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n"
                   for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<table class="{esc(cls)}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}</tbody></table>")


def no_data(message: str) -> str:
    """The note a section shows instead of a figure or table it has no data for."""
    return f'<p class="no-data">{esc(message)}</p>'


def note(message: str) -> str:
    return f'<p class="note">{esc(message)}</p>'


def badge(verdict: Any) -> str:
    """PASS / FAIL / UNKNOWN for a verdict True / False or "pass" / "fail" (results.json's
    ``slo.verdict``); anything else (null, "unknown") is UNKNOWN."""
    cls = verdict_name(verdict)
    return f'<span class="badge {cls}">{cls.upper()}</span>'


def figure_div(fig: go.Figure, div_id: str) -> str:
    """The figure in its own div with a stable id; plotly.js itself is not included (the page
    carries it once)."""
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=PLOT_CONFIG, validate=False)


def script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are
    written as \\u escapes, so no "</script>" or "<!--" can end or confuse the element;
    JSON.parse and json.loads read the data back unchanged."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def details(summary: str, body: str, *, open_: bool = False) -> str:
    """A collapsible block (``body`` is trusted HTML)."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


def key_values(pairs: Mapping[str, Any]) -> str:
    """A two-column table of scalar values (nested ones as JSON)."""
    rows = [(k, v if isinstance(v, (str, int, float, bool)) or v is None
             else json.dumps(v, ensure_ascii=False)) for k, v in pairs.items()]
    return table(("key", "value"), [(k, DASH if v is None else v) for k, v in rows], cls="kv")


def write_page(path: str | os.PathLike[str], page: str) -> Path:
    """Write ``page`` to ``path`` atomically (a temporary file renamed into place);
    RunInputError naming the file if it cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise RunInputError(path, f"cannot be written ({exc.strerror or exc})") from None
    return path
