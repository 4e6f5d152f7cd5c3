"""The cost–recovery frontier (loadgen/frontier*.py): client lag, the Pareto front and the
dominance check on hand-built data, then one small sweep on the in-process test cluster.

The real-data dominance tests sweep small settings, 3 runs each, medians: partition-moved;
slow-primary and connection-reset (failover told the failure-detector timings makes no meta
query there); and a kill on a onebox against java (at its own pacing) and legacy (which asks
the meta nothing: only the replica probe matches it). The two pauses are left to `pegbench
bench frontier --check` (README): they would add a minute and a half of onebox runs.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from loadgen.bench import frontier
from loadgen.bench.frontier_analysis import (Point, Sample, dominance, lag_percentiles_ms, pareto_front,
                                             point, writer_lags_s)
from loadgen.bench.policies import WriterOp


def pt(policy: str, meta: float, lag_p99: float | None, failed: float = 0, *,
       setting: str = "default", scenario: str = "kill") -> Point:
    """A hand-built point (lag p50 = p99)."""
    return Point(scenario, policy, setting, meta, lag_p99, lag_p99, failed, 1.0, ())


# --------------------------------------------------------------------------- lag


@pytest.mark.unit
def test_writer_lags_count_from_the_ready_instant_or_the_next_wanted_write():
    ready = 10.0
    writers = [
        [WriterOp(9.0, 9.5, True), WriterOp(9.6, 10.2, True)],        # waiting: ok 0.2 after
        [WriterOp(9.4, 10.4, False), WriterOp(10.5, 10.6, True)],     # waiting, failed, next ok
        [WriterOp(9.0, 9.1, True), WriterOp(10.3, 10.35, True)],      # idle: from its next write
        [WriterOp(9.8, 10.8, False), WriterOp(10.9, 11.9, False)],    # never
        [WriterOp(9.0, 9.9, True)],                                   # done before: no sample
    ]
    lags = writer_lags_s(writers, ready)
    assert lags[:3] == pytest.approx([0.2, 0.6, 0.05])
    assert math.isinf(lags[3]) and len(lags) == 4


@pytest.mark.unit
def test_lag_percentiles_are_nearest_rank_and_none_on_a_censored_rank():
    p50, p99 = lag_percentiles_ms([0.01, 0.02, 0.03, math.inf])   # HDR: 3 significant digits
    assert p50 == pytest.approx(20.0, rel=1e-3) and p99 is None
    assert lag_percentiles_ms([0.005] * 3) == pytest.approx((5.0, 5.0), rel=1e-3)
    assert lag_percentiles_ms([]) == (None, None)


@pytest.mark.unit
def test_a_point_is_the_medians_of_its_runs_never_ranking_last():
    runs = [Sample(2.0, 10.0, None, 3, 1.0, 16), Sample(1.0, 30.0, 40.0, 5, 1.1, 16),
            Sample(3.0, 20.0, None, 4, None, 16)]
    p = point("kill", "java", "default", runs)
    assert (p.meta_queries_per_s, p.lag_p50_ms, p.failed) == (2.0, 20.0, 4)
    assert p.lag_p99_ms is None and math.isinf(p.lag_ms("p99"))
    assert p.writes_per_ack == 1.1
    assert len(p.samples) == 3


# --------------------------------------------------------------------------- front


@pytest.mark.unit
def test_the_pareto_front_keeps_the_least_lag_at_each_cost_cheapest_first():
    points = [pt("failover", 30.0, 30), pt("failover", 4.0, 100, setting="b"),
              pt("java", 1.4, 240), pt("failover", 1.6, 245, setting="c"),   # beaten by java
              pt("java", 4.0, 120, setting="d"),                             # same cost, more lag
              pt("legacy", 0.0, None), pt("failover", 0.7, 590, setting="e")]
    front = pareto_front(points)
    assert [(p.policy, p.setting) for p in front] == [
        ("failover", "e"), ("java", "default"), ("failover", "b"), ("failover", "default")]


@pytest.mark.unit
def test_the_pareto_front_is_empty_when_nothing_recovered():
    assert pareto_front([pt("legacy", 0.0, None)]) == []


# --------------------------------------------------------------------------- dominance


@pytest.mark.unit
def test_dominance_holds_with_a_cheaper_setting_inside_both_tolerances():
    points = [pt("java", 1.4, 240, 13), pt("failover", 1.4, 250, 14, setting="slow"),
              pt("failover", 30.0, 30, 13, setting="fast")]
    [verdict] = dominance(points)
    assert verdict.holds and verdict.best.setting == "slow"   # exactly at both bounds


@pytest.mark.unit
def test_dominance_fails_by_lag_and_says_by_how_much():
    points = [pt("java", 1.4, 240, 13), pt("failover", 1.6, 245, 13, setting="333"),
              pt("failover", 0.7, 595, 13, setting="1000")]
    [verdict] = dominance(points)
    assert not verdict.holds and verdict.best.setting == "1000"
    assert "lag 345 ms over the bound" in verdict.reason


@pytest.mark.unit
def test_dominance_fails_by_failed_ops():
    [verdict] = dominance([pt("java", 1.0, 500, 18), pt("failover", 0.7, 400, 24)])
    assert not verdict.holds and "5 failed ops over the bound" in verdict.reason


@pytest.mark.unit
def test_dominance_fails_without_a_setting_at_or_below_the_clients_cost():
    [verdict] = dominance([pt("legacy", 0.0, None, 61), pt("failover", 0.7, 590, 24)])
    assert not verdict.holds and verdict.reason.startswith("no setting at ≤ 0.00 meta q/s")


@pytest.mark.unit
def test_a_client_that_never_recovered_is_beaten_on_lag_by_any_setting():
    points = [pt("refresh-on-reset", 0.7, None, 32), pt("failover", 0.7, None, 20, setting="a"),
              pt("java", 0.7, 80, 0)]
    verdicts = {v.client.policy: v for v in dominance(points)}
    assert verdicts["refresh-on-reset"].holds
    assert not verdicts["java"].holds and "never recovered" in verdicts["java"].reason


@pytest.mark.unit
def test_dominance_is_per_scenario():
    points = [pt("java", 1.0, 100, scenario="kill"), pt("failover", 1.0, 50, scenario="pause"),
              pt("java", 1.0, 100, scenario="pause")]
    verdicts = {v.scenario: v for v in dominance(points)}
    assert not verdicts["kill"].holds and verdicts["pause"].holds


# --------------------------------------------------------------------------- trace


@pytest.mark.unit
def test_a_run_trace_lists_meta_queries_failed_attempts_and_lags_from_the_fault():
    from loadgen.bench.policies import Trace
    from loadgen.pegasus.outcome import ATTEMPT, META, OK, PROBE, Outcome

    def o(level, start, end, outcome=OK, error=None):
        return Outcome(level, "put", "temp", 0, "n1", start, end, outcome, error, 1, False,
                       "failover", None)

    run = Trace("kill", "failover", t_fault=100.0, t_heal=102.5, t_ready=101.5)
    run.recorder.outcomes += [o(META, 99.0, 99.01),                       # before: not listed
                              o(ATTEMPT, 99.9, 100.001, "fail", "ERR_SESSION_RESET"),
                              o(ATTEMPT, 100.2, 100.3, "fail", "ERR_TIMEOUT"),
                              o(ATTEMPT, 100.5, 100.6, "fail", "ERR_SESSION_RESET"),
                              o(META, 101.51, 101.513),
                              o(PROBE, 101.45, 101.452, "fail", "ERR_INVALID_STATE"),
                              o(PROBE, 101.48, 101.481)]
    run.writers = [[WriterOp(101.0, 101.53, True)], [WriterOp(101.6, 101.62, True)]]
    lines = frontier.trace_lines(run)
    assert lines[0] == ("kill failover: fault +0, ready +1500, heal +2500 (ms from the fault)")
    assert lines[1] == "  meta queries (1): +1510→+1513"
    assert lines[2] == "  replica probes (2): +1450 … +1480, n1 said primary at +1481"
    assert lines[3] == "  failed attempts ERR_SESSION_RESET: 2, ended +1 … +600"
    assert lines[4] == "  failed attempts ERR_TIMEOUT: 1, ended +300 … +300"
    assert lines[5] == "  writers' lag after ready (ms): min 20, median 30, max 30 (2 recovered)"


# --------------------------------------------------------------------------- command line


@pytest.mark.unit
def test_a_setting_with_a_parameter_the_policy_lacks_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        frontier.main(["--scenarios", "partition-moved", "--settings",
                       'failover=[{"repoll_ms": 30}, {"no_such_knob": 1}]'])
    assert exc.value.code == 2
    assert "no_such_knob" in capsys.readouterr().err


@pytest.mark.unit
def test_the_sweep_is_table_driven():
    settings = frontier.sweep({"failover": [{"repoll_ms": 30}, {"repoll_ms": 100, "repoll_max_ms": 400}]},
                              ["java", "failover"])
    assert [(s.policy, s.label) for s in settings] == [
        ("java", "default"), ("failover", "repoll_ms=30"),
        ("failover", "repoll_ms=100 repoll_max_ms=400")]
    assert frontier.Setting("failover", {"repoll_ms": 30, "probe_replicas": True}).label == \
        "repoll_ms=30 probe_replicas=true"
    assert settings[2].settings(frontier.DEFAULTS).policy_params == {
        "failover": {"repoll_ms": 100, "repoll_max_ms": 400}}


# --------------------------------------------------------------------------- a real sweep

RUNS = 3
AFTER_S = 0.8
SWEEP = ["--scenarios", "partition-moved", "--runs", str(RUNS), "--writers", "4",
         "--rate-per-writer", "10", "--before-s", "0.3", "--in-process-after-s", str(AFTER_S),
         "--settings", 'failover=[{"repoll_ms": 10}, {"repoll_ms": 1000}]', "--check"]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """One small frontier run on the in-process cluster: its exit code, output and files."""
    out = tmp_path_factory.mktemp("frontier")
    t0 = time.monotonic()
    code = frontier.main([*SWEEP, "--json", str(out / "f.json"), "--html", str(out / "f.html")])
    return code, time.monotonic() - t0, out


@pytest.mark.timeout(120)
def test_a_small_sweep_writes_sane_rows_json_and_an_offline_page(sweep_run):
    _, elapsed, out = sweep_run
    assert elapsed < 60
    doc = json.loads((out / "f.json").read_text())
    assert doc["format"] == "pegbench-frontier" and doc["runs"] == RUNS
    points = doc["points"]
    assert [(p["policy"], p["setting"]) for p in points] == [
        ("legacy", "default"), ("refresh-on-timeout", "default"), ("refresh-on-reset", "default"),
        ("java", "meta_query_interval_ms=166"), ("java", "meta_query_interval_ms=333"),
        ("java", "meta_query_interval_ms=666"), ("failover", "repoll_ms=10"),
        ("failover", "repoll_ms=1000")]
    for p in points:
        assert set(p) >= {"scenario", "policy", "setting", "meta_queries_per_s", "lag_p50_ms",
                          "lag_p99_ms", "failed", "writes_per_ack", "samples"}
        assert len(p["samples"]) == RUNS and all(s["writers"] == 4 for s in p["samples"])
        # one refresh per client moves it: a meta query or two in the window, not a storm
        assert 0 < p["meta_queries_per_s"] <= 2 / AFTER_S
        assert 0 <= p["lag_p50_ms"] <= p["lag_p99_ms"] < 200     # well within the op timeout
        assert p["writes_per_ack"] == 1.0                        # nothing executed twice
        assert p["failed"] <= 4                                  # at most a write per writer
    assert doc["front"]["partition-moved"]
    page = (out / "f.html").read_text()
    assert page.count("plotly.js v") == 1 and 'id="fig-frontier"' in page
    assert "pegbench-frontier-data" in page


@pytest.mark.timeout(120)
def test_failover_dominates_every_other_setting_when_a_partition_moves(sweep_run):
    code, _, out = sweep_run
    verdicts = json.loads((out / "f.json").read_text())["dominance"]
    assert len(verdicts) == 6                  # three Go models, java at three paces
    failing = [v["client"] + ": " + v["reason"] for v in verdicts if not v["holds"]]
    assert not failing and code == 0, failing


# --------------------------------------------------------------------------- more scenarios

def _verdicts(argv: list[str], tmp_path) -> tuple[int, list[dict]]:
    out = tmp_path / "f.json"
    code = frontier.main([*argv, "--json", str(out)])
    return code, json.loads(out.read_text())["dominance"]


@pytest.mark.timeout(240)
def test_failover_dominates_on_a_slow_primary_and_a_reset_connection(tmp_path):
    """failover told the FD timings makes no meta query on a slow primary or a reset: at
    java's cost (0 or 1 query) it is never later (the lags are the primary's 0.4 s, or a
    redial)."""
    code, verdicts = _verdicts(
        ["--scenarios", "slow-primary,connection-reset", "--policies", "java,refresh-on-reset,failover",
         "--settings", 'failover=[{"repoll_ms": 30}]', "--runs", str(RUNS), "--writers", "4",
         "--rate-per-writer", "10", "--before-s", "0.3", "--in-process-after-s", str(AFTER_S),
         "--check"], tmp_path)
    assert len(verdicts) == 8                  # 2 scenarios × (refresh-on-reset, java at 3 paces)
    failing = [f"{v['scenario']} {v['client']}: {v['reason']}" for v in verdicts if not v["holds"]]
    assert not failing and code == 0, failing


@pytest.mark.onebox
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_failover_dominates_java_and_legacy_through_a_kill_on_the_onebox(tmp_path):
    """The issue's kill row: at java's meta cost failover is no later and fails no more; at
    legacy's (none) only the replica probe can find the new primary, and does. java's lag is
    a draw between 0 and its 333 ms pacing, failover's at most its repoll_ms (10 ms)."""
    code, verdicts = _verdicts(
        ["--scenarios", "kill", "--policies", "java,legacy,failover", "--settings", "java=[{}]",
         "--settings", 'failover=[{"repoll_ms": 30}, {"repoll_ms": 10, "probe_replicas": true}]',
         "--runs", "3", "--after-s", "3.0", "--check"], tmp_path)
    by_client = {v["client"]: v for v in verdicts}
    assert set(by_client) == {"java", "legacy"}
    assert "probe_replicas" in by_client["legacy"]["best"]   # no meta query at all
    failing = [f"{v['client']}: {v['reason']}" for v in verdicts if not v["holds"]]
    assert not failing and code == 0, failing
