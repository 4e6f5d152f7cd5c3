"""The four verdict signals agree in every case: the exit code, results.json's ``slo``,
junit.xml and the report's badge, for pass, fail and unknown (the load generator its own
bottleneck, a metric with no value, an interrupted run, a missing worker report)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from xml.etree import ElementTree as ET

import pytest
from support.runs import make_run

from loadgen.harness.verdict import EXIT_OK, EXIT_VERDICT, exit_code_for
from loadgen.load.selfcheck import Saturation
from loadgen.metrics.outputs import write_results
from loadgen.metrics.results import LoadGenerator, Results
from loadgen.metrics.slo import settle, slo_verdict
from loadgen.report import write_report
from loadgen.report.junit import RUN_COMPLETE, SELF_CHECK, junit_xml
from loadgen.report.tables import verdict_block

pytestmark = pytest.mark.unit

SPEC = {"failover.recovered_fraction": {"min": 1.0}, "durability.lost": {"max": 0}}
HUB_LATE = "gevent hub late by 51 ms (median of the worst per second over 15 s)"
BUSY = Saturation(saturated=True, reason=HUB_LATE, cpu_max=0.36, late_max_ms=350.0)


def _concluded(*, recovered: float = 1.0, lost: int | None = 0, saturation=Saturation(),
               interrupted: bool = False, missing: tuple[str, ...] = ()) -> Results:
    """results.json as ``pegbench run`` settles its verdict (``build_results``)."""
    document = {"policies": {"failover": {"recovered_fraction": recovered}},
                "durability": {"acked": 10, "verified": 10, "lost": lost},
                "load_generator": saturation.as_dict(), "interrupted": interrupted,
                "workers": {"reported": ["local"], "missing": list(missing)}}
    if lost is None:
        del document["durability"]                         # the metric has no value
    return settle(Results.from_dict(document), SPEC)


def _junit(results: Results) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(suite counts, case name -> (failure | error | pass, message))."""
    root = ET.fromstring(junit_xml(results).split("?>", 1)[1])
    counts = {k: root.get(k) for k in ("tests", "failures", "errors")}
    cases = {}
    for case in root.findall("testcase"):
        child = next(iter(case), None)
        cases[case.get("name")] = ("pass", "") if child is None else (child.tag,
                                                                      child.get("message"))
    return counts, cases


def _badge(html: str) -> str:
    return re.search(r'Verdict <span class="badge (\w+)">(\w+)</span>', html).group(1)


CASES = {
    # name: (inputs, verdict, junit failures, junit errors, failing cases: name -> kind)
    "pass": ({}, "pass", 0, 0, {}),
    "fail": ({"recovered": 0.75}, "fail", 1, 0, {"failover.recovered_fraction": "failure"}),
    "unknown: self-bottleneck": ({"saturation": BUSY}, "unknown", 0, 1, {SELF_CHECK: "error"}),
    "unknown: self-bottleneck beats a failure": (
        {"saturation": BUSY, "recovered": 0.5}, "unknown", 1, 1,
        {SELF_CHECK: "error", "failover.recovered_fraction": "failure"}),
    "unknown: a metric with no value": ({"lost": None}, "unknown", 0, 1,
                                        {"durability.lost": "error"}),
    "unknown: interrupted": ({"interrupted": True}, "unknown", 0, 1, {RUN_COMPLETE: "error"}),
    "unknown: a worker's report missing": ({"missing": ("w2",)}, "unknown", 0, 1,
                                           {RUN_COMPLETE: "error"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_exit_code_results_junit_and_badge_agree(case, tmp_path):
    inputs, verdict, failures, errors, failing = CASES[case]
    results = _concluded(**inputs)
    # results.json: a verdict name, and booleans that stay booleans (null where unknown)
    on_disk = json.loads(write_results(tmp_path / "results.json", results).read_text())
    slo = on_disk["slo"]
    assert slo["verdict"] == verdict
    assert slo["passed"] is {"pass": True, "fail": False, "unknown": None}[verdict]
    assert all(c["passed"] in (True, False, None) for c in slo["checks"])
    assert bool(slo["unknown_reason"]) == (verdict == "unknown")
    # exit code
    code = exit_code_for(slo["verdict"])
    assert code == (EXIT_OK if verdict == "pass" else EXIT_VERDICT)
    # junit.xml, from the file as written
    written = Results.from_dict(on_disk)
    counts, cases = _junit(written)
    assert (counts["failures"], counts["errors"]) == (str(failures), str(errors))
    assert counts["tests"] == str(len(cases))
    assert {name: kind for name, (kind, _) in cases.items() if kind != "pass"} == failing
    assert cases[SELF_CHECK][0] == ("error" if inputs.get("saturation") else "pass")
    # the report's badge
    assert _badge(verdict_block(written, None)) == verdict
    # and all four agree: CI is red exactly when the exit code says so
    red = {code != EXIT_OK, failures + errors > 0, verdict != "pass",
           _badge(verdict_block(written, None)) != "pass"}
    assert len(red) == 1


def test_the_self_check_case_carries_the_reason_and_results_json_too():
    results = _concluded(saturation=BUSY)
    _, cases = _junit(results)
    assert cases[SELF_CHECK] == ("error", HUB_LATE)
    assert results.slo.unknown_reason == f"the test bench was its own bottleneck: {HUB_LATE}"
    assert results.facts.load_generator.saturated is True    # the saturation block stays
    assert "Unknown: the test bench was its own bottleneck" in verdict_block(results, None)


def test_an_interrupted_run_says_why_in_junit():
    _, cases = _junit(_concluded(interrupted=True, missing=("w1", "w2")))
    assert cases[RUN_COMPLETE] == (
        "error", "the run was interrupted; no final report from workers w1, w2")


@pytest.mark.parametrize("slo, load, verdict, errors", [
    ({"passed": "unknown", "checks": []}, {"saturated": True, "reason": HUB_LATE}, "unknown", 1),
    ({"passed": "unknown", "checks": [{"name": "a.b", "value": None, "threshold": {},
                                       "passed": "unknown", "details": "no value"}]},
     {"saturated": False}, "unknown", 1),
    ({"passed": True, "checks": []}, {"saturated": False}, "pass", 0),
    ({"passed": False, "checks": [{"name": "a.b", "value": 3, "threshold": {"max": 1},
                                   "passed": False, "details": ""}]}, None, "fail", 0),
])
def test_results_from_before_slo_verdict_still_give_agreeing_signals(slo, load, verdict, errors):
    # the overloaded run of issue #13: passed = "unknown", junit failures="0" errors="0"
    old = Results.from_dict({"slo": slo, **({"load_generator": load} if load is not None else {})})
    counts, _ = _junit(old)
    assert counts["errors"] == str(errors)
    assert (int(counts["failures"]) + errors > 0) == (verdict != "pass")
    assert _badge(verdict_block(old, None)) == verdict
    assert exit_code_for(slo["passed"]) == (EXIT_OK if verdict == "pass" else EXIT_VERDICT)


def test_a_file_whose_verdict_is_worse_than_its_cases_still_reads_red():
    for verdict, kind in (("unknown", "errors"), ("fail", "failures")):
        counts, cases = _junit(Results.from_dict({"slo": {"verdict": verdict, "checks": []}}))
        assert counts[kind] == "1" and "verdict" in cases


def test_the_report_page_badge_follows_slo_verdict(tmp_path):
    run_dir = make_run(tmp_path, policies=("legacy", "failover"), hlog=False)
    results = Results.from_dict(json.loads((run_dir / "results.json").read_text()))
    assert slo_verdict(results) == "unknown"            # make_run's SLO has a missing metric
    passing = settle(results, {"durability.lost": {"max": 0}})
    assert slo_verdict(passing) == "pass"
    busy = replace(passing, facts=replace(passing.facts,
                                          load_generator=LoadGenerator(**BUSY.as_dict())))
    write_results(run_dir / "results.json", settle(busy, {"durability.lost": {"max": 0}}))
    page = write_report(run_dir).read_text()
    assert _badge(page) == "unknown"
    assert f"Unknown: the test bench was its own bottleneck: {HUB_LATE}" in page
