"""SLO checks: verdicts true/false/unknown, merged false > unknown > true; crashes are unknown.
In results.json: ``slo.verdict`` names it, every ``passed`` is true, false or null."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.metrics.results import Results, SloCheck
from loadgen.metrics.slo import (UNKNOWN, CheckResult, ThresholdCheck, checks_from_spec,
                                 evaluate, merge_verdicts, resolve_metric, run_checks,
                                 slo_unknown_reason, slo_verdict, with_unknown)

pytestmark = pytest.mark.unit

SPEC = {"failover.recovered_fraction": {"min": 1.0}, "durability.lost": {"max": 0},
        "failover.client_lag_ms.p99": {"max": 250}}


def _results(**failover) -> dict:
    policy = {"recovered_fraction": 1.0,
              "client_lag_ms": {"n": 4, "recovered": 4, "censored": 0, "p50": 12.0,
                                "p99": 40.0, "max": 40.0}}
    policy.update(failover)
    return {"policies": {"failover": policy, "legacy": {"recovered_fraction": 0.0}},
            "durability": {"acked": 10, "verified": 10, "lost": 0}}


def test_merge_false_beats_unknown_beats_true():
    assert merge_verdicts([True, True]) is True
    assert merge_verdicts([True, UNKNOWN]) == UNKNOWN
    assert merge_verdicts([UNKNOWN, False, True]) is False
    assert merge_verdicts([]) is True


def test_metric_paths_start_at_a_policy_or_the_root():
    results = _results()
    assert resolve_metric(results, "failover.client_lag_ms.p99")[0] == 40.0
    assert resolve_metric(results, "durability.lost")[0] == 0
    assert resolve_metric(results, "policies.legacy.recovered_fraction")[0] == 0.0
    with pytest.raises(KeyError):
        resolve_metric(results, "failover.no_such_metric")


def test_the_spec_passes_and_fails():
    passed = evaluate(SPEC, _results())
    assert passed.verdict == "pass" and passed.passed is True
    assert passed.unknown_reason is None
    assert [c.name for c in passed.checks] == list(SPEC)
    assert passed.checks[2].to_dict() == {"name": "failover.client_lag_ms.p99", "value": 40.0,
                                          "threshold": {"max": 250}, "passed": True,
                                          "details": ""}
    failed = evaluate(SPEC, _results(recovered_fraction=0.75))
    assert failed.verdict == "fail" and failed.passed is False
    assert failed.checks[0].passed is False and failed.unknown_reason is None


def test_a_missing_metric_is_unknown_not_passed():
    results = _results()
    del results["durability"]
    out = evaluate(SPEC, results)
    assert out.verdict == "unknown" and out.passed is None     # null, never a string
    assert out.checks[1].passed is None and "durability" in out.checks[1].details
    assert out.unknown_reason.startswith("SLO check durability.lost has no verdict")


def test_a_censored_percentile_is_infinite_and_fails_a_max():
    lag = {"n": 4, "recovered": 3, "censored": 1, "p50": 12.0, "p99": None, "max": None}
    check = ThresholdCheck("failover.client_lag_ms.p99", max=250)(_results(client_lag_ms=lag))
    assert check.passed is False and "censored" in check.details
    assert check.entry() == SloCheck(name="failover.client_lag_ms.p99", value=None,   # no inf
                                     threshold={"max": 250}, passed=False,
                                     details=check.details)
    plain_null = ThresholdCheck("failover.recovered_fraction", min=1.0)(
        _results(recovered_fraction=None))
    assert plain_null.passed == UNKNOWN


def test_a_check_that_raises_is_unknown():
    def broken(results):
        raise RuntimeError("boom")

    def fine(results):
        return CheckResult("fine", True)

    out = run_checks([broken, fine], {})
    assert [r.passed for r in out] == [UNKNOWN, True]
    assert out[0].name == "broken" and "RuntimeError: boom" in out[0].details
    assert evaluate({}, {}, extra=[broken]).passed is None
    not_a_number = ThresholdCheck("failover.client_lag_ms", max=1)(_results())
    assert not_a_number.passed == UNKNOWN


@pytest.mark.parametrize("spec, key", [
    ({"a.b": {"below": 3}}, "slo.a.b"),
    ({"a.b": {}}, "slo.a.b"),
    ({"a.b": 3}, "slo.a.b"),
    ({"a.b": {"max": "3"}}, "slo.a.b.max"),
])
def test_a_malformed_spec_is_a_config_error(spec, key):
    with pytest.raises(ConfigError) as info:
        checks_from_spec(spec)
    assert info.value.key == key


def test_unknown_overrides_any_verdict_and_keeps_every_reason():
    failed = evaluate(SPEC, _results(recovered_fraction=0.75))
    out = with_unknown(failed, "the load generator was its own bottleneck: CPU")
    assert (out.verdict, out.passed) == ("unknown", None)
    assert out.checks == failed.checks                       # the checks say what they said
    results = _results()
    del results["durability"]
    twice = with_unknown(evaluate(SPEC, results), "interrupted")
    assert twice.unknown_reason.startswith("interrupted; SLO check durability.lost")


@pytest.mark.parametrize("results, verdict", [
    ({"slo": {"verdict": "pass", "passed": True}}, "pass"),
    ({"slo": {"verdict": "unknown", "passed": None}}, "unknown"),
    ({"slo": {"verdict": "fail", "passed": False}}, "fail"),
    # files written before slo.verdict: passed was true, false or the string "unknown"
    ({"slo": {"passed": True}}, "pass"),
    ({"slo": {"passed": False}}, "fail"),
    ({"slo": {"passed": "unknown"}}, "unknown"),
    ({"slo": {"passed": True}, "load_generator": {"saturated": True, "reason": "CPU"}}, "unknown"),
    ({"slo": {"passed": None}}, "unknown"),
    ({}, "unknown"),
])
def test_slo_verdict_reads_new_and_old_results(results, verdict):
    results = Results.from_dict(results)
    assert slo_verdict(results) == verdict
    assert bool(slo_unknown_reason(results)) == (verdict == "unknown")


def test_an_old_unknown_gets_a_reason_from_what_the_file_says():
    old = Results.from_dict({"slo": {"passed": "unknown", "checks": []}, "interrupted": False,
                             "load_generator": {"saturated": True,
                                                "reason": "gevent hub late by 51 ms"}})
    assert slo_unknown_reason(old) == ("the test bench was its own bottleneck: "
                                       "gevent hub late by 51 ms")
    old = Results.from_dict({"slo": {"passed": "unknown",
                                     "checks": [{"name": "a.b", "passed": "unknown"}]}})
    assert slo_unknown_reason(old) == "SLO checks with no verdict: a.b"
