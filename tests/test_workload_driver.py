"""The workload without Locust: users' op loops against the in-process test cluster.

Checks what a user does (mix, keys, values, Locust's request event, the recorder), that a
stall is measured from each op's intended start and beyond ``max_lag_s`` counted as missed,
and that the durability read-back finds every acknowledged write and notices lost ones.
"""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.driver import OpDriver
from loadgen.durability import MULTI_SORT_KEYS, PUT_SORT_KEY, pack_token, token_size
from loadgen.pegasus.testing import TestCluster
from loadgen.workload import Workload, WorkloadSettings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture
def cluster():
    with TestCluster(replicas=2, partitions=4) as c:
        yield c


def settings(cluster: TestCluster, **kw) -> WorkloadSettings:
    values = {"meta": tuple(cluster.meta_addrs), "policies": ("failover",), "users": 2,
              "rate_per_user": 200, "warmup_s": 0, "op_timeout_ms": 2000, "key_space": 30,
              "value_bytes": (10, 80), "max_lag_s": 5, "run_id": "run1", "seed": 3}
    values.update(kw)
    return WorkloadSettings(**values)


class Fired:
    """Locust's ``events.request.fire`` stand-in: keeps every call's kwargs."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> None:
        self.calls.append(kwargs)


def drive(drivers: list[OpDriver], seconds: float) -> None:
    """Run each driver as a Locust user would: step, then sleep its wait time."""
    end = time.monotonic() + seconds

    def user(d: OpDriver) -> None:
        while time.monotonic() < end:
            d.step()
            gevent.sleep(d.delay())

    gevent.joinall([gevent.spawn(user, d) for d in drivers], raise_error=True)


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


def test_a_stall_counts_from_intended_starts_and_ops_beyond_max_lag_are_missed(cluster):
    workload = Workload(settings(cluster, rate_per_user=50, max_lag_s=0.3))
    workload.start_test(monitor=False)
    fired = Fired()
    driver = OpDriver(workload, "failover", fired)
    replica = cluster.replica_addrs[0]
    try:
        drive([driver], 0.3)
        cluster.set_mode(replica, "pause")          # requests wait in the socket
        gevent.spawn_later(0.8, cluster.set_mode, replica, "ok")
        drive([driver], 1.5)
    finally:
        workload.stop_test()
    worst = max(c["response_time"] for c in fired.calls)
    assert worst >= 700                             # the stalled op, from its intended start
    # the backlog within max_lag_s went out at once after the stall, each op measured from
    # its own intended start: a run of response times spread over the last 0.3 s
    backlog = [c for c in fired.calls if 60 <= c["response_time"] < 700]
    assert len(backlog) >= 5
    assert workload.missed["failover"] > 0          # ops more than 0.3 s behind: missed
    issued = len(fired.calls)
    assert issued + driver.schedule.missed == driver.schedule.next_k
    driver.close()                                  # a stop leaves nothing unaccounted for
    assert driver.schedule.backlog(time.monotonic() - driver.schedule.interval_s) == 0


def test_read_back_verifies_acknowledged_writes_and_notices_lost_ones(cluster):
    workload = Workload(settings(cluster, mix={"put": 0.7, "multi_put": 0.3}))
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
    finally:
        workload.stop_test()
    assert fired.calls and all(c["name"] == "failover:open_table" for c in fired.calls)
    assert all(str(c["exception"]).startswith("ERR_") for c in fired.calls)
    assert workload.open_failures["failover"] == len(fired.calls)
