"""The Java client model against the test cluster: each test pins one upstream behaviour.

Upstream: apache/incubator-pegasus java-client/src/main/java/org/apache/pegasus/ at
db756dcdf24e (rpc/async/ReplicaSession.java, rpc/async/TableHandler.java,
client/retry/DefaultRetryPolicy.java). Bounds are relative to the op timeout.
"""

from __future__ import annotations

import time

import gevent
import pytest

from support.policy import (  # noqa: F401 (the fixtures are used by name)
    LONG_OP_TIMEOUT_MS, LONG_OP_TIMEOUT_S, OP_TIMEOUT_S, cluster_fixture, connect_fixture,
    crash_during_put, fail_over, meta_queries)

from loadgen.errors import OpTimeout, ServerError

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def test_a_lost_connection_fails_the_call_at_once_and_the_retry_finds_the_new_primary(cluster, connect):
    """ReplicaSession.markSessionDisconnect fails every pending request with
    ERR_SESSION_RESET; TableHandler.onRpcReply queries the meta and tryDelayCall retries
    (DefaultRetryPolicy: at once), and call() reads the refreshed config."""
    table, rec = connect("java", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    job, crashed_at = crash_during_put(cluster, table)
    assert job.successful(), job.exception
    attempts = rec.attempts()
    assert (attempts[0].node, attempts[0].error, attempts[0].refreshed) == (a, "ERR_SESSION_RESET", True)
    assert attempts[0].end - crashed_at < 0.25 * LONG_OP_TIMEOUT_S
    assert (attempts[-1].node, attempts[-1].outcome) == (b, "ok")
    assert rec.ops()[0].duration_s < 0.5 * LONG_OP_TIMEOUT_S


def test_meta_queries_are_paced_to_one_per_third_of_the_timeout(cluster, connect):
    """TableHandler.tryQueryMeta: none while one is in flight, none within max(1, timeout/3)
    ms of the last: while the meta still names the dead primary, the refused connects
    retried every millisecond cost at most about three queries per op timeout."""
    table, rec = connect("java", op_timeout_ms=1200)
    pace_s = 0.4
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "down")
    started = time.monotonic()
    gevent.spawn_later(0.5, fail_over, cluster, b)
    table.put("h", "s", "v1")
    elapsed = time.monotonic() - started
    queries = meta_queries(rec)
    assert 1 <= queries <= elapsed / pace_s + 1
    assert len(rec.attempts()) > 10  # the retries themselves are not paced (1 ms floor)
    # The new primary is found by the first paced query after the meta changed.
    assert 0.5 <= elapsed < 0.5 + pace_s + 0.1 * 1.2


def test_each_attempt_waits_the_full_op_timeout(cluster, connect):
    """ReplicaSession.asyncSend sets a timer of round.timeoutMs (the op timeout) per request;
    TableHandler.onRpcReply ERR_TIMEOUT goes to tryDelayCall, which fails past the deadline.
    An attempt started late in the op therefore runs past the op deadline."""
    table, rec = connect("java", op_timeout_ms=400)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "reply:ERR_NOT_ENOUGH_MEMBER")  # retried without a meta query
    gevent.spawn_later(0.1, cluster.set_mode, a, "hang")
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v1")
    (op,) = rec.ops()
    last = rec.attempts()[-1]
    assert last.error == "ERR_TIMEOUT" and last.duration_s >= 0.9 * 0.4
    assert op.duration_s >= 0.9 * (0.1 + 0.4)  # well past the 0.4 s op timeout
    assert info.value.last_error.code == "ERR_NOT_ENOUGH_MEMBER"
    assert meta_queries(rec) == 0


@pytest.mark.parametrize("error", ["ERR_BUSY", "ERR_INACTIVE_STATE", "ERR_INVALID_PARAMETERS"])
def test_busy_and_unknown_errors_fail_the_op(cluster, connect, error):
    """TableHandler.onRpcReply `default`: the round completes with the error, no retry."""
    table, rec = connect("java", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    cluster.set_mode(cluster.replica_addrs[0], f"reply:{error}")
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == error
    assert [(o.attempt, o.refreshed) for o in rec.ops()] == [(1, False)]
    assert rec.ops()[0].duration_s < 0.25 * LONG_OP_TIMEOUT_S


def test_invalid_state_queries_the_meta_and_retries_in_the_same_op(cluster, connect):
    """TableHandler.onRpcReply: ERR_INVALID_STATE needs query meta, then tryDelayCall."""
    table, rec = connect("java", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "invalid_state")
    fail_over(cluster, b)
    table.put("h", "s", "v1")
    attempts = rec.attempts()
    assert (attempts[0].node, attempts[0].error, attempts[0].refreshed) == (a, "ERR_INVALID_STATE", True)
    assert (attempts[-1].node, attempts[-1].outcome) == (b, "ok")


def test_a_session_that_only_times_out_for_the_window_is_reset(cluster, connect):
    """ReplicaSession.tryNotifyFailureWithSeqID: when requests did nothing but time out for
    session_reset_time_window_secs, closeSession() and the timeout becomes ERR_SESSION_RESET,
    which queries the meta; the next request connects again."""
    table, rec = connect("java", op_timeout_ms=150, session_reset_window_s=0.3)
    a = cluster.replica_addrs[0]
    cluster.set_mode(a, "hang")
    connections = cluster.connections(a)
    errors = []
    for _ in range(4):
        with pytest.raises(OpTimeout) as info:
            table.put("h", "s", "v1")
        errors.append(info.value.last_error.code if info.value.last_error else None)
    assert "ERR_SESSION_RESET" in errors
    assert meta_queries(rec) >= 1
    assert cluster.connections(a) > connections
