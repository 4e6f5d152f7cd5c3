"""SLO checks: verdicts true/false/unknown, merged false > unknown > true; crashes are unknown."""

from __future__ import annotations

import pytest

from loadgen.errors import ConfigError
from loadgen.metrics.slo import (UNKNOWN, CheckResult, ThresholdCheck, checks_from_spec,
                                 evaluate, merge_verdicts, resolve_metric, run_checks)

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
    assert passed["passed"] is True
    assert [c["name"] for c in passed["checks"]] == list(SPEC)
    assert passed["checks"][2] == {"name": "failover.client_lag_ms.p99", "value": 40.0,
                                   "threshold": {"max": 250}, "passed": True, "details": ""}
    failed = evaluate(SPEC, _results(recovered_fraction=0.75))
    assert failed["passed"] is False and failed["checks"][0]["passed"] is False


def test_a_missing_metric_is_unknown_not_passed():
    results = _results()
    del results["durability"]
    out = evaluate(SPEC, results)
    assert out["passed"] == UNKNOWN
    assert out["checks"][1]["passed"] == UNKNOWN and "durability" in out["checks"][1]["details"]


def test_a_censored_percentile_is_infinite_and_fails_a_max():
    lag = {"n": 4, "recovered": 3, "censored": 1, "p50": 12.0, "p99": None, "max": None}
    check = ThresholdCheck("failover.client_lag_ms.p99", max=250)(_results(client_lag_ms=lag))
    assert check.passed is False and "censored" in check.details
    assert check.as_dict()["value"] is None                   # JSON has no infinity
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
    assert evaluate({}, {}, extra=[broken])["passed"] == UNKNOWN
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
