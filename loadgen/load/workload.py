"""The workload's process-wide state: settings, one client per policy, recorder, ledgers.

One :class:`Workload` per load process (a local runner or a Locust worker; a master keeps one
too, with no users, for its settings). It owns what the users of every policy share:

* one :class:`~loadgen.pegasus.Client` per policy, opened on first use and closed when the
  test stops; each user of that policy goes through it;
* the process's :class:`~loadgen.metrics.Recorder` (the clients' observer), reset at the end
  of warm-up and at the start of each test;
* missed ops per policy (too far behind the open-loop schedule; arrivals dropped at the
  in-flight cap are the recorder's), the durability ledgers and the load monitor (is this
  process its own bottleneck?).

No Locust here: the Locust side (users, events, messages) is in :mod:`loadgen.harness.hooks`
and :mod:`loadgen.harness.users`; this module is driven by plain calls and is testable without it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event

from ..config.profile import workload_from_dict
from ..config.schema import DEFAULT_COMPARE, DEFAULT_TABLE, Profile, WorkloadConfig, frozen_map, plain_data
from ..errors import ConfigError, PegasusError
from ..events import Events
from ..metrics import Recorder
from ..pegasus import policies
from .durability import Durability, DurabilityBook, ValueMaker, verify
from .selfcheck import LoadMonitor, Saturation

log = logging.getLogger(__name__)

#: The ops the workload issues.
WORKLOAD_OPS = ("put", "multi_put", "get")


@dataclass(frozen=True)
class WorkloadSettings:
    """Everything a load process needs to drive the workload: the profile's ``[workload]``
    plus the run's own facts (from a profile plus flags)."""

    meta: tuple[str, ...]
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    table: str = DEFAULT_TABLE
    policies: tuple[str, ...] = DEFAULT_COMPARE
    #: policy -> parameter -> value
    policy_params: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map, hash=False)
    run_id: str = ""
    seed: int = 0
    #: Real clients' rows (``real:<name>``) -> their ``[clients.<name>]`` as plain data
    #: (``command``, ``options``, ``handshake_timeout_s``), run beside the policies.
    clients: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map, hash=False)
    #: The onebox meta's query log (peer and instant of each config query), from which a real
    #: client's meta queries are counted; "" where there is none (an external cluster).
    meta_query_log: str = ""

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError("", "policies.compare", "at least one policy")
        if len(set(self.policies)) != len(self.policies):
            raise ConfigError("", "policies.compare", f"distinct policies, got {list(self.policies)}")
        w = self.workload
        if w.key_space <= w.max_inflight:
            # each write in flight holds a key of its own (see loadgen.load.driver)
            raise ConfigError("", "workload.max_inflight",
                              f"fewer than workload.key_space ({w.key_space}), "
                              f"got {w.max_inflight}")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())

    @property
    def rows(self) -> tuple[str, ...]:
        """What the users drive: the policies, then the real clients' rows."""
        return self.policies + tuple(self.clients)

    @property
    def total_users(self) -> int:
        """Users over all rows: ``workload.users`` per policy and per real client."""
        return self.workload.users * len(self.rows)

    @classmethod
    def from_profile(cls, profile: Profile, *, meta: Sequence[str] | None = None,
                     policies: Sequence[str] | None = None, run_id: str | None = None,
                     **overrides: Any) -> WorkloadSettings:
        """Settings of ``profile``; ``meta`` (required unless the profile names an external
        cluster's), ``policies`` and ``overrides`` (field=value, of these settings or of their
        WorkloadConfig) win over the profile."""
        meta = tuple(meta) if meta else profile.cluster.meta
        if not meta:
            raise ConfigError(profile.source or "profile", "cluster.meta",
                              "meta addresses 'host:port' (pass --meta for a onebox)")
        compare = tuple(policies) if policies else profile.policies.compare
        workload_fields = {f.name for f in dataclasses.fields(WorkloadConfig)}
        workload = dataclasses.replace(profile.workload, **{k: v for k, v in overrides.items()
                                                            if k in workload_fields})
        values: dict[str, Any] = {
            "meta": meta, "workload": workload, "table": profile.cluster.table, "policies": compare,
            "policy_params": frozen_map({p: frozen_map(_params(profile, p)) for p in compare}),
            "run_id": run_id or "", "seed": profile.seed,
            "clients": frozen_map({c.row: frozen_map({
                "command": list(c.command), "options": dict(c.options),
                "handshake_timeout_s": c.handshake_timeout_s}) for c in profile.clients})}
        values.update((k, v) for k, v in overrides.items() if k not in workload_fields)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON, msgpack): what a master ships to its workers."""
        return plain_data(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSettings:
        """The inverse of :meth:`to_dict` (its ``workload`` checked as a profile's)."""
        return cls(meta=tuple(data["meta"]), workload=workload_from_dict(data["workload"]),
                   table=data["table"], policies=tuple(data["policies"]),
                   policy_params=frozen_map({p: frozen_map(v)
                                             for p, v in data["policy_params"].items()}),
                   run_id=data["run_id"], seed=data["seed"],
                   clients=frozen_map({r: frozen_map(c) for r, c in data.get("clients", {}).items()}),
                   meta_query_log=data.get("meta_query_log", ""))


def _params(profile: Profile, policy: str) -> dict[str, Any]:
    """The profile's parameters of ``policy``; on the onebox, a policy that can use the
    cluster's failure-detector timings is told them unless the profile sets its own."""
    params = profile.policies.params_for(policy)
    if profile.cluster.mode == "external":
        return params
    fd = profile.cluster.fd
    return policies.with_failure_detector(policy, params, beacon_s=fd.beacon_s,
                                          check_s=fd.check_s, grace_s=fd.grace_s)


def new_run_id() -> str:
    """A short id unique enough to keep runs' keys apart."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def policy_labels(settings: WorkloadSettings) -> dict[str, str]:
    """Compared row -> the name its outcomes carry (a dotted path's class may differ; a real
    client's row is its own name)."""
    labels = {p: policies.create(p, settings.policy_params.get(p)).name or p
              for p in settings.policies}
    return {**labels, **{row: row for row in settings.clients}}


class Workload:
    """Process-wide workload state (see the module docstring)."""

    def __init__(self, settings: WorkloadSettings, *, label: str = "local",
                 events: Events | None = None):
        self.settings = settings
        self.label = label                      # "local", or the worker's id in key prefixes
        self.labels = policy_labels(settings)
        self.recorder = Recorder()
        self.monitor = LoadMonitor()
        self.book = DurabilityBook(ValueMaker(settings.workload.value_bytes[1], seed=settings.seed))
        self.missed: dict[str, int] = {}        # by outcome label
        self.open_failures: dict[str, int] = {}
        #: ``warmup_ended`` fires at the end of warm-up, after the recorder's reset
        self.events = events if events is not None else Events()
        self.t_test_start: float | None = None
        self.t_warmup_end: float | None = None
        self.epoch = 0                           # tests started in this process
        self._clock_shift_s = 0.0
        self._clients: dict[str, Any] = {}
        self._tables: dict[str, Any] = {}
        #: real client row -> its adapter's status (plain data), kept after the test stops
        self._real_status: dict[str, dict[str, Any]] = {}
        # this test's real clients are being started / were started (or failed to)
        self._real_opening, self._real_ready = False, Event()
        self._seq: dict[str, itertools.count] = {}
        self._warmup: gevent.Greenlet | None = None

    # ------------------------------------------------------------------ test lifecycle

    def start_test(self, *, monitor: bool = True) -> None:
        """A test starts: fresh recorder, counters, ledgers; warm-up timer; load monitor."""
        self.stop_test()
        self.epoch += 1
        self.recorder.reset()
        self.missed.clear()
        self.open_failures.clear()
        self.book.clear()
        self._seq.clear()
        self._real_status.clear()
        self._real_opening, self._real_ready = False, Event()
        self.t_test_start, self.t_warmup_end = time.monotonic(), None
        if monitor:
            self.monitor.start()
        warmup_s = self.settings.workload.warmup_s
        if warmup_s > 0:
            self._warmup = gevent.spawn_later(warmup_s, self.end_warmup)
        else:
            self.end_warmup()

    def end_warmup(self) -> None:
        """Warm-up is over: drop what was recorded so far (wrk2 resets after calibrating)."""
        self.recorder.reset()
        self.missed.clear()
        self.monitor.reset()
        self.t_warmup_end = time.monotonic()
        self.events.warmup_ended.fire()

    def stop_test(self) -> None:
        """The test stopped: close the clients (reopened on the next test's first op)."""
        if self._warmup is not None:
            self._warmup.kill(block=False)
            self._warmup = None
        self.monitor.stop()
        clients, self._clients, self._tables = self._clients, {}, {}
        for name, client in clients.items():
            client.close()
            if name in self.settings.clients:
                self._real_status[name] = client.status()

    # ------------------------------------------------------------------ users' needs

    def table(self, policy: str):
        """The table of ``policy``'s shared client (opened on first use; may raise
        PegasusError if the metas cannot be reached)."""
        table = self._tables.get(policy)
        if table is not None:
            return table
        s = self.settings
        if s.clients and policy not in s.clients and not self._real_ready.is_set():
            self._open_real_clients()
        client = self._clients.get(policy)
        if client is None:
            if policy in s.clients:
                from .real_client import RealClient

                client = self._clients[policy] = RealClient(
                    policy, s.clients[policy], s.meta, op_timeout_ms=s.workload.op_timeout_ms,
                    observer=self.observer, meta_query_log=s.meta_query_log, worker=self.label)
            else:
                from ..pegasus import Client  # the client is only needed where users run

                client = self._clients[policy] = Client(
                    list(s.meta), policy=policy, op_timeout_ms=s.workload.op_timeout_ms,
                    observer=self.observer, policy_params=s.policy_params.get(policy))
        table = client.open_table(self.settings.table)   # concurrent openers share one query
        if self._clients.get(policy) is client:          # not closed meanwhile
            self._tables[policy] = table
        return table

    def _open_real_clients(self) -> None:
        """Start the real clients' adapters before any policy opens its table, so a client's
        timers (e.g. pypegasus's 2 s meta check) and its model's start together: a policy's
        users wait out the adapters' start-up (a fraction of a second, in warm-up)."""
        if self._real_opening:
            self._real_ready.wait()
            return
        self._real_opening = True
        try:
            for row in self.settings.clients:
                try:
                    self.table(row)
                except PegasusError:
                    pass     # its own users count it; the policies go on
        finally:
            self._real_ready.set()

    def new_user(self, policy: str) -> tuple[int, bytes]:
        """(sequence number, key prefix ``run/policy/worker/seq/``) for a new user."""
        seq = next(self._seq.setdefault(policy, itertools.count()))
        prefix = f"{self.settings.run_id}/{policy}/{self.label}/{seq}/".encode()
        return seq, prefix

    def add_missed(self, policy: str, n: int) -> None:
        """``n`` ops of ``policy`` were missed by the schedule."""
        label = self.labels.get(policy, policy)
        self.missed[label] = self.missed.get(label, 0) + n

    def add_dropped(self, policy: str, partition: int, t_intended: float) -> None:
        """An arrival of ``policy`` found its user's in-flight cap full and was dropped."""
        self.recorder.drop(self.labels.get(policy, policy), partition,
                           t_intended + self._clock_shift_s)

    def add_open_failure(self, policy: str) -> None:
        """An op of ``policy`` could not start: its table could not be opened."""
        self.open_failures[policy] = self.open_failures.get(policy, 0) + 1

    # ------------------------------------------------------------------ clocks

    @property
    def observer(self) -> Callable[[Any], None]:
        """What the clients report to: the recorder, shifted to the master's clock if needed."""
        record = self.recorder.record
        shift = self._clock_shift_s
        if not shift:
            return record

        def shifted(o) -> None:
            intended = None if o.intended_start is None else o.intended_start + shift
            record(dataclasses.replace(o, start=o.start + shift, end=o.end + shift,
                                       intended_start=intended))
        return shifted

    @property
    def clock_shift_s(self) -> float:
        """Seconds added to this host's monotonic times before recording (0: same host)."""
        return self._clock_shift_s

    def set_clock_shift(self, shift_s: float) -> None:
        """Record outcomes on another host's monotonic clock: ``t + shift_s``."""
        self._clock_shift_s = shift_s
        for client in self._clients.values():
            client.observer = self.observer

    # ------------------------------------------------------------------ results

    def real_clients(self) -> dict[str, dict[str, Any]]:
        """Per real client row, its adapter's status in this process (plain data): client
        name and version from its handshake, pid, whether and when it died."""
        out = dict(self._real_status)
        out.update((name, c.status()) for name, c in self._clients.items()
                   if name in self.settings.clients)
        return out

    def saturation(self) -> Saturation:
        """Whether this process was its own bottleneck (see :mod:`loadgen.load.selfcheck`)."""
        return self.monitor.status()

    def counts(self) -> dict[str, Any]:
        """Plain per-policy totals of what this process recorded (ops, outcomes, attempts,
        meta queries, missed, dropped), e.g. for a worker's own dump."""
        state = self.recorder.snapshot()
        return {name: {"ops": p.ops, "outcomes": dict(p.outcomes), "attempts": p.attempts,
                       "meta_queries": p.meta_queries, "missed": self.missed.get(name, 0),
                       "dropped": p.dropped_total}
                for name, p in state.policies.items()}

    def verify_durability(self, timeout_s: float = 60.0) -> Durability:
        """Read back this process's acknowledged writes through a fresh client."""
        return verify(self.book, self.settings.meta, self.settings.table, timeout_s=timeout_s)
