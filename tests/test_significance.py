"""The two-sample tests behind ``pegbench compare``: Mann–Whitney U (exact and normal
approximation, ties, censored samples as +inf) and Fisher's exact test, against values
computed by hand (the derivations are in the comments)."""

from __future__ import annotations

import math
import random

import pytest

from loadgen.report.significance import (fisher_exact, mann_whitney, median, midranks,
                                         min_attainable_p, quantile, u_statistic)

pytestmark = pytest.mark.unit
INF = math.inf


def test_midranks_share_ties():
    assert midranks([3.0, 1.0, 2.0, 2.0]) == [4.0, 1.0, 2.5, 2.5]
    assert midranks([INF, 5.0, INF]) == [2.5, 1.0, 2.5]


def test_u_counts_pairs_with_half_a_tie():
    assert u_statistic([1, 2, 3], [4, 5, 6]) == 0
    assert u_statistic([4, 5, 6], [1, 2, 3]) == 9
    # pairs (x, y): (1,2) 0, (1,3) 0, (2,2) ½, (2,3) 0
    assert u_statistic([1, 2], [2, 3]) == 0.5
    assert u_statistic([1, 2], [2, 3]) + u_statistic([2, 3], [1, 2]) == 4


def test_exact_p_for_complete_separation_is_two_over_the_number_of_splits():
    # only 1 of the C(n1 + n2, n1) equally likely splits is this extreme, 1 the mirror
    assert mann_whitney([1, 2, 3], [4, 5, 6]).p == pytest.approx(2 / 20)
    assert mann_whitney([1, 2, 3, 4], [5, 6, 7, 8]).p == pytest.approx(2 / 70)
    assert mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]).p == pytest.approx(2 / 252)
    assert min_attainable_p(3, 3) == pytest.approx(0.1)
    assert min_attainable_p(4, 4) == pytest.approx(2 / 70)
    assert min_attainable_p(1, 30) == pytest.approx(2 / 31)
    assert min_attainable_p(0, 5) == 1.0


def test_exact_p_from_the_textbook_table():
    # n1 = n2 = 3: the 20 splits give U = 0..9 with counts 1 1 2 3 3 3 3 2 1 1;
    # x = [1, 2, 4] against [3, 5, 6] has U = 1 (4 > 3): P(U <= 1) = 2/20, two-sided 0.2
    test = mann_whitney([1, 2, 4], [3, 5, 6])
    assert (test.u, test.exact) == (1.0, True)
    assert test.p == pytest.approx(0.2)
    # [1, 3, 5] vs [2, 4, 6]: U = 3 (3 > 2, 5 > 2, 5 > 4); P(U <= 3) = 7/20, two-sided 14/20
    assert mann_whitney([1, 3, 5], [2, 4, 6]).p == pytest.approx(0.7)


def test_normal_approximation_with_continuity_correction():
    # n1 = n2 = 10, U = 0: mean 50, variance 10·10·21/12 = 175, z = 49.5/√175 = 3.7418
    test = mann_whitney(range(1, 11), range(11, 21), exact_max_n=0)
    assert test.exact is False and test.u == 0
    assert test.p == pytest.approx(math.erfc(49.5 / math.sqrt(175) / math.sqrt(2)))
    assert test.p == pytest.approx(1.8267e-4, rel=1e-3)


def test_normal_approximation_corrects_the_variance_for_ties():
    # ranks: four 1s share 2.5, four 2s share 6.5; R_x = 3·2.5 + 6.5 = 14, U = 14 − 10 = 4.
    # variance = 4·4/12 · (9 − (2·(4³ − 4))/(8·7)) = 9.142857; z = (8 − 4 − ½)/√9.142857
    test = mann_whitney([1, 1, 1, 2], [1, 2, 2, 2], exact_max_n=0)
    assert test.u == 4
    assert test.p == pytest.approx(math.erfc(3.5 / math.sqrt(9.142857142857) / math.sqrt(2)))
    assert test.p == pytest.approx(0.24706, rel=1e-4)
    untied = mann_whitney([1, 1, 1, 2], [1, 2, 2, 2], exact_max_n=0).p
    assert untied < mann_whitney([1, 3, 5, 7], [2, 4, 6, 8], exact_max_n=0).p


def test_exact_p_with_ties_counts_every_split_of_the_midranks():
    # all values equal: every split has the same rank sum, so p = 1
    assert mann_whitney([5, 5, 5], [5, 5, 5]).p == 1.0
    # x = [1, 1] vs y = [2, 2, 2]: midranks 1.5, 1.5 | 4, 4, 4. Of the C(5,2) = 10 splits,
    # x's rank sum is 3 (both 1s) in 1, 5.5 in 6, 8 in 3: the observed 3 is the lowest,
    # P(sum <= 3) = 1/10, two-sided 2/10
    assert mann_whitney([1, 1], [2, 2, 2]).p == pytest.approx(0.2)


def test_exact_and_normal_agree_on_a_large_sample():
    rng = random.Random(7)
    x = [rng.gauss(0, 1) for _ in range(12)]
    y = [rng.gauss(0.8, 1) for _ in range(12)]
    exact, normal = mann_whitney(x, y, exact_max_n=100), mann_whitney(x, y, exact_max_n=0)
    assert exact.u == normal.u
    assert normal.p == pytest.approx(exact.p, rel=0.15)


def test_censored_samples_rank_above_every_recovered_one():
    # three not-recovered candidates against three recovered bases: complete separation
    assert u_statistic([INF, INF, INF], [1e9, 2, 3]) == 9
    assert mann_whitney([INF, INF, INF], [1e9, 2, 3]).p == pytest.approx(0.1)
    # +inf ties with +inf: (1, inf) 0, (1, 2) 0, (inf, inf) ½, (inf, 2) 1
    assert u_statistic([1, INF], [INF, 2]) == 1.5
    assert mann_whitney([1, INF], [INF, 2]).p == pytest.approx(1.0)


def test_nan_and_empty_samples_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney([1, math.nan], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        mann_whitney([], [1, 2])


def test_fisher_exact_by_hand():
    # margins 4/4 of 8: P(a = k) ∝ C(4,k)·C(4,4−k) = 1 16 36 16 1 (of 70); a = 3 has 16,
    # the tables no more likely are k = 0, 1, 3, 4: 34/70
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70)
    assert fisher_exact(4, 0, 0, 4) == pytest.approx(2 / 70)
    assert fisher_exact(5, 0, 5, 0) == 1.0                 # nothing differs
    # 24/24 recovered against 20/24: 4 failures all on one side, C(44,20)/C(48,24) per tail
    one_tail = math.comb(44, 20) / math.comb(48, 24)
    assert fisher_exact(24, 0, 20, 4) == pytest.approx(2 * one_tail)
    with pytest.raises(ValueError):
        fisher_exact(-1, 0, 0, 0)


def test_median_and_quantile_with_censored_values():
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5
    assert median([1, 2, INF, INF]) == INF
    assert median([1, 2, 3, INF]) == 2.5
    assert quantile([1, 2, 3, 4, 5], 0.25) == 2
    assert quantile([1, 2, 3, 4], 0.75) == pytest.approx(3.25)
    assert quantile([1, 2, 3, INF], 0.75) == INF
    assert quantile([1, 2, 3, INF], 0.5) == 2.5
