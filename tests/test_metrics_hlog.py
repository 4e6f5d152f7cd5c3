"""Interval logs: one .hlog per policy × op × kind, read back with hdrh's own reader."""

from __future__ import annotations

import pytest
from hdrh.log import HistogramLogReader
from support.metrics import op

from loadgen.metrics import Recorder, hdr
from loadgen.metrics.hlog import IntervalLogs, log_name

pytestmark = pytest.mark.unit


def _read_all(path) -> list:
    reader = HistogramLogReader(str(path), hdr.new_histogram())
    out = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        out.append(hist)
    reader.close()
    return out


def test_intervals_read_back_with_their_counts(tmp_path):
    r = Recorder()
    with IntervalLogs(tmp_path, t0=0.0, start_wall_s=1_700_000_000.0) as logs:
        for k in range(30):                              # interval 1: 30 puts, 5 gets
            r.record(op(1.0 + k / 100, end=1.0 + k / 100 + 0.002))
        for k in range(5):
            r.record(op(1.5 + k / 100, name="get", policy="legacy"))
        logs.write(r.histograms(), 0.0, 2.0)
        for k in range(12):                              # interval 2: 12 puts, 0 gets
            r.record(op(2.0 + k / 100, end=2.0 + k / 100 + 0.250))
        logs.write(r.histograms(), 2.0, 4.0)
        paths = logs.paths
    assert set(paths) == {("failover", "put", "service"), ("failover", "put", "response"),
                          ("legacy", "get", "service"), ("legacy", "get", "response")}
    assert paths["failover", "put", "service"].name == log_name("failover", "put", "service")
    puts = _read_all(paths["failover", "put", "service"])
    assert [h.get_total_count() for h in puts] == [30, 12]
    assert puts[0].get_max_value() == pytest.approx(2000, rel=1e-3)
    assert puts[1].get_value_at_percentile(50) == pytest.approx(250_000, rel=1e-3)
    assert [h.get_total_count() for h in _read_all(paths["legacy", "get", "response"])] == [5, 0]
    text = paths["failover", "put", "service"].read_text()
    assert "#[StartTime: 1700000000.000000" in text and "unit=us" in text


def test_a_reset_after_warmup_starts_the_interval_over(tmp_path):
    r = Recorder()
    with IntervalLogs(tmp_path, t0=0.0) as logs:
        for k in range(10):
            r.record(op(1.0 + k / 10))
        logs.write(r.histograms(), 0.5, 2.0)
        r.reset()
        logs.restart()
        for k in range(12):                    # more than before the reset, at the same values
            r.record(op(3.0 + k / 10))
        logs.write(r.histograms(), 2.0, 4.0)
        r.reset()                              # without restart: the shrink is noticed
        for k in range(3):
            r.record(op(5.0 + k / 10))
        logs.write(r.histograms(), 4.0, 6.0)
        path = logs.paths["failover", "put", "service"]
    assert [h.get_total_count() for h in _read_all(path)] == [10, 12, 3]


def test_unsafe_names_become_file_names():
    assert log_name("my.pkg:Policy/x", "put", "service") == "my.pkg_Policy_x.put.service.hlog"
