"""Phases, error rates by phase and kind, recovery cost, censored distributions, durability."""

from __future__ import annotations

import math

import pytest
from support.metrics import meta, op, record_in_end_order, writes

from loadgen.metrics import FaultEvent, Recorder, phases
from loadgen.metrics.analysis import durability, error_summary, recovery_cost
from loadgen.metrics.distribution import CensoredDistribution
from loadgen.metrics.events import FAULT, RECOVERY, STEADY, Phase, PhaseLookup, phase_seconds

pytestmark = pytest.mark.unit


def _event(id: str, t_inject: float, t_heal: float | None, **kw) -> FaultEvent:
    return FaultEvent(id=id, kind="kill", node="replica1", t_inject=t_inject, t_heal=t_heal,
                      affected_partitions=(3,), **kw)


def test_phases_are_global_and_fault_beats_recovery():
    events = [_event("a", 100.0, 102.0), _event("b", 105.0, 107.0),
              _event("s", 130.0, 131.0, skipped=True, skip_reason="health gate")]
    spans = phases(events)
    assert spans == [Phase(FAULT, 100.0, 102.0), Phase(RECOVERY, 102.0, 105.0),
                     Phase(FAULT, 105.0, 107.0), Phase(RECOVERY, 107.0, 117.0)]
    lookup = PhaseLookup(spans)
    assert [lookup.phase_of(t) for t in (99.9, 100.0, 104.99, 106.0, 116.99, 117.0, 130.5)] == [
        STEADY, FAULT, RECOVERY, FAULT, RECOVERY, STEADY, STEADY]
    assert phase_seconds(spans, (FAULT, RECOVERY), 90.0, 110.0) == 10.0
    assert phases(events, recovery_s=1.0)[1] == Phase(RECOVERY, 102.0, 103.0)


def test_a_fault_never_healed_lasts_to_the_end():
    spans = phases([_event("a", 100.0, None)])
    assert spans == [Phase(FAULT, 100.0, math.inf)]
    assert phase_seconds(spans, (FAULT,), 90.0, 120.0) == 20.0


def _phased_run():
    """Writes at 20/s over [90, 120); those intended in [100, 101) time out after 3 attempts;
    20 meta queries during the fault and recovery phases, 1 before."""
    history = [op(o.intended_start, ok=False, attempt=3) if 100 <= o.intended_start < 101 else o
               for o in writes(90, 120)]
    history += [meta(100.05 + k / 2) for k in range(20)] + [meta(95.0)]
    r = Recorder()
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    return r.snapshot().policies["failover"], phases([_event("a", 100.0, 101.5)])


def test_error_rate_overall_by_phase_and_by_kind():
    policy, spans = _phased_run()
    summary = error_summary(policy, spans)
    assert summary["errors"] == 20 and summary["error_rate"] == 20 / 600
    # fault [100, 101.5): 30 writes, 20 timed out; recovery [101.5, 111.5): 200; steady: 370
    assert summary["ops_by_phase"] == {FAULT: {"ops": 30, "errors": 20},
                                       RECOVERY: {"ops": 200, "errors": 0},
                                       STEADY: {"ops": 370, "errors": 0}}
    assert summary["error_rate_by_phase"] == {FAULT: 20 / 30, RECOVERY: 0.0, STEADY: 0.0}
    assert summary["errors_by_kind"] == {"ERR_TIMEOUT": 20}
    assert summary["error_rate_by_kind"] == {"ERR_TIMEOUT": 20 / 600}


def test_recovery_cost_over_fault_and_recovery_phases():
    policy, spans = _phased_run()
    cost = recovery_cost(policy, spans, 90.0, 120.0)
    assert cost["seconds"] == 11.5 and cost["meta_queries"] == 20
    assert cost["meta_queries_per_s"] == 20 / 11.5
    assert cost["ops"] == 230 and cost["attempts_per_op"] == (20 * 3 + 210) / 230
    quiet = recovery_cost(policy, [], 90.0, 120.0)
    assert quiet["meta_queries_per_s"] is None and quiet["attempts_per_op"] is None


def test_censored_samples_count_as_infinity_in_percentiles():
    d = CensoredDistribution()
    for v in (1.0, 2.0, 3.0, None):
        d.add(v)
    s = d.summary_ms()
    assert (s["n"], s["recovered"], s["censored"]) == (4, 3, 1)
    assert s["p50"] == pytest.approx(2000, rel=1e-3)          # rank 2 of 4
    assert s["p99"] is None and s["max"] is None              # they land on +inf
    d.add(0.0)                                                # 0 is a value, not a hole
    assert d.n == 5 and d.value_at_rank_s(1) == pytest.approx(0.0, abs=1e-6)


def test_negative_samples_rank_first_and_stay_exact():
    d = CensoredDistribution()
    for v in (0.2, -0.5, None):
        d.add(v)
    s = d.summary_ms(signed=True)
    assert s["negative"] == 1 and s["min"] == -500.0
    assert s["p50"] == pytest.approx(200, rel=1e-3) and s["max"] is None
    empty = CensoredDistribution().summary_ms()
    assert empty == {"n": 0, "recovered": 0, "censored": 0, "p50": None, "p99": None,
                     "max": None}


def test_durability_counts():
    assert durability(100, 98) == {"acked": 100, "verified": 98, "lost": 2}
    assert durability(100, 100, lost=0) == {"acked": 100, "verified": 100, "lost": 0}
    with pytest.raises(ValueError):
        durability(-1, 0)
