"""Cost–recovery frontier: each policy's cost knob swept through the policy matrix's scenarios.

``pegbench bench frontier`` (or ``python -m loadgen.bench.frontier``). Every (policy, setting) of
the sweep runs through each scenario of ``pegbench bench policies`` with the matrix's own
runners (:mod:`loadgen.bench.policies`), ``--runs`` times, runs interleaved. Per scenario, one
row per (policy, setting), medians over the runs: meta queries/s over the load's window from
the fault on, client lag p50/p99 after the server side was ready again, ops that failed after
the fault (those waiting at it included), writes the servers executed per acknowledged write.
The Pareto front (least lag for at most that meta cost) is marked; ``--check`` exits 1 unless,
for each scenario and each setting X of every other policy, a ``failover`` setting has meta
q/s ≤ X's, lag ≤ X's + 10 ms and failed ops ≤ X's + 1.

The ready instant: kill and pause past the grace period, the meta's config-change log naming
the new primary (the server failover); pause below the lease, the resume; slow primary,
connection reset, partition moved, the fault itself (the servers can answer at once: only
the client must catch up). Client lag is defined in :mod:`loadgen.bench.frontier_analysis`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pegasus import policies
from ..pegasus.outcome import ATTEMPT, META, OK, OP, PROBE
from .frontier_analysis import (CHALLENGER, DEFAULT_LAG, FAILED_TOLERANCE, LAG_TOLERANCE_MS, Point, Sample,
                                Verdict, dominance, lag_percentiles_ms, pareto_front, point, writer_lags_s)
from .policies import SCENARIOS, Settings, Trace, policy_params, row_of, trace_jobs

#: Op timeouts at which java's meta pacing is swept (see :data:`DEFAULT_SWEEP`).
JAVA_OP_TIMEOUTS_MS = (500, 1000, 2000)
#: policy -> its settings (policy parameters), costliest first. java's knob is its op timeout
#: T: it queries the meta at most every max(1, T/3) ms. The sweep sets that pacing
#: (``meta_query_interval_ms``) and keeps the op timeout, so every row of a scenario faces the
#: same fault with the same deadline: a longer timeout would also fail fewer ops, which
#: compares deadlines, not retry logic. The Go models have no knob. failover is told the
#: onebox's failure-detector timings (:func:`loadgen.bench.policies.policy_params`); its knob
#: is ``repoll_ms``, the grid of its queries in the detector's window (one query at 1000:
#: wider than the window); with ``probe_replicas`` it asks the secondaries instead of the meta.
DEFAULT_SWEEP: dict[str, list[dict[str, float]]] = {
    "legacy": [{}],
    "refresh-on-timeout": [{}],
    "refresh-on-reset": [{}],
    "java": [{"meta_query_interval_ms": max(1, ms // 3)} for ms in JAVA_OP_TIMEOUTS_MS],
    "failover": [*({"repoll_ms": ms} for ms in (10, 30, 100, 1000)),
                 {"repoll_ms": 30, "probe_replicas": True}],
}
#: The sweep's load and timings: the matrix's, with the FD timings of issue 14's measurements
#: (lease 1.2 s, grace 1.5 s) and windows just long enough for every policy to recover in
#: them (the slowest: a Go model after a pause past the grace period, ~1 s after the resume).
DEFAULTS = Settings(before_s=0.3, after_s=4.0, lease_s=1.2, grace_s=1.5)
#: The in-process scenarios are over within an op timeout.
IN_PROCESS_AFTER_S = 1.0
RUNS = 2


@dataclass(frozen=True)
class Setting:
    """One setting of one policy: the parameters it runs with."""

    policy: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``repoll_ms=30 repoll_max_ms=400``, or ``default``."""
        return " ".join(f"{k}={str(v).lower()}" if isinstance(v, bool) or not isinstance(
            v, (int, float)) else f"{k}={v:g}" for k, v in self.params.items()) or "default"

    def settings(self, base: Settings) -> Settings:
        """``base`` with this setting's parameters."""
        return dataclasses.replace(base, policy_params={self.policy: self.params})


def sweep(spec: dict[str, list[dict[str, Any]]], chosen: Sequence[str]) -> list[Setting]:
    """The settings of the ``chosen`` policies, in order (a policy not in ``spec`` runs once
    with its defaults); a parameter a policy does not have is a ConfigError."""
    settings = [Setting(policy, entry) for policy in chosen for entry in spec.get(policy, [{}])]
    for setting in settings:  # as it will run: told the onebox's failure-detector timings
        policies.create(setting.policy, policy_params(setting.policy, setting.settings(DEFAULTS)))
    return settings


def sample_of(run: Trace, after_s: float) -> Sample:
    """The frontier's numbers for one traced run whose load went on ``after_s`` from the fault:
    meta queries started in [fault, fault + after_s) per second (a fixed window, so equal
    counts give equal rates), ops that failed after the fault (those waiting at it included)."""
    outcomes = run.recorder.outcomes
    window = [o for o in outcomes if run.t_fault <= o.start < run.t_fault + after_s]
    metas = sum(1 for o in window if o.level == META)
    lags = writer_lags_s(run.writers, run.t_ready)
    p50, p99 = lag_percentiles_ms(lags)
    return Sample(meta_queries_per_s=metas / after_s, lag_p50_ms=p50, lag_p99_ms=p99,
                  failed=sum(1 for o in outcomes
                             if o.level == OP and o.end > run.t_fault and o.outcome != OK),
                  writes_per_ack=row_of(run).writes_per_ack, writers=len(lags),
                  replica_queries_per_s=sum(1 for o in window if o.level == PROBE) / after_s)


def run_frontier(scenarios: Sequence[str], settings_list: Sequence[Setting], base: Settings,
                 runs: int, in_process_after_s: float = IN_PROCESS_AFTER_S,
                 progress: Callable[[str], None] = lambda line: None,
                 trace: bool = False) -> list[Point]:
    """Every setting through every scenario ``runs`` times; one :class:`Point` per
    (scenario, setting), in order. With ``trace``, each run's timeline
    (:func:`trace_lines`) goes to ``progress`` too."""
    points: list[Point] = []
    total, done, t0 = len(scenarios) * len(settings_list) * runs, 0, time.monotonic()
    for scenario in scenarios:
        scenario_base = base if SCENARIOS[scenario][0] else dataclasses.replace(
            base, after_s=in_process_after_s)
        jobs = [(i, r) for r in range(runs) for i in range(len(settings_list))]
        samples: list[list[Sample]] = [[] for _ in settings_list]
        traces = trace_jobs(scenario, [(settings_list[i].policy, settings_list[i].settings(
            scenario_base)) for i, _ in jobs], scenario_base)
        for (i, r), trace_run in zip(jobs, traces, strict=True):
            samples[i].append(sample_of(trace_run, scenario_base.after_s))
            done += 1
            progress(f"[{done}/{total}] {scenario} {settings_list[i].policy} "
                     f"{settings_list[i].label} run {r + 1}/{runs}: {_brief(samples[i][-1])} "
                     f"({time.monotonic() - t0:.0f} s)")
            if trace:
                for line in trace_lines(trace_run):
                    progress(line)
        points += [point(scenario, s.policy, s.label, samples[i]) for i, s in enumerate(settings_list)]
    return points


def trace_lines(run: Trace) -> list[str]:
    """One traced run as a timeline, ms from the fault: the ready instant and the heal, each
    meta query (start→end), the replica probes (if any), the attempts that failed by error
    and when the first and the last of each kind ended, and the writers' first acknowledged
    write after the ready instant (``pegbench bench frontier --trace``: where a lag comes from)."""
    t0 = run.t_fault

    def ms(t: float | None) -> str:
        return "-" if t is None else f"{(t - t0) * 1000:+.0f}"

    outcomes = [o for o in run.recorder.outcomes if o.end > t0]
    metas = [o for o in outcomes if o.level == META]
    lines = [f"{run.scenario} {run.policy}: fault +0, ready {ms(run.t_ready)}, heal {ms(run.t_heal)} "
             "(ms from the fault)",
             f"  meta queries ({len(metas)}): " + (", ".join(f"{ms(o.start)}→{ms(o.end)}" for o in metas)
                                                  or "none")]
    probes = [o for o in outcomes if o.level == PROBE]
    if probes:
        said = next((o for o in probes if o.outcome == OK), None)
        lines.append(f"  replica probes ({len(probes)}): {ms(probes[0].start)} … {ms(probes[-1].start)}"
                     + (f", {said.node} said primary at {ms(said.end)}" if said else ""))
    failed: dict[str, list[float]] = {}
    for o in outcomes:
        if o.level == ATTEMPT and o.outcome != OK:
            failed.setdefault(o.error or o.outcome, []).append(o.end)
    for error, ends in sorted(failed.items(), key=lambda item: min(item[1])):
        lines.append(f"  failed attempts {error}: {len(ends)}, ended {ms(min(ends))} … {ms(max(ends))}")
    lags = sorted(lag for lag in writer_lags_s(run.writers, run.t_ready) if lag != float("inf"))
    if lags:
        lines.append(f"  writers' lag after ready (ms): min {lags[0] * 1000:.0f}, median "
                     f"{lags[len(lags) // 2] * 1000:.0f}, max {lags[-1] * 1000:.0f} "
                     f"({len(lags)} recovered)")
    return lines


def _brief(s: Sample) -> str:
    return (f"meta {s.meta_queries_per_s:.1f} q/s, lag p50 {_ms(s.lag_p50_ms)} p99 "
            f"{_ms(s.lag_p99_ms)} ms, failed {s.failed}")


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f}"


HEADER = (f"{'scenario':<18} {'policy':<19} {'setting':<32} {'meta q/s':>8} {'lag p50':>8} "
          f"{'lag p99':>8} {'failed':>7} {'writes/ack':>10} {'replica q/s':>11}  front")


def format_point(p: Point, on_front: bool) -> str:
    """One aligned table line (see :data:`HEADER`); lags in ms."""
    wpa = "-" if p.writes_per_ack is None else f"{p.writes_per_ack:.2f}"
    return (f"{p.scenario:<18} {p.policy:<19} {p.setting:<32} {p.meta_queries_per_s:>8.1f} "
            f"{_ms(p.lag_p50_ms):>8} {_ms(p.lag_p99_ms):>8} {p.failed:>7g} {wpa:>10} "
            f"{p.replica_queries_per_s:>11.1f}  "
            f"{'*' if on_front else ''}")


def format_verdict(v: Verdict) -> str:
    """``scenario  client  PASS|FAIL  why``."""
    return f"{v.scenario:<18} {v.client.label:<35} {'PASS' if v.holds else 'FAIL'}  {v.reason}"


def report(points: Sequence[Point], verdicts: Sequence[Verdict], lag: str, base: Settings,
           runs: int) -> dict[str, Any]:
    """The JSON document: settings, points (with their runs), the front and the verdicts."""
    scenarios = list(dict.fromkeys(p.scenario for p in points))
    return {
        "format": "pegbench-frontier", "version": 1, "runs": runs, "lag": lag,
        "settings": dataclasses.asdict(base),
        "points": [dataclasses.asdict(p) for p in points],
        "front": {s: [p.label for p in pareto_front([q for q in points if q.scenario == s], lag)]
                  for s in scenarios},
        "dominance": [{"scenario": v.scenario, "client": v.client.label, "holds": v.holds,
                       "best": v.best.label if v.best else None, "reason": v.reason}
                      for v in verdicts],
    }


def print_results(points: Sequence[Point], lag: str) -> list[Verdict]:
    """The table per scenario (front marked) and the dominance verdicts; returns them."""
    print(HEADER)
    for scenario in dict.fromkeys(p.scenario for p in points):
        mine = [p for p in points if p.scenario == scenario]
        front = pareto_front(mine, lag)
        for p in mine:
            print(format_point(p, p in front))
    verdicts = dominance(points, lag)
    print(f"\ndominance: a {CHALLENGER} setting with meta q/s ≤ X's, lag {lag} ≤ X's + "
          f"{LAG_TOLERANCE_MS:g} ms, failed ≤ X's + {FAILED_TOLERANCE:g} (medians)")
    for v in verdicts:
        print(format_verdict(v))
    return verdicts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pegbench bench frontier",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--policies", default=",".join(DEFAULT_SWEEP),
                        help="comma-separated policy names (default: every built-in)")
    parser.add_argument("--settings", action="append", default=[], metavar="POLICY=JSON",
                        help="replace POLICY's settings by a JSON list of objects of its "
                             "parameters, e.g. failover='[{\"repoll_ms\": 30}, "
                             "{\"repoll_ms\": 100, \"repoll_max_ms\": 400}]'")
    parser.add_argument("--runs", type=int, default=RUNS,
                        help=f"runs per setting, interleaved (nearest-rank medians; default {RUNS})")
    for name in ("op_timeout_ms", "writers", "rate_per_writer", "before_s", "after_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(DEFAULTS, name)),
                            default=getattr(DEFAULTS, name), metavar="N")
    parser.add_argument("--in-process-after-s", type=float, default=IN_PROCESS_AFTER_S, metavar="N",
                        help="load from the fault on in the in-process scenarios")
    parser.add_argument("--lag", choices=("p50", "p99"), default=DEFAULT_LAG,
                        help="the lag percentile of the plot, the front and the check")
    parser.add_argument("--trace", action="store_true",
                        help="print each run's timeline: meta queries, failed attempts, lags")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless {CHALLENGER} dominates every other setting")
    parser.add_argument("--json", metavar="FILE", help="also write the points as JSON")
    parser.add_argument("--html", metavar="FILE", help="also write an offline plotly page")
    return parser


def _sweep_spec(parser: argparse.ArgumentParser, overrides: list[str]) -> dict[str, list[dict]]:
    spec = dict(DEFAULT_SWEEP)
    for item in overrides:
        policy, sep, text = item.partition("=")
        try:
            entries = json.loads(text) if sep else None
        except json.JSONDecodeError as exc:
            parser.error(f"--settings {policy}: not JSON ({exc})")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            parser.error(f"--settings {item!r}: expected POLICY=[{{...}}, ...]")
        spec[policy] = entries
    return spec


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, print the table and the verdicts; 1 if ``--check`` and one fails."""
    parser = _parser()
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; choose from {list(SCENARIOS)}")
    if args.runs < 1:
        parser.error("--runs: at least 1")
    try:
        settings_list = sweep(_sweep_spec(parser, args.settings),
                              [p for p in args.policies.split(",") if p])
    except ConfigError as exc:
        parser.error(f"--policies / --settings: {exc}")
    base = dataclasses.replace(DEFAULTS, **{name: getattr(args, name) for name in
                               ("op_timeout_ms", "writers", "rate_per_writer", "before_s", "after_s")})
    print(f"{len(settings_list)} settings × {len(scenarios)} scenarios × {args.runs} runs; op "
          f"timeout {base.op_timeout_ms:g} ms, {base.writers} writers × "
          f"{base.rate_per_writer:g} puts/s; onebox lease {base.lease_s:g} s, grace "
          f"{base.grace_s:g} s; load {base.after_s:g} s from the fault (in-process "
          f"{args.in_process_after_s:g} s); lags in ms", flush=True)
    points = run_frontier(scenarios, settings_list, base, args.runs, args.in_process_after_s,
                          progress=lambda line: print(line, flush=True), trace=args.trace)
    verdicts = print_results(points, args.lag)
    document = report(points, verdicts, args.lag, base, args.runs)
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2))
    if args.html:
        from .frontier_page import write_frontier_page

        write_frontier_page(Path(args.html), points, args.lag, document)
    return 1 if args.check and not all(v.holds for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
