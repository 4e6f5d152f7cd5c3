"""Open-loop pacing (wrk2-style): intended starts fixed in advance, backlog, missed ops."""

from __future__ import annotations

import random

import pytest

from loadgen.load.pacing import OpenLoopSchedule

pytestmark = pytest.mark.unit


def test_ops_are_due_at_start_plus_k_over_rate_with_a_phase():
    s = OpenLoopSchedule.with_phase(100.0, rate_per_s=50, max_lag_s=10, phase=0.5)
    assert s.due_at(0) == pytest.approx(100.01)
    assert s.due_at(7) == pytest.approx(100.01 + 7 / 50)
    assert s.take(100.0) is None                     # not due yet
    assert s.delay(100.0) == pytest.approx(0.01)
    due = s.take(100.0105)
    assert (due.k, due.missed) == (0, 0) and due.t_intended == pytest.approx(100.01)
    assert s.delay(100.0105) == pytest.approx(0.0195)


def test_random_phases_keep_users_out_of_lockstep():
    rng = random.Random(1)
    firsts = [OpenLoopSchedule.with_phase(0.0, 10, 10, rng.random()).due_at(0) for _ in range(50)]
    assert len({round(t, 6) for t in firsts}) == 50
    assert all(0 <= t < 0.1 for t in firsts)


def test_a_stall_leaves_a_backlog_issued_back_to_back_from_each_intended_start():
    s = OpenLoopSchedule(0.0, rate_per_s=10, max_lag_s=5)
    assert s.take(0.0).k == 0
    # the op stalled for 1 s: ops 1..10 came due meanwhile and go out at once, in order,
    # each keeping its own intended start (so the stall shows in every response time)
    now = 1.0
    backlog = []
    while (due := s.take(now)) is not None:
        backlog.append(due)
        now += 0.001
    assert [d.k for d in backlog] == list(range(1, 11))
    assert [d.t_intended for d in backlog] == pytest.approx([k / 10 for k in range(1, 11)])
    assert sum(d.missed for d in backlog) == 0
    assert s.delay(now) > 0                         # caught up: waits for op 11


def test_ops_more_than_max_lag_behind_are_counted_as_missed_never_skipped_silently():
    s = OpenLoopSchedule(0.0, rate_per_s=100, max_lag_s=2)
    s.take(0.0)
    due = s.take(1000.0)                            # a 1000 s stall: arithmetic, no loop
    assert due.t_intended >= 1000.0 - 2 and due.t_intended <= 1000.0
    assert due.missed == due.k - 1
    assert s.missed == due.missed
    # every op is issued or missed: none vanishes
    issued = 2
    now = 1000.0
    while s.take(now) is not None:
        issued += 1
    assert issued + s.missed == s.next_k
    assert s.next_k == pytest.approx(1000 * 100, abs=2)


def test_max_lag_below_one_interval_never_issues_early():
    s = OpenLoopSchedule(0.0, rate_per_s=1, max_lag_s=0)
    s.take(0.0)
    due = s.take(5.5)           # ops 1..5 are late: 1..4 missed, 5 is 0.5 s late > max_lag
    assert due is None or due.t_intended <= 5.5
    assert s.missed >= 4
    later = s.take(6.0)
    assert later is not None and later.t_intended == pytest.approx(6.0)


def test_close_counts_the_backlog_left_at_stop_as_missed():
    s = OpenLoopSchedule(0.0, rate_per_s=10, max_lag_s=100)
    s.take(0.0)
    assert s.backlog(0.95) == 9                     # ops 1..9 due, not issued
    assert s.close(0.95) == 9
    assert s.missed == 9 and s.backlog(0.95) == 0
    assert OpenLoopSchedule(5.0, 10, 1).backlog(4.0) == 0


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        OpenLoopSchedule(0.0, rate_per_s=0, max_lag_s=1)
    with pytest.raises(ValueError):
        OpenLoopSchedule.with_phase(0.0, 10, 1, phase=1.0)


def catch_up(rate: float, start: float, max_lag: float, now: float) -> None:
    """Op 0 went out on time, then nothing until ``now``: the op issued is the oldest one
    within ``max_lag`` of its intended start, every older one is missed, none is early."""
    s = OpenLoopSchedule(start, rate, max_lag)
    assert s.take(start).k == 0
    due = s.take(now)
    k = s.next_k if due is None else due.k
    if due is None:
        assert s.due_at(k) > now                        # nothing due: none issued early
    else:
        assert due.t_intended == pytest.approx(s.due_at(k), abs=1e-9) and due.t_intended <= now
        assert due.missed == k - 1
        assert now - due.t_intended <= max_lag + 1e-9     # issued: within max_lag
    assert s.missed == k - 1                            # ops 1..k-1 missed, none vanished
    if k > 1:
        assert now - s.due_at(k - 1) > max_lag - 1e-9   # the one before it was too late


RATES = [0.3, 0.5, 1, 7, 10, 33, 100, 1000]
STARTS = [0.0, 0.1, 1.7, 100.01, 5000.3]
MAX_LAGS = [0.0, 0.1, 0.3, 0.5, 1, 2.0, 7.5]


def test_after_a_stall_ending_exactly_max_lag_after_an_op_the_catch_up_is_exact():
    # float edges: op n is exactly max_lag late, up to rounding
    for rate in RATES:
        for start in STARTS:
            for max_lag in MAX_LAGS:
                probe = OpenLoopSchedule(start, rate, max_lag)
                for n in range(1, 40):
                    catch_up(rate, start, max_lag, probe.due_at(n) + max_lag)


def test_after_any_stall_the_op_issued_is_the_oldest_within_max_lag_and_the_older_ones_are_missed():
    rng = random.Random(7)
    for _ in range(2000):
        start = rng.choice(STARTS)
        catch_up(rng.choice(RATES), start, rng.choice(MAX_LAGS), start + rng.uniform(0, 60))


def test_an_op_exactly_max_lag_late_is_issued_not_missed():
    s = OpenLoopSchedule(0.0, rate_per_s=0.5, max_lag_s=1.0)       # ops at 0, 2, 4, ...
    s.take(0.0)
    due = s.take(21.0)                                           # op 10 (at 20 s) is 1 s late
    assert (due.k, due.t_intended, due.missed) == (10, 20.0, 9)


def test_the_first_op_within_max_lag_is_issued_when_the_ones_before_it_were_just_too_late():
    s = OpenLoopSchedule(100.0, rate_per_s=10, max_lag_s=0.5)
    s.take(100.0)
    due = s.take(100.65)                # op 1 (100.1) is 0.55 s late, op 2 (100.2) 0.45 s
    assert (due.k, due.missed) == (2, 1) and due.t_intended == pytest.approx(100.2)


def test_an_op_due_exactly_now_after_the_missed_ones_goes_out_now():
    s = OpenLoopSchedule(0.0, rate_per_s=1, max_lag_s=0)
    s.take(0.0)
    due = s.take(5.0)                   # ops 1..4 are late, op 5 is due at 5.0
    assert (due.k, due.t_intended, due.missed) == (5, 5.0, 4)


def test_missed_ops_add_up_over_stalls_and_the_backlog_at_stop():
    s = OpenLoopSchedule(50.0, rate_per_s=10, max_lag_s=1)
    s.take(50.0)
    assert s.take(53.0).missed == 19                            # ops 1..19 beyond 1 s late
    while s.take(53.0) is not None:
        pass
    assert s.take(56.05).missed == 20                           # ops 31..50
    assert s.missed == 39
    assert s.close(55.35) == 2                                  # ops 52 and 53 not issued
    assert s.missed == 41


def test_the_op_due_at_the_stop_instant_counts_in_the_backlog():
    s = OpenLoopSchedule(10.0, rate_per_s=4, max_lag_s=1)
    assert s.backlog(10.0) == 1 and s.backlog(9.99) == 0
    assert s.backlog(11.0) == 5
    assert s.close(10.0) == 1 and s.missed == 1


def test_a_phase_of_zero_starts_at_t0_and_errors_name_the_bad_value():
    assert OpenLoopSchedule.with_phase(3.0, 10, 1, phase=0.0).due_at(0) == 3.0
    with pytest.raises(ValueError, match=r"rate_per_s must be positive, got -2"):
        OpenLoopSchedule(0.0, rate_per_s=-2, max_lag_s=1)
    with pytest.raises(ValueError, match=r"max_lag_s must be >= 0, got -0.5"):
        OpenLoopSchedule(0.0, rate_per_s=1, max_lag_s=-0.5)
    with pytest.raises(ValueError, match=r"phase must be in \[0, 1\), got 1.0"):
        OpenLoopSchedule.with_phase(0.0, 10, 1, phase=1.0)
