"""The fault plan: order, ids, seeded random targets, symbolic primary-of, impossible plans;
target parsing; the registry of fault kinds."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from loadgen.config.profile import build_profile
from loadgen.config.targets import NodeTarget, PrimaryOf, RandomReplica, parse_target, replica_names
from loadgen.errors import ConfigError
from loadgen import fault_kinds as kinds
from loadgen.config.plan import PlannedFault, plan_faults

pytestmark = pytest.mark.unit

#: DESIGN.md's example, faults and the parts of the profile they depend on.
DESIGN_FAULTS: dict[str, Any] = {
    "name": "design", "seed": 42,
    "cluster": {"replica_nodes": 3, "partitions": 8},
    "workload": {"duration_s": 150},
    "faults": {"schedule": {"kind": "kill", "target": "random", "every_s": 40, "count": 2,
                            "restart_after_s": 15},
               "events": [{"at_s": 20, "kind": "pause", "target": "primary-of:3",
                           "duration_s": 5}]},
}


def plan(tree: dict[str, Any], **top: Any) -> tuple[PlannedFault, ...]:
    tree = {**copy.deepcopy(tree), **top}
    return plan_faults(build_profile(tree, "plan.toml"))


def faults_tree(events: list[dict[str, Any]], schedule: dict[str, Any] | None = None,
                replica_nodes: int = 3, duration_s: float = 100) -> dict[str, Any]:
    faults: dict[str, Any] = {"events": events}
    if schedule is not None:
        faults["schedule"] = schedule
    return {"name": "t", "cluster": {"replica_nodes": replica_nodes, "replicas": 1,
                                     "min_replicas": 1},
            "workload": {"duration_s": duration_s}, "faults": faults}


def plan_error(tree: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build_profile(tree, "plan.toml")
    assert info.value.file == "plan.toml"
    return info.value


# ---------------------------------------------------------------------------- the plan

def test_design_example_plan():
    assert plan(DESIGN_FAULTS) == (
        PlannedFault(id=1, at_s=20, kind="pause", target=PrimaryOf(3), duration_s=5,
                     origin="faults.events[0]"),
        PlannedFault(id=2, at_s=40, kind="kill", target=NodeTarget("replica2"),
                     restart_after_s=15, origin="faults.schedule"),
        PlannedFault(id=3, at_s=80, kind="kill", target=NodeTarget("replica3"),
                     restart_after_s=15, origin="faults.schedule"),
    )


def test_same_seed_same_plan_other_seeds_other_plans():
    assert plan(DESIGN_FAULTS) == plan(DESIGN_FAULTS)
    plans = {plan(DESIGN_FAULTS, seed=seed) for seed in range(10)}
    assert len(plans) > 1  # the seed drives the random targets
    for p in plans:  # ... and nothing else
        assert [(f.id, f.at_s, f.kind) for f in p] == [(1, 20, "pause"), (2, 40, "kill"),
                                                       (3, 80, "kill")]


def test_random_picks_only_replica_nodes():
    tree = faults_tree([], {"kind": "pause", "every_s": 2, "count": 40, "duration_s": 1},
                       duration_s=100)
    for seed in range(5):
        targets = [f.target for f in plan(tree, seed=seed)]
        assert {t.node for t in targets} == {"replica1", "replica2", "replica3"}


def test_random_avoids_nodes_held_by_other_faults():
    events = [{"at_s": 10, "kind": "kill", "target": "replica1", "restart_after_s": 20},
              {"at_s": 15, "kind": "kill", "target": "random", "restart_after_s": 5}]
    for seed in range(20):
        assert plan(faults_tree(events, replica_nodes=2), seed=seed)[1].target == \
            NodeTarget("replica2")


def test_random_avoids_a_node_it_picked_earlier():
    schedule = {"kind": "kill", "every_s": 10, "count": 2, "restart_after_s": 15}
    for seed in range(20):
        first, second = plan(faults_tree([], schedule, replica_nodes=2), seed=seed)
        assert first.target != second.target  # the first kill still holds its node at 20 s


def test_random_with_no_free_node_is_rejected():
    events = [{"at_s": 10, "kind": "kill", "target": "replica1"},
              {"at_s": 15, "kind": "pause", "target": "random", "duration_s": 1}]
    error = plan_error(faults_tree(events, replica_nodes=1))
    assert (error.key, error.expected) == (
        "faults.events[1].target",
        "a replica node free from 15 s to 16 s: each of the 1 is held by another fault then")


def test_primary_of_stays_symbolic_and_is_not_checked_for_overlap():
    events = [{"at_s": 10, "kind": "kill", "target": "primary-of:0"},
              {"at_s": 11, "kind": "kill", "target": "primary-of:0"}]
    assert [f.target for f in plan(faults_tree(events))] == [PrimaryOf(0), PrimaryOf(0)]


def test_plan_is_in_time_order_with_ids_and_stable_ties():
    schedule = {"kind": "pause", "target": "replica3", "every_s": 30, "count": 3,
                "start_s": 10, "duration_s": 1}
    events = [{"at_s": 40, "kind": "restart", "target": "replica1", "restart_after_s": 2},
              {"at_s": 5, "kind": "kill", "target": "replica2", "restart_after_s": 0},
              {"at_s": 40, "kind": "pause", "target": "replica2", "duration_s": 3}]
    got = [(f.id, f.at_s, f.kind, str(f.target), f.origin) for f in plan(faults_tree(events, schedule))]
    assert got == [(1, 5, "kill", "replica2", "faults.events[1]"),
                   (2, 10, "pause", "replica3", "faults.schedule"),
                   (3, 40, "pause", "replica3", "faults.schedule"),
                   (4, 40, "restart", "replica1", "faults.events[0]"),
                   (5, 40, "pause", "replica2", "faults.events[2]"),
                   (6, 70, "pause", "replica3", "faults.schedule")]


def test_schedule_starts_at_every_s_unless_told():
    schedule = {"kind": "kill", "target": "replica1", "every_s": 25, "count": 3,
                "restart_after_s": 5}
    assert [f.at_s for f in plan(faults_tree([], schedule))] == [25, 50, 75]
    schedule["start_s"] = 0
    assert [f.at_s for f in plan(faults_tree([], schedule))] == [0, 25, 50]


def test_heal_times():
    events = [{"at_s": 10, "kind": "pause", "target": "replica1", "duration_s": 2},
              {"at_s": 20, "kind": "kill", "target": "replica1", "restart_after_s": 3},
              {"at_s": 30, "kind": "restart", "target": "replica1", "restart_after_s": 4},
              {"at_s": 40, "kind": "kill", "target": "replica1"}]
    assert [f.heal_at_s for f in plan(faults_tree(events))] == [12, 23, 34, None]


# ---------------------------------------------------------------------------- impossible plans

def test_back_to_back_faults_on_one_node_are_fine_overlapping_ones_are_not():
    events = [{"at_s": 10, "kind": "pause", "target": "replica1", "duration_s": 5},
              {"at_s": 15, "kind": "kill", "target": "replica1", "restart_after_s": 5}]
    assert len(plan(faults_tree(events))) == 2  # heals at 15 s, the kill starts at 15 s
    events[1]["at_s"] = 14.5
    error = plan_error(faults_tree(events))
    assert (error.key, error.expected) == (
        "faults.events[1].target",
        "a node free at 14.5 s: on replica1, the pause at 10 s (faults.events[0]) holds it "
        "until 15 s")


def test_an_event_overlapping_a_named_schedule_names_the_later_fault():
    schedule = {"kind": "kill", "target": "replica2", "every_s": 20, "count": 2,
                "restart_after_s": 10}
    events = [{"at_s": 5, "kind": "pause", "target": "replica2", "duration_s": 20}]
    error = plan_error(faults_tree(events, schedule))
    assert error.key == "faults.schedule.target"
    assert error.expected == ("a node free at 20 s: on replica2, the pause at 5 s "
                              "(faults.events[0]) holds it until 25 s")


def test_a_schedule_overlapping_itself_names_every_s():
    schedule = {"kind": "pause", "target": "replica2", "every_s": 10, "count": 3,
                "duration_s": 12}
    error = plan_error(faults_tree([], schedule))
    assert (error.key, error.expected) == (
        "faults.schedule.every_s",
        "faults on replica2 that do not overlap: the pause at 10 s (fault 1 of faults.schedule) "
        "holds it until 22 s")


def test_a_fault_may_heal_exactly_at_the_end_of_the_run_not_after():
    events = [{"at_s": 90, "kind": "pause", "target": "replica1", "duration_s": 10}]
    assert plan(faults_tree(events))[0].heal_at_s == 100
    events[0]["duration_s"] = 10.5
    error = plan_error(faults_tree(events))
    assert (error.key, error.expected) == (
        "faults.events[0].duration_s",
        "a fault that heals by workload.duration_s (100 s): faults.events[0] at 90 s would "
        "heal at 100.5 s")


def test_a_scheduled_fault_that_heals_after_the_end_names_count():
    schedule = {"kind": "kill", "every_s": 30, "count": 3, "restart_after_s": 15}
    error = plan_error(faults_tree([], schedule))
    assert (error.key, error.expected) == (
        "faults.schedule.count",
        "a fault that heals by workload.duration_s (100 s): fault 3 of faults.schedule at 90 s "
        "would heal at 105 s")
    schedule["count"] = 1
    schedule["start_s"] = 90
    assert plan_error(faults_tree([], schedule)).key == "faults.schedule.restart_after_s"


# ---------------------------------------------------------------------------- targets

@pytest.mark.parametrize("text, target", [
    ("replica1", NodeTarget("replica1")), ("replica3", NodeTarget("replica3")),
    ("primary-of:0", PrimaryOf(0)), ("primary-of:7", PrimaryOf(7)), ("random", RandomReplica()),
])
def test_targets_parse_once_and_print_as_written(text, target):
    assert parse_target(text, replica_nodes=3, partitions=8) == target
    assert str(target) == text


@pytest.mark.parametrize("text", ["replica0", "replica4", "replica01", "meta1", "primary-of:8",
                                  "primary-of:-1", "primary-of:03", "primary-of:", "Random",
                                  "", 3])
def test_targets_that_do_not_exist(text):
    with pytest.raises(ValueError) as info:
        parse_target(text, replica_nodes=3, partitions=8)
    assert str(info.value) == ("'replicaN' with N in 1..3, 'primary-of:P' or 'secondary-of:P' "
                               f"with P in 0..7, or 'random', got {text!r}")


def test_replica_names():
    assert replica_names(3) == ("replica1", "replica2", "replica3")


# ---------------------------------------------------------------------------- kinds registry

def test_the_fault_kinds_and_their_parameters():
    assert kinds.names() == ("kill", "pause", "restart")
    assert [k.name for k in kinds.available()] == ["kill", "pause", "restart"]
    kill, pause, restart = (kinds.get(name) for name in ("kill", "pause", "restart"))
    assert (kill.param, kill.param_required, kill.usage) == ("restart_after_s", False,
                                                             "[restart_after_s]")
    assert (pause.param, pause.param_required, pause.usage) == ("duration_s", True, "duration_s")
    assert (restart.param, restart.param_required) == ("restart_after_s", True)
    assert (kill.commands, pause.commands, restart.commands) == (
        ("kill", "restart"), ("pause", "resume"), ("terminate", "restart"))
    for kind in kinds.available():
        assert kind.description and "\n" not in kind.description
        assert kind.colour.startswith("#") and len(kind.colour) == 7
        assert callable(kind.inject) and callable(kind.heal)
    assert len({k.colour for k in kinds.available()}) == 3
    with pytest.raises(KeyError):
        kinds.get("partition")


def test_kinds_register_once_unless_replaced(monkeypatch):
    monkeypatch.setattr(kinds, "_REGISTRY", dict(kinds._REGISTRY))  # restored after the test
    with pytest.raises(ValueError):
        kinds.register(kinds.KILL)

    def inject(node: str) -> None: ...

    kinds.register(dataclasses.replace(kinds.KILL, inject=inject), replace=True)
    assert kinds.get("kill").inject is inject
    assert kinds.get("kill") == kinds.KILL  # inject/heal do not take part in equality
