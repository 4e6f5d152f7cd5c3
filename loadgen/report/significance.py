"""Two-sample tests for ``pegbench compare``: Mann–Whitney U and Fisher's exact test.

Pure functions over plain floats and counts; no SciPy. Samples may hold ``+inf`` (a censored,
not-recovered TTR): it ranks above every finite value and ties with other ``+inf``s, which is
what "worse than any recovered sample" means for a rank test. NaN is refused.

Mann–Whitney: U of the first sample counts the pairs (x, y) with x > y, plus ½ per tie.
The two-sided p-value is exact (the permutation distribution of the rank sum, midranks
included, so ties are handled exactly) when both samples together hold at most
:data:`EXACT_MAX_N` values; beyond that it is the normal approximation with the tie
correction of the variance and a continuity correction of ½ (as ``scipy.stats.mannwhitneyu``
with ``method="asymptotic"``, its default beyond 8 values or with ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Total sample size up to which the p-value is computed exactly (the DP costs ~N³/8 steps).
EXACT_MAX_N = 24


@dataclass(frozen=True)
class MannWhitney:
    """One test: ``u`` is U of the first sample, ``p`` its two-sided p-value."""

    u: float
    p: float
    n1: int
    n2: int
    exact: bool


def midranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values`` in their own order, tied values sharing their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j + 2) / 2
        i = j + 1
    return ranks


def tie_sizes(values: Sequence[float]) -> list[int]:
    """The size of every group of equal values (groups of one included)."""
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return list(counts.values())


def min_attainable_p(n1: int, n2: int) -> float:
    """The smallest two-sided p any outcome can give with these sizes (no ties): complete
    separation, 2 / C(n1 + n2, n1). A test that cannot go below alpha has too few samples."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def _check(sample: Sequence[float], name: str) -> list[float]:
    out = [float(v) for v in sample]
    if not out:
        raise ValueError(f"{name}: empty sample")
    if any(math.isnan(v) for v in out):
        raise ValueError(f"{name}: NaN in sample")
    return out


def u_statistic(x: Sequence[float], y: Sequence[float]) -> float:
    """U of ``x``: #(x_i > y_j) + ½ #(x_i = y_j). U(x, y) + U(y, x) = len(x)·len(y)."""
    xs, ys = _check(x, "x"), _check(y, "y")
    ranks = midranks(xs + ys)
    return sum(ranks[:len(xs)]) - len(xs) * (len(xs) + 1) / 2


def _exact_cdf_counts(doubled_ranks: Sequence[int], n1: int) -> list[int]:
    """ways[s] = the number of n1-subsets of the ranks whose doubled rank sum is s."""
    total = sum(doubled_ranks)
    # ways[k][s]: k ranks chosen among those seen so far, summing to s
    ways = [[0] * (total + 1) for _ in range(n1 + 1)]
    ways[0][0] = 1
    seen = 0
    for r in doubled_ranks:
        seen += r
        for k in range(min(n1, len(ways) - 1), 0, -1):
            row, prev = ways[k], ways[k - 1]
            for s in range(seen, r - 1, -1):
                if prev[s - r]:
                    row[s] += prev[s - r]
    return ways[n1]


def _exact_p(xs: list[float], ys: list[float]) -> float:
    ranks = midranks(xs + ys)
    doubled = [round(2 * r) for r in ranks]        # midranks are multiples of ½
    observed = sum(doubled[:len(xs)])
    ways = _exact_cdf_counts(doubled, len(xs))
    everything = sum(ways)
    low = sum(ways[:observed + 1])
    high = sum(ways[observed:])
    return min(1.0, 2 * min(low, high) / everything)


def _normal_p(u: float, n1: int, n2: int, ties: Sequence[int]) -> float:
    n = n1 + n2
    tie_term = sum(t ** 3 - t for t in ties) / (n * (n - 1))
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    if variance <= 0:
        return 1.0                                 # every value equal: no evidence at all
    z = max(0.0, abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return min(1.0, math.erfc(z / math.sqrt(2)))


def mann_whitney(x: Sequence[float], y: Sequence[float], *,
                 exact_max_n: int = EXACT_MAX_N) -> MannWhitney:
    """Two-sided Mann–Whitney U test of ``x`` against ``y`` (see the module docstring)."""
    xs, ys = _check(x, "x"), _check(y, "y")
    u = u_statistic(xs, ys)
    if len(xs) + len(ys) <= exact_max_n:
        return MannWhitney(u, _exact_p(xs, ys), len(xs), len(ys), exact=True)
    return MannWhitney(u, _normal_p(u, len(xs), len(ys), tie_sizes(xs + ys)),
                       len(xs), len(ys), exact=False)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test on the table [[a, b], [c, d]] (e.g. row 1 = base
    recovered / not, row 2 = candidate): the sum of the hypergeometric probabilities of the
    tables with the same margins that are no more likely than the observed one."""
    if min(a, b, c, d) < 0:
        raise ValueError(f"fisher_exact: negative count in {(a, b, c, d)}")
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0:
        return 1.0
    lo, hi = max(0, col1 - (n - row1)), min(row1, col1)
    denominator = math.comb(n, col1)

    def weight(k: int) -> int:
        return math.comb(row1, k) * math.comb(n - row1, col1 - k)

    observed = weight(a)
    # exact integers, so "no more likely" needs no floating-point tolerance
    return min(1.0, sum(w for w in map(weight, range(lo, hi + 1)) if w <= observed) / denominator)


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count; +inf if one of them is)."""
    s = sorted(values)
    if not s:
        raise ValueError("median of an empty sample")
    mid = len(s) // 2
    if len(s) % 2:
        return s[mid]
    lo, hi = s[mid - 1], s[mid]
    return math.inf if math.isinf(hi) else (lo + hi) / 2


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default); +inf when it touches a +inf value."""
    s = sorted(values)
    if not s:
        raise ValueError("quantile of an empty sample")
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(s[hi]):
        return math.inf
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
