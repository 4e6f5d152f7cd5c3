"""TTR-first, TTR-stable, client lag and censoring on hand-built histories with known answers.

Writes go to partition 3 every 50 ms, intended at t + 2.5 ms; an ok write takes 3 ms, a failed
one times out after 1 s. The fault is injected at 100.0 and the run ends at 120.0.
"""

from __future__ import annotations

import random

import pytest
from support.metrics import OFFSET_S, SERVICE_S, op, record_in_end_order, writes

from loadgen.metrics import FaultEvent, Recorder, Series, event_ttrs
from loadgen.metrics.analysis import ttr_summary
from loadgen.metrics.results import Distribution
from loadgen.metrics.ttr import horizon, observed_until, stable_from

pytestmark = pytest.mark.unit

T_END = 120.0


def _kill(t: float = 100.0, *, id: str = "f1", partitions=(3,), failover_s=0.8, **kw) -> FaultEvent:
    return FaultEvent(id=id, kind="kill", node="replica1", t_inject=t,
                      t_heal=kw.pop("t_heal", t + failover_s), affected_partitions=partitions,
                      server_failover_s={p: failover_s for p in partitions}, **kw)


def _ttrs(history, events, *, policy="failover", t_end=T_END):
    r = Recorder()
    record_in_end_order(r, history, faults=[(e.t_inject, e.affected_partitions)
                                            for e in events if not e.skipped])
    return [t for t in event_ttrs(r.snapshot(), events, t_end=t_end) if t.policy == policy]


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
    assert summary.first == Distribution(n=1, recovered=0, censored=1, p50=None, p99=None,
                                         max=None)
    assert summary.lag.censored == 1 and summary.lag.p99 is None
    assert summary.recovered_fraction == 0.0


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
    # b: every window good from its t_inject; stable is its first success, never before it
    assert ttrs["b"].stable_recovered and ttrs["b"].stable_s == ttrs["b"].first_s > 0.0
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
    lag = ttr_summary([ttr], "failover").lag
    assert lag.negative == 1 and lag.p50 == lag.min == round(ttr.lag_s * 1000, 3)


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
    first = summary.first
    assert (first.n, first.recovered, first.censored) == (4, 3, 1)
    # ranks: p50 -> 2nd sample (1.0055 s); p99 -> 4th, the censored one
    assert first.p50 == pytest.approx(1005.5, rel=1e-3)
    assert first.p99 is None and first.max is None
    assert summary.recovered_fraction == 0.75


# ---------------------------------------------------------------- issue #13's three defects


def test_stable_is_never_before_first_when_late_sends_fill_early_windows():
    # A user that fell behind sends the ops intended in [100, 104.65) only at 104.65: they
    # succeed, so every window by intended start is good, yet the first ok came 4.65 s after
    # the fault (measured: stable 0 ms, first 4668 ms). TTR-stable = max(first, window start).
    late = [op(t, start=104.65 + k * 0.0001) for k, t in
            enumerate(o.intended_start for o in writes(100, 104.65))]
    [ttr] = _ttrs(writes(90, 100) + late + writes(104.65, 120), [_kill()])
    assert ttr.recovered and ttr.first_s == pytest.approx(4.65 + SERVICE_S, abs=1e-9)
    assert ttr.stable_recovered and ttr.stable_s == ttr.first_s


def test_the_run_end_inside_a_coarse_bucket_does_not_censor():
    # 1 s buckets beyond ±30 s of the fault; the run ends 0.2 s into second 140, so the bucket
    # of second 140 holds 4 writes (the rest of it was never offered): only a partial bucket.
    # Windows start at 100.1: today window 39 = [139.1, 140.1) held that bucket alone.
    fault = _kill(100.1)
    history = writes(90, 100.1) + writes(100.1, 140.2, ok=lambda t: t >= 100.85)
    [ttr] = _ttrs(history, [fault], t_end=140.2)
    assert ttr.recovered and ttr.stable_recovered and ttr.stable_s == 1.0


def test_trailing_windows_without_offered_load_do_not_censor():
    # The load stopped at 138 (nothing offered by the policy afterwards), the run ended at
    # 140.6: the empty windows [138, 140) are not observed, not bad.
    history = writes(90, 100) + writes(100, 138, ok=lambda t: t >= 100.85)
    [ttr] = _ttrs(history, [_kill()], t_end=140.6)
    assert ttr.stable_recovered and ttr.stable_s == 1.0


def test_a_partition_silent_while_the_policy_writes_elsewhere_is_still_bad():
    # The policy kept writing to partition 4 up to the run end, partition 3 went silent at
    # 138 (its ops stuck, never answered): those windows were offered load and are bad.
    history = writes(90, 100) + writes(100, 138, ok=lambda t: t >= 100.85)
    history += writes(90, 140.6, partition=4)
    [ttr] = _ttrs(history, [_kill()], t_end=140.6)
    assert ttr.recovered and not ttr.stable_recovered and ttr.stable_s == pytest.approx(40.6)


def test_a_bad_window_before_the_last_observed_bucket_still_counts():
    # Writes of [139, 140) fail; the run ends at 140.2: [139, 140) is fully observed and bad.
    fault = _kill(100.0)
    history = writes(90, 100) + writes(100, 140.2, ok=lambda t: 100.85 <= t < 139)
    [ttr] = _ttrs(history, [fault], t_end=140.2)
    assert ttr.recovered and not ttr.stable_recovered


def test_the_grid_ends_at_the_start_of_the_bucket_holding_the_limit():
    series = Series(width=3, coarse={103: (20, 0, 0), 139: (20, 0, 0)},
                    fine={103: (1, 0, 0) * 100})
    assert observed_until(series, 103.6) == 103.6           # on a 10 ms edge (float-safe)
    assert observed_until(series, 103.655) == 103.65        # inside a 10 ms bucket
    assert observed_until(series, 139.7) == 139.0           # a 1 s bucket
    assert observed_until(None, 139.7) == 139.0
    assert observed_until(series, 140.0) == 140.0


def test_a_fault_on_a_secondary_of_the_partition_ends_the_horizon():
    # Kill of partition 3's primary at 100; at 104 a pause of replica2, a *secondary* of
    # partition 3 (primary of 5): one write on partition 3 is left unknown at 104.2. That
    # belongs to the pause, not to the kill (measured: stable 31 000 ms for a 1.3 s recovery).
    kill = _kill(100.0, id="a", touched_partitions=(3, 4))
    pause = FaultEvent(id="b", kind="pause", node="replica2", t_inject=104.0, t_heal=105.0,
                       affected_partitions=(5,), touched_partitions=(3, 5))
    history = writes(90, 100) + writes(100, 120, ok=lambda t: t >= 100.85
                                       and not 104.2 <= t < 104.25)
    history += writes(90, 120, partition=5)
    a3 = next(t for t in _ttrs(history, [kill, pause]) if t.event_id == "a")
    assert a3.t_horizon == 104.0
    assert a3.stable_recovered and a3.stable_s == 1.0
    assert horizon(kill, 3, [kill, pause], T_END) == 104.0
    assert horizon(kill, 4, [kill, pause], T_END) == T_END       # 4 not on replica2


def test_a_later_fault_with_unknown_replicas_ends_every_horizon():
    # Old results carry no touched_partitions: any later fault might touch the partition.
    kill = _kill(100.0, id="a")
    other = FaultEvent(id="b", kind="pause", node="replica2", t_inject=104.0, t_heal=105.0,
                       affected_partitions=(5,))
    assert other.touched_partitions is None
    assert horizon(kill, 3, [kill, other], T_END) == 104.0
    known = FaultEvent(id="c", kind="pause", node="replica2", t_inject=104.0, t_heal=105.0,
                       affected_partitions=(5,), touched_partitions=(5, 6))
    assert horizon(kill, 3, [kill, known], T_END) == T_END


def _random_history(rng: random.Random) -> tuple[list, list[FaultEvent], float]:
    """A kill at 100 with a random outage; a user behind by a random lag (ops intended during
    the lag are sent at its end, and succeed if the outage is over by then); flapping; a
    random run end; sometimes a later fault on a secondary."""
    outage = rng.uniform(0.0, 6.0)
    lag = rng.choice([0.0, rng.uniform(0.0, 8.0)])
    flap_at, flap_s = rng.uniform(100, 115), rng.choice([0.0, 0.3])
    t_end = rng.choice([120.0, rng.uniform(104, 145)])
    history = writes(90, 100)
    for o in writes(100, t_end):
        start = max(o.intended_start, 100 + lag)
        ok = start >= 100 + outage and not flap_at <= start < flap_at + flap_s
        history.append(op(o.intended_start, start=start, ok=ok))
    events = [_kill(100.0, id="a", partitions=(3,))]
    if rng.random() < 0.5:
        events.append(FaultEvent(id="b", kind="pause", node="replica2",
                                 t_inject=rng.uniform(101, t_end), t_heal=None,
                                 affected_partitions=(5,), touched_partitions=(3, 5)))
    return history, events, t_end


@pytest.mark.parametrize("seed", range(12))
def test_every_ttr_stable_is_at_least_its_ttr_first(seed):
    history, events, t_end = _random_history(random.Random(seed))
    for ttr in _ttrs(history, events, t_end=t_end):
        if ttr.stable_recovered:
            assert ttr.recovered and ttr.stable_s >= ttr.first_s
        if not ttr.recovered:
            assert not ttr.stable_recovered


def test_a_change_of_bucket_width_before_a_later_fault_does_not_make_a_bad_window():
    # Beyond ±30 s of a fault the buckets are whole seconds; from 30 s before the next fault
    # (f2 at 170) they are 10 ms again. Windows start at 100.05: counting each bucket in the
    # window holding its start gave window [139.05, 140.05) only 140.00-140.05 of second
    # 140 (1 write: "bad"), so a partition healthy from 101 s on was censored at the horizon
    # (measured on pegasus-defaults: failover stable 120 013 ms, first 23 157 ms).
    f1 = _kill(100.05, id="f1")
    f2 = _kill(170.0, id="f2")
    history = writes(90, 200, ok=lambda t: not 100.05 <= t < 100.85 and not 170 <= t < 170.8)
    ttrs = {t.event_id: t for t in _ttrs(history, [f1, f2], t_end=200.0)}
    assert ttrs["f1"].stable_recovered and ttrs["f1"].stable_s == pytest.approx(1.0)
    assert ttrs["f2"].stable_recovered
