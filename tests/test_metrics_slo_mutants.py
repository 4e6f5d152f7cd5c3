"""SLO threshold checks and their spec: the verdict, value, threshold and details each check
carries into results.json and junit.xml, on every path (pass, fail on each bound, missing,
null, censored, not a number), and the error a malformed spec gives.

Written from the mutants of ``loadgen/metrics/slo.py`` that tests/test_metrics_slo.py let
survive (issue 19).
"""

from __future__ import annotations

import functools
import math

import pytest

from loadgen.errors import ConfigError
from loadgen.metrics.results import Results
from loadgen.metrics.slo import (
    UNKNOWN,
    CheckResult,
    ThresholdCheck,
    checks_from_spec,
    evaluate,
    run_checks,
    settle,
    slo_block,
    slo_unknown_reason,
)

pytestmark = pytest.mark.unit


def _doc(**policy) -> dict:
    return {"policies": {"failover": policy}, "durability": {"lost": 0}}


# --------------------------------------------------------------------------- ThresholdCheck


@pytest.mark.parametrize("value, verdict", [(1.0, True), (250, True), (0.999, False),
                                            (250.5, False)])
def test_both_bounds_are_inclusive(value, verdict):
    check = ThresholdCheck("failover.x", min=1.0, max=250)
    assert check(_doc(x=value)).passed is verdict


def test_a_pass_carries_the_value_and_threshold_and_no_details():
    result = ThresholdCheck("failover.x", min=1, max=9)(_doc(x=5))
    assert result == CheckResult("failover.x", True, 5, {"min": 1, "max": 9}, "")


@pytest.mark.parametrize("check, value, details", [
    (ThresholdCheck("failover.x", min=10), 5, "5 outside {'min': 10}"),
    (ThresholdCheck("failover.x", max=1), 5, "5 outside {'max': 1}"),
    (ThresholdCheck("durability.lost", max=-1), 0, "0 outside {'max': -1}"),
])
def test_a_failure_says_which_value_was_outside_which_threshold(check, value, details):
    result = check(_doc(x=5))
    assert (result.passed, result.value, result.threshold, result.details) == (
        False, value, check.threshold, details)


def test_a_bound_that_is_not_set_does_not_bound():
    assert ThresholdCheck("failover.x", min=0)(_doc(x=1e12)).passed is True
    assert ThresholdCheck("failover.x", max=0)(_doc(x=-1e12)).passed is True
    assert ThresholdCheck("failover.x", min=0).threshold == {"min": 0}
    assert ThresholdCheck("failover.x", max=0).threshold == {"max": 0}


def test_a_missing_metric_is_unknown_and_says_what_is_missing():
    result = ThresholdCheck("failover.nope", max=3)(_doc(x=1))
    assert result == CheckResult("failover.nope", UNKNOWN, None, {"max": 3},
                                 "no metric 'failover.nope' (missing 'nope')")


def test_a_null_metric_is_unknown_with_no_value():
    result = ThresholdCheck("failover.lag.p99", max=3)(_doc(lag={"p99": None, "censored": 0}))
    assert result == CheckResult("failover.lag.p99", UNKNOWN, None, {"max": 3}, "no value")


def test_a_null_percentile_on_a_censored_sample_is_infinite():
    lag = {"p99": None, "censored": 1}
    failed = ThresholdCheck("failover.lag.p99", max=3)(_doc(lag=lag))
    assert failed == CheckResult("failover.lag.p99", False, math.inf, {"max": 3},
                                 "+inf: the percentile lands on a censored sample")
    # +inf passes a min: the check says so, and keeps the details of where +inf came from
    passed = ThresholdCheck("failover.lag.p99", min=3)(_doc(lag=lag))
    assert passed.passed is True and passed.value == math.inf
    assert passed.details == "+inf: the percentile lands on a censored sample"


@pytest.mark.parametrize("value, kind", [(True, "bool"), ("12", "str"), ({"p99": 1}, "dict")])
def test_a_metric_that_is_not_a_number_is_unknown_and_named(value, kind):
    result = ThresholdCheck("failover.x", max=3)(_doc(x=value))
    assert result == CheckResult("failover.x", UNKNOWN, value, {"max": 3},
                                 f"not a number: {kind}")


def test_integers_are_numbers():
    assert ThresholdCheck("durability.lost", max=0)(_doc()).passed is True


# --------------------------------------------------------------------------- checks_from_spec


def test_each_spec_entry_becomes_a_check_with_its_bounds():
    spec = {"failover.recovered_fraction": {"min": 1.0},
            "durability.lost": {"max": 0},
            "failover.client_lag_ms.p99": {"min": 1, "max": 250}}
    assert checks_from_spec(spec) == [
        ThresholdCheck("failover.recovered_fraction", min=1.0),
        ThresholdCheck("durability.lost", max=0),
        ThresholdCheck("failover.client_lag_ms.p99", min=1, max=250)]
    assert checks_from_spec({}) == []


@pytest.mark.parametrize("spec, message", [
    ({"a.b": 3}, "slo.a.b: a table with min and/or max"),
    ({"a.b": {}}, "slo.a.b: a table with min and/or max"),
    ({"a.b": {"min": 1, "below": 3, "above": 4}}, "slo.a.b: only min and max, not ['above', 'below']"),
    ({"a.b": {"min": 1, "max": "3"}}, "slo.a.b.max: a number"),
    ({"a.b": {"min": True}}, "slo.a.b.min: a number"),
])
def test_a_malformed_entry_says_where_and_what_was_expected(spec, message):
    with pytest.raises(ConfigError) as info:
        checks_from_spec(spec)
    assert str(info.value) == message


def test_the_source_prefixes_the_key_unless_empty():
    with pytest.raises(ConfigError) as info:
        checks_from_spec({"a.b": {"max": None}}, source="profile.slo")
    assert info.value.key == "profile.slo.a.b.max"
    with pytest.raises(ConfigError) as info:
        checks_from_spec({"a.b": {"max": None}}, source="")
    assert info.value.key == "a.b.max"


def test_a_float_or_int_bound_is_accepted_and_a_bad_entry_after_good_ones_still_fails():
    assert checks_from_spec({"x": {"min": 0.5, "max": 2}})[0].threshold == {"min": 0.5, "max": 2}
    with pytest.raises(ConfigError):
        checks_from_spec({"x": {"max": 2}, "y": {"max": [2]}})


# --------------------------------------------------------------------------- conclude


def test_a_saturated_run_without_a_reason_still_says_it_was_its_own_bottleneck():
    results = Results.from_dict({"policies": {"failover": {"recovered_fraction": 1.0}},
                                 "load_generator": {"saturated": True, "reason": ""}})
    settled = settle(results, {"failover.recovered_fraction": {"min": 1.0}})
    assert settled.slo.verdict == "unknown"
    assert settled.slo.unknown_reason == "the test bench was its own bottleneck: ?"


# --------------------------------------------------------------------------- run_checks


class _NamedCheck:
    """A check object (as an extra check) that names itself and fails to run."""

    def __init__(self):
        self.name, self.threshold = "load_generator.self_check", {"max": 1}

    def __call__(self, results):
        raise RuntimeError("boom")


def test_a_check_that_raises_keeps_its_own_name_and_threshold():
    [result] = run_checks([_NamedCheck()], {})
    assert result == CheckResult("load_generator.self_check", UNKNOWN, None, {"max": 1},
                                 "check raised RuntimeError: boom")


def test_a_nameless_check_that_raises_is_named_by_its_repr():
    check = functools.partial(_NamedCheck.__call__, None)       # no name, no __name__
    [result] = run_checks([check], {})
    assert result.name == repr(check) and result.passed == UNKNOWN


# --------------------------------------------------------------------------- evaluate


def test_an_unknown_verdict_names_every_check_without_one_and_why():
    def silent(results):
        return CheckResult("silent", UNKNOWN)                    # no details at all

    slo = evaluate({"failover.nope": {"max": 1}, "failover.x": {"max": 1}}, _doc(x=None),
                   extra=[silent])
    assert slo.verdict == "unknown"
    assert slo.unknown_reason == (
        "SLO check failover.nope has no verdict (no metric 'failover.nope' (missing 'nope')); "
        "SLO check failover.x has no verdict (no value); "
        "SLO check silent has no verdict (no value)")


def test_an_unknown_verdict_always_has_a_reason_and_a_known_one_none():
    assert slo_block(UNKNOWN, []).unknown_reason == "unknown"
    assert slo_block(UNKNOWN, [], "").unknown_reason == "unknown"
    assert slo_block(True, [], "ignored").unknown_reason is None
    assert slo_block(False, []).unknown_reason is None


def test_a_root_block_wins_over_a_policy_of_the_same_name():
    # policy names are the user's; the root blocks' names are fixed: a policy named
    # "durability" must not hide durability.lost
    doc = {"policies": {"durability": {"lost": 7}}, "durability": {"lost": 0}}
    assert ThresholdCheck("durability.lost", max=0)(doc).passed is True


def test_a_one_part_path_is_a_root_metric():
    assert ThresholdCheck("lost", max=0)({"lost": 0, "policies": {}}).passed is True


# --------------------------------------------------------------------------- slo_unknown_reason


@pytest.mark.parametrize("document, reason", [
    # an empty reason in the file is no reason: the report must still say something
    ({"slo": {"passed": "unknown", "unknown_reason": ""}}, "unknown"),
    ({"slo": {"passed": "unknown", "checks": []},
      "load_generator": {"saturated": True, "reason": ""}},
     "the test bench was its own bottleneck: ?"),
    ({"slo": {"passed": "unknown", "checks": []}, "interrupted": True}, "the run was interrupted"),
    ({"slo": {"passed": "unknown", "checks": []}, "interrupted": False}, "unknown"),
    ({"interrupted": True}, "the run was interrupted"),
    ({}, "no slo object in results.json"),
    # only the checks with no verdict are named: a passed or failed one has one
    ({"slo": {"passed": "unknown", "checks": [{"name": "a", "passed": True},
                                              {"name": "b", "passed": None},
                                              {"name": "c", "passed": False},
                                              {"name": "d", "passed": "unknown"}]}},
     "SLO checks with no verdict: b, d"),
])
def test_an_old_unknown_verdict_says_why_from_what_the_file_holds(document, reason):
    assert slo_unknown_reason(Results.from_dict(document)) == reason
