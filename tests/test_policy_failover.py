"""``failover`` against the test cluster: fast, and cheap on the meta and on the servers.

DESIGN.md, "Built-in policies" / "failover, precisely". Bounds are relative to the op timeout
or to the policy's own intervals.
"""

from __future__ import annotations

import time

import gevent
import pytest

from support.policy import (  # noqa: F401 (the fixtures are used by name)
    LONG_OP_TIMEOUT_MS, LONG_OP_TIMEOUT_S, OP_TIMEOUT_S, cluster_fixture, connect_fixture,
    crash_during_put, fail_over, meta_queries)

from loadgen.errors import OpTimeout, ServerError, SessionReset

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def test_crash_fails_the_attempt_at_once_and_the_retry_succeeds_on_the_new_primary(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    job, crashed_at = crash_during_put(cluster, table)
    assert job.successful(), job.exception
    first, second = rec.attempts()
    (op,) = rec.ops()
    assert (first.node, first.error, first.outcome, first.refreshed) == \
        (a, "ERR_SESSION_RESET", "unknown", True)
    # At once: not at the attempt timeout, which a missed connection loss would wait for.
    assert first.end - crashed_at < 0.25 * LONG_OP_TIMEOUT_S / 3
    assert (second.node, second.outcome) == (b, "ok")
    assert (op.outcome, op.attempt, op.refreshed, op.node) == ("ok", 2, True, b)
    assert cluster.data[b"h"][b"s"][0] == b"v1"


def test_dead_primary_still_listed_recovers_within_one_poll_of_the_change(cluster, connect):
    """While the meta names the dead primary, the op redials it and polls every repoll_ms;
    it succeeds within about one poll of the meta's change."""
    repoll_ms = 50
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS, repoll_ms=repoll_ms)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "down")
    changed = []
    gevent.spawn_later(0.3, lambda: (fail_over(cluster, b), changed.append(time.monotonic())))
    table.put("h", "s", "v1")
    (op,) = rec.ops()
    lag = op.end - changed[0]
    assert 0 < lag < repoll_ms / 1000 + 0.1 * LONG_OP_TIMEOUT_S
    assert [(x.node, x.error) for x in rec.attempts()] == [(a, "ERR_SESSION_RESET"), (b, None)]
    # One query per repoll interval at most (plus the one that found the change).
    assert meta_queries(rec) <= (op.end - op.start) / (repoll_ms / 1000) + 2


def test_gives_up_at_the_deadline_if_the_meta_never_changes(cluster, connect):
    table, rec = connect("failover")
    cluster.set_mode(cluster.replica_addrs[0], "down")
    gevent.sleep(0.05)  # the client sees its connection reset
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v1")
    (op,) = rec.ops()
    assert 0.9 * OP_TIMEOUT_S <= op.duration_s < 1.5 * OP_TIMEOUT_S
    assert isinstance(info.value.last_error, SessionReset)
    assert op.outcome == info.value.outcome == "fail"  # connects were refused: never sent


def test_one_reset_connection_to_a_healthy_primary_is_redialed_at_once(cluster, connect):
    """A reset from a primary that is still alive: the redial answers before any meta change
    could, and the op succeeds on the same primary long before its deadline."""
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, _ = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    job = gevent.spawn(table.put, "h", "s", "v1")
    gevent.sleep(0.05)
    cluster.reset(a)
    cluster.set_mode(a, "ok")
    job.join()
    assert job.successful(), job.exception
    (op,) = rec.ops()
    assert [(x.node, x.error) for x in rec.attempts()] == [(a, "ERR_SESSION_RESET"), (a, None)]
    assert op.duration_s < 0.25 * LONG_OP_TIMEOUT_S
    assert meta_queries(rec) <= 2


def test_a_slow_primary_gets_each_write_once_and_every_op_completes(cluster, connect):
    """No reply within attempt_timeout: refresh, and resend only if the config moved. The
    late reply completes the op."""
    op_timeout_s = 1.0
    table, rec = connect("failover", op_timeout_ms=int(op_timeout_s * 1000))
    a, _ = cluster.replica_addrs
    cluster.set_mode(a, f"slow:{0.5 * op_timeout_s}")  # past the attempt timeout (a third)
    writes = cluster.writes(a)
    jobs = [gevent.spawn(table.put, f"k{i}", "s", "v") for i in range(10)]
    gevent.joinall(jobs)
    assert all(j.successful() for j in jobs), [j.exception for j in jobs]
    assert cluster.writes(a) - writes == 10
    assert all(o.attempt == 1 and o.refreshed for o in rec.ops())


def test_a_hung_primary_the_meta_replaced_is_left_after_the_attempt_timeout(cluster, connect):
    op_timeout_s = 1.5
    table, rec = connect("failover", op_timeout_ms=int(op_timeout_s * 1000))
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    fail_over(cluster, b)  # the client's cache still names a
    table.put("h", "s", "v1")
    first, second = sorted(rec.attempts(), key=lambda x: x.attempt)
    (op,) = rec.ops()
    assert (first.node, first.outcome, second.node, second.outcome) == (a, "unknown", b, "ok")
    assert second.start - op.start >= 0.9 * op_timeout_s / 3  # only after the attempt timeout
    assert op.duration_s < 0.6 * op_timeout_s
    # The first attempt was kept waiting until the op ended: it is reported as unanswered.
    assert first.error == "ERR_TIMEOUT" and first.end >= second.end


def test_a_late_reply_to_an_earlier_attempt_completes_the_op(cluster, connect):
    """Whichever attempt the reply belongs to: here the old primary answers the first
    attempt after the op moved on to a new primary that hangs."""
    op_timeout_s = 1.5
    table, rec = connect("failover", op_timeout_ms=int(op_timeout_s * 1000))
    a, b = cluster.replica_addrs
    cluster.set_mode(a, f"slow:{0.6 * op_timeout_s}")  # executes at once, answers late
    cluster.set_mode(b, "hang")
    # Once a has the write, the config moves: the op resends to b after a third.
    gevent.spawn_later(0.1 * op_timeout_s, fail_over, cluster, b)
    table.put("h", "s", "v1")
    (op,) = rec.ops()
    attempts = rec.attempts()
    assert op.outcome == "ok" and op.attempt == 2
    assert {(x.node, x.outcome) for x in attempts} == {(a, "ok"), (b, "unknown")}
    assert op.duration_s < 0.8 * op_timeout_s


def test_attempt_timeout_param(cluster, connect):
    # The default would be a third of the op timeout (1 s): the parameter must win.
    table, rec = connect("failover", op_timeout_ms=3000, attempt_timeout_ms=200)
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    fail_over(cluster, cluster.replica_addrs[1])
    table.put("h", "s", "v1")
    second = max(rec.attempts(), key=lambda x: x.attempt)
    assert 0.9 * 0.2 <= second.start - rec.ops()[0].start < 0.5 * 1.0


def test_no_primary_waits_for_the_meta_to_name_one(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=1000)
    b = cluster.replica_addrs[1]
    pidx = table.partition_of("h")
    cluster.move_primary(pidx, None)
    assert table.client.refresh("temp")
    assert table.client.route("temp", pidx).primary is None
    gevent.spawn_later(0.1, cluster.move_primary, pidx, b)
    table.put("h", "s", "v1")
    assert [(x.node, x.error) for x in rec.attempts()] == [(None, "ERR_NO_PRIMARY"), (b, None)]
    assert rec.attempts()[0].outcome == "fail"


@pytest.mark.parametrize("error, outcome", [
    ("ERR_INVALID_STATE", "fail"), ("ERR_OBJECT_NOT_FOUND", "fail"),
    ("ERR_PARENT_PARTITION_MISUSED", "fail"),
    ("ERR_TIMEOUT", "unknown"),  # sent by the server: the write may have been applied
])
def test_refreshes_and_retries_in_the_same_op(cluster, connect, error, outcome):
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, f"reply:{error}")
    fail_over(cluster, b)
    table.put("h", "s", "v1")
    assert [(x.node, x.error, x.outcome, x.refreshed) for x in rec.attempts()] == \
        [(a, error, outcome, True), (b, None, "ok", False)]
    assert rec.ops()[0].duration_s < 0.5 * LONG_OP_TIMEOUT_S


@pytest.mark.parametrize("error", ["ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_NOT_ENOUGH_MEMBER"])
def test_retries_busy_errors_with_backoff_and_no_refresh(cluster, connect, error):
    table, rec = connect("failover", op_timeout_ms=1000)
    a = cluster.replica_addrs[0]
    cluster.set_mode(a, f"reply:{error}")
    gevent.spawn_later(0.15, cluster.set_mode, a, "ok")
    table.put("h", "s", "v1")
    attempts = rec.attempts()
    assert len(attempts) >= 2 and attempts[-1].outcome == "ok"
    assert all(x.error == error and x.outcome == "fail" and not x.refreshed for x in attempts[:-1])
    assert meta_queries(rec) == 0
    assert rec.ops()[0].duration_s < 0.5  # backoff is capped at 200 ms


@pytest.mark.parametrize("error", ["ERR_INVALID_PARAMETERS", "ERR_INACTIVE_STATE"])
def test_does_not_retry_a_non_retriable_error(cluster, connect, error):
    table, rec = connect("failover")
    cluster.set_mode(cluster.replica_addrs[0], f"reply:{error}")
    with pytest.raises(ServerError) as info:
        table.put("h", "s", "v1")
    assert info.value.code == error
    assert [(o.attempt, o.outcome) for o in rec.ops()] == [(1, "fail")]


def test_retry_header_carries_the_ms_left_not_the_op_timeout(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=600)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    fail_over(cluster, b)
    table.put("h", "s", "v1")
    second = max(rec.attempts(), key=lambda x: x.attempt)
    (op,) = rec.ops()
    req = cluster.last_request(b)
    left_ms = (op.start + 0.6 - second.start) * 1000  # op deadline - retry start, exactly
    assert left_ms - 2 <= req.client_timeout_ms <= left_ms + 1
    assert req.client_timeout_ms <= 600 * (1 - 1 / 3) + 1  # the first attempt used a third


def test_a_higher_ballot_for_the_same_slow_primary_does_not_resend_and_each_tick_polls(cluster, connect):
    """Seen in an integration run: a cache holding a stale ballot for the primary (it was
    re-elected after a restart) made failover send every write again to the same paused
    node. And every attempt timeout must reach the meta, even when other ops refreshed the
    cache since the attempt was sent."""
    op_timeout_s = 1.5
    table, rec = connect("failover", op_timeout_ms=int(op_timeout_s * 1000))
    a, _ = cluster.replica_addrs
    pidx = table.partition_of("h")
    cluster.move_primary(pidx, a)  # same primary, higher ballot: the client's cache is stale
    cluster.set_mode(a, "hang")
    requests = cluster.requests(a)
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v1")
    assert cluster.requests(a) - requests == 1
    assert [o.attempt for o in rec.ops()] == [1]
    assert meta_queries(rec) >= 2  # one per attempt timeout (0.5 s, 1.0 s)


def test_a_config_fetched_for_another_op_redirects_a_waiting_one_at_once(cluster, connect):
    """A hung primary is replaced while an op still waits on it (before its own attempt
    timeout): the config some other op fetched sends it to the new primary at once."""
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    job = gevent.spawn(table.put, "h", "s", "v1")
    gevent.sleep(0.05)
    fail_over(cluster, b)
    moved_at = time.monotonic()
    assert table.client.refresh("temp")  # as another op's poll would
    job.join()
    assert job.successful(), job.exception
    (op,) = rec.ops()
    assert op.node == b and op.end - moved_at < 0.1 * LONG_OP_TIMEOUT_S
    assert op.end - op.start < LONG_OP_TIMEOUT_S / 3  # well before the attempt timeout


@pytest.mark.parametrize("policy", ["legacy", "refresh-on-timeout", "refresh-on-reset", "java"])
def test_the_upstream_models_do_not_leave_a_waiting_attempt_for_a_new_config(cluster, connect, policy):
    table, rec = connect(policy, op_timeout_ms=600)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    job = gevent.spawn(table.put, "h", "s", "v1")
    gevent.sleep(0.05)
    fail_over(cluster, b)
    assert table.client.refresh("temp")
    job.join()
    assert isinstance(job.exception, OpTimeout)
    assert {x.node for x in rec.attempts()} == {a}  # waited on a until the timeout
