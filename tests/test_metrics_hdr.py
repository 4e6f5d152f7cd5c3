"""The fast HDR counting path agrees with hdrh itself; the coarse layout's percentiles."""

from __future__ import annotations

import random

import pytest

from loadgen.metrics import hdr

pytestmark = pytest.mark.unit

EDGES = [1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 1_000_000, 3_000_000,
         hdr.HIGHEST_US - 1, hdr.HIGHEST_US]


def test_counts_index_is_hdrh_own():
    reference = hdr.new_histogram()
    rng = random.Random(7)
    values = EDGES + [rng.randint(1, hdr.HIGHEST_US) for _ in range(2000)]
    values += [int(10 ** rng.uniform(0, 9.5)) for _ in range(2000)]
    for v in values:
        assert hdr.counts_index(v) == reference._counts_index_for(v), v


def test_to_histogram_equals_record_value_and_survives_encoding():
    rng = random.Random(3)
    values = EDGES + [int(10 ** rng.uniform(0, 9.5)) for _ in range(5000)]
    expected = hdr.new_histogram()
    counts = hdr.new_counts()
    for v in values:
        assert expected.record_value(v)
        counts[hdr.counts_index(v)] += 1
    built = hdr.to_histogram(counts)
    assert built.equals(expected)
    assert hdr.summarize(built) == hdr.summarize(expected)
    decoded = hdr.decode(hdr.encode(built))
    assert decoded.get_total_count() == len(values)
    again = hdr.new_counts()
    hdr.add_counts(again, decoded)
    assert again == counts


def test_clamp_pulls_values_into_range():
    assert hdr.clamp_us(0) == 1 and hdr.clamp_us(-5) == 1
    assert hdr.clamp_us(hdr.HIGHEST_US + 1) == hdr.HIGHEST_US
    assert hdr.clamp_us(1234) == 1234


def test_summarize_empty_is_zeros():
    assert hdr.summarize(hdr.new_histogram()) == {"count": 0, "p50": 0, "p99": 0, "p999": 0,
                                                  "max": 0}


def test_coarse_values_stay_within_their_bucket():
    rng = random.Random(5)
    for v in EDGES + [int(10 ** rng.uniform(0, 9.5)) for _ in range(3000)]:
        index = hdr.coarse_index(v)
        assert 0 <= index < hdr.COARSE_LEN
        middle = hdr.coarse_value(index)
        assert abs(middle - v) <= v / 32 + 0.5, v   # half of a 1/16 bucket


def test_coarse_percentiles_by_nearest_rank():
    counts: dict[int, int] = {}
    for v in [1000] * 98 + [50_000, 900_000]:
        counts[hdr.coarse_index(v)] = counts.get(hdr.coarse_index(v), 0) + 1
    pct = hdr.coarse_percentiles(counts, (50.0, 99.0, 100.0))
    assert pct[50.0] == pytest.approx(1000, rel=0.04)
    assert pct[99.0] == pytest.approx(50_000, rel=0.04)
    assert pct[100.0] == pytest.approx(900_000, rel=0.04)
    assert hdr.coarse_percentiles({}, (50.0,)) == {50.0: None}


def test_value_at_rank_walks_the_samples():
    hist = hdr.new_histogram()
    for v in (10, 20, 30):
        hist.record_value(v)
    assert [hdr.value_at_rank(hist, r) for r in (1, 2, 3)] == [10, 20, 30]
    with pytest.raises(ValueError):
        hdr.value_at_rank(hist, 4)
