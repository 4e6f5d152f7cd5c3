"""``pegbench compare``'s judgement of one metric: each row's status, reason, p, change and
sides, as the table prints them (written from mutants of ``judge_ranked`` /
``judge_recovered`` that tests/test_compare_noise.py let survive, issue 19)."""

from __future__ import annotations

import math

import pytest

from loadgen.report.compare import (BETTER, FEW, NA, SAME, WORSE, Side, judge_ranked, judge_recovered,
                                    parse_regression, row_cells)
from loadgen.report.compare_samples import ERROR_RATE_FAULT, TTR_FIRST

pytestmark = pytest.mark.unit

BASE = [100.0 + k for k in range(12)]      # median 105.5
SLOWER = [200.0 + k for k in range(12)]    # median 205.5: every sample above the base's


def test_a_clear_regression_says_by_how_much_it_is_beyond_the_threshold():
    row = judge_ranked("failover", TTR_FIRST, BASE, SLOWER, max_regression=0.1, alpha=0.05)
    assert (row.policy, row.status, row.significant) == ("failover", WORSE, True)
    assert row.p == pytest.approx(7.396e-07, rel=1e-3)
    assert row.reason == "median beyond the allowed base + 10 % + 1 ms, p = 7.4e-07"
    assert row.change == pytest.approx(100 / 105.5)
    assert row.base == Side(12, 105.5, 102.75, 108.25)
    assert row.candidate == Side(12, 205.5, 202.75, 208.25)
    rate = judge_ranked("p", ERROR_RATE_FAULT, BASE, SLOWER, max_regression=0.25, alpha=0.05)
    assert rate.reason == "median beyond the allowed base + 25 % + 0.1 %, p = 7.4e-07"


def test_a_clear_improvement_is_better_with_no_reason():
    row = judge_ranked("p", TTR_FIRST, SLOWER, BASE, max_regression=0.1, alpha=0.05)
    assert (row.status, row.significant, row.reason) == (BETTER, True, "")
    assert row.change == pytest.approx(-100 / 205.5)


def test_no_significant_difference_is_the_same_with_its_p():
    row = judge_ranked("p", TTR_FIRST, BASE, list(reversed(BASE)), max_regression=0.1,
                       alpha=0.05)
    assert (row.status, row.significant, row.reason, row.change) == (SAME, False, "", 0.0)
    assert row.p == pytest.approx(1.0)


@pytest.mark.parametrize("base, cand, reason", [([], [], "no samples"),
                                                ([], BASE, "no samples on one side"),
                                                (BASE, [], "no samples on one side")])
def test_a_side_without_samples_is_not_judged(base, cand, reason):
    row = judge_ranked("p", TTR_FIRST, base, cand, max_regression=0.1, alpha=0.05)
    assert (row.status, row.reason, row.change, row.p) == (NA, reason, None, None)


def test_three_samples_a_side_are_enough_when_the_level_allows_it():
    # 3 + 3, complete separation: p = 0.1, significant at alpha 0.2; 2 + 2 never is judged
    three = judge_ranked("p", TTR_FIRST, [1, 2, 3], [4, 5, 6], max_regression=0.1, alpha=0.2)
    assert (three.status, three.p) == (WORSE, pytest.approx(0.1))
    two = judge_ranked("p", TTR_FIRST, [1, 2], [4, 5], max_regression=0.1, alpha=0.5)
    assert (two.status, two.reason, two.p) == (FEW, "too few samples", None)
    assert two.change == pytest.approx(2.0)         # shown beside "too few samples"


def test_fewer_recoveries_are_worse_and_say_how_many():
    row = judge_recovered("failover", (24, 24), (16, 24), alpha=0.05)
    assert (row.status, row.significant) == (WORSE, True)
    assert row.reason == "fewer recoveries (16/24 vs 24/24), p = 0.0039"
    assert row.base == Side(24, 100.0, 0.0, 0.0, 24)
    assert row.candidate.recovered == 16 and row.candidate.median == pytest.approx(200 / 3)
    assert row.change == pytest.approx(-1 / 3)


def test_more_recoveries_are_better():
    row = judge_recovered("p", (16, 24), (24, 24), alpha=0.05)
    assert (row.status, row.significant, row.reason) == (BETTER, True, "")
    assert row.p == pytest.approx(0.0039, abs=1e-4)


def test_recoveries_not_judged_without_samples_or_with_too_few():
    none = judge_recovered("p", (0, 0), (16, 24), alpha=0.05)
    assert (none.status, none.reason, none.base, none.p) == (NA, "no samples on one side",
                                                              None, None)
    few = judge_recovered("p", (2, 2), (0, 2), alpha=0.9)   # n < 3, whatever the level
    assert (few.status, few.reason, few.p) == (FEW, "too few samples", None)
    same = judge_recovered("p", (24, 24), (23, 24), alpha=0.05)
    assert (same.status, same.significant, same.reason) == (SAME, False, "")
    assert same.p == pytest.approx(1.0)


@pytest.mark.parametrize("slower_by, status", [(26.0, SAME), (27.0, WORSE)])
def test_a_median_right_at_the_allowed_limit_is_within_it(slower_by, status):
    # base median 100 ms, 25 % allowed + the 1 ms floor: 126 ms is the limit itself
    base = [95.0 + k for k in range(11)]
    row = judge_ranked("p", TTR_FIRST, base, [v + slower_by for v in base],
                       max_regression=0.25, alpha=0.05)
    assert (row.base.median, row.candidate.median) == (100.0, 100.0 + slower_by)
    assert (row.status, row.significant) == (status, True)
    if status == SAME:                           # the compare page prints the reason
        assert row.reason == "significant, within the threshold"


def test_a_candidate_that_recovers_where_the_base_did_not_is_better():
    row = judge_ranked("p", TTR_FIRST, [math.inf] * 12, BASE, max_regression=0.1, alpha=0.05)
    assert (row.status, row.significant, row.reason, row.change) == (BETTER, True, "", None)


@pytest.mark.parametrize("base, cand, alpha, status, p", [
    ((3, 3), (0, 3), 0.2, WORSE, 0.1),     # 3 a side is enough when p = 0.1 can be reached
    ((3, 3), (0, 3), 0.1, FEW, None),      # ... but 0.1 is not below a level of 0.1
    ((4, 4), (0, 4), 0.04, WORSE, 4 / 140),  # 4 + 4 can reach p = 0.029 < 0.04
])
def test_few_recovery_samples_are_judged_exactly_when_the_level_can_be_reached(
        base, cand, alpha, status, p):
    row = judge_recovered("p", base, cand, alpha=alpha)
    assert row.status == status
    assert row.p == (None if p is None else pytest.approx(p))


@pytest.mark.parametrize("base, cand, base_side, cand_side", [
    ((24, 24), (0, 0), (24, 24, 100.0), None),
    ((0, 0), (16, 24), None, (16, 24, pytest.approx(200 / 3))),
])
def test_recoveries_on_one_side_only_are_shown_but_not_judged(base, cand, base_side, cand_side):
    row = judge_recovered("p", base, cand, alpha=0.05)
    assert (row.status, row.reason, row.p, row.change) == (NA, "no samples on one side", None,
                                                           None)
    # the table prints the side that has samples: "100 % (24/24)"
    shown = [None if s is None else (s.recovered, s.n, s.median)
             for s in (row.base, row.candidate)]
    assert shown == [base_side, cand_side]



def test_a_p_value_equal_to_the_level_is_not_significant():
    # "p < alpha": 6 + 6 samples shifted by 3 give p = 8/231; 5/5 against 1/5 recovered, 1/21
    base, cand = [100.0 + k for k in range(6)], [103.0 + k for k in range(6)]
    assert judge_ranked("p", TTR_FIRST, base, cand, max_regression=0.0, alpha=8 / 231).status == SAME
    assert judge_ranked("p", TTR_FIRST, base, cand, max_regression=0.0, alpha=0.05).status == WORSE
    assert judge_recovered("p", (5, 5), (1, 5), alpha=1 / 21).status == SAME
    assert judge_recovered("p", (5, 5), (1, 5), alpha=0.05).status == WORSE
    # 3 + 3 can reach p = 0.1 at best: at a level of 0.1 that is too few samples
    few = judge_ranked("p", TTR_FIRST, [1, 2, 3], [4, 5, 6], max_regression=0.1, alpha=0.1)
    assert (few.status, few.reason) == (FEW, "too few samples")


def test_a_significant_difference_with_the_same_median_is_within_the_threshold():
    # the candidate is slower in the tails only: significant, but the medians are equal
    base, cand = [1.0] * 5 + [10.0] * 6, [10.0] * 6 + [20.0] * 5
    row = judge_ranked("p", TTR_FIRST, base, cand, max_regression=0.1, alpha=0.05)
    assert (row.status, row.significant, row.change) == (SAME, True, 0.0)
    assert row.reason == "significant, within the threshold"


@pytest.mark.parametrize("judge, args, cells, change", [
    (judge_recovered, ((16, 24), (24, 24)),
     ("p", "recovered_fraction", "66.7 % (16/24)", "100 % (24/24)", "+50.0 %",
      "p=0.0039 n=24+24", "better"), 0.5),
    (judge_recovered, ((2, 2), (0, 2), 0.9),
     ("p", "recovered_fraction", "100 % (2/2)", "0 % (0/2)", "~", "too few samples (n=2+2)", ""),
     -1.0),
    (judge_recovered, ((24, 24), (23, 24)),
     ("p", "recovered_fraction", "100 % (24/24)", "95.8 % (23/24)", "~", "p=1 n=24+24", ""),
     -1 / 24),
    (judge_ranked, (SLOWER, BASE),
     ("p", "ttr_first_ms", "205.5 ± 2.8 ms (n=12)", "105.5 ± 2.8 ms (n=12)", "-48.7 %",
      "p=7.4e-07 n=12+12", "better"), -100 / 205.5),
    (judge_ranked, (BASE, []),
     ("p", "ttr_first_ms", "105.5 ± 2.8 ms (n=12)", "n/a", "n/a",
      "no samples on one side (n=12+0)", ""), None),
])
def test_each_judged_row_prints_both_sides_and_its_change(judge, args, cells, change):
    base, cand, *level = args
    alpha = level[0] if level else 0.05
    if judge is judge_ranked:
        row = judge_ranked("p", TTR_FIRST, base, cand, max_regression=0.1, alpha=alpha)
    else:
        row = judge_recovered("p", base, cand, alpha=alpha)
    # the table's cells; the compare page's bar shows the change even when not significant
    assert row_cells(row) == cells
    assert row.change == (None if change is None else pytest.approx(change))


@pytest.mark.parametrize("text", ["-5%", "-0.1", "inf"])
def test_a_negative_or_infinite_max_regression_is_refused_with_what_was_given(text):
    with pytest.raises(ValueError) as info:
        parse_regression(text)
    assert str(info.value) == f"--max-regression: expected a non-negative amount, got {text!r}"
