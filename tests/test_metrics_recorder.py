"""The recorder: histograms, counters, timelines, exact first-success times, bounded memory."""

from __future__ import annotations

import pytest
from support.metrics import TABLE, attempt, meta, op, record_in_end_order, writes

from loadgen.metrics import Recorder, hdr
from loadgen.metrics.series import FINE_PER_S, FINE_WINDOW_S, RECENT_S

pytestmark = pytest.mark.unit


def _hist_values(hist) -> list[int]:
    return [hist.get_value_from_index(i) for i in range(hist.counts_len)
            for _ in range(hist.counts[i])]


def test_service_and_response_times_in_microseconds():
    r = Recorder()
    # intended at 10.0, started 0.5 s late (coordinated omission), served in 2 ms
    r.record(op(10.0, start=10.5, end=10.502))
    r.record(op(11.0, end=11.004, intended=False))     # no schedule: response = service
    r.record(op(12.0, end=12.001, name="get"))
    state = r.snapshot().policies["failover"]
    assert _hist_values(state.histograms[("put", "service")]) == [2000, 4000]
    response = _hist_values(state.histograms[("put", "response")])
    assert response[0] == 4000 and hdr.counts_index(response[1]) == hdr.counts_index(502_000)
    assert state.histograms[("get", "service")].get_total_count() == 1
    assert state.clamped == 0


def test_out_of_range_latencies_are_clamped_and_counted():
    r = Recorder()
    r.record(op(10.0, end=10.0))                       # 0 µs
    r.record(op(20.0, end=20.0 + 2 * 3600))            # two hours
    state = r.snapshot().policies["failover"]
    service = state.histograms[("put", "service")]
    assert service.get_total_count() == 2               # kept, not silently dropped
    assert state.clamped == 4                           # service and response of both
    assert service.get_max_value() >= hdr.HIGHEST_US


def test_counters_by_outcome_error_attempt_and_meta():
    r = Recorder()
    for o in [op(1.0), op(1.1, ok=False, attempt=3), op(1.2, outcome="fail",
                                                          error="ERR_INVALID_STATE", attempt=2),
              op(1.3, policy="legacy", ok=False),
              attempt(1.0, ok=False), attempt(1.05), meta(1.0), meta(1.01, ok=False),
              meta(1.5, policy="legacy")]:
        r.record(o)
    state = r.snapshot()
    f, legacy = state.policies["failover"], state.policies["legacy"]
    assert (f.ops, f.attempts) == (3, 6)
    assert f.outcomes == {"ok": 1, "fail": 1, "unknown": 1}
    assert f.errors == {"ERR_TIMEOUT": 1, "ERR_INVALID_STATE": 1}
    assert f.attempt_outcomes == {"ok": 1, "fail": 0, "unknown": 1}
    assert f.attempt_errors == {"ERR_SESSION_RESET": 1}
    assert (f.meta_queries, f.meta_failed) == (2, 1)
    assert (legacy.ops, legacy.meta_queries, legacy.errors) == (1, 1, {"ERR_TIMEOUT": 1})
    # attempt-level records are counted only: the histograms hold the 3 ops
    assert f.histograms[("put", "service")].get_total_count() == 3
    # the policy series: ok, fail, unknown, attempts, meta of second 1
    assert f.series.coarse[1] == (1, 1, 1, 6, 2)
    assert f.errors_by_second == {1: {"ERR_TIMEOUT": 1, "ERR_INVALID_STATE": 1}}


def test_reads_feed_histograms_but_not_partition_timelines():
    r = Recorder()
    r.record(op(5.0, name="get"))
    r.record(op(5.0, name="multi_put", partition=1))
    state = r.snapshot().policies["failover"]
    assert set(state.partitions) == {(TABLE, 1)}
    assert state.series.coarse[5][0] == 2


def test_reset_after_warmup_drops_everything_but_fault_instants():
    r = Recorder()
    r.fault_at(5.0)
    for o in writes(0, 10):
        r.record(o)
    r.reset()
    for o in writes(10, 12):
        r.record(o)
    state = r.snapshot()
    p = state.policies["failover"]
    assert p.ops == 40 and p.histograms[("put", "service")].get_total_count() == 40
    assert min(p.series.coarse) == 10
    assert state.faults == ((5.0, None),)


def test_first_success_after_a_fault_is_exact():
    r = Recorder()
    history = writes(90, 100) + writes(100, 110, ok=lambda t: t >= 101.3)
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    expected = min(o.end for o in history if o.outcome == "ok" and o.end > 100.0)
    assert timeline.first_ok_end_after(100.0) == expected == pytest.approx(101.3 + 0.0025 + 0.003)
    with pytest.raises(LookupError):
        timeline.first_ok_end_after(42.0)


def test_a_fault_announced_late_still_gets_its_exact_first_success():
    r = Recorder()
    history = writes(90, 100) + writes(100, 130, ok=lambda t: t >= 100.5)
    for o in sorted(history, key=lambda o: o.end):
        r.record(o)
    r.fault_at(100.0, (3,))            # 30 s late, still within RECENT_S
    for o in writes(130, 135):
        r.record(o)
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == pytest.approx(100.5 + 0.0025 + 0.003)


def test_ends_out_of_order_still_give_the_earliest_success():
    r = Recorder()
    r.fault_at(100.0, (3,))
    r.record(op(100.2, end=100.9))     # arrives first, ends later
    r.record(op(100.3, end=100.4))
    r.record(op(200.0))                # maintenance runs, the instant settles
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == 100.4


def test_fine_detail_is_kept_near_faults_only_and_agrees_with_seconds():
    r = Recorder()
    record_in_end_order(r, writes(0, 300), faults=[(150.0, (3,))])
    state = r.snapshot().policies["failover"]
    fine = state.partitions[(TABLE, 3)].series.fine
    assert set(fine) == set(range(int(150 - FINE_WINDOW_S), int(150 + FINE_WINDOW_S)))
    for series in (state.series, state.partitions[(TABLE, 3)].series):
        assert sum(c[0] for c in series.coarse.values()) == 300 * 20
        for sec, counts in series.fine.items():
            for slot in range(series.width):
                assert sum(counts[slot::series.width]) == series.coarse[sec][slot]
    # another partition's faults do not keep detail here
    r2 = Recorder()
    record_in_end_order(r2, writes(0, 300, partition=5), faults=[(150.0, (3,))])
    assert r2.snapshot().policies["failover"].partitions[(TABLE, 5)].series.fine == {}


class _Mutable:
    """An Outcome-shaped record reused for every op (the hour below would otherwise spend
    its time building objects)."""

    __slots__ = ("level", "op", "table", "partition", "start", "end", "outcome", "error",
                 "attempt", "policy", "intended_start")


def test_memory_stays_bounded_over_a_simulated_hour():
    rate, hour, fault_every_s = 300, 3600, 600       # ops/s, like the ci profile per policy
    r = Recorder()
    o = _Mutable()
    o.level, o.op, o.table, o.policy, o.attempt, o.error = "op", "put", TABLE, "failover", 1, None
    entries_at = {}
    for k in range(hour * rate):
        t = 1000.0 + k / rate
        if k % (fault_every_s * rate) == fault_every_s * rate // 2:
            r.fault_at(t, (k % 8,))
            r.heal_at(t + 5, (k % 8,))
        o.partition = k % 8
        o.start = o.intended_start = t
        o.end = t + 0.004
        o.outcome = "ok"
        r.record(o)
        if k + 1 in (hour * rate // 2, hour * rate):
            entries_at[k + 1] = r.stored_entries()
    half, full = entries_at[hour * rate // 2], entries_at[hour * rate]
    series = 1 + 8                       # the policy's + one per partition
    faults = hour // fault_every_s
    # per series: one 1 s total per second, 10 ms chunks for the fault windows, the open
    # tail; plus each partition's buffered ok ends (RECENT_S of them) and fault instants
    bound = (series * (2 * hour + 2 * RECENT_S + 2)
             + faults * 2 * (2 * FINE_WINDOW_S + 1) * 2
             + (RECENT_S + 2) * rate + faults * 8)
    assert full <= bound
    assert full < hour * rate / 10       # far below one entry per op
    assert full <= 2.2 * half            # grows with time, not with anything else
    state = r.snapshot().policies["failover"]
    assert state.ops == hour * rate
    assert sum(len(t.series.fine) for t in state.partitions.values()) <= (
        faults * 2 * (2 * FINE_WINDOW_S + 1) + 8 * (RECENT_S + 2))
    assert FINE_PER_S == 100
