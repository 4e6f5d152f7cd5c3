"""Response and service time per global phase: the phase of each op's intended start, settled
late enough that a fault instant arriving after its ops still classifies them."""

from __future__ import annotations

import json

import pytest
from support.metrics import TABLE, op

from loadgen.metrics import Recorder, build_results, decode_state, encode_state, hdr, merge_states
from loadgen.metrics.events import HEAL, INJECT, RECOVERY_S, FaultEvent, FaultInstant
from loadgen.metrics.recorder import MAINTAIN_EVERY_S, PHASE_SETTLE_S
from loadgen.metrics.results import PolicyResult, Results

pytestmark = pytest.mark.unit

T_INJECT, T_HEAL = 20.0, 30.0
RATE = 10                       # ops/s
# service times (µs) that hdrh stores exactly, one per stretch, so values tell stretches apart
BEFORE_US, FAULT_US, RECOVERY_US, AFTER_US = 2000, 49152, 8000, 3000
FAULT_DELAY_S = 0.25            # during the fault ops start late: response = delay + service


def _instant(edge: str, t: float, event_id: str = "f1") -> FaultInstant:
    return FaultInstant(event_id, "kill", "replica1", edge, t, (3,))


def _ops(t_from: float, t_to: float, service_us: int, *, delay_s: float = 0.0, name: str = "put",
         policy: str = "failover"):
    """Ops intended every 1/RATE s in [t_from, t_to), started ``delay_s`` late."""
    out = []
    for k in range(round((t_to - t_from) * RATE)):
        t = t_from + k / RATE + 0.0025
        start = t + delay_s
        out.append(op(t, start=start, end=start + service_us / 1e6, name=name, policy=policy))
    return out


def _history():
    """Ops before the fault, during it, in the recovery phase and after it."""
    return (_ops(10.0, T_INJECT, BEFORE_US)
            + _ops(T_INJECT, T_HEAL, FAULT_US, delay_s=FAULT_DELAY_S)
            + _ops(T_HEAL, T_HEAL + RECOVERY_S, RECOVERY_US)
            + _ops(T_HEAL + RECOVERY_S, 50.0, AFTER_US))


def _feed(recorder: Recorder, outcomes, instants=(), *, late_s: float = 0.0) -> None:
    """Record in end order; each instant is announced once the recorded time passes its
    ``t + late_s`` (a relayed instant arrives late)."""
    pending = sorted(instants, key=lambda i: i.t)
    for o in sorted(outcomes, key=lambda o: o.end):
        while pending and pending[0].t + late_s <= o.end:
            recorder.fault_instant(pending.pop(0))
        recorder.record(o)
    for instant in pending:
        recorder.fault_instant(instant)


def _values(hist) -> dict[int, int]:
    """{value: count} of a histogram, values as hdrh reports them (lowest equivalent)."""
    return {hist.get_value_from_index(i): hist.counts[i] for i in range(hist.counts_len)
            if hist.counts[i]}


def _counts(hists) -> dict[tuple, list[int]]:
    return {key: list(h.counts) for key, h in hists.items()}


def _phase_totals(state, policy: str = "failover") -> dict[tuple[str, str, str], int]:
    return {key: h.get_total_count()
            for key, h in state.policies[policy].phase_histograms.items()}


INSTANTS = (_instant(INJECT, T_INJECT), _instant(HEAL, T_HEAL))


def test_ops_land_in_the_phase_of_their_intended_start_with_their_latencies():
    r = Recorder()
    _feed(r, _history(), INSTANTS)
    p = r.snapshot().policies["failover"]
    h = p.phase_histograms
    assert _values(h[("put", "service", "steady")]) == {BEFORE_US: 100, AFTER_US: 100}
    assert _values(h[("put", "service", "fault")]) == {FAULT_US: 100}
    assert _values(h[("put", "service", "recovery")]) == {RECOVERY_US: 100}
    assert _values(h[("put", "response", "steady")]) == {BEFORE_US: 100, AFTER_US: 100}
    response = _values(h[("put", "response", "fault")])
    assert list(response.values()) == [100]       # one value, the delay included
    assert hdr.counts_index(next(iter(response))) == hdr.counts_index(
        int(FAULT_DELAY_S * 1e6) + FAULT_US)
    assert set(h) == {("put", kind, phase) for kind in ("service", "response")
                      for phase in ("steady", "fault", "recovery")}
    # the phases split the whole-run histogram, nothing lost or counted twice
    for kind in ("service", "response"):
        assert sum(h[("put", kind, ph)].get_total_count() for ph in ("steady", "fault", "recovery")) \
            == p.histograms[("put", kind)].get_total_count() == 400


def test_phase_boundaries_follow_design_fault_over_recovery_over_steady():
    r = Recorder()
    for i in (*INSTANTS, _instant(INJECT, 35.0, "f2"), _instant(HEAL, 36.0, "f2")):
        r.fault_instant(i)
    ends = {}
    for t, us in ((T_INJECT - 1e-6, 1000), (T_INJECT, 1001), (T_HEAL - 1e-6, 1002),
                  (T_HEAL, 1003), (35.5, 1004), (36.0, 1005), (T_HEAL + RECOVERY_S, 1006),
                  (36.0 + RECOVERY_S, 1007)):
        ends[us] = t
        r.record(op(t, end=t + us / 1e6))
    h = r.snapshot().policies["failover"].phase_histograms
    assert _values(h[("put", "service", "steady")]) == {1000: 1, 1007: 1}
    # a second fault inside the first one's recovery phase is fault, then recovery again
    assert _values(h[("put", "service", "fault")]) == {1001: 1, 1002: 1, 1004: 1}
    assert _values(h[("put", "service", "recovery")]) == {1003: 1, 1005: 1, 1006: 1}


def test_a_fault_instant_arriving_after_its_ops_still_classifies_them():
    late = 3.5                  # a relay's worst case, within the settle delay
    assert late < PHASE_SETTLE_S - MAINTAIN_EVERY_S
    r = Recorder()
    _feed(r, _history(), INSTANTS, late_s=late)
    totals = _phase_totals(r.snapshot())
    assert totals[("put", "service", "fault")] == 100
    assert totals[("put", "service", "recovery")] == 100
    assert totals[("put", "service", "steady")] == 200
    # the same stream with the instants on time gives the same histograms
    on_time = Recorder()
    _feed(on_time, _history(), INSTANTS)
    assert _counts(r.snapshot().policies["failover"].phase_histograms) == \
        _counts(on_time.snapshot().policies["failover"].phase_histograms)


def test_an_instant_later_than_the_settle_delay_leaves_folded_ops_where_they_were():
    r = Recorder()
    _feed(r, _ops(10.0, 40.0, BEFORE_US))
    r.fault_instant(_instant(INJECT, T_INJECT))    # 20 s late: [20, ~34) was folded steady
    r.record(op(40.0, end=40.002))                  # intended after it: fault
    totals = _phase_totals(r.snapshot())
    fault, steady = totals[("put", "service", "fault")], totals[("put", "service", "steady")]
    # still pending: the last PHASE_SETTLE_S s, up to two more (batches of about a second)
    assert PHASE_SETTLE_S * RATE + 1 <= fault <= (PHASE_SETTLE_S + 2) * RATE + 1
    assert fault + steady == 301


def test_a_mid_run_snapshot_does_not_freeze_the_classification():
    r = Recorder()
    first = [o for o in _history() if o.end < T_INJECT + 2.0]
    rest = [o for o in _history() if o.end >= T_INJECT + 2.0]
    _feed(r, first)
    early = _phase_totals(r.snapshot())
    assert early.get(("put", "service", "fault"), 0) == 0    # not told of the fault yet
    assert r.snapshot(histograms=False).policies["failover"].phase_histograms == {}
    for i in INSTANTS:
        r.fault_instant(i)                                    # arrives ~2 s late
    mid = _phase_totals(r.snapshot())
    in_fault = sum(1 for o in first if o.intended_start >= T_INJECT)
    assert in_fault > 10 and mid[("put", "service", "fault")] == in_fault
    _feed(r, rest)
    final = _phase_totals(r.snapshot())
    assert (final[("put", "service", "fault")], final[("put", "service", "steady")]) == (100, 200)


def test_reset_drops_phase_counts_and_pending_ops_but_keeps_the_fault_spans():
    r = Recorder()
    _feed(r, _ops(10.0, 25.0, BEFORE_US), INSTANTS[:1])
    r.record(op(25.0, end=25.001, name="get"))
    before = r.stored_entries()
    for _ in range(1000):       # more reads (no partition timeline) in the same 10 ms bucket
        r.record(op(25.0, end=25.001, name="get"))
    assert r.stored_entries() - before == 1000            # the pending entries are counted
    r.reset()
    assert r.snapshot().policies == {}
    _feed(r, _ops(26.0, 27.0, BEFORE_US))
    assert _phase_totals(r.snapshot()) == {("put", "service", "fault"): 10,
                                           ("put", "response", "fault"): 10}


def test_fault_at_and_heal_at_without_ids_pair_in_order():
    r = Recorder()
    r.fault_at(20.0, (3,))
    r.fault_at(22.0, (4,))
    r.heal_at(25.0, (3,))       # closes the fault of 20.0; the one of 22.0 is still open
    r.heal_at(50.0)
    for t in (21.0, 26.0, 51.0, 61.0):
        r.record(op(t, end=t + 0.001))
    totals = _phase_totals(r.snapshot())
    assert totals[("put", "service", "fault")] == 2              # 21 and 26 (second fault)
    assert totals[("put", "service", "recovery")] == 1           # 51
    assert totals[("put", "service", "steady")] == 1             # 61


def test_merged_states_equal_one_recorder_fed_the_union_and_survive_encoding():
    history = _history() + _ops(12.0, 48.0, 1500, name="get") + _ops(
        15.0, 45.0, 2500, policy="legacy")
    one, a, b = Recorder(), Recorder(), Recorder()
    _feed(one, history, INSTANTS)
    _feed(a, history[0::2], INSTANTS, late_s=1.0)
    _feed(b, history[1::2], INSTANTS, late_s=2.0)
    merged = merge_states([a.snapshot(), b.snapshot()])
    whole = one.snapshot()
    for name in ("failover", "legacy"):
        assert _counts(merged.policies[name].phase_histograms) == \
            _counts(whole.policies[name].phase_histograms)
    assert ("get", "response", "recovery") in whole.policies["failover"].phase_histograms
    decoded = decode_state(json.loads(json.dumps(encode_state(whole))))
    for name in ("failover", "legacy"):
        assert _counts(decoded.policies[name].phase_histograms) == \
            _counts(whole.policies[name].phase_histograms)
    old = encode_state(whole)
    for p in old["policies"].values():
        del p["phase_histograms"]                      # a document from before them
    assert all(p.phase_histograms == {} for p in decode_state(old).policies.values())


def _results() -> Results:
    r = Recorder()
    _feed(r, _history() + _ops(10.0, T_INJECT, 1500, name="get"), INSTANTS)
    event = FaultEvent("f1", "kill", "replica1", T_INJECT, T_HEAL, affected_partitions=(3,))
    return build_results(r.snapshot(), [event], t_start=10.0, t_end=50.0, table=TABLE)


def test_results_carry_latency_by_phase_and_read_back():
    results = _results()
    policy = results.policies["failover"]
    by_phase = policy.latency_by_phase_us
    assert set(by_phase["put"]["response"]) == {"fault", "recovery", "steady"}
    assert set(by_phase["get"]["service"]) == {"steady"}          # empty phases left out
    fault = by_phase["put"]["service"]["fault"]
    assert fault.count == 100            # p99, max: the highest value of FAULT_US's bucket
    assert hdr.counts_index(fault.p99) == hdr.counts_index(fault.max) == hdr.counts_index(FAULT_US)
    assert _values(hdr.decode(fault.hdr)) == {FAULT_US: 100}
    assert policy.phase_latency_ms() == policy.put_p99_during_faults_ms == \
        by_phase["put"]["response"]["fault"].p99 / 1000
    assert hdr.counts_index(round(policy.phase_latency_ms() * 1000)) == hdr.counts_index(
        int(FAULT_DELAY_S * 1e6) + FAULT_US)                      # delay + service, in ms
    steady_p50 = policy.phase_latency_ms(kind="service", phase="steady", percentile="p50")
    assert hdr.counts_index(round(steady_p50 * 1000)) == hdr.counts_index(BEFORE_US)
    document = json.loads(json.dumps(results.to_dict()))
    assert document["policies"]["failover"]["latency_by_phase_us"]["put"]["service"]["fault"][
        "count"] == 100
    assert Results.from_dict(document) == results


def test_an_older_results_document_without_latency_by_phase_loads():
    document = json.loads(json.dumps(_results().to_dict()))
    del document["policies"]["failover"]["latency_by_phase_us"]
    policy = Results.from_dict(document).policies["failover"]
    assert policy.latency_by_phase_us == {}
    assert policy.phase_latency_ms() is None and policy.put_p99_during_faults_ms is None
    assert "latency_by_phase_us" not in policy.to_dict()          # not invented on write-back
    assert PolicyResult().phase_latency_ms() is None
