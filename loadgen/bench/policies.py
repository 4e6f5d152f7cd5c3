"""Policy matrix: every built-in policy through each failure scenario, one row per pair.

``pegbench bench policies`` (or ``python -m loadgen.bench.policies``). Writers put on a fixed
open-loop schedule to the partitions the fault hits, one policy at a time, so the servers'
counts belong to that policy alone. Scenarios where a real server fails run on a small
onebox (kill, pauses); those where a server must misbehave on purpose run on the in-process
test cluster (slow primary, one connection reset, partition moved). Each row: ops ok and
failed from the fault on, the first success after the fault (and after the heal), meta
queries/s from the fault on, attempts per op, and writes the servers executed per
acknowledged write (> 1: the policy's retries or a backlog were executed for nothing).
The runners also return the whole :class:`Trace` (``runner.trace(...)``), which
``pegbench bench frontier`` (loadgen/bench/frontier.py) measures further.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gevent

from ..faults.observer import LogTailObserver
from ..onebox.spec import CONFIG_LOG, META_NODE
from ..pegasus import Client, PegasusError, keys, policies
from ..pegasus.outcome import META, OK, OP
from ..pegasus.policies import BUILTINS
from ..testing.cluster import Recorder, TestCluster


@dataclass(frozen=True)
class Settings:
    """Load and timings of one matrix run."""

    op_timeout_ms: float = 1000.0
    writers: int = 16                 # each issues one op at a time
    rate_per_writer: float = 12.5     # intended puts/s per writer
    before_s: float = 1.0             # load before the fault
    after_s: float = 6.0              # load from the fault on
    lease_s: float = 2.0              # onebox FD: pauses below and past these
    grace_s: float = 2.5
    policy_params: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """What one policy did through one scenario (times in seconds, relative to the fault)."""

    scenario: str
    policy: str
    ok: int
    failed: int
    first_ok_s: float | None          # first success after the fault; None: none
    first_ok_after_heal_s: float | None
    meta_queries_per_s: float
    attempts_per_op: float
    writes_per_ack: float | None      # None: nothing acknowledged


@dataclass(frozen=True, slots=True)
class WriterOp:
    """One op of one writer, as the writer saw it (monotonic seconds)."""

    intended: float                   # its instant on the writer's schedule
    end: float                        # when the client returned or raised
    ok: bool


@dataclass
class Trace:
    """One policy's run through one scenario, filled in as it goes."""

    scenario: str
    policy: str
    recorder: Recorder = field(default_factory=Recorder)
    t_fault: float = 0.0
    t_heal: float | None = None       # the restart's READY, the resume, the in-process heal
    #: The first instant the server side could serve the faulted partitions again: the meta's
    #: new primary or the heal, whichever came first (onebox); the heal, else the fault itself
    #: (in-process: the servers are ready at once, only the client must catch up).
    t_ready: float | None = None
    t_end: float = 0.0
    writes: int = 0                   # executed by the servers during the run
    writers: list[list[WriterOp]] = field(default_factory=list)  # each writer's ops in order


#: The onebox's beacon and check intervals (its lease and grace are :class:`Settings`').
BEACON_S, CHECK_S = 0.1, 0.05


def policy_params(policy: str, settings: Settings, *, tell_fd: bool = True) -> dict:
    """``policy``'s parameters in a run: the settings' own; with ``tell_fd``, a policy that
    can use the cluster's failure-detector timings (``failover``) is told the onebox's
    unless the settings set them."""
    params = settings.policy_params.get(policy)
    if not tell_fd:
        return dict(params or {})
    return policies.with_failure_detector(policy, params, beacon_s=BEACON_S, check_s=CHECK_S,
                                          grace_s=settings.grace_s)


# --------------------------------------------------------------------------- load


def _write_load(table, hash_keys: list[bytes], settings: Settings,
                until: float) -> list[list[WriterOp]]:
    """Writers on a fixed schedule, their phases spread evenly over a period (no bursts); a
    stalled op delays its writer, which then catches up, until ``until``: ops due later, or
    not started by then, are not issued. Returns each writer's ops."""
    period = 1 / settings.rate_per_writer
    logs: list[list[WriterOp]] = [[] for _ in range(settings.writers)]

    def writer(n: int) -> None:
        k, t0 = 0, time.monotonic() + n * period / settings.writers
        while True:  # bounded by ``until``
            intended = t0 + k * period
            if intended >= until or time.monotonic() >= until:
                return
            delay = intended - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            hk = hash_keys[(n + k) % len(hash_keys)]
            try:
                table.put(hk, f"w{n}-{k}", b"v" * 64, intended_start=intended)
                ok = True
            except PegasusError:
                ok = False  # counted from the recorder
            logs[n].append(WriterOp(intended, time.monotonic(), ok))
            k += 1

    gevent.joinall([gevent.spawn(writer, n) for n in range(settings.writers)])
    return logs


def row_of(run: Trace) -> Row:
    """The matrix row of one traced run."""
    outcomes = run.recorder.outcomes
    ops = [o for o in outcomes if o.level == OP and o.start >= run.t_fault]
    oks = [o.end for o in outcomes if o.level == OP and o.outcome == OK and o.end > run.t_fault]
    acked = sum(1 for o in outcomes if o.level == OP and o.outcome == OK)
    after_heal = [t for t in oks if run.t_heal is not None and t > run.t_heal]
    metas = sum(1 for o in outcomes if o.level == META and o.start >= run.t_fault)
    return Row(
        scenario=run.scenario, policy=run.policy, ok=sum(o.outcome == OK for o in ops),
        failed=sum(o.outcome != OK for o in ops),
        first_ok_s=min(oks) - run.t_fault if oks else None,
        first_ok_after_heal_s=min(after_heal) - run.t_heal if after_heal else None,
        meta_queries_per_s=metas / max(1e-9, run.t_end - run.t_fault),
        attempts_per_op=sum(o.attempt for o in ops) / len(ops) if ops else 0.0,
        writes_per_ack=run.writes / acked if acked else None)


# --------------------------------------------------------------------------- in-process


@dataclass(frozen=True)
class InProcess:
    """A scenario on the test cluster (2 replicas, 4 partitions, every primary on the first
    replica): ``fault`` makes it misbehave; ``heal``, if given, runs ``heal_after_s`` later.
    ``runner(policy, settings)`` returns the :class:`Row`, ``runner.trace(...)`` the run."""

    scenario: str
    fault: Callable[[TestCluster, Settings], None]
    heal: Callable[[TestCluster, Settings], None] | None = None
    heal_after_s: Callable[[Settings], float] = lambda s: 0.0
    #: Whether the policies are told the onebox's failure-detector timings. The test cluster
    #: has no failure detector; a scenario whose fault no detector would act on (a slow
    #: primary, a reset, a move by the meta) runs as on a cluster with the onebox's. One
    #: that stands for a detector's verdict (a move ``heal_after_s`` after a crash) must not.
    tell_fd: bool = False

    def __call__(self, policy: str, settings: Settings) -> Row:
        return row_of(self.trace(policy, settings))

    def trace(self, policy: str, settings: Settings) -> Trace:
        """Run ``policy`` through the scenario once."""
        run = Trace(self.scenario, policy)
        with TestCluster(replicas=2, partitions=4) as cluster:
            params = policy_params(policy, settings, tell_fd=self.tell_fd)
            with Client(cluster.meta_addrs, policy=policy, op_timeout_ms=settings.op_timeout_ms,
                        observer=run.recorder, policy_params=params) as client:
                table = client.open_table("temp")
                hash_keys = [f"k{i}".encode() for i in range(16)]
                run.t_fault = time.monotonic() + settings.before_s
                load = gevent.spawn(_write_load, table, hash_keys, settings,
                                    run.t_fault + settings.after_s)
                gevent.sleep(max(0.0, run.t_fault - time.monotonic()))
                run.t_fault = time.monotonic()
                self.fault(cluster, settings)
                if self.heal is not None:
                    gevent.sleep(self.heal_after_s(settings))
                    run.t_heal = time.monotonic()
                    self.heal(cluster, settings)
                run.t_ready = run.t_fault if run.t_heal is None else run.t_heal
                run.writers = load.get()
                run.t_end = time.monotonic()
                run.writes = sum(cluster.writes(a) for a in cluster.replica_addrs)
        return run


def in_process(scenario: str, fault: Callable[[TestCluster, Settings], None],
               heal: Callable[[TestCluster, Settings], None] | None = None,
               heal_after_s: Callable[[Settings], float] = lambda s: 0.0) -> InProcess:
    """An :class:`InProcess` scenario (the tests build their own this way)."""
    return InProcess(scenario, fault, heal, heal_after_s)


#: A slow primary answers after this share of the op timeout: past failover's attempt
#: timeout (a third), within everybody's op timeout.
SLOW_SHARE = 0.4


def _slow(cluster: TestCluster, settings: Settings) -> None:
    cluster.set_mode(cluster.replica_addrs[0], f"slow:{SLOW_SHARE * settings.op_timeout_ms / 1000}")


def _reset(cluster: TestCluster, settings: Settings) -> None:
    cluster.reset(cluster.replica_addrs[0])


def _moved(cluster: TestCluster, settings: Settings) -> None:
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "invalid_state")
    for pidx in range(cluster.partition_count):
        cluster.move_primary(pidx, b)


# --------------------------------------------------------------------------- onebox


@contextmanager
def _onebox(settings: Settings) -> Iterator:
    from ..onebox.process import free_port
    from ..onebox.spec import FDConfig
    from ..onebox.supervisor import Onebox

    fd = FDConfig(beacon_s=BEACON_S, check_s=CHECK_S, lease_s=settings.lease_s,
                  grace_s=settings.grace_s)
    with tempfile.TemporaryDirectory(prefix="pegbench-matrix-") as tmp:
        with Onebox(Path(tmp) / "box", replica_nodes=3, partitions=8, meta_port=free_port(),
                    replica_ports=[free_port() for _ in range(3)], fd=fd) as box:
            yield box


@dataclass(frozen=True)
class OnOnebox:
    """A scenario on a real onebox: ``kind`` ("kill" or "pause") hits the node that is
    primary of partition 0 for ``hold_s``, then it is restarted or resumed.
    ``runner(policy, settings, box)`` returns the :class:`Row`, ``runner.trace(...)`` the run."""

    scenario: str
    kind: str
    hold_s: Callable[[Settings], float]

    def __call__(self, policy: str, settings: Settings, box) -> Row:
        return row_of(self.trace(policy, settings, box))

    def trace(self, policy: str, settings: Settings, box) -> Trace:
        """Run ``policy`` through the scenario once on ``box`` (healthy again afterwards)."""
        threads = gevent.get_hub().threadpool  # onebox calls block: keep the writers running
        box.wait_healthy(30)
        pidx = 0
        hash_keys = [k for k in (f"k{i}".encode() for i in range(4096))
                     if keys.partition_index(keys.crc64(k), box.spec.partitions) == pidx][:16]
        primary = str(box.config().partitions[pidx].primary)
        victim = _node_named(box, primary)
        decree0 = _decree(box, pidx)
        run = Trace(self.scenario, policy)
        with Client(box.meta_addrs, policy=policy, op_timeout_ms=settings.op_timeout_ms,
                    observer=run.recorder, policy_params=policy_params(policy, settings)) as client:
            table = client.open_table("temp")
            run.t_fault = time.monotonic() + settings.before_s
            load = gevent.spawn(_write_load, table, hash_keys, settings,
                                run.t_fault + settings.after_s)
            gevent.sleep(max(0.0, run.t_fault - time.monotonic()))
            if self.kind == "kill":
                run.t_fault = threads.apply(box.kill, (victim,)).t_signal
                gevent.sleep(self.hold_s(settings))
                run.t_heal = threads.apply(box.restart, (victim,)).t_ready
            else:
                run.t_fault = threads.apply(box.pause, (victim,)).t_signal
                gevent.sleep(self.hold_s(settings))
                run.t_heal = threads.apply(box.resume, (victim,)).t_signal
            run.writers = load.get()
            run.t_end = time.monotonic()
        threads.apply(box.wait_healthy, (30,))
        gevent.sleep(5 * box.spec.fd.beacon_s)  # the meta learns the last decrees by beacon
        run.writes = _decree(box, pidx) - decree0
        run.t_ready = _ready(box, pidx, primary, run)
        return run


def _ready(box, pidx: int, old_primary: str, run: Trace) -> float:
    """The meta's first config naming a new, alive primary of ``pidx`` after the fault (its
    config-change log), or the heal if that came first (a pause below the lease moves nothing)."""
    log = LogTailObserver(box.spec.node_dir(META_NODE) / CONFIG_LOG)
    log.sync()
    t = log.history.failover_instant(pidx, run.t_fault, old_primary, t_heal=run.t_heal,
                                     until=run.t_end)
    return run.t_heal if t is None else min(t, run.t_heal)


def _node_named(box, addr: str) -> str:
    return next(name for name, info in box.nodes.items() if info.addr == addr)


def _decree(box, pidx: int) -> int:
    return int(box.config().partitions[pidx].last_committed_decree or 0)


# --------------------------------------------------------------------------- matrix

#: name -> (runs on a onebox?, runner)
SCENARIOS: dict[str, tuple[bool, Callable]] = {
    "kill": (True, OnOnebox("kill", "kill", lambda s: s.grace_s + 1.0)),
    "pause-below-lease": (True, OnOnebox("pause-below-lease", "pause", lambda s: 0.75 * s.lease_s)),
    "pause-past-grace": (True, OnOnebox("pause-past-grace", "pause", lambda s: s.grace_s + 1.0)),
    "slow-primary": (False, InProcess("slow-primary", _slow, tell_fd=True)),
    "connection-reset": (False, InProcess("connection-reset", _reset, tell_fd=True)),
    "partition-moved": (False, InProcess("partition-moved", _moved, tell_fd=True)),
}
POLICIES = tuple(cls.name for cls in BUILTINS)


def trace_jobs(scenario: str, jobs: Iterable[tuple[str, Settings]],
               box_settings: Settings) -> Iterator[Trace]:
    """Trace each (policy, settings) job through ``scenario``, in order; a onebox scenario
    runs them all on one onebox with ``box_settings``' failure-detector timings."""
    on_onebox, runner = SCENARIOS[scenario]
    if not on_onebox:
        for policy, settings in jobs:
            yield runner.trace(policy, settings)
        return
    with _onebox(box_settings) as box:
        for policy, settings in jobs:
            yield runner.trace(policy, settings, box)


def run_matrix(scenarios: list[str], policies: list[str], settings: Settings,
               progress: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """Run every (scenario, policy) pair in order; onebox scenarios share one onebox each."""
    rows: list[Row] = []
    for scenario in scenarios:
        for run in trace_jobs(scenario, [(policy, settings) for policy in policies], settings):
            rows.append(row_of(run))
            progress(rows[-1])
    return rows


def format_row(row: Row) -> str:
    """One aligned table line (see :data:`HEADER`)."""
    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.3f}"

    wpa = "-" if row.writes_per_ack is None else f"{row.writes_per_ack:.2f}"
    return (f"{row.scenario:<18} {row.policy:<19} {row.ok:>6} {row.failed:>6} "
            f"{secs(row.first_ok_s):>9} {secs(row.first_ok_after_heal_s):>9} "
            f"{row.meta_queries_per_s:>8.1f} {row.attempts_per_op:>9.2f} {wpa:>10}")


HEADER = (f"{'scenario':<18} {'policy':<19} {'ok':>6} {'failed':>6} {'first ok':>9} "
          f"{'heal→ok':>9} {'meta q/s':>8} {'att./op':>9} {'writes/ack':>10}")


def main(argv: list[str] | None = None) -> int:
    """Run the matrix and print one row per (scenario, policy)."""
    parser = argparse.ArgumentParser(prog="pegbench bench policies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated policy names (default: every built-in)")
    defaults = Settings()
    for name in ("op_timeout_ms", "writers", "rate_per_writer", "before_s", "after_s"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)),
                            default=getattr(defaults, name), metavar="N")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; choose from {list(SCENARIOS)}")
    settings = Settings(**{name: getattr(args, name) for name in
                           ("op_timeout_ms", "writers", "rate_per_writer", "before_s", "after_s")})
    policies = [p for p in args.policies.split(",") if p]
    print(f"op timeout {settings.op_timeout_ms:g} ms, {settings.writers} writers × "
          f"{settings.rate_per_writer:g} puts/s on the faulted partitions; onebox lease "
          f"{settings.lease_s:g} s, grace {settings.grace_s:g} s; times in s after the fault",
          flush=True)
    print(HEADER, flush=True)
    rows = run_matrix(scenarios, policies, settings, progress=lambda r: print(format_row(r), flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
