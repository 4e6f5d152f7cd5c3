"""Policies: the exact behaviour of each built-in, and one contract every policy meets.

Faults come from the test cluster: ``down`` is a crashed node (connection reset, connects
refused), ``hang`` a stopped one, ``move_primary`` the meta's failover. Bounds are relative
to the op timeout so they hold on slow machines.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import gevent
import pytest

from policy_tools import (  # noqa: F401 (the fixtures are used by name)
    LONG_OP_TIMEOUT_MS, LONG_OP_TIMEOUT_S, OP_TIMEOUT_S, crash_during_put, fail_over, wait_for,
    cluster_fixture, connect_fixture)

from loadgen.errors import OpTimeout, SessionReset
from loadgen.pegasus import policies
from loadgen.pegasus.policies import AttemptContext, Failover, Legacy, Policy, Reaction, RefreshOnTimeout

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

CTX = AttemptContext("put", "temp", 0, "127.0.0.1:1", 1, 0.2)


# ---------------------------------------------------------------------------- legacy


def test_legacy_crash_leaves_put_waiting_for_deadline_and_keeps_dead_route(cluster, connect):
    table, rec = connect("legacy")
    a, _ = cluster.replica_addrs
    job, _ = crash_during_put(cluster, table)
    assert isinstance(job.exception, OpTimeout)
    assert isinstance(job.exception.last_error, SessionReset)
    (op,) = rec.ops()
    assert op.duration_s >= 0.9 * OP_TIMEOUT_S
    assert (op.node, op.outcome, op.refreshed) == (a, "unknown", False)

    meta_before = cluster.requests(cluster.meta_addrs[0])
    for _ in range(2):
        with pytest.raises(OpTimeout):
            table.put("h", "s", "v2")
    for op in rec.ops()[1:]:
        assert op.node == a and not op.refreshed and op.duration_s >= 0.9 * OP_TIMEOUT_S
        assert op.outcome == "fail"  # the dead node refused: nothing was sent
    assert cluster.requests(cluster.meta_addrs[0]) == meta_before
    assert cluster.data[b"h"][b"s"][0] == b"v0"


def test_legacy_does_not_redial_a_restarted_node_within_the_interval(cluster, connect):
    table, rec = connect("legacy")
    a, _ = cluster.replica_addrs
    cluster.set_mode(a, "down")
    gevent.sleep(0.05)  # the client sees its connection reset
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v1")  # the first dial after the loss: refused
    cluster.set_mode(a, "ok")  # back, and still the primary
    accepted = cluster.connections(a)
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v2")
    assert cluster.connections(a) == accepted


@pytest.mark.parametrize("policy", ["legacy", "refresh-on-timeout"])
def test_legacy_keeps_the_old_primary_when_the_meta_names_none(cluster, connect, policy):
    # Go's handleQueryConfigResp keeps the old routing for a config without a primary
    # (PROTOCOL.md §6): the op waits on the old primary until its deadline instead of
    # failing at once with ERR_NO_PRIMARY.
    table, rec = connect(policy)
    a, _ = cluster.replica_addrs
    pidx = table.partition_of("h")
    cluster.set_mode(a, "hang")
    cluster.move_primary(pidx, None)
    table._routing.refresh(time.monotonic() + 2)
    assert table._routing.route(pidx).primary == a
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v1")
    (op,) = rec.ops()
    assert (op.node, op.error, op.attempt) == (a, "ERR_TIMEOUT", 1)
    assert op.duration_s >= 0.9 * OP_TIMEOUT_S


def test_failover_treats_a_config_without_primary_as_no_primary(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=1000)
    b = cluster.replica_addrs[1]
    pidx = table.partition_of("h")
    cluster.move_primary(pidx, None)
    table._routing.refresh(time.monotonic() + 2)
    assert table._routing.route(pidx).primary is None
    gevent.spawn_later(0.1, cluster.move_primary, pidx, b)
    table.put("h", "s", "v1")  # re-polls the meta until it names b
    assert [(x.node, x.error) for x in rec.attempts()] == [(None, "ERR_NO_PRIMARY"), (b, None)]


def test_legacy_hang_neither_refreshes_nor_retries(cluster, connect):
    table, rec = connect("legacy")
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    meta_before = cluster.requests(cluster.meta_addrs[0])
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v1")
    gevent.sleep(0.05)
    (op,) = rec.ops()
    assert (op.attempt, op.refreshed) == (1, False)
    assert cluster.requests(cluster.meta_addrs[0]) == meta_before


# ---------------------------------------------------------------------------- refresh-on-timeout


def test_refresh_on_timeout_fails_the_op_then_next_op_uses_new_primary(cluster, connect):
    table, rec = connect("refresh-on-timeout")
    _, b = cluster.replica_addrs
    job, _ = crash_during_put(cluster, table)
    assert isinstance(job.exception, OpTimeout)
    (op,) = rec.ops()
    assert op.duration_s >= 0.9 * OP_TIMEOUT_S and op.attempt == 1 and op.refreshed
    assert wait_for(lambda: table._routing.route(op.partition).primary == b)
    table.put("h", "s", "v2")
    last = rec.ops()[-1]
    assert (last.node, last.outcome, last.attempt) == (b, "ok", 1)


def test_refresh_on_timeout_refreshes_at_most_once_per_second(cluster, connect):
    table, rec = connect("refresh-on-timeout", op_timeout_ms=300)
    meta = cluster.meta_addrs[0]
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    meta_before = cluster.requests(meta)
    for _ in range(2):  # both within one second
        with pytest.raises(OpTimeout):
            table.put("h", "s", "v1")
    gevent.sleep(0.05)
    assert [op.refreshed for op in rec.ops()] == [True, False]
    assert cluster.requests(meta) == meta_before + 1


# ---------------------------------------------------------------------------- failover


def test_failover_crash_fails_attempt_at_once_and_retry_succeeds_on_new_primary(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=LONG_OP_TIMEOUT_MS)
    a, b = cluster.replica_addrs
    attempt_timeout_s = LONG_OP_TIMEOUT_S / 3
    job, crashed_at = crash_during_put(cluster, table)
    assert job.successful(), job.exception
    first, second = rec.attempts()
    (op,) = rec.ops()
    assert (first.node, first.error, first.outcome, first.refreshed) == \
        (a, "ERR_SESSION_RESET", "unknown", True)
    # At once: not at the attempt timeout, which a missed connection loss would wait for.
    assert first.end - crashed_at < 0.5 * attempt_timeout_s
    assert (second.node, second.outcome) == (b, "ok")
    assert (op.outcome, op.attempt, op.refreshed, op.node) == ("ok", 2, True, b)
    assert op.duration_s < 0.5 * LONG_OP_TIMEOUT_S
    assert cluster.data[b"h"][b"s"][0] == b"v1"


def test_failover_repolls_meta_while_dead_primary_is_still_listed(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=1000)
    a, b = cluster.replica_addrs
    meta = cluster.meta_addrs[0]
    cluster.set_mode(a, "down")  # the meta has not noticed yet: it still names a
    meta_before = cluster.requests(meta)
    gevent.spawn_later(0.2, fail_over, cluster, b)
    table.put("h", "s", "v1")
    (op,) = rec.ops()
    assert 0.19 <= op.duration_s < 0.6
    assert [(x.node, x.error) for x in rec.attempts()] == [(a, "ERR_SESSION_RESET"), (b, None)]
    polls = cluster.requests(meta) - meta_before
    assert polls >= 5, f"only {polls} meta queries in 200 ms with repoll_ms=10"


def test_failover_gives_up_at_the_deadline_if_the_meta_never_changes(cluster, connect):
    table, rec = connect("failover")
    cluster.set_mode(cluster.replica_addrs[0], "down")
    gevent.sleep(0.05)  # the client sees its connection reset
    meta_before = cluster.requests(cluster.meta_addrs[0])
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v1")
    (op,) = rec.ops()
    assert 0.9 * OP_TIMEOUT_S <= op.duration_s < 1.5 * OP_TIMEOUT_S
    assert isinstance(info.value.last_error, SessionReset)
    assert op.outcome == "fail"  # connects were refused: the write never left the client
    assert cluster.requests(cluster.meta_addrs[0]) - meta_before >= 10


def test_failover_abandons_hung_primary_after_attempt_timeout(cluster, connect):
    op_timeout_s = 1.5
    table, rec = connect("failover", op_timeout_ms=int(op_timeout_s * 1000))
    a, b = cluster.replica_addrs
    attempt_timeout_s = op_timeout_s / 3
    cluster.set_mode(a, "hang")
    fail_over(cluster, b)  # the client's cache still names a
    table.put("h", "s", "v1")
    first, second = rec.attempts()
    (op,) = rec.ops()
    assert (first.node, first.error, first.outcome, first.refreshed) == (a, "ERR_TIMEOUT", "unknown", True)
    # Abandoned at its own timeout, not kept until the op deadline.
    assert 0.9 * attempt_timeout_s <= first.duration_s < 0.5 * op_timeout_s
    assert (second.node, second.outcome) == (b, "ok")
    assert op.duration_s < 0.9 * op_timeout_s


def test_failover_attempt_timeout_param(cluster, connect):
    # The default would be a third of the op timeout (1 s): the parameter must win.
    table, rec = connect("failover", op_timeout_ms=3000, attempt_timeout_ms=200)
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    fail_over(cluster, cluster.replica_addrs[1])
    table.put("h", "s", "v1")
    assert 0.9 * 0.2 <= rec.attempts()[0].duration_s < 0.5 * 1.0


# ---------------------------------------------------------------------------- policy units


def test_failover_reactions_follow_the_error_table():
    p = Failover()
    assert p.on_error("ERR_INVALID_STATE", CTX) == Reaction(refresh="now", retry=True)
    assert p.on_error("ERR_OBJECT_NOT_FOUND", CTX) == Reaction(refresh="now", retry=True)
    for busy in ("ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_NOT_ENOUGH_MEMBER"):
        assert p.on_error(busy, CTX) == Reaction(refresh="none", retry=True)
    assert p.on_error("ERR_INVALID_PARAMETERS", CTX).retry is False
    assert p.on_connection_lost(CTX) == Reaction(refresh="now", retry=True, repoll_s=0.01)
    assert p.on_no_primary(CTX).repoll_s == 0.01
    assert p.on_timeout(CTX) == Reaction(refresh="now", retry=True)


def test_legacy_and_refresh_on_timeout_reactions():
    for p in (Legacy(), RefreshOnTimeout()):
        assert not p.fail_pending_on_loss and p.reconnect_interval_s == 60.0
        assert p.on_connection_lost(CTX).retry is False
        assert p.on_error("ERR_OBJECT_NOT_FOUND", CTX) == \
            Reaction(refresh="background", refresh_min_interval_s=1.0)
        assert p.on_error("ERR_BUSY", CTX) == Reaction()
    assert Legacy().on_timeout(CTX) == Reaction()
    assert RefreshOnTimeout().on_timeout(CTX) == Reaction(refresh="background", refresh_min_interval_s=1.0)


def test_legacy_reconnect_interval_zero_means_whenever_needed():
    from loadgen.errors import ConfigError

    assert Legacy(reconnect_interval_s=0).reconnect_interval_s == 0
    assert RefreshOnTimeout(reconnect_interval_s=0.0).reconnect_interval_s == 0
    for bad in ({"reconnect_interval_s": -1}, {"refresh_interval_s": 0}):
        with pytest.raises(ConfigError) as info:
            Legacy(**bad)
        assert info.value.key == f"policies.params.legacy.{next(iter(bad))}"
    with pytest.raises(ConfigError, match="attempt_timeout_ms"):
        Failover(attempt_timeout_ms=0)
    assert Failover(attempt_timeout_ms=None).attempt_timeout_ms is None


def test_failover_attempt_timeout_defaults_to_a_third():
    assert Failover().attempt_timeout_s(0.9) == pytest.approx(0.3)
    assert Failover(attempt_timeout_ms=100).attempt_timeout_s(0.9) == pytest.approx(0.1)
    assert Failover(attempt_timeout_ms=5000).attempt_timeout_s(0.9) == pytest.approx(0.9)
    assert Legacy().attempt_timeout_s(0.9) == 0.9


def test_failover_backoff_is_capped_exponential_with_full_jitter():
    p = Failover()
    for retry, ceiling_ms in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 200), (50, 200), (10_000, 200)]:
        samples = [p.backoff_s(retry) * 1000 for _ in range(400)]
        assert 0 <= min(samples) < 0.1 * ceiling_ms
        assert 0.85 * ceiling_ms < max(samples) <= ceiling_ms


# ---------------------------------------------------------------------------- contract


@dataclass(frozen=True)
class RetryAnything(Policy):
    """A user policy: refresh and retry on every failure, 5 ms apart."""

    name = "retry-anything"
    pause_ms: float = 5.0

    def _again(self, *_args) -> Reaction:
        return Reaction(refresh="now", retry=True)

    on_connection_lost = on_timeout = on_error = on_no_primary = _again

    def backoff_s(self, retry: int) -> float:
        return self.pause_ms / 1000


def test_user_policy_by_dotted_path(cluster, connect):
    table, rec = connect(f"{__name__}:RetryAnything", pause_ms=1)
    assert isinstance(table._client.policy, RetryAnything) and table._client.policy.pause_ms == 1
    cluster.set_mode(cluster.replica_addrs[0], "invalid_state")
    fail_over(cluster, cluster.replica_addrs[1])
    table.put("h", "s", "v1")
    assert [x.outcome for x in rec.attempts()] == ["fail", "ok"]


REGISTERED = [info.name for info in policies.available()]


def test_builtins_are_registered_with_summaries_and_params():
    infos = {i.name: i for i in policies.available()}
    assert {"legacy", "refresh-on-timeout", "failover"} <= set(infos)
    assert infos["failover"].params == {"attempt_timeout_ms": None, "backoff_base_ms": 10.0,
                                        "backoff_multiplier": 2.0, "backoff_cap_ms": 200.0,
                                        "repoll_ms": 10.0}
    assert infos["legacy"].params == {"reconnect_interval_s": 60.0, "refresh_interval_s": 1.0}


@pytest.mark.parametrize("name", REGISTERED)
def test_contract_policy_object(name):
    policy = policies.create(name)
    assert isinstance(policy, Policy) and policy.name == name
    info = next(i for i in policies.available() if i.name == name)
    assert info.summary
    if dataclasses.is_dataclass(policy):
        assert set(info.params) == {f.name for f in dataclasses.fields(policy)}
    assert 0 < policy.attempt_timeout_s(1.0) <= 1.0
    for hook in (policy.on_connection_lost, policy.on_timeout, policy.on_no_primary):
        assert isinstance(hook(CTX), Reaction)
    assert isinstance(policy.on_error("ERR_INVALID_STATE", CTX), Reaction)
    assert all(0 <= policy.backoff_s(n) < math.inf for n in (1, 2, 100))
    assert policy.reconnect_interval_s >= 0
    assert isinstance(policy.fail_pending_on_loss, bool)
    assert isinstance(policy.keep_routes_without_primary, bool)


@pytest.mark.parametrize("name", REGISTERED)
def test_contract_ops_outcomes_and_deadline(cluster, connect, name):
    table, rec = connect(name)
    table.put("h", "s", "v1")
    assert table.get("h", "s") == b"v1"
    # A hung primary: every policy ends the op at its deadline, not before, not much after.
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    started = time.monotonic()
    with pytest.raises(OpTimeout) as info:
        table.put("h", "s", "v2")
    elapsed = time.monotonic() - started
    assert 0.9 * OP_TIMEOUT_S <= elapsed < 1.5 * OP_TIMEOUT_S
    assert info.value.code == "ERR_TIMEOUT"
    # Healed: the next op succeeds, nothing is stuck.
    cluster.set_mode(cluster.replica_addrs[0], "ok")
    table.put("h", "s", "v3")
    assert table.get("h", "s") == b"v3"
    # Every op's attempts are reported first, numbered 1..n, inside the op's time span.
    pending: list = []
    for o in rec.outcomes:
        assert o.policy == name
        if o.level == "attempt":
            pending.append(o)
            continue
        assert [a.attempt for a in pending] == list(range(1, o.attempt + 1))
        assert all(o.start <= a.start <= a.end <= o.end for a in pending)
        assert all((x.outcome == "ok") == (x.error is None) for x in pending + [o])
        pending = []
    assert not pending
    assert [o.outcome for o in rec.ops()] == ["ok", "ok", "unknown", "ok", "ok"]


def test_failover_retry_header_carries_the_ms_left_not_the_op_timeout(cluster, connect):
    table, rec = connect("failover", op_timeout_ms=600)
    a, b = cluster.replica_addrs
    cluster.set_mode(a, "hang")
    fail_over(cluster, b)
    table.put("h", "s", "v1")
    _, second = rec.attempts()
    (op,) = rec.ops()
    req = cluster.last_request(b)
    left_ms = (op.start + 0.6 - second.start) * 1000  # op deadline - retry start, exactly
    assert left_ms - 1 <= req.client_timeout_ms <= left_ms + 1
    assert req.client_timeout_ms <= 600 * (1 - 1 / 3) + 1  # the first attempt used a third
