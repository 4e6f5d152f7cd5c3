"""The recorder's counters, live totals, fault instants and phase spans, with known answers.

Written from the mutants of ``loadgen/metrics/recorder.py`` that the recorder, state and
phase tests let survive (issue 19): each test states a count, a phase or a first-success time
that results.json, timeline.json or the live view shows, which the mutant changed.
"""

from __future__ import annotations

import pytest
from support.metrics import TABLE, attempt, meta, op, record_in_end_order, writes

from loadgen.metrics import FaultInstant, Recorder
from loadgen.metrics.recorder import PHASE_SETTLE_S
from loadgen.metrics.series import RECENT_S
from loadgen.pegasus.outcome import Outcome

pytestmark = pytest.mark.unit


def _probe(t: float) -> Outcome:
    """A replica probe's read (counted, not an op)."""
    return Outcome(level="probe", op="get", table=TABLE, partition=3, node="n2", start=t,
                   end=t + 0.001, outcome="ok", error=None, attempt=1, refreshed=False,
                   policy="failover")


def _phases(r: Recorder) -> dict[str, int]:
    """Ops (put service times) per phase."""
    p = r.snapshot().policies["failover"]
    return {phase: h.get_total_count() for (name, kind, phase), h in p.phase_histograms.items()
            if (name, kind) == ("put", "service")}


def _ops_at(r: Recorder, *times: float) -> None:
    for t in times:
        r.record(op(t, end=t + 0.001))


# --------------------------------------------------------------------------- counters


def test_dropped_arrivals_are_counted_by_partition_and_second():
    r = Recorder()
    for partition, t in [(3, 101.2), (3, 101.7), (5, 102.0), (-1, 96.5)]:
        r.drop("failover", partition, t)
    r.drop("legacy", 3, 101.0)                     # a policy with no op yet
    p = r.snapshot().policies["failover"]
    assert p.dropped == {3: 2, 5: 1, -1: 1}
    assert p.dropped_by_second == {101: 2, 102: 1, 96: 1}
    assert p.dropped_total == 4
    assert r.dropped_totals() == {"failover": 4, "legacy": 1}


def test_attempts_meta_queries_and_probe_reads_are_counted_each_time():
    r = Recorder()
    for o in [attempt(1.0, ok=False), attempt(1.1, ok=False), attempt(1.2, ok=False,
                                                                      error="ERR_BUSY"),
              Outcome(level="attempt", op="put", table=TABLE, partition=3, node="n1",
                      start=1.3, end=1.4, outcome="unknown", error=None, attempt=2,
                      refreshed=False, policy="failover"),
              attempt(1.5), attempt(1.6),
              meta(2.001, ok=False), meta(2.002, ok=False), meta(2.003),
              _probe(3.0), _probe(3.5)]:
        r.record(o)
    p = r.snapshot().policies["failover"]
    assert p.attempt_outcomes == {"ok": 2, "fail": 0, "unknown": 4}
    assert p.attempt_errors == {"ERR_SESSION_RESET": 2, "ERR_BUSY": 1, "UNSPECIFIED": 1}
    assert (p.meta_queries, p.meta_failed, p.replica_queries) == (3, 2, 2)
    assert p.series.coarse[2] == (0, 0, 0, 0, 3)    # three meta queries in one 10 ms bucket
    assert p.ops == 0


def test_an_unknown_record_level_is_refused_by_name():
    bogus = Outcome(level="bogus", op="put", table=TABLE, partition=3, node="n1", start=1.0,
                    end=1.1, outcome="ok", error=None, attempt=1, refreshed=False,
                    policy="failover")
    with pytest.raises(ValueError, match="^unknown outcome level 'bogus'$"):
        Recorder().record(bogus)


def test_live_totals_are_ops_errors_and_meta_queries_per_policy():
    r = Recorder()
    for o in [op(1.0), op(1.1), op(1.2, ok=False), op(1.3, outcome="fail", error="ERR_X"),
              meta(1.0), op(2.0, policy="legacy")]:
        r.record(o)
    assert r.totals() == {"failover": (4, 2, 1), "legacy": (1, 0, 0)}


def test_cumulative_histograms_are_keyed_by_policy_op_and_kind():
    r = Recorder()
    r.record(op(1.0, start=1.5, end=1.502))
    counts = r.histogram_counts()
    assert set(counts) == {("failover", "put", "service"), ("failover", "put", "response")}
    assert sum(counts["failover", "put", "service"]) == 1
    assert r.histograms()["failover", "put", "response"].get_max_value() == pytest.approx(
        502_000, rel=1e-3)


def test_latencies_of_1us_and_of_1h_are_in_range_not_clamped():
    """clamped counts latencies pulled into 1 µs … 1 h: the ends themselves are in range."""
    r = Recorder()
    r.record(op(10.0, end=10.000001))
    r.record(op(20.0, end=3620.0))
    p = r.snapshot().policies["failover"]
    assert p.clamped == 0
    service = p.histograms[("put", "service")]
    assert (service.get_min_value(), service.get_max_value()) == (
        1, service.get_highest_equivalent_value(3_600_000_000))


def test_writes_in_one_10ms_bucket_all_count_in_the_partitions_timeline():
    r = Recorder()
    r.fault_at(100.0, (3,))
    for t in (100.001, 100.003, 100.005):
        r.record(op(t))
    r.record(op(100.007, ok=False))
    series = r.snapshot().policies["failover"].partitions[(TABLE, 3)].series
    assert list(series.buckets()) == [(100.0, 0.01, (3, 0, 1))]


# --------------------------------------------------------------------------- first success


def test_the_first_ok_write_of_a_partition_after_a_fault_is_its_first_success():
    r = Recorder()
    r.fault_at(100.0, (3,))
    r.record(op(100.2, end=100.25))
    r.record(op(100.5, end=100.55))
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == 100.25


def test_an_outage_longer_than_recent_s_gets_its_exact_first_success():
    """A partition that fails for 70 s: the ok ends from before the fault are forgotten
    meanwhile, and the first write that succeeds afterwards is still the one found."""
    r = Recorder()
    history = writes(40, 100) + writes(100, 170, ok=lambda t: False) + writes(170, 200)
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == pytest.approx(170.0 + 0.0025 + 0.003)


def test_after_a_stall_longer_than_recent_s_the_first_success_is_still_exact():
    """Writes hang from the fault on and time out 65 s later, all at once: the ok ends from
    before the fault are forgotten then, and the writes that succeed next are still found."""
    r = Recorder()
    hung = [op(100.0 + k / 20, ok=False, end=165.0 + k / 1000) for k in range(20)]
    history = writes(40, 100) + hung + writes(165.1, 200)
    record_in_end_order(r, history, faults=[(100.0, (3,))])
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == pytest.approx(165.1 + 0.0025 + 0.003)


def test_a_write_handed_over_at_the_fault_instant_counts_as_after_it():
    r = Recorder()
    r.fault_at(100.0, (3,))
    r.record(op(99.99, end=100.3))                 # on its way at the fault: proves nothing
    r.record(op(100.0, end=100.4))                 # handed over at the instant itself
    timeline = r.snapshot().policies["failover"].partitions[(TABLE, 3)]
    assert timeline.first_ok_end_after(100.0) == 100.4


def test_a_fault_on_every_partition_announced_late_reaches_the_partitions_written_before():
    r = Recorder()
    record_in_end_order(r, writes(90, 101) + writes(90, 101, partition=5))
    r.fault_at(100.0)                              # whole table, after writes began
    record_in_end_order(r, writes(101, 102) + writes(101, 102, partition=5))
    p = r.snapshot().policies["failover"]
    for pidx in (3, 5):
        assert p.partitions[(TABLE, pidx)].first_ok_end_after(100.0) == pytest.approx(
            100.0 + 0.0025 + 0.003)


def test_a_fault_on_one_partition_announced_late_is_not_registered_on_another():
    r = Recorder()
    record_in_end_order(r, writes(90, 101) + writes(90, 101, partition=5))
    r.fault_at(100.0, (3,))
    p = r.snapshot().policies["failover"]
    with pytest.raises(LookupError):
        p.partitions[(TABLE, 5)].first_ok_end_after(100.0)


# --------------------------------------------------------------------------- 10 ms detail


def test_a_heal_keeps_10ms_detail_only_on_the_partitions_it_touches():
    r = Recorder()
    r.heal_at(150.0, (3,))
    r.fault_instant(FaultInstant("f1", "kill", "n1", "heal", 250.0, (3,)))
    record_in_end_order(r, writes(100, 300) + writes(100, 300, partition=5))
    p = r.snapshot().policies["failover"]
    assert set(p.partitions[(TABLE, 3)].series.fine) == set(range(120, 180)) | set(
        range(220, 280))
    assert p.partitions[(TABLE, 5)].series.fine == {}
    assert r.snapshot().heals == ((150.0, (3,)), (250.0, (3,)))


def test_a_whole_table_heal_keeps_10ms_detail_everywhere():
    r = Recorder()
    r.heal_at(150.0)
    r.fault_instant(FaultInstant("f1", "kill", "n1", "heal", 250.0))
    record_in_end_order(r, writes(100, 300, partition=5))
    fine = r.snapshot().policies["failover"].partitions[(TABLE, 5)].series.fine
    assert set(fine) == set(range(120, 180)) | set(range(220, 280))


def test_a_fault_instant_keeps_10ms_detail_only_on_its_partitions():
    r = Recorder()
    r.fault_instant(FaultInstant("f1", "kill", "n1", "inject", 150.0, (3,)))
    record_in_end_order(r, writes(100, 200) + writes(100, 200, partition=5))
    p = r.snapshot().policies["failover"]
    assert set(p.partitions[(TABLE, 3)].series.fine) == set(range(120, 180))
    assert p.partitions[(TABLE, 5)].series.fine == {}
    assert p.partitions[(TABLE, 3)].first_ok_end_after(150.0) == pytest.approx(
        150.0 + 0.0025 + 0.003)
    with pytest.raises(LookupError):
        p.partitions[(TABLE, 5)].first_ok_end_after(150.0)


# --------------------------------------------------------------------------- phases


def test_a_fault_announced_twice_is_one_fault_healed_once():
    """A relay and a controller may both announce an instant: its heal ends the fault."""
    r = Recorder()
    r.fault_at(20.0, (3,))
    r.fault_at(20.0, (3,))
    r.heal_at(25.0, (3,))
    _ops_at(r, 21.0, 26.0, 200.0)
    assert _phases(r) == {"fault": 1, "recovery": 1, "steady": 1}
    assert r.snapshot().faults == ((20.0, (3,)),)


def test_id_less_faults_heal_in_turn_and_the_next_one_is_a_fault_again():
    r = Recorder()
    r.fault_at(20.0)
    r.heal_at(25.0)
    r.fault_at(100.0)
    r.heal_at(105.0)
    _ops_at(r, 21.0, 26.0, 60.0, 101.0, 106.0, 200.0)
    assert _phases(r) == {"fault": 2, "recovery": 2, "steady": 2}


def test_an_id_less_heal_does_not_close_a_fault_with_an_id():
    r = Recorder()
    r.fault_instant(FaultInstant("f1", "kill", "n1", "inject", 20.0, (3,)))
    r.fault_at(21.0, (4,))
    r.heal_at(22.0, (4,))                          # the id-less fault of 21.0
    _ops_at(r, 23.0, 60.0)                        # f1 is still on: both in the fault phase
    assert _phases(r) == {"fault": 2}
    r.fault_instant(FaultInstant("f1", "kill", "n1", "heal", 70.0, (3,)))
    _ops_at(r, 71.0, 200.0)
    assert _phases(r) == {"fault": 2, "recovery": 1, "steady": 1}


def test_fault_instants_pair_by_event_id_whatever_their_order():
    r = Recorder()
    for eid, edge, t in [("f2", "inject", 100.0), ("f1", "inject", 20.0),
                         ("f1", "heal", 25.0), ("f2", "heal", 105.0)]:
        r.fault_instant(FaultInstant(eid, "kill", "n1", edge, t, (3,)))
    _ops_at(r, 21.0, 26.0, 60.0, 101.0, 106.0, 200.0)
    assert _phases(r) == {"fault": 2, "recovery": 2, "steady": 2}
    assert r.snapshot().faults == ((100.0, (3,)), (20.0, (3,)))


def test_the_recovery_phase_lasts_the_recorders_recovery_s():
    r = Recorder(recovery_s=3.0)
    r.fault_at(20.0)
    r.heal_at(25.0)
    _ops_at(r, 26.0, 29.0)                        # 29.0 is past 25 + 3: steady
    assert _phases(r) == {"recovery": 1, "steady": 1}


# --------------------------------------------------------------------------- memory


def test_memory_holds_seconds_and_the_last_recent_s_of_ops_not_every_op():
    """10 minutes of writes: per second a total (policy, partition) and a response-time
    histogram, the open seconds, and the ok ends and phase entries of the last seconds only
    (the hour-long version is deselected from mutation runs for its 30 s)."""
    r = Recorder()
    record_in_end_order(r, writes(0, 600))
    seconds, rate = 600, 20
    assert r.stored_entries() <= (3 * seconds + 2 * (RECENT_S + 2)
                                  + (RECENT_S + PHASE_SETTLE_S + 4) * rate)
