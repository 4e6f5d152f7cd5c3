"""The Go client models against the test cluster: each test pins one upstream behaviour.

Upstream: apache/incubator-pegasus go-client/ at 44e83503b998 (``legacy``, 2ab5be67a^),
2ab5be67a94c (``refresh-on-timeout``, #1916) and 75212068c390 (``refresh-on-reset``, #2286).
Bounds are relative to the op timeout.
"""

from __future__ import annotations

import gevent
import pytest

from support.policy import (  # noqa: F401 (the fixtures are used by name)
    LONG_OP_TIMEOUT_MS, LONG_OP_TIMEOUT_S, OP_TIMEOUT_S, cluster_fixture, connect_fixture,
    crash_during_put, fail_over, meta_queries, wait_for)

from loadgen.errors import NotConnected, OpTimeout, ServerError, SessionReset

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

GO = ["legacy", "refresh-on-timeout", "refresh-on-reset"]


@pytest.mark.parametrize("policy", GO)
def test_eof_leaves_the_pending_call_waiting_for_its_deadline(cluster, connect, policy):
    """session.go loopForResponse: on EOF it logs "closed by the peer" and returns; the
    pending CallWithGpid only ends at ctx.Done (DeadlineExceeded)."""
    table, rec = connect(policy)
    a, _ = cluster.replica_addrs
    job, _ = crash_during_put(cluster, table)
    assert isinstance(job.exception, OpTimeout)
    assert isinstance(job.exception.last_error, SessionReset)
    assert job.exception.outcome == "unknown"  # sent before the crash: may have applied
    (op,) = rec.ops()
    assert op.duration_s >= 0.9 * OP_TIMEOUT_S
    assert (op.node, op.outcome, op.attempt) == (a, "unknown", 1)
    # Only #1916 turns that deadline into a refresh.
    assert op.refreshed == (policy == "refresh-on-timeout")


def test_legacy_never_refreshes_after_a_crash_and_keeps_the_dead_route(cluster, connect):
    """Issue #1856 at 44e83503b998: nothing the client meets after the crash (a deadline on
    the dead connection, a redial that waits kDialInterval) refreshes the config."""
    table, rec = connect("legacy")
    a, _ = cluster.replica_addrs
    crash_during_put(cluster, table)
    for _ in range(2):
        with pytest.raises(OpTimeout) as info:
            table.put("h", "s", "v2")
        assert isinstance(info.value.last_error, NotConnected)
        assert info.value.outcome == "fail"  # never sent: no connection
    ops = rec.ops()
    assert all(o.node == a and not o.refreshed for o in ops)
    assert all(o.duration_s >= 0.9 * OP_TIMEOUT_S for o in ops)
    assert meta_queries(rec) == 0
    assert cluster.data[b"h"][b"s"][0] == b"v0"


def test_refresh_on_timeout_fails_the_op_then_the_next_op_uses_the_new_primary(cluster, connect):
    """#1916: DeadlineExceeded sets confUpdate, retry stays false: the op fails and the
    background refresh points the next ops at the new primary."""
    table, rec = connect("refresh-on-timeout")
    _, b = cluster.replica_addrs
    job, _ = crash_during_put(cluster, table)
    assert isinstance(job.exception, OpTimeout)
    assert wait_for(lambda: table.client.route("temp", rec.ops()[0].partition).primary == b)
    table.put("h", "s", "v2")
    assert [(o.node, o.outcome) for o in rec.ops()][-1] == (b, "ok")


def test_refresh_on_reset_refreshes_only_when_a_call_could_not_connect(cluster, connect):
    """#2286: the call left on the dead connection ends with DeadlineExceeded, which no
    longer refreshes; the next call finds no connection (waitUntilSessionReady returns
    ERR_SESSION_RESET at the deadline), which does; only the third succeeds."""
    table, rec = connect("refresh-on-reset")
    a, b = cluster.replica_addrs
    crash_during_put(cluster, table)
    assert meta_queries(rec) == 0
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v2")
    assert isinstance(info.value.last_error, NotConnected)
    assert wait_for(lambda: table.client.route("temp", rec.ops()[0].partition).primary == b)
    table.put("h", "s", "v3")
    assert [(o.node, o.outcome, o.refreshed) for o in rec.ops()] == \
        [(a, "unknown", False), (a, "fail", True), (b, "ok", False)]


def test_redial_of_a_restarted_node_waits_the_dial_interval(cluster, connect):
    """session.go nodeSession.dial: a dial less than kDialInterval (60 s) after the last one
    first sleeps kDialInterval, so a node back within a minute is not reached."""
    table, rec = connect("legacy")
    a, _ = cluster.replica_addrs
    cluster.set_mode(a, "down")
    gevent.sleep(0.05)  # the client sees its connection reset
    cluster.set_mode(a, "ok")  # back at once, and still the primary
    accepted = cluster.connections(a)
    for _ in range(2):
        with pytest.raises(OpTimeout):
            table.put("h", "s", "v1")
    assert cluster.connections(a) == accepted


def test_a_short_dial_interval_lets_a_restarted_node_be_reached(cluster, connect):
    """The same rule with kDialInterval shortened: the redial happens once it has passed."""
    table, rec = connect("legacy", dial_interval_s=0.1)
    a, _ = cluster.replica_addrs
    cluster.set_mode(a, "down")
    gevent.sleep(0.15)
    cluster.set_mode(a, "ok")
    table.put("h", "s", "v1")
    assert rec.ops()[-1].outcome == "ok"


@pytest.mark.parametrize("policy", GO)
def test_object_not_found_retries_on_the_same_session_until_the_deadline(cluster, connect, policy):
    """table_connector.go runPartitionOp picks gpid and session before retryFailOver's loop;
    ERR_OBJECT_NOT_FOUND (the `default` branch) refreshes and retries after NextBackOff
    (0.25–0.75 s, then 0.5–1.5 s): every retry goes to the old node, even once the refreshed
    config names another."""
    table, rec = connect(policy, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "reply:ERR_OBJECT_NOT_FOUND")
    fail_over(cluster, b)
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v1")
    assert info.value.last_error.code == "ERR_OBJECT_NOT_FOUND"
    attempts = rec.attempts()
    assert len(attempts) >= 2 and {x.node for x in attempts} == {a}
    gaps = [y.start - x.end for x, y in zip(attempts, attempts[1:])]
    assert 0.2 <= gaps[0] <= 0.75 + 0.25 * LONG_OP_TIMEOUT_S
    assert table.client.route("temp", attempts[0].partition).primary == b
    table.put("h", "s", "v2")  # a new op picks the refreshed route
    assert rec.ops()[-1].node == b


@pytest.mark.parametrize("policy", GO)
def test_invalid_state_refreshes_without_retry(cluster, connect, policy):
    """handleReplicaError: ERR_INVALID_STATE sets confUpdate, then `retry = false`."""
    table, rec = connect(policy, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "invalid_state")
    fail_over(cluster, b)
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == "ERR_INVALID_STATE" and info.value.outcome == "fail"
    assert a in str(info.value) and "'temp'" in str(info.value)  # names node and table
    (op,) = rec.ops()
    assert (op.attempt, op.outcome, op.refreshed) == (1, "fail", True)
    assert op.duration_s < 0.25 * LONG_OP_TIMEOUT_S
    assert wait_for(lambda: table.client.route("temp", op.partition).primary == b)
    table.put("h", "s", "v2")
    assert rec.ops()[-1].node == b


@pytest.mark.parametrize("policy", GO)
def test_busy_errors_fail_at_once_without_refresh(cluster, connect, policy):
    """handleReplicaError: ERR_BUSY, ERR_CAPACITY_EXCEEDED, ERR_NOT_ENOUGH_MEMBER: nothing."""
    table, rec = connect(policy, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    cluster.set_mode(cluster.replica_addrs[0], "reply:ERR_BUSY")
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == "ERR_BUSY"
    (op,) = rec.ops()
    assert (op.attempt, op.refreshed, op.outcome) == (1, False, "fail")
    assert op.duration_s < 0.25 * LONG_OP_TIMEOUT_S
    gevent.sleep(0.05)
    assert meta_queries(rec) == 0


def test_refreshes_are_paced_by_the_trigger_loop(cluster, connect):
    """table_connector.go loopForAutoUpdate: after each selfUpdate it sleeps 1 s; a trigger
    during the sleep is kept (channel of capacity 1) and served when it ends."""
    table, rec = connect("refresh-on-timeout", op_timeout_ms=200, refresh_pause_s=0.6)
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    for _ in range(3):  # three deadlines within the pause: one refresh now, one queued
        with pytest.raises(OpTimeout):
            table.put("h", "s", "v1")
    assert meta_queries(rec) == 1
    assert wait_for(lambda: meta_queries(rec) == 2, timeout_s=2.0)
    gevent.sleep(0.7)
    assert meta_queries(rec) == 2


def test_legacy_keeps_old_routes_after_a_partition_without_primary(cluster, connect):
    """handleQueryConfigResp returns an error at the first partition whose primary is 0, so
    the old routing is kept: the op waits on the old primary until its deadline instead of
    failing at once with ERR_NO_PRIMARY."""
    table, rec = connect("legacy")
    a, _ = cluster.replica_addrs
    pidx = table.partition_of("h")
    cluster.set_mode(a, "hang")
    cluster.move_primary(pidx, None)
    assert table.client.refresh("temp")
    assert table.client.route("temp", pidx).primary == a
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v1")
    (op,) = rec.ops()
    assert (op.node, op.error, op.attempt) == (a, "ERR_TIMEOUT", 1)


def test_a_silent_connection_with_recent_writes_triggers_a_refresh(cluster, connect):
    """session.go loopForResponse: a read timeout (rpc_conn.go ConnReadTimeout) while
    hasRecentUnresponsiveWrite calls the unresponsive handler, which table_connector.go
    ConnectTable wires to tryConfUpdate: the only way legacy refreshes on a hung node."""
    table, rec = connect("legacy", read_timeout_s=0.3, op_timeout_ms=250)
    cluster.set_mode(cluster.replica_addrs[0], "pause")
    for _ in range(3):  # writes keep the connection "recently written" past the read timeout
        with pytest.raises(OpTimeout):
            table.put("h", "s", "v1")
    assert wait_for(lambda: meta_queries(rec) >= 1, timeout_s=1.0)
    cluster.set_mode(cluster.replica_addrs[0], "ok")
