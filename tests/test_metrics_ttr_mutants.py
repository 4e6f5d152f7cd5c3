"""TTR's window grid, stable windows and table choice on hand-built series with known answers.

Written from the mutants of ``loadgen/metrics/ttr.py`` that the scenario tests of
tests/test_metrics_ttr.py let survive (issue 19): each test states a number or a verdict a
report shows, which the mutant changed. Series slots are (ok, failed, unknown) counts.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from support.metrics import record_in_end_order, writes

from loadgen.metrics import FaultEvent, Recorder
from loadgen.metrics.series import Series
from loadgen.metrics.ttr import (event_ttrs, is_good, resolve_table, stable_windows, ttr_stable,
                                 window_counts)

pytestmark = pytest.mark.unit


def _series(**coarse) -> Series:
    return Series(width=3, coarse={int(sec[1:]): c for sec, c in coarse.items()})


# --------------------------------------------------------------------------- window_counts


def test_a_bucket_counts_in_every_window_it_overlaps_in_proportion():
    s = _series(s99=(7, 0, 0), s100=(10, 0, 0), s101=(8, 1, 1), s102=(4, 0, 0))
    # windows from 100.5: [100.5, 101.5) holds half of second 100 and half of 101
    assert window_counts(s, 100.5, 3) == [(9.0, 10.0), (6.0, 7.0), (2.0, 2.0)]
    # second 99 ends at t_inject: not in any window
    assert window_counts(s, 100.0, 3) == [(10.0, 10.0), (8.0, 10.0), (4.0, 4.0)]
    assert window_counts(s, 100.5, 2, window_s=0.5) == [(5.0, 5.0), (4.0, 5.0)]


def test_failed_and_unknown_writes_count_in_the_total_only():
    s = _series(s100=(3, 2, 5))
    assert window_counts(s, 100.0, 1) == [(3.0, 10.0)]


def test_no_series_or_no_window_counts_nothing():
    assert window_counts(None, 100.0, 2) == [(0.0, 0.0), (0.0, 0.0)]
    assert window_counts(_series(s100=(5, 0, 0)), 100.0, 0) == []
    assert window_counts(_series(), 100.0, 2) == [(0.0, 0.0), (0.0, 0.0)]


def test_a_share_is_rounded_to_a_millionth():
    # 15 writes in a second, windows of a third: 5 writes each, enough for a good window
    # (unrounded, the first is 4.99999999999993: too few)
    counts = window_counts(_series(s100=(15, 0, 0)), 100.0, 3, window_s=1 / 3)
    assert counts == [(5.0, 5.0)] * 3
    assert all(is_good(*c) for c in counts)


def test_a_share_of_a_bucket_may_be_a_fraction_of_a_write():
    # half-second windows over 1 s buckets: each holds half of its second, ok ones included
    assert window_counts(_series(s100=(5, 0, 0)), 100.0, 2, 0.5) == [(2.5, 2.5)] * 2


def test_buckets_after_the_last_window_do_not_count():
    s = _series(s100=(5, 0, 0), s101=(5, 0, 0), s102=(50, 0, 0))
    assert window_counts(s, 100.0, 2) == [(5.0, 5.0), (5.0, 5.0)]


def test_fine_buckets_land_in_their_window():
    fine = [0] * 300
    fine[10 * 3] = 4        # 10 ms bucket 10: [100.10, 100.11)
    fine[60 * 3 + 1] = 2    # bucket 60, failed
    s = Series(width=3, coarse={100: (4, 2, 0)}, fine={100: tuple(fine)})
    assert window_counts(s, 100.05, 2, window_s=0.5) == [(4.0, 4.0), (0.0, 2.0)]


# --------------------------------------------------------------------------- TTR-stable


def test_stable_windows_stop_at_the_last_fully_observed_second():
    s = _series(**{f"s{sec}": (20, 0, 0) for sec in range(100, 106)})
    # horizon 104.5: second 104 is not fully observed; windows [100,101) .. [103,104)
    assert stable_windows(s, 100.0, 104.5) == [(20.0, 20.0)] * 4


def test_ttr_stable_is_the_first_window_of_the_good_run_and_never_before_first():
    s = _series(s100=(0, 0, 20), s101=(0, 0, 20), **{f"s{sec}": (20, 0, 0)
                                                   for sec in range(102, 110)})
    assert ttr_stable(s, 100.0, 110.0, first_s=0.5) == (2.0, True)
    assert ttr_stable(s, 100.0, 110.0, first_s=3.25) == (3.25, True)
    # window_s changes the index to seconds: 2 s windows, the good run starts at window 1
    assert ttr_stable(s, 100.0, 110.0, 2.0, first_s=0.5) == (2.0, True)


def test_ttr_stable_not_recovered_reports_the_time_observed():
    s = _series(**{f"s{sec}": (20, 0, 0) for sec in range(100, 110)})
    assert ttr_stable(s, 100.0, 107.0, first_s=None) == (7.0, False)   # first never came
    bad = _series(**{f"s{sec}": (0, 20, 0) for sec in range(100, 110)})
    assert ttr_stable(bad, 100.0, 107.0, first_s=0.5) == (7.0, False)


# --------------------------------------------------------------------------- resolve_table


def _state(*tables: str):
    r = Recorder()
    history = []
    for k, table in enumerate(tables):
        history += [replace(o, table=table) for o in writes(90 + k, 91 + k)]
    record_in_end_order(r, history)
    return r.snapshot()


def test_the_table_is_the_named_one_or_the_only_one_written_to():
    assert resolve_table(_state("temp"), None) == "temp"
    assert resolve_table(_state("a", "b"), "b") == "b"
    assert resolve_table(_state(), None) == ""


def test_several_tables_and_none_named_is_an_error_naming_them():
    with pytest.raises(ValueError) as info:
        resolve_table(_state("b", "a"), None)
    assert str(info.value) == "writes went to several tables ['a', 'b']: name one"


# --------------------------------------------------------------------------- event_ttrs


def _kill(t=100.0, *, partitions=(3,), failover_s=0.8):
    return FaultEvent(id="f1", kind="kill", node="replica1", t_inject=t, t_heal=t + failover_s,
                      affected_partitions=partitions,
                      server_failover_s={p: failover_s for p in partitions})


def test_event_ttrs_reads_the_named_table():
    history = [replace(o, table="other") for o in writes(90, 120, ok=lambda t: t >= 101)]
    history += writes(90, 120, ok=lambda t: t >= 100.5)         # table "temp"
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    [ttr] = event_ttrs(r.snapshot(), [_kill()], t_end=120.0, table="other")
    assert ttr.first_s == pytest.approx(1.0025 + 0.003, abs=1e-9)
    assert ttr.stable_s == pytest.approx(ttr.first_s) and ttr.stable_recovered


def test_event_ttrs_windows_follow_window_s():
    history = writes(90, 120, ok=lambda t: not 100 <= t < 100.4)
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    [one] = event_ttrs(r.snapshot(), [_kill()], t_end=120.0)
    [half] = event_ttrs(r.snapshot(), [_kill()], t_end=120.0, window_s=0.5)
    assert one.stable_s == 1.0 and half.stable_s == 0.5


def test_a_lost_fault_instant_names_the_event_partition_and_policy():
    r = Recorder()
    record_in_end_order(r, writes(90, 120))
    with pytest.raises(ValueError, match=r"^fault event f1, partition 3, policy failover: "):
        event_ttrs(r.snapshot(), [_kill()], t_end=120.0)


def test_a_lag_is_negative_only_below_zero():
    history = writes(90, 120, ok=lambda t: not 100 <= t < 100.5)
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    [ttr] = event_ttrs(r.snapshot(), [_kill()], t_end=120.0)
    # the server failed over exactly when the client's first write came back: lag 0
    [same] = event_ttrs(r.snapshot(), [_kill(failover_s=ttr.first_s)], t_end=120.0)
    assert same.lag_s == 0.0 and not same.lag_negative
    no_failover = FaultEvent(id="f1", kind="kill", node="replica1", t_inject=100.0,
                             t_heal=None, affected_partitions=(3,))
    [unknown] = event_ttrs(r.snapshot(), [no_failover], t_end=120.0)
    assert unknown.lag_s is None and not unknown.lag_negative


# --------------------------------------------------------------------------- offered load


@pytest.mark.parametrize("window_s", [1.0, 0.5])
@pytest.mark.parametrize("elsewhere_until", [139.0, 140.6])
def test_a_window_where_the_policy_wrote_only_elsewhere_is_bad(elsewhere_until, window_s):
    # partition 3 silent from 138; the policy wrote partition 4 until 139 (then stopped) or
    # to the end: a window in [138, 139) was offered load and is bad, one after the policy
    # stopped was not (unobserved, dropped); with 1 s and half-second windows alike
    history = writes(90, 138, ok=lambda t: not 100 <= t < 100.85)
    history += writes(90, elsewhere_until, partition=4)
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    [ttr] = event_ttrs(r.snapshot(), [_kill()], t_end=140.6, window_s=window_s)
    assert ttr.recovered and not ttr.stable_recovered and ttr.stable_s == pytest.approx(40.6)


@pytest.mark.parametrize("window_s", [1.0, 0.5])
@pytest.mark.parametrize("resumed_at", [112.0, 110.2])
def test_load_offered_only_after_the_horizon_does_not_make_empty_windows_bad(resumed_at,
                                                                              window_s):
    # The policy paused all load in [107, resumed_at); the next fault on partition 3 came at
    # 110: the windows of [107, 110) saw no op of the policy, they are unobserved, not bad
    # (offered load is looked for in each window alone, not anywhere up to the end)
    history = writes(90, 107, ok=lambda t: not 100 <= t < 100.85) + writes(resumed_at, 120)
    second = FaultEvent(id="f2", kind="kill", node="replica1", t_inject=110.0, t_heal=110.5,
                        affected_partitions=(3,), server_failover_s={3: 0.5})
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,)), (110.0, (3,))])
    ttrs = event_ttrs(r.snapshot(), [_kill(), second], t_end=120.0, window_s=window_s)
    first = next(t for t in ttrs if t.event_id == "f1")
    assert first.t_horizon == 110.0
    assert first.stable_recovered and first.stable_s == 1.0


def test_a_window_is_good_from_99_percent_ok():
    assert is_good(99, 100) and is_good(198, 200)
    assert not is_good(197, 200)           # 98.5 %
    assert not is_good(4, 4) and is_good(5, 5)


def test_the_grid_reaches_into_a_second_kept_in_10_ms_detail():
    # a later fault at 101.5 kept second 101 in 10 ms buckets: the grid of half-second
    # windows reaches 101.5, three good windows: stable. Cut at the whole second, only two.
    fine = [0] * 300
    for k in range(50):                 # 10 ms buckets 101.00 .. 101.49: one ok write each
        fine[3 * k] = 1
    s = Series(width=3, coarse={100: (20, 0, 0), 101: (50, 0, 0)}, fine={101: tuple(fine)})
    assert stable_windows(s, 100.0, 101.5, 0.5) == [(10.0, 10.0), (10.0, 10.0), (50.0, 50.0)]
    assert ttr_stable(s, 100.0, 101.5, 0.5, first_s=0.1) == (0.1, True)
