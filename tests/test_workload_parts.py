"""The workload's parts without Locust or sockets: values, ledger, load monitor, settings,
verdict exit codes, the master's merge of worker reports, the fault relay, the Recovery rows."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import gevent
import pytest
from support.metrics import op, record_in_end_order, writes

from loadgen.config.profile import load_profile
from loadgen.config.schema import OpMix
from loadgen.errors import ConfigError
from loadgen.events import Events
from loadgen.harness.distributed import (MSG_FAULT, MSG_FLUSH, MSG_VERIFY, MasterCollector, WorkerReporter,
                                         build_report)
from loadgen.harness.fault_relay import FaultRelay
from loadgen.harness.hooks import FinishedRun
from loadgen.harness.options import settings_from_options
from loadgen.harness.verdict import exit_code_for, set_exit_code
from loadgen.harness.webui import NOTES, RecoveryTab
from loadgen.load.durability import DurabilityBook, ValueMaker, pack_token, token_counter
from loadgen.load.selfcheck import LoadMonitor, Saturation
from loadgen.load.workload import Workload, WorkloadSettings
from loadgen.metrics import FaultEvent, FaultInstant, Recorder
from loadgen.metrics.events import HEAL, INJECT

pytestmark = pytest.mark.unit

QUICK = "profiles/quick.toml"


# ----------------------------------------------------------------------- values, ledger

def test_values_are_derived_from_tokens_and_recognised():
    a, b = ValueMaker(1024, seed=7), ValueMaker(1024, seed=7)
    token = pack_token(123, 300)
    value = a.value(token)
    assert len(value) == 300 and value == b.value(token)      # same in every process
    assert a.token_of(value) == token and token_counter(token) == 123
    assert a.value(pack_token(124, 300)) != value
    assert a.token_of(value[:-1] + bytes([value[-1] ^ 1])) is None   # a corrupted body
    assert len(a.value(pack_token(5, 3))) == 3 and a.value(pack_token(5, 0)) == b""


def test_ledger_keeps_last_ack_and_later_unknowns_within_a_budget():
    book = DurabilityBook(ValueMaker(64), max_slots=2)
    ledger = book.ledger(b"p/")
    ledger.unknown(0, 1)
    ledger.ok(0, 2)                 # an ack clears the unknown writes before it
    ledger.unknown(0, 3)
    ledger.inflight[0] = 4
    assert ledger.candidates(0) == (2, [3, 4])
    ledger.ok(2, 5)
    ledger.ok(4, 6)                 # a third slot: over budget, not tracked
    assert book.acked() == 2 and book.untracked == 1
    for t in range(100):
        ledger.unknown(2, 10 + t)
    assert len(ledger.maybe[2]) <= 17    # bounded: past 16, "any newer value" stands for them


# ----------------------------------------------------------------------- load monitor

class Clocks:
    def __init__(self):
        self.wall = self.cpu = 0.0


def test_monitor_flags_a_busy_cpu_only_over_a_full_window_and_reset_clears_it():
    c = Clocks()
    m = LoadMonitor(window_s=3, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    for i in range(3):
        c.wall += 1.0
        c.cpu += 0.95
        m.sample(c.wall, c.cpu, late_s=0.001)
        assert m.status().saturated == (i == 2)
    status = m.status()
    assert "CPU 95%" in status.reason and status.cpu_max == pytest.approx(0.95)
    assert status.since == pytest.approx(3.0)
    m.reset()
    assert not m.status().saturated


def test_monitor_flags_a_late_hub_but_not_one_hiccup():
    c = Clocks()
    m = LoadMonitor(window_s=5, late_window_s=5, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    for late in (0.3, 0.0, 0.0, 0.001, 0.0):     # one GC pause: the median stays low
        c.wall += 1.0
        c.cpu += 0.3
        m.sample(c.wall, c.cpu, late)
    assert not m.status().saturated and m.status().late_max_ms == pytest.approx(300)
    for _ in range(3):
        c.wall += 1.0
        c.cpu += 0.5
        m.sample(c.wall, c.cpu, 0.08)
    assert m.status().saturated and "hub late" in m.status().reason


def test_monitor_flags_lateness_that_lasts_not_a_few_seconds_of_contention():
    # Seen in ci runs: a restarted node learning on the other core held the hub ~60 ms late
    # for about 5 s; a generator that cannot keep up stays late.
    c = Clocks()
    m = LoadMonitor(clock=lambda: c.wall, cpu_clock=lambda: c.cpu)  # 15 s for lateness

    def second(late: float) -> None:
        c.wall += 1.0
        c.cpu += 0.3
        m.sample(c.wall, c.cpu, late)

    for late in [0.002] * 10 + [0.07] * 6 + [0.002] * 10:
        second(late)
    assert not m.status().saturated
    for _ in range(8):
        second(0.07)
    assert m.status().saturated and "over 15 s" in m.status().reason


def test_saturation_of_several_processes_names_the_saturated_ones():
    both = Saturation.combine({"w0": Saturation(), "w1": Saturation(True, "CPU 99%", 0.99, 3, 7.0)})
    assert both.saturated and both.reason == "w1: CPU 99%" and both.cpu_max == 0.99
    assert Saturation.from_dict(json.loads(json.dumps(both.as_dict()))) == both
    assert not Saturation.combine({}).saturated


# ----------------------------------------------------------------------- settings, verdict

def test_settings_come_from_the_profile_with_meta_and_policies_from_the_command_line():
    options = argparse.Namespace(profile="nightly", pegbench_profile=QUICK, meta="127.0.0.1:1,h:2",
                                 policies="java,failover", pegbench_set=["workload.users=3"],
                                 pegbench_run_id=None)
    s = settings_from_options(options)
    assert s.meta == ("127.0.0.1:1", "h:2") and s.policies == ("java", "failover")
    w = load_profile(QUICK).workload  # the rest is the profile's, whatever its size
    assert s.workload == dataclasses.replace(w, users=3) and s.total_users == 6
    assert w.users != 3  # so the override above is seen
    assert s.workload.mix == OpMix(put=0.85, multi_put=0.10, get=0.05)
    # written back, so a master ships them to its workers
    assert options.pegbench_profile == QUICK and options.pegbench_run_id == s.run_id
    assert WorkloadSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_settings_overrides_win_over_the_profile_for_workload_fields_and_run_facts():
    s = WorkloadSettings.from_profile(load_profile(QUICK), meta=["h:1"], users=5, seed=9)
    assert (s.workload.users, s.seed, s.meta) == (5, 9, ("h:1",))


def test_settings_errors_name_what_is_missing():
    with pytest.raises(ConfigError, match="meta"):
        WorkloadSettings.from_profile(load_profile(QUICK))
    bad = argparse.Namespace(profile=None, pegbench_profile=None, meta="h:1", policies="nope",
                             pegbench_set=None, pegbench_run_id=None)
    with pytest.raises(ConfigError, match="nope"):
        settings_from_options(bad)
    # Locust's own --profile names a run group; a TOML file there is the old spelling
    old = argparse.Namespace(profile=QUICK, pegbench_profile=None, meta="h:1", policies=None,
                             pegbench_set=None, pegbench_run_id=None)
    with pytest.raises(ConfigError, match="--pegbench-profile"):
        settings_from_options(old)


def test_verdicts_map_to_exit_codes_and_saturation_makes_them_unknown():
    assert [exit_code_for(v) for v in (True, False, "unknown", None)] == [0, 1, 1, 0]
    busy = Saturation(saturated=True, reason="CPU")
    assert exit_code_for(True, saturation=busy) == 1
    env = SimpleNamespace(process_exit_code=None)
    assert set_exit_code(env, True, saturation=Saturation()) == 0 == env.process_exit_code


# ----------------------------------------------------------------------- master and workers

class FakeRunner:
    """A master runner's messaging, recorded."""

    def __init__(self, clients=()):
        self.clients = list(clients)
        self.sent: list[tuple[str, dict, str | None]] = []

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append((msg_type, data, client_id))


def worker(label: str, t0: float, ops: int) -> Workload:
    w = Workload(WorkloadSettings(meta=("h:1",), policies=("failover",), run_id="r"), label=label)
    for k in range(ops):
        w.recorder.record(op(t0 + k * 0.01, partition=k % 4))
    w.missed["failover"] = 2
    return w


def msg(node_id: str, data: dict) -> SimpleNamespace:
    return SimpleNamespace(node_id=node_id, data=data)


def test_cumulative_reports_replace_per_worker_and_never_double_count():
    master = MasterCollector(FakeRunner())
    w0, w1 = worker("w0", 100.0, 30), worker("w1", 100.0, 50)
    r0a = build_report(w0, seq=1, final=False)
    for k in range(10):                              # w0 records more, then reports again
        w0.recorder.record(op(101.0 + k * 0.01))
    r0b = build_report(w0, seq=2, final=False)
    r1 = build_report(w1, seq=1, final=False)
    for client, report in (("c0", r0a), ("c0", r0b), ("c0", r0b), ("c1", r1), ("c0", r0a)):
        master.on_report(client, {"pegbench": report})   # repeated and reordered
    merged = master.report()
    assert merged.state.policies["failover"].ops == 40 + 50
    assert merged.missed == {"failover": 4}
    assert master.on_report("c2", {"stats": []}) is None     # not ours: ignored


def test_light_reports_refresh_counters_on_the_last_state_shipped():
    master = MasterCollector(FakeRunner())
    w0 = worker("w0", 100.0, 30)
    master.on_report("c0", {"pegbench": build_report(w0, seq=1, final=False, with_state=False)})
    assert master.report().state.policies == {}          # nothing to attach counters to yet
    master.on_report("c0", {"pegbench": build_report(w0, seq=2, final=False)})
    w0.recorder.record(op(102.0))
    w0.missed["failover"] = 9
    master.on_report("c0", {"pegbench": build_report(w0, seq=3, final=False, with_state=False)})
    live = master.report()
    assert live.state.policies["failover"].ops == 30 and live.missed == {"failover": 9}


def test_durability_results_block_counts_unreadable_writes_as_lost():
    from loadgen.load.durability import Durability
    from loadgen.metrics import build_results

    d = Durability(acked=10, verified=7, lost=1, unreadable=2, untracked=5)
    results = build_results(Recorder().snapshot(), [], t_start=0.0, t_end=1.0,
                            durability=d.results_block())
    assert results.durability.to_dict() == {"acked": 10, "verified": 7, "lost": 3}
    assert Durability(**d.as_dict()) == d


def test_final_flush_waits_for_every_known_worker_and_names_the_missing():
    runner = FakeRunner(clients=["c0", "c1"])
    master = MasterCollector(runner)
    w0, w1 = worker("w0", 100.0, 30), worker("w1", 100.0, 50)
    master.on_report("c1", {"pegbench": build_report(w1, seq=1, final=False)})
    request = master.request_final()
    assert sorted(c for t, _, c in runner.sent if t == MSG_FLUSH) == ["c0", "c1"]
    master.on_final(msg=msg("c0", {"request": request, "report": build_report(w0, seq=5, final=True)}))
    master.on_final(msg=msg("c1", {"request": request - 1, "report": {}}))   # stale: ignored
    partial = master.wait_final(0.05)
    assert partial.missing == ("c1",) and not partial.complete
    assert partial.state.policies["failover"].ops == 80   # c1's last periodic report counts
    w1.recorder.record(op(200.0))
    master.on_final(msg=msg("c1", {"request": request, "report": build_report(w1, seq=2, final=True)}))
    done = master.wait_final(0.05)
    assert done.complete and done.workers == ("c0", "c1")
    assert done.state.policies["failover"].ops == 81
    # a periodic report after the final one changes nothing
    master.on_report("c1", {"pegbench": build_report(worker("w1", 0.0, 500), seq=9, final=False)})
    assert master.report().state.policies["failover"].ops == 81


def test_durability_read_backs_are_summed_over_workers():
    runner = FakeRunner(clients=["c0", "c1"])
    master = MasterCollector(runner)

    def answer():
        req = next(d["request"] for t, d, _ in runner.sent if t == MSG_VERIFY)
        for c, n in (("c0", 5), ("c1", 7)):
            master.on_verified(msg=msg(c, {"request": req, "durability": {
                "acked": n, "verified": n - 1, "lost": 1, "unreadable": 0, "untracked": 0}}))

    gevent.spawn_later(0.01, answer)
    total, missing = master.request_durability(timeout_s=1)
    assert (total.acked, total.verified, total.lost, missing) == (12, 10, 2, ())


def test_relay_marks_the_recorder_forwards_every_instant_and_merges_controller_events():
    runner = FakeRunner(clients=["c0"])
    recorder = Recorder()
    relay = FaultRelay(recorder, runner)
    instants = [FaultInstant("1", "kill", "replica1", INJECT, 10.0, (1, 3)),
                FaultInstant("1", "kill", "replica1", HEAL, 12.0, (1, 3)),
                FaultInstant("2", "pause", "replica2", INJECT, 20.0, (2,))]
    for instant in instants:
        relay.fault_instant(instant)
    assert [t for t, _ in recorder.snapshot().faults] == [10.0, 20.0]
    assert [t for t, _ in recorder.snapshot().heals] == [12.0]
    last = [d for t, d, _ in runner.sent if t == MSG_FAULT][-1]
    assert [FaultInstant.from_dict(d) for d in last["instants"]] == instants
    # before the controller has final records, the instants describe each fault by its id
    assert [(e.id, e.kind, e.node, e.t_inject, e.t_heal, e.affected_partitions)
            for e in relay.fault_events()] == [("1", "kill", "replica1", 10.0, 12.0, (1, 3)),
                                               ("2", "pause", "replica2", 20.0, None, (2,))]
    # the controller's record of fault 1 replaces its live one, matched by id, not by time
    events = Events()
    events.fault_recorded.add_listener(relay.fault_recorded)
    events.fault_recorded.fire(event=FaultEvent(id="1", kind="kill", node="replica1",
                                                t_inject=10.0004, t_heal=12.0,
                                                affected_partitions=(1, 3),
                                                server_failover_s={1: 0.5, 3: 0.6}))
    events = relay.fault_events()
    assert [(e.id, e.kind, e.t_heal) for e in events] == [("1", "kill", 12.0),
                                                          ("2", "pause", None)]
    assert events[0].server_failover_s == {1: 0.5, 3: 0.6}

    # a worker marks each instant once on its recorder, on the master's clock
    w = worker("w0", 0.0, 0)
    reporter = WorkerReporter(None, lambda: w)
    for _ in range(2):
        reporter.on_fault(msg=msg("master", last))
    assert [t for t, _ in w.recorder.snapshot().faults] == [10.0, 20.0]
    assert [t for t, _ in w.recorder.snapshot().heals] == [12.0]
    assert w.clock_shift_s == 0.0


# ----------------------------------------------------------------------- Recovery rows

def test_recovery_rows_show_each_policy_and_each_fault_with_its_ttr():
    recorder = Recorder()
    t_fault = 105.0
    history = writes(100.0, 110.0, partition=3, policy="failover",
                     ok=lambda t: not t_fault <= t < t_fault + 0.2)
    history += writes(100.0, 110.0, partition=3, policy="legacy", ok=lambda t: t < t_fault)
    record_in_end_order(recorder, history, faults=[(t_fault, (3,))])
    relay = FaultRelay(recorder)
    relay.fault_instant(FaultInstant("1", "kill", "replica1", INJECT, t_fault, (3,)))
    settings = WorkloadSettings(meta=("h:1",), policies=("legacy", "failover"), run_id="r")
    finished = [FinishedRun(1, Path("/runs/quick-1"), "pass",
                            ("failover.recovered_fraction 1.0 (min 1.0): pass",)),
                FinishedRun(2, Path("/runs/quick-1-2"), "unknown", (), "the run was interrupted")]
    harness = SimpleNamespace(
        settings=settings, relay=relay, live_state=recorder.snapshot, finished=finished,
        live_missed=lambda: {"legacy": 7},
        workload=SimpleNamespace(labels={"legacy": "legacy", "failover": "failover"},
                                 t_test_start=100.0))
    tab = RecoveryTab(harness, clock=lambda: 111.0)
    rows = {r["name"].split(",")[0]: r for r in tab.rows()}
    legacy, failover = rows["legacy"], rows["failover"]
    assert failover["ops"] == legacy["ops"] == 200
    assert failover["errors"] == 4 and failover["ttr_first_p50_ms"] < 1000
    assert legacy["ttr_first_p50_ms"] == "∞" and legacy["missed"] == 7
    # the last fault's TTR-first (no server failover known yet: no client lag)
    assert 0 < failover["last_ttr_first_ms"] < 1000 and failover["last_lag_ms"] == ""
    assert legacy["last_ttr_first_ms"] == "not recovered"
    # over the last 10 s (101-111): 20 ops/s each; legacy failing since 105, failover for 0.2 s
    assert 15 <= failover["ops_per_s"] == legacy["ops_per_s"] <= 20
    assert failover["errors_per_s"] == 0.4 < legacy["errors_per_s"] <= legacy["ops_per_s"]
    assert failover["p99_response_ms"] > 0
    # the seconds since the fault (105-111) only: a number for both, none before any fault
    assert failover["p99_fault_ms"] > 0 and legacy["p99_fault_ms"] > 0
    # the live chart's data: each second since the test's start up to the last op timeout
    # + 1 s (at 111 s: 100-108, whose ops are all back), the fault's band
    series = tab.series()
    assert series["policies"]["legacy"]["t"] == [float(s) for s in range(9)]
    assert sum(series["policies"]["failover"]["ops"]) == 180
    assert sum(series["policies"]["failover"]["errors"]) == 4
    (band,) = series["faults"]
    assert (band["id"], band["kind"], band["t_inject"], band["t_heal"]) == ("1", "kill", 5.0, None)
    fault = next(r for name, r in rows.items() if name.startswith("fault"))
    assert fault["name"].startswith("fault 1: kill replica1 at 5.0 s, partitions 3"), fault["name"]
    assert fault["ttr_0"].startswith("not recovered") and fault["ttr_1"].endswith("ms")
    keys = [c["key"] for c in tab.columns()]
    assert keys[-2:] == ["ttr_0", "ttr_1"] and all(k in keys for k in failover if k != "kind")
    assert [r["kind"] for r in tab.rows()] == ["policy", "policy", "fault", "run", "run"]
    assert "<table id='recovery'>" in tab.html() and "TTR-first / lag failover" in tab.html()
    # finished runs, newest first: the verdict, why, the checks, the report's link
    runs = [r for r in tab.rows() if r["name"].startswith("run ")]
    assert [r["name"] for r in runs] == [
        "run 2 (quick-1-2): verdict UNKNOWN (the run was interrupted)",
        "run 1 (quick-1): verdict PASS; failover.recovered_fraction 1.0 (min 1.0): pass"]
    assert runs[1]["report"] == "/pegbench/runs/1/report.html"
    assert "<a href='/pegbench/runs/1/report.html'>" in tab.html()
    assert [r["name"] for r in tab.tab_rows()][-2:] == list(NOTES)   # Locust's tab only
    assert not any(r["name"].startswith("note") for r in tab.rows())


def test_a_fault_cell_reads_worst_ttr_first_and_client_lag_over_the_partitions():
    from loadgen.harness.webui import _describe

    def ttr(first_s, recovered, lag_s):
        return SimpleNamespace(first_s=first_s, recovered=recovered, lag_s=lag_s)

    assert _describe([ttr(0.8, True, 0.012)]) == "800 ms / lag 12 ms"
    assert _describe([ttr(0.8, True, 0.01), ttr(0.95, True, 0.02), ttr(2.0, False, None)]) \
        == "max 950 ms / lag 20 ms (2/3)"
    assert _describe([ttr(0.8, True, None)]) == "800 ms"          # server failover unknown
    assert _describe([ttr(4.1, False, None)]) == "not recovered (4.1 s observed)"


def test_workers_on_another_host_record_on_the_masters_clock():
    import time

    from loadgen.harness.distributed import boot_id, clock_anchor, clock_shift

    assert clock_shift(clock_anchor()) == 0.0                  # same host: same monotonic clock
    other = {"boot_id": boot_id() + "-elsewhere", "offset_s": time.time() - time.monotonic() - 42.0}
    assert clock_shift(other) == pytest.approx(42.0, abs=0.01)
    w = worker("w0", 0.0, 0)
    w.set_clock_shift(42.0)
    w.observer(op(100.0, partition=1))                         # what its clients report to
    w.recorder.fault_at(142.0, [1])                            # instants come in master time
    state = w.recorder.snapshot()
    assert list(state.policies["failover"].series.coarse) == [142]
    assert state.faults == ((142.0, (1,)),)
