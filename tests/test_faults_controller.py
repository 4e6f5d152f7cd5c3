"""The fault controller with an in-memory injector and cluster: timing against the plan,
health gate, target resolution, healing in ``finally``, listeners, records and faults.jsonl."""

from __future__ import annotations

import json
import time

import gevent
import pytest
from support.faults import NODES, FakeCluster, FakeInjector, RecordingListener, planned

from loadgen.config.schema import HealthGateConfig
from loadgen.events import Events
from loadgen.config.targets import NodeTarget
from loadgen.faults.controller import FaultController
from loadgen.faults.injectors import NoneInjector
from loadgen.metrics import FaultInstant, Recorder
from loadgen.metrics.events import HEAL, INJECT
from loadgen.report.run_dir import read_fault_log

pytestmark = pytest.mark.unit

NO_GATE = HealthGateConfig(enabled=False)


def controller(plan, *, injector=None, cluster=None, gate=NO_GATE, listeners=(), log=None,
               on_demand=False):
    """A controller over fakes; each of ``listeners`` hears the fault_instant event."""
    cluster = cluster or FakeCluster()
    events = Events()
    for listener in listeners:
        events.fault_instant.add_listener(listener.fault_instant)
    return FaultController(plan, injector=injector or FakeInjector(), cluster=cluster,
                           health_gate=gate, events=events, log_path=log, on_demand=on_demand)


def test_plan_runs_against_the_clock_and_announces_each_fault(tmp_path):
    listener = RecordingListener()
    injector = FakeInjector()
    c = controller([planned(1, 0.1, "pause", "replica1", duration_s=0.2),
                    planned(2, 0.4, "kill", "primary-of:2", restart_after_s=0.1)],
                   injector=injector, listeners=[listener], log=tmp_path / "faults.jsonl")
    t0 = time.monotonic()
    c.start(t0)
    assert c.join(5)
    records = c.stop()

    assert injector.actions() == [("pause", "replica1"), ("resume", "replica1"),
                                  ("kill", "replica3"), ("restart", "replica3")]
    pause, kill = records
    assert pause.injected and pause.event.node == "replica1" and pause.addr == NODES["replica1"].addr
    assert pause.event.affected_partitions == (0, 3)  # replica1 leads partitions 0 and 3
    assert kill.event.node == "replica3" and kill.event.affected_partitions == (2,)
    for record, fault in zip(records, c.plan):
        assert record.event.t_inject >= t0 + fault.at_s  # never early
        assert record.event.t_heal - record.event.t_inject >= fault.heal_at_s - fault.at_s
        assert record.healed_by == "plan"
    assert kill.event.t_inject >= pause.event.t_heal  # one fault at a time, in order
    assert listener.heard == [
        FaultInstant("1", "pause", "replica1", INJECT, pause.event.t_inject, (0, 3)),
        FaultInstant("1", "pause", "replica1", HEAL, pause.event.t_heal, (0, 3)),
        FaultInstant("2", "kill", "replica3", INJECT, kill.event.t_inject, (2,)),
        FaultInstant("2", "kill", "replica3", HEAL, kill.event.t_heal, (2,))]
    lines = read_fault_log(tmp_path / "faults.jsonl")
    assert [line["id"] for line in lines] == [1, 2]
    assert lines[0]["actions"][0]["action"] == "pause" and lines[0]["injected"]
    events = c.fault_events()
    assert [(e.id, e.kind, e.node, e.skipped) for e in events] == [
        ("1", "pause", "replica1", False), ("2", "kill", "replica3", False)]


def test_faults_on_other_nodes_overlap_as_planned():
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.4),
                    planned(2, 0.1, "pause", "replica2", duration_s=0.1)], injector=injector)
    c.start()
    assert c.join(5)
    assert injector.actions() == [("pause", "replica1"), ("pause", "replica2"),
                                  ("resume", "replica2"), ("resume", "replica1")]
    c.stop()


def test_server_failover_from_the_history_and_unchanged_config():
    cluster = FakeCluster()
    c = controller([planned(1, 0.0, "kill", "replica1", restart_after_s=0.3)], cluster=cluster)
    c.start()
    gevent.sleep(0.1)
    cluster.change(time.monotonic(), 0, "")          # downgrade
    cluster.change(time.monotonic() + 0.001, 0, "replica2")   # promotion: partition 0 fails over
    assert c.join(5)
    (record,) = c.stop()
    event = record.event
    assert event.affected_partitions == (0, 3)
    assert 0.05 < event.server_failover_s[0] < event.t_heal - event.t_inject
    assert event.server_failover_s[3] is None  # never changed: t_heal - t_inject in the event
    assert event.failover_s(3) == pytest.approx(event.t_heal - event.t_inject)


def test_health_gate_skips_a_fault_and_says_why():
    cluster = FakeCluster()
    cluster.problems_now = ["replica2 dead", "partition 1: no alive primary"]
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1),
                    planned(2, 0.5, "pause", "replica1", duration_s=0.1)],
                   injector=injector, cluster=cluster,
                   gate=HealthGateConfig(enabled=True, limit_s=0.3))
    started = time.monotonic()
    c.start()
    gevent.sleep(0.45)
    cluster.problems_now = []
    assert c.join(5)
    first, second = c.stop()
    assert not first.injected and "not healthy within 0.3 s" in first.event.skip_reason
    assert "replica2 dead" in first.event.skip_reason
    assert cluster.health_checks > 1  # it kept asking until the limit
    assert second.injected and second.event.t_inject - started >= 0.5
    assert injector.actions() == [("pause", "replica1"), ("resume", "replica1")]
    assert first.event.skipped


def test_health_gate_waits_while_an_earlier_fault_heals():
    cluster = FakeCluster()
    injector = FakeInjector()

    class Gate(FakeCluster):
        def problems(self) -> list[str]:  # unhealthy while any node is not running
            return [f"{n} {s}" for n, s in injector.state.items() if s != "running"]

    gated = Gate()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.3),
                    planned(2, 0.1, "pause", "replica2", duration_s=0.1)],
                   injector=injector, cluster=gated, gate=HealthGateConfig(limit_s=5))
    c.start()
    assert c.join(5)
    first, second = c.stop()
    assert second.injected and second.event.t_inject >= first.event.t_heal  # waited for the heal
    del cluster


def test_primary_of_a_partition_without_primary_is_skipped():
    cluster = FakeCluster({0: "replica1", 1: "", 2: "replica3", 3: "replica1"})
    c = controller([planned(1, 0.0, "kill", "primary-of:1", restart_after_s=0.1),
                    planned(2, 0.0, "kill", "primary-of:3", restart_after_s=0.1)],
                   cluster=cluster)
    c.start()
    assert c.join(5)
    first, second = c.stop()
    assert not first.injected and first.event.skip_reason == "primary-of:1: partition 1 has no primary"
    assert second.injected and second.event.node == "replica1"


def test_a_node_held_by_another_fault_is_not_faulted_again():
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.3),
                    planned(2, 0.1, "kill", "primary-of:0")], injector=injector)
    c.start()
    assert c.join(5)
    _, second = c.stop()
    assert not second.injected and "replica1 is still held by fault 1" in second.event.skip_reason
    assert injector.actions() == [("pause", "replica1"), ("resume", "replica1")]


def test_stop_mid_pause_resumes_and_records_what_never_came_due(tmp_path):
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=30),
                    planned(2, 40, "pause", "replica2", duration_s=1)], injector=injector,
                   log=tmp_path / "faults.jsonl")
    c.start()
    gevent.sleep(0.1)
    assert injector.state["replica1"] == "paused"
    first, second = c.stop()
    assert injector.state["replica1"] == "running"
    assert first.healed_by == "stop" and first.event.t_heal is not None
    assert not second.injected and "ended before it came due" in second.event.skip_reason
    assert [line["id"] for line in read_fault_log(tmp_path / "faults.jsonl")] == [1, 2]


def test_a_killed_controller_greenlet_still_heals():
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=30)], injector=injector)
    c.start()
    gevent.sleep(0.1)
    c._greenlet.kill()  # as gevent.killall at exit would
    assert injector.state["replica1"] == "running"
    c.stop()


def test_a_kill_without_restart_is_left_dead_only_at_a_normal_end():
    cluster = FakeCluster()
    injector = FakeInjector()
    c = controller([planned(1, 0.0, "kill", "replica1")], injector=injector, cluster=cluster)
    c.start()
    gevent.sleep(0.05)
    cluster.change(time.monotonic(), 0, "replica2")
    cluster.change(time.monotonic() + 0.01, 3, "replica3")
    assert c.join(5)
    (record,) = c.stop()
    assert injector.state["replica1"] == "dead" and record.healed_by == ""
    # DESIGN.md: a kill never restarted heals at the last failover instant
    event = record.event
    assert event.t_heal == pytest.approx(event.t_inject + event.server_failover_s[3])

    injector = FakeInjector()
    c = controller([planned(1, 0.0, "kill", "replica1")], injector=injector)
    c.start()
    gevent.sleep(0.05)
    (record,) = c.stop(interrupted=True)
    assert injector.state["replica1"] == "running" and record.healed_by == "stop"
    assert injector.actions() == [("kill", "replica1"), ("restart", "replica1")]


def test_observe_only_records_planned_faults_as_not_injected(tmp_path):
    c = controller([planned(1, 0.0, "kill", "primary-of:0", restart_after_s=1)],
                   injector=NoneInjector(), log=tmp_path / "faults.jsonl")
    c.start()
    assert c.join(5)
    (record,) = c.stop()
    assert not record.injected and "observes only" in record.event.skip_reason
    (line,) = read_fault_log(tmp_path / "faults.jsonl")
    assert line["skipped"] and line["injector"] == "none" and line["target"] == "primary-of:0"
    assert c.fault_events()[0].skipped


def test_failed_actions_are_recorded_and_uncertain_ones_healed():
    injector = FakeInjector(fail={"pause": ("exit status 255: ssh: connect refused", True)})
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1)], injector=injector)
    c.start()
    assert c.join(5)
    (record,) = c.stop()
    assert not record.injected and "exit status 255" in record.event.skip_reason
    assert [a.action for a in record.actions] == ["pause", "resume"]  # healed all the same

    injector = FakeInjector(fail={"resume": ("timed out", True)})
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1)], injector=injector)
    c.start()
    assert c.join(5)
    (record,) = c.stop()
    assert record.injected and record.event.t_heal is None  # never healed: tried again at the end
    assert [a.action for a in record.actions] == ["pause", "resume", "resume"]


def test_a_failing_listener_is_not_fatal_and_a_recorder_listens(caplog):
    class Broken:
        def fault_instant(self, instant):
            raise RuntimeError("listener bug")

    recorder = Recorder()
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1)],
                   listeners=[Broken(), recorder])
    c.start()
    assert c.join(5)
    (record,) = c.stop()
    assert record.injected and "listener bug" in caplog.text
    state = recorder.snapshot()
    assert state.faults == ((record.event.t_inject, (0, 3)),)
    assert state.heals == ((record.event.t_heal, (0, 3)),)


def test_each_final_record_is_announced_once_as_its_fault_event():
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1),
                    planned(2, 0.3, "pause", "replica2", duration_s=60),
                    planned(3, 90.0, "kill", "replica3")])
    recorded = []
    c.events.fault_recorded.add_listener(lambda event: recorded.append(event))
    c.start()
    gevent.sleep(0.6)
    assert [e.id for e in recorded] == ["1"]   # healed, settled before fault 2 went in
    c.stop()
    assert recorded == c.fault_events()        # 2 healed at the end, 3 never came due


def test_a_fault_asked_for_while_it_runs_goes_in_at_once_as_the_ui_s():
    c = controller([planned(1, 60.0, "kill", "replica3")], on_demand=True)
    c.start()
    gevent.sleep(0.05)
    paused = c.inject_now("pause", NodeTarget("replica1"), duration_s=0.2)
    refused = c.inject_now("kill", NodeTarget("replica1"))   # the pause holds replica1
    gevent.sleep(0.5)
    assert not c.finished                 # on demand: it runs until stopped
    records = {r.id: r for r in c.stop()}
    assert (paused, refused) == (2, 3)    # after the plan's ids
    pause = records[paused]
    assert pause.origin == "ui" and pause.injected and pause.healed_by == "plan"
    assert pause.event.t_heal - pause.event.t_inject >= 0.2
    assert not records[refused].injected
    assert "still held by fault 2" in records[refused].event.skip_reason
    assert not records[1].injected        # the planned kill never came due
    with pytest.raises(RuntimeError, match="no run is in progress"):
        c.inject_now("pause", NodeTarget("replica2"), duration_s=1)


def test_without_on_demand_no_fault_can_be_asked_for():
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1)])
    c.start()
    with pytest.raises(RuntimeError):
        c.inject_now("pause", NodeTarget("replica2"), duration_s=1)
    assert c.join(5)                       # and it ends with its plan, as before
    c.stop()


def test_faults_jsonl_lines_are_plain_json(tmp_path):
    c = controller([planned(1, 0.0, "pause", "replica1", duration_s=0.1)],
                   log=tmp_path / "faults.jsonl")
    c.start()
    assert c.join(5)
    c.stop()
    (line,) = (tmp_path / "faults.jsonl").read_text().splitlines()
    data = json.loads(line)
    assert set(data) >= {"id", "kind", "target", "node", "t_inject", "t_heal", "injected",
                         "skip_reason", "affected_partitions", "server_failover_ms", "actions"}
    assert data["server_failover_ms"] == {"0": None, "3": None}
