"""Fixtures and fault helpers for the policy tests: a test cluster and clients on it.

Test modules import ``cluster_fixture`` and ``connect_fixture``; pytest knows them by their
``name=`` (``cluster``, ``connect``). Faults are the in-process test cluster's modes
(:mod:`loadgen.testing.cluster`): ``down`` a crashed node, ``pause`` a stopped one,
``slow:<s>`` a slow one, ``move_primary`` the meta's failover.
"""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.pegasus import Client
from loadgen.testing.cluster import Recorder, TestCluster

OP_TIMEOUT_MS = 400
OP_TIMEOUT_S = OP_TIMEOUT_MS / 1000
#: For checks that something happens at once: relative to this, a bug that makes the op wait
#: for a deadline still fails, and a loaded machine's scheduling delays do not.
LONG_OP_TIMEOUT_MS = 2000
LONG_OP_TIMEOUT_S = LONG_OP_TIMEOUT_MS / 1000
#: Every built-in policy, old to new.
POLICIES = ("legacy", "refresh-on-timeout", "refresh-on-reset", "java", "pypegasus", "failover")


@pytest.fixture(name="cluster")
def cluster_fixture():
    with TestCluster(replicas=2, partitions=4) as c:
        yield c


@pytest.fixture(name="connect")
def connect_fixture(cluster):
    """``connect(policy, op_timeout_ms=..., **params) -> (table, recorder)``: a connected
    client (``table.client`` is it), closed after the test."""
    clients: list[Client] = []

    def make(policy, op_timeout_ms: int = OP_TIMEOUT_MS, **params):
        recorder = Recorder()
        client = Client(cluster.meta_addrs, policy=policy, op_timeout_ms=op_timeout_ms,
                        observer=recorder, policy_params=params)
        clients.append(client)
        table = client.open_table("temp")
        table.client = client  # for the tests: the client behind the table
        table.put("h", "s", "v0")  # dial the primary so later faults hit a live connection
        recorder.clear()
        return table, recorder

    yield make
    for client in clients:
        client.close()


def fail_over(cluster, to: str) -> None:
    """What the meta does once it notices: every partition gets a new primary."""
    for pidx in range(cluster.partition_count):
        cluster.move_primary(pidx, to)


def crash_during_put(cluster, table, *, fail_over_after_s: float = 0.0):
    """Start a put, crash the primary under it, fail over (after ``fail_over_after_s``, the
    meta's grace period); returns (greenlet, crash time)."""
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")  # keeps the put pending until the crash
    job = gevent.spawn(table.put, "h", "s", "v1")
    gevent.sleep(0.05)
    crashed_at = time.monotonic()
    cluster.set_mode(a, "down")
    if fail_over_after_s:
        gevent.spawn_later(fail_over_after_s, fail_over, cluster, b)
    else:
        fail_over(cluster, b)
    job.join()
    return job, crashed_at


def wait_for(predicate, timeout_s: float = 2.0) -> bool:
    """Poll ``predicate`` every 10 ms until it holds (True) or ``timeout_s`` passes (False)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:  # bounded by the clock
        if predicate():
            return True
        gevent.sleep(0.01)
    return False


def meta_queries(recorder) -> int:
    """Meta queries the recorder saw (one ``level="meta"`` outcome each)."""
    return sum(1 for o in recorder.outcomes if o.level == "meta")
