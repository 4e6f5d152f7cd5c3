"""Profiles: defaults, the shipped profiles, --set and flag overrides, and the policy registry.

Bad input of every kind is in test_profile_errors.py; the fault plan in test_fault_schedule.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from loadgen.config.keys import apply_override, format_key, parse_key, parse_set, parse_value
from loadgen.config.profile import build_profile, load_profile, workload_from_dict
from loadgen.config.schema import (ClusterConfig, CommandTemplates, FailureDetectorConfig, FaultsConfig,
                                   HealthGateConfig, InjectorConfig, OpMix, PoliciesConfig, Profile,
                                   ReportConfig, ScheduleConfig, SloBound, WorkloadConfig, plain_data)
from loadgen.config.targets import NodeTarget, PrimaryOf, RandomReplica
from loadgen.errors import ConfigError
from loadgen.config.plan import plan_faults
from loadgen.pegasus import policies
from loadgen.pegasus.policies import Failover

pytestmark = pytest.mark.unit

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
SHIPPED = {"quick", "ci", "pegasus-defaults", "pause", "soak", "external.example",
           "compound", "real-clients"}


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- defaults

def test_an_empty_profile_is_all_defaults_and_named_after_its_file(tmp_path):
    path = write(tmp_path, "", "smoke-1.toml")
    profile = load_profile(path)
    assert profile == Profile(name="smoke-1")
    assert profile.source == str(path)
    assert profile.cluster == ClusterConfig(
        mode="onebox", meta=(), table="temp", replica_nodes=3, partitions=8, replicas=3,
        min_replicas=2, drop_expired=False,
        fd=FailureDetectorConfig(beacon_s=3.0, check_s=2.0, lease_s=20.0, grace_s=22.0))
    assert profile.workload == WorkloadConfig(
        users=8, rate_per_user=50.0, duration_s=150.0, warmup_s=10.0, op_timeout_ms=1000.0,
        key_space=10000, value_bytes=(64, 1024), mix=OpMix(put=0.85, multi_put=0.10, get=0.05),
        max_lag_s=10.0)
    assert profile.policies == PoliciesConfig(compare=("legacy", "failover"), mode="paired")
    assert profile.faults == FaultsConfig(schedule=None, events=(),
                                          health_gate=HealthGateConfig(enabled=True, limit_s=60.0))
    assert profile.injector == InjectorConfig(kind="onebox", command=CommandTemplates(timeout_s=20.0))
    assert profile.slo == ()
    assert profile.report == ReportConfig(out="reports/{name}-{timestamp}")
    assert profile.seed == 0
    assert plan_faults(profile) == ()


def test_a_given_mix_replaces_the_default_one(tmp_path):
    profile = load_profile(write(tmp_path, "[workload]\nmix = { put = 1.0 }\n"))
    assert profile.workload.mix == OpMix(put=1.0, multi_put=0.0, get=0.0)


def test_profiles_are_frozen_and_their_maps_read_only(tmp_path):
    profile = load_profile(write(tmp_path, "[policies.params.failover]\nrepoll_ms = 5\n"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        profile.policies.params["failover"]["repoll_ms"] = 1  # type: ignore[index]
    assert profile.policies.params_for("failover") == {"repoll_ms": 5}
    assert profile.policies.params_for("legacy") == {}
    assert hash(profile) == hash(load_profile(write(tmp_path, "[policies.params.failover]\n"
                                                              "repoll_ms = 5\n")))


def test_schedule_start_defaults_to_every_s():
    assert ScheduleConfig(kind="kill", every_s=40).start_s == 40
    assert ScheduleConfig(kind="kill", every_s=40, start_s=5).times_s() == (5,)
    assert ScheduleConfig(kind="kill", every_s=40, count=3).times_s() == (40, 80, 120)


# ---------------------------------------------------------------------------- shipped profiles

def test_the_shipped_profiles_each_load():
    found = {path.name.removesuffix(".toml") for path in PROFILES.glob("*.toml")}
    assert found == SHIPPED
    for stem in SHIPPED:
        profile = load_profile(PROFILES / f"{stem}.toml")
        assert plan_faults(profile), stem  # every shipped profile breaks something


def faults_measured_alone(plan) -> bool:
    """Every fault comes at least RECENT_FAULT_WINDOW_S (Go's 60 s redial throttle) after
    the one before, so no node it promotes can have been faulted within the throttle."""
    from loadgen.metrics.events import RECENT_FAULT_WINDOW_S

    return all(b.at_s - a.at_s >= RECENT_FAULT_WINDOW_S for a, b in zip(plan, plan[1:]))


def test_ci_is_the_design_example_with_each_fault_measured_alone():
    p = load_profile(PROFILES / "ci.toml")
    assert (p.name, p.seed) == ("ci", 42)
    assert p.cluster.fd == FailureDetectorConfig(beacon_s=0.3, check_s=0.1, lease_s=1.2, grace_s=1.5)
    assert p.workload.duration_s <= 180
    w = p.workload  # >= 15 writes/s per partition per policy: TTR-stable's 1 s windows need 5
    assert w.users * w.rate_per_user * (w.mix.put + w.mix.multi_put) / p.cluster.partitions >= 15
    assert p.policies.compare == ("legacy", "failover")
    assert p.policies.params_for("failover") == {"attempt_timeout_ms": 333}
    assert p.faults.schedule == ScheduleConfig(kind="kill", target=RandomReplica(), start_s=77,
                                               every_s=62, count=2, restart_after_s=12)
    plan = plan_faults(p)
    assert [(f.at_s, f.kind, f.heal_at_s) for f in plan] == [
        (15, "pause", 20), (77, "kill", 89), (139, "kill", 151)]
    assert plan[0].target == PrimaryOf(3) and faults_measured_alone(plan)
    assert p.slo == (SloBound("failover.recovered_fraction", min=1.0),
                     SloBound("durability.lost", max=0),
                     SloBound("failover.client_lag_ms.p99", max=250))


def test_quick_runs_every_builtin_policy_through_a_pause_and_a_kill_measured_alone():
    from loadgen.pegasus.policies import BUILTINS

    p = load_profile(PROFILES / "quick.toml")
    assert p.workload.duration_s <= 120 and p.cluster.fd.grace_s < 2
    w = p.workload  # >= 15 writes/s per partition per policy: TTR-stable's 1 s windows need 5
    assert w.users * w.rate_per_user * (w.mix.put + w.mix.multi_put) / p.cluster.partitions >= 15
    assert set(p.policies.compare) == {cls.name for cls in BUILTINS}
    plan = plan_faults(p)
    assert [f.kind for f in plan] == ["pause", "kill"] and faults_measured_alone(plan)
    assert all(f.heal_at_s is not None and f.heal_at_s < p.workload.duration_s for f in plan)


def test_compound_keeps_a_fault_within_the_redial_throttle_of_a_kill_on_purpose():
    p = load_profile(PROFILES / "compound.toml")
    plan = plan_faults(p)
    assert plan[0].kind == "kill" and not faults_measured_alone(plan)


def test_pegasus_defaults_uses_pegasus_timings_and_a_longer_run():
    p = load_profile(PROFILES / "pegasus-defaults.toml")
    assert p.cluster.fd == FailureDetectorConfig()  # 3 / 2 / 20 / 22
    assert p.workload.duration_s > load_profile(PROFILES / "ci.toml").workload.duration_s


def test_pause_has_pauses_below_the_lease_and_past_the_grace_period():
    p = load_profile(PROFILES / "pause.toml")
    durations = [f.duration_s for f in plan_faults(p)]
    assert {f.kind for f in plan_faults(p)} == {"pause"}
    assert any(d < p.cluster.fd.lease_s for d in durations)
    assert any(d > p.cluster.fd.grace_s for d in durations)


def test_soak_is_long_with_many_random_faults():
    p = load_profile(PROFILES / "soak.toml")
    plan = plan_faults(p)
    assert p.workload.duration_s >= 3600 and len(plan) >= 50
    assert len({f.target for f in plan if isinstance(f.target, NodeTarget)}) == p.cluster.replica_nodes


def test_external_example_uses_meta_addresses_and_command_templates():
    p = load_profile(PROFILES / "external.example.toml")
    assert p.cluster.mode == "external" and p.cluster.meta
    assert p.injector.kind == "command"
    assert all(p.injector.command.template(name).startswith("ssh {host}")
               for name in ("kill", "pause", "resume", "restart"))
    assert "EXAMPLE" in (PROFILES / "external.example.toml").read_text().splitlines()[0]


def test_to_dict_is_plain_json_with_targets_as_their_profile_text():
    data = load_profile(PROFILES / "ci.toml").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["faults"]["schedule"]["target"] == "random"
    assert data["faults"]["events"][0]["target"] == "primary-of:3"
    assert data["policies"]["params"] == {"failover": {"attempt_timeout_ms": 333}}
    assert data["workload"]["value_bytes"] == [64, 1024]


def test_a_workload_section_round_trips_through_plain_data_and_is_checked_on_the_way_back():
    w = WorkloadConfig(users=3, warmup_s=0, value_bytes=(1, 2), mix=OpMix(put=0.5, multi_put=0.5, get=0.0))
    data = plain_data(w)
    assert workload_from_dict(json.loads(json.dumps(data))) == w
    with pytest.raises(ConfigError, match="workload.max_inflight"):
        workload_from_dict({**data, "key_space": 1})


# ---------------------------------------------------------------------------- --set and flags

def test_set_values_are_toml_literals_or_bare_words():
    assert parse_set("workload.users=4") == (("workload", "users"), 4)
    assert parse_set('policies.compare=["legacy","java"]') == (("policies", "compare"),
                                                               ["legacy", "java"])
    assert parse_set('cluster.mode="external"') == (("cluster", "mode"), "external")
    assert parse_set("cluster.mode=external") == (("cluster", "mode"), "external")
    assert parse_set("workload.mix={put=1.0}") == (("workload", "mix"), {"put": 1.0})
    assert parse_set(" cluster.drop_expired = true ") == (("cluster", "drop_expired"), True)
    assert parse_value("10.0.0.1:34601") == "10.0.0.1:34601"
    assert parse_value("1.5") == 1.5


def test_key_paths_parse_quoted_keys_and_indexes():
    assert parse_key('slo."failover.p99".max') == ("slo", "failover.p99", "max")
    assert parse_key("slo.'a.b'.min") == ("slo", "a.b", "min")
    assert parse_key("faults.events[1].target") == ("faults", "events", 1, "target")
    assert format_key(("slo", "failover.p99", "max")) == 'slo."failover.p99".max'
    assert format_key(("faults", "events", 1, "target")) == "faults.events[1].target"


@pytest.mark.parametrize("item, key, expected", [
    ("workload.users", "workload.users", "key.path=VALUE"),
    ("workload..users=1", "workload..users", "a key path such as"),
    ("name=two words", "name", "a TOML literal"),
    ("faults.events[3].at_s=1", "faults.events[3]", "an index below 1"),
    ("workload.users.x=1", "workload.users.x", "workload.users to be a table"),
])
def test_malformed_set_items_name_the_set_source(tmp_path, item, key, expected):
    path = write(tmp_path, '[workload]\nusers = 3\n[[faults.events]]\nat_s = 1\nkind = "pause"\n'
                           'target = "replica1"\nduration_s = 1\n')
    with pytest.raises(ConfigError) as info:
        load_profile(path, [item])
    assert (info.value.file, info.value.key) == ("--set", key)
    assert info.value.expected.startswith(expected)


def test_set_overrides_the_file_and_creates_missing_tables(tmp_path):
    path = write(tmp_path, 'name = "x"\n[workload]\nusers = 8\n[policies.params.failover]\n'
                           "repoll_ms = 5\n")
    profile = load_profile(path, ["workload.users=4", 'policies.compare=["legacy","java"]',
                                  "faults.health_gate.limit_s=5", "name=my-run",
                                  'slo."failover.p99"={max = 250}'])
    assert profile.workload.users == 4
    assert profile.policies.compare == ("legacy", "java")
    assert profile.policies.params_for("failover") == {"repoll_ms": 5}  # still checked, kept
    assert profile.faults.health_gate.limit_s == 5
    assert profile.name == "my-run"
    assert profile.slo == (SloBound("failover.p99", max=250),)


def test_set_replaces_a_whole_table_and_addresses_array_entries(tmp_path):
    path = write(tmp_path, "[workload]\nmix = { put = 0.5, get = 0.5 }\n[[faults.events]]\n"
                           'at_s = 1\nkind = "pause"\ntarget = "replica1"\nduration_s = 1\n')
    profile = load_profile(path, ["workload.mix={put=1.0}", "faults.events[0].at_s=25"])
    assert profile.workload.mix == OpMix(put=1.0, multi_put=0.0, get=0.0)
    assert profile.faults.events[0].at_s == 25


def test_external_mode_via_set(tmp_path):
    profile = load_profile(write(tmp_path, ""), ['cluster.mode="external"',
                                                 'cluster.meta=["10.0.0.1:34601"]',
                                                 "injector.kind=none"])
    assert (profile.cluster.mode, profile.cluster.meta) == ("external", ("10.0.0.1:34601",))


def test_precedence_flags_over_set_over_file_over_defaults(tmp_path):
    path = write(tmp_path, "[workload]\nusers = 8\nrate_per_user = 10\nduration_s = 60\n")
    profile = load_profile(path, ["workload.users=4", "workload.rate_per_user=20"],
                           {"workload.users": 2, "workload.warmup_s": None})
    w = profile.workload
    assert (w.users, w.rate_per_user, w.duration_s, w.warmup_s) == (2, 20, 60, 10)


def test_a_bad_override_is_blamed_on_its_source(tmp_path):
    path = write(tmp_path, "[workload]\nusers = 8\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path, ["workload.users=0"])
    assert (info.value.file, info.value.key) == ("--set", "workload.users")
    with pytest.raises(ConfigError) as info:
        load_profile(path, [], {"workload.users": -1})
    assert (info.value.file, info.value.key) == ("command line", "workload.users")
    with pytest.raises(ConfigError) as info:  # a table set as a whole: its keys are blamed too
        load_profile(path, ["cluster.fd={lease_s = 3, grace_s = 2}"])
    assert (info.value.file, info.value.key) == ("--set", "cluster.fd.grace_s")
    with pytest.raises(ConfigError) as info:  # a table created by an override
        load_profile(write(tmp_path, "", "r.toml"), ["workload.users.x=1"])
    assert (info.value.file, info.value.key) == ("--set", "workload.users")
    with pytest.raises(ConfigError) as info:  # the file's own error still names the file
        load_profile(write(tmp_path, "[workload]\nusers = 0\n", "q.toml"), ["seed=3"])
    assert (info.value.file, info.value.key) == (str(tmp_path / "q.toml"), "workload.users")


def test_apply_override_replaces_in_place():
    tree = {"a": {"b": 1}, "c": [{"d": 1}]}
    apply_override(tree, ("a", "b"), 2)
    apply_override(tree, ("c", 0, "d"), 3)
    apply_override(tree, ("e", "f"), 4)
    assert tree == {"a": {"b": 2}, "c": [{"d": 3}], "e": {"f": 4}}


# ---------------------------------------------------------------------------- policy registry

def test_every_registered_policy_and_parameter_is_accepted():
    """Asked of the registry at load time: policies added later need no change here."""
    for info in policies.available():
        params = {k: v for k, v in info.params.items() if v is not None}  # TOML has no null
        profile = build_profile({"name": "t", "policies": {"compare": [info.name],
                                              "params": {info.name: params}}})
        assert profile.policies.compare == (info.name,)
        assert profile.policies.params_for(info.name) == params


def test_a_policy_registered_later_is_accepted_without_changes(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Cautious(Failover):
        """A test-only policy."""

        patience_ms: float = 5.0

    tree = {"name": "t", "policies": {"compare": ["cautious"], "params": {"cautious": {"patience_ms": 7}}}}
    with pytest.raises(ConfigError) as info:
        build_profile(tree, "t.toml")
    assert info.value.key == "policies.compare[0]"
    monkeypatch.setitem(policies._REGISTRY, "cautious", Cautious)
    assert build_profile(tree).policies.params_for("cautious") == {"patience_ms": 7}


def test_a_policy_by_dotted_path_is_built_at_load_time():
    path = "loadgen.pegasus.policies:Failover"
    profile = build_profile({"name": "t", "policies": {"compare": ["legacy", path],
                                          "params": {path: {"repoll_ms": 5}}}})
    assert profile.policies.compare == ("legacy", path)
    with pytest.raises(ConfigError) as info:
        build_profile({"name": "t", "policies": {"compare": [path], "params": {path: {"nope": 1}}}},
                      "t.toml")
    assert info.value.key == 'policies.params."loadgen.pegasus.policies:Failover".nope'


def test_the_profile_s_fd_timings_are_the_onebox_s_field_for_field():
    """pegbench run builds the onebox's FDConfig from [cluster.fd] field by field (fd_config):
    the two must keep the same fields and the same (Pegasus) defaults."""
    import dataclasses

    from loadgen.config.schema import ClusterConfig
    from loadgen.onebox.cluster import fd_config
    from loadgen.onebox.spec import FDConfig

    profile_fd = FailureDetectorConfig(beacon_s=0.3, check_s=0.1, lease_s=1.2, grace_s=1.5)
    onebox_fd = fd_config(ClusterConfig(fd=profile_fd))
    assert isinstance(onebox_fd, FDConfig)
    assert dataclasses.asdict(onebox_fd) == dataclasses.asdict(profile_fd)
    assert dataclasses.asdict(FDConfig()) == dataclasses.asdict(FailureDetectorConfig())
