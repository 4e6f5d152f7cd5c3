"""HTML tables of sections 3, 6 and 7: per-fault TTRs, skipped faults, errors by phase and
by kind, run details and the fault log. Plain data in, HTML strings out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..metrics.events import PHASES, RECENT_FAULT_WINDOW_S
from ..metrics.results import PhaseOps, Results
from .html import DASH, details, esc, key_values, no_data, note, number, percent, table, ttr_ms
from .views import TTRSample, new_primary_flag, skipped_faults


def _ttr_cell(value: float, recovered: bool) -> str:
    return ttr_ms(value) if recovered else f"{ttr_ms(float('inf'))} (> {number(value, 4)})"


def _new_primary_cell(s: TTRSample) -> str:
    flag = new_primary_flag(s)
    if flag:
        return f"⚠ {flag}"
    return s.new_primary or DASH


def fault_detail_table(samples: Sequence[TTRSample], order: Sequence[str]) -> str:
    """One row per (event, affected partition): server failover, the promoted node (flagged
    when it was itself faulted shortly before), then per policy TTR-first, TTR-stable and
    client lag (ms)."""
    if not samples:
        return no_data("No fault was injected in this run: no per-fault detail.")
    policies = [p for p in order if any(s.policy == p for s in samples)]
    header = ["fault", "kind", "node", "partition", "server failover (ms)", "new primary"]
    for p in policies:
        header += [f"{p} TTR-first", f"{p} TTR-stable", f"{p} lag"]
    by_key: dict[tuple[str, int], dict[str, TTRSample]] = {}
    for s in samples:
        by_key.setdefault((s.event_id, s.partition), {})[s.policy] = s
    rows = []
    for (event, pidx), mine in by_key.items():
        first = next(iter(mine.values()))
        row: list[Any] = [event, first.kind, first.node, pidx, number(first.server_failover_ms, 4),
                          _new_primary_cell(first)]
        for p in policies:
            s = mine.get(p)
            if s is None:
                row += [DASH, DASH, DASH]
                continue
            lag = DASH if s.lag_ms is None else (
                number(s.lag_ms, 4) + (" (negative)" if s.lag_negative else "")
                + ("" if s.recovered else " (not recovered)"))
            row += [_ttr_cell(s.first_ms, s.recovered), _ttr_cell(s.stable_ms, s.stable_recovered),
                    lag]
        rows.append(row)
    flagged = sum(1 for key in by_key if new_primary_flag(next(iter(by_key[key].values()))))
    out = table(header, rows, cls="faults") + note(
        "ms after t_inject. A sample not recovered shows the time observed up to its horizon "
        "(the next fault touching any replica of the partition, or the run end).")
    if flagged:
        out += note(
            f"⚠ {flagged} (fault, partition) sample(s) moved to a new primary that was itself "
            f"faulted less than {RECENT_FAULT_WINDOW_S:.0f} s earlier: the Go client redials an "
            "address at most once per 60 s (kDialInterval), so these samples can inherit the "
            "earlier fault's after-effects rather than measure this fault alone.")
    return out


def skipped_table(results: Results) -> str:
    """Faults the run did not inject, with the reason."""
    skipped = skipped_faults(results)
    if not skipped:
        return note("No fault was skipped.")
    rows = [[f.id, f.kind, f.node, f.skip_reason or DASH] for f in skipped]
    return table(("fault", "kind", "node / target", "why skipped"), rows, cls="skipped",
                 caption="Skipped faults")


def error_tables(results: Results, order: Sequence[str]) -> str:
    """Errors per phase (errors / ops, rate) and per kind (count, share of ops)."""
    policies = results.policies
    phase_rows = []
    for p in order:
        block = policies[p]
        by_phase, rates = block.ops_by_phase or {}, block.error_rate_by_phase or {}
        cells = []
        for phase in PHASES:
            counts = by_phase.get(phase) or PhaseOps()
            rate = rates.get(phase)
            cells.append(DASH if not counts.ops else
                         f"{counts.errors} / {counts.ops} "
                         f"({percent(None if rate is None else 100 * rate)})")
        phase_rows.append([p, *cells, f"{block.errors} / {block.ops}"])
    out = table(("policy", *[f"{ph}: errors / ops" for ph in PHASES], "overall"), phase_rows,
                cls="errors-phase")
    kinds = sorted({k for p in order for k in (policies[p].errors_by_kind or {})})
    if kinds:
        kind_rows = []
        for p in order:
            counts = policies[p].errors_by_kind or {}
            rates = policies[p].error_rate_by_kind or {}
            kind_rows.append([p, *[DASH if not counts.get(k) else
                                   f"{counts[k]} ({percent(100 * rates[k] if rates.get(k) is not None else None)})"
                                   for k in kinds]])
        out += table(("policy", *kinds), kind_rows, cls="errors-kind",
                     caption="Failed ops by the error they ended with (share of all ops)")
    else:
        out += no_data("No op failed in this run.")
    return out


def _fd_timings(profile: Any) -> Mapping[str, Any] | None:
    cluster = profile.get("cluster") if isinstance(profile, Mapping) else None
    fd = cluster.get("fd") if isinstance(cluster, Mapping) else None
    return fd if isinstance(fd, Mapping) else None


def run_details(results: Results, fault_log: Sequence[Mapping[str, Any]] | None) -> str:
    """Profile, seed, versions, machine, FD timings, the analysed window and the fault log."""
    parts = []
    facts, run = results.facts, results.run
    profile = facts.profile
    overview = {"profile": facts.profile_name if isinstance(profile, Mapping) else profile,
                "seed": facts.seed, "table": run.table,
                "duration (s)": run.duration_s, "recovery phase (s)": run.recovery_s,
                "TTR-stable window (s)": run.ttr_window_s,
                "t_start / t_end (monotonic s)": f"{run.t_start} / {run.t_end}",
                "clock anchor": facts.clock_anchor}
    parts.append(key_values(overview))
    fd = _fd_timings(profile)
    parts.append("<h3>Failure-detector timings</h3>" + (key_values(fd) if fd else no_data(
        "The run recorded no failure-detector timings (profile.cluster.fd).")))
    for key, value, title in (("versions", facts.versions, "Versions"),
                              ("machine", facts.machine, "Machine")):
        parts.append(f"<h3>{title}</h3>" + (key_values(value) if isinstance(value, Mapping)
                                             else no_data(f"The run recorded no {key}.")))
    parts.append("<h3>Fault log</h3>" + fault_log_table(results, fault_log))
    if isinstance(profile, Mapping):
        parts.append(details("Profile (as run)", "<pre>" + esc(json.dumps(
            profile, indent=2, ensure_ascii=False)) + "</pre>"))
    return "".join(parts)


def fault_log_table(results: Results, fault_log: Sequence[Mapping[str, Any]] | None) -> str:
    """faults.jsonl, one row per planned fault; results.faults when there is no log."""
    if fault_log is None:
        if not results.faults:
            return no_data("No faults planned in this run (and no faults.jsonl).")
        rows = [[f.id, f.kind, f.node, DASH, "no" if f.skipped else "yes", f.t_inject, f.t_heal,
                 DASH, f.skip_reason or DASH, DASH] for f in results.faults]
        source = "No faults.jsonl in the run folder: from results.json's faults."
    elif not fault_log:
        return no_data("faults.jsonl is empty: no fault was planned.")
    else:
        rows = [[r.get("id"), r.get("kind"), r.get("node") or DASH, r.get("target"),
                 "yes" if r.get("injected") else "no", r.get("t_inject"), r.get("t_heal"), r.get("healed_by") or DASH,
                 r.get("skip_reason") or DASH, _actions(r.get("actions"))] for r in fault_log]
        source = "From faults.jsonl (times: monotonic seconds)."
    return table(("id", "kind", "node", "target", "injected", "t_inject", "t_heal", "healed by",
                  "skip reason", "actions"),
                 [[DASH if v is None else v for v in row] for row in rows], cls="fault-log") \
        + note(source)


def _actions(actions: Any) -> str:
    if not isinstance(actions, list) or not actions:
        return DASH
    names = []
    for a in actions:
        if isinstance(a, Mapping):
            names.append(str(a.get("action") or a.get("kind") or "?")
                         + ("" if a.get("ok", True) else " (failed)"))
    return ", ".join(names) or DASH
