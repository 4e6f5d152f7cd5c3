"""The bootstrap interval of the old/new difference of medians: what it carries into the
report, the undefined case (neither policy recovered), and how the confidence sets its width
(written from mutants of ``median_difference_ci`` that tests/test_report_stats.py let
survive, issue 19)."""

from __future__ import annotations

import math

import pytest

from loadgen.report.stats import median_difference_ci

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
