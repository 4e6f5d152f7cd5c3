"""The report's statistics and views: nearest-rank median, censored CDF, the seeded event
bootstrap of the old/new difference of medians, policy order and the old/new pair."""

from __future__ import annotations

import math
import random

import pytest
from support.runs import make_run

from loadgen.report import analyse, load_run
from loadgen.report.stats import MIN_SAMPLES, cdf_points, median, median_difference_ci
from loadgen.report.views import old_new, policy_models, policy_order, samples_by_event

pytestmark = pytest.mark.unit
INF = math.inf


def _noisy_events(seed: int = 7, events: int = 12, partitions: int = 3):
    rng = random.Random(seed)
    old = {f"e{i}": [rng.uniform(4000, 8000) for _ in range(partitions)] for i in range(events)}
    new = {f"e{i}": [rng.uniform(800, 1200) for _ in range(partitions)] for i in range(events)}
    return old, new


def test_median_is_nearest_rank_and_ranks_censored_last():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.0          # rank int(2 + 0.5) = 2, as hdrh
    assert median([1.0, INF, INF]) == INF               # lands on a censored sample
    with pytest.raises(ValueError):
        median([])


def test_cdf_counts_censored_samples_but_never_steps_for_them():
    xs, ys, censored = cdf_points([300.0, INF, 100.0, 200.0])
    assert censored == 1
    assert xs == [0.0, 100.0, 200.0, 300.0] and ys == [0.0, 0.25, 0.5, 0.75]


def test_bootstrap_is_seeded_and_brackets_the_observed_difference():
    old, new = _noisy_events()
    first = median_difference_ci("legacy", "failover", old, new, seed=42)
    again = median_difference_ci("legacy", "failover", old, new, seed=42)
    assert first == again                                  # same input -> same numbers
    other = median_difference_ci("legacy", "failover", old, new, seed=43)
    assert (other.low, other.high) != (first.low, first.high)   # the seed matters
    assert first.low <= first.observed <= first.high
    assert first.high < 0                                  # new clearly faster
    assert first.events == 12 and first.n_old == first.n_new == 36
    expected = median([v for vs in new.values() for v in vs]) - median(
        [v for vs in old.values() for v in vs])
    assert first.observed == pytest.approx(expected)


def test_bootstrap_resamples_events_not_partitions():
    # within an event the partitions differ a lot; one event only: every resample is it
    old = {"e1": [1000.0, 3000.0, 5000.0, 7000.0, 9000.0]}
    new = {"e1": [100.0, 400.0, 900.0, 1600.0, 2500.0]}
    ci = median_difference_ci("legacy", "failover", old, new, seed=1)
    assert ci.low == ci.high == ci.observed == 900.0 - 5000.0
    # events shift old and new alike: resampled together, the difference never moves
    old = {f"e{i}": [1000.0 * i + d for d in (0, 10, 20)] for i in range(1, 7)}
    new = {e: [v - 100.0 for v in vs] for e, vs in old.items()}
    ci = median_difference_ci("legacy", "failover", old, new, seed=3)
    assert ci.low == ci.high == ci.observed == -100.0


def test_bootstrap_needs_enough_samples_and_handles_censoring():
    few = {"e1": [1.0, 2.0], "e2": [3.0, 4.0]}
    assert MIN_SAMPLES == 5
    assert median_difference_ci("a", "b", few, few, seed=0) is None
    old = {f"e{i}": [INF, INF] for i in range(4)}          # old never recovered
    new = {f"e{i}": [900.0 + i, 950.0] for i in range(4)}
    ci = median_difference_ci("legacy", "failover", old, new, seed=0)
    assert ci.observed == -INF and ci.low == ci.high == -INF
    ci = median_difference_ci("legacy", "failover", old, old, seed=0)
    assert ci.observed is None and ci.low is None and ci.undefined == ci.resamples


def test_report_bootstrap_runs_per_policy_against_old(tmp_path):
    model = analyse(load_run(make_run(tmp_path)))
    assert [(c.old, c.new) for c in model.cis] == [("legacy", "failover"), ("legacy", "java")]
    ci = model.cis[0]
    assert ci.seed == 42 and ci.events == 3 and ci.n_old == ci.n_new == 7
    assert ci.low <= ci.observed <= ci.high
    again = analyse(load_run(tmp_path))
    assert again.cis == model.cis
    by_event = samples_by_event(model.samples, "legacy")
    assert by_event["3"] == [INF, INF] and len(by_event["1"]) == 3


def test_policy_order_follows_the_profile_then_the_results():
    results = {"policies": {"failover": {}, "java": {}, "legacy": {}, "extra": {}},
               "profile": {"policies": {"compare": ["legacy", "java", "failover", "absent"]}}}
    assert policy_order(results) == ["legacy", "java", "failover", "extra"]
    assert policy_order({"policies": {"b": {}, "a": {}}}) == ["b", "a"]


def test_old_new_is_legacy_failover_else_first_and_last():
    assert old_new(["java", "failover", "legacy"]) == ("legacy", "failover")
    assert old_new(["java", "refresh-on-reset", "mine"]) == ("java", "mine")
    assert old_new(["failover"]) is None


def test_policy_models_prefer_what_the_run_recorded():
    results = {"policy_info": {"mine": {"models": "my client"}}}
    models = policy_models(results, ["mine", "legacy", "unknown"])
    assert models["mine"] == "my client"
    assert models["legacy"].startswith("Go client before #1916")    # from the registry
    assert models["unknown"] == ""
