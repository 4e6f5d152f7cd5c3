"""results.json and timeline.json: the shapes of DESIGN.md "Outputs", written as strict JSON."""

from __future__ import annotations

import json

import pytest
from support.metrics import meta, op, record_in_end_order, writes

from loadgen.metrics import (FaultEvent, Recorder, Results, build_results, build_timeline,
                             write_results, write_timeline)

pytestmark = pytest.mark.unit

T_START, T_END = 90.0, 120.0
KILL = FaultEvent(id="f1", kind="kill", node="replica1", t_inject=100.0, t_heal=100.8,
                  affected_partitions=(3, 5), server_failover_s={3: 0.8, 5: 0.8})
SKIPPED = FaultEvent(id="f2", kind="pause", node="replica2", t_inject=110.0,
                     affected_partitions=(1,), skipped=True, skip_reason="not healthy in 60 s")
SLO = {"failover.recovered_fraction": {"min": 1.0}, "durability.lost": {"max": 0},
       "failover.client_lag_ms.p99": {"max": 250}}


def _state():
    history = []
    for pidx in (3, 5):
        history += writes(90, 120, partition=pidx, ok=lambda t: not 100 <= t < 100.85)
        history += writes(90, 120, partition=pidx, policy="legacy", ok=lambda t: t < 100)
    history += [op(95.0 + k / 10, name="get", partition=k % 8) for k in range(50)]
    history += [meta(100.1 + k / 5) for k in range(10)] + [meta(100.5, policy="legacy")]
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3, 5))])
    return r.snapshot()


def _results() -> Results:
    return build_results(_state(), [KILL, SKIPPED], t_start=T_START, t_end=T_END,
                         missed={"legacy": 7}, durability={"acked": 500, "verified": 499},
                         slo=SLO, extra={"seed": 42, "profile": {"name": "ci"}})


def test_results_have_the_documented_shape():
    results = _results().to_dict()
    json.dumps(results, allow_nan=False)                     # strict JSON throughout
    assert results["seed"] == 42 and results["run"]["table"] == "temp"
    for name in ("failover", "legacy"):
        p = results["policies"][name]
        for key in ("ops", "errors", "error_rate", "error_rate_by_phase", "errors_by_kind",
                    "attempts_per_op", "meta_queries_per_s", "missed", "latency_us",
                    "ttr_first_ms", "ttr_stable_ms", "client_lag_ms", "recovered_fraction"):
            assert key in p, (name, key)
        assert set(p["error_rate_by_phase"]) == {"fault", "recovery", "steady"}
        assert set(p["latency_us"]) == ({"put", "get"} if name == "failover" else {"put"})
        assert set(p["latency_us"]["put"]) == {"service", "response"}
        assert set(p["latency_us"]["put"]["service"]) == {"count", "p50", "p99", "p999", "max"}
        for ttr in ("ttr_first_ms", "ttr_stable_ms", "client_lag_ms"):
            assert {"n", "recovered", "p50", "p99", "max"} <= set(p[ttr])
    failover, legacy = results["policies"]["failover"], results["policies"]["legacy"]
    assert failover["ops"] == 2 * 600 + 50 and failover["missed"] == 0    # not in the map
    assert legacy["missed"] == 7 and legacy["recovered_fraction"] == 0.0
    assert failover["meta_queries"] == 10
    assert failover["meta_queries_per_s"] == pytest.approx(10 / 10.8)
    assert failover["ttr_first_ms"]["n"] == 2 and failover["recovered_fraction"] == 1.0
    assert legacy["ttr_first_ms"]["p50"] is None              # censored, never 0


def test_fault_entries_and_verdicts():
    results = _results().to_dict()
    kill, skipped = results["faults"]
    assert {k: kill[k] for k in ("id", "kind", "node", "t_inject", "t_heal",
                                 "affected_partitions")} == {
        "id": "f1", "kind": "kill", "node": "replica1", "t_inject": 100.0, "t_heal": 100.8,
        "affected_partitions": [3, 5]}
    assert kill["server_failover_ms"] == {"3": 800.0, "5": 800.0}
    first = kill["ttr"]["failover"]["3"]
    assert first["first_ms"] == pytest.approx(855.5) and first["recovered"] is True
    assert first["stable_ms"] == 1000.0 and first["lag_ms"] == pytest.approx(55.5)
    assert kill["ttr"]["legacy"]["5"] == {
        "first_ms": 20000.0, "stable_ms": 20000.0, "lag_ms": 19200.0, "recovered": False,
        "stable_recovered": False, "lag_negative": False, "horizon_ms": 20000.0}
    assert skipped["skipped"] is True and skipped["ttr"] == {}
    assert skipped["skip_reason"] == "not healthy in 60 s"
    assert results["durability"] == {"acked": 500, "verified": 499, "lost": 1}
    slo = results["slo"]
    assert slo["verdict"] == "fail" and slo["passed"] is False   # one write was lost
    assert [(c["name"], c["passed"]) for c in slo["checks"]] == [
        ("failover.recovered_fraction", True), ("durability.lost", False),
        ("failover.client_lag_ms.p99", True)]


def test_extra_keys_may_not_replace_computed_ones():
    with pytest.raises(ValueError, match="policies"):
        build_results(_state(), [KILL], t_start=T_START, t_end=T_END, extra={"policies": {}})


def test_the_document_reads_back_as_it_was_written(tmp_path):
    results = _results()
    on_disk = json.loads(write_results(tmp_path / "results.json", results).read_text())
    again = Results.from_dict(on_disk)
    assert again == results                              # the same typed tree
    assert json.dumps(again.to_dict()) == json.dumps(on_disk)   # key for key, in order
    assert list(on_disk) == ["format", "version", "run", "policies", "faults", "durability",
                             "profile", "seed", "slo"]
    kill = again.faults[0]
    assert kill.server_failover_ms == {3: 800.0, 5: 800.0}     # partitions as ints
    assert kill.ttr["failover"][3].recovered is True
    assert again.policies["legacy"].ttr_first_ms.or_inf(None) == float("inf")   # censored


def test_timeline_has_per_second_and_per_partition_series(tmp_path):
    timeline = build_timeline(_state(), [KILL, SKIPPED], t_start=T_START, t_end=T_END)
    path = write_timeline(tmp_path / "timeline.json", timeline)
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(json.dumps(timeline))
    assert [p["name"] for p in loaded["phases"]] == ["fault", "recovery"]
    per_second = loaded["policies"]["failover"]["per_second"]
    assert per_second["t"][0] == 90.0 and len(per_second["t"]) == 30
    second_100 = per_second["t"].index(100.0)
    assert per_second["ops"][second_100] == 40                # 2 partitions x 20 writes
    assert per_second["ops"][per_second["t"].index(95.0)] == 40 + 10   # + 10 gets
    assert per_second["errors"]["ERR_TIMEOUT"][second_100] == 2 * 17
    assert per_second["meta_queries"][second_100] == 5
    assert per_second["p50_response_ms"][0] == pytest.approx(3.0, rel=0.04)
    assert per_second["p99_response_ms"][second_100] == pytest.approx(1000, rel=0.04)
    series = loaded["policies"]["failover"]["partitions"]["temp:3"]
    assert set(series) == {"t", "width_s", "ok", "fail", "unknown"}
    assert set(series["width_s"]) == {0.01}                  # all within 30 s of the fault
    assert sum(series["ok"]) + sum(series["unknown"]) == 600


def test_results_written_atomically(tmp_path):
    path = write_results(tmp_path / "out" / "results.json", _results())
    assert json.loads(path.read_text())["policies"]["failover"]["ops"] == 1250
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
