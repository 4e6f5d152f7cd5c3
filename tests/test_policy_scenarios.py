"""The failure scenarios for every built-in policy, through the policy matrix's own runners
(loadgen/bench/policies.py) on the in-process test cluster.

Writers put on a fixed schedule to partitions whose primary the fault hits; each row says
what one policy did. Bounds are relative to the op timeout or the policy's own intervals,
so a wrong model fails them: a failover that resends to a slow primary executes writes
twice, one that polls the meta per waiting op pays more with 50 writers than with 1, a
refresh-on-reset that refreshed on a deadline would recover from a reset, and so on.
"""

from __future__ import annotations

import pytest
from support.policy import POLICIES

from loadgen.bench.policies import SCENARIOS, Settings, in_process

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

OP_TIMEOUT_S = 0.4
#: pypegasus's check timer at twice the op timeout (upstream: 2 s, the op timeout's default is
#: 2 s too): within the run, as its 2 s would not be.
CHECK_S = 2 * OP_TIMEOUT_S
SETTINGS = Settings(op_timeout_ms=OP_TIMEOUT_S * 1000, writers=4, rate_per_writer=40,
                    before_s=0.3, after_s=1.6,
                    policy_params={"pypegasus": {"check_interval_s": CHECK_S}})
GAP_S = 1 / (SETTINGS.writers * SETTINGS.rate_per_writer)  # between two writes, all writers
GO = {"legacy", "refresh-on-timeout", "refresh-on-reset"}


def run(scenario: str, policy: str, settings: Settings = SETTINGS):
    return SCENARIOS[scenario][1](policy, settings)


@pytest.mark.parametrize("policy", POLICIES)
def test_slow_primary_completes_every_op_and_executes_each_write_once(policy):
    row = run("slow-primary", policy)
    assert row.ok > 0 and row.failed == 0
    assert row.writes_per_ack == 1.0
    assert row.attempts_per_op == 1.0
    if policy == "failover":  # told the FD timings: the meta cannot have moved it yet
        assert row.meta_queries_per_s == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_one_connection_reset(policy):
    row = run("connection-reset", policy)
    if policy in GO:
        # session.go: the calls on the reset connection wait for their deadline, and the
        # redial waits kDialInterval (60 s): no write succeeds for the rest of the run,
        # whatever triggers a refresh (the config did not change).
        assert row.first_ok_s is None and row.ok == 0 and row.failed > 0
    elif policy == "pypegasus":
        # pgclient.py: the calls wait for their time-out, and only a meta answer (a tick of
        # the check timer after the fifth time-out) reconnects the node.
        assert row.failed >= 5 and row.first_ok_s >= 0.9 * OP_TIMEOUT_S
        assert row.meta_queries_per_s <= 1 / CHECK_S + 1
    else:
        assert row.failed == 0 and row.first_ok_s < 0.25 * OP_TIMEOUT_S
        assert row.meta_queries_per_s < 5  # a redial, not a meta storm, fixed it
        if policy == "failover":  # the node spoke again before the meta could have moved it
            assert row.meta_queries_per_s == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_partition_moved(policy):
    row = run("partition-moved", policy)
    if policy == "pypegasus":  # the error flags a query for the next tick; no retry
        assert row.failed > 0 and row.first_ok_s < CHECK_S + 0.25 * OP_TIMEOUT_S
        return
    assert row.first_ok_s < 0.5 * OP_TIMEOUT_S
    if policy in GO:  # ERR_INVALID_STATE refreshes but fails the op (no retry)
        assert 0 < row.failed <= SETTINGS.writers
    else:  # refreshed and retried within the op
        assert row.failed == 0


def _down(cluster, settings):
    cluster.set_mode(cluster.replica_addrs[0], "down")


def _fail_over(cluster, settings):
    for pidx in range(cluster.partition_count):
        cluster.move_primary(pidx, cluster.replica_addrs[1])


#: A primary crashes; the meta names a new one ``GRACE_SHARE`` of an op timeout later.
GRACE_SHARE = 0.5
KILL = in_process("kill", _down, heal=_fail_over,
                  heal_after_s=lambda s: GRACE_SHARE * s.op_timeout_ms / 1000)


@pytest.mark.parametrize("policy", POLICIES)
def test_kill_with_failover_after_a_grace_period(policy):
    row = KILL(policy, SETTINGS)
    lag = row.first_ok_after_heal_s  # after the meta named the new primary
    if policy == "legacy":
        assert row.first_ok_s is None  # issue #1856: never refreshed, never recovered
    elif policy == "failover":  # polls every repoll_ms (10 ms) while the ops wait
        assert row.failed == 0 and lag < 0.01 + GAP_S + 0.1 * OP_TIMEOUT_S
    elif policy == "java":  # pending calls fail at once; meta queried every timeout/3
        assert lag < OP_TIMEOUT_S / 3 + 0.1 * OP_TIMEOUT_S
    elif policy == "pypegasus":  # time-outs first; then the next tick (tests/test_policy_pypegasus.py)
        assert row.failed > 0 and (row.first_ok_s is None or row.first_ok_s >= 0.9 * OP_TIMEOUT_S)
    else:  # a deadline (#1916) or a failed connect (#2286) must come first
        assert row.failed > 0 and row.first_ok_s >= (1 - GRACE_SHARE) * OP_TIMEOUT_S


def test_failover_at_the_java_clients_meta_cost_recovers_no_later_than_java():
    third_ms = SETTINGS.op_timeout_ms / 3
    cheap = Settings(**{**SETTINGS.__dict__, "policy_params": {"failover": {"repoll_ms": third_ms}}})
    java, failover = KILL("java", cheap), KILL("failover", cheap)
    assert failover.first_ok_after_heal_s <= java.first_ok_after_heal_s + 0.1 * OP_TIMEOUT_S
    assert failover.meta_queries_per_s <= java.meta_queries_per_s * 1.5 + 1
    assert failover.failed <= java.failed


#: The meta never notices within the run: the dead primary stays listed.
DEAD_LISTED = in_process("dead-listed", _down)


def test_failover_meta_queries_do_not_grow_with_the_number_of_waiting_writers():
    repoll_ms = 50
    rates = {}
    for writers in (1, 50):
        settings = Settings(**{**SETTINGS.__dict__, "writers": writers,
                               "policy_params": {"failover": {"repoll_ms": repoll_ms}}})
        row = DEAD_LISTED("failover", settings)
        assert row.ok == 0
        rates[writers] = row.meta_queries_per_s
    assert rates[1] <= 1000 / repoll_ms + 2
    assert rates[50] <= 1000 / repoll_ms + 2
    assert rates[50] <= 1.5 * rates[1] + 3, rates


def _pause(cluster, settings):
    cluster.set_mode(cluster.replica_addrs[0], "pause")


def _resume(cluster, settings):
    cluster.set_mode(cluster.replica_addrs[0], "ok")


PAUSE = in_process("pause-below-lease", _pause, heal=_resume,
                   heal_after_s=lambda s: 1.5 * s.op_timeout_ms / 1000)


def test_a_pause_below_the_lease_costs_failover_no_more_than_refresh_on_timeout():
    rot, failover = PAUSE("refresh-on-timeout", SETTINGS), PAUSE("failover", SETTINGS)
    # The backlog in the socket is served at resume: each op was sent once, not three times.
    assert failover.attempts_per_op == 1.0
    assert failover.writes_per_ack <= rot.writes_per_ack + 0.05
    assert failover.first_ok_after_heal_s <= rot.first_ok_after_heal_s + 0.1 * OP_TIMEOUT_S
