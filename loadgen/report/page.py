"""The report page: one self-contained, offline HTML file drawn from a run folder alone.

plotly.js is inlined once, in the head; every figure is a div with a stable id (``fig-…``)
and a script that plots into it, never carrying plotly.js again. Traces are SVG (scatter,
bar), never WebGL. The run's raw data (results, timeline, fault log) is embedded as JSON in
``<script type="application/json" id="pegbench-data">`` for re-analysis. No CDN, no web font.
The same run folder gives the same page, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ..config.schema import MIN_FAULT_EVENTS_FLOOR
from ..metrics.results import Results
from .figures_errors import errors_by_kind_phase, errors_figure
from .figures_latency import latency_figure, phase_latency_figure
from .figures_timeline import timeline_figure
from .figures_ttr import fault_detail_figure, ttr_cdf_figure
from .html import esc, figure_div, no_data, note, script_json, table
from .latency import LatencyCurve, latency_curves, phase_curves
from .run_dir import RunData, RunInputError
from .stats import MIN_FAULT_EVENTS, BootstrapCI, median_difference_ci
from .style import policy_colours
from .tables import bootstrap_table, slo_table, summary_table, verdict_block
from .tables_detail import error_tables, fault_detail_table, run_details, skipped_table
from .views import TTRSample, old_new, policy_models, policy_order, samples_by_event, ttr_samples

PROFILE_JSON = "profile.json"
DATA_ID = "pegbench-data"
DATA_FORMAT = "pegbench-report-data"
SECTIONS = (("sec-verdict", "1. Verdict and summary"), ("sec-timeline", "2. Timeline"),
            ("sec-faults", "3. Per-fault detail"), ("sec-ttr", "4. TTR distribution"),
            ("sec-latency", "5. Latency percentile distribution"),
            ("sec-errors", "6. Errors by kind and phase"), ("sec-run", "7. Run details"))
FIGURE_IDS = {"timeline": "fig-timeline", "fault_detail": "fig-fault-detail",
              "ttr_cdf": "fig-ttr-cdf", "latency_phase": "fig-latency-phase",
              "latency": "fig-latency", "errors": "fig-errors"}
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1400px;padding:0 1.5em 3em;color:#222;line-height:1.4}
header{border-bottom:1px solid #ddd;margin-bottom:1em}nav a{margin-right:1em}
h2{border-bottom:1px solid #eee;padding-top:.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
caption{text-align:left;font-weight:600;padding:.3em 0}
.verdict{font-size:1.3em;margin:.6em 0}.headline{font-size:1.05em}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:700}
.pass{background:#1a7f37}.fail{background:#c62828}.unknown{background:#8a6d00}
.no-data{color:#555;font-style:italic;background:#fafafa;border:1px dashed #ccc;padding:.6em}
.note{color:#555;font-size:.9em}.figure{margin:.5em 0 1em}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.85em}
"""


@dataclass(frozen=True)
class ReportModel:
    """Everything the page shows, computed once (plain data and figures)."""

    run: RunData
    order: list[str]
    pair: tuple[str, str] | None
    colours: dict[str, str]
    models: dict[str, str]
    samples: list[TTRSample]
    cis: list[BootstrapCI]
    ci_skipped: list[str]
    curves: list[LatencyCurve]
    latency_notes: list[str]
    errors_split: dict[str, dict[str, dict[str, int]]]
    figures: dict[str, go.Figure | None]
    #: ``pegbench report DIR MORE...``: the other runs whose histograms are merged with this
    #: one's (section "merged"); empty for one run
    merged_with: tuple[RunData, ...] = ()


def min_fault_events(run: RunData) -> int:
    """``report.min_fault_events`` of the run's profile: from the run folder's profile.json,
    else results.json's ``profile``, else the default. RunInputError when it is set but is
    not an integer >= 2."""
    path = run.directory / PROFILE_JSON
    profile: Any = run.results.facts.profile
    source = f"{run.directory / 'results.json'} (profile)"
    if path.is_file():
        try:
            profile, source = json.loads(path.read_text(encoding="utf-8")), str(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunInputError(path, f"cannot be read ({exc})") from None
    report = profile.get("report") if isinstance(profile, Mapping) else None
    value = report.get("min_fault_events") if isinstance(report, Mapping) else None
    if value is None:
        return MIN_FAULT_EVENTS
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_FAULT_EVENTS_FLOOR:
        raise RunInputError(source, f"report.min_fault_events: expected an integer >= "
                                    f"{MIN_FAULT_EVENTS_FLOOR}, got {value!r}")
    return value


def bootstrap_all(samples: Sequence[TTRSample], order: Sequence[str],
                  pair: tuple[str, str] | None, seed: int, *,
                  min_events: int = MIN_FAULT_EVENTS) -> tuple[list[BootstrapCI], list[str]]:
    """new − old (and every other policy − old) over the fault events both have TTR samples
    of, with a bootstrap interval from ``min_events`` events on; the old/new pair first.
    Returns the differences and why others were left out."""
    if pair is None or not samples:
        return [], []
    old = pair[0]
    others = [pair[1]] + [p for p in order if p not in pair]
    old_events = samples_by_event(samples, old)
    cis, skipped = [], []
    for policy in others:
        ci = median_difference_ci(old, policy, old_events, samples_by_event(samples, policy),
                                  seed=seed, min_events=min_events)
        if ci is None:
            skipped.append(f"{policy} vs {old}: no fault event with TTR samples of both: "
                           "no difference to show.")
        else:
            cis.append(ci)
    return cis, skipped


def analyse(run: RunData) -> ReportModel:
    """The report's data and figures for one run."""
    results = run.results
    order = policy_order(results)
    pair = old_new(order, results.facts.real_clients or {})
    colours = policy_colours(order)
    samples = ttr_samples(results)
    seed = results.facts.seed
    cis, ci_skipped = bootstrap_all(samples, order, pair,
                                    seed if isinstance(seed, int) and not isinstance(seed, bool)
                                    else 0, min_events=min_fault_events(run))
    curves, latency_notes = latency_curves(run, order)
    split = errors_by_kind_phase(run.timeline, order)
    figures = {
        "timeline": timeline_figure(results, run.timeline, order, colours),
        "fault_detail": fault_detail_figure(samples, order, colours),
        "ttr_cdf": ttr_cdf_figure(samples, order, colours),
        "latency_phase": phase_latency_figure(phase_curves(run, order), order, colours),
        "latency": latency_figure(curves, order, colours),
        "errors": errors_figure(split, order, colours),
    }
    return ReportModel(run, order, pair, colours, policy_models(results, order), samples, cis,
                       ci_skipped, curves, latency_notes, split, figures)


def _figure(model: ReportModel, key: str, missing: str) -> str:
    fig = model.figures.get(key)
    if fig is None:
        return no_data(missing)
    return f'<div class="figure">{figure_div(fig, FIGURE_IDS[key])}</div>'


def _censored_lines(model: ReportModel) -> str:
    lines = []
    for policy in model.order:
        mine = [s for s in model.samples if s.policy == policy]
        if mine:
            first = sum(1 for s in mine if not s.recovered)
            stable = sum(1 for s in mine if not s.stable_recovered)
            lines.append(f"<li>{esc(policy)}: {len(mine)} samples; not recovered (censored): "
                         f"{first} TTR-first, {stable} TTR-stable</li>")
    return "<ul class=\"censored\">" + "".join(lines) + "</ul>" + note(
        "A sample not recovered before its horizon counts in the denominator and never "
        "steps the curve: a policy that did not always recover stays below 1.")


def _latency_source(model: ReportModel) -> str:
    sources = sorted({c.source for c in model.curves})
    text = "Distribution from: " + (", ".join(sources) or "nothing") + "."
    if any(c.source == "summary points" for c in model.curves):
        text += (" Summary points (p50, p99, p99.9) only: the run folder has neither the "
                 ".hlog files nor results.json's latency_hdr.")
    return note(text) + "".join(note(n) for n in model.latency_notes)


def sections(model: ReportModel) -> dict[str, str]:
    """Section id -> its HTML body."""
    results, order = model.run.results, model.order
    has_faults = bool(model.samples)
    no_fault = "No fault was injected in this run: "
    if model.run.timeline is None:
        timeline_missing = "No timeline.json in the run folder: no timeline."
    else:
        timeline_missing = "The timeline has no per-second data."
    pair_note = (note(f"Old / new = {model.pair[0]} / {model.pair[1]} (legacy / failover when "
                      "both ran, else the first and last policy compared); above 1 means the "
                      "old value is higher.") if model.pair else "")
    return {
        "sec-verdict": (verdict_block(results, model.pair)
                        + summary_table(results, order, model.pair, model.models) + pair_note
                        + "<h3>SLO checks</h3>" + slo_table(results)),
        "sec-timeline": _figure(model, "timeline", timeline_missing) + note(
            "Shaded: fault windows (darker, labelled) and recovery phases; dotted lines: "
            "server failover instants."),
        "sec-faults": (_figure(model, "fault_detail", no_fault + "no per-fault detail.")
                       + (fault_detail_table(model.samples, order) if has_faults else "")
                       + skipped_table(results)),
        "sec-ttr": (_figure(model, "ttr_cdf", no_fault + "no TTR samples.")
                    + (_censored_lines(model) if has_faults else "")
                    + "<h3>Old vs new: difference of medians</h3>"
                    + (bootstrap_table(model.cis, model.ci_skipped) if has_faults
                       else no_data(no_fault + "no TTR samples to compare."))),
        "sec-latency": ("<h3>Response time per phase</h3>"
                        + _figure(model, "latency_phase", "No per-phase histograms in this "
                                  "results.json (a run from before they were recorded).")
                        + note("An op belongs to the phase of its intended start: steady "
                               "(solid), during a fault (dashed), the recovery after its heal "
                               "(dotted). Old vs new while a primary is down is the dashed "
                               "pair.")
                        + "<h3>The whole run</h3>"
                        + _figure(model, "latency", "No latency data: no op was recorded.")
                        + (_latency_source(model) if model.curves else "")),
        "sec-errors": _figure(model, "errors", "No op failed in this run.")
                      + error_tables(results, order),
        "sec-run": run_details(results, model.run.fault_log),
    }


def merged_section(model: ReportModel) -> str:
    """Per policy, TTR-first, client lag and the put response p99 during faults from the
    histograms of this run and ``model.merged_with`` added up (exact, unlike averaging each
    run's percentiles), and each run's verdict."""
    from .compare_merged import HEADER, cells, merge_side, skipped_notes
    from .compare_samples import run_samples

    runs = [run_samples(r.results, None, r.directory.name) for r in (model.run, *model.merged_with)]
    merged = [cells(merge_side(runs, policy, "all")) for policy in model.order]
    rows = [(c[0], *c[2:]) for c in merged]      # no "side" column: one side
    verdicts = [(r.label, r.verdict, r.unknown_reason or "") for r in runs]
    return ('<section id="sec-merged"><h2>Merged over '
            f"{len(runs)} runs</h2>"
            + note("The runs' histograms added up: TTR-first and client-lag percentiles of the "
                   "recovered samples (censored and negative lags counted beside), put response "
                   "p99 during faults. The sections below are the first run's.")
            + table((HEADER[0], *HEADER[2:]), rows, cls="merged")
            + table(("run", "verdict", "why unknown"), verdicts, cls="merged-runs")
            + "".join(note(n) for n in skipped_notes(runs, ()))
            + "</section>")


def embedded_data(run: RunData) -> dict[str, Any]:
    """The raw data the page carries: the run's files as read (results.json through its
    codec: the same keys and values)."""
    return {"format": DATA_FORMAT, "version": 1, "results": run.results.to_dict(),
            "timeline": run.timeline, "fault_log": run.fault_log}


def _title(results: Results) -> str:
    name = results.facts.profile_name
    return f"pegbench report — {name}" if name else "pegbench report"


def render(model: ReportModel) -> str:
    """The whole page."""
    results = model.run.results
    body = sections(model)
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in SECTIONS)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(_title(results))}</title><style>{CSS}</style>",
    ]
    if any(fig is not None for fig in model.figures.values()):
        parts.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    run = results.run
    analysed = f"{run.duration_s:.1f}" if isinstance(run.duration_s, (int, float)) else "?"
    table = "?" if run.table is None else run.table
    parts += [
        f"</head><body><header><h1>{esc(_title(results))}</h1>",
        note(f"Policies: {', '.join(model.order)}. Run: {analysed} s analysed, "
             f"table {table}. Generated from {model.run.directory.name}/ "
             "(results.json, timeline.json, faults.jsonl, *.hlog); the raw data is embedded "
             f'below as JSON (script#{DATA_ID}).'),
        f"<nav>{nav}</nav></header>",
    ]
    if model.merged_with:
        parts.append(merged_section(model))
    for sid, title in SECTIONS:
        parts.append(f'<section id="{sid}"><h2>{esc(title)}</h2>{body[sid]}</section>')
    parts.append(f'<script type="application/json" id="{DATA_ID}">'
                 f"{script_json(embedded_data(model.run))}</script>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
