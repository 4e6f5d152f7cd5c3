"""The recorder benchmark runs end to end and prints its figures (no speed is asserted)."""

from __future__ import annotations

import re

import pytest

from loadgen import cli
from loadgen.bench import recorder as bench

pytestmark = pytest.mark.unit


def _figures(out: str) -> tuple[float, float, float]:
    bare = float(re.search(r"record_value : +(\d+) ns/value", out).group(1))
    recorded = float(re.search(r"recorder +: +(\d+) ns/outcome", out).group(1))
    ratio = float(re.search(r"ratio +: +([\d.]+)", out).group(1))
    return bare, recorded, ratio


def test_bench_prints_both_costs_and_their_ratio(capsys):
    assert bench.main(["--count", "2000", "--rounds", "1"]) == 0
    bare, recorded, ratio = _figures(capsys.readouterr().out)
    assert bare > 0 and recorded > 0
    assert ratio == pytest.approx(recorded / bare, rel=0.05, abs=0.01)


def test_pegbench_bench_recorder_delegates(capsys):
    assert cli.main(["bench", "recorder", "--count", "500", "--rounds", "1"]) == 0
    assert all(f > 0 for f in _figures(capsys.readouterr().out))


def test_the_synthetic_stream_is_op_level_and_in_time_order():
    stream = bench.synthetic_stream(100, rate=1000.0)
    assert {o.level for o in stream} == {"op"}
    starts = [o.intended_start for o in stream]
    assert starts == sorted(starts) and all(o.end > o.start >= o.intended_start for o in stream)
