"""Every kind of bad profile input is a ConfigError naming the file, the key path and what was
expected, raised at load time.

Each case edits a valid base profile (written to a real file) at one key path and checks the
error's exact key path and the start of its expectation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from loadgen.config.profile import build_profile, load_profile
from loadgen.errors import ConfigError

pytestmark = pytest.mark.unit

#: A valid profile with every section; cases change one thing in it.
BASE: dict[str, Any] = {
    "name": "base",
    "seed": 1,
    "cluster": {"mode": "onebox", "replica_nodes": 3, "partitions": 8, "replicas": 3,
                "min_replicas": 2,
                "fd": {"beacon_s": 0.3, "check_s": 0.1, "lease_s": 1.2, "grace_s": 1.5}},
    "workload": {"users": 2, "rate_per_user": 10, "duration_s": 60, "warmup_s": 5,
                 "op_timeout_ms": 1000, "key_space": 100, "value_bytes": [64, 1024],
                 "mix": {"put": 0.85, "multi_put": 0.10, "get": 0.05}, "max_lag_s": 10},
    "policies": {"compare": ["legacy", "failover"], "mode": "paired",
                 "params": {"failover": {"attempt_timeout_ms": 333}}},
    "faults": {
        "schedule": {"kind": "kill", "target": "random", "every_s": 20, "count": 2,
                     "restart_after_s": 5},
        "events": [{"at_s": 10, "kind": "pause", "target": "primary-of:3", "duration_s": 2},
                   {"at_s": 30, "kind": "kill", "target": "replica2", "restart_after_s": 5}],
        "health_gate": {"enabled": True, "limit_s": 30}},
    "injector": {"kind": "onebox",
                 "command": {"kill": "ssh {host} kill {port}", "timeout_s": 20}},
    "slo": {"failover.recovered_fraction": {"min": 1.0}, "durability.lost": {"max": 0}},
    "report": {"out": "reports/{name}-{timestamp}"},
}

_DELETE = object()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"


def to_toml(tree: dict[str, Any]) -> str:
    """Top-level keys as ``key = inline value`` lines: enough TOML for these cases."""
    return "".join(f"{_toml(key)} = {_toml(value)}\n" for key, value in tree.items())


def edited(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    tree = copy.deepcopy(BASE)
    for path, value in edits:
        node: Any = tree
        for segment in path[:-1]:
            node = node[segment]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return tree


def error_for(tmp_path: Path, tree: dict[str, Any]) -> ConfigError:
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(tree))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: {info.value.key}: ")
    return info.value


def test_the_base_profile_is_valid(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text(to_toml(BASE))
    assert load_profile(path) == build_profile(BASE)


CASES = [
    # unknown keys, at any depth
    ("unknown top-level key", [(("colour",), 1)], "colour", "no such key: the top level takes"),
    ("unknown key in a section", [(("workload", "user"), 1)], "workload.user",
     "no such key: workload takes"),
    ("unknown key two deep", [(("cluster", "fd", "lease_ms"), 1)], "cluster.fd.lease_ms",
     "no such key: cluster.fd takes beacon_s, check_s, grace_s, lease_s"),
    ("unknown key in an event", [(("faults", "events", 1, "node"), "replica1")],
     "faults.events[1].node", "no such key"),
    ("unknown op in the mix", [(("workload", "mix", "delete"), 0.0)], "workload.mix.delete",
     "no such key"),
    ("unknown key in an slo bound", [(("slo", "durability.lost", "below"), 1)],
     'slo."durability.lost".below', "no such key"),
    ("unknown key in the schedule", [(("faults", "schedule", "jitter_s"), 1)],
     "faults.schedule.jitter_s", "no such key"),
    ("unknown key in the command templates", [(("injector", "command", "stop"), "x")],
     "injector.command.stop", "no such key"),
    # wrong types
    ("string for an integer", [(("workload", "users"), "8")], "workload.users",
     "an integer >= 1, got '8'"),
    ("bool for an integer", [(("cluster", "replica_nodes"), True)], "cluster.replica_nodes",
     "an integer >= 1, got true"),
    ("float for an integer", [(("seed",), 1.5)], "seed", "an integer, got 1.5"),
    ("string for a duration", [(("workload", "duration_s"), "60s")], "workload.duration_s",
     "a number of seconds > 0, got '60s'"),
    ("int for a bool", [(("cluster", "drop_expired"), 1)], "cluster.drop_expired",
     "true or false, got 1"),
    ("table for a string", [(("cluster", "table"), {"a": 1})], "cluster.table",
     "a non-empty string, got a table"),
    ("value for a table", [(("cluster", "fd"), 3)], "cluster.fd", "a table, got 3"),
    ("events not an array", [(("faults", "events"), 3)], "faults.events", "an array of tables"),
    ("value_bytes reversed", [(("workload", "value_bytes"), [1024, 64])], "workload.value_bytes",
     "[lo, hi] integers with 0 <= lo <= hi"),
    ("bad cluster mode", [(("cluster", "mode"), "cloud")], "cluster.mode",
     "one of 'onebox', 'external', got 'cloud'"),
    ("bad policy mode", [(("policies", "mode"), "mixed")], "policies.mode",
     "one of 'paired', 'sequential'"),
    ("name with a slash", [(("name",), "a/b")], "name", "a name of letters"),
    # negative durations and bad ranges
    ("negative warm-up", [(("workload", "warmup_s"), -1)], "workload.warmup_s",
     "a number of seconds >= 0, got -1"),
    ("negative pause", [(("faults", "events", 0, "duration_s"), -1)],
     "faults.events[0].duration_s", "a number of seconds > 0, got -1"),
    ("negative restart delay", [(("faults", "schedule", "restart_after_s"), -5)],
     "faults.schedule.restart_after_s", "a number of seconds >= 0, got -5"),
    ("negative fault time", [(("faults", "events", 1, "at_s"), -1)], "faults.events[1].at_s",
     "a number of seconds >= 0"),
    ("zero every_s", [(("faults", "schedule", "every_s"), 0)], "faults.schedule.every_s",
     "a number of seconds > 0, got 0"),
    ("infinite duration", [(("workload", "duration_s"), float("inf"))], "workload.duration_s",
     "a number of seconds > 0, got inf"),
    ("zero op timeout", [(("workload", "op_timeout_ms"), 0)], "workload.op_timeout_ms",
     "a positive number of ms"),
    ("warm-up as long as the run", [(("workload", "warmup_s"), 60)], "workload.warmup_s",
     "less than workload.duration_s (60)"),
    ("mix not summing to 1", [(("workload", "mix", "put"), 0.8)], "workload.mix",
     "shares summing to 1, got 0.95"),
    ("negative mix share", [(("workload", "mix"), {"put": 1.1, "get": -0.1})], "workload.mix.get",
     "a share >= 0, got -0.1"),
    # cluster shape and failure detector
    ("partitions not a power of two", [(("cluster", "partitions"), 6)], "cluster.partitions",
     "a power of two, got 6"),
    ("more replicas than nodes", [(("cluster", "replicas"), 4)], "cluster.replicas",
     "at most cluster.replica_nodes (3), got 4"),
    ("min_replicas above replicas", [(("cluster", "min_replicas"), 4)], "cluster.min_replicas",
     "at most cluster.replicas (3), got 4"),
    ("lease not below grace", [(("cluster", "fd", "lease_s"), 1.5)], "cluster.fd.grace_s",
     "greater than cluster.fd.lease_s (1.5), got 1.5"),
    ("check not below grace", [(("cluster", "fd", "check_s"), 2)], "cluster.fd.check_s",
     "less than cluster.fd.grace_s (1.5), got 2"),
    ("beacon not below lease", [(("cluster", "fd", "beacon_s"), 1.2)], "cluster.fd.beacon_s",
     "less than cluster.fd.lease_s (1.2), got 1.2"),
    ("external without meta", [(("cluster", "mode"), "external"), (("injector", "kind"), "none")],
     "cluster.meta", "at least one meta address"),
    ("bad meta address", [(("cluster", "mode"), "external"), (("injector", "kind"), "none"),
                          (("cluster", "meta"), ["10.0.0.1:34601", "10.0.0.2"])],
     "cluster.meta[1]", "a meta address 'host:port', got '10.0.0.2'"),
    ("meta addresses for the onebox", [(("cluster", "meta"), ["10.0.0.1:34601"])], "cluster.meta",
     "no addresses with cluster.mode = 'onebox'"),
    # faults after the end of the run
    ("event at the end of the run", [(("faults", "events", 1, "at_s"), 60)],
     "faults.events[1].at_s", "a fault that starts before workload.duration_s (60 s)"),
    ("schedule's last fault after the end", [(("faults", "schedule", "count"), 3)],
     "faults.schedule.count", "a fault that starts before workload.duration_s (60 s): "
                              "fault 3 of faults.schedule would start at 60 s"),
    ("schedule starting after the end", [(("faults", "schedule", "start_s"), 70)],
     "faults.schedule.start_s", "a fault that starts before"),
    ("event healing after the end", [(("faults", "events", 1, "restart_after_s"), 31)],
     "faults.events[1].restart_after_s", "a fault that heals by workload.duration_s (60 s): "
                                         "faults.events[1] at 30 s would heal at 61 s"),
    # fault kinds and their parameters
    ("unknown fault kind", [(("faults", "events", 0, "kind"), "partition")],
     "faults.events[0].kind", "one of 'kill', 'pause', 'restart', got 'partition'"),
    ("pause without a duration", [(("faults", "events", 0, "duration_s"), _DELETE)],
     "faults.events[0].duration_s", "a number of seconds > 0 (required)"),
    ("restart without a delay", [(("faults", "events", 1, "kind"), "restart"),
                                 (("faults", "events", 1, "restart_after_s"), _DELETE)],
     "faults.events[1].restart_after_s", "a number of seconds >= 0 (required)"),
    ("kill with a duration", [(("faults", "events", 1, "duration_s"), 3)],
     "faults.events[1].duration_s", "no duration_s for kind 'kill' (it takes [restart_after_s])"),
    ("event without a target", [(("faults", "events", 0, "target"), _DELETE)],
     "faults.events[0].target", "a target: 'replicaN', 'primary-of:P', 'secondary-of:P' or 'random' (required)"),
    ("schedule without every_s", [(("faults", "schedule", "every_s"), _DELETE)],
     "faults.schedule.every_s", "a number of seconds > 0 (required)"),
    # unknown nodes and partitions
    ("unknown node", [(("faults", "events", 1, "target"), "replica7")], "faults.events[1].target",
     "'replicaN' with N in 1..3, 'primary-of:P' or 'secondary-of:P' with P in 0..7, or 'random', got 'replica7'"),
    ("the meta as a target", [(("faults", "events", 1, "target"), "meta1")],
     "faults.events[1].target", "'replicaN' with N in 1..3"),
    ("partition out of range", [(("faults", "events", 0, "target"), "primary-of:8")],
     "faults.events[0].target", "'replicaN' with N in 1..3, 'primary-of:P' or 'secondary-of:P' with P in 0..7"),
    ("unknown schedule target", [(("faults", "schedule", "target"), "replica0")],
     "faults.schedule.target", "'replicaN' with N in 1..3"),
    ("overlapping faults on one node",
     [(("faults", "events"), [{"at_s": 10, "kind": "kill", "target": "replica1"},
                              {"at_s": 30, "kind": "pause", "target": "replica1",
                               "duration_s": 1}])],
     "faults.events[1].target", "a node free at 30 s: on replica1, the kill at 10 s "
                                "(faults.events[0]) holds it until the end of the run"),
    # policies
    ("unknown policy", [(("policies", "compare"), ["legacy", "nope"])], "policies.compare[1]",
     "a registered policy ("),
    ("dotted path that does not import", [(("policies", "compare"), ["no.such.module:Policy"])],
     "policies.compare[0]", "an importable policy"),
    ("a policy twice", [(("policies", "compare"), ["legacy", "legacy"])], "policies.compare[1]",
     "each policy once"),
    ("no policy", [(("policies", "compare"), [])], "policies.compare", "a non-empty array"),
    ("unknown policy parameter", [(("policies", "params", "failover", "patience"), 1)],
     "policies.params.failover.patience", "a parameter of policy 'failover': "),
    ("policy parameter of the wrong type", [(("policies", "params", "failover", "repoll_ms"),
                                             "fast")],
     "policies.params.failover.repoll_ms", "a value like its default 10.0, got 'fast'"),
    ("policy parameter out of range", [(("policies", "params", "failover", "backoff_cap_ms"), -1)],
     "policies.params.failover.backoff_cap_ms", "a positive number"),
    ("parameters of an unknown policy", [(("policies", "params", "nope"), {"x": 1})],
     "policies.params.nope", "parameters of a policy in policies.compare or of a registered"),
    # injector
    ("unknown injector", [(("injector", "kind"), "ssh")], "injector.kind",
     "one of 'onebox', 'command', 'none', got 'ssh'"),
    ("onebox injector on an external cluster",
     [(("cluster", "mode"), "external"), (("cluster", "meta"), ["10.0.0.1:34601"])],
     "injector.kind", "'command' or 'none' with cluster.mode = 'external'"),
    ("unknown placeholder", [(("injector", "command", "kill"), "ssh {host} kill {pid}")],
     "injector.command.kill", "a template using only {node}, {host}, {port}, got {pid}"),
    ("positional placeholder", [(("injector", "command", "pause"), "kill -STOP {}")],
     "injector.command.pause", "a template using only {node}, {host}, {port}, got {}"),
    ("unbalanced brace", [(("injector", "command", "kill"), "ssh {host")],
     "injector.command.kill", "a template using only"),
    ("command injector missing a template", [(("injector", "kind"), "command")],
     "injector.command.restart", "a command template: faults.schedule is a kill fault that heals"),
    ("zero command timeout", [(("injector", "command", "timeout_s"), 0)],
     "injector.command.timeout_s", "a number of seconds > 0"),
    # slo and report
    ("slo without bounds", [(("slo", "failover.ttr"), {})], 'slo."failover.ttr"',
     "a bound: { min = x } and/or { max = y }"),
    ("slo min above max", [(("slo", "durability.lost"), {"min": 2, "max": 1})],
     'slo."durability.lost".max', "at least min (2), got 1"),
    ("slo bound not a number", [(("slo", "durability.lost"), {"max": "zero"})],
     'slo."durability.lost".max', "a number, got 'zero'"),
    ("slo metric with an empty segment", [(("slo", "failover..p99"), {"max": 1})],
     'slo."failover..p99"', "a metric path of results.json"),
    ("report placeholder", [(("report", "out"), "reports/{user}")], "report.out",
     "a template using only {name}, {timestamp}, got {user}"),
    ("health gate limit", [(("faults", "health_gate", "limit_s"), -3)],
     "faults.health_gate.limit_s", "a number of seconds > 0"),
]


@pytest.mark.parametrize("edits, key, expected", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_names_its_key_path(tmp_path, edits, key, expected):
    error = error_for(tmp_path, edited(*edits))
    assert error.key == key
    assert error.expected.startswith(expected), error.expected


def test_an_unknown_key_lists_the_keys_the_table_takes(tmp_path):
    error = error_for(tmp_path, edited((("faults", "health_gate", "limit"), 3)))
    assert error.expected == "no such key: faults.health_gate takes enabled, limit_s"


def test_a_file_that_is_not_toml_or_not_there(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert (info.value.file, info.value.key) == (str(path), "(syntax)")
    assert info.value.expected.startswith("valid TOML (Invalid value (at line 1, column 8))")
    with pytest.raises(ConfigError) as info:
        load_profile(tmp_path / "missing.toml")
    assert (info.value.file, info.value.key) == (str(tmp_path / "missing.toml"), "(file)")


def test_a_profile_without_a_file_needs_a_name():
    with pytest.raises(ConfigError) as info:
        build_profile({}, "tree")
    assert (info.value.file, info.value.key, info.value.expected) == (
        "tree", "name", "a name of letters, digits, '.', '_' or '-' (required)")
