"""The report's statistics and views: nearest-rank median, censored CDF, the seeded event
bootstrap of the old/new difference of medians, policy order and the old/new pair."""

from __future__ import annotations

import json
import math
import random

import pytest
from support.runs import make_run

from loadgen.config.profile import build_profile
from loadgen.errors import ConfigError
from loadgen.metrics.results import Results
from loadgen.report import RunInputError, analyse, load_run, render
from loadgen.report.stats import MIN_FAULT_EVENTS, cdf_points, median, median_difference_ci
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
    # within an event the partitions differ a lot; two events alike: every resample is the same
    old = {e: [1000.0, 3000.0, 5000.0, 7000.0, 9000.0] for e in ("e1", "e2")}
    new = {e: [100.0, 400.0, 900.0, 1600.0, 2500.0] for e in ("e1", "e2")}
    ci = median_difference_ci("legacy", "failover", old, new, seed=1, min_events=2)
    assert ci.low == ci.high == ci.observed == 900.0 - 5000.0
    # events shift old and new alike: resampled together, the difference never moves
    old = {f"e{i}": [1000.0 * i + d for d in (0, 10, 20)] for i in range(1, 7)}
    new = {e: [v - 100.0 for v in vs] for e, vs in old.items()}
    ci = median_difference_ci("legacy", "failover", old, new, seed=3)
    assert ci.low == ci.high == ci.observed == -100.0


def test_an_interval_needs_enough_fault_events_not_samples():
    assert MIN_FAULT_EVENTS == 5
    # 3 events of 4 partitions: 12 samples a side, yet at most 10 distinct resamples
    old = {f"e{i}": [5000.0 + 100 * i + p for p in range(4)] for i in range(3)}
    new = {f"e{i}": [1000.0 + 100 * i + p for p in range(4)] for i in range(3)}
    few = median_difference_ci("legacy", "failover", old, new, seed=0)
    assert few.low is None and few.high is None and few.resamples == 0
    assert few.reason == "too few fault events for an interval (3 < 5)"
    assert few.observed == median([v for vs in new.values() for v in vs]) - median(
        [v for vs in old.values() for v in vs])                 # the difference is still shown
    assert (few.events, few.n_old, few.n_new) == (3, 12, 12)
    # the same events with the threshold at 3: an interval, bracketing the same difference
    enough = median_difference_ci("legacy", "failover", old, new, seed=0, min_events=3)
    assert enough.reason == "" and enough.resamples > 0
    assert enough.low <= enough.observed == few.observed <= enough.high
    # events count only when both policies have samples of them
    new_partial = {e: v for e, v in new.items() if e != "e2"}
    assert median_difference_ci("legacy", "failover", old, new_partial, seed=0,
                                min_events=3).reason == "too few fault events for an interval (2 < 3)"
    assert median_difference_ci("a", "b", old, {"other": [1.0]}, seed=0) is None
    with pytest.raises(ValueError, match="at least 2"):
        median_difference_ci("a", "b", old, new, seed=0, min_events=1)


def test_bootstrap_handles_censoring():
    old = {f"e{i}": [INF, INF] for i in range(5)}          # old never recovered
    new = {f"e{i}": [900.0 + i, 950.0] for i in range(5)}
    ci = median_difference_ci("legacy", "failover", old, new, seed=0)
    assert ci.observed == -INF and ci.low == ci.high == -INF
    ci = median_difference_ci("legacy", "failover", old, old, seed=0)
    assert ci.observed is None and ci.low is None and ci.undefined == ci.resamples
    assert ci.reason.startswith("undefined")


def _write_profile(run_dir, **report) -> None:
    (run_dir / "profile.json").write_text(json.dumps({"name": "ci", "report": report}))


def test_report_below_min_fault_events_shows_the_difference_and_says_why(tmp_path):
    model = analyse(load_run(make_run(tmp_path)))        # 3 fault events, default 5
    assert [(c.old, c.new) for c in model.cis] == [("legacy", "failover"), ("legacy", "java")]
    ci = model.cis[0]
    assert ci.events == 3 and ci.n_old == ci.n_new == 7 and ci.low is None
    assert ci.observed is not None and ci.observed < 0
    page = render(model)
    table = page.split('class="bootstrap"')[1].split("</table>")[0]
    assert table.count("too few fault events for an interval (3 &lt; 5)") == 2
    assert "ms</td>" in table                             # the difference itself is shown


def test_report_from_min_fault_events_on_gives_an_interval(tmp_path):
    run_dir = make_run(tmp_path)
    _write_profile(run_dir, out="reports/x", min_fault_events=3)   # as `pegbench run` writes it
    model = analyse(load_run(run_dir))
    ci = model.cis[0]
    assert ci.seed == 42 and ci.events == 3 and ci.min_events == 3 and ci.reason == ""
    assert ci.low <= ci.observed <= ci.high
    assert "too few fault events" not in render(model)
    again = analyse(load_run(tmp_path))
    assert again.cis == model.cis
    by_event = samples_by_event(model.samples, "legacy")
    assert by_event["3"] == [INF, INF] and len(by_event["1"]) == 3


def test_policy_order_follows_the_profile_then_the_results():
    results = Results.from_dict({
        "policies": {"failover": {}, "java": {}, "legacy": {}, "extra": {}},
        "profile": {"policies": {"compare": ["legacy", "java", "failover", "absent"]}}})
    assert policy_order(results) == ["legacy", "java", "failover", "extra"]
    assert policy_order(Results.from_dict({"policies": {"b": {}, "a": {}}})) == ["b", "a"]


def test_old_new_is_legacy_failover_else_first_and_last():
    assert old_new(["java", "failover", "legacy"]) == ("legacy", "failover")
    assert old_new(["java", "refresh-on-reset", "mine"]) == ("java", "mine")
    assert old_new(["failover"]) is None


def test_policy_models_prefer_what_the_run_recorded():
    results = Results.from_dict({"policy_info": {"mine": {"models": "my client"}}})
    models = policy_models(results, ["mine", "legacy", "unknown"])
    assert models["mine"] == "my client"
    assert models["legacy"].startswith("Go client before #1916")    # from the registry
    assert models["unknown"] == ""


def test_min_fault_events_comes_from_the_run_folder_and_is_checked(tmp_path):
    run_dir = make_run(tmp_path)
    _write_profile(run_dir)                                  # key absent: the default
    assert analyse(load_run(run_dir)).cis[0].min_events == MIN_FAULT_EVENTS
    _write_profile(run_dir, min_fault_events=1)
    with pytest.raises(RunInputError, match=r"report.min_fault_events: expected an integer >= 2"):
        analyse(load_run(run_dir))
    (run_dir / "profile.json").unlink()          # then results.json's copy of the profile
    results = json.loads((run_dir / "results.json").read_text())
    results["profile"]["report"] = {"min_fault_events": 2}
    (run_dir / "results.json").write_text(json.dumps(results))
    assert analyse(load_run(run_dir)).cis[0].min_events == 2


@pytest.mark.parametrize("value, expected", [(2, 2), (7, 7), (None, MIN_FAULT_EVENTS)])
def test_the_profile_key_report_min_fault_events(value, expected):
    tree = {"name": "x", "report": {} if value is None else {"min_fault_events": value}}
    profile = build_profile(tree, "p.toml")
    assert profile.report.min_fault_events == expected
    assert profile.to_dict()["report"]["min_fault_events"] == expected   # what profile.json holds


@pytest.mark.parametrize("value", [1, 0, 2.5, "5", True])
def test_report_min_fault_events_must_be_an_integer_of_at_least_two(value):
    with pytest.raises(ConfigError) as info:
        build_profile({"name": "x", "report": {"min_fault_events": value}}, "p.toml")
    assert (info.value.file, info.value.key) == ("p.toml", "report.min_fault_events")
    assert info.value.expected.startswith("an integer >= 2, got")
