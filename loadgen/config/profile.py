"""Profiles: a TOML file plus overrides, validated into a frozen :class:`Profile` at load time.

Precedence: command-line flags > ``--set key.path=VALUE`` > the profile file > the defaults
(in :mod:`loadgen.config.schema`). Overrides replace values in the raw TOML tree; then the
whole tree is validated at once, before anything starts: an unknown key at any depth, a wrong
type, a negative duration, an unknown policy, node, fault kind or injector, a bad template, a
fault outside the run... each raises ``ConfigError(file, key_path, expected)``, where ``file``
is ``--set`` or ``command line`` when the offending value came from there.

Policies are checked against the registry (``loadgen.pegasus.policies``) at load time, never
against a list kept here: a newly registered policy and its parameters are accepted at once.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .. import fault_kinds as kinds
from .plan import plan_faults
from ..pegasus import policies
from ..pegasus.addr import parse_addr
from .keys import (FLAG_SOURCE, SET_SOURCE, apply_override, came_from, format_key, join_key, parse_key,
                   parse_set, tomllib)
from .reader import REQUIRED, TableReader, is_number, show
from .schema import (CLUSTER_MODES, COMMAND_PLACEHOLDERS, COMMAND_TEMPLATES, DEFAULT_BEACON_S,
                     DEFAULT_CHECK_S, DEFAULT_CLUSTER_MODE, DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_COMPARE,
                     DEFAULT_DROP_EXPIRED, DEFAULT_DURATION_S, DEFAULT_GRACE_S, DEFAULT_HEALTH_GATE_ENABLED,
                     DEFAULT_HEALTH_GATE_LIMIT_S, DEFAULT_INJECTOR, DEFAULT_KEY_SPACE, DEFAULT_LEASE_S,
                     DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_LAG_S, DEFAULT_MIN_FAULT_EVENTS,
                     DEFAULT_MIN_REPLICAS, DEFAULT_MIX, DEFAULT_OP_TIMEOUT_MS, DEFAULT_PARTITIONS,
                     DEFAULT_POLICY_MODE, DEFAULT_RATE_PER_USER, DEFAULT_REPLICA_NODES, DEFAULT_REPLICAS,
                     DEFAULT_REPORT_OUT, DEFAULT_SCHEDULE_COUNT, DEFAULT_SCHEDULE_TARGET, DEFAULT_SEED,
                     DEFAULT_TABLE, DEFAULT_USERS, DEFAULT_VALUE_BYTES, DEFAULT_WARMUP_S, INJECTOR_KINDS,
                     MIN_FAULT_EVENTS_FLOOR, POLICY_MODES, REPORT_PLACEHOLDERS, ClusterConfig,
                     CommandTemplates, EventConfig, FailureDetectorConfig, FaultsConfig, HealthGateConfig,
                     ClientConfig, InjectorConfig, OpMix, PoliciesConfig, Profile, ReportConfig, ScheduleConfig, SloBound,
                     WorkloadConfig, frozen_map)
from .targets import Target, parse_target

__all__ = ["load_profile", "build_profile", "read_fault", "workload_from_dict", "Profile"]

#: A profile's name goes into file names (``report.out``): keep it to one path component.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
#: Shares of ``workload.mix`` must sum to 1 within this (TOML decimals are binary floats).
MIX_TOLERANCE = 1e-9


def load_profile(path: str | os.PathLike[str], sets: Sequence[str] = (),
                 flags: Mapping[str, Any] | None = None) -> Profile:
    """Read the profile at ``path``, apply ``--set`` items then flags, and validate it all.

    ``sets`` are ``"key.path=VALUE"`` strings (VALUE a TOML literal, or a bare word taken as a
    string); ``flags`` maps key paths to values from command-line flags (None values are
    skipped, so unset argparse options can be passed as they are). The name defaults to the
    file's stem.
    """
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "(file)", f"a readable UTF-8 TOML profile ({exc})") from None
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", f"valid TOML ({exc})") from None
    origins: dict[str, str] = {}
    overrides = [(*parse_set(item), SET_SOURCE) for item in sets]
    overrides += [(parse_key(key, source=FLAG_SOURCE), value, FLAG_SOURCE)
                  for key, value in (flags or {}).items() if value is not None]
    for key_path, value, source in overrides:
        apply_override(tree, key_path, value, source=source)
        origins.pop(format_key(key_path), None)  # re-insert: the latest override is the last
        origins[format_key(key_path)] = source
    return build_profile(tree, file, default_name=Path(file).stem, origins=origins)


def build_profile(tree: Mapping[str, Any], file: str = "<profile>", *,
                  default_name: str | None = None,
                  origins: Mapping[str, str] | None = None) -> Profile:
    """Validate a raw TOML tree into a Profile, fault plan included (ConfigError if not valid).

    ``origins`` maps overridden key paths to their source, so an error in such a value names
    ``--set`` or ``command line`` rather than ``file``.
    """
    try:
        profile = _read_profile(TableReader(file, "", tree), default_name)
        plan_faults(profile)  # the plan's own checks: run end, overlaps, random picks
        return profile
    except ConfigError as exc:
        source = came_from(exc.key, origins or {})
        if source is None or source == exc.file:
            raise
        raise ConfigError(source, exc.key, exc.expected) from None


def read_fault(data: Mapping[str, Any], cluster: ClusterConfig,
               source: str = "web UI") -> tuple[str, Target, dict[str, float | None]]:
    """A fault asked for outside the plan (the web UI's form): its kind, target and timing
    parameter, checked as a ``[[faults.events]]`` entry is (ConfigError naming the field)."""
    t = TableReader(source, "fault", data)
    kind = t.choice("kind", kinds.names(), REQUIRED)
    return kind, _read_target(t, REQUIRED, cluster), _read_fault_params(t, kind)


def workload_from_dict(data: Mapping[str, Any], file: str = "<workload>") -> WorkloadConfig:
    """A ``[workload]`` table as plain data (e.g. ``plain_data`` of a WorkloadConfig), checked
    as a profile's (ConfigError if not valid)."""
    return _read_workload(TableReader(file, "workload", data))


# ---------------------------------------------------------------------------- sections

def _read_profile(root: TableReader, default_name: str | None) -> Profile:
    name = root.string("name", default_name if default_name else REQUIRED, pattern=_NAME,
                       what="a name of letters, digits, '.', '_' or '-'")
    seed = root.integer("seed", DEFAULT_SEED)
    cluster = _read_cluster(root.table("cluster"))
    workload = _read_workload(root.table("workload"))
    policy_config = _read_policies(root.table("policies"))
    clients = _read_clients(root.table("clients"))
    faults = _read_faults(root.table("faults"), cluster)
    injector = _read_injector(root.table("injector"), cluster, faults)
    slo = _read_slo(root.table("slo"))
    report = _read_report(root.table("report"))
    root.done()
    return Profile(name=name, seed=seed, cluster=cluster, workload=workload, policies=policy_config,
                   clients=clients, faults=faults, injector=injector, slo=slo, report=report, source=root.file)


def _read_cluster(t: TableReader) -> ClusterConfig:
    mode = t.choice("mode", CLUSTER_MODES, DEFAULT_CLUSTER_MODE)
    meta = t.array("meta", [], "an array of 'host:port' strings")
    for i, addr in enumerate(meta):
        try:
            parse_addr(addr)
        except ValueError:
            raise ConfigError(t.file, t.key("meta") + f"[{i}]",
                              f"a meta address 'host:port', got {show(addr)}") from None
    if mode == "external" and not meta:
        raise t.error("meta", "at least one meta address 'host:port' with cluster.mode = "
                              "'external'")
    if mode == "onebox" and meta:
        raise t.error("meta", "no addresses with cluster.mode = 'onebox' (the onebox picks "
                              "its own meta address)")
    table = t.string("table", DEFAULT_TABLE)
    replica_nodes = t.integer("replica_nodes", DEFAULT_REPLICA_NODES, minimum=1)
    partitions = t.integer("partitions", DEFAULT_PARTITIONS, minimum=1)
    if partitions & (partitions - 1):
        raise t.error("partitions", f"a power of two, got {partitions}")
    replicas = t.integer("replicas", DEFAULT_REPLICAS, minimum=1)
    if replicas > replica_nodes:
        raise t.error("replicas", f"at most cluster.replica_nodes ({replica_nodes}), got {replicas}")
    min_replicas = t.integer("min_replicas", DEFAULT_MIN_REPLICAS, minimum=1)
    if min_replicas > replicas:
        raise t.error("min_replicas", f"at most cluster.replicas ({replicas}), got {min_replicas}")
    drop_expired = t.boolean("drop_expired", DEFAULT_DROP_EXPIRED)
    fd = _read_fd(t.table("fd"))
    t.done()
    return ClusterConfig(mode=mode, meta=tuple(meta), table=table, replica_nodes=replica_nodes,
                         partitions=partitions, replicas=replicas, min_replicas=min_replicas,
                         drop_expired=drop_expired, fd=fd)


def _read_fd(t: TableReader) -> FailureDetectorConfig:
    fd = FailureDetectorConfig(beacon_s=t.seconds("beacon_s", DEFAULT_BEACON_S, positive=True),
                               check_s=t.seconds("check_s", DEFAULT_CHECK_S, positive=True),
                               lease_s=t.seconds("lease_s", DEFAULT_LEASE_S, positive=True),
                               grace_s=t.seconds("grace_s", DEFAULT_GRACE_S, positive=True))
    t.done()
    # The onebox's rules: a cut-off primary stops serving (lease) before the meta replaces it
    # (grace); a beacon renews the lease in time; a death is noticed within the grace period.
    if fd.grace_s <= fd.lease_s:
        raise t.error("grace_s", f"greater than {t.key('lease_s')} ({fd.lease_s:g}), "
                                 f"got {fd.grace_s:g}")
    if fd.beacon_s >= fd.lease_s:
        raise t.error("beacon_s", f"less than {t.key('lease_s')} ({fd.lease_s:g}), "
                                  f"got {fd.beacon_s:g}")
    if fd.check_s >= fd.grace_s:
        raise t.error("check_s", f"less than {t.key('grace_s')} ({fd.grace_s:g}), "
                                 f"got {fd.check_s:g}")
    return fd


def _read_workload(t: TableReader) -> WorkloadConfig:
    users = t.integer("users", DEFAULT_USERS, minimum=1)
    rate = t.number("rate_per_user", DEFAULT_RATE_PER_USER, positive=True, unit=" of ops/s")
    duration_s = t.seconds("duration_s", DEFAULT_DURATION_S, positive=True)
    warmup_s = t.seconds("warmup_s", DEFAULT_WARMUP_S)
    if warmup_s >= duration_s:
        raise t.error("warmup_s", f"less than {t.key('duration_s')} ({duration_s:g}), "
                                  f"got {warmup_s:g}")
    op_timeout_ms = t.number("op_timeout_ms", DEFAULT_OP_TIMEOUT_MS, positive=True, unit=" of ms")
    key_space = t.integer("key_space", DEFAULT_KEY_SPACE, minimum=1)
    value_bytes = t.get("value_bytes", lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                        and all(isinstance(b, int) and not isinstance(b, bool) for b in v)
                        and 0 <= v[0] <= v[1], "[lo, hi] integers with 0 <= lo <= hi",
                        DEFAULT_VALUE_BYTES)
    given = "mix" in t.data
    mix_t = t.table("mix")
    # A mix given in the profile replaces the default one: the ops it leaves out weigh 0.
    shares = {op: float(mix_t.get(op, lambda v: is_number(v) and v >= 0, "a share >= 0",
                                  0.0 if given else default))
              for op, default in DEFAULT_MIX.items()}
    mix_t.done()
    if abs(sum(shares.values()) - 1) > MIX_TOLERANCE:
        raise t.error("mix", f"shares summing to 1, got {sum(shares.values()):g}")
    max_lag_s = t.seconds("max_lag_s", DEFAULT_MAX_LAG_S, positive=True)
    max_inflight = t.integer("max_inflight", DEFAULT_MAX_INFLIGHT, minimum=1)
    if max_inflight >= key_space:   # each write in flight holds a key of its own
        raise t.error("max_inflight", f"less than {t.key('key_space')} ({key_space}), "
                                      f"got {max_inflight}")
    t.done()
    return WorkloadConfig(users=users, rate_per_user=rate, duration_s=duration_s,
                          warmup_s=warmup_s, op_timeout_ms=op_timeout_ms, key_space=key_space,
                          value_bytes=(value_bytes[0], value_bytes[1]), mix=OpMix(**shares),
                          max_lag_s=max_lag_s, max_inflight=max_inflight)


def _is_dotted(name: str) -> bool:
    return "." in name or ":" in name


def _param_ok(default: Any, value: Any) -> bool:
    """Whether ``value`` has the type of the parameter whose default is ``default``."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return is_number(value)
    if isinstance(default, str):
        return isinstance(value, str)
    return not isinstance(value, Mapping)  # no default type to go by (e.g. None): any value


def _read_policies(t: TableReader) -> PoliciesConfig:
    registry = {info.name: info for info in policies.available()}  # asked now, never cached
    known = f"a registered policy ({', '.join(sorted(registry))}) or a dotted path 'pkg.mod:Class'"
    compare = t.array("compare", list(DEFAULT_COMPARE), "a non-empty array of policy names")
    if not compare:
        raise t.error("compare", "a non-empty array of policy names")
    for i, name in enumerate(compare):
        key = t.key("compare") + f"[{i}]"
        if not isinstance(name, str) or (name not in registry and not _is_dotted(name)):
            raise ConfigError(t.file, key, f"{known}, got {show(name)}")
        if name in compare[:i]:
            raise ConfigError(t.file, key, f"each policy once, got {name!r} twice")
    mode = t.choice("mode", POLICY_MODES, DEFAULT_POLICY_MODE)
    params_t = t.table("params")
    params: dict[str, Mapping[str, Any]] = {}
    for name in params_t.data:
        sub = params_t.table(name)
        if name in registry:
            defaults = registry[name].params
            for param, value in sub.data.items():
                if param not in defaults:
                    raise sub.error(param, f"a parameter of policy {name!r}: "
                                           f"{', '.join(sorted(defaults)) or 'it takes none'}")
                if not _param_ok(defaults[param], value):
                    raise sub.error(param, f"a value like its default {show(defaults[param])}, "
                                           f"got {show(value)}")
        elif name not in compare:
            raise params_t.error(name, f"parameters of a policy in policies.compare or of {known}")
        params[name] = frozen_map(sub.data)
    t.done()
    # Build each once: the policy's own checks (ranges, a dotted path that must import) run now.
    for name in dict.fromkeys([*compare, *params]):
        key = (t.key("compare") + f"[{compare.index(name)}]" if name in compare
               else params_t.key(name))
        _check_policy(t.file, name, dict(params.get(name, {})), key)
    return PoliciesConfig(compare=tuple(compare), mode=mode, params=frozen_map(params))


def _read_clients(t: TableReader) -> tuple[ClientConfig, ...]:
    out = []
    for name in t.data:
        if not _CLIENT_NAME.fullmatch(name):   # a row's name is a step of an SLO metric path
            raise t.error(name, "a client name of letters, digits, '_' or '-'")
        c = t.table(name)
        command = c.array("command", REQUIRED, "the adapter's command: a non-empty array of strings")
        if not command or not all(isinstance(a, str) and a for a in command):
            raise c.error("command", f"a non-empty array of non-empty strings, got {show(command)}")
        options = c.get("options", lambda v: isinstance(v, Mapping), "a table (sent to the "
                        "adapter in its hello)", {})
        handshake = c.seconds("handshake_timeout_s", 30.0, positive=True)
        c.done()
        out.append(ClientConfig(name=name, command=tuple(command), options=frozen_map(options),
                                handshake_timeout_s=handshake))
    return tuple(out)


def _check_policy(file: str, name: str, params: dict[str, Any], key: str) -> None:
    """Build policy ``name`` with ``params``; its complaint becomes a ConfigError at our key.

    The policy's own error names a parameter (as its last key segment) or the policy itself;
    either is re-rooted under ``policies.params.<name>`` or ``key``.
    """
    try:
        policies.create(name, params)
    except ConfigError as exc:
        param = exc.key.rpartition(".")[2]
        where = join_key(join_key("policies.params", name), param) if param in params else key
        raise ConfigError(file, where, exc.expected) from None
    except (TypeError, ValueError) as exc:  # a user policy's own validation
        raise ConfigError(file, join_key("policies.params", name),
                          f"parameters policy {name!r} accepts ({exc})") from None


def _read_target(t: TableReader, default: Any, cluster: ClusterConfig) -> Target:
    text = t.get("target", lambda v: isinstance(v, str), "a target: 'replicaN', "
                 "'primary-of:P', 'secondary-of:P' or 'random'", default)
    try:
        return parse_target(text, replica_nodes=cluster.replica_nodes,
                            partitions=cluster.partitions)
    except ValueError as exc:
        raise t.error("target", str(exc)) from None


def _read_fault_params(t: TableReader, kind_name: str) -> dict[str, float | None]:
    """``duration_s`` / ``restart_after_s``: the one the kind takes, and no other."""
    kind = kinds.get(kind_name)
    params: dict[str, float | None] = {}
    for param in (kinds.DURATION_S, kinds.RESTART_AFTER_S):
        if param == kind.param:
            # a pause of 0 s is no fault; a restart after 0 s is an immediate restart
            params[param] = t.seconds(param, REQUIRED if kind.param_required else None,
                                      positive=param == kinds.DURATION_S)
        else:
            params[param] = t.get(param, lambda v: False,
                                  f"no {param} for kind {kind.name!r} (it takes {kind.usage})",
                                  None)
    return params


def _read_faults(t: TableReader, cluster: ClusterConfig) -> FaultsConfig:
    schedule = None
    if "schedule" in t.data:
        s = t.table("schedule")
        kind = s.choice("kind", kinds.names(), REQUIRED)
        schedule = ScheduleConfig(
            kind=kind, target=_read_target(s, DEFAULT_SCHEDULE_TARGET, cluster),
            every_s=s.seconds("every_s", REQUIRED, positive=True),
            count=s.integer("count", DEFAULT_SCHEDULE_COUNT, minimum=1),
            start_s=s.seconds("start_s", None), **_read_fault_params(s, kind))
        s.done()
    events = []
    for i, raw in enumerate(t.array("events", [], "an array of tables [[faults.events]]")):
        e = TableReader(t.file, t.key("events") + f"[{i}]", raw)
        at_s = e.seconds("at_s", REQUIRED)
        kind = e.choice("kind", kinds.names(), REQUIRED)
        events.append(EventConfig(at_s=at_s, kind=kind, target=_read_target(e, REQUIRED, cluster),
                                  **_read_fault_params(e, kind)))
        e.done()
    g = t.table("health_gate")
    gate = HealthGateConfig(enabled=g.boolean("enabled", DEFAULT_HEALTH_GATE_ENABLED),
                            limit_s=g.seconds("limit_s", DEFAULT_HEALTH_GATE_LIMIT_S, positive=True))
    g.done()
    t.done()
    return FaultsConfig(schedule=schedule, events=tuple(events), health_gate=gate)


def _placeholders_ok(t: TableReader, name: str, allowed: Sequence[str]) -> None:
    """ConfigError unless the template ``name`` uses only ``{placeholder}`` from ``allowed``."""
    expected = f"a template using only {', '.join('{' + p + '}' for p in allowed)}"
    try:
        fields = [(field, spec, conv) for _, field, spec, conv
                  in string.Formatter().parse(t.data[name]) if field is not None]
    except ValueError as exc:
        raise t.error(name, f"{expected} (write {{{{ and }}}} for literal braces): {exc}") from None
    for field, spec, conv in fields:
        if field not in allowed or spec or conv:
            raise t.error(name, f"{expected}, got {{{field}}}")


def _read_injector(t: TableReader, cluster: ClusterConfig, faults: FaultsConfig) -> InjectorConfig:
    kind = t.choice("kind", INJECTOR_KINDS, DEFAULT_INJECTOR)
    if kind == "onebox" and cluster.mode != "onebox":
        raise t.error("kind", f"'command' or 'none' with cluster.mode = {cluster.mode!r} "
                              "(the onebox injector reaches only the onebox)")
    c = t.table("command")
    templates = {}
    for name in COMMAND_TEMPLATES:
        templates[name] = c.string(name, None)
        if templates[name] is not None:
            _placeholders_ok(c, name, COMMAND_PLACEHOLDERS)
    command = CommandTemplates(**templates, timeout_s=c.seconds(
        "timeout_s", DEFAULT_COMMAND_TIMEOUT_S, positive=True))
    c.done()
    t.done()
    if kind == "command":  # every planned fault must be something the templates can do
        planned = [("faults.schedule", faults.schedule)] if faults.schedule else []
        planned += [(f"faults.events[{i}]", e) for i, e in enumerate(faults.events)]
        for origin, fault in planned:
            bundle = kinds.get(fault.kind)
            heals = getattr(fault, bundle.param) is not None
            for name in bundle.commands[:None if heals else 1]:
                if templates[name] is None:
                    raise c.error(name, f"a command template: {origin} is a {fault.kind} "
                                        f"fault{' that heals' if heals else ''}")
    return InjectorConfig(kind=kind, command=command)


def _read_slo(t: TableReader) -> tuple[SloBound, ...]:
    bounds = []
    for metric in t.data:
        if not all(metric.split(".")):
            raise t.error(metric, "a metric path of results.json such as "
                                  "'failover.recovered_fraction'")
        b = t.table(metric)
        low, high = b.number("min", None), b.number("max", None)
        b.done()
        if low is None and high is None:
            raise t.error(metric, "a bound: { min = x } and/or { max = y }")
        if low is not None and high is not None and low > high:
            raise b.error("max", f"at least min ({low:g}), got {high:g}")
        bounds.append(SloBound(metric=metric, min=low, max=high))
    return tuple(bounds)


def _read_report(t: TableReader) -> ReportConfig:
    report = ReportConfig(out=t.string("out", DEFAULT_REPORT_OUT),
                          min_fault_events=t.integer("min_fault_events", DEFAULT_MIN_FAULT_EVENTS,
                                                     minimum=MIN_FAULT_EVENTS_FLOOR))
    if "out" in t.data:
        _placeholders_ok(t, "out", REPORT_PLACEHOLDERS)
    t.done()
    return report
