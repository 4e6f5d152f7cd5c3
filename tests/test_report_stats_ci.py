"""The bootstrap interval of the old/new difference of medians: what it carries into the
report, the undefined case (neither policy recovered), and how the confidence sets its width
(written from mutants of ``median_difference_ci`` that tests/test_report_stats.py let
survive, issue 19)."""

from __future__ import annotations

import math
import re

import pytest

from loadgen.report.stats import (MAX_UNDEFINED, defined_enough, median, median_difference_ci,
                                  percentile_interval)

pytestmark = pytest.mark.unit
INF = math.inf
OLD = {f"e{i}": [1000.0 * (i + 1)] for i in range(10)}
NEW = {f"e{i}": [500.0 * (i + 1)] for i in range(10)}


def test_the_interval_carries_what_the_report_prints_beside_it():
    ci = median_difference_ci("legacy", "failover", OLD, NEW, seed=5, resamples=400)
    assert (ci.old, ci.new, ci.seed, ci.resamples, ci.confidence, ci.min_events) == (
        "legacy", "failover", 5, 400, 0.95, 5)
    assert (ci.events, ci.n_old, ci.n_new, ci.undefined, ci.reason) == (10, 10, 10, 0, "")
    assert ci.observed == 2500.0 - 5000.0
    assert ci.low <= ci.observed <= ci.high < 0


def test_a_lower_confidence_gives_a_narrower_interval_inside_the_wider_one():
    wide = median_difference_ci("legacy", "failover", OLD, NEW, seed=5, resamples=400)
    narrow = median_difference_ci("legacy", "failover", OLD, NEW, seed=5, resamples=400,
                                  confidence=0.5)
    assert wide.low < narrow.low <= narrow.observed <= narrow.high < wide.high


def test_neither_policy_recovering_leaves_the_difference_undefined():
    never = {f"e{i}": [INF, INF] for i in range(5)}
    ci = median_difference_ci("legacy", "failover", never, never, seed=1, resamples=20)
    assert ci.observed is None and ci.low is None and ci.high is None
    assert (ci.resamples, ci.undefined) == (20, 20)
    assert ci.reason == "undefined (20 of 20 resamples had neither recover)"


def test_a_few_undefined_resamples_still_give_an_interval():
    # one event of six that neither recovered: a resample is undefined only when it picks
    # that event for four draws of six or more (about 1 in 115)
    old = {e: v for e, v in {**OLD, "e0": [INF]}.items() if e < "e6"}
    new = {e: v for e, v in {**NEW, "e0": [INF]}.items() if e < "e6"}
    ci = median_difference_ci("legacy", "failover", old, new, seed=5, resamples=2000)
    assert 0 < ci.undefined <= 0.05 * 2000
    assert ci.reason == "" and ci.low <= ci.observed <= ci.high


def test_the_least_number_of_events_is_checked_with_a_message():
    with pytest.raises(ValueError) as info:
        median_difference_ci("a", "b", OLD, NEW, seed=0, min_events=1)
    assert str(info.value) == "min_events must be at least 2, got 1"
    assert median_difference_ci("a", "b", OLD, NEW, seed=0, min_events=2).reason == ""


def test_the_median_is_the_nearest_rank_one_with_not_recovered_last():
    assert median([7.0]) == 7.0
    assert median([2.0, 1.0]) == 1.0                     # rank 1 of 2: the lower one
    assert median([float(v) for v in range(1, 51)]) == 25.0
    assert median([1.0, INF, INF]) == INF                # most did not recover


def test_too_few_events_give_the_difference_and_say_why_there_is_no_interval():
    old = {e: OLD[e] for e in ("e0", "e1", "e2")}
    new = {e: NEW[e] for e in ("e0", "e1", "e2")}
    ci = median_difference_ci("legacy", "failover", old, new, seed=5)
    assert (ci.observed, ci.low, ci.high, ci.events, ci.resamples) == (-1000.0, None, None, 3, 0)
    assert ci.reason == "too few fault events for an interval (3 < 5)"
    # the profile's report.min_fault_events lowers the bar, and the report says from how many
    ci = median_difference_ci("legacy", "failover", old, new, seed=5, min_events=3,
                              resamples=400)
    assert ci.min_events == 3 and ci.reason == "" and ci.low <= ci.observed <= ci.high


def test_many_undefined_resamples_give_no_interval_even_if_some_are_defined():
    # two events, one that neither policy recovered: a quarter of the resamples pick only it
    never_and_zero = {"e0": [INF], "e1": [0.0]}
    ci = median_difference_ci("legacy", "failover", never_and_zero, never_and_zero, seed=1,
                              min_events=2)
    assert ci.observed == 0.0 and ci.low is None and ci.high is None
    assert re.fullmatch(r"undefined \((\d+) of 2000 resamples had neither recover\)", ci.reason)
    assert 0.05 * 2000 < ci.undefined < 2000


def test_the_interval_leaves_out_half_of_the_rest_of_the_confidence_on_each_side():
    # resampled, the new policy is 10 ms faster in a quarter of the draws (both picks the
    # second event) and the same otherwise: a 95 % interval reaches the -10 ms, a 40 % one
    # (30 % left out on each side) does not
    old, new = {"e0": [0.0], "e1": [10.0]}, {"e0": [0.0], "e1": [0.0]}
    wide = median_difference_ci("legacy", "failover", old, new, seed=1, min_events=2)
    narrow = median_difference_ci("legacy", "failover", old, new, seed=1, min_events=2,
                                  confidence=0.4)
    assert (wide.low, wide.high) == (-10.0, 0.0)
    assert (narrow.low, narrow.high) == (0.0, 0.0)


def test_twenty_resamples_at_95_percent_span_every_resampled_difference():
    old, new = {"e0": [0.0], "e1": [0.0]}, {"e0": [0.0], "e1": [10.0]}
    ci = median_difference_ci("legacy", "failover", old, new, seed=1, min_events=2,
                              resamples=20)
    assert (ci.low, ci.observed, ci.high) == (0.0, 0.0, 10.0)


def test_the_percentile_interval_leaves_the_tail_share_out_on_each_side():
    # 20 resampled differences at 90 %: one (5 %) below the low end, one above the high end
    diffs = [float(v) for v in reversed(range(1, 21))]
    assert percentile_interval(diffs, 0.9) == (2.0, 19.0)
    # 100 at 95 %: 2.5 % a side leaves out the two most extreme on each side, not three
    hundred = [float(v) for v in range(100)]
    assert percentile_interval(hundred, 0.95) == (2.0, 97.0)
    assert percentile_interval([4.0], 0.95) == (4.0, 4.0)


def test_an_interval_is_given_up_to_the_allowed_share_of_undefined_resamples():
    allowed = int(MAX_UNDEFINED * 2000)
    assert defined_enough(0, 2000) and defined_enough(allowed, 2000)
    assert not defined_enough(allowed + 1, 2000)
