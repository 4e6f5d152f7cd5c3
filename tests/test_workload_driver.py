"""The workload without Locust: users' arrival loops against the in-process test cluster.

Checks what a user does (mix, keys, values, Locust's request event, the recorder); that
arrivals are true open loop: a stall is measured from each op's intended start, never
delays the ops to healthy partitions, and arrivals over the in-flight cap are dropped and
counted by partition; that a late generator's arrivals beyond ``max_lag_s`` are missed; and
that the durability read-back finds every acknowledged write and notices lost ones.
"""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.config.schema import OpMix, WorkloadConfig
from loadgen.load.driver import OpDriver
from loadgen.load.durability import MULTI_SORT_KEYS, PUT_SORT_KEY, pack_token, token_size
from loadgen.load.workload import Workload, WorkloadSettings
from loadgen.testing.cluster import TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture
def cluster():
    with TestCluster(replicas=2, partitions=4) as c:
        yield c


def settings(cluster: TestCluster, *, meta: tuple[str, ...] | None = None, **kw) -> WorkloadSettings:
    """Settings against ``cluster`` (or ``meta``); ``kw`` override workload fields."""
    values = {"users": 2, "rate_per_user": 200, "warmup_s": 0, "op_timeout_ms": 2000, "key_space": 30,
              "value_bytes": (10, 80), "max_lag_s": 5, "max_inflight": 16}
    values.update(kw)
    return WorkloadSettings(meta=meta or tuple(cluster.meta_addrs), workload=WorkloadConfig(**values),
                            policies=("failover",), run_id="run1", seed=3)


class Fired:
    """Locust's ``events.request.fire`` stand-in: keeps every call's kwargs."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> None:
        self.calls.append(kwargs)


def drive(drivers: list[OpDriver], seconds: float, *, settle: bool = True) -> None:
    """Run each driver as a Locust user would: step, then sleep its wait time; then (if
    ``settle``) wait for the ops still in flight."""
    end = time.monotonic() + seconds

    def user(d: OpDriver) -> None:
        while time.monotonic() < end:
            d.step()
            gevent.sleep(d.delay())

    gevent.joinall([gevent.spawn(user, d) for d in drivers], raise_error=True)
    if settle:
        gevent.joinall([g for d in drivers for g in list(d.inflight)], timeout=10)


def test_users_drive_the_mix_on_their_own_keys_and_fire_one_request_per_op(cluster):
    workload = Workload(settings(cluster))
    workload.start_test(monitor=False)
    fired = Fired()
    drivers = [OpDriver(workload, "failover", fired) for _ in range(2)]
    try:
        drive(drivers, 1.0)
    finally:
        workload.stop_test()
    names = [c["name"] for c in fired.calls]
    assert {c["request_type"] for c in fired.calls} == {"pegasus"}
    assert set(names) <= {"failover:put", "failover:multi_put", "failover:get"}
    assert names.count("failover:put") > names.count("failover:multi_put") > 0
    assert all(c["exception"] is None and c["response_time"] >= 0 for c in fired.calls)
    # about rate x time ops, and the recorder saw each of them
    assert 0.5 * 2 * 200 <= len(fired.calls) <= 1.2 * 2 * 200
    assert workload.recorder.snapshot().policies["failover"].ops == len(fired.calls)
    # each user writes only under its own prefix run/policy/worker/seq/<index < key_space>
    prefixes = {d.prefix for d in drivers}
    assert prefixes == {b"run1/failover/local/0/", b"run1/failover/local/1/"}
    for hash_key, row in cluster.data.items():
        prefix, _, index = hash_key.rpartition(b"/")
        assert prefix + b"/" in prefixes and 0 <= int(index) < 30
        assert set(row) <= {PUT_SORT_KEY, *MULTI_SORT_KEYS}
        for value, _ in row.values():
            assert 10 <= len(value) <= 80


def test_a_stall_is_measured_from_intended_starts_and_never_delays_healthy_partitions(cluster):
    workload = Workload(settings(cluster, rate_per_user=100, max_inflight=25, key_space=400))
    workload.start_test(monitor=False)
    fired = Fired()
    driver = OpDriver(workload, "failover", fired)
    replica = cluster.replica_addrs[0]
    for pidx in (2, 3):
        cluster.move_primary(pidx, cluster.replica_addrs[1])
    stalled = {p for p in range(4) if cluster.primary_of(p) == replica}
    stall_s = 0.8
    try:
        drive([driver], 0.3)
        before = len(fired.calls)
        cluster.set_mode(replica, "pause")          # requests wait in the socket
        t_pause = time.monotonic()
        workload.recorder.fault_at(t_pause)         # 10 ms buckets around it
        gevent.spawn_later(stall_s, cluster.set_mode, replica, "ok")
        drive([driver], 1.5)
    finally:
        workload.stop_test()
    state = workload.recorder.snapshot()
    table = driver.table
    assert stalled and len(stalled) < 4
    during = [c for c in fired.calls[before:]]
    assert max(c["response_time"] for c in during) >= 0.9 * stall_s * 1000   # the stalled ops
    # ops to the other partitions kept going out on schedule and came back at once: every
    # write to a healthy partition handed over during the stall answered fast
    healthy = []
    for (tbl, pidx), timeline in state.policies["failover"].partitions.items():
        if pidx in stalled:
            continue
        counts = timeline.series.buckets(t_pause, t_pause + stall_s)
        healthy.append(sum(c[0] for _, _, c in counts))
    assert sum(healthy) >= 0.5 * 100 * stall_s * (4 - len(stalled)) / 4
    # the in-flight cap (25) filled with ops to the stalled partitions: later arrivals were
    # dropped and counted by partition, never delayed
    dropped = state.policies["failover"].dropped
    assert sum(dropped.values()) > 0
    assert set(dropped) <= set(range(4)) and table is not None
    assert workload.missed.get("failover", 0) == 0          # the generator itself was on time
    issued = len(fired.calls)
    assert issued + sum(dropped.values()) == driver.schedule.next_k
    driver.close()                                  # a stop leaves nothing unaccounted for
    assert driver.schedule.backlog(time.monotonic() - driver.schedule.interval_s) == 0


def test_arrivals_more_than_max_lag_behind_a_late_generator_are_missed(cluster):
    clock = [100.0]
    workload = Workload(settings(cluster, rate_per_user=50, max_lag_s=0.3))
    workload.start_test(monitor=False)
    driver = OpDriver(workload, "failover", Fired(), clock=lambda: clock[0])
    try:
        driver.step()
        clock[0] += 1.0               # the hub woke this user 1 s late: 0.7 s of arrivals missed
        launched = driver.step()
    finally:
        driver.close()
        workload.stop_test()
    assert workload.missed["failover"] == pytest.approx(0.7 * 50, abs=2)
    assert launched == pytest.approx(0.3 * 50 + 1, abs=2)


def test_writes_to_one_key_never_overlap_within_a_user(cluster):
    workload = Workload(settings(cluster, key_space=20, max_inflight=16, rate_per_user=400,
                                 mix=OpMix(put=1.0, multi_put=0.0, get=0.0)))
    workload.start_test(monitor=False)
    driver = OpDriver(workload, "failover", Fired())
    cluster.set_mode(cluster.replica_addrs[0], "slow:0.05")
    overlaps = []
    original = driver.ledger.inflight

    class Watch(dict):
        def __setitem__(self, slot, token):
            if slot in self:
                overlaps.append(slot)
            super().__setitem__(slot, token)

    driver.ledger.inflight = Watch(original)
    try:
        drive([driver], 0.5)
    finally:
        workload.stop_test()
    assert driver.counter > 50 and not overlaps


def test_read_back_verifies_acknowledged_writes_and_notices_lost_ones(cluster):
    workload = Workload(settings(cluster, mix=OpMix(put=0.7, multi_put=0.3, get=0.0)))
    workload.start_test(monitor=False)
    drivers = [OpDriver(workload, "failover", Fired()) for _ in range(2)]
    try:
        drive(drivers, 0.7)
    finally:
        workload.stop_test()
    result = workload.verify_durability(timeout_s=20)
    assert result.acked == workload.book.acked() > 20
    assert (result.verified, result.lost, result.unreadable) == (result.acked, 0, 0)

    ledger = drivers[0].ledger
    slots = sorted(ledger.acked)
    put_slot = next(s for s in slots if s % 2 == 0)
    multi_slot = next((s for s in slots if s % 2 == 1), None)
    row = cluster.data[ledger.hash_key(put_slot)]
    del row[PUT_SORT_KEY]                                   # a lost put
    if multi_slot is not None:                              # a torn multi_put
        mrow = cluster.data[ledger.hash_key(multi_slot)]
        mrow[MULTI_SORT_KEYS[1]] = (b"x" * 12, 0)
    # a write that ended unknown and then applied is not a loss
    other = next(s for s in sorted(drivers[1].ledger.acked) if s % 2 == 0)
    token = pack_token(10_000, 24)
    drivers[1].ledger.unknown(other, token)
    cluster.data[drivers[1].ledger.hash_key(other)][PUT_SORT_KEY] = (workload.book.values.value(token), 0)

    again = workload.verify_durability(timeout_s=20)
    lost = 1 + (multi_slot is not None)
    assert (again.acked, again.lost, again.verified) == (result.acked, lost, result.acked - lost)
    assert token_size(token) == 24


def test_an_unreachable_meta_fails_ops_without_crashing_the_user(cluster):
    workload = Workload(settings(cluster, meta=("127.0.0.1:1",), op_timeout_ms=200))
    workload.start_test(monitor=False)
    fired = Fired()
    driver = OpDriver(workload, "failover", fired)
    try:
        driver.step()
        gevent.sleep(driver.delay())
        driver.step()
        gevent.joinall(list(driver.inflight), timeout=10)
    finally:
        workload.stop_test()
    assert fired.calls and all(c["name"] == "failover:open_table" for c in fired.calls)
    assert all(str(c["exception"]).startswith("ERR_") for c in fired.calls)
    assert workload.open_failures["failover"] == len(fired.calls)
