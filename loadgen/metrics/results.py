"""``results.json`` as a typed tree, and its one codec (:meth:`Results.to_dict` /
:meth:`Results.from_dict`). Every field: the README, "Reference".

Each JSON object is a frozen dataclass (a :class:`Block`) whose fields are its keys, in
document order; arrays are tuples, maps keyed by partition have ``int`` keys. ``to_dict``
gives the document key for key; ``from_dict`` reads any version-1 file. Older files lack keys
that came later (``new_primary``, ``dropped``, ``slo.verdict``, …): such a key reads as the
field's default (0, an empty map, None) and is named in ``absent``, so that ``to_dict``
leaves it out again. The run's facts (:class:`RunFacts`: profile, versions, load generator,
…) are top-level keys; one that is None is not written. Blocks nobody reads field by field
stay plain mappings: the profile echo, ``versions``, ``machine``, ``clock_anchor``,
``policy_info``, ``latency_hdr``, ``recovery_cost`` and the load generator's ``schedule``,
``baseline`` and ``cluster_queue``.

    Results ─ run: RunInfo
            ├ policies.<name>: PolicyResult ─ ops_by_phase.<phase>: PhaseOps
            │                               ├ latency_us.<op>.<kind>: LatencySummary
            │                               ├ latency_by_phase_us.<op>.<kind>.<phase>:
            │                               │   PhaseLatency
            │                               ├ ttr_first_ms, ttr_stable_ms: Distribution;
            │                               │ client_lag_ms: LagDistribution
            │                               └ ttr_hdr: TTRHdrs ─ ttr_first_ms, ttr_stable_ms:
            │                                 TTRHdr; client_lag_ms: LagHdr
            ├ faults[]: FaultResult ─ new_primary.<pidx>: NewPrimaryResult
            │                       └ ttr.<policy>.<pidx>: TTRResult
            ├ durability: Durability
            ├ facts: RunFacts ─ load_generator: LoadGenerator; workers: Workers
            └ slo: Slo ─ checks[]: SloCheck
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Self

RESULTS_FORMAT, RESULTS_VERSION = "pegbench-results", 1


class Codec(NamedTuple):
    """How a field's JSON value is read (``load``) and written (``dump``); null stays null."""

    load: Callable[[Any], Any]
    dump: Callable[[Any], Any]


def _nullable(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else f(value)


PLAIN = Codec(lambda v: v, lambda v: v)
ARRAY = Codec(_nullable(tuple), _nullable(list))


def block(cls: type[Block]) -> Codec:
    """A nested JSON object."""
    return Codec(_nullable(cls.from_dict), _nullable(lambda v: v.to_dict()))


def array_of(item: Codec) -> Codec:
    """A JSON array of ``item``."""
    return Codec(_nullable(lambda v: tuple(item.load(x) for x in v)),
                 _nullable(lambda v: [item.dump(x) for x in v]))


def map_of(item: Codec, key: Callable[[str], Any] = str) -> Codec:
    """A JSON object used as a map (names, partitions with ``key=int``) of ``item``."""
    return Codec(_nullable(lambda v: {key(k): item.load(x) for k, x in v.items()}),
                 _nullable(lambda v: {str(k): item.dump(x) for k, x in v.items()}))


def codecs(**by_field: Codec) -> Mapping[str, Codec]:
    """A block's ``CODECS``: its fields that are not plain JSON values."""
    return MappingProxyType(by_field)


@dataclass(frozen=True)
class Block:
    """One JSON object of results.json (see the module docstring)."""

    #: keys the document read lacked (an older file): ``to_dict`` leaves each out while it
    #: holds its default (a value set later, e.g. with ``dataclasses.replace``, is written)
    absent: frozenset[str] = field(default=frozenset(), kw_only=True, repr=False)
    #: field -> its codec, where it is not a plain JSON value (:func:`codecs`)
    CODECS: ClassVar[Mapping[str, Codec]] = MappingProxyType({})

    @classmethod
    def keys(cls) -> list[str]:
        """The object's keys, in document order."""
        return [f.name for f in fields(cls) if f.name != "absent"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        return {f.name: self.CODECS.get(f.name, PLAIN).dump(getattr(self, f.name))
                for f in fields(self) if f.name != "absent" and not self._left_out(f)}

    def _left_out(self, f: Field[Any]) -> bool:
        if f.name not in self.absent:
            return False
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        return getattr(self, f.name) == default

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read the JSON object; TypeError when it is not one."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        keys = cls.keys()
        return cls(**{k: cls.CODECS.get(k, PLAIN).load(data[k]) for k in keys if k in data},
                   absent=frozenset(k for k in keys if k not in data))


@dataclass(frozen=True)
class RunInfo(Block):
    """``run``: the analysed window (monotonic s), the recovery phase, the table, W."""

    clock: str = "monotonic"
    t_start: float | None = None
    t_end: float | None = None
    duration_s: float | None = None
    recovery_s: float | None = None
    table: str | None = None
    ttr_window_s: float | None = None


@dataclass(frozen=True)
class PhaseOps(Block):
    """``ops_by_phase.<phase>``."""

    ops: int = 0
    errors: int = 0


@dataclass(frozen=True)
class LatencySummary(Block):
    """``latency_us.<op>.<service|response>`` (µs)."""

    count: int = 0
    p50: int | None = None
    p99: int | None = None
    p999: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class PhaseLatency(LatencySummary):
    """``latency_by_phase_us.<op>.<service|response>.<phase>`` (µs), with the histogram
    itself (``hdr``: hdrh's compressed base64) so that runs can be merged or re-read."""

    hdr: str = ""


@dataclass(frozen=True)
class Distribution(Block):
    """``ttr_first_ms``, ``ttr_stable_ms``: censored samples count as +∞ (ms)."""

    n: int = 0
    recovered: int = 0
    censored: int = 0
    p50: float | None = None
    p99: float | None = None
    max: float | None = None

    def or_inf(self, value: float | None) -> float | None:
        """``value``, one of this distribution's figures, as a number: +inf when it is null
        because it landed on a censored sample, None when null otherwise."""
        if value is None:
            return math.inf if self.censored else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)


@dataclass(frozen=True)
class LagDistribution(Distribution):
    """``client_lag_ms``: also ``negative`` lags, the ``min`` and the samples with no server
    failover time (``unknown``, not in ``n``)."""

    negative: int = 0
    min: float | None = None
    unknown: int = 0


@dataclass(frozen=True)
class TTRHdr(Block):
    """``ttr_hdr.<ttr_first_ms|ttr_stable_ms>``: the recovered samples' histogram (ms, hdrh's
    compressed base64; :mod:`.ttr_hist`), ``count`` of them, and the ``censored`` samples kept
    out of it."""

    hdr: str = ""
    censored: int = 0
    count: int = 0


@dataclass(frozen=True)
class LagHdr(TTRHdr):
    """``ttr_hdr.client_lag_ms``: also the ``negative`` lags kept out of the histogram."""

    negative: int = 0


@dataclass(frozen=True)
class TTRHdrs(Block):
    """``policies.<name>.ttr_hdr``: TTR as histograms, which runs can add up."""

    ttr_first_ms: TTRHdr = field(default_factory=TTRHdr)
    ttr_stable_ms: TTRHdr = field(default_factory=TTRHdr)
    client_lag_ms: LagHdr = field(default_factory=LagHdr)

    CODECS = codecs(ttr_first_ms=block(TTRHdr), ttr_stable_ms=block(TTRHdr),
                    client_lag_ms=block(LagHdr))


@dataclass(frozen=True)
class PolicyResult(Block):
    """``policies.<name>``."""

    ops: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_rate: float | None = None
    error_rate_by_phase: dict[str, float | None] = field(default_factory=dict)
    ops_by_phase: dict[str, PhaseOps] = field(default_factory=dict)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    error_rate_by_kind: dict[str, float | None] = field(default_factory=dict)
    attempts: int = 0
    attempts_per_op: float | None = None
    meta_queries: int = 0
    meta_queries_failed: int = 0
    meta_queries_per_s: float | None = None
    meta_queries_per_s_overall: float | None = None
    replica_queries: int = 0
    recovery_cost: Mapping[str, Any] = field(default_factory=dict)
    missed: int | None = None
    dropped: int = 0
    dropped_by_partition: dict[str, int] = field(default_factory=dict)
    attempt_outcomes: dict[str, int] = field(default_factory=dict)
    attempt_errors: dict[str, int] = field(default_factory=dict)
    clamped: int = 0
    #: op -> "service" | "response" -> its summary
    latency_us: dict[str, dict[str, LatencySummary]] = field(default_factory=dict)
    #: op -> "service" | "response" -> global phase (only phases with ops) -> its summary
    latency_by_phase_us: dict[str, dict[str, dict[str, PhaseLatency]]] = field(
        default_factory=dict)
    ttr_first_ms: Distribution = field(default_factory=Distribution)
    ttr_stable_ms: Distribution = field(default_factory=Distribution)
    client_lag_ms: LagDistribution = field(default_factory=LagDistribution)
    recovered_fraction: float | None = None
    stable_recovered_fraction: float | None = None
    #: None in files from before it
    ttr_hdr: TTRHdrs | None = None

    CODECS = codecs(ops_by_phase=map_of(block(PhaseOps)),
                    latency_us=map_of(map_of(block(LatencySummary))),
                    latency_by_phase_us=map_of(map_of(map_of(block(PhaseLatency)))),
                    ttr_first_ms=block(Distribution), ttr_stable_ms=block(Distribution),
                    client_lag_ms=block(LagDistribution), ttr_hdr=block(TTRHdrs))

    def phase_latency_ms(self, op: str = "put", kind: str = "response",
                         phase: str = "fault", percentile: str = "p99") -> float | None:
        """One figure of ``latency_by_phase_us`` in ms (default: the put response p99 during
        faults); None when no such op was intended in that phase (or an older file)."""
        summary = self.latency_by_phase_us.get(op, {}).get(kind, {}).get(phase)
        value = None if summary is None or not summary.count else getattr(summary, percentile)
        return None if value is None else value / 1000

    @property
    def put_p99_during_faults_ms(self) -> float | None:
        """Put response time p99 over the puts intended during faults (ms; None: none)."""
        return self.phase_latency_ms("put", "response", "fault", "p99")


@dataclass(frozen=True)
class TTRResult(Block):
    """``faults[].ttr.<policy>.<pidx>``: one sample (ms after t_inject)."""

    first_ms: float | None = None
    stable_ms: float | None = None
    lag_ms: float | None = None
    recovered: bool = False
    stable_recovered: bool = False
    lag_negative: bool = False
    horizon_ms: float | None = None


@dataclass(frozen=True)
class NewPrimaryResult(Block):
    """``faults[].new_primary.<pidx>``: the promoted node and its own last fault."""

    node: str | None = None
    last_fault_id: str | None = None
    last_fault_age_s: float | None = None
    recently_faulted: bool = False


@dataclass(frozen=True)
class FaultResult(Block):
    """``faults[]``: one fault event, skipped or injected, and its TTR samples."""

    id: str | None = None
    kind: str | None = None
    node: str | None = None
    t_inject: float | None = None
    t_heal: float | None = None
    affected_partitions: tuple[int, ...] = ()
    skipped: bool = False
    skip_reason: str | None = None
    server_failover_ms: dict[int, float | None] = field(default_factory=dict)
    touched_partitions: tuple[int, ...] | None = None     # None: unknown
    new_primary: dict[int, NewPrimaryResult] = field(default_factory=dict)
    #: policy -> partition -> its sample
    ttr: dict[str, dict[int, TTRResult]] = field(default_factory=dict)

    CODECS = codecs(affected_partitions=ARRAY, touched_partitions=ARRAY,
                    server_failover_ms=map_of(PLAIN, int),
                    new_primary=map_of(block(NewPrimaryResult), int),
                    ttr=map_of(map_of(block(TTRResult), int)))


@dataclass(frozen=True)
class Durability(Block):
    """``durability``: the acknowledged writes read back."""

    acked: int = 0
    verified: int = 0
    lost: int | None = None
    #: the same per row that wrote them (policy or real client): {acked, verified, lost}
    by_policy: Mapping[str, Mapping[str, int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if out.get("by_policy") is None:     # a read-back that did not count by row
            out.pop("by_policy", None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return replace(super().from_dict(data), absent=frozenset())   # None: not written


@dataclass(frozen=True)
class SloCheck(Block):
    """``slo.checks[]``; ``passed`` is true, false or null (``"unknown"`` in older files)."""

    name: str | None = None
    value: Any = None
    threshold: dict[str, float] = field(default_factory=dict)
    passed: bool | str | None = None
    details: str | None = None


@dataclass(frozen=True)
class Slo(Block):
    """``slo``: the run's verdict and its checks (read it with ``metrics.slo.slo_verdict``)."""

    verdict: str | None = None             # "pass" | "fail" | "unknown"; absent before it
    passed: bool | str | None = None
    unknown_reason: str | None = None
    checks: tuple[SloCheck, ...] = ()

    CODECS = codecs(checks=array_of(block(SloCheck)))


@dataclass(frozen=True)
class LoadGenerator(Block):
    """``load_generator``: whether the test bench was its own bottleneck, and why."""

    saturated: bool = False
    reason: str | None = None
    cpu_max: float | None = None
    late_max_ms: float | None = None
    since: float | None = None
    schedule: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None
    cluster_queue: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workers(Block):
    """``workers``: the Locust workers whose final report came in, and those missing."""

    reported: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    CODECS = codecs(reported=ARRAY, missing=ARRAY)


@dataclass(frozen=True)
class RunFacts(Block):
    """What ``pegbench run`` records beside the numbers: top-level keys of results.json. A
    fact that is None is not written (a run that did not record it)."""

    profile: Mapping[str, Any] | None = None        # Profile.to_dict()
    seed: int | None = None
    versions: Mapping[str, str] | None = None
    machine: Mapping[str, Any] | None = None
    clock_anchor: Mapping[str, float] | None = None  # {wall_s, monotonic_s}
    load_generator: LoadGenerator | None = None
    workers: Workers | None = None
    interrupted: bool | None = None
    policy_info: Mapping[str, Any] | None = None     # <name>.{models, summary, source}
    latency_hdr: Mapping[str, Any] | None = None     # <policy>.<op>.<kind>: hdrh base64
    #: the user count's changes mid-run (Locust's Edit): [{at_s, users_per_policy}]
    user_counts: Sequence[Mapping[str, float]] | None = None
    #: real client row -> {name, command, client, version, meta_queries_counted, died_at
    #: (monotonic, like run.t_start; null if it ran to the end), error, adapters: [per load
    #: process status]}
    real_clients: Mapping[str, Any] | None = None

    CODECS = codecs(load_generator=block(LoadGenerator), workers=block(Workers))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return replace(super().from_dict(data), absent=frozenset())   # None: not written

    @property
    def profile_name(self) -> str | None:
        """The profile's name, if the run recorded its profile."""
        name = self.profile.get("name") if isinstance(self.profile, Mapping) else None
        return None if name is None else str(name)

    @property
    def compared(self) -> list[str]:
        """The profile's ``policies.compare``, if recorded, then the real clients' rows."""
        policies = self.profile.get("policies") if isinstance(self.profile, Mapping) else None
        compare = policies.get("compare") if isinstance(policies, Mapping) else None
        return (list(compare) if isinstance(compare, list) else []) + list(self.real_clients or {})


FACT_KEYS = frozenset(RunFacts.keys())


@dataclass(frozen=True)
class Results(Block):
    """The whole document; ``facts`` are top-level keys in the file, between ``durability``
    and ``slo``."""

    format: str = RESULTS_FORMAT
    version: int = RESULTS_VERSION
    run: RunInfo = field(default_factory=RunInfo)
    policies: dict[str, PolicyResult] = field(default_factory=dict)
    faults: tuple[FaultResult, ...] = ()
    durability: Durability | None = None
    facts: RunFacts = field(default_factory=RunFacts)
    slo: Slo | None = None

    CODECS = codecs(run=block(RunInfo), policies=map_of(block(PolicyResult)),
                    faults=array_of(block(FaultResult)), durability=block(Durability),
                    facts=block(RunFacts), slo=block(Slo))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in super().to_dict().items():
            if key == "facts":
                out.update(value)
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read a results.json document (or a fragment of one: what it lacks is absent);
        ValueError when it is of another format or version, TypeError (or ValueError for a
        partition key) when it is not shaped as one."""
        if not isinstance(data, Mapping):
            raise TypeError(f"results: expected a JSON object, got {type(data).__name__}")
        if data.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise ValueError(f"format is {data['format']!r}, expected {RESULTS_FORMAT!r}")
        if data.get("version", RESULTS_VERSION) != RESULTS_VERSION:
            raise ValueError(f"version is {data['version']!r}, expected {RESULTS_VERSION}")
        own = {k: v for k, v in data.items() if k not in FACT_KEYS}
        return super().from_dict({**own, "facts": {k: data[k] for k in FACT_KEYS if k in data}})
