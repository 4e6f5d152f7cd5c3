"""The "Recovery" tab of Locust's web UI: live recovery figures per policy and per fault.

Uses Locust 2.x's supported extension points (as its ``examples/extend_web_ui.py``):
``extended_tabs`` and ``extended_tables`` in the web UI's ``template_args`` declare the tab
and its columns; rows travel in the ``/stats/requests`` JSON under ``extended_stats``
(``[{"key": "recovery", "data": [...]}]``), added by an ``after_request`` hook, so the tab
refreshes with Locust's own polling. ``/recovery`` serves the same rows as a plain HTML table
(no JavaScript needed) and ``/recovery.json`` as JSON; both sit behind Locust's
``--web-login`` (``web_ui.auth_required_if_enabled``) like Locust's own routes, and the rows
in ``/stats/requests`` only go out with that route's own (authenticated) answer.

Rows: one per policy (ops, errors, error rate, TTR-first p50/p99 over the faults so far,
meta queries/s over the last ``LIVE_WINDOW_S``, attempts per op, missed ops, arrivals dropped
at the in-flight cap where the harness counts them), then one per
fault event with each policy's TTR-first on the fault's affected partitions, then one per run
this process finished (``pegbench run --web``, newest first): its verdict and SLO checks, and
its report, served under ``/pegbench/runs/<n>/``. Faults come from
the harness's :class:`~loadgen.harness.fault_relay.FaultRelay` (the controller's records when it has
them, else what was announced so far). On a master the figures are the workers' merged
reports, so they lag by Locust's report interval.
"""

from __future__ import annotations

import html
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..metrics import FaultEvent, RecorderState, event_ttrs
from ..metrics.analysis import live_p99_ms, ttr_summary
from ..metrics.events import injected
from ..metrics.hdr import coarse_percentiles
from ..metrics.series import OUTCOME_SLOTS, POLICY_SLOTS

log = logging.getLogger(__name__)

TAB_KEY = "recovery"
TAB_TITLE = "Recovery"
#: Meta queries/s are averaged over the last this many seconds.
LIVE_WINDOW_S = 10.0
#: Rows are recomputed at most this often (the UI polls every ~2 s).
CACHE_S = 1.0
#: The live chart shows this many seconds at most.
CHART_SECONDS = 600
_META_SLOT = POLICY_SLOTS.index("meta")
_OUTCOMES = len(OUTCOME_SLOTS)          # ok, then the failed kinds

BASE_COLUMNS = (
    ("name", "Row"), ("ops", "Ops"), ("errors", "Errors"), ("error_rate_pct", "Error rate %"),
    ("ops_per_s", f"Ops/s ({LIVE_WINDOW_S:.0f} s)"), ("errors_per_s", f"Errors/s ({LIVE_WINDOW_S:.0f} s)"),
    ("p99_response_ms", f"p99 response ms ({LIVE_WINDOW_S:.0f} s)"),
    ("p99_fault_ms", "p99 response ms (during faults)"),
    ("ttr_first_p50_ms", "TTR-first p50 ms"), ("ttr_first_p99_ms", "TTR-first p99 ms"),
    ("last_ttr_first_ms", "TTR-first ms (last fault)"), ("last_lag_ms", "Client lag ms (last fault)"),
    ("meta_qps", f"Meta queries/s ({LIVE_WINDOW_S:.0f} s)"), ("attempts_per_op", "Attempts/op"),
    ("missed", "Missed ops"), ("dropped", "Dropped arrivals"), ("report", "Report"),
)
#: Where the web UI serves the files of the runs it measured (``pegbench run --web``).
RUN_FILES_URL = "/pegbench/runs/{number}/{name}"
#: Last rows of the tab: where the rest is, and what Locust's own buttons do to these figures.
NOTES = ("note: live chart, fault form, reports: /recovery",
         "note: Reset stats resets Locust's stats only; these count from Start")
#: The live chart: its data, the plotly.js it is drawn with, the script drawing it, its div.
SERIES_URL, PLOTLY_URL, CHART_URL, CHART_ID = ("/recovery/series.json", "/pegbench/plotly.min.js",
                                               "/pegbench/recovery-chart.js", "recovery-chart")
#: Locust's web UI with the Recovery tab as a React component (``recovery_ui/``, built with
#: locust-ui): served as the web UI's template folder unless ``--build-path`` names another.
UI_BUNDLE = Path(__file__).resolve().parent / "recovery_ui" / "bundle"
#: The fault form ``pegbench run --web`` serves (:mod:`loadgen.runner.web`).
FAULT_FORM_URL = "/pegbench/fault"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _fmt_ms(value: float | None, censored: int = 0) -> Any:
    """A TTR percentile for display: a number, "∞" when it landed on a censored sample."""
    if value is None:
        return "∞" if censored else ""
    return round(value, 1)


class RecoveryTab:
    """Computes the tab's rows from a :class:`~loadgen.harness.hooks.Harness`."""

    def __init__(self, harness: Any, clock=time.monotonic):
        self.harness = harness
        self.clock = clock
        self._cached: tuple[float, list[dict[str, Any]]] | None = None

    @property
    def policies(self) -> list[str]:
        """Policy names as the outcomes carry them, in the compared order."""
        labels = self.harness.workload.labels
        return [labels.get(p, p) for p in self.harness.settings.rows]

    def columns(self) -> list[dict[str, str]]:
        """The table structure: fixed columns, then one TTR column per policy."""
        cols = [{"key": key, "title": title} for key, title in BASE_COLUMNS]
        cols += [{"key": f"ttr_{i}", "title": f"TTR-first / lag {name}"}
                 for i, name in enumerate(self.policies)]
        return cols

    def rows(self) -> list[dict[str, Any]]:
        """Every row, recomputed at most every ``CACHE_S``."""
        now = self.clock()
        if self._cached is not None and now - self._cached[0] < CACHE_S:
            return self._cached[1]
        try:
            rows = self._compute(now)
        except Exception:  # noqa: BLE001 - a display must never break the run
            log.exception("recovery tab: could not compute rows")
            rows = self._cached[1] if self._cached else []
        self._cached = (now, rows)
        return rows

    def _compute(self, now: float) -> list[dict[str, Any]]:
        state: RecorderState = self.harness.live_state()
        missed = self.harness.live_missed()
        live_dropped = getattr(self.harness, "live_dropped", None)   # harnesses that count them
        dropped = live_dropped() if callable(live_dropped) else None
        events = self.harness.relay.fault_events()
        table = self.harness.settings.table
        ttrs = event_ttrs(state, events, t_end=now, table=table) if events else []
        rows = [self._policy_row(name, state, missed, dropped, ttrs, injected(events), now)
                for name in self.policies]
        rows += [self._fault_row(e, ttrs) for e in events]
        rows += [self._run_row(run) for run in reversed(self.harness.finished)]
        return rows

    def tab_rows(self) -> list[dict[str, Any]]:
        """The rows for Locust's tab: :meth:`rows`, then the :data:`NOTES`."""
        return self.rows() + [{**{key: "" for key, _ in BASE_COLUMNS}, "name": note}
                              for note in NOTES]

    @staticmethod
    def _run_row(run: Any) -> dict[str, Any]:
        """A finished run: its verdict, why if unknown, and its report."""
        row: dict[str, Any] = {key: "" for key, _ in BASE_COLUMNS}
        row["kind"] = "run"
        why = f" ({run.unknown_reason})" if run.unknown_reason else ""
        checks = f"; {'; '.join(run.checks)}" if run.checks else ""
        row["name"] = f"run {run.number} ({run.folder.name}): verdict {run.verdict.upper()}{why}{checks}"
        row["report"] = RUN_FILES_URL.format(number=run.number, name="report.html")
        return row

    def _policy_row(self, name: str, state: RecorderState, missed: dict[str, int],
                    dropped: dict[str, int] | None, ttrs: Sequence[Any],
                    events: Sequence[FaultEvent], now: float) -> dict[str, Any]:
        p = state.policies.get(name)
        row: dict[str, Any] = {key: "" for key, _ in BASE_COLUMNS}
        row["kind"], row["name"] = "policy", name
        row["missed"] = missed.get(name, 0)
        row["dropped"] = "" if dropped is None else dropped.get(name, 0)
        if p is None:
            row.update(ops=0, errors=0)
            return row
        errors = p.ops - p.outcomes.get("ok", 0)
        recent = [c for _, _, c in p.series.buckets(now - LIVE_WINDOW_S, now)]
        meta = sum(c[_META_SLOT] for c in recent)
        latency: dict[int, int] = {}
        for sec in range(math.floor(now - LIVE_WINDOW_S), math.floor(now) + 1):
            for index, count in p.latency.get(sec, {}).items():
                latency[index] = latency.get(index, 0) + count
        p99 = coarse_percentiles(latency, (99.0,))[99.0]
        p99_fault = live_p99_ms(p.latency, events)
        first = ttr_summary(ttrs, name).first
        last = events[-1] if events else None
        row.update(_last_fault([t for t in ttrs if t.policy == name and last is not None
                                and t.event_id == last.id], _settled(last)))
        row.update(ops=p.ops, errors=errors,
                   error_rate_pct=round(100.0 * errors / p.ops, 3) if p.ops else "",
                   ttr_first_p50_ms=_fmt_ms(first.p50, first.censored),
                   ttr_first_p99_ms=_fmt_ms(first.p99, first.censored),
                   meta_qps=round(meta / LIVE_WINDOW_S, 2),
                   ops_per_s=round(sum(sum(c[:_OUTCOMES]) for c in recent) / LIVE_WINDOW_S, 1),
                   errors_per_s=round(sum(sum(c[1:_OUTCOMES]) for c in recent) / LIVE_WINDOW_S, 1),
                   p99_response_ms="" if p99 is None else round(p99 / 1000, 1),
                   p99_fault_ms="" if p99_fault is None else round(p99_fault, 1),
                   attempts_per_op=round(p.attempts / p.ops, 3) if p.ops else "")
        if name in self.harness.settings.clients:
            row.update(self._real_client_cells(name))
        return row

    def _real_client_cells(self, row: str) -> dict[str, Any]:
        """A real client's row: who it is (from its adapter's handshake), whether its adapter
        died, and "n/a" where it cannot be measured (its retries are its own; its meta queries
        without the onebox's query log)."""
        statuses = self.harness.live_real_clients().get(row, [])
        ready = next((a for a in statuses if a.get("client")), {})
        who = " ".join(str(ready[k]) for k in ("client", "version") if ready.get(k))
        died = [a for a in statuses if a.get("died_at") is not None]
        name = f"{row} (real client{': ' + who if who else ''})"
        if died:
            name += f"; adapter died: {died[0].get('error')}"
        cells: dict[str, Any] = {"name": name, "attempts_per_op": "n/a"}
        if not self.harness.settings.meta_query_log:
            cells["meta_qps"] = "n/a"
        return cells

    def _fault_row(self, event: FaultEvent, ttrs: Sequence[Any]) -> dict[str, Any]:
        row: dict[str, Any] = {key: "" for key, _ in BASE_COLUMNS}
        row["kind"], row["name"] = "fault", self._fault_name(event)
        for i, name in enumerate(self.policies):
            mine = [t for t in ttrs if t.event_id == event.id and t.policy == name]
            row[f"ttr_{i}"] = _describe(mine, _settled(event))
        return row

    def _fault_name(self, event: FaultEvent) -> str:
        """``fault 2: kill replica1 at 12.3 s, partitions 0,3, healed after 8.00 s``."""
        t0 = self.harness.workload.t_test_start
        at = "" if t0 is None else f" at {event.t_inject - t0:.1f} s"
        what = f": {event.kind} {event.node}"
        parts = ",".join(map(str, event.affected_partitions)) or "none"
        failovers = [s for s in event.server_failover_s.values() if s is not None]
        server = f", server failover {max(failovers) * 1000:.0f} ms" if failovers else ""
        healed = ("" if event.t_heal is None
                  else f", healed after {event.t_heal - event.t_inject:.2f} s")
        skipped = f", skipped: {event.skip_reason}" if event.skipped else ""
        return f"fault {event.id}{what}{at}, partitions {parts}{server}{healed}{skipped}"

    def series(self) -> dict[str, Any]:
        """The live chart's data: per policy, ops/s and errors/s each second since the test
        started (the last ``CHART_SECONDS``; not the last op timeout + 1 s, whose ops may
        still be in flight: an op counts in the second it was due), and the faults with their
        server failover instants; times in seconds from the test's start, a second at its
        start."""
        t0 = self.harness.workload.t_test_start
        if t0 is None:
            return {"policies": {}, "faults": []}
        state: RecorderState = self.harness.live_state()
        now = self.clock()
        first = max(math.floor(t0), math.floor(now) - CHART_SECONDS)
        settled = now - self.harness.settings.workload.op_timeout_ms / 1000 - 1.0
        policies = {}
        for name in self.policies:
            p = state.policies.get(name)
            seconds = sorted(s for s in (p.series.coarse if p else ())
                             if first <= s and s + 1 <= settled)
            counts = [p.series.coarse[s] for s in seconds]
            policies[name] = {"t": [round(s - t0, 3) for s in seconds],
                              "ops": [sum(c[:_OUTCOMES]) for c in counts],
                              "errors": [sum(c[1:_OUTCOMES]) for c in counts]}
        faults = [{"id": e.id, "kind": e.kind, "node": e.node, "skipped": e.skipped,
                   "t_inject": round(e.t_inject - t0, 3),
                   "t_heal": None if e.t_heal is None else round(e.t_heal - t0, 3),
                   "failover": sorted({round(e.t_inject + s - t0, 3)
                                       for s in e.server_failover_s.values() if s is not None})}
                  for e in self.harness.relay.fault_events()]
        return {"policies": policies, "faults": faults}

    # ------------------------------------------------------------------ Locust glue

    def template_args(self) -> dict[str, Any]:
        """The tab and table declarations for ``web_ui.template_args`` (a stock Locust UI
        shows the table; ours renders the tab from ``/recovery.json`` and the chart)."""
        return {"extended_tabs": [{"key": TAB_KEY, "title": TAB_TITLE}],
                "extended_tables": [{"key": TAB_KEY, "structure": self.columns()}]}

    def html(self) -> str:
        """The rows as a plain HTML table."""
        cols = self.columns()
        head = "".join(f"<th>{html.escape(c['title'])}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c['key'], r.get(c['key'], ''))}</td>"
                                        for c in cols) + "</tr>" for r in self.rows())
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{TAB_TITLE}</title>"
                f"<script src='{PLOTLY_URL}'></script><script src='{CHART_URL}'></script>"
                f"</head><body><h1>{TAB_TITLE}</h1><div id='{CHART_ID}' style='height:420px'>"
                f"</div><script>pegbenchChart(document.getElementById('{CHART_ID}'))</script>"
                f"<table id='{TAB_KEY}'><thead><tr>{head}"
                f"</tr></thead><tbody>{body}</tbody></table>"
                f"<p><a href='{FAULT_FORM_URL}'>Inject a fault now</a> (pegbench run --web, "
                "while a run goes)</p></body></html>")


#: ``pegbenchChart(div)`` redraws the chart in ``div`` from SERIES_URL every 2 s, until the
#: function it returns is called: per policy ops/s (solid) and errors/s (dotted), each fault a
#: shaded band from inject to heal (to now while held) labelled with its id, kind and node,
#: each server failover instant a dashed line. Transparent, in the page's text colour (the
#: Locust UI may be dark).
_CHART_JS = """
window.pegbenchChart = function (div) {
  function draw() {
    fetch('{series}', {credentials: 'same-origin'}).then(function (r) { return r.json(); })
      .then(function (d) {
        var traces = [], shapes = [], notes = [], end = 0;
        Object.keys(d.policies).forEach(function (name) {
          var p = d.policies[name];
          if (p.t.length) { end = Math.max(end, p.t[p.t.length - 1] + 1); }
          traces.push({x: p.t, y: p.ops, name: name + ' ops/s', mode: 'lines',
                       line: {shape: 'hv'}});
          traces.push({x: p.t, y: p.errors, name: name + ' errors/s', mode: 'lines',
                       line: {dash: 'dot', shape: 'hv'}});
        });
        d.faults.forEach(function (f) {
          if (f.skipped) { return; }
          var to = f.t_heal === null ? end : f.t_heal;
          shapes.push({type: 'rect', xref: 'x', yref: 'paper', x0: f.t_inject, x1: to, y0: 0,
                       y1: 1, fillcolor: 'rgba(214,39,40,0.12)', line: {width: 0}});
          notes.push({x: f.t_inject, y: 1, xref: 'x', yref: 'paper', xanchor: 'left',
                      yanchor: 'bottom', showarrow: false,
                      text: 'fault ' + f.id + ': ' + f.kind + ' ' + f.node});
          f.failover.forEach(function (t) {
            shapes.push({type: 'line', xref: 'x', yref: 'paper', x0: t, x1: t, y0: 0, y1: 1,
                         line: {dash: 'dash', width: 1, color: '#888'}});
          });
        });
        Plotly.react(div, traces, {
          margin: {t: 40}, shapes: shapes, annotations: notes,
          paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
          font: {color: getComputedStyle(div).color},
          xaxis: {title: {text: 's since Start'}}, yaxis: {title: {text: 'per second'}}});
      }).catch(function () {});
  }
  draw();
  var timer = setInterval(draw, 2000);
  return function () { clearInterval(timer); };
};
""".replace("{series}", SERIES_URL)


def _cell(key: str, value: Any) -> str:
    """One cell of the HTML table: a run's report as a link, the rest as text."""
    text = html.escape(str(value))
    return f"<a href='{text}'>{text}</a>" if key == "report" and value else text


def _settled(event: FaultEvent | None) -> set[int]:
    """The partitions whose server failover instant the controller has settled (until then
    a live client lag would be measured from a placeholder)."""
    if event is None:
        return set()
    return {p for p, s in event.server_failover_s.items() if s is not None}


def _worst_ms(ttrs: Sequence[Any],
              settled: set[int] | None = None) -> tuple[float | None, float | None]:
    """(worst TTR-first, worst client lag) in ms over the recovered partitions of ``ttrs``;
    lag only over ``settled`` partitions when given."""
    recovered = [t for t in ttrs if t.recovered]
    lags = [t.lag_s for t in recovered if t.lag_s is not None
            and (settled is None or t.partition in settled)]
    return (max(t.first_s for t in recovered) * 1000 if recovered else None,
            max(lags) * 1000 if lags else None)


def _describe(ttrs: Sequence[Any], settled: set[int] | None = None) -> str:
    """One policy's TTR-first / client lag on one fault: "812 ms / lag 9 ms",
    "max 950 ms / lag 12 ms (3/3)", "not recovered (4.1 s observed)"."""
    if not ttrs:
        return ""
    first, lag = _worst_ms(ttrs, settled)
    if first is None:
        return f"not recovered ({max(t.first_s for t in ttrs):.1f} s observed)"
    lag_text = "" if lag is None else f" / lag {lag:.0f} ms"
    recovered = sum(t.recovered for t in ttrs)
    if len(ttrs) == 1:
        return f"{first:.0f} ms{lag_text}"
    return f"max {first:.0f} ms{lag_text} ({recovered}/{len(ttrs)})"


def _last_fault(ttrs: Sequence[Any], settled: set[int]) -> dict[str, Any]:
    """A policy row's TTR-first and client lag of the last fault (worst partition)."""
    if not ttrs:
        return {}
    first, lag = _worst_ms(ttrs, settled)
    if first is None:
        return {"last_ttr_first_ms": "not recovered"}
    return {"last_ttr_first_ms": round(first, 1), "last_lag_ms": "" if lag is None else round(lag, 1)}


def _merge_args(template_args: dict[str, Any], ours: dict[str, Any]) -> None:
    """Add our tab and table to whatever other extensions declared, replacing our own."""
    for key, items in ours.items():
        kept = [i for i in template_args.get(key) or [] if i.get("key") != TAB_KEY]
        template_args[key] = kept + items


def register(environment: Any, harness: Any) -> RecoveryTab:
    """Add the Recovery tab to ``environment.web_ui`` (call once, where a web UI exists)."""
    from flask import Response, abort, request, send_from_directory

    from locust.html import DEFAULT_BUILD_PATH

    web_ui = environment.web_ui
    tab = RecoveryTab(harness)
    _merge_args(web_ui.template_args, tab.template_args())
    web_ui.template_args.setdefault("pegbench", {}).update(
        rows="/recovery.json", series=SERIES_URL, plotly=PLOTLY_URL, chart=CHART_URL)
    if Path(web_ui.app.template_folder) == Path(DEFAULT_BUILD_PATH):   # no --build-path
        web_ui.app.template_folder = str(UI_BUNDLE)

    @environment.events.test_start.add_listener
    def _columns_may_change(**_kw: Any) -> None:
        _merge_args(web_ui.template_args, tab.template_args())

    @web_ui.app.after_request
    def _add_rows(response: Response) -> Response:
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        try:
            data = response.get_json()
            stats = [s for s in data.get("extended_stats") or [] if s.get("key") != TAB_KEY]
            data["extended_stats"] = stats + [{"key": TAB_KEY, "data": tab.tab_rows()}]
            response.set_data(json.dumps(data, allow_nan=False, default=_jsonable))
        except Exception:  # noqa: BLE001 - Locust's own stats must still reach the UI
            log.exception("recovery tab: could not extend /stats/requests")
        return response

    # behind Locust's --web-login like its own routes (a no-op without it)
    @web_ui.app.route("/recovery")
    @web_ui.auth_required_if_enabled
    def _recovery_html() -> Response:
        return Response(tab.html(), mimetype="text/html")

    @web_ui.app.route(RUN_FILES_URL.format(number="<int:number>", name="<path:name>"))
    @web_ui.auth_required_if_enabled
    def _run_file(number: int, name: str) -> Response:
        run = next((r for r in harness.finished if r.number == number), None)
        if run is None:
            abort(404)
        return send_from_directory(run.folder.resolve(), name)   # refuses paths outside it

    @web_ui.app.route(SERIES_URL)
    @web_ui.auth_required_if_enabled
    def _recovery_series() -> Response:
        return Response(json.dumps(tab.series(), allow_nan=False, default=_jsonable),
                        mimetype="application/json")

    @web_ui.app.route(PLOTLY_URL)
    def _plotly() -> Response:   # a library, no data: no login needed
        from plotly.offline import get_plotlyjs

        return Response(get_plotlyjs(), mimetype="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    @web_ui.app.route(CHART_URL)
    def _chart() -> Response:   # code, no data: no login needed
        return Response(_CHART_JS, mimetype="application/javascript")

    @web_ui.app.route("/recovery.json")
    @web_ui.auth_required_if_enabled
    def _recovery_json() -> Response:
        return Response(json.dumps({"columns": tab.columns(), "rows": tab.rows()},
                                   allow_nan=False, default=_jsonable),
                        mimetype="application/json")

    return tab


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
