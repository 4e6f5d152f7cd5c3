"""Refreshers: each policy's pacing of meta queries, against a real (in-process) meta."""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.pegasus.meta import MetaSession
from loadgen.pegasus.refresh import (FD_SLACK_S, FailureDetector, FailureDetectorPoller,
                                     GoTriggerLoop, MetaPoller, PacedQuery, Silence)
from loadgen.pegasus.routing import TableRouting
from loadgen.testing.cluster import TestCluster

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


# --------------------------------------------------------------------------- failure detector

FD = FailureDetector(beacon_s=0.1, check_s=0.05, grace_s=1.5)


class _Routing:
    """Just what the poller's schedule reads: the last query's start."""

    def __init__(self, last_start: float = float("-inf")):
        self.last_start = last_start


def schedule(interval_s: float, silence: Silence, queries: int) -> list[float]:
    """The instants of ``queries`` queries in a row, each one made when it is due."""
    routing = _Routing()
    poller = FailureDetectorPoller(routing, interval_s, FD)
    instants = []
    for _ in range(queries):
        routing.last_start = poller.next_query(silence)
        instants.append(routing.last_start)
    return instants


def test_the_fd_window_opens_grace_minus_beacon_after_last_heard_and_closes_grace_plus_check_after_gone():
    first, last = FD.window(Silence(heard=10.0, gone=10.2))
    assert first == pytest.approx(10.0 + 1.5 - 0.1)
    assert last == pytest.approx(10.2 + 1.5 + 0.05 + FD_SLACK_S)


@pytest.mark.parametrize("interval_s", [0.01, 0.03, 0.05, 0.1, 1.0])
def test_fd_poller_asks_nothing_before_the_window_and_lays_its_grid_back_from_its_end(interval_s):
    silence = Silence(heard=100.0, gone=100.0)
    first, last = FD.window(silence)
    in_window = [t for t in schedule(interval_s, silence, 40) if t <= last + 1e-9]
    assert in_window[-1] == pytest.approx(last)            # the last query: when it must be there
    assert in_window[0] >= first - 1e-9                    # none before the meta can know
    assert in_window[0] - first < interval_s               # ... and none lost at the front
    gaps = [b - a for a, b in zip(in_window, in_window[1:])]
    assert all(g == pytest.approx(interval_s) for g in gaps)
    width = FD.beacon_s + FD.check_s + FD_SLACK_S
    assert len(in_window) <= width / interval_s + 1       # the cost bound the docstring states


def test_fd_poller_keeps_queries_a_step_apart_when_several_silences_interleave():
    """Every write stalls on a paused secondary: three primaries fall silent a few ms apart,
    their ops ask in turn. The queries stay >= a step apart, and each window still gets a
    query at most a step after its end."""
    routing = _Routing()
    poller = FailureDetectorPoller(routing, 0.01, FD)
    silences = [Silence(100.0 + d, 100.0 + d) for d in (0.0, 0.003, 0.0065)]
    instants = []
    for i in range(60):
        routing.last_start = poller.next_query(silences[i % 3])
        instants.append(routing.last_start)
    gaps = [b - a for a, b in zip(instants, instants[1:])]
    assert min(gaps) >= 0.01 * (1 - 2e-6)
    for s in silences:
        _, last = FD.window(s)
        assert any(last <= t <= last + 0.01 + 1e-9 for t in instants)


def test_fd_poller_past_the_window_asks_once_per_window_width_and_error_replies_are_paced_alone():
    silence = Silence(heard=100.0, gone=100.0)
    _, last = FD.window(silence)
    late = [t for t in schedule(0.01, silence, 40) if t > last + 1e-9]
    assert late and all(b - a == pytest.approx(FD.beacon_s + FD.check_s)
                        for a, b in zip(late, late[1:]))
    routing = _Routing(last_start=50.0)
    poller = FailureDetectorPoller(routing, 0.01, FD)
    assert poller.next_query(None) == pytest.approx(50.01)
    # A primary silent since long ago (an idle connection): its window is over, ask now.
    assert poller.next_query(Silence(heard=1.0, gone=1.0)) <= 50.0 + FD.beacon_s + FD.check_s


def test_fd_poller_on_a_real_meta_makes_no_query_for_a_short_silence_then_finds_the_move(routing):
    fd = FailureDetector(beacon_s=0.05, check_s=0.05, grace_s=0.3)
    poller = FailureDetectorPoller(routing, 0.02, fd)
    before, seen = queries(routing), routing.generation
    silence = Silence(heard=time.monotonic(), gone=time.monotonic())
    assert poller.request(seen, silence) and routing.scheduled
    gevent.sleep(0.2)  # < grace - beacon
    assert queries(routing) == before
    routing.cluster.move_primary(1, routing.cluster.replica_addrs[1])
    deadline = time.monotonic() + 2
    while routing.generation == seen or not routing.last_changed:
        assert time.monotonic() < deadline
        poller.request(routing.generation, silence)
        routing.next_result().wait(0.5)
    first, last = fd.window(silence)
    assert routing.last_start >= first - 0.01
    assert queries(routing) - before <= (last - first) / 0.02 + 2


def test_a_request_without_silence_brings_a_scheduled_fd_query_forward(routing):
    poller = FailureDetectorPoller(routing, 0.02, FD)
    before = queries(routing)
    now = time.monotonic()
    poller.request(routing.generation, Silence(now, now))  # due in ~1.4 s
    assert routing.scheduled and queries(routing) == before
    poller.request(routing.generation)                      # an error reply: due now
    assert routing.next_result().wait(2) and queries(routing) == before + 1


def test_a_query_scheduled_for_a_silent_primary_is_dropped_once_it_speaks_again(routing):
    """A pause shorter than the window: the primary answers again before the window opens,
    so the query its silence scheduled never goes out, and waiters wake to ask again."""
    fd = FailureDetector(beacon_s=0.05, check_s=0.05, grace_s=0.3)
    poller = FailureDetectorPoller(routing, 0.02, fd)
    before, spoke = queries(routing), []
    now = time.monotonic()
    poller.request(routing.generation, Silence(now, now, lambda: bool(spoke)))
    woken = routing.next_result()
    spoke.append(True)
    assert woken.wait(1)                                    # at the window: dropped, waiters woken
    gevent.sleep(0.1)
    assert queries(routing) == before and not routing.scheduled
