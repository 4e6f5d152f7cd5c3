"""Run folders for the report and compare tests, built through the real metrics pipeline.

``make_run`` feeds a ``Recorder`` with hand-built ``Outcome`` records of up to three
policies through two kills and a pause (plus one skipped fault), then writes what a run
writes: ``results.json`` and ``timeline.json`` (``build_results`` / ``build_timeline``),
``faults.jsonl`` (``FaultLog`` of ``FaultRecord``s) and the ``.hlog`` interval logs
(``ttr.hlog`` among them).

Each policy fails the writes intended in ``[t_inject, t_inject + delay)`` on an affected
partition; ``delay`` is the policy's recovery behaviour (below), so TTR-first is about
``delay`` plus one service time, and varies a little by partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from loadgen.faults.injector import ActionRecord
from loadgen.faults.records import FaultLog, FaultRecord
from loadgen.metrics import FaultEvent, Recorder, build_results, build_timeline, write_results, write_timeline
from loadgen.metrics.hlog import IntervalLogs
from loadgen.metrics.outputs import FAULTS_JSONL
from loadgen.metrics.ttr_hist import write_ttr_log
from loadgen.pegasus.outcome import Outcome
from support.metrics import OFFSET_S, RATE, SERVICE_S, meta, op

T_START, T_END = 90.0, 130.0
PARTITIONS = (1, 2, 3, 5, 6)
POLICIES = ("legacy", "java", "failover")
NEVER = 1e9                               # a delay past the end of the run: never recovers
SLO = {"failover.recovered_fraction": {"min": 1.0}, "durability.lost": {"max": 0},
       "failover.client_lag_ms.p99": {"max": 250},
       "java.no_such_metric": {"max": 1}}          # unknown: the metric does not exist


def _actions(first: str, second: str, node: str, t: float, t_heal: float) -> tuple[ActionRecord, ...]:
    return tuple(ActionRecord(action=a, node=node, ok=True, t=at, instant="supervisor",
                              t_sent=at - 0.002, t_returned=at + 0.003)
                 for a, at in ((first, t), (second, t_heal)))


def fault_records(*, faults: bool = True) -> list[FaultRecord]:
    """Two kills and a pause, and one fault the health gate skipped (none if not ``faults``)."""
    if not faults:
        return []
    common = {"origin": "schedule", "injector": "onebox", "healed_by": "plan"}
    return [
        FaultRecord(FaultEvent(id="1", kind="kill", node="replica1", t_inject=100.0, t_heal=103.0,
                               affected_partitions=(3, 5, 6),
                               server_failover_s={3: 0.8, 5: 0.8, 6: 0.82}),
                    target="random", at_s=10.0, t_planned=100.0, addr="127.0.0.1:34801",
                    actions=_actions("kill", "restart", "replica1", 100.0, 103.0), **common),
        FaultRecord(FaultEvent(id="2", kind="pause", node="replica2", t_inject=110.0,
                               t_heal=111.5, affected_partitions=(1, 2),
                               server_failover_s={1: None, 2: None}),
                    target="primary-of:1", at_s=20.0, t_planned=110.0, addr="127.0.0.1:34802",
                    actions=_actions("pause", "resume", "replica2", 110.0, 111.5), **common),
        FaultRecord(FaultEvent(id="3", kind="kill", node="replica3", t_inject=118.0, t_heal=121.0,
                               affected_partitions=(3, 6), server_failover_s={3: 0.79, 6: 0.81}),
                    target="random", at_s=28.0, t_planned=118.0, addr="127.0.0.1:34803",
                    actions=_actions("kill", "restart", "replica3", 118.0, 121.0), **common),
        FaultRecord(FaultEvent(id="4", kind="pause", node="replica1", t_inject=125.0,
                               skipped=True, skip_reason="cluster not healthy within 60 s"),
                    target="replica1", origin="events", at_s=35.0, t_planned=125.0,
                    injector="onebox"),
    ]


def default_delay(policy: str, fault: FaultRecord, partition: int) -> float:
    """Seconds after t_inject during which ``policy`` fails writes on ``partition``:
    failover just after the server's failover, java a paced meta query later, legacy never
    after the second kill (censored) and 7 s after the first."""
    failover = fault.event.failover_s(partition)
    jitter = 0.01 * partition
    if fault.event.kind == "pause":
        return failover + {"failover": 0.005, "java": 0.02, "legacy": 0.03}.get(policy, 0.0) + jitter
    if policy == "legacy":
        return NEVER if fault.id == 3 else 7.0 + jitter
    return failover + {"failover": 0.05, "java": 0.6}.get(policy, 0.3) + jitter


ERRORS = {"legacy": ("unknown", "ERR_TIMEOUT", 1.0), "java": ("fail", "ERR_SESSION_RESET", 0.01),
          "failover": ("fail", "ERR_INVALID_STATE", 0.02)}


def _history(policy: str, records: Sequence[FaultRecord],
             delay: Callable[[str, FaultRecord, int], float]) -> list[Outcome]:
    outcome, error, service_s = ERRORS.get(policy, ("fail", "ERR_TIMEOUT", 0.5))
    injected = [r for r in records if r.injected]
    out = []
    for pidx in PARTITIONS:
        windows = [(r.event.t_inject, r.event.t_inject + delay(policy, r, pidx))
                   for r in injected if pidx in r.event.affected_partitions]
        count = round((T_END - T_START) * RATE)
        for t in (T_START + k / RATE + OFFSET_S for k in range(count)):
            if any(a <= t < b for a, b in windows):
                # the first failure of a kill hits the new error, later ones time out
                kind = "ERR_TIMEOUT" if policy == "failover" and int(t * 10) % 3 == 0 else error
                out.append(op(t, partition=pidx, policy=policy, outcome=outcome, error=kind,
                              end=t + service_s, attempt=3 if policy == "java" else 1))
            else:
                out.append(op(t, partition=pidx, policy=policy))
        for r in injected:      # meta queries during the outage, paced per policy
            if pidx in r.event.affected_partitions:
                pace = {"failover": 0.05, "java": 0.333}.get(policy, 1.0)
                n = int(min(delay(policy, r, pidx), 3.0) / pace)
                out += [meta(r.event.t_inject + k * pace + 0.001 * pidx, policy=policy) for k in range(n)]
    out += [op(T_START + k / 5 + OFFSET_S, name="get", partition=PARTITIONS[k % len(PARTITIONS)],
               policy=policy, end=T_START + k / 5 + OFFSET_S + SERVICE_S / 2)
            for k in range(int((T_END - T_START) * 5))]
    out += [op(T_START + k / 2 + 0.0125, name="multi_put", partition=7, policy=policy,
               end=T_START + k / 2 + 0.0125 + 2 * SERVICE_S)
            for k in range(int((T_END - T_START) * 2))]
    return out


def make_run(directory: Path, *, policies: Sequence[str] = POLICIES, faults: bool = True,
             delay: Callable[[str, FaultRecord, int], float] = default_delay,
             hlog: bool = True, extra: dict | None = None) -> Path:
    """Write a run folder under ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    records = fault_records(faults=faults)
    events = [r.event for r in records]
    history = [o for p in policies for o in _history(p, records, delay)]
    marks = sorted((e.t_inject, e.affected_partitions) for e in events if not e.skipped)
    heals = sorted((e.t_heal, e.affected_partitions) for e in events if not e.skipped)
    recorder = Recorder()
    with IntervalLogs(directory, t0=T_START, start_wall_s=1_700_000_000.0) as logs:
        t_log = T_START + 10.0
        for o in sorted(history, key=lambda o: o.end):
            while marks and marks[0][0] <= o.end:
                recorder.fault_at(*marks.pop(0))
            while heals and heals[0][0] <= o.end:
                recorder.heal_at(*heals.pop(0))
            while o.end >= t_log:          # one interval every 10 s of recorded time
                logs.write(recorder.histograms(), t_log - 10.0, t_log)
                t_log += 10.0
            recorder.record(o)
        logs.write(recorder.histograms(), t_log - 10.0, T_END)
        if not hlog:
            for path in logs.paths.values():
                path.unlink()
    state = recorder.snapshot()
    acked = sum(1 for o in history if o.outcome == "ok" and o.op != "get")
    run_extra = {
        "seed": 42,
        "profile": {"name": "ci", "seed": 42,
                    "cluster": {"mode": "onebox", "table": "temp", "replica_nodes": 3,
                                "partitions": 8, "fd": {"beacon_s": 0.3, "check_s": 0.1,
                                                        "lease_s": 1.2, "grace_s": 1.5}},
                    "workload": {"users": 8, "rate_per_user": 50.0, "op_timeout_ms": 1000.0},
                    "policies": {"compare": list(policies), "mode": "paired"}},
        "versions": {"pegbench": "0.1.0", "python": "3.11.7", "plotly": "7.1.0"},
        "machine": {"cpus": 2, "platform": "Linux-x86_64"},
        "clock_anchor": {"monotonic_s": T_START, "wall_s": 1_700_000_000.0},
    }
    run_extra.update(extra or {})
    results = build_results(state, events, t_start=T_START, t_end=T_END,
                            missed={"legacy": 3}, durability={"acked": acked, "verified": acked},
                            slo=SLO, extra=run_extra)
    if hlog:    # the TTR log a run writes beside the latency logs
        write_ttr_log(directory, results, t0=T_START, start_wall_s=1_700_000_000.0)
    return write_run_files(directory, results, state, records)


def write_run_files(directory: Path, results: dict, state, records: Sequence[FaultRecord], *,
                    t_start: float = T_START, t_end: float = T_END) -> Path:
    """What ``pegbench run`` leaves for the report: results.json, timeline.json, faults.jsonl."""
    events = [r.event for r in records]
    write_results(directory / "results.json", results)
    write_timeline(directory / "timeline.json",
                   build_timeline(state, events, t_start=t_start, t_end=t_end))
    log = FaultLog(directory / FAULTS_JSONL)
    for r in records:
        log.write(r)
    log.close()
    return directory
