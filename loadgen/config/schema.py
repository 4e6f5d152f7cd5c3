"""The profile schema: frozen dataclasses for every section of a TOML profile, and the defaults.

A :class:`Profile` is built and validated by :mod:`loadgen.config.profile` (``load_profile``); the
classes here only hold values. Every default lives in this module as a named constant, so
precedence (flags > ``--set`` > file > defaults) has one bottom layer. Units are in the names.

    Profile
    ├── cluster: ClusterConfig ── fd: FailureDetectorConfig
    ├── workload: WorkloadConfig ── mix: OpMix
    ├── policies: PoliciesConfig
    ├── faults: FaultsConfig ── schedule: ScheduleConfig | None
    │                        ├─ events: tuple[EventConfig, ...]
    │                        └─ health_gate: HealthGateConfig
    ├── injector: InjectorConfig ── command: CommandTemplates
    ├── slo: tuple[SloBound, ...]
    └── report: ReportConfig
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..node_actions import ACTIONS
from .targets import NodeTarget, PrimaryOf, RandomReplica, SecondaryOf, Target

# ---------------------------------------------------------------------------- defaults

DEFAULT_SEED = 0

CLUSTER_MODES = ("onebox", "external")
DEFAULT_CLUSTER_MODE = "onebox"
DEFAULT_TABLE = "temp"
DEFAULT_REPLICA_NODES = 3
DEFAULT_PARTITIONS = 8
DEFAULT_REPLICAS = 3
DEFAULT_MIN_REPLICAS = 2
#: Off, as in Pegasus's shipped config (rDSN's rpc_request_dropped_before_execution_when_timeout).
DEFAULT_DROP_EXPIRED = False
# Pegasus's own failure-detector timings.
DEFAULT_BEACON_S = 3.0
DEFAULT_CHECK_S = 2.0
DEFAULT_LEASE_S = 20.0
DEFAULT_GRACE_S = 22.0

DEFAULT_USERS = 8
DEFAULT_RATE_PER_USER = 50.0
DEFAULT_DURATION_S = 150.0
DEFAULT_WARMUP_S = 10.0
DEFAULT_OP_TIMEOUT_MS = 1000.0
DEFAULT_KEY_SPACE = 10000
DEFAULT_VALUE_BYTES = (64, 1024)
#: Workload op -> share of ops; a mix a profile gives replaces this one as a whole.
DEFAULT_MIX = types.MappingProxyType({"put": 0.85, "multi_put": 0.10, "get": 0.05})
DEFAULT_MAX_LAG_S = 10.0
DEFAULT_MAX_INFLIGHT = 64

POLICY_MODES = ("paired", "sequential")
DEFAULT_COMPARE = ("legacy", "failover")
DEFAULT_POLICY_MODE = "paired"

DEFAULT_SCHEDULE_COUNT = 1
DEFAULT_SCHEDULE_TARGET = "random"
DEFAULT_HEALTH_GATE_ENABLED = True
DEFAULT_HEALTH_GATE_LIMIT_S = 60.0

INJECTOR_KINDS = ("onebox", "command", "none")
DEFAULT_INJECTOR = "onebox"
#: Templates of ``[injector.command]`` and the placeholders they may use.
COMMAND_TEMPLATES = ACTIONS   # one per node action (loadgen.node_actions)
COMMAND_PLACEHOLDERS = ("node", "host", "port")
DEFAULT_COMMAND_TIMEOUT_S = 20.0

SLO_BOUNDS = ("min", "max")

REPORT_PLACEHOLDERS = ("name", "timestamp")
DEFAULT_REPORT_OUT = "reports/{name}-{timestamp}"
#: Fault events (not samples) the report needs for a bootstrap interval; never fewer than 2.
DEFAULT_MIN_FAULT_EVENTS, MIN_FAULT_EVENTS_FLOOR = 5, 2


def frozen_map(value: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy of ``value`` (for mapping fields of frozen dataclasses)."""
    return types.MappingProxyType(dict(value or {}))


# ---------------------------------------------------------------------------- cluster

@dataclass(frozen=True)
class FailureDetectorConfig:
    """``[cluster.fd]``: the onebox's failure-detector timings, seconds."""

    beacon_s: float = DEFAULT_BEACON_S
    check_s: float = DEFAULT_CHECK_S
    lease_s: float = DEFAULT_LEASE_S
    grace_s: float = DEFAULT_GRACE_S


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]``: which cluster, its shape, and (onebox) its timings."""

    mode: str = DEFAULT_CLUSTER_MODE
    #: Meta addresses ``host:port``; empty for the onebox, which picks its own.
    meta: tuple[str, ...] = ()
    table: str = DEFAULT_TABLE
    replica_nodes: int = DEFAULT_REPLICA_NODES
    partitions: int = DEFAULT_PARTITIONS
    replicas: int = DEFAULT_REPLICAS
    min_replicas: int = DEFAULT_MIN_REPLICAS
    #: Onebox: drop a request whose queue time exceeds its header's client_timeout.
    drop_expired: bool = DEFAULT_DROP_EXPIRED
    fd: FailureDetectorConfig = field(default_factory=FailureDetectorConfig)


# ---------------------------------------------------------------------------- workload

@dataclass(frozen=True)
class OpMix:
    """``workload.mix``: the share of each op; the shares sum to 1."""

    put: float = DEFAULT_MIX["put"]
    multi_put: float = DEFAULT_MIX["multi_put"]
    get: float = DEFAULT_MIX["get"]


@dataclass(frozen=True)
class WorkloadConfig:
    """``[workload]``: open-loop load per policy."""

    users: int = DEFAULT_USERS                    # per policy
    rate_per_user: float = DEFAULT_RATE_PER_USER  # intended ops/s of each user
    duration_s: float = DEFAULT_DURATION_S        # the whole run, warm-up included
    warmup_s: float = DEFAULT_WARMUP_S
    op_timeout_ms: float = DEFAULT_OP_TIMEOUT_MS
    key_space: int = DEFAULT_KEY_SPACE            # keys per user
    #: Inclusive range of value sizes, drawn uniformly.
    value_bytes: tuple[int, int] = DEFAULT_VALUE_BYTES
    mix: OpMix = field(default_factory=OpMix)
    #: Ops more than this behind their intended start are counted as missed.
    max_lag_s: float = DEFAULT_MAX_LAG_S
    #: Ops one user may have in flight; an arrival that finds them all busy is dropped.
    max_inflight: int = DEFAULT_MAX_INFLIGHT


# ---------------------------------------------------------------------------- policies

@dataclass(frozen=True)
class PoliciesConfig:
    """``[policies]``: which policies to compare, how, and their parameters."""

    #: Registered names or dotted paths, in report order.
    compare: tuple[str, ...] = DEFAULT_COMPARE
    mode: str = DEFAULT_POLICY_MODE
    #: Policy -> parameter -> value (read-only), checked against the policy's own parameters.
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map, hash=False)

    def params_for(self, policy: str) -> dict[str, Any]:
        """The parameters ``policy`` is built with (a fresh dict; empty if none)."""
        return dict(self.params.get(policy, {}))


# ---------------------------------------------------------------------------- real clients

#: A real client's row is named ``real:<name>`` (its ``[clients.<name>]`` key), apart from the
#: policy that models it (``pypegasus`` beside ``real:pypegasus``).
REAL_CLIENT_PREFIX = "real:"


@dataclass(frozen=True)
class ClientConfig:
    """``[clients.<name>]``: a real client build, driven through an adapter process
    (:mod:`loadgen.adapters`) as a row beside the policies."""

    name: str
    #: The adapter's command line; ``{venv:NAME}`` is a client environment of
    #: ``pegbench clients install NAME``.
    command: tuple[str, ...]
    #: Sent to the adapter in its ``hello`` (``options``), as given.
    options: Mapping[str, Any] = field(default_factory=frozen_map, hash=False)
    #: How long the adapter may take to say ``ready`` (a client's import and first meta query).
    handshake_timeout_s: float = 30.0

    @property
    def row(self) -> str:
        """The name its outcomes carry: ``real:<name>``."""
        return REAL_CLIENT_PREFIX + self.name


def is_real_client(row: str) -> bool:
    """Whether ``row`` names a real client's row (not a policy's)."""
    return row.startswith(REAL_CLIENT_PREFIX)


# ---------------------------------------------------------------------------- faults

@dataclass(frozen=True)
class ScheduleConfig:
    """``[faults.schedule]``: ``count`` faults of one kind, ``every_s`` apart from ``start_s``."""

    kind: str
    every_s: float
    target: Target = RandomReplica()
    count: int = DEFAULT_SCHEDULE_COUNT
    #: The first fault's instant; None means ``every_s`` (filled in at construction).
    start_s: float | None = None
    duration_s: float | None = None
    restart_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.start_s is None:
            object.__setattr__(self, "start_s", self.every_s)

    def times_s(self) -> tuple[float, ...]:
        """Injection instants, seconds from the run start."""
        return tuple(self.start_s + i * self.every_s for i in range(self.count))


@dataclass(frozen=True)
class EventConfig:
    """One ``[[faults.events]]`` entry: a single fault at ``at_s``."""

    at_s: float
    kind: str
    target: Target
    duration_s: float | None = None
    restart_after_s: float | None = None


@dataclass(frozen=True)
class HealthGateConfig:
    """``[faults.health_gate]``: wait for a healthy cluster before each fault."""

    enabled: bool = DEFAULT_HEALTH_GATE_ENABLED
    #: Not healthy by then: skip the next fault and record why.
    limit_s: float = DEFAULT_HEALTH_GATE_LIMIT_S


@dataclass(frozen=True)
class FaultsConfig:
    """``[faults]``: an optional seeded schedule plus explicit events."""

    schedule: ScheduleConfig | None = None
    events: tuple[EventConfig, ...] = ()
    health_gate: HealthGateConfig = field(default_factory=HealthGateConfig)


# ---------------------------------------------------------------------------- injector

@dataclass(frozen=True)
class CommandTemplates:
    """``[injector.command]``: shell templates using ``{node}``, ``{host}``, ``{port}``."""

    kill: str | None = None
    pause: str | None = None
    resume: str | None = None
    #: a graceful stop (SIGTERM): the first half of the ``restart`` fault kind
    terminate: str | None = None
    #: starts the node again (heals a kill and a restart)
    restart: str | None = None
    timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S

    def template(self, name: str) -> str | None:
        """The template called ``name`` (one of :data:`COMMAND_TEMPLATES`), or None if unset."""
        if name not in COMMAND_TEMPLATES:
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True)
class InjectorConfig:
    """``[injector]``: who carries out the faults."""

    kind: str = DEFAULT_INJECTOR
    command: CommandTemplates = field(default_factory=CommandTemplates)


# ---------------------------------------------------------------------------- slo, report

@dataclass(frozen=True)
class SloBound:
    """One ``[slo]`` entry: a metric path of results.json and its bounds (one JUnit case)."""

    metric: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ReportConfig:
    """``[report]``: where the outputs go; ``out`` may use ``{name}`` and ``{timestamp}``;
    ``min_fault_events``: fault events the report needs for a bootstrap interval."""

    out: str = DEFAULT_REPORT_OUT
    min_fault_events: int = DEFAULT_MIN_FAULT_EVENTS


# ---------------------------------------------------------------------------- profile

@dataclass(frozen=True)
class Profile:
    """A whole validated profile: everything a run needs to know before it starts."""

    name: str
    seed: int = DEFAULT_SEED
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    policies: PoliciesConfig = field(default_factory=PoliciesConfig)
    #: Real clients run beside the policies, in profile order.
    clients: tuple[ClientConfig, ...] = ()
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    injector: InjectorConfig = field(default_factory=InjectorConfig)
    slo: tuple[SloBound, ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)
    #: The file it was loaded from (errors found later still name it).
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (targets as their profile text), e.g. for results.json;
        ``clients`` keyed by name, as in the TOML."""
        data = plain_data(self)
        data["clients"] = {c.pop("name"): c for c in data["clients"]}
        return data

    @property
    def rows(self) -> tuple[str, ...]:
        """What a run compares: the policies, then the real clients' rows."""
        return self.policies.compare + tuple(c.row for c in self.clients)


def plain_data(value: Any) -> Any:
    """``value`` as plain JSON/msgpack-ready data: dataclasses and mappings as dicts, tuples
    as lists, targets as their profile text."""
    if isinstance(value, (NodeTarget, PrimaryOf, SecondaryOf, RandomReplica)):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain_data(item) for item in value]
    return value
