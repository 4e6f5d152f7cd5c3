"""Replica probe (loadgen/pegasus/probe.py): failover's ``probe_replicas`` asks a silent
primary's secondaries who is primary now, through the failure detector's window, instead of
the meta; the meta only after the window. On the in-process test cluster, whose replicas
answer a read only as the partition's primary."""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.errors import ConfigError, PegasusError
from loadgen.metrics import Recorder as MetricsRecorder, decode_state, encode_state
from loadgen.pegasus import Client, policies
from loadgen.pegasus.outcome import META, OK, PROBE, Outcome
from loadgen.pegasus.refresh import FD_SLACK_S
from loadgen.testing.cluster import Recorder, TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

BEACON_S, CHECK_S, GRACE_S = 0.05, 0.05, 0.4
STEP_S = 0.02
PARAMS = {"fd_beacon_ms": BEACON_S * 1000, "fd_check_ms": CHECK_S * 1000,
          "fd_grace_ms": GRACE_S * 1000, "repoll_ms": STEP_S * 1000}
OPEN_S, CLOSE_S = GRACE_S - BEACON_S, GRACE_S + CHECK_S + FD_SLACK_S   # the window, from the kill


def _kill(cluster: TestCluster, move_after_s: float | None) -> float:
    """Crash the primary of every partition; the 'meta' promotes the other replica
    ``move_after_s`` later (None: never). Returns the kill instant."""
    a, b = cluster.replica_addrs
    t_kill = time.monotonic()
    cluster.set_mode(a, "down")
    if move_after_s is not None:
        gevent.spawn_later(move_after_s, lambda: [cluster.move_primary(p, b)
                                                  for p in range(cluster.partition_count)])
    return t_kill


def _probing_client(cluster: TestCluster, recorder: Recorder, op_timeout_ms: float) -> Client:
    """A failover client with the probe, told the FD timings above."""
    return Client(cluster.meta_addrs, policy="failover", op_timeout_ms=op_timeout_ms,
                  observer=recorder, policy_params={**PARAMS, "probe_replicas": True})


def test_a_kill_is_found_by_asking_the_secondaries_and_costs_the_meta_nothing():
    recorder = Recorder()
    with TestCluster(replicas=2, partitions=4) as cluster:
        with _probing_client(cluster, recorder, 1500) as client:
            table = client.open_table("temp")
            pidx = table.partition_of(b"k")
            table.put(b"k", b"s", b"v1")                       # the primary was heard from
            t_kill = _kill(cluster, move_after_s=(OPEN_S + CLOSE_S) / 2)
            table.put(b"k", b"s", b"v2")                       # waits, then the new primary
            t_ok = time.monotonic()
            assert client.route("temp", pidx).primary == cluster.replica_addrs[1]
            assert table.get(b"k", b"s") == b"v2"
    metas = [o for o in recorder.outcomes if o.level == META and o.start > t_kill]
    probes = [o for o in recorder.outcomes if o.level == PROBE]
    assert metas == []
    assert probes and all(o.node == cluster.replica_addrs[1] for o in probes)
    assert min(o.start for o in probes) >= t_kill + OPEN_S - 0.01   # nothing before the window
    assert [o.outcome for o in probes][-1] == OK                    # the last said "primary"
    # the promotion is mid-window: found by the window's end, give or take a step and a round trip
    assert t_ok - t_kill < CLOSE_S + 2 * STEP_S + 0.05


def test_with_nobody_promoted_the_meta_is_asked_after_the_window_not_before():
    recorder = Recorder()
    with TestCluster(replicas=2, partitions=4) as cluster:
        with _probing_client(cluster, recorder, 1000) as client:
            table = client.open_table("temp")
            table.put(b"k", b"s", b"v1")
            t_kill = _kill(cluster, move_after_s=None)
            with pytest.raises(PegasusError):
                table.put(b"k", b"s", b"v2")                   # nobody is primary: it fails
    metas = [o.start - t_kill for o in recorder.outcomes if o.level == META and o.start > t_kill]
    probes = [o for o in recorder.outcomes if o.level == PROBE]
    assert probes and all(o.outcome != OK for o in probes)
    assert metas and min(metas) >= CLOSE_S


def test_probing_needs_the_failure_detector_timings():
    with pytest.raises(ConfigError) as info:
        policies.create("failover", {"probe_replicas": True})
    assert info.value.key == "policy_params.probe_replicas"
    with pytest.raises(ConfigError):
        policies.create("failover", {**PARAMS, "probe_replicas": "yes"})


def test_the_metrics_recorder_counts_probes_as_replica_queries():
    recorder = MetricsRecorder()
    for outcome in (OK, "fail"):
        recorder.record(Outcome(level=PROBE, op="probe", table="temp", partition=0, node="n",
                                start=1.0, end=1.001, outcome=outcome, error=None, attempt=1,
                                refreshed=False, policy="failover"))
    state = recorder.snapshot()
    assert state.policies["failover"].replica_queries == 2
    assert decode_state(encode_state(state)).policies["failover"].replica_queries == 2
