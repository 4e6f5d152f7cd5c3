"""Policies and error replies: which errors refresh, which retry, which end the op at once.

DESIGN.md, "Details that matter": failover retries ERR_SESSION_RESET, attempt timeouts,
ERR_OBJECT_NOT_FOUND, ERR_INVALID_STATE and ERR_PARENT_PARTITION_MISUSED with a refresh, and
ERR_NOT_ENOUGH_MEMBER, ERR_BUSY and ERR_CAPACITY_EXCEEDED without one; legacy and
refresh-on-timeout never retry and refresh only on ERR_OBJECT_NOT_FOUND / ERR_INVALID_STATE.
"""

from __future__ import annotations

import gevent
import pytest
from policy_tools import (  # noqa: F401 (the fixtures are used by name)
    LONG_OP_TIMEOUT_MS, LONG_OP_TIMEOUT_S, fail_over, wait_for, cluster_fixture, connect_fixture)

from loadgen.errors import ServerError

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.mark.parametrize("policy", ["legacy", "refresh-on-timeout"])
def test_invalid_state_refreshes_without_retry(cluster, connect, policy):
    table, rec = connect(policy, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "invalid_state")
    fail_over(cluster, b)
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == "ERR_INVALID_STATE"
    assert a in str(info.value) and "'temp'" in str(info.value)  # names node and table
    (op,) = rec.ops()
    assert (op.attempt, op.outcome, op.refreshed) == (1, "fail", True)
    assert op.duration_s < 0.25 * LONG_OP_TIMEOUT_S
    assert wait_for(lambda: table._routing.route(op.partition).primary == b)
    table.put("h", "s", "v2")
    assert rec.ops()[-1].node == b


@pytest.mark.parametrize("error, outcome", [
    ("ERR_INVALID_STATE", "fail"), ("ERR_OBJECT_NOT_FOUND", "fail"),
    ("ERR_PARENT_PARTITION_MISUSED", "fail"),
    ("ERR_TIMEOUT", "unknown"),  # sent by the server: the write may have been applied
])
def test_failover_refreshes_and_retries_in_the_same_op(cluster, connect, error, outcome):
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, f"reply:{error}")
    fail_over(cluster, b)
    table.put("h", "s", "v1")
    assert [(x.node, x.error, x.outcome, x.refreshed) for x in rec.attempts()] == \
        [(a, error, outcome, True), (b, None, "ok", False)]
    assert rec.ops()[0].duration_s < 0.5 * LONG_OP_TIMEOUT_S


@pytest.mark.parametrize("error", ["ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_NOT_ENOUGH_MEMBER"])
def test_failover_retries_busy_errors_with_backoff_and_no_refresh(cluster, connect, error):
    table, rec = connect("failover", op_timeout_ms=1000)
    a = cluster.replica_addrs[0]
    meta = cluster.meta_addrs[0]
    cluster.set_mode(a, f"reply:{error}")
    gevent.spawn_later(0.15, cluster.set_mode, a, "ok")
    meta_before = cluster.requests(meta)
    table.put("h", "s", "v1")
    attempts = rec.attempts()
    assert len(attempts) >= 2 and attempts[-1].outcome == "ok"
    assert all(x.error == error and x.outcome == "fail" and not x.refreshed for x in attempts[:-1])
    assert cluster.requests(meta) == meta_before  # no refresh, no re-poll
    assert rec.ops()[0].duration_s < 0.5  # backoff is capped at 200 ms


@pytest.mark.parametrize("policy", ["legacy", "refresh-on-timeout"])
def test_legacy_policies_fail_busy_errors_at_once_without_refresh(cluster, connect, policy):
    table, rec = connect(policy, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    cluster.set_mode(cluster.replica_addrs[0], "reply:ERR_BUSY")
    meta_before = cluster.requests(cluster.meta_addrs[0])
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == "ERR_BUSY"
    (op,) = rec.ops()
    assert (op.attempt, op.refreshed, op.outcome) == (1, False, "fail")
    assert op.duration_s < 0.25 * LONG_OP_TIMEOUT_S
    gevent.sleep(0.05)
    assert cluster.requests(cluster.meta_addrs[0]) == meta_before


@pytest.mark.parametrize("error", ["ERR_INVALID_PARAMETERS", "ERR_INACTIVE_STATE"])
def test_failover_does_not_retry_a_non_retriable_error(cluster, connect, error):
    table, rec = connect("failover")
    cluster.set_mode(cluster.replica_addrs[0], f"reply:{error}")
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == error
    assert [(o.attempt, o.outcome) for o in rec.ops()] == [(1, "fail")]
