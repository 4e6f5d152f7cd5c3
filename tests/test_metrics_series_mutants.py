"""Outcome series: seconds that close and reopen, late faults, bucket ranges, instant lookup.

Written from the mutants of ``loadgen/metrics/series.py`` that the recorder, state and TTR
tests let survive (issue 19): each test states what the recorder state, timeline.json or the
TTR analysis reads, which the mutant changed. Policy series slots are (ok, fail, unknown,
attempts, meta); a partition's are (ok, fail, unknown).
"""

from __future__ import annotations

from collections import Counter

import pytest
from support.metrics import TABLE, op, record_in_end_order, writes

from loadgen.metrics import PartitionTimeline, Recorder, Series, build_timeline, hdr
from loadgen.metrics.series import FINE_PER_S

pytestmark = pytest.mark.unit


def _response_bins(ops) -> Counter:
    return Counter(hdr.coarse_index(int((o.end - o.intended_start) * 1e6 + 0.5)) for o in ops)


def _check_second(state, sec: int, ops) -> None:
    """Second ``sec`` holds exactly ``ops`` (all ok writes on partition 3), in its 1 s totals,
    its 10 ms detail and its response-time histogram."""
    p = state.policies["failover"]
    n = len(ops)
    assert p.series.coarse[sec] == (n, 0, 0, n, 0)
    assert p.latency[sec] == _response_bins(ops)
    timeline = p.partitions[(TABLE, 3)].series
    assert timeline.coarse[sec] == (n, 0, 0)
    for series in (p.series, timeline):
        fine = series.fine[sec]
        assert [sum(fine[slot::series.width]) for slot in range(series.width)] == list(
            series.coarse[sec])
    per_second = build_timeline(state, [], t_start=0.0, t_end=200.0)["policies"]["failover"][
        "per_second"]
    k = per_second["t"].index(float(sec))
    assert per_second["ops"][k] == n
    assert per_second["p99_response_ms"][k] > 55_000     # the slow ops are the top percent


def test_ops_slower_than_recent_s_still_count_in_their_intended_second():
    """An op answered more than RECENT_S after its intended start (queued behind a stall)
    reopens its closed second: the second's ops, 10 ms detail and response times then hold
    the earlier ops and the late one, before and after the second closes again."""
    r = Recorder()
    r.fault_at(10.0, (3,))                                # keeps 10 ms detail of second 10
    early = writes(10, 11)
    slow = op(10.0125, start=68.0, end=69.0)              # 59 s: in before second 10 closes
    late = op(10.9525, start=70.5, end=71.5)              # 60.5 s: after it closed (~71.0)
    record_in_end_order(r, early + [slow] + writes(11, 71.5, partition=5) + [late])
    _check_second(r.snapshot(), 10, early + [slow, late])          # closed part + reopened part
    record_in_end_order(r, writes(71.5, 80, partition=5))
    _check_second(r.snapshot(), 10, early + [slow, late])          # closed again: merged


def test_a_fault_announced_fine_window_s_late_keeps_its_whole_10ms_window():
    """A fault instant may reach the recorder up to RECENT_S - FINE_WINDOW_S after it
    happened (a worker hears of it through the master) and still gets 10 ms detail for every
    second of the FINE_WINDOW_S before it."""
    r = Recorder()
    record_in_end_order(r, writes(60, 130.5))
    r.fault_at(100.0, (3,))                               # 30.5 s late
    fine = r.snapshot().policies["failover"].partitions[(TABLE, 3)].series.fine
    assert set(fine) == set(range(70, 130))


# --------------------------------------------------------------------------- Series.buckets


def _fine(sec: int, **buckets: tuple[int, int, int]) -> tuple[int, ...]:
    counts = [0] * (FINE_PER_S * 3)
    for name, c in buckets.items():
        k = int(name[1:])
        counts[k * 3:(k + 1) * 3] = c
    return tuple(counts)


def test_buckets_are_those_starting_in_the_half_open_range():
    s = Series(width=3, coarse={99: (4, 0, 0), 100: (3, 2, 0), 101: (5, 0, 0), 102: (6, 0, 0)},
               fine={100: _fine(100, b10=(3, 0, 0), b20=(0, 2, 0))})
    assert list(s.buckets()) == [(99.0, 1.0, (4, 0, 0)), (100.1, 0.01, (3, 0, 0)),
                                 (100.2, 0.01, (0, 2, 0)), (101.0, 1.0, (5, 0, 0)),
                                 (102.0, 1.0, (6, 0, 0))]
    # a 1 s bucket starting before t_from is out, even when t_from lies inside it
    assert [b[0] for b in s.buckets(99.5, 102.0)] == [100.1, 100.2, 101.0]
    # a bucket starting at t_from is in, one starting at t_to is out (10 ms and 1 s alike)
    assert [b[0] for b in s.buckets(100.1, 100.2)] == [100.1]
    assert [b[0] for b in s.buckets(101.0, 102.0)] == [101.0]


def test_empty_seconds_are_skipped():
    s = Series(width=3, coarse={5: (0, 0, 0), 6: (1, 0, 0)})
    assert list(s.buckets(5.0, 7.0)) == [(6.0, 1.0, (1, 0, 0))]


# --------------------------------------------------------------------------- first_ok_end_after


def test_a_fault_instant_after_a_float_round_trip_still_finds_its_first_success():
    timeline = PartitionTimeline(first_ok={100.123456789: 101.5})
    assert timeline.first_ok_end_after(100.123456789 + 2e-9) == 101.5
    assert timeline.first_ok_end_after(100.123456789 - 2e-9) == 101.5


def test_an_unregistered_instant_is_an_error_saying_how_to_register_it():
    timeline = PartitionTimeline(first_ok={100.0: 101.5})
    with pytest.raises(LookupError) as info:
        timeline.first_ok_end_after(42.0)
    assert str(info.value) == ("no fault instant 42.0 was registered with the recorder "
                               "(Recorder.fault_at): its first-success time is unknown")
