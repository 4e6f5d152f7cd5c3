"""The cluster-queue self-check: did the cluster answer near its unloaded speed?

Once replies queue, a write after a failover waits behind the backlog and client lag measures
the queue, not the client: such a run is flagged (verdict unknown) with a reason that says so
and what to do. The baseline is a handful of sequential puts on the idle cluster.
"""

from __future__ import annotations

import pytest

from loadgen.load.selfcheck import CLUSTER_QUEUE_LIMIT, ClusterQueueCheck, cluster_queue_saturation
from loadgen.testing.cluster import TestCluster
from loadgen.runner.baseline import BASELINE_HASH_KEY, measure


@pytest.mark.unit
def test_replies_queued_far_beyond_the_unloaded_time_flag_the_run_and_say_why():
    check = ClusterQueueCheck(baseline_p50_ms=2.5, put_p50_ms={"failover": 35.0, "legacy": 41.6,
                                                              "java": 35.2})
    assert check.ratio == pytest.approx(35.2 / 2.5) and check.queued
    s = cluster_queue_saturation(check)
    assert s.saturated
    assert s.reason.startswith("the cluster fell behind: put response p50 35.2 ms")
    assert f"14x its unloaded 2.5 ms (limit {CLUSTER_QUEUE_LIMIT:g}x)" in s.reason
    assert "lower the load" in s.reason
    assert check.as_dict() == {"baseline_put_p50_ms": 2.5, "limit": CLUSTER_QUEUE_LIMIT,
                               "put_p50_ms": {"failover": 35.0, "java": 35.2, "legacy": 41.6},
                               "ratio": 14.08, "queued": True}


@pytest.mark.unit
def test_a_cluster_near_its_unloaded_speed_passes_and_one_stuck_policy_cannot_flag_it():
    # legacy spends most of an outage timing out: its p50 is high, the median is not.
    check = ClusterQueueCheck(baseline_p50_ms=4.9, put_p50_ms={"failover": 8.0, "java": 7.0,
                                                              "legacy": 900.0})
    assert check.ratio == pytest.approx(8.0 / 4.9) and not check.queued
    assert not cluster_queue_saturation(check).saturated


@pytest.mark.unit
def test_the_limit_is_a_strict_bound():
    at = ClusterQueueCheck(baseline_p50_ms=2.0, put_p50_ms={"failover": 2.0 * CLUSTER_QUEUE_LIMIT})
    above = ClusterQueueCheck(baseline_p50_ms=2.0,
                              put_p50_ms={"failover": 2.0 * CLUSTER_QUEUE_LIMIT * 1.01})
    assert not at.queued and above.queued


@pytest.mark.unit
@pytest.mark.parametrize("baseline, p50", [(None, {"failover": 500.0}), (2.0, {})])
def test_without_a_baseline_or_puts_nothing_is_checked(baseline, p50):
    check = ClusterQueueCheck(baseline_p50_ms=baseline, put_p50_ms=p50)
    assert check.ratio is None and not check.queued
    assert not cluster_queue_saturation(check).saturated
    assert check.as_dict()["ratio"] is None


def test_the_baseline_times_sequential_puts_on_one_key_outside_the_users():
    with TestCluster() as cluster:
        b = measure(cluster.meta_addrs, cluster.table, op_timeout_ms=1000, puts=12)
        assert b is not None and b.puts == 12
        assert 0 < b.min_ms <= b.p50_ms < 1000
        assert sorted(cluster.data[BASELINE_HASH_KEY]) == sorted(str(i).encode() for i in range(12))


def test_a_cluster_that_refuses_writes_gives_no_baseline_rather_than_a_number():
    with TestCluster() as cluster:
        for addr in cluster.replica_addrs:
            cluster.set_mode(addr, "invalid_state")
        assert measure(cluster.meta_addrs, cluster.table, op_timeout_ms=200, puts=3) is None
