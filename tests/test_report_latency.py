"""Latency percentile distributions for the report: from results.json's ``latency_hdr``, else
the run's .hlog files, else the summary points; drawn on HdrHistogram's 1/(1−p) axis."""

from __future__ import annotations

import pytest
from support.runs import make_run

from loadgen.metrics import hdr
from loadgen.report import analyse, load_run
from loadgen.report.figures_latency import inverse_tail
from loadgen.report.latency import (FROM_HLOG, FROM_RESULTS, FROM_SUMMARY, latency_curves,
                                    read_hlog)
from loadgen.report.views import policy_order

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


def _curves(directory):
    run = load_run(directory)
    return {(c.policy, c.op, c.kind): c for c in latency_curves(run, policy_order(run.results))[0]}


def test_hlog_files_give_the_whole_distribution(run_dir):
    run = load_run(run_dir)
    curves = _curves(run_dir)
    results = run.results.policies
    assert len(run.hlogs) == 3 * 3 * 2                  # policies x ops x kinds
    for key, curve in curves.items():
        policy, op, kind = key
        summary = results[policy].latency_us[op][kind]
        assert curve.source == FROM_HLOG and curve.count == summary.count
        hist = read_hlog(run.hlogs[key])                 # every interval added up
        assert hist.get_value_at_percentile(99) == summary.p99
        assert curve.max_ms == pytest.approx(summary.max / 1000)
        assert list(curve.percentiles) == sorted(curve.percentiles)
        assert all(p < 100 for p in curve.percentiles)
    put = curves["legacy", "put", "response"]
    assert len(put.percentiles) > 5                      # more than the summary points


def test_results_latency_hdr_is_preferred(tmp_path):
    hist = hdr.new_histogram()
    for us in range(1000, 2000):
        hist.record_value(us)
    directory = make_run(tmp_path, extra={"latency_hdr": {"failover": {"put": {
        "service": hdr.encode(hist)}}}})
    curves = _curves(directory)
    embedded = curves["failover", "put", "service"]
    assert embedded.source == FROM_RESULTS and embedded.count == 1000
    assert embedded.max_ms == pytest.approx(2.0, rel=1e-3)
    assert curves["failover", "put", "response"].source == FROM_HLOG


def test_without_hlogs_the_summary_points_are_drawn_and_said(tmp_path):
    directory = make_run(tmp_path, hlog=False)
    assert not list(directory.glob("*.hlog"))
    curves = _curves(directory)
    put = curves["java", "put", "response"]
    summary = load_run(directory).results.policies["java"].latency_us["put"]["response"]
    assert put.source == FROM_SUMMARY and put.percentiles == (50.0, 99.0, 99.9)
    assert put.values_ms == (summary.p50 / 1000, summary.p99 / 1000, summary.p999 / 1000)
    model = analyse(load_run(directory))
    fig = model.figures["latency"].to_plotly_json()
    assert all(t["mode"] == "lines+markers" for t in fig["data"])


def test_an_unreadable_hlog_falls_back_with_a_note(tmp_path):
    directory = make_run(tmp_path)
    (directory / "java.put.service.hlog").write_text("garbage\nmore garbage\n")
    run = load_run(directory)
    curves, notes = latency_curves(run, policy_order(run.results))
    bad = next(c for c in curves if (c.policy, c.op, c.kind) == ("java", "put", "service"))
    assert bad.source == FROM_SUMMARY
    assert notes == ["java.put.service.hlog holds no samples"]


def test_figure_uses_the_hdr_percentile_axis(run_dir):
    model = analyse(load_run(run_dir))
    fig = model.figures["latency"].to_plotly_json()
    layout = fig["layout"]
    for axis in ("xaxis", "xaxis2"):
        assert layout[axis]["type"] == "log"
        assert {"90 %", "99 %", "99.9 %", "99.99 %"} <= set(layout[axis]["ticktext"])
        labels = dict(zip(layout[axis]["tickvals"], layout[axis]["ticktext"]))
        assert labels[10.0] == "90 %" and labels[1000.0] == "99.9 %"
    put = next(t for t in fig["data"] if t["name"] == "failover put" and t["xaxis"] == "x2")
    assert put["x"] == [pytest.approx(inverse_tail(p)) for p in put["customdata"]]
    assert layout["yaxis"]["type"] == "log"
    kinds = {(t["name"], t["xaxis"]) for t in fig["data"]}
    assert ("legacy get", "x") in kinds and ("legacy get", "x2") in kinds   # service, response
