"""Real clients as rows of a run (issue 17): ``[clients.NAME]`` adapters beside the policies.

One ``pegbench run`` on a onebox with three adapters around pegbench's own client
(tests/support/own_adapter.py): an honest one (the ``failover`` policy inside), a liar that
acknowledges writes it never sent, and one that exits mid-run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.pegbench_cli import PROFILE, pegbench
from support.processes import processes_mentioning

from loadgen.config.profile import load_profile
from loadgen.errors import ConfigError

pytestmark = [pytest.mark.onebox, pytest.mark.timeout(240)]

ADAPTER = str(Path(__file__).parent / "support" / "own_adapter.py")


def _clients(**commands: list[str]) -> str:
    out = ""
    for name, args in commands.items():
        command = json.dumps([sys.executable, ADAPTER, *args])
        out += f"[clients.{name}]\ncommand = {command}\noptions = {{ policy = \"failover\" }}\n"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    profile = tmp / "real.toml"
    text = PROFILE.format(duration=14).replace('compare = ["legacy", "failover"]',
                                               'compare = ["failover"]')
    profile.write_text(text + _clients(own=[], liar=["lying"], dier=["die-at", "300"]))
    out = tmp / "out"
    proc = pegbench("run", str(profile), "--out", str(out))
    stdout, stderr = proc.communicate(timeout=200)
    assert (out / "results.json").is_file(), stderr[-3000:]
    return SimpleNamespace(code=proc.returncode, stdout=stdout, out=out,
                           results=json.loads((out / "results.json").read_text()))


def test_real_client_rows_are_measured_like_the_policies(run):
    results = run.results
    assert set(results["policies"]) == {"failover", "real:own", "real:liar", "real:dier"}
    own, failover = results["policies"]["real:own"], results["policies"]["failover"]
    assert own["ops"] > 0.8 * failover["ops"]        # the same open-loop schedule
    assert own["ttr_first_ms"]["recovered"] == own["ttr_first_ms"]["n"] > 0
    # the same logic behind the adapter recovers as the policy's row does: the adapter adds
    # no bias beyond a pipe hop (the check a model gets against its real client)
    for fault in results["faults"]:
        for part, sample in fault["ttr"]["real:own"].items():
            policy = fault["ttr"]["failover"][part]
            assert abs(sample["first_ms"] - policy["first_ms"]) <= max(0.2 * policy["first_ms"], 300)
    info = results["real_clients"]["real:own"]
    assert (info["client"], info["version"]) == ("pegbench-own", "failover")
    assert info["died_at"] is None and info["meta_queries_counted"] is True
    # counted on the meta's side, from the adapter's sockets: at least its table's first query
    assert own["meta_queries"] >= 1 and own["attempts_per_op"] is None
    assert "real:own: real client pegbench-own failover through its adapter" in run.stdout
    assert processes_mentioning(ADAPTER) == []


def test_a_real_clients_acknowledged_writes_are_read_back(run):
    results = run.results
    by_row = results["durability"]["by_policy"]
    assert by_row["real:own"]["acked"] > 50 and by_row["real:own"]["lost"] == 0
    assert by_row["failover"]["lost"] == 0
    # the liar acknowledged writes it never sent: every one is found missing
    assert by_row["real:liar"]["acked"] > 50
    assert by_row["real:liar"]["lost"] == by_row["real:liar"]["acked"]
    assert results["durability"]["lost"] == by_row["real:liar"]["lost"]
    assert results["slo"]["verdict"] == "fail" and run.code == 1
    assert f"lost (real:liar {by_row['real:liar']['lost']})" in run.stdout
    assert "<td>lost writes</td>" in (run.out / "report.html").read_text()


def test_a_dead_adapter_fails_its_row_and_the_run_goes_on(run):
    results = run.results
    info = results["real_clients"]["real:dier"]
    run_info = results["run"]
    assert info["died_at"] is not None and info["died_at"] < run_info["t_end"]
    assert "exit status 5" in info["error"]
    dier = results["policies"]["real:dier"]
    assert dier["errors_by_kind"].get("ADAPTER_DOWN", 0) > 0
    assert dier["ttr_first_ms"]["recovered"] == 0
    # the other rows were not held up by it
    assert results["policies"]["failover"]["ttr_first_ms"]["recovered"] > 0
    died_s = info["died_at"] - run_info["t_start"]
    assert f"the adapter died {died_s:.1f} s into the run" in (run.out / "report.html").read_text()


@pytest.mark.parametrize("body, key, expected", [
    ('[clients.x]\n', "clients.x.command", "required"),
    ('[clients.x]\ncommand = []\n', "clients.x.command", "non-empty array"),
    ('[clients.x]\ncommand = ["a"]\nport = 1\n', "clients.x.port", "no such key"),
    ('[clients."a.b"]\ncommand = ["a"]\n', 'clients."a.b"', "letters, digits"),
])
def test_bad_client_tables_are_named(tmp_path, body, key, expected):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n' + body)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert key in str(info.value) and expected in str(info.value) and "p.toml" in str(info.value)


@pytest.mark.parametrize("counted", [True, False])
def test_a_real_client_row_says_what_it_cannot_know(counted):
    from support.metrics import meta, op

    from loadgen.metrics import Recorder
    from loadgen.metrics.analysis import policy_results

    recorder = Recorder()
    for i in range(20):
        recorder.record(op(100.0 + i * 0.05, policy="real:x"))
    recorder.record(meta(100.5, policy="real:x"))
    state = recorder.snapshot().policies["real:x"]
    real = policy_results(state, ttrs=[], name="real:x", spans=[], t_start=100.0, t_end=102.0,
                          real_client={"meta_queries_counted": counted})
    as_policy = policy_results(state, ttrs=[], name="real:x", spans=[], t_start=100.0,
                               t_end=102.0)
    assert as_policy.attempts_per_op == 1.0 and real.attempts_per_op is None
    assert as_policy.meta_queries_per_s_overall == 0.5
    assert real.meta_queries_per_s_overall == (0.5 if counted else None)


def test_the_recovery_tab_marks_a_real_clients_row():
    from support.metrics import op

    from loadgen.harness.webui import RecoveryTab
    from loadgen.load.workload import WorkloadSettings
    from loadgen.metrics import Recorder

    settings = WorkloadSettings(meta=("127.0.0.1:1",), policies=("failover",),
                                clients={"real:x": {"command": ["x"]}})
    recorder = Recorder()
    for row in ("failover", "real:x"):
        recorder.record(op(100.0, policy=row))
    statuses = {"real:x": [{"client": "pypegasus3", "version": "0.0.1.1", "died_at": None},
                           {"client": "pypegasus3", "version": "0.0.1.1", "died_at": 101.0,
                            "error": "adapter real:x exited (exit status 5)"}]}
    harness = SimpleNamespace(
        settings=settings, workload=SimpleNamespace(labels={"failover": "failover"}),
        live_state=lambda: recorder.snapshot(histograms=False), live_missed=dict,
        relay=SimpleNamespace(fault_events=list), finished=[],
        live_real_clients=lambda: statuses)
    rows = {r["name"].split(" ")[0]: r for r in RecoveryTab(harness, clock=lambda: 101.0).rows()
            if r["kind"] == "policy"}
    assert rows["failover"]["name"] == "failover" and rows["failover"]["attempts_per_op"] == 1.0
    real = rows["real:x"]
    assert real["name"] == ("real:x (real client: pypegasus3 0.0.1.1); adapter died: "
                            "adapter real:x exited (exit status 5)")
    assert real["attempts_per_op"] == "n/a" and real["meta_qps"] == "n/a"   # no query log
    assert real["ops"] == 1


def test_a_real_client_is_never_the_reports_old_or_new():
    from loadgen.report.views import old_new

    order = ["refresh-on-timeout", "pypegasus", "failover", "real:pypegasus"]
    assert old_new(order) == ("refresh-on-timeout", "real:pypegasus")   # rows alone
    assert old_new(order, {"real:pypegasus"}) == ("refresh-on-timeout", "failover")
    assert old_new(["legacy", "real:x", "failover"], {"real:x"}) == ("legacy", "failover")
    assert old_new(["failover", "real:x"], {"real:x"}) is None
