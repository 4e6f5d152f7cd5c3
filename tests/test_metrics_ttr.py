"""TTR-first, TTR-stable, client lag and censoring on hand-built histories with known answers.

Writes go to partition 3 every 50 ms, intended at t + 2.5 ms; an ok write takes 3 ms, a failed
one times out after 1 s. The fault is injected at 100.0 and the run ends at 120.0.
"""

from __future__ import annotations

import pytest
from support.metrics import OFFSET_S, SERVICE_S, op, record_in_end_order, writes

from loadgen.metrics import FaultEvent, Recorder, event_ttrs
from loadgen.metrics.analysis import ttr_summary
from loadgen.metrics.ttr import horizon, stable_from

pytestmark = pytest.mark.unit

T_END = 120.0


def _kill(t: float = 100.0, *, id: str = "f1", partitions=(3,), failover_s=0.8, **kw) -> FaultEvent:
    return FaultEvent(id=id, kind="kill", node="replica1", t_inject=t,
                      t_heal=kw.pop("t_heal", t + failover_s), affected_partitions=partitions,
                      server_failover_s={p: failover_s for p in partitions}, **kw)


def _ttrs(history, events, *, policy="failover"):
    r = Recorder()
    record_in_end_order(r, history, faults=[(e.t_inject, e.affected_partitions)
                                            for e in events if not e.skipped])
    return [t for t in event_ttrs(r.snapshot(), events, t_end=T_END) if t.policy == policy]


def _first_ok(t: float) -> float:
    """TTR-first when the first ok write is the one intended at t (+ OFFSET_S)."""
    return t + OFFSET_S + SERVICE_S - 100.0


def test_recovery_on_the_first_op_after_failover():
    history = writes(90, 100) + writes(100, 120, ok=lambda t: t >= 100.85)
    [ttr] = _ttrs(history, [_kill()])
    assert ttr.recovered and ttr.first_s == pytest.approx(_first_ok(100.85), abs=1e-9)
    assert ttr.stable_recovered and ttr.stable_s == 1.0     # window 0 held 17 timeouts
    assert ttr.server_failover_s == 0.8
    assert ttr.lag_s == pytest.approx(_first_ok(100.85) - 0.8, abs=1e-9)
    assert not ttr.lag_negative and ttr.t_horizon == T_END


def test_an_ack_already_on_its_way_at_the_fault_is_not_a_recovery():
    # Handed over before the kill, acknowledged 0.2 ms after it: it proves nothing about
    # the partition after the fault (seen in an integration run as a negative lag).
    in_flight = op(99.999, start=99.999, end=100.0002)
    history = writes(90, 99.99) + [in_flight] + writes(100, 120, ok=lambda t: t >= 100.85)
    [ttr] = _ttrs(history, [_kill()])
    assert ttr.first_s == pytest.approx(_first_ok(100.85), abs=1e-9) and not ttr.lag_negative


def test_flapping_recovery_is_stable_later_than_first():
    def ok(t: float) -> bool:        # every other write of [101, 102) fails again
        return t >= 100.85 and not (101 <= t < 102 and round((t - 101) * 20) % 2 == 0)

    [ttr] = _ttrs(writes(90, 100) + writes(100, 120, ok=ok), [_kill()])
    assert ttr.first_s == pytest.approx(_first_ok(100.85), abs=1e-9)
    assert ttr.stable_s == 2.0 and ttr.stable_recovered


def test_a_partition_never_recovered_is_censored_at_the_run_end():
    [ttr] = _ttrs(writes(90, 100) + writes(100, 120, ok=lambda t: False), [_kill()])
    assert not ttr.recovered and ttr.first_s == 20.0          # observed so far
    assert not ttr.stable_recovered and ttr.stable_s == 20.0
    assert ttr.lag_s == pytest.approx(19.2)
    summary = ttr_summary([ttr], "failover")
    assert summary["ttr_first_ms"] == {"n": 1, "recovered": 0, "censored": 1, "p50": None,
                                       "p99": None, "max": None}
    assert summary["client_lag_ms"]["censored"] == 1 and summary["client_lag_ms"]["p99"] is None
    assert summary["recovered_fraction"] == 0.0


def test_overlapping_faults_bound_each_other_by_horizon():
    a = _kill(100.0, id="a")
    b = _kill(103.0, id="b", partitions=(3, 5), failover_s=0.9)
    history = writes(90, 100) + writes(100, 120, ok=lambda t: t >= 104.5)
    history += writes(90, 120, partition=5, ok=lambda t: not 103 <= t < 103.5)
    ttrs = {(t.event_id, t.partition): t for t in _ttrs(history, [a, b])}
    assert set(ttrs) == {("a", 3), ("b", 3), ("b", 5)}
    # a's partition 3 had not recovered when b hit it again: censored at b's t_inject
    assert ttrs["a", 3].t_horizon == 103.0
    assert not ttrs["a", 3].recovered and ttrs["a", 3].first_s == 3.0
    assert not ttrs["a", 3].stable_recovered and ttrs["a", 3].stable_s == 3.0
    assert ttrs["b", 3].first_s == pytest.approx(104.5 + OFFSET_S + SERVICE_S - 103, abs=1e-9)
    assert ttrs["b", 3].stable_s == 2.0                        # [104, 105) was half failed
    assert ttrs["b", 5].first_s == pytest.approx(103.5 + OFFSET_S + SERVICE_S - 103, abs=1e-9)
    assert ttrs["b", 5].stable_s == 1.0 and ttrs["b", 5].t_horizon == T_END
    assert horizon(b, 3, [a, b], T_END) == T_END             # only later faults bound
    assert horizon(a, 5, [a, b], T_END) == 103.0


def test_too_few_windows_before_the_horizon_is_censored():
    a, b = _kill(100.0, id="a"), _kill(103.6, id="b")
    history = writes(90, 100) + writes(100, 120, ok=lambda t: t >= 100.85)
    ttrs = {t.event_id: t for t in _ttrs(history, [a, b])}
    # windows [100,101) bad, [101,102) and [102,103) good: only 2 good windows left
    assert ttrs["a"].recovered and not ttrs["a"].stable_recovered
    assert ttrs["a"].stable_s == pytest.approx(3.6)
    assert ttrs["b"].stable_s == 0.0 and ttrs["b"].stable_recovered
    assert stable_from([(5, 5)] * 3) == 0 and stable_from([(5, 5)] * 2) is None
    assert stable_from([(4, 4)] + [(5, 5)] * 3) == 1          # 4 writes: too few
    assert stable_from([(98, 100)] + [(99, 100)] * 3) == 1    # 98 % ok: not good


def test_a_pause_shorter_than_the_grace_period_fails_over_at_heal():
    pause = FaultEvent(id="p1", kind="pause", node="replica1", t_inject=100.0, t_heal=102.0,
                       affected_partitions=(3,))            # the config never changed
    [ttr] = _ttrs(writes(90, 100) + writes(100, 120, ok=lambda t: t >= 102), [pause])
    assert pause.failover_s(3) == 2.0 and ttr.server_failover_s == 2.0
    assert ttr.first_s == pytest.approx(_first_ok(102.0), abs=1e-9)
    assert ttr.lag_s == pytest.approx(OFFSET_S + SERVICE_S, abs=1e-9)


def test_a_negative_lag_is_reported_as_measured_and_flagged():
    history = writes(90, 100) + writes(
        100, 120, ok=lambda t: 100.4 <= t < 100.45 or t >= 101.2)
    [ttr] = _ttrs(history, [_kill(failover_s=1.0)])
    assert ttr.first_s == pytest.approx(_first_ok(100.4), abs=1e-9)
    assert ttr.lag_s == pytest.approx(_first_ok(100.4) - 1.0, abs=1e-9) and ttr.lag_s < 0
    assert ttr.lag_negative
    lag = ttr_summary([ttr], "failover")["client_lag_ms"]
    assert lag["negative"] == 1 and lag["p50"] == lag["min"] == round(ttr.lag_s * 1000, 3)


def test_a_skipped_event_yields_no_ttr_and_bounds_nothing():
    a = _kill(100.0, id="a")
    skipped = FaultEvent(id="s", kind="kill", node="replica2", t_inject=105.0,
                         affected_partitions=(3,), skipped=True,
                         skip_reason="health gate: not healthy after 60 s")
    ttrs = _ttrs(writes(90, 100) + writes(100, 120, ok=lambda t: t >= 100.85), [a, skipped])
    assert [(t.event_id, t.t_horizon) for t in ttrs] == [("a", T_END)]
    with pytest.raises(ValueError, match="skip_reason"):
        FaultEvent(id="x", kind="kill", node="n", t_inject=1.0, skipped=True)


def test_every_policy_gets_a_ttr_and_one_without_writes_is_censored():
    history = writes(90, 120, ok=lambda t: not 100 <= t < 101)
    history += writes(90, 100, policy="legacy")               # legacy stopped writing
    history += writes(90, 120, partition=4, policy="quiet")   # never wrote partition 3
    ttrs = {t.policy: t for t in
            event_ttrs(_recorded(history, [_kill()]), [_kill()], t_end=T_END)}
    assert ttrs["failover"].recovered
    assert not ttrs["legacy"].recovered and not ttrs["quiet"].recovered


def _recorded(history, events):
    r = Recorder()
    record_in_end_order(r, history, faults=[(e.t_inject, e.affected_partitions) for e in events])
    return r.snapshot()


def test_a_fault_never_announced_to_the_recorder_is_an_error():
    state = _recorded(writes(90, 120), [])
    with pytest.raises(ValueError, match="fault_at"):
        event_ttrs(state, [_kill()], t_end=T_END)


def test_policy_distributions_of_several_partitions():
    event = _kill(partitions=(1, 2, 3, 4))
    history = []
    for pidx, recover_at in ((1, 100.5), (2, 101.0), (3, 102.0)):      # 4 never recovers
        history += writes(90, 120, partition=pidx, ok=lambda t, r=recover_at: t < 100 or t >= r)
    history += writes(90, 120, partition=4, ok=lambda t: t < 100)
    summary = ttr_summary(_ttrs(history, [event]), "failover")
    first = summary["ttr_first_ms"]
    assert (first["n"], first["recovered"], first["censored"]) == (4, 3, 1)
    # ranks: p50 -> 2nd sample (1.0055 s); p99 -> 4th, the censored one
    assert first["p50"] == pytest.approx(1005.5, rel=1e-3)
    assert first["p99"] is None and first["max"] is None
    assert summary["recovered_fraction"] == 0.75
