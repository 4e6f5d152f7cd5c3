"""Every built-in policy through a primary's kill and a pause past the grace period, at once.

A 3-node onebox with short failure-detector timings; one Client per policy, each with a few
plain gevent writers on a fixed open-loop schedule (one greenlet per write, so a stalled write
never holds back the next), each writer with its own key prefix and one hash key per partition;
the fault controller (onebox injector, health gate, meta observer) runs the plan beside them
and announces each fault to the one metrics Recorder every Outcome goes to; then the analysis.
What it checks, each as a relative bound:

* ``failover`` recovers every affected partition, client lag well under the op timeout, and has
  the fewest failed ops;
* ``refresh-on-timeout`` recovers only after one of its ops timed out, hence about one op
  timeout after the injection at the earliest (exactly: op timeout minus the age of the oldest
  of its ops in flight at the injection);
* ``legacy`` recovers only once the faulted node is back, or not before the horizon;
* no acknowledged write is lost; meta queries/s are reported for every policy.

Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.pool import Group
from support.onebox import TIMING_SLACK_S, make_box

from loadgen.config.profile import build_profile
from loadgen.errors import PegasusError
from loadgen.events import Events
from loadgen.faults.controller import FaultController
from loadgen.onebox.cluster import OneboxCluster
from loadgen.metrics import Recorder, build_results, event_ttrs
from loadgen.onebox.spec import FAST_FD
from loadgen.pegasus import Client, keys
from loadgen.pegasus.outcome import OK, OP, Outcome

pytestmark = [pytest.mark.onebox, pytest.mark.slow, pytest.mark.timeout(180)]

POLICIES = ("legacy", "refresh-on-timeout", "refresh-on-reset", "java", "failover")
OP_TIMEOUT_MS = 1000
OP_TIMEOUT_S = OP_TIMEOUT_MS / 1000
WRITERS, RATE_PER_WRITER = 3, 40.0      # per policy: 120 writes/s, 15/s per partition
PARTITIONS = 8
KILL_AT_S, RESTART_AFTER_S = 2.0, 3.0   # restarted well after the meta failed over
PAUSE_AT_S, PAUSE_S = 9.0, 3 * FAST_FD.grace_s
RUN_S = 16.0
TABLE = "temp"


def _profile(meta_port: int):
    fd = FAST_FD
    return build_profile({
        "name": "integration",
        "cluster": {"replica_nodes": 3, "partitions": PARTITIONS,
                    "fd": {"beacon_s": fd.beacon_s, "check_s": fd.check_s,
                           "lease_s": fd.lease_s, "grace_s": fd.grace_s}},
        "workload": {"duration_s": RUN_S, "op_timeout_ms": OP_TIMEOUT_MS},
        "policies": {"compare": list(POLICIES)},
        "faults": {"events": [
            {"at_s": KILL_AT_S, "kind": "kill", "target": "primary-of:0",
             "restart_after_s": RESTART_AFTER_S},
            {"at_s": PAUSE_AT_S, "kind": "pause", "target": "primary-of:1",
             "duration_s": PAUSE_S}],
            "health_gate": {"enabled": True, "limit_s": 15}},
        "injector": {"kind": "onebox"},
    }, f"integration-{meta_port}.toml")


def _hash_keys(prefix: str) -> list[bytes]:
    """One hash key per partition, in partition order, all starting with ``prefix``."""
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < PARTITIONS:
        hk = f"{prefix}-h{i}".encode()
        found.setdefault(keys.partition_index(keys.crc64(hk), PARTITIONS), hk)
        i += 1
    return [found[p] for p in range(PARTITIONS)]


class Load:
    """The writers of every policy; ``acked`` maps (hash key, sort key) to the value."""

    def __init__(self, tables: dict[str, object]):
        self.tables = tables
        self.acked: dict[tuple[bytes, bytes], bytes] = {}
        self.ops = Group()

    def run(self, t0: float, t_end: float) -> None:
        writers = [gevent.spawn(self._writer, policy, w, t0, t_end)
                   for policy in self.tables for w in range(WRITERS)]
        gevent.joinall(writers, raise_error=True)
        self.ops.join()

    def _writer(self, policy: str, w: int, t0: float, t_end: float) -> None:
        hash_keys = _hash_keys(f"{policy}-w{w}")
        k = 0
        while True:
            intended = t0 + (k + w / WRITERS) / RATE_PER_WRITER
            if intended >= t_end:
                return
            gevent.sleep(max(0.0, intended - time.monotonic()))
            self.ops.spawn(self._put, policy, hash_keys[k % PARTITIONS], b"%d" % k,
                           f"{policy}-{w}-{k}".encode(), intended)
            k += 1

    def _put(self, policy, hk: bytes, sk: bytes, value: bytes, intended: float) -> None:
        try:
            self.tables[policy].put(hk, sk, value, intended_start=intended)
        except PegasusError:
            return  # counted by the recorder
        self.acked[(hk, sk)] = value


def _read_back(meta: list[str], acked: dict[tuple[bytes, bytes], bytes]) -> int:
    """How many acknowledged writes read back with their value."""
    by_hash: dict[bytes, list[bytes]] = {}
    for hk, sk in acked:
        by_hash.setdefault(hk, []).append(sk)
    verified = 0
    with Client(meta, policy="failover", op_timeout_ms=5000) as client:
        table = client.open_table(TABLE)
        for hk, sort_keys in by_hash.items():
            for i in range(0, len(sort_keys), 200):
                chunk = sort_keys[i:i + 200]
                got = table.multi_get(hk, chunk)
                verified += sum(got.get(sk) == acked[(hk, sk)] for sk in chunk)
    return verified


def _recovery_s(ops: list[Outcome], record, pidx: int) -> float | None:
    """Seconds from the fault to the first ok write on ``pidx`` answered by another node than
    the faulted one: TTR-first without a reply already on its way when the fault hit (the
    faulted node acknowledged it just before; it arrives after ``t_inject``)."""
    ends = [o.end for o in ops if o.partition == pidx and o.outcome == OK
            and o.end > record.event.t_inject and o.node != record.addr]
    return min(ends) - record.event.t_inject if ends else None


def _in_flight_age(ops: list[Outcome], t: float) -> float:
    """Age at ``t`` of the oldest op in flight then (0 if none)."""
    return max((t - o.start for o in ops if o.start <= t < o.end), default=0.0)


def test_every_policy_through_a_kill_and_a_long_pause(tmp_path):
    threads = gevent.get_hub().threadpool
    box = make_box(tmp_path / "box", fd=FAST_FD, partitions=PARTITIONS)
    recorder = Recorder()
    ops: dict[str, list[Outcome]] = {p: [] for p in POLICIES}

    def observe(o: Outcome) -> None:
        recorder.record(o)
        if o.level == OP:
            ops[o.policy].append(o)

    with box:
        clients = {p: Client(box.meta_addrs, policy=p, op_timeout_ms=OP_TIMEOUT_MS,
                             observer=observe) for p in POLICIES}
        try:
            load = Load({p: c.open_table(TABLE) for p, c in clients.items()})
            events = Events()
            events.fault_instant.add_listener(recorder.fault_instant)
            controller = FaultController.from_profile(
                _profile(box.spec.meta_port), OneboxCluster(box), events=events,
                out_dir=tmp_path)
            t0 = time.monotonic()
            t_end = t0 + RUN_S
            try:
                controller.start(t0)
                load.run(t0, t_end)
            finally:
                records = controller.stop()
            threads.apply(box.wait_healthy, (30,))
            verified = _read_back(box.meta_addrs, load.acked)
        finally:
            for c in clients.values():
                c.close()

    events = controller.fault_events()
    state = recorder.snapshot()
    durability = {"acked": len(load.acked), "verified": verified}
    results = build_results(state, events, t_start=t0, t_end=t_end, table=TABLE,
                            durability=durability)
    ttrs = event_ttrs(state, events, t_end=t_end, table=TABLE)
    _print_figures(records, results, ttrs, ops)

    # the plan as it went: both injected, the meta failed over after its grace period
    kill, pause = records
    assert kill.injected and pause.injected, (kill.event.skip_reason, pause.event.skip_reason)
    assert 0 in kill.event.affected_partitions and 1 in pause.event.affected_partitions
    for record in records:
        assert record.actions[0].instant == "signal"
        for pidx, failover in record.event.server_failover_s.items():
            assert 0.5 * FAST_FD.grace_s < failover < FAST_FD.grace_s + TIMING_SLACK_S, pidx

    by = {(t.event_id, t.policy, t.partition): t for t in ttrs}
    policies = results.policies

    # failover: every affected partition recovered, soon after the meta named a new primary
    # (after a kill it polls the meta while it redials; behind a hung primary an op looks at
    # the config again each attempt timeout, a third of the op timeout)
    for record in records:
        for pidx, failover in record.event.server_failover_s.items():
            assert by[(record.event.id, "failover", pidx)].recovered
            recovery = _recovery_s(ops["failover"], record, pidx)
            assert recovery is not None and recovery - failover < OP_TIMEOUT_S / 2, (
                record.id, pidx, recovery, failover)
    assert all(policies["failover"].errors <= policies[p].errors for p in POLICIES)

    # refresh-on-timeout: only a timed-out op refreshes its config, and an op times out one op
    # timeout after it was sent: the oldest op in flight at the fault was the first to go
    rot_ops = ops["refresh-on-timeout"]
    for record in records:
        first_timeout = min(o.end for o in rot_ops
                            if o.error == "ERR_TIMEOUT" and o.end > record.event.t_inject)
        earliest = OP_TIMEOUT_S - _in_flight_age(rot_ops, record.event.t_inject)
        assert first_timeout - record.event.t_inject >= earliest - 0.01
        for pidx in record.event.affected_partitions:
            recovery = _recovery_s(rot_ops, record, pidx)
            assert recovery is None or recovery >= first_timeout - record.event.t_inject
            if record is kill:
                assert recovery is not None and recovery >= earliest, (pidx, recovery)

    # legacy: nothing helps it before the node is back
    for record in records:
        for pidx in record.event.affected_partitions:
            recovery = _recovery_s(ops["legacy"], record, pidx)
            assert recovery is None or recovery >= record.event.t_heal - record.event.t_inject, (
                record.id, pidx, recovery)

    # recovery cost is reported; failover's meta polling is paced (<= 1 per repoll_ms)
    for p in POLICIES:
        assert isinstance(policies[p].meta_queries_per_s, float), p
    assert policies["failover"].meta_queries_per_s <= 1000 / 10
    assert durability["acked"] > 0 and results.durability.lost == 0
    assert (tmp_path / "faults.jsonl").read_text().count("\n") == 2


def _print_figures(records, results, ttrs, ops) -> None:
    """The per-policy figures (visible with ``pytest -s``): the analysis's TTR-first and client
    lag, and the first ok write answered by another node (``_recovery_s``)."""
    def span(values: list[float]) -> str:
        return f"{min(values):.0f}-{max(values):.0f}" if values else "-"

    print()
    for r in records:
        failover = sorted(r.event.server_failover_s.values())
        print(f"fault {r.id}: {r.event.kind} {r.event.node} (target {r.target}), affected "
              f"{list(r.event.affected_partitions)}, server failover {span([f * 1000 for f in failover])}"
              f" ms, healed after {(r.event.t_heal - r.event.t_inject):.2f} s")
        print(f"  {'policy':<19} {'TTR-first ms':>13} {'client lag ms':>13} {'recovered':>9} "
              f"{'ok via other node ms':>20} {'in flight at fault ms':>21}")
        for policy in POLICIES:
            mine = [t for t in ttrs if t.event_id == r.event.id and t.policy == policy]
            firsts = [t.first_s * 1000 for t in mine if t.recovered]
            lags = [t.lag_s * 1000 for t in mine if t.recovered and t.lag_s is not None]
            other = [_recovery_s(ops[policy], r, t.partition) for t in mine]
            age = _in_flight_age(ops[policy], r.event.t_inject) * 1000
            print(f"  {policy:<19} {span(firsts):>13} {span(lags):>13} "
                  f"{sum(t.recovered for t in mine)}/{len(mine):<7} "
                  f"{span([x * 1000 for x in other if x is not None]):>20} {age:>21.1f}")
    print(f"  {'policy':<19} {'ops':>6} {'ok':>6} {'failed':>6} {'meta q/s (fault+recov.)':>24} "
          f"{'attempts/op':>11}")
    for policy, p in results.policies.items():
        print(f"  {policy:<19} {p.ops:>6} {p.outcomes.get(OK, 0):>6} {p.errors:>6} "
              f"{p.meta_queries_per_s:>24.1f} {p.attempts_per_op:>11.2f}")
    d = results.durability
    print(f"  durability: acked {d.acked}, verified {d.verified}, lost {d.lost}")
