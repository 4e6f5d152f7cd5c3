"""results.json's typed tree: ``Results.from_dict(d).to_dict() == d`` for what the run writes
and for older files that lack later keys; the verdict settled when the results are built."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from support.runs import make_run

from loadgen.metrics import Recorder, build_results
from loadgen.metrics.results import (FaultResult, LoadGenerator, PolicyResult, Results, RunFacts,
                                     Workers)
from loadgen.metrics.slo import slo_unknown_reason, slo_verdict
from loadgen.report import RunInputError, load_run

pytestmark = pytest.mark.unit

#: keys that came after the first results.json, per object (README "Reference")
LATER_POLICY_KEYS = ("replica_queries", "dropped", "dropped_by_partition", "ttr_hdr")
LATER_FAULT_KEYS = ("touched_partitions", "new_primary")
LATER_SLO_KEYS = ("verdict", "unknown_reason")
FACTS = ("profile", "seed", "versions", "machine", "clock_anchor")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def _document(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_a_run_folder_reads_back_key_for_key(run_dir):
    document = _document(run_dir)
    results = Results.from_dict(document)
    assert json.dumps(results.to_dict()) == json.dumps(document)     # values and key order
    assert load_run(run_dir).results == results
    kill = results.faults[0]
    assert isinstance(kill, FaultResult) and kill.affected_partitions == (3, 5, 6)
    assert kill.server_failover_ms == {3: 800.0, 5: 800.0, 6: 820.0}
    assert kill.ttr["legacy"][3].recovered is True
    assert results.facts.profile_name == "ci" and results.facts.seed == 42
    assert slo_verdict(results) == "unknown"             # make_run's SLO has a missing metric


def _old(document: dict) -> dict:
    """``document`` as a run from before the later keys wrote it."""
    old = json.loads(json.dumps(document))
    for policy in old["policies"].values():
        for key in LATER_POLICY_KEYS:
            del policy[key]
    for fault in old["faults"]:
        for key in LATER_FAULT_KEYS:
            del fault[key]
    for key in LATER_SLO_KEYS:
        del old["slo"][key]
    old["slo"]["passed"] = "unknown"                    # a string, as then
    for key in FACTS:
        del old[key]
    return old


def test_an_old_document_reads_back_without_the_keys_it_lacked(run_dir):
    old = _old(_document(run_dir))
    results = Results.from_dict(old)
    assert results.to_dict() == old
    failover = results.policies["failover"]
    assert failover.dropped == 0 and failover.dropped_by_partition == {}    # defaults
    assert set(LATER_POLICY_KEYS) <= failover.absent
    kill = results.faults[0]
    assert kill.new_primary == {} and kill.touched_partitions is None
    assert results.facts == RunFacts() and results.facts.compared == []
    assert slo_verdict(results) == "unknown"
    assert slo_unknown_reason(results).startswith("SLO checks with no verdict: java.")


def test_a_value_set_on_an_absent_key_is_written(run_dir):
    old = Results.from_dict(_old(_document(run_dir)))
    fault = replace(old.faults[0], touched_partitions=(3, 5, 6))
    assert fault.to_dict()["touched_partitions"] == [3, 5, 6]
    assert "new_primary" not in fault.to_dict()          # still absent, still left out
    assert "dropped" not in PolicyResult.from_dict({"ops": 1}).to_dict()


def test_foreign_or_malformed_documents_are_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match="format is 'pegbench-timeline'"):
        Results.from_dict({"format": "pegbench-timeline"})
    with pytest.raises(ValueError, match="version is 2"):
        Results.from_dict({"format": "pegbench-results", "version": 2})
    with pytest.raises(TypeError, match="FaultResult"):
        Results.from_dict({"faults": ["kill"]})
    document = _document(run_dir)
    document["faults"][0]["ttr"]["legacy"] = {"three": {}}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text(json.dumps(document))
    with pytest.raises(RunInputError, match="not shaped as results.json"):
        load_run(bad)


def _built(**facts) -> Results:
    return build_results(Recorder().snapshot(), [], t_start=0.0, t_end=1.0,
                         durability={"acked": 1, "verified": 1},
                         slo={"durability.lost": {"max": 0}}, extra=RunFacts(**facts))


def test_the_verdict_is_settled_when_the_results_are_built():
    assert _built().slo.verdict == "pass"
    busy = _built(load_generator=LoadGenerator(saturated=True, reason="hub late by 51 ms"))
    assert busy.slo.verdict == "unknown" and busy.slo.passed is None
    assert busy.slo.unknown_reason == "the test bench was its own bottleneck: hub late by 51 ms"
    assert busy.slo.checks[0].passed is True              # the checks say what they said
    stopped = _built(interrupted=True, workers=Workers(reported=("w1",), missing=("w2",)))
    assert stopped.slo.unknown_reason == ("the run was interrupted; "
                                          "no final report from workers w2")


def test_run_facts_sit_between_durability_and_slo_and_none_is_not_written():
    results = _built(seed=7, interrupted=False, workers=Workers(reported=("local",)))
    document = results.to_dict()
    assert list(document)[-5:] == ["durability", "seed", "workers", "interrupted", "slo"]
    assert document["workers"] == {"reported": ["local"], "missing": []}
    assert Results.from_dict(document) == results
