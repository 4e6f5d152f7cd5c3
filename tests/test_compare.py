"""``pegbench compare``: run folders side by side (one or several per side), exit 1 only on a
regression that is significant and beyond the threshold (naming the metric), 2 on unreadable
input (naming the file)."""

from __future__ import annotations

import json
import re

import pytest
from support.runs import NEVER, default_delay, make_run

from loadgen.report.compare import main, parse_regression, relative_change, split_sides
from loadgen.report.compare_page import FIGURE_ID
from loadgen.report.style import policy_colours

pytestmark = pytest.mark.unit


def _slower_failover(policy, fault, partition):
    """failover recovers 1 s later after each kill: TTR-first and client lag rise."""
    delay = default_delay(policy, fault, partition)
    return delay + 1.0 if policy == "failover" and fault.event.kind == "kill" else delay


def _failover_never_after_fault_3(policy, fault, partition):
    delay = default_delay(policy, fault, partition)
    return NEVER if policy == "failover" and fault.id == 3 else delay


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"base": make_run(root / "base"), "same": make_run(root / "same"),
            "slower": make_run(root / "slower", delay=_slower_failover),
            "unrecovered": make_run(root / "unrecovered", delay=_failover_never_after_fault_3)}


def _row(out: str, policy: str, metric: str) -> str:
    return next(line for line in out.splitlines() if re.match(rf"{policy}\s+{metric}\s", line))


def test_identical_runs_exit_0_with_every_change_not_significant(runs, capsys):
    assert main([str(runs["base"]), str(runs["same"])]) == 0
    out, err = capsys.readouterr()
    assert "verdict: PASS" in out and err == ""
    row = _row(out, "failover", "ttr_first_ms")
    assert re.search(r"955\.5 ± \d+ ms \(n=7\)\s+955\.5 ± \d+ ms \(n=7\)\s+~\s+p=1 n=7\+7$", row)
    # 3 faults a run: one run a side cannot test the per-fault rates
    assert "~       too few samples (n=3+3)" in _row(out, "failover", "meta_queries_per_s")


def test_a_significantly_slower_candidate_exits_1_and_names_the_metrics(runs, capsys):
    assert main([str(runs["base"]), str(runs["slower"]), "--max-regression", "10%"]) == 1
    out, err = capsys.readouterr()
    assert "verdict: FAIL (1 regressions)" in out
    assert set(re.findall(r"REGRESSION (\S+ \S+):", err)) == {"failover ttr_first_ms"}
    line = next(x for x in err.splitlines() if "failover ttr_first_ms" in x)
    assert "955.5 ± 175 ms (n=7) -> 1,906 ± 100 ms (n=7) (+99.4 %): median beyond" in line
    p = float(re.search(r"p = ([\d.e-]+)", line).group(1))
    assert p < 0.05
    assert "WORSE" in _row(out, "failover", "ttr_first_ms")
    assert _row(out, "java", "ttr_first_ms").split()[-3:] == ["~", "p=1", "n=7+7"]
    # client lag rises on the 5 kill samples only, and the 2 pause lags (~20 ms) rank below
    # every kill lag on both sides: at n = 7+7 that is not significant (TTR-first is, as the
    # pauses' TTR-first ranks between the base's and the candidate's kills)
    assert re.search(r"~\s+p=0\.11 n=7\+7$", _row(out, "failover", "client_lag_ms"))


def test_by_kind_finds_a_change_that_hits_one_fault_kind(runs, capsys):
    assert main([str(runs["base"]), str(runs["slower"]), "--by-kind"]) == 1
    out, err = capsys.readouterr()
    # kills only: 5+5 samples fully separated, p = 2/C(10,5) = 0.0079
    assert re.search(r"\+\d+\.\d %\s+p=0\.0079 n=5\+5\s+WORSE$",
                     _row(out, "failover", r"client_lag_ms\[kill\]"))
    assert "too few samples (n=2+2)" in _row(out, "failover", r"client_lag_ms\[pause\]")
    assert "REGRESSION failover client_lag_ms[kill]:" in err
    assert not any(line.startswith("failover  client_lag_ms ") for line in out.splitlines())


def test_a_wider_threshold_lets_the_same_candidate_pass_but_shows_the_change(runs, capsys):
    assert main([str(runs["base"]), str(runs["slower"]), "--max-regression", "1000%"]) == 0
    out, err = capsys.readouterr()
    assert "REGRESSION" not in err
    row = _row(out, "failover", "ttr_first_ms")
    assert re.search(r"\+\d+\.\d %\s+p=0\.\d+ n=7\+7", row) and "WORSE" not in row


def test_a_better_candidate_passes(runs, capsys):
    assert main([str(runs["slower"]), str(runs["base"])]) == 0       # the other way round
    assert "better" in _row(capsys.readouterr().out, "failover", "ttr_first_ms")


def test_two_lost_recoveries_in_one_run_are_not_significant(runs, capsys):
    # 7/7 vs 5/7: Fisher's exact p = 0.46; one run is too little evidence of a lost recovery
    assert main([str(runs["base"]), str(runs["unrecovered"])]) == 0
    row = _row(capsys.readouterr().out, "failover", "recovered_fraction")
    assert re.search(r"100 % \(7/7\)\s+71\.4 % \(5/7\)\s+~\s+p=0\.46 n=7\+7", row)


def test_lost_recoveries_over_several_runs_fail_whatever_the_threshold(runs, capsys):
    base, cand = [str(runs["base"])] * 4, [str(runs["unrecovered"])] * 4
    assert main([*base, "--candidate", *cand, "--max-regression", "1000%"]) == 1
    out, err = capsys.readouterr()
    assert "base (4 runs)" in out and "candidate (4 runs)" in out
    assert "REGRESSION failover recovered_fraction: 100 % (28/28) -> 71.4 % (20/28)" in err
    assert re.search(r"fewer recoveries \(20/28 vs 28/28\), p = 0\.00\d", err)


def test_several_runs_per_side_pool_their_samples(runs, capsys):
    assert main([str(runs["base"]), str(runs["same"]), "--candidate", str(runs["same"]),
                 str(runs["base"])]) == 0
    out = capsys.readouterr().out
    assert "p=1 n=14+14" in _row(out, "failover", "client_lag_ms")
    assert "p=1 n=6+6" in _row(out, "failover", "error_rate_fault")     # now testable


@pytest.mark.parametrize("setup, problem", [
    ("missing-dir", "not found (expected a run folder or its results.json)"),
    ("no-results", "results.json: not found"),
    ("corrupt", "results.json: not valid JSON"),
    ("timeline", "results.json: format is 'pegbench-timeline'"),
    ("bad-timeline", "timeline.json: not valid JSON"),
])
def test_unreadable_input_exits_2_naming_the_file(runs, tmp_path, capsys, setup, problem):
    candidate = tmp_path / "candidate"
    if setup != "missing-dir":
        candidate.mkdir()
    if setup == "corrupt":
        (candidate / "results.json").write_text('{"format": "pegbench-results", ')
    if setup == "timeline":
        (candidate / "results.json").write_text((runs["base"] / "timeline.json").read_text())
    if setup == "bad-timeline":
        (candidate / "results.json").write_text((runs["base"] / "results.json").read_text())
        (candidate / "timeline.json").write_text("{")
    assert main([str(runs["base"]), "--candidate", str(runs["same"]), str(candidate)]) == 2
    err = capsys.readouterr().err
    assert str(candidate) in err and problem in err


def test_a_results_file_may_be_named_directly(runs):
    assert main([str(runs["base"] / "results.json"), str(runs["same"] / "results.json")]) == 0


def test_a_run_without_timeline_is_compared_on_ttr_and_noted(runs, tmp_path, capsys):
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "results.json").write_text((runs["base"] / "results.json").read_text())
    assert main([str(lone), str(runs["same"])]) == 0
    out = capsys.readouterr().out
    assert "no samples on one side (n=0+3)" in _row(out, "failover", "error_rate_fault")
    assert f"note: {lone / 'results.json'}: no timeline.json next to it" in out


def test_runs_without_faults_have_nothing_to_test(tmp_path, capsys):
    a = make_run(tmp_path / "a", faults=False, policies=("failover",), hlog=False)
    assert main([str(a), str(a)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"n/a\s+n/a\s+n/a\s+no samples \(n=0\+0\)$", _row(out, "failover", "ttr_first_ms"))
    assert "verdict: PASS" in out


def test_each_run_shows_its_own_verdict(runs, capsys):
    main([str(runs["base"]), str(runs["same"])])
    out = capsys.readouterr().out
    # support.runs' SLO names a metric that does not exist: the runs' verdict is unknown
    assert f"base (1 run): {runs['base'] / 'results.json'} [unknown]" in out
    assert "its own verdict is unknown (SLO check java.no_such_metric" in out


@pytest.mark.parametrize("argv, problem", [
    (["a", "b", "c"], "expected BASE_DIR CANDIDATE_DIR, got 3 folder(s)"),
    (["a"], "expected BASE_DIR CANDIDATE_DIR, got 1 folder(s)"),
    (["a", "b", "--max-regression", "ten"], "--max-regression"),
    (["a", "b", "--alpha", "1.5"], "--alpha: expected a level between 0 and 1"),
])
def test_bad_arguments_exit_2(argv, problem, capsys):
    assert main(argv) == 2
    assert problem in capsys.readouterr().err


def test_help_documents_both_forms_and_the_rule(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "pegbench compare BASE_DIR CANDIDATE_DIR" in out
    assert "BASE_DIR [BASE_DIR ...] --candidate CAND_DIR [CAND_DIR ...]" in out
    assert "significant" in out and "too few samples" in out


def test_split_sides():
    assert split_sides(["a", "b"], None) == (["a"], ["b"])
    assert split_sides(["a", "b", "c"], ["d"]) == (["a", "b", "c"], ["d"])
    assert split_sides(["a"], ["b", "c"]) == (["a"], ["b", "c"])


def test_parse_regression():
    assert parse_regression("10%") == pytest.approx(0.10)
    assert parse_regression("0.25") == 0.25 and parse_regression("0") == 0.0
    for bad in ("-5%", "x", "nan"):
        with pytest.raises(ValueError):
            parse_regression(bad)
    assert relative_change(0.0, 0.0) == 0.0 and relative_change(0.0, 1.0) is None
    assert relative_change(100.0, 150.0) == 0.5 and relative_change(100.0, float("inf")) > 1e308


def test_policies_in_one_run_only_are_listed_not_compared(runs, tmp_path, capsys):
    candidate = make_run(tmp_path / "two", policies=("legacy", "failover"), hlog=False)
    assert main([str(runs["base"]), str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "only in base (not compared): java" in out
    assert not any(line.startswith("java ") for line in out.splitlines())


def test_html_page(runs, tmp_path):
    out = tmp_path / "cmp" / "compare.html"
    assert main([str(runs["base"]), str(runs["slower"]), "--html", str(out)]) == 1
    page = out.read_text(encoding="utf-8")
    assert page.count("plotly.js v") == 1
    assert page.count(f'<div id="{FIGURE_ID}"') == 1
    start = page.index('<script type="text/javascript">')
    rest = page[:start] + page[page.index("</script>", start):]
    assert "scattergl" not in rest.lower() and "cdn." not in rest
    decoder = json.JSONDecoder()
    match = re.search(rf'Plotly\.newPlot\(\s*"{FIGURE_ID}",\s*', page)
    data, _ = decoder.raw_decode(page, match.end())
    colours = policy_colours(["legacy", "java", "failover"])
    assert {t["meta"]: t["marker"]["color"] for t in data} == colours
    failover = next(t for t in data if t["meta"] == "failover")
    outlined = [x for x, c in zip(failover["x"], failover["marker"]["line"]["color"])
                if c == "#c62828"]
    assert outlined == ["ttr_first_ms"]
    embedded = re.search(r'id="pegbench-compare-data">(.*?)</script>', page, re.DOTALL).group(1)
    both = json.loads(embedded)
    assert both["candidate"] == [json.loads((runs["slower"] / "results.json").read_text())]
    assert page.count('class="badge fail"') == 1 + 1           # the verdict + 1 regression
    assert "too few samples" in page


def test_unwritable_html_exits_2(runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(runs["base"]), str(runs["same"]), "--html", str(blocker / "x.html")]) == 2
    assert str(blocker / "x.html") in capsys.readouterr().err
