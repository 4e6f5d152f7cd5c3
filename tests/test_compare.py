"""``pegbench compare``: two run folders side by side, exit 1 on a regression beyond the
threshold (naming the metric), 2 on unreadable input (naming the file)."""

from __future__ import annotations

import json
import math
import re

import pytest
from support.runs import NEVER, default_delay, make_run

from loadgen.report.compare import (compare_results, judge, main, parse_regression,
                                    relative_change)
from loadgen.report.compare_page import FIGURE_ID
from loadgen.report.run_dir import read_results
from loadgen.report.style import policy_colours
from loadgen.report.summary import ERROR_RATE_FAULT, RECOVERED, TTR_P99

pytestmark = pytest.mark.unit


def _slower_failover(policy, fault, partition):
    """failover recovers 1 s later after each kill: TTR p50/p99 and client lag rise."""
    delay = default_delay(policy, fault, partition)
    return delay + 1.0 if policy == "failover" and fault.kind == "kill" else delay


def _failover_never_after_fault_3(policy, fault, partition):
    delay = default_delay(policy, fault, partition)
    return NEVER if policy == "failover" and fault.id == 3 else delay


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"base": make_run(root / "base"), "same": make_run(root / "same"),
            "slower": make_run(root / "slower", delay=_slower_failover),
            "unrecovered": make_run(root / "unrecovered", delay=_failover_never_after_fault_3)}


def test_identical_runs_exit_0(runs, capsys):
    assert main([str(runs["base"]), str(runs["same"])]) == 0
    out, err = capsys.readouterr()
    assert "verdict: PASS" in out and err == ""
    assert re.search(r"failover\s+ttr_first_ms\.p99\s+1,556 ms\s+1,556 ms\s+\+0\.0 %", out)


def test_worse_ttr_p99_beyond_the_threshold_exits_1_and_names_it(runs, capsys):
    assert main([str(runs["base"]), str(runs["slower"]), "--max-regression", "10%"]) == 1
    out, err = capsys.readouterr()
    assert "verdict: FAIL" in out
    assert "REGRESSION failover ttr_first_ms.p99: 1,556 ms -> 1,956 ms (+25.7 %)" in err
    named = set(re.findall(r"REGRESSION (\S+ \S+):", err))
    assert {"failover ttr_first_ms.p50", "failover ttr_first_ms.p99",
            "failover client_lag_ms.p99"} <= named
    assert not any(n.startswith(("legacy", "java")) for n in named)   # unchanged policies


def test_a_wider_threshold_lets_the_same_candidate_pass(runs, capsys):
    assert main([str(runs["base"]), str(runs["slower"]), "--max-regression", "1000%"]) == 0
    assert "REGRESSION" not in capsys.readouterr().err


def test_a_lower_recovered_fraction_fails_whatever_the_threshold(runs, capsys):
    assert main([str(runs["base"]), str(runs["unrecovered"]), "--max-regression", "1000%"]) == 1
    err = capsys.readouterr().err
    assert "REGRESSION failover recovered_fraction: 100 % -> 71.4 %" in err
    assert "REGRESSION failover ttr_first_ms.p99: 1,556 ms -> not recovered" in err


def test_a_better_candidate_passes(runs, capsys):
    assert main([str(runs["slower"]), str(runs["base"])]) == 0       # the other way round


@pytest.mark.parametrize("setup, problem", [
    ("missing-dir", "not found (expected a run folder or its results.json)"),
    ("no-results", "results.json: not found"),
    ("corrupt", "results.json: not valid JSON"),
    ("timeline", "results.json: format is 'pegbench-timeline'"),
])
def test_unreadable_input_exits_2_naming_the_file(runs, tmp_path, capsys, setup, problem):
    candidate = tmp_path / "candidate"
    if setup != "missing-dir":
        candidate.mkdir()
    if setup == "corrupt":
        (candidate / "results.json").write_text('{"format": "pegbench-results", ')
    if setup == "timeline":
        (candidate / "results.json").write_text((runs["base"] / "timeline.json").read_text())
    assert main([str(runs["base"]), str(candidate)]) == 2
    err = capsys.readouterr().err
    assert str(candidate) in err and problem in err


def test_a_results_file_may_be_named_directly(runs):
    assert main([str(runs["base"] / "results.json"), str(runs["same"] / "results.json")]) == 0


def test_bad_threshold_exits_2(runs, capsys):
    assert main([str(runs["base"]), str(runs["same"]), "--max-regression", "ten"]) == 2
    assert "--max-regression" in capsys.readouterr().err


def test_parse_regression():
    assert parse_regression("10%") == pytest.approx(0.10)
    assert parse_regression("0.25") == 0.25 and parse_regression("0") == 0.0
    for bad in ("-5%", "x", "nan"):
        with pytest.raises(ValueError):
            parse_regression(bad)


def test_judge_rules():
    assert judge(TTR_P99, 1000.0, 1100.0, 0.10) == (False, "")        # at the limit + floor
    assert judge(TTR_P99, 1000.0, 1101.5, 0.10)[0] is True
    assert judge(TTR_P99, 0.0, 0.9, 0.10)[0] is False                 # under the 1 ms floor
    assert judge(TTR_P99, 1000.0, math.inf, 0.5)[0] is True           # became not recovered
    assert judge(TTR_P99, math.inf, math.inf, 0.1)[0] is False
    assert judge(TTR_P99, math.inf, 5.0, 0.1)[0] is False
    assert judge(TTR_P99, None, 5.0, 0.1) == (False, "n/a")
    assert judge(ERROR_RATE_FAULT, 0.0, 0.05, 0.1)[0] is False        # 0.05 percentage point
    assert judge(RECOVERED, 100.0, 99.0, 10.0)[0] is True             # any drop
    assert judge(RECOVERED, 90.0, 100.0, 0.0)[0] is False
    assert relative_change(0.0, 0.0) == 0.0 and relative_change(0.0, 1.0) is None
    assert relative_change(100.0, 150.0) == 0.5 and relative_change(100.0, math.inf) == math.inf


def test_policies_in_one_run_only_are_listed_not_compared(runs, tmp_path, capsys):
    candidate = make_run(tmp_path / "two", policies=("legacy", "failover"))
    comparison = compare_results(read_results(runs["base"] / "results.json"),
                                 read_results(candidate / "results.json"), max_regression=0.1)
    assert comparison.policies == ("legacy", "failover") and comparison.only_base == ("java",)
    assert main([str(runs["base"]), str(candidate)]) == 0
    assert "only in base (not compared): java" in capsys.readouterr().out


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
    embedded = re.search(r'id="pegbench-compare-data">(.*?)</script>', page, re.DOTALL).group(1)
    both = json.loads(embedded)
    assert both["candidate"] == json.loads((runs["slower"] / "results.json").read_text())
    assert page.count('class="badge fail"') == 1 + 5           # the verdict + 5 regressions


def test_unwritable_html_exits_2(runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(runs["base"]), str(runs["same"]), "--html", str(blocker / "x.html")]) == 2
    assert str(blocker / "x.html") in capsys.readouterr().err
