"""Refreshers: each policy's pacing of meta queries, against a real (in-process) meta."""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.pegasus.meta import MetaSession
from loadgen.pegasus.refresh import GoTriggerLoop, MetaPoller, PacedQuery
from loadgen.pegasus.routing import TableRouting
from loadgen.pegasus.testing import TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture
def routing():
    with TestCluster(replicas=2, partitions=4) as cluster:
        meta = MetaSession(cluster.meta_addrs)
        routing = TableRouting("temp", meta)
        routing.load(time.monotonic() + 2)
        routing.cluster = cluster
        yield routing
        routing.close()
        meta.close()


def queries(routing) -> int:
    return routing._meta.queries


def test_go_trigger_loop_drops_triggers_during_a_query_and_keeps_one_during_the_pause(routing):
    """table_connector.go: tryConfUpdate's channel has capacity 1; loopForAutoUpdate's
    selfUpdate flushes it after the query, then sleeps 1 s (here pause_s)."""
    loop = GoTriggerLoop(routing, pause_s=0.3)
    before = queries(routing)
    loop.request(routing.generation)  # idle loop: queries at once
    assert routing.in_flight
    loop.request(routing.generation)  # during the query: flushed
    assert routing.next_result().wait(2) and queries(routing) == before + 1
    for _ in range(3):  # during the pause: one trigger kept
        loop.request(routing.generation)
    gevent.sleep(0.15)
    assert queries(routing) == before + 1 and routing.scheduled
    gevent.sleep(0.3)
    assert queries(routing) == before + 2 and not routing.scheduled


def test_paced_query_turns_down_requests_in_flight_too_soon_or_already_answered(routing):
    """TableHandler.tryQueryMeta: inQuerying_, lastQueryTime_ + max(1, timeout/3), and
    updateVersion > cachedConfigVersion each turn a request down; nothing is kept."""
    paced = PacedQuery(routing, min_interval_s=0.2)
    seen = routing.generation
    before = queries(routing)
    assert paced.request(seen) and routing.in_flight
    assert not paced.request(seen)  # one in flight
    assert routing.next_result().wait(2)
    assert not paced.request(routing.generation)  # too soon
    gevent.sleep(0.25)
    assert not paced.request(seen)  # the config is already newer than the caller's
    assert queries(routing) == before + 1  # the turned-down requests were not kept
    assert paced.request(routing.generation)
    assert routing.next_result().wait(2) and queries(routing) == before + 2


def test_meta_poller_caps_queries_however_many_ops_ask(routing):
    """failover: at most one query in flight and one per interval per table: 50 askers cost
    what one costs."""
    interval_s, run_s = 0.05, 0.5

    def ask_for(duration_s: float) -> None:
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            poller.request(routing.generation)
            routing.next_result().wait(0.01)

    for askers in (1, 50):
        poller = MetaPoller(routing, interval_s)
        before = queries(routing)
        gevent.joinall([gevent.spawn(ask_for, run_s) for _ in range(askers)])
        gevent.sleep(0.1)  # the last scheduled one lands
        made = queries(routing) - before
        assert 0.5 * run_s / interval_s <= made <= run_s / interval_s + 2, (askers, made)


def test_meta_poller_backs_off_while_nothing_changes_and_snaps_back_on_a_change(routing):
    poller = MetaPoller(routing, 0.02, max_interval_s=0.08)
    intervals = []
    for _ in range(5):
        poller.request(routing.generation)
        assert routing.next_result().wait(2)
        intervals.append(poller.interval_s)
    assert intervals[0] == pytest.approx(0.02) and max(intervals) == pytest.approx(0.08)
    assert intervals == sorted(intervals)
    routing.cluster.move_primary(1, routing.cluster.replica_addrs[1])
    poller.request(routing.generation)  # this answer changes something
    assert routing.next_result().wait(2)
    poller.request(routing.generation)
    assert poller.interval_s == pytest.approx(0.02)
