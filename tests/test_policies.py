"""Policy objects: each built-in's reactions pinned to the upstream code it models, the
registry, and one contract every registered policy meets (no network here)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest

from loadgen.errors import ConfigError
from loadgen.pegasus import policies
from loadgen.pegasus.policies import (AttemptContext, Failover, Java, Legacy, Policy, Reaction,
                                      RefreshOnReset, RefreshOnTimeout)
from loadgen.pegasus.policies.go import go_backoff_s
from loadgen.pegasus.refresh import GoTriggerLoop, MetaPoller, PacedQuery
from loadgen.pegasus.routing import APPLY_GO, APPLY_REPLACE

pytestmark = pytest.mark.unit

OP_TIMEOUT_S = 1.0


def ctx(time_left_s: float = 0.5, retries: int = 0) -> AttemptContext:
    return AttemptContext(op="put", table="temp", partition=0, node="127.0.0.1:1",
                          attempt=retries + 1, retries=retries, time_left_s=time_left_s,
                          op_timeout_s=OP_TIMEOUT_S)


GO_MODELS = (Legacy(), RefreshOnTimeout(), RefreshOnReset())

# go-client/pegasus/table_connector.go handleReplicaError, identical at 44e83503b998,
# 2ab5be67a94c and 75212068c390 for server errors: (refresh, retry).
GO_ERROR_TABLE = {
    "ERR_TIMEOUT": (False, False), "ERR_NOT_ENOUGH_MEMBER": (False, False),
    "ERR_CAPACITY_EXCEEDED": (False, False), "ERR_BUSY": (False, False),
    "ERR_SPLITTING": (False, False), "ERR_DISK_INSUFFICIENT": (False, False),
    "ERR_INVALID_STATE": (True, False), "ERR_PARENT_PARTITION_MISUSED": (True, False),
    "ERR_OBJECT_NOT_FOUND": (True, True), "ERR_INACTIVE_STATE": (True, True),
    "ERR_INVALID_PARAMETERS": (True, True),  # the `default` branch: refresh and retry
}


@pytest.mark.parametrize("policy", GO_MODELS, ids=lambda p: p.name)
@pytest.mark.parametrize("code, expected", GO_ERROR_TABLE.items())
def test_go_models_map_error_replies_as_handle_replica_error(policy, code, expected):
    """go-client/pegasus/table_connector.go handleReplicaError: the first switch sets
    (confUpdate, retry), the second takes retry back for ERR_INVALID_STATE and
    ERR_PARENT_PARTITION_MISUSED; retry_failover.go retries only if both are set."""
    reaction = policy.on_error(code, ctx())
    assert (reaction.refresh, reaction.retry) == expected
    if reaction.retry:  # retryFailOver: bf.NextBackOff() before the next try
        assert 0.25 <= reaction.delay_s <= 0.75


def test_go_deadline_refreshes_only_with_1916():
    """table_connector.go handleReplicaError `case context.DeadlineExceeded`: nothing at
    44e83503b998 (2ab5be67a^), confUpdate at 2ab5be67a94c (#1916), nothing again at
    75212068c390 (#2286). None retries."""
    done = ctx(time_left_s=0.0)
    assert Legacy().on_timeout(done) == Reaction()
    assert RefreshOnTimeout().on_timeout(done) == Reaction(refresh=True)
    assert RefreshOnReset().on_timeout(done) == Reaction()


def test_go_could_not_connect_refreshes_only_since_2286():
    """session.go waitUntilSessionReady returns ctx.Err() before #2286 (a deadline to
    handleReplicaError) and ERR_SESSION_RESET since, which sets confUpdate (no retry)."""
    done = ctx(time_left_s=0.0)
    assert Legacy().on_not_connected(done) == Reaction()
    assert RefreshOnTimeout().on_not_connected(done) == Reaction(refresh=True)
    assert RefreshOnReset().on_not_connected(done) == Reaction(refresh=True)


@pytest.mark.parametrize("policy", GO_MODELS, ids=lambda p: p.name)
def test_go_models_share_the_session_and_refresh_machinery(policy):
    """session.go: EOF leaves calls pending (loopForResponse), dial waits kDialInterval after
    a recent dial, waitUntilSessionReady waits for a connection; rpc_conn.go ConnReadTimeout
    30 s feeds the unresponsive handler; table_connector.go: runPartitionOp fixes the session
    before the loop, handleQueryConfigResp stops at a partition without primary,
    loopForAutoUpdate paces refreshes 1 s apart."""
    rules = policy.session_rules()
    assert (rules.fail_pending_on_loss, rules.dial_throttle_s, rules.wait_for_connection,
            rules.read_timeout_s, rules.timeout_reset_window_s) == (False, 60.0, True, 30.0, None)
    assert policy.reroute_retries is False and policy.config_apply == APPLY_GO
    assert policy.on_unresponsive() == Reaction(refresh=True)
    assert policy.attempt_timeout_s(OP_TIMEOUT_S) == OP_TIMEOUT_S
    assert isinstance(policy.make_refresher(_FakeRouting(), OP_TIMEOUT_S), GoTriggerLoop)


@pytest.mark.parametrize("retry, low, high", [(1, 0.25, 0.75), (2, 0.5, 1.5), (3, 1.0, 3.0),
                                               (7, 16.0, 48.0), (8, 30.0, 90.0), (50, 30.0, 90.0)])
def test_go_backoff_is_cenkalti_nextbackoff_as_retry_failover_sets_it_up(retry, low, high):
    """retry_failover.go: NewExponentialBackOff() already reset the current interval to
    500 ms when InitialInterval = 1 s and Multiplier = 2 are set; ±50 % jitter; 60 s cap."""
    samples = [go_backoff_s(retry) for _ in range(300)]
    assert low <= min(samples) < low + 0.1 * (high - low)
    assert high - 0.1 * (high - low) < max(samples) <= high


# ---------------------------------------------------------------------------- java

# java-client .../rpc/async/TableHandler.java onRpcReply at db756dcdf24e: (query meta, retry).
JAVA_ERROR_TABLE = {
    "ERR_SESSION_RESET": (True, True), "ERR_OBJECT_NOT_FOUND": (True, True),
    "ERR_INVALID_STATE": (True, True), "ERR_PARENT_PARTITION_MISUSED": (True, True),
    "ERR_TIMEOUT": (False, True), "ERR_NOT_ENOUGH_MEMBER": (False, True),
    "ERR_CAPACITY_EXCEEDED": (False, True),
    "ERR_BUSY": (False, False), "ERR_INACTIVE_STATE": (False, False),
    "ERR_INVALID_PARAMETERS": (False, False),
}


@pytest.mark.parametrize("code, expected", JAVA_ERROR_TABLE.items())
def test_java_maps_error_replies_as_on_rpc_reply(code, expected):
    """TableHandler.onRpcReply: query meta + tryDelayCall, tryDelayCall alone, or complete
    the round with the error (`default`)."""
    reaction = Java().on_error(code, ctx())
    assert (reaction.refresh, reaction.retry) == expected


def test_java_connection_loss_and_no_primary_query_the_meta_and_retry():
    """ReplicaSession.markSessionDisconnect fails every pending call with
    ERR_SESSION_RESET; TableHandler.call with no primary session runs tryQueryMeta and
    tryDelayCall."""
    java = Java()
    for reaction in (java.on_connection_lost(ctx()), java.on_not_connected(ctx()),
                     java.on_no_primary(ctx())):
        assert (reaction.refresh, reaction.retry, reaction.wait_for_route) == (True, True, False)
    assert java.on_timeout(ctx()) == Reaction(retry=True, delay_s=java.retry_delay_s(OP_TIMEOUT_S))


def test_java_retry_delay_is_default_retry_policy_in_nanoseconds_under_the_floor():
    """client/retry/DefaultRetryPolicy.java: timeoutNanos / 3_000_000 used as nanoseconds
    (333 ns at 1 s), never past the deadline; pegbench's floor is min_retry_delay_ms."""
    assert Java(min_retry_delay_ms=0).retry_delay_s(1.0) == pytest.approx(1e9 / 3e6 * 1e-9)
    assert Java().retry_delay_s(1.0) == pytest.approx(0.001)
    assert Java(min_retry_delay_ms=5).on_connection_lost(ctx(time_left_s=0.002)).delay_s == \
        pytest.approx(0.002)


def test_java_sessions_and_pacing():
    """ReplicaSession: fail pending at once, connect on demand, a timer of the full timeout
    per request, session_reset_time_window_secs 30; tryQueryMeta: max(1, timeout/3) ms."""
    java = Java()
    rules = java.session_rules()
    assert (rules.fail_pending_on_loss, rules.dial_throttle_s, rules.wait_for_connection,
            rules.redial_backoff, rules.timeout_reset_window_s) == (True, 0.0, False, None, 30.0)
    assert java.attempt_outlives_op and java.reroute_retries and java.config_apply == APPLY_REPLACE
    assert java.attempt_timeout_s(OP_TIMEOUT_S) == OP_TIMEOUT_S
    paced = java.make_refresher(_FakeRouting(), OP_TIMEOUT_S)
    assert isinstance(paced, PacedQuery) and paced._min_interval_s == pytest.approx(0.333)
    assert java.make_refresher(_FakeRouting(), 0.002)._min_interval_s == pytest.approx(0.001)


# ---------------------------------------------------------------------------- failover


def test_failover_reactions():
    p = Failover()
    for code in ("ERR_INVALID_STATE", "ERR_OBJECT_NOT_FOUND", "ERR_PARENT_PARTITION_MISUSED"):
        r = p.on_error(code, ctx())
        assert (r.refresh, r.retry, r.wait_for_refresh) == (True, True, True) and r.delay_s <= 0.01
    for busy in ("ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_NOT_ENOUGH_MEMBER"):
        r = p.on_error(busy, ctx(retries=3))
        assert (r.refresh, r.retry, r.wait_for_refresh) == (False, True, False) and r.delay_s <= 0.08
    assert p.on_error("ERR_INVALID_PARAMETERS", ctx()).retry is False
    unreachable = Reaction(refresh=True, retry=True, wait_for_route=True)
    assert p.on_connection_lost(ctx()) == p.on_not_connected(ctx()) == p.on_no_primary(ctx()) == unreachable
    # A slow attempt is kept, not abandoned; at the deadline nothing is left to do.
    assert p.on_timeout(ctx()) == Reaction(refresh=True, retry=True, keep_waiting=True)
    assert p.on_timeout(ctx(time_left_s=0.0)) == Reaction()


def test_failover_sessions_and_pacing():
    p = Failover(repoll_ms=20, repoll_max_ms=160)
    rules = p.session_rules()
    assert rules.fail_pending_on_loss and rules.redial_backoff is not None
    assert not rules.wait_for_connection and rules.dial_throttle_s == 0
    poller = p.make_refresher(_FakeRouting(), OP_TIMEOUT_S)
    assert isinstance(poller, MetaPoller) and poller.interval_s == pytest.approx(0.02)
    assert Failover().attempt_timeout_s(0.9) == pytest.approx(0.3)
    assert Failover(attempt_timeout_ms=100).attempt_timeout_s(0.9) == pytest.approx(0.1)
    assert Failover(attempt_timeout_ms=5000).attempt_timeout_s(0.9) == pytest.approx(0.9)


def test_failover_backoff_is_capped_exponential_with_full_jitter():
    p = Failover()
    for retry, ceiling_ms in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 200), (50, 200), (10_000, 200)]:
        samples = [p.backoff_s(retry) * 1000 for _ in range(400)]
        assert 0 <= min(samples) < 0.1 * ceiling_ms
        assert 0.85 * ceiling_ms < max(samples) <= ceiling_ms


@pytest.mark.parametrize("factory, params, key", [
    (Legacy, {"dial_interval_s": -1}, "policy_params.dial_interval_s"),
    (Legacy, {"refresh_pause_s": 0}, "policy_params.refresh_pause_s"),
    (RefreshOnReset, {"read_timeout_s": "30"}, "policy_params.read_timeout_s"),
    (Java, {"meta_query_interval_ms": 0}, "policy_params.meta_query_interval_ms"),
    (Java, {"min_retry_delay_ms": -1}, "policy_params.min_retry_delay_ms"),
    (Failover, {"attempt_timeout_ms": 0}, "policy_params.attempt_timeout_ms"),
    (Failover, {"repoll_ms": 20, "repoll_max_ms": 10}, "policy_params.repoll_max_ms"),
])
def test_bad_parameters_are_config_errors_naming_the_parameter(factory, params, key):
    with pytest.raises(ConfigError) as info:
        factory(**params)
    assert info.value.key == key and factory.name in info.value.expected


def test_zero_dial_interval_means_redial_whenever_needed():
    assert Legacy(dial_interval_s=0).session_rules().dial_throttle_s == 0


# ---------------------------------------------------------------------------- registry, contract


@dataclass(frozen=True)
class RetryAnything(Policy):
    """A user policy: refresh and retry on every failure, a fixed pause apart."""

    name = "retry-anything"
    pause_ms: float = 5.0

    def _again(self, *_args) -> Reaction:
        return Reaction(refresh=True, retry=True, delay_s=self.pause_ms / 1000)

    on_connection_lost = on_timeout = on_error = on_no_primary = _again


def test_create_by_name_dotted_path_or_instance_with_explicit_params():
    assert policies.create("java", {"min_retry_delay_ms": 2}).min_retry_delay_ms == 2
    assert isinstance(policies.create(f"{__name__}:RetryAnything", {"pause_ms": 1}), RetryAnything)
    instance = Failover()
    assert policies.create(instance) is instance
    with pytest.raises(ConfigError) as info:
        policies.create(instance, {"repoll_ms": 5})
    assert info.value.key == "policy_params"
    with pytest.raises(ConfigError) as info:
        policies.create("java", {"repoll_ms": 5})
    assert info.value.key == "policy_params.repoll_ms" and "min_retry_delay_ms" in info.value.expected


def test_builtins_are_registered_with_model_source_and_params():
    infos = {i.name: i for i in policies.available()}
    assert set(infos) >= {"legacy", "refresh-on-timeout", "refresh-on-reset", "java", "failover"}
    for name in ("legacy", "refresh-on-timeout", "refresh-on-reset", "java"):
        assert infos[name].models and "@" in infos[name].source  # file(s) @ commit
    assert infos["failover"].params == {
        "attempt_timeout_ms": None, "backoff_base_ms": 10.0, "backoff_multiplier": 2.0,
        "backoff_cap_ms": 200.0, "repoll_ms": 10.0, "repoll_max_ms": None,
        "fd_beacon_ms": None, "fd_check_ms": None, "fd_grace_ms": None, "probe_replicas": False}
    assert infos["legacy"].params == {"dial_interval_s": 60.0, "refresh_pause_s": 1.0,
                                      "read_timeout_s": 30.0}


REGISTERED = [info.name for info in policies.available()]


@pytest.mark.parametrize("name", REGISTERED)
def test_contract_policy_object(name):
    policy = policies.create(name)
    assert isinstance(policy, Policy) and policy.name == name
    info = next(i for i in policies.available() if i.name == name)
    assert info.summary
    if dataclasses.is_dataclass(policy):
        assert set(info.params) == {f.name for f in dataclasses.fields(policy)}
    assert 0 < policy.attempt_timeout_s(1.0) <= 1.0
    for c in (ctx(), ctx(time_left_s=0.0)):
        for hook in (policy.on_connection_lost, policy.on_not_connected, policy.on_timeout,
                     policy.on_no_primary):
            assert isinstance(hook(c), Reaction)
        assert isinstance(policy.on_error("ERR_INVALID_STATE", c), Reaction)
    assert isinstance(policy.on_unresponsive(), Reaction)
    assert all(0 <= policy.backoff_s(n) < math.inf for n in (1, 2, 100))
    assert policy.config_apply in (APPLY_GO, APPLY_REPLACE)
    policy.session_rules()
    assert hasattr(policy.make_refresher(_FakeRouting(), 1.0), "request")


class _FakeRouting:
    """Enough of a TableRouting for building refreshers."""

    generation = 0
    last_start = last_end = float("-inf")
    in_flight = scheduled = last_changed = False
