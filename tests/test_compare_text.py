"""``pegbench compare``'s printed table and command line: the cells, headings, units and
verdict a user reads on stdout, the regressions named on stderr, the help, and the exit code
and message of each bad input, from in-memory comparisons and tiny run folders (written from
mutants of ``loadgen/report/compare.py`` that the command-level tests let survive, issue 19).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from support.runs import default_delay, make_run

from loadgen.report.compare import (SAME, Comparison, Row, Side, change_text, compare_runs,
                                    describe, format_text, input_notes, judge_ranked,
                                    judge_recovered, main, regression_lines, row_cells,
                                    run_label, split_sides)
from loadgen.report.compare import test_text as right_column   # not a test: the test column
from loadgen.report.compare_samples import (CLIENT_LAG, ERROR_RATE_FAULT, META_QPS, RECOVERED,
                                            TTR_FIRST, RunSamples)

pytestmark = pytest.mark.unit

BASE = [100.0 + k for k in range(12)]      # median 105.5
SLOWER = [200.0 + k for k in range(12)]    # median 205.5


def _ranked(metric, base, cand):
    return judge_ranked("failover", metric, base, cand, max_regression=0.1, alpha=0.05)


# ------------------------------------------------------------------ cells

def test_a_change_reads_as_a_signed_percentage_or_infinity_or_n_a():
    assert change_text(0.123) == "+12.3 %"
    assert change_text(-0.5) == "-50.0 %"
    assert change_text(0.0) == "+0.0 %"
    assert (change_text(math.inf), change_text(-math.inf), change_text(None)) == ("+∞", "−∞", "n/a")


def test_a_side_reads_as_median_half_iqr_unit_and_count():
    assert describe(TTR_FIRST, Side(7, 1.2345, 1.0, 2.0)) == "1.234 ± 0.50 ms (n=7)"   # 4 digits
    assert describe(META_QPS, Side(3, 1.2345, 1.0, 2.0)) == "1.23 ± 0.50 /s (n=3)"     # 3 digits
    assert describe(ERROR_RATE_FAULT, Side(3, 18.04, 14.0, 20.0)) == "18.0 ± 3.0 % (n=3)"
    assert describe(TTR_FIRST, None) == "n/a"


def test_a_side_not_recovered_reads_so_without_spread_or_unit():
    assert describe(TTR_FIRST, Side(5, math.inf, math.inf, math.inf)) == "not recovered (n=5)"
    # the median recovered, the upper quartile did not: the spread is unbounded
    assert describe(CLIENT_LAG, Side(5, 120.0, 100.0, math.inf)) == "120.0 ± ∞ ms (n=5)"


def test_recovered_fraction_reads_as_percent_and_counts():
    assert describe(RECOVERED, Side(24, 200 / 3, 0.0, 0.0, 16)) == "66.7 % (16/24)"
    assert describe(RECOVERED, Side(3, 0.0, 0.0, 0.0, 0)) == "0 % (0/3)"


def test_the_test_column_gives_p_and_sizes_or_why_not_tested():
    worse = _ranked(TTR_FIRST, BASE, SLOWER)
    assert right_column(worse) == "p=7.4e-07 n=12+12"
    assert right_column(_ranked(TTR_FIRST, [1.0, 2.0], [3.0])) == "too few samples (n=2+1)"
    assert right_column(_ranked(TTR_FIRST, [], [3.0])) == "no samples on one side (n=0+1)"
    assert right_column(_ranked(TTR_FIRST, [3.0], [])) == "no samples on one side (n=1+0)"
    assert right_column(_ranked(TTR_FIRST, [], [])) == "no samples (n=0+0)"
    untested = Row("p", TTR_FIRST, Side(4, 1, 1, 1), Side(5, 1, 1, 1), 0.0, None, SAME)
    assert right_column(untested) == "n=4+5"


def test_a_row_shows_its_change_only_when_significant_and_marks_the_verdict():
    worse = _ranked(TTR_FIRST, BASE, SLOWER)
    assert row_cells(worse) == ("failover", "ttr_first_ms", "105.5 ± 2.8 ms (n=12)",
                                "205.5 ± 2.8 ms (n=12)", "+94.8 %", "p=7.4e-07 n=12+12", "WORSE")
    same = _ranked(TTR_FIRST, BASE, [v + 0.5 for v in BASE])
    assert row_cells(same)[4:] == ("~", f"p={same.p:.2g} n=12+12", "")
    few = replace(_ranked(CLIENT_LAG, [1.0, 2.0], [3.0, 4.0]), kind="kill")
    assert row_cells(few)[1] == "client_lag_ms[kill]"
    assert row_cells(few)[4:] == ("~", "too few samples (n=2+2)", "")
    assert row_cells(_ranked(TTR_FIRST, [], [1.0]))[4] == "n/a"
    assert row_cells(judge_recovered("p", (16, 24), (24, 24), alpha=0.05))[4:] == (
        "+50.0 %", "p=0.0039 n=24+24", "better")


# ------------------------------------------------------------------ the table

ROWS = (_ranked(TTR_FIRST, BASE, SLOWER),
        replace(_ranked(CLIENT_LAG, [1.0, 2.0], [3.0, 4.0]), kind="kill"),
        _ranked(ERROR_RATE_FAULT, [], [1.0]),
        judge_recovered("failover", (24, 24), (16, 24), alpha=0.05))


def test_the_table_names_the_runs_the_rule_each_row_and_the_verdict():
    comparison = Comparison(ROWS, ("failover",), ("java",), ("legacy", "x"), 0.25, 0.01,
                            ("runs from two profiles",))
    text = format_text(comparison, ["a [pass]"], ["b [fail]", "c [unknown]"], ["merged: p50"])
    assert text == (
        "base (1 run): a [pass]\n"
        "candidate (2 runs): b [fail], c [unknown]\n"
        "regression = Mann-Whitney U (Fisher's exact for recovered_fraction), two-sided "
        "p < 0.01, and the median worse by more than 25 % + floor; '~' = not significant\n"
        "\n"
        "policy    metric               base                   candidate              change   test\n"
        "failover  ttr_first_ms         105.5 ± 2.8 ms (n=12)  205.5 ± 2.8 ms (n=12)  +94.8 %  "
        "p=7.4e-07 n=12+12               WORSE\n"
        "failover  client_lag_ms[kill]  1.500 ± 0.25 ms (n=2)  3.500 ± 0.25 ms (n=2)  ~        "
        "too few samples (n=2+2)\n"
        "failover  error_rate_fault     n/a                    1.00 ± 0 % (n=1)       n/a      "
        "no samples on one side (n=0+1)\n"
        "failover  recovered_fraction   100 % (24/24)          66.7 % (16/24)         -33.3 %  "
        "p=0.0039 n=24+24                WORSE\n"
        "only in base (not compared): java\n"
        "only in candidate (not compared): legacy, x\n"
        "note: runs from two profiles\n"
        "merged: p50\n"
        "verdict: FAIL (2 regressions)\n")


def test_a_table_without_regressions_passes_and_lists_no_one_sided_policies():
    comparison = Comparison(ROWS[1:3], ("failover",), (), (), 0.1)
    text = format_text(comparison, ["a", "b"], ["c"])
    assert text.startswith("base (2 runs): a, b\ncandidate (1 run): c\n")
    assert "p < 0.05, and the median worse by more than 10 % + floor" in text
    assert "only in" not in text and "note:" not in text
    assert text.endswith("too few samples (n=2+2)\nfailover  error_rate_fault     n/a    "
                         "                1.00 ± 0 % (n=1)       n/a     no samples on one side "
                         "(n=0+1)\nverdict: PASS\n")


def test_each_regression_is_named_on_its_own_line():
    comparison = Comparison(ROWS, ("failover",), (), (), 0.1)
    assert regression_lines(comparison) == [
        "REGRESSION failover ttr_first_ms: 105.5 ± 2.8 ms (n=12) -> 205.5 ± 2.8 ms (n=12) "
        "(+94.8 %): median beyond the allowed base + 10 % + 1 ms, p = 7.4e-07",
        "REGRESSION failover recovered_fraction: 100 % (24/24) -> 66.7 % (16/24) (-33.3 %): "
        "fewer recoveries (16/24 vs 24/24), p = 0.0039"]
    assert regression_lines(Comparison(ROWS[1:3], ("failover",), (), (), 0.1)) == []


def test_a_run_is_labelled_with_its_file_and_its_own_verdict():
    assert run_label(RunSamples("reports/ci-1/results.json", ("failover",), verdict="pass")) == \
        "reports/ci-1/results.json [pass]"


# ------------------------------------------------------------------ pooling and notes

def _run(label, order, values, recovered, **kw):
    return RunSamples(label, order, values, recovered, **kw)


BASE_RUNS = (_run("b1", ("java", "failover"), {("failover", "ttr_first_ms", "kill"): BASE[:8],
                                                ("failover", "ttr_first_ms", "pause"): [50.0]},
                  {"failover": (4, 4)}),
             _run("b2", ("failover",), {("failover", "ttr_first_ms", "kill"): BASE[8:]},
                  {"failover": (2, 3)}))
CANDIDATE_RUNS = (_run("c", ("failover", "legacy"),
                       {("failover", "ttr_first_ms", "kill"): SLOWER,
                        ("failover", "ttr_first_ms", "pause"): [60.0]}, {"failover": (5, 5)}),)


def test_each_side_pools_its_runs_per_policy_in_common():
    comparison = compare_runs(BASE_RUNS, CANDIDATE_RUNS, max_regression=0.2, alpha=0.01)
    assert (comparison.policies, comparison.only_base, comparison.only_candidate) == (
        ("failover",), ("java",), ("legacy",))
    cells = {row_cells(r)[1]: row_cells(r)[2:] for r in comparison.rows}
    assert list(cells) == ["ttr_first_ms", "client_lag_ms", "error_rate_fault",
                           "meta_queries_per_s", "recovered_fraction"]
    # 8 + 4 kills and 1 pause (50 ms, below them) a side: median 105, every candidate kill slower
    assert cells["ttr_first_ms"][0] == "105.0 ± 3.0 ms (n=13)"
    assert cells["ttr_first_ms"][-1] == "WORSE"
    assert cells["recovered_fraction"][:2] == ("85.7 % (6/7)", "100 % (5/5)")
    assert cells["client_lag_ms"][-2] == "no samples (n=0+0)"
    text = format_text(comparison, ["b1", "b2"], ["c"])
    assert "p < 0.01, and the median worse by more than 20 % + floor" in text
    assert "only in base (not compared): java\nonly in candidate (not compared): legacy\n" in text


def test_by_kind_tests_each_fault_kind_apart_and_recoveries_once():
    comparison = compare_runs(BASE_RUNS, CANDIDATE_RUNS, max_regression=0.1, by_kind=True)
    rows = {r.name: r for r in comparison.rows}
    assert list(rows) == ["ttr_first_ms[kill]", "ttr_first_ms[pause]", "client_lag_ms[kill]",
                          "client_lag_ms[pause]", "error_rate_fault[kill]",
                          "error_rate_fault[pause]", "meta_queries_per_s[kill]",
                          "meta_queries_per_s[pause]", "recovered_fraction"]
    assert right_column(rows["ttr_first_ms[kill]"]) == "p=7.4e-07 n=12+12"
    assert right_column(rows["ttr_first_ms[pause]"]) == "too few samples (n=1+1)"
    assert "p < 0.05" in format_text(comparison, ["b"], ["c"])      # the default level


def test_the_notes_warn_of_mixed_profiles_unknown_verdicts_and_missing_timelines():
    runs = [_run("a", ("p",), {}, {}, profile="ci", verdict="pass"),
            _run("b", ("p",), {}, {}, profile="nightly", verdict="unknown",
                 unknown_reason="no SLO"),
            _run("c", ("p",), {}, {}, profile=None, verdict="unknown", timeline=False)]
    assert input_notes(runs[:1], runs[1:]) == [
        "the runs come from different profiles (ci, nightly): their samples may differ by "
        "design, not by build",
        "b: its own verdict is unknown (no SLO)",
        "c: its own verdict is unknown (no reason given)",
        "c: no timeline.json next to it, so no error-rate or meta-query samples from this run"]
    assert input_notes(runs[:1], runs[:1]) == []          # one profile, known verdicts
    assert input_notes(runs[:1], [runs[2]])[0].startswith("c: its own verdict")
    assert compare_runs(runs[:1], runs[1:2], max_regression=0.1).notes == (
        "the runs come from different profiles (ci, nightly): their samples may differ by "
        "design, not by build", "b: its own verdict is unknown (no SLO)")


# ------------------------------------------------------------------ the command

def test_help_names_each_option_with_its_meaning_and_default(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    for text in (
            "usage: pegbench compare BASE_DIR CANDIDATE_DIR [options] pegbench compare BASE_DIR "
            "[BASE_DIR ...] --candidate CAND_DIR [CAND_DIR ...] [options]",
            "Compare runs of a base and a candidate build per policy; fail only on a regression "
            "that is both significant and beyond the threshold.",
            "BASE_DIR base run folders (or their results.json); without --candidate, exactly "
            "two: BASE_DIR CANDIDATE_DIR",
            "--candidate CAND_DIR [CAND_DIR ...] candidate run folders; every positional folder "
            "is then a base run",
            "--max-regression AMOUNT allowed worsening of a median, e.g. 10% or 0.1 (default 10%)",
            "--alpha P significance level of the two-sided tests (default 0.05)",
            "--by-kind test TTR-first, client lag, error rate and meta queries/s once per fault "
            "kind (kill, pause, …) instead of over all faults: more sensitive to a change that "
            "hits one kind, fewer samples per test",
            "--html FILE also write the comparison as a self-contained HTML page"):
        assert text in flat
    # the epilog keeps its lines: one per sample kind, the exit codes on their own
    assert "\nSamples (pooled over each side's runs):\n  ttr_first_ms, client_lag_ms   one per" in out
    assert "\nexit codes: 0 no regression, 1 regression, 2 unreadable input or bad argument\n" in out


def test_a_usage_error_exits_2_naming_the_command(capsys):
    assert main(["a", "b", "--nope"]) == 2
    assert "pegbench compare: error: unrecognized arguments: --nope" in capsys.readouterr().err


def test_split_sides_says_how_to_give_several_runs_a_side():
    with pytest.raises(ValueError) as info:
        split_sides(["a", "b", "c"], None)
    assert str(info.value) == ("expected BASE_DIR CANDIDATE_DIR, got 3 folder(s); with several "
                               "runs per side write BASE_DIR ... --candidate CAND_DIR ...")


def _later(policy, fault, partition):
    return default_delay(policy, fault, partition) + 1.0


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    return {"base": make_run(root / "base", policies=("failover",)),
            "slower": make_run(root / "slower", policies=("failover",), delay=_later),
            "java": make_run(root / "java", policies=("java",), hlog=False),
            "empty": make_run(root / "empty", policies=(), faults=False, hlog=False),
            "two": make_run(root / "two", policies=("legacy", "java"), faults=False, hlog=False)}


def test_a_regression_exits_1_with_the_table_on_stdout_and_each_regression_on_stderr(
        folders, capsys):
    base, slower = folders["base"] / "results.json", folders["slower"] / "results.json"
    assert main([str(folders["base"]), str(folders["slower"])]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"base (1 run): {base} [unknown]\ncandidate (1 run): {slower} [fail]\n")
    assert "\nmerged histograms (each side's runs added up;" in out
    assert out.endswith("\nverdict: FAIL (2 regressions)\n")
    assert [line.split(":")[0] for line in err.splitlines()] == [
        "REGRESSION failover ttr_first_ms", "REGRESSION failover client_lag_ms"]
    assert err.splitlines()[0].endswith("median beyond the allowed base + 10 % + 1 ms, "
                                        "p = 0.00058")


def test_the_options_reach_the_verdict(folders, capsys):
    base, slower = str(folders["base"]), str(folders["slower"])
    assert main([base, "--candidate", slower, "--max-regression", "2000%"]) == 0
    out, err = capsys.readouterr()
    assert "more than 2000 % + floor" in out and out.endswith("verdict: PASS\n") and err == ""
    assert main([base, slower, "--by-kind", "--alpha", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "p < 0.5," in out and "\nfailover  ttr_first_ms[kill] " in out


@pytest.mark.parametrize("alpha", ["0", "1"])
def test_a_level_of_0_or_1_is_refused(folders, capsys, alpha):
    assert main([str(folders["base"]), str(folders["base"]), "--alpha", alpha]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "pegbench compare: error: --alpha: expected a level between 0 "
                              f"and 1, got {alpha}\n")


def test_bad_amounts_and_folder_counts_exit_2_with_the_reason(capsys):
    assert main(["a", "b", "--max-regression", "ten"]) == 2
    assert capsys.readouterr().err == (
        "pegbench compare: error: --max-regression: expected a percentage such as 10% or a "
        "fraction such as 0.1, got 'ten'\n")
    assert main(["a", "b", "c"]) == 2
    assert capsys.readouterr().err.startswith(
        "pegbench compare: error: expected BASE_DIR CANDIDATE_DIR, got 3 folder(s);")


def test_runs_without_a_policy_in_common_exit_2_naming_the_base_policies(folders, capsys):
    assert main([str(folders["base"]), str(folders["java"])]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"pegbench compare: error: {folders['java'] / 'results.json'}: no policy in "
                   "common with the base runs (failover)\n")
    assert main([str(folders["two"]), str(folders["base"])]) == 2
    assert capsys.readouterr().err.endswith("no policy in common with the base runs "
                                            "(legacy, java)\n")
    assert main([str(folders["empty"]), str(folders["java"])]) == 2
    assert capsys.readouterr().err.endswith("no policy in common with the base runs (none)\n")
