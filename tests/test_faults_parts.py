"""The fault controller's parts, as pure data: config history and server failover, health
rules, fault records and their events, the injector registry, the config-log tail."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from support.faults import ADDRS, config

from loadgen.config.schema import CommandTemplates, InjectorConfig
from loadgen.errors import ConfigError
from loadgen.faults import injectors
from loadgen.faults.cluster import ExternalCluster, config_problems
from loadgen.faults.command_injector import CommandInjector
from loadgen.faults.history import ConfigChange, ConfigHistory
from loadgen.faults.injector import ActionRecord
from loadgen.faults.observer import LogTailObserver
from loadgen.faults.records import FaultLog, FaultRecord
from loadgen.metrics import FaultEvent
from loadgen.onebox.cluster import RUN_CONFIG_LOG, OneboxCluster, OneboxInjector, status_problems
from loadgen.onebox.spec import CONFIG_LOG, META_NODE, OneboxSpec
from loadgen.report.run_dir import read_fault_log

pytestmark = pytest.mark.unit

A, B, C = ADDRS


def history(*changes: tuple[float, str]) -> ConfigHistory:
    """Partition 0's history: (instant, primary) pairs."""
    return ConfigHistory(ConfigChange(t=t, pidx=0, ballot=i + 1, primary=p)
                         for i, (t, p) in enumerate(changes))


# ---------------------------------------------------------------------------- history

def test_failover_is_the_first_config_naming_another_primary():
    h = history((0.0, A), (10.8, ""), (10.85, B))
    assert h.failover_instant(0, 10.0, A) == 10.85
    assert h.primaries_at(10.0) == {0: A} and h.primaries_at(10.81) == {0: ""}
    assert h.at(0, -1.0) is None


def test_no_change_means_no_failover_instant():
    assert history((0.0, A)).failover_instant(0, 10.0, A) is None
    # a change only of secondaries keeps the primary: no failover
    h = ConfigHistory([ConfigChange(0.0, 0, 1, A, (B, C)), ConfigChange(10.5, 0, 2, A, (B,))])
    assert h.failover_instant(0, 10.0, A) is None


def test_a_restarted_node_named_again_after_its_return_counts():
    # restart before the grace period: the meta drops the old life at the restart, then names
    # the same address again (the new life) once nothing better is left
    h = history((0.0, A), (10.3, ""), (10.35, A))
    assert h.failover_instant(0, 10.0, A, t_heal=10.3) == 10.35
    assert h.failover_instant(0, 10.0, A, t_heal=None) is None  # still dead: not alive
    assert history((0.0, A), (10.35, A)).failover_instant(0, 10.0, A, t_heal=10.3) is None


def test_changes_from_the_next_fault_on_the_partition_do_not_count():
    h = history((0.0, A), (30.9, B))
    assert h.failover_instant(0, 10.0, A, until=30.0) is None
    assert h.failover_instant(0, 10.0, A) == 30.9


def test_history_keeps_time_order_whatever_the_arrival_order():
    h = history((5.0, B), (1.0, A))
    assert [c.primary for c in h.changes(0)] == [A, B] and len(h) == 2


# ---------------------------------------------------------------------------- health

def test_external_health_needs_a_primary_and_the_replica_count():
    healthy = config({0: "replica1", 1: "replica2"})
    assert config_problems(healthy, replicas=3) == []
    assert config_problems(healthy, replicas=4) == ["partition 0: 3 of 4 replicas",
                                                   "partition 1: 3 of 4 replicas"]
    assert config_problems(config({0: ""}), replicas=3) == ["partition 0: no primary (none)"]


def test_onebox_health_needs_alive_members():
    parts = config({0: "replica1"})
    assert config_problems(parts, 3, alive={A, B, C}) == []
    assert config_problems(parts, 3, alive={B, C}) == [
        f"partition 0: no alive primary ({A})"]
    assert config_problems(parts, 3, alive={A, B}) == ["partition 0: 1 of 2 secondaries alive"]


def test_status_document_problems():
    status = {"partition_count": 1,
              "nodes": [{"name": "meta1", "addr": "10.0.0.1:9", "state": "running"},
                        {"name": "replica1", "addr": A, "state": "running"},
                        {"name": "replica2", "addr": B, "state": "paused"},
                        {"name": "replica3", "addr": C, "state": "running"}],
              "partitions": [{"pidx": 0, "ballot": 3, "primary": A, "secondaries": [B, C]}]}
    assert status_problems(status, 3) == ["partition 0: 1 of 2 secondaries alive"]
    status["nodes"][2]["state"] = "running"
    assert status_problems(status, 3) == []
    # a node down that hosts nothing (its partitions were copied elsewhere) is no problem
    status["nodes"].append({"name": "replica4", "addr": "10.0.0.1:4", "state": "dead"})
    assert status_problems(status, 3) == []
    assert status_problems({**status, "partition_count": None, "partitions": []}, 3) == [
        "partition config unknown (the meta did not answer)"]


# ---------------------------------------------------------------------------- records

def _action(action: str, t: float | None, t_sent: float, t_returned: float,
            error: str = "") -> ActionRecord:
    return ActionRecord(action=action, node="replica2", ok=t is not None, t=t,
                        instant="" if t is None else "signal", t_sent=t_sent,
                        t_returned=t_returned, error=error)


INJECTED = FaultRecord(
    FaultEvent(id="3", kind="pause", node="replica2", t_inject=120.01, t_heal=125.01,
               affected_partitions=(1, 4), server_failover_s={4: None, 1: 0.81},
               touched_partitions=(1, 2, 4), promoted={1: "replica3"}),
    target="primary-of:1", origin="faults.events[0]", at_s=20.0, t_planned=120.0,
    injector="onebox", addr=B, healed_by="plan",
    actions=(_action("pause", 120.01, 120.0, 120.02), _action("resume", 125.01, 125.0, 125.02)))
#: No node resolved: the event is named by the target.
SKIPPED = FaultRecord(
    FaultEvent(id="4", kind="kill", node="random", t_inject=135.0, skipped=True,
               skip_reason="cluster not healthy within 60 s: replica1 dead"),
    target="random", origin="schedule", at_s=35.0, t_planned=135.0, injector="onebox")
SKIPPED_ON_A_NODE = FaultRecord(
    FaultEvent(id="5", kind="kill", node="replica2", t_inject=140.0, skipped=True,
               skip_reason="inject failed: kill replica2: exit status 255"),
    target="replica2", origin="events", at_s=40.0, t_planned=140.0, injector="command",
    addr=B, actions=(_action("kill", None, 139.99, 140.01, error="exit status 255"),))

#: faults.jsonl lines as the format has them (keys in this order).
INJECTED_LINE = {
    "id": 3, "kind": "pause", "target": "primary-of:1", "origin": "faults.events[0]",
    "at_s": 20.0, "t_planned": 120.0, "injector": "onebox", "injected": True, "skipped": False,
    "skip_reason": "", "node": "replica2", "addr": B, "t_inject": 120.01, "t_heal": 125.01,
    "healed_by": "plan", "affected_partitions": [1, 4],
    "server_failover_ms": {"1": 810.0, "4": None}, "touched_partitions": [1, 2, 4],
    "promoted": {"1": "replica3"},
    "actions": [{"action": "pause", "node": "replica2", "ok": True, "t": 120.01,
                 "instant": "signal", "t_sent": 120.0, "t_returned": 120.02, "error": "",
                 "uncertain": False, "detail": {}},
                {"action": "resume", "node": "replica2", "ok": True, "t": 125.01,
                 "instant": "signal", "t_sent": 125.0, "t_returned": 125.02, "error": "",
                 "uncertain": False, "detail": {}}]}
SKIPPED_LINE = {
    "id": 4, "kind": "kill", "target": "random", "origin": "schedule", "at_s": 35.0,
    "t_planned": 135.0, "injector": "onebox", "injected": False, "skipped": True,
    "skip_reason": "cluster not healthy within 60 s: replica1 dead", "node": "", "addr": "",
    "t_inject": None, "t_heal": None, "healed_by": "", "affected_partitions": [],
    "server_failover_ms": {}, "touched_partitions": None, "promoted": {}, "actions": []}
SKIPPED_ON_A_NODE_LINE = {
    "id": 5, "kind": "kill", "target": "replica2", "origin": "events", "at_s": 40.0,
    "t_planned": 140.0, "injector": "command", "injected": False, "skipped": True,
    "skip_reason": "inject failed: kill replica2: exit status 255", "node": "replica2",
    "addr": B, "t_inject": None, "t_heal": None, "healed_by": "", "affected_partitions": [],
    "server_failover_ms": {}, "touched_partitions": None, "promoted": {},
    "actions": [{"action": "kill", "node": "replica2", "ok": False, "t": None, "instant": "",
                 "t_sent": 139.99, "t_returned": 140.01, "error": "exit status 255",
                 "uncertain": False, "detail": {}}]}


@pytest.mark.parametrize(("record", "line"), [(INJECTED, INJECTED_LINE), (SKIPPED, SKIPPED_LINE),
                                              (SKIPPED_ON_A_NODE, SKIPPED_ON_A_NODE_LINE)])
def test_a_record_is_one_faults_jsonl_line_of_a_fixed_shape(record, line):
    assert json.dumps(record.to_dict(), allow_nan=False) == json.dumps(line)


def test_a_record_agrees_with_its_event():
    assert (INJECTED.id, INJECTED.injected, SKIPPED.id, SKIPPED.injected) == (3, True, 4, False)
    skipped, plan = SKIPPED.event, {"target": "random", "origin": "schedule", "at_s": 35.0,
                                    "t_planned": 135.0, "injector": "onebox"}
    with pytest.raises(ValueError, match="planned instant"):
        FaultRecord(replace(skipped, t_inject=136.0), **plan)
    with pytest.raises(ValueError, match="names the target"):
        FaultRecord(replace(skipped, node="replica2"), **plan)  # a node, but no addr
    with pytest.raises(ValueError, match="the plan's"):
        FaultRecord(replace(skipped, id="r4"), **plan)
    with pytest.raises(ValueError, match="needs its node's addr"):
        replace(INJECTED, addr="")


def test_fault_log_writes_one_line_per_record(tmp_path):
    log = FaultLog(tmp_path / "out" / "faults.jsonl")
    log.write(INJECTED)
    log.write(SKIPPED)
    log.close()
    assert read_fault_log(tmp_path / "out" / "faults.jsonl") == [INJECTED_LINE, SKIPPED_LINE]


# ---------------------------------------------------------------------------- injectors

def test_the_injector_registry_lists_itself():
    assert injectors.names() == ("command", "none", "onebox")
    infos = injectors.available()
    assert [i.name for i in infos] == ["command", "none", "onebox"]
    assert all(i.summary and i.instants for i in infos)


def test_injectors_are_built_by_name():
    templates = CommandTemplates(kill="echo {node}")
    cmd = injectors.create("command", injectors.InjectorContext(
        config=InjectorConfig(kind="command", command=templates)))
    assert isinstance(cmd, CommandInjector) and cmd.templates is templates
    assert injectors.create("none").injects is False
    native = OneboxInjector(object())
    assert injectors.create("onebox", injectors.InjectorContext(native=native)) is native
    with pytest.raises(ConfigError, match="without a onebox"):
        injectors.create("onebox")
    with pytest.raises(ConfigError, match="one of command, none, onebox"):
        injectors.create("ssh")


class _Driver:
    """A onebox driver that only counts stops."""

    def __init__(self, spec: OneboxSpec):
        self.spec, self.stops = spec, 0

    def stop(self) -> None:
        self.stops += 1


def test_each_cluster_gives_the_injectors_it_can_have(tmp_path):
    external = ExternalCluster(["127.0.0.1:1"], "t", replicas=3, replica_nodes=3)
    assert external.view() is external and external.meta == ("127.0.0.1:1",)
    assert external.injector(InjectorConfig(kind="none")).injects is False
    with pytest.raises(ConfigError, match="without a onebox"):
        external.injector(InjectorConfig(kind="onebox"))
    driver = _Driver(OneboxSpec(dir=str(tmp_path), meta_port=34601, replica_ports=(34801, 34802, 34803)))
    onebox = OneboxCluster(driver)
    assert onebox.view() is onebox and onebox.meta == ("127.0.0.1:34601",)
    native = onebox.injector(InjectorConfig(kind="onebox"))
    assert isinstance(native, OneboxInjector) and native.driver is driver
    assert onebox.node("replica2").addr == "127.0.0.1:34802"


def test_a_onebox_cluster_stops_only_the_onebox_it_started_and_keeps_its_config_log(tmp_path):
    driver = _Driver(OneboxSpec(dir=str(tmp_path / "box")))
    OneboxCluster(driver).stop()
    assert driver.stops == 0          # someone else's (pegbench onebox start): left running
    owned = OneboxCluster(driver, owned=True)
    owned.save_logs(tmp_path)         # no config log yet: nothing copied, no error
    assert not (tmp_path / RUN_CONFIG_LOG).exists()
    log = driver.spec.node_dir(META_NODE) / CONFIG_LOG
    log.parent.mkdir(parents=True)
    log.write_text('{"ballot": 1}\n')
    owned.save_logs(tmp_path)
    assert (tmp_path / RUN_CONFIG_LOG).read_text() == '{"ballot": 1}\n'
    owned.stop()
    assert driver.stops == 1


# ---------------------------------------------------------------------------- log tail

def test_the_config_log_is_tailed_line_by_line(tmp_path):
    path = tmp_path / "config-changes.jsonl"
    observer = LogTailObserver(path)
    observer.sync()  # no file yet: nothing
    line = {"t_wall": 1.0, "t_mono": 5.0, "pidx": 2, "ballot": 1, "primary": A,
            "secondaries": [B, C], "learners": [], "reason": "initial assignment"}
    second = json.dumps({**line, "t_mono": 6.0, "ballot": 2, "primary": ""})
    path.write_text(json.dumps(line) + "\n" + second[:20])  # the meta is mid-line
    observer.sync()
    assert [c.t for c in observer.history.changes(2)] == [5.0]
    with path.open("a") as f:
        f.write(second[20:] + "\n")
    observer.sync()
    changes = observer.history.changes(2)
    assert [(c.t, c.ballot, c.primary) for c in changes] == [(5.0, 1, A), (6.0, 2, "")]
    assert changes[0].secondaries == (B, C) and changes[0].reason == "initial assignment"
    assert observer.history.failover_instant(2, 5.5, A) is None


def test_secondary_of_resolves_to_the_partitions_first_secondary_at_inject_time():
    from support.faults import NODES, FakeCluster

    from loadgen.config.targets import SecondaryOf, parse_target
    from loadgen.faults.cluster import resolve_target

    assert parse_target("secondary-of:2", replica_nodes=3, partitions=4) == SecondaryOf(2)
    assert str(SecondaryOf(2)) == "secondary-of:2"
    cluster = FakeCluster({0: "replica1", 1: "replica2", 2: "replica3", 3: ""})
    node, _, reason = resolve_target(cluster, SecondaryOf(2))  # replica3 is primary of 2
    assert node == NODES["replica1"] and reason == ""
    cluster.partitions = tuple(p if p.pidx != 2 else type(p)(2, 1, p.primary, ())
                               for p in cluster.partitions)
    node, _, reason = resolve_target(cluster, SecondaryOf(2))
    assert node is None and reason == "secondary-of:2: partition 2 has no secondary"
