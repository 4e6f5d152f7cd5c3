"""Phases, error rates by phase and kind, recovery cost, censored distributions, durability."""

from __future__ import annotations

import dataclasses
import math

import pytest
from support.metrics import meta, op, record_in_end_order, writes

from loadgen.metrics import FaultEvent, Recorder, phases
from loadgen.metrics import hdr
from loadgen.metrics.analysis import (coarse_latency_in, durability, error_summary, latency_by_phase,
                                      live_p99_ms, missed_for, new_primary_block, policy_results,
                                      recovery_cost, ttr_summary)
from loadgen.metrics.distribution import CensoredDistribution
from loadgen.metrics.events import (FAULT, RECENT_FAULT_WINDOW_S, RECOVERY, STEADY, Phase,
                                    PhaseLookup, new_primaries, phase_seconds, phases_from_dicts)
from loadgen.metrics.hdr import coarse_index, coarse_value
from loadgen.metrics.results import Durability, NewPrimaryResult, PhaseOps
from loadgen.metrics.state import PolicyState
from loadgen.metrics.ttr import PartitionTTR

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


def test_phases_read_back_from_timeline_json_look_up_alike():
    """The report finds phases in timeline.json (an unhealed fault's end is null there)."""
    spans = phases([_event("a", 100.0, 102.0), _event("b", 140.0, None)])
    rows = [{"name": p.name, "start": p.start, "end": None if p.end == math.inf else p.end}
            for p in reversed(spans)]
    assert phases_from_dicts(rows) == spans
    lookup = PhaseLookup(phases_from_dicts(rows))
    assert [lookup.phase_of(t) for t in (99.0, 101.0, 111.9, 112.0, 500.0)] == [
        STEADY, FAULT, RECOVERY, STEADY, FAULT]


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
    assert summary.errors == 20 and summary.error_rate == 20 / 600
    # fault [100, 101.5): 30 writes, 20 timed out; recovery [101.5, 111.5): 200; steady: 370
    assert summary.ops_by_phase == {FAULT: PhaseOps(ops=30, errors=20),
                                    RECOVERY: PhaseOps(ops=200, errors=0),
                                    STEADY: PhaseOps(ops=370, errors=0)}
    assert summary.error_rate_by_phase == {FAULT: 20 / 30, RECOVERY: 0.0, STEADY: 0.0}
    assert summary.errors_by_kind == {"ERR_TIMEOUT": 20}
    assert summary.error_rate_by_kind == {"ERR_TIMEOUT": 20 / 600}


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
    assert (s.n, s.recovered, s.censored) == (4, 3, 1)
    assert s.p50 == pytest.approx(2000, rel=1e-3)             # rank 2 of 4
    assert s.p99 is None and s.max is None                    # they land on +inf
    assert s.or_inf(s.p99) == math.inf and s.or_inf(s.p50) == s.p50
    d.add(0.0)                                                # 0 is a value, not a hole
    assert d.n == 5 and d.value_at_rank_s(1) == pytest.approx(0.0, abs=1e-6)


def test_negative_samples_rank_first_and_stay_exact():
    d = CensoredDistribution()
    for v in (0.2, -0.5, None):
        d.add(v)
    s = d.lag_summary_ms(unknown=2)
    assert s.negative == 1 and s.min == -500.0 and s.unknown == 2
    assert s.p50 == pytest.approx(200, rel=1e-3) and s.max is None
    empty = CensoredDistribution().summary_ms()
    assert empty.to_dict() == {"n": 0, "recovered": 0, "censored": 0, "p50": None, "p99": None,
                               "max": None}
    assert empty.or_inf(empty.p50) is None                   # no sample: not +inf


def test_durability_counts():
    assert durability(100, 98) == Durability(acked=100, verified=98, lost=2)
    assert durability(100, 100, lost=0) == Durability(acked=100, verified=100, lost=0)
    with pytest.raises(ValueError):
        durability(-1, 0)


# ---------------------------------------------- a new primary faulted shortly before (#13)

def _compound() -> list[FaultEvent]:
    """Kill of replica1 at 20 (restarted at 32); at 50 a pause of replica2 whose partition 3
    the meta hands to replica1 and partition 5 to replica3 (never faulted); at 200 a pause of
    replica3 whose partition 6 goes to replica1, last faulted 180 s earlier."""
    return [
        FaultEvent(id="1", kind="kill", node="replica1", t_inject=20.0, t_heal=32.0,
                   affected_partitions=(0,), promoted={0: "replica2"}),
        FaultEvent(id="2", kind="pause", node="replica2", t_inject=50.0, t_heal=58.0,
                   affected_partitions=(3, 5, 7), promoted={3: "replica1", 5: "replica3"}),
        FaultEvent(id="3", kind="pause", node="replica3", t_inject=200.0, t_heal=204.0,
                   affected_partitions=(6,), promoted={6: "replica1"}),
    ]


def test_a_new_primary_faulted_within_60_s_is_flagged_with_its_age():
    events = _compound()
    block = new_primary_block(events[1], events)
    assert block[3] == NewPrimaryResult(node="replica1", last_fault_id="1",
                                        last_fault_age_s=30.0, recently_faulted=True)
    assert block[5] == NewPrimaryResult(node="replica3", last_fault_id=None,
                                        last_fault_age_s=None, recently_faulted=False)
    assert 7 not in block                          # the config never named a new primary
    # the same node, faulted 180 s earlier: no longer inside Go's redial throttle
    assert new_primary_block(events[2], events)[6].last_fault_age_s == 180.0
    assert not new_primary_block(events[2], events)[6].recently_faulted
    assert new_primaries(events[0], events)[0].last_fault_age_s is None   # nothing before it


def test_the_flag_window_is_the_go_redial_throttle():
    assert RECENT_FAULT_WINDOW_S == 60.0
    kill = FaultEvent(id="1", kind="kill", node="replica1", t_inject=0.0)
    skipped = FaultEvent(id="s", kind="kill", node="replica1", t_inject=30.0, skipped=True,
                         skip_reason="health gate")
    just_out = FaultEvent(id="2", kind="pause", node="replica2", t_inject=60.0,
                          affected_partitions=(1,), promoted={1: "replica1"})
    [np] = new_primaries(just_out, [kill, skipped, just_out]).values()
    assert np.last_fault_id == "1" and np.last_fault_age_s == 60.0 and not np.recently_faulted


def test_a_policy_block_of_results_json_carries_the_run_counts():
    """results.json's policies.<name> (written from analysis.py's surviving mutants, issue 19)."""
    policy, spans = _phased_run()
    block = policy_results(policy, ttrs=[], name="failover", spans=spans, t_start=90.0,
                           t_end=120.0, missed=4).to_dict()
    assert {k: block[k] for k in (
        "ops", "outcomes", "errors", "attempts", "meta_queries", "meta_queries_failed",
        "replica_queries", "missed", "dropped", "dropped_by_partition", "attempt_outcomes",
        "attempt_errors", "clamped", "errors_by_kind")} == {
        "ops": 600, "outcomes": {"ok": 580, "fail": 0, "unknown": 20}, "errors": 20,
        "attempts": 640, "meta_queries": 21, "meta_queries_failed": 0, "replica_queries": 0,
        "missed": 4, "dropped": 0, "dropped_by_partition": {},
        "attempt_outcomes": {"ok": 0, "fail": 0, "unknown": 0}, "attempt_errors": {},
        "clamped": 0, "errors_by_kind": {"ERR_TIMEOUT": 20}}
    assert block["error_rate"] == 20 / 600 and block["attempts_per_op"] == 640 / 600
    assert block["meta_queries_per_s"] == 20 / 11.5               # fault and recovery phases
    assert block["meta_queries_per_s_overall"] == pytest.approx(21 / 30)
    assert block["recovered_fraction"] is None                     # no fault TTRs given


# ------------------------------------------ TTR summaries and real clients (issue 19)

def _ttr(policy: str, first: float, recovered: bool, stable: float, stable_recovered: bool,
         lag: float | None, partition: int = 3) -> PartitionTTR:
    return PartitionTTR(event_id="a", policy=policy, partition=partition, t_inject=100.0,
                        t_horizon=130.0, first_s=first, recovered=recovered, stable_s=stable,
                        stable_recovered=stable_recovered,
                        server_failover_s=None if lag is None else first - lag, lag_s=lag,
                        lag_negative=lag is not None and lag < 0)


def _failover_ttrs() -> list[PartitionTTR]:
    """Five partitions of "failover" (one never recovered, two without a server failover
    time, one whose client beat the server), with another policy's rows in between."""
    return [
        _ttr("failover", 0.5, True, 2.0, True, 0.1, partition=0),
        _ttr("baseline", 0.04, True, 0.05, True, 0.01, partition=0),
        _ttr("failover", 1.0, True, 9.0, False, None, partition=1),
        _ttr("failover", 5.0, False, 5.0, False, 4.0, partition=2),
        _ttr("baseline", 30.0, False, 30.0, False, None, partition=1),
        _ttr("failover", 0.2, True, 0.3, True, -0.05, partition=3),
        _ttr("failover", 3.0, True, 4.0, True, None, partition=4),
    ]


def test_ttr_summary_counts_only_the_policy_and_censors_the_unrecovered():
    s = ttr_summary(_failover_ttrs(), "failover")
    assert (s.first.n, s.first.recovered, s.first.censored) == (5, 4, 1)
    assert (s.stable.n, s.stable.recovered, s.stable.censored) == (5, 3, 2)
    assert s.recovered_fraction == 4 / 5 and s.stable_recovered_fraction == 3 / 5
    # rank 3 of 5: 0.2, 0.5, 1.0, 3.0, +inf; the censored sample is the max
    assert s.first.p50 == pytest.approx(1000, rel=1e-2) and s.first.max is None
    # stable: 0.3, 2.0, 4.0, +inf, +inf
    assert s.stable.p50 == pytest.approx(4000, rel=1e-2)
    # lag: 0.1, +inf (not recovered), -0.05; two rows had no server failover time
    assert (s.lag.n, s.lag.censored, s.lag.negative, s.lag.unknown) == (3, 1, 1, 2)
    assert s.lag.min == -50.0 and s.lag.p50 == pytest.approx(100, rel=1e-2)
    other = ttr_summary(_failover_ttrs(), "baseline")
    assert (other.first.n, other.first.censored, other.lag.n, other.lag.unknown) == (2, 1, 1, 1)
    assert other.first.p50 == pytest.approx(40, rel=1e-2)
    assert other.recovered_fraction == 0.5
    none = ttr_summary([], "failover")
    assert none.recovered_fraction is None and none.stable_recovered_fraction is None


def test_a_policy_block_carries_its_ttrs_and_fractions():
    policy, spans = _phased_run()
    block = policy_results(policy, ttrs=_failover_ttrs(), name="failover", spans=spans,
                           t_start=90.0, t_end=120.0).to_dict()
    assert block["recovered_fraction"] == 0.8 and block["stable_recovered_fraction"] == 0.6
    assert (block["ttr_first_ms"]["n"], block["ttr_first_ms"]["censored"]) == (5, 1)
    assert (block["ttr_stable_ms"]["n"], block["ttr_stable_ms"]["censored"]) == (5, 2)
    assert (block["client_lag_ms"]["n"], block["client_lag_ms"]["unknown"],
            block["client_lag_ms"]["min"]) == (3, 2, -50.0)
    hdrs = block["ttr_hdr"]
    assert (hdrs["ttr_first_ms"]["count"], hdrs["ttr_first_ms"]["censored"]) == (4, 1)
    assert hdrs["client_lag_ms"]["negative"] == 1
    assert block["missed"] is None                                  # not given
    assert block["recovery_cost"] == {"seconds": 11.5, "ops": 230,
                                      "attempts_per_op": (20 * 3 + 210) / 230,
                                      "meta_queries": 20, "meta_queries_per_s": 20 / 11.5}
    assert block["ops_by_phase"][FAULT] == {"ops": 30, "errors": 20}
    assert block["error_rate_by_phase"] == {FAULT: 20 / 30, RECOVERY: 0.0, STEADY: 0.0}
    assert block["error_rate_by_kind"] == {"ERR_TIMEOUT": 20 / 600}
    assert block["latency_us"]["put"]["response"]["count"] == 600
    # by each op's intended start against the recorder's fault (at 100, never healed there)
    assert {kind: {phase: v["count"] for phase, v in by_phase.items()}
            for kind, by_phase in block["latency_by_phase_us"]["put"].items()} == {
        "response": {FAULT: 400, STEADY: 200}, "service": {FAULT: 400, STEADY: 200}}


def test_a_real_clients_block_has_no_attempts_per_op_and_meta_rate_only_when_counted():
    policy, spans = _phased_run()

    def block(real_client):
        return policy_results(policy, ttrs=[], name="failover", spans=spans, t_start=90.0,
                              t_end=120.0, real_client=real_client).to_dict()

    uncounted = block({"meta_queries_counted": False})
    assert uncounted["attempts_per_op"] is None
    assert uncounted["recovery_cost"]["attempts_per_op"] is None
    assert uncounted["meta_queries_per_s"] is None
    assert uncounted["meta_queries_per_s_overall"] is None
    assert uncounted["recovery_cost"]["meta_queries_per_s"] is None
    assert uncounted["attempts"] == 640 and uncounted["meta_queries"] == 21
    assert block({})["meta_queries_per_s_overall"] is None           # not said: not counted
    counted = block({"meta_queries_counted": True})
    assert counted["attempts_per_op"] is None
    assert counted["meta_queries_per_s"] == 20 / 11.5
    assert counted["meta_queries_per_s_overall"] == pytest.approx(21 / 30)
    assert counted["recovery_cost"]["meta_queries_per_s"] == 20 / 11.5


def test_durability_lost_defaults_to_the_acked_not_found_and_says_which_count_is_negative():
    assert durability(0, 0) == Durability(acked=0, verified=0, lost=0)
    assert durability(5, 7).lost == 0                   # more found than acked: none lost
    assert durability(100, 90, lost=3).lost == 3        # the caller's own count wins
    assert durability(10, 9, by_policy={}).by_policy is None
    rows = {"failover": {"acked": 10, "lost": 1}}
    assert durability(10, 9, by_policy=rows).by_policy == rows
    with pytest.raises(ValueError, match=r"^negative counts: acked=-1 verified=0$"):
        durability(-1, 0)
    with pytest.raises(ValueError, match=r"^negative counts: acked=3 verified=-2$"):
        durability(3, -2)


def test_missed_for_a_policy_is_none_unless_counted_and_zero_when_not_named():
    assert missed_for(None, "failover") is None
    assert missed_for({"failover": 4}, "failover") == 4
    assert missed_for({"failover": 4}, "baseline") == 0


def test_live_p99_sums_the_seconds_of_the_phase_by_their_middle():
    """The live page's fault-phase p99: seconds 100 and 101 are in the fault [100, 102)."""
    events = [_event("a", 100.0, 102.0)]
    ms50, ms200, ms900 = (coarse_index(v) for v in (50_000, 200_000, 900_000))
    latency = {99: {ms900: 50}, 100: {ms50: 98, ms200: 1}, 101: {ms200: 1},
               102: {ms900: 50}}
    # 100 ops in the fault: 98 near 50 ms and 2 near 200 ms, so the 99th is one of those 2
    assert coarse_latency_in(latency, events) == {ms50: 98, ms200: 2}
    # in ms: the middle of the coarse bucket (within its width of the values)
    assert live_p99_ms(latency, events) == coarse_value(ms200) / 1000
    assert live_p99_ms(latency, events) == pytest.approx(200, rel=0.05)
    assert live_p99_ms(latency, events, RECOVERY) == pytest.approx(900, rel=0.05)
    assert live_p99_ms({99: {ms900: 5}}, events) is None         # no op in the fault


def test_a_new_primarys_last_fault_age_is_rounded_to_the_millisecond():
    first = FaultEvent(id="1", kind="kill", node="replica1", t_inject=20.0, t_heal=32.0)
    later = FaultEvent(id="2", kind="pause", node="replica2", t_inject=50.12345, t_heal=58.0,
                       affected_partitions=(3,), promoted={3: "replica1"})
    assert new_primary_block(later, [first, later])[3].last_fault_age_s == 30.123


def test_latency_by_phase_lists_fault_recovery_steady_whatever_order_the_ops_came_in():
    """results.json's latency_by_phase_us: phases in PHASES' order, not the order the state
    first saw them (here the steady phase's ops came first); a phase without ops is left out."""
    def hist(*values_us: int):
        h = hdr.new_histogram()
        for v in values_us:
            h.record_value(v)
        return h

    state = PolicyState(phase_histograms={
        ("put", "response", STEADY): hist(1_000, 1_200), ("put", "response", RECOVERY): hist(),
        ("put", "response", FAULT): hist(900_000)})
    by_phase = latency_by_phase(state)["put"]["response"]
    assert list(by_phase) == [FAULT, STEADY]
    assert by_phase[FAULT].count == 1 and by_phase[STEADY].count == 2
    state = PolicyState(phase_histograms={
        ("get", "service", STEADY): hist(1_000), ("get", "service", RECOVERY): hist(2_000),
        ("get", "service", FAULT): hist(3_000)})
    assert list(latency_by_phase(state)["get"]["service"]) == [FAULT, RECOVERY, STEADY]


def test_a_policy_block_carries_failed_meta_queries_replica_reads_drops_and_clamps():
    """The counts the state holds as they are, drops and attempt errors in a stable order."""
    policy, spans = _phased_run()
    policy = dataclasses.replace(
        policy, meta_failed=3, replica_queries=7, clamped=2, dropped={5: 4, -1: 1, 2: 6},
        attempt_errors={"ERR_TIMEOUT": 5, "ERR_SESSION_RESET": 2})
    block = policy_results(policy, ttrs=[], name="failover", spans=spans, t_start=90.0,
                           t_end=120.0).to_dict()
    assert (block["meta_queries_failed"], block["replica_queries"], block["clamped"]) == (3, 7, 2)
    assert block["dropped"] == 11
    assert list(block["dropped_by_partition"].items()) == [("-1", 1), ("2", 6), ("5", 4)]
    assert list(block["attempt_errors"].items()) == [("ERR_SESSION_RESET", 2), ("ERR_TIMEOUT", 5)]


def test_recovery_cost_counts_only_the_measurement_window():
    """A window [95, 105) cutting the recovery phase: 5 s of fault and recovery, the 100
    writes intended there (20 timed out after 3 attempts), 10 meta queries (not the one at
    95, in the steady phase)."""
    policy, spans = _phased_run()
    assert recovery_cost(policy, spans, 95.0, 105.0) == {
        "seconds": 5.0, "ops": 100, "attempts_per_op": 1.4, "meta_queries": 10,
        "meta_queries_per_s": 2.0}
    assert recovery_cost(policy, spans, 101.5, 111.5)["meta_queries_per_s"] == 1.7


def test_failed_and_unknown_ops_both_count_as_ops_and_errors_of_their_phase():
    """Writes at 20/s over [90, 120): those intended in [100, 100.5) fail outright, those in
    [100.5, 101) time out (unknown); a policy with no ops has no error and no rate."""
    def outcome(o):
        if 100 <= o.intended_start < 100.5:
            return op(o.intended_start, outcome="fail", error="ERR_OBJECT_NOT_FOUND")
        if 100.5 <= o.intended_start < 101:
            return op(o.intended_start, ok=False)
        return o

    r = Recorder()
    record_in_end_order(r, [outcome(o) for o in writes(90, 120)], faults=[(100.0, (3,))])
    policy, spans = r.snapshot().policies["failover"], phases([_event("a", 100.0, 101.5)])
    summary = error_summary(policy, spans)
    assert summary.ops_by_phase[FAULT] == PhaseOps(ops=30, errors=20)
    assert summary.error_rate_by_phase[FAULT] == 20 / 30
    assert summary.errors == 20 and summary.error_rate == 20 / 600
    assert list(summary.errors_by_kind.items()) == [("ERR_OBJECT_NOT_FOUND", 10),
                                                   ("ERR_TIMEOUT", 10)]
    assert recovery_cost(policy, spans, 90.0, 120.0)["ops"] == 230     # fault and recovery
    idle = error_summary(PolicyState(), [])
    assert idle.errors == 0 and idle.error_rate is None
