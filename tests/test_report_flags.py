"""The "new primary faulted recently" flag, from fault records to results.json and the report.

A hand-built compound run: a kill of replica1 at 20 s (restarted at 32 s), then at 50 s a pause
of replica2 whose partition 3 the meta hands to replica1 (faulted 30 s earlier: inside Go's
60 s redial throttle) and partition 5 to replica3 (never faulted: isolated). Built through the
real pipeline (Recorder → build_results → report), as tests/support/runs.py builds its runs.
"""

from __future__ import annotations

import json
import re

import pytest
from support.metrics import record_in_end_order, writes
from support.runs import make_run, write_run_files

from loadgen.faults.records import FaultRecord
from loadgen.metrics import FaultEvent, Recorder, build_results
from loadgen.report import main

pytestmark = pytest.mark.unit

T_START, T_END = 10.0, 80.0
FLAG = "new primary replica1 faulted 30 s earlier"


def _records() -> list[FaultRecord]:
    common = {"origin": "events", "injector": "onebox", "healed_by": "plan"}
    return [
        FaultRecord(FaultEvent(id="1", kind="kill", node="replica1", t_inject=20.0, t_heal=32.0,
                               affected_partitions=(0,), server_failover_s={0: 1.5},
                               touched_partitions=(0, 3, 5), promoted={0: "replica2"}),
                    target="replica1", at_s=10.0, t_planned=20.0, addr="127.0.0.1:1", **common),
        FaultRecord(FaultEvent(id="2", kind="pause", node="replica2", t_inject=50.0, t_heal=54.0,
                               affected_partitions=(3, 5), server_failover_s={3: 1.6, 5: 1.6},
                               touched_partitions=(0, 3, 5),
                               promoted={3: "replica1", 5: "replica3"}),
                    target="replica2", at_s=40.0, t_planned=50.0, addr="127.0.0.1:2", **common),
    ]


def _compound_run(directory):
    records = _records()
    events = [r.event for r in records]
    history = []
    for policy in ("legacy", "failover"):
        for pidx, fault in ((0, 20.0), (3, 50.0), (5, 50.0)):
            outage = 30.0 if policy == "legacy" and pidx == 3 else 1.7
            history += writes(T_START, T_END, partition=pidx, policy=policy,
                              ok=lambda t, a=fault, b=fault + outage: not a <= t < b)
    recorder = Recorder()
    record_in_end_order(recorder, history, faults=[(e.t_inject, e.affected_partitions)
                                                   for e in events])
    state = recorder.snapshot()
    extra = {"seed": 1, "profile": {"name": "compound",
                                    "policies": {"compare": ["legacy", "failover"]}}}
    results = build_results(state, events, t_start=T_START, t_end=T_END, extra=extra)
    return write_run_files(directory, results, state, records, t_start=T_START, t_end=T_END)


@pytest.fixture(scope="module")
def compound(tmp_path_factory):
    directory = _compound_run(tmp_path_factory.mktemp("compound"))
    assert main([str(directory)]) == 0
    return (json.loads((directory / "results.json").read_text()),
            (directory / "report.html").read_text(encoding="utf-8"))


def test_results_carry_the_promoted_node_and_the_age_of_its_last_fault(compound):
    results, _ = compound
    kill, pause = results["faults"]
    assert pause["new_primary"]["3"] == {"node": "replica1", "last_fault_id": "1",
                                         "last_fault_age_s": 30.0, "recently_faulted": True}
    assert pause["new_primary"]["5"] == {"node": "replica3", "last_fault_id": None,
                                         "last_fault_age_s": None, "recently_faulted": False}
    assert kill["new_primary"]["0"]["recently_faulted"] is False
    assert pause["touched_partitions"] == [0, 3, 5]
    # the kill's horizon on partition 3 (a secondary there) is the pause that touched it
    assert kill["ttr"]["failover"]["0"]["horizon_ms"] == 30000.0


def _row(page: str, fault: str, partition: int) -> str:
    table = page[page.index('<table class="faults">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)
    return next(r for r in rows if r.startswith(f"<td>{fault}</td>")
                and f"<td>{partition}</td>" in r)


def test_the_per_fault_table_flags_only_the_inheriting_sample(compound):
    _, page = compound
    assert FLAG in _row(page, "2", 3)
    assert "faulted" not in _row(page, "2", 5) and "replica3" in _row(page, "2", 5)
    assert "faulted" not in _row(page, "1", 0)
    assert "less than 60 s earlier" in page          # the note saying why


def test_the_ttr_figure_flags_the_row_and_its_hovers(compound):
    _, page = compound
    start = page.index('id="fig-fault-detail"')
    figure = page[start:page.index("</script>", start)]
    assert FLAG in figure
    assert figure.count(f"\\u26a0 {FLAG}") + figure.count(f"⚠ {FLAG}") >= 2   # label + hovers


def test_old_results_without_the_new_fields_still_make_a_report(tmp_path):
    run = make_run(tmp_path / "old")
    path = run / "results.json"
    results = json.loads(path.read_text())
    for fault in results["faults"]:
        fault.pop("new_primary", None)
        fault.pop("touched_partitions", None)
    path.write_text(json.dumps(results))
    assert main([str(run)]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert 'class="faults"' in page and "faulted" not in _row(page, "1", 3)
