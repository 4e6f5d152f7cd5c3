"""scripts/healthy_partitions.py: the during/before ok-rate ratio of partitions a fault did not hit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_SPEC = importlib.util.spec_from_file_location(
    "healthy_partitions", Path(__file__).parents[1] / "scripts" / "healthy_partitions.py")
healthy = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(healthy)


def _series(rate_before: int, rate_during: int) -> dict:
    t = list(range(100, 120))
    ok = [rate_before if s < 110 else rate_during for s in t]
    return {"t": t, "width_s": [1.0] * len(t), "ok": ok}


def test_only_the_partitions_the_fault_did_not_hit_count_and_a_stall_shows():
    timeline = {"t_start": 100.0, "faults": [
        {"id": "1", "kind": "kill", "node": "replica1", "t_inject": 110.0, "t_heal": 115.0,
         "affected_partitions": [0], "skipped": False}],
        "policies": {"blocked": {"partitions": {"temp:0": _series(20, 0), "temp:1": _series(20, 2)}},
                     "open": {"partitions": {"temp:0": _series(20, 0), "temp:1": _series(20, 20)}}}}
    [(fault, ratio)] = healthy.ratios(timeline)
    assert fault["id"] == "1"
    assert ratio == {"blocked": pytest.approx(0.1), "open": pytest.approx(1.0)}


def test_a_skipped_or_never_healed_fault_gives_no_line():
    timeline = {"t_start": 0.0, "policies": {}, "faults": [
        {"id": "1", "skipped": True, "t_heal": None},
        {"id": "2", "skipped": False, "t_heal": None}]}
    assert healthy.ratios(timeline) == []
