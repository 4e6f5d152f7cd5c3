"""Recorder state: every field survives the JSON round trip and the merge of workers' states.

Written from the mutants of ``loadgen/metrics/state.py`` that tests/test_metrics_state.py
let survive (issue 19): the master merges the states its workers ship (encoded as JSON) and
reports the merge, so a field the round trip or the merge loses, miscounts or crashes on is a
wrong number in results.json (or a failed run). Two workers here record different things
(tables, partitions, ops, error kinds, seconds); one recorder seeing all of it is the answer.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
from support.metrics import attempt, meta, op, record_in_end_order, writes

from loadgen.metrics import (FaultInstant, PolicyState, Recorder, RecorderState, Series,
                             decode_state, encode_state, merge_states)
from loadgen.pegasus.outcome import Outcome

pytestmark = pytest.mark.unit

#: (event id, inject, heal, partitions): the same instants reach every worker
EVENTS = [("f1", 100.0, 103.0, (3,)), ("f2", 104.0, 108.0, None)]


def _instants(late: bool = False) -> list[FaultInstant]:
    out = [FaultInstant(eid, "kill", "n1", edge, t, parts)
           for eid, t_inject, t_heal, parts in EVENTS
           for edge, t in (("inject", t_inject), ("heal", t_heal))]
    out.sort(key=lambda i: i.t, reverse=late)       # late: heard of in reverse order
    return out


def _probe(t: float, policy: str = "failover") -> Outcome:
    return Outcome(level="probe", op="get", table="temp", partition=3, node="n2", start=t,
                   end=t + 0.001, outcome="ok", error=None, attempt=1, refreshed=False,
                   policy=policy)


def _worker_a() -> list:
    """Partition 3 of table temp: timeouts in second 100, a 0 µs op (clamped), a failed
    attempt, meta queries (one failed) and replica probe reads."""
    history = writes(95, 112, ok=lambda t: not 100 <= t < 101)
    history += [op(101.0 + k / 10, name="get") for k in range(10)]
    history += [op(102.0, end=102.0), attempt(102.5, ok=False), attempt(102.6)]
    history += [meta(100.5), meta(100.6, ok=False), _probe(101.5), _probe(106.5)]
    return history


def _worker_b() -> list:
    """Partition 5 of table ns:temp, an error kind and a second with errors only here, an op
    only here, partition 3 writes that all fail after the fault (no first success seen), and
    another policy."""
    history = [replace(o, table="ns:temp") for o in writes(95, 112, partition=5)]
    history += writes(99, 102, ok=lambda t: t < 100)
    history += [op(105.5, outcome="fail", error="ERR_INVALID_STATE", partition=5),
                op(106.0, name="multi_get", partition=5), op(106.1, end=106.1, partition=5)]
    history += [attempt(106.2, ok=False, error="ERR_BUSY"), meta(107.0, ok=False),
                _probe(107.5)]
    history += writes(95, 100, policy="legacy")
    return history


def _record(history, *, late: bool = False, drops=()) -> Recorder:
    r = Recorder()
    for instant in _instants(late):
        r.fault_instant(instant)
    record_in_end_order(r, history)
    for policy, partition, t in drops:
        r.drop(policy, partition, t)
    return r


DROPS_A = [("failover", 3, 101.2), ("failover", 3, 101.3), ("failover", -1, 96.0)]
DROPS_B = [("failover", 5, 105.1), ("failover", 3, 101.9)]


def _counts(hist) -> list[int]:
    return [hist.counts[i] for i in range(hist.counts_len)]


def _assert_same(got: PolicyState, want: PolicyState) -> None:
    for f in fields(PolicyState):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if f.name in ("histograms", "phase_histograms"):
            assert {k: _counts(h) for k, h in a.items()} == {k: _counts(h) for k, h in b.items()}
        else:
            assert a == b, f.name


def _json_round_trip(state):
    return decode_state(json.loads(json.dumps(encode_state(state), allow_nan=False)))


@pytest.fixture
def whole():
    return _record(_worker_a() + _worker_b(), drops=DROPS_A + DROPS_B).snapshot()


def test_the_state_is_rich_enough_to_check_every_field(whole):
    p = whole.policies["failover"]
    for f in fields(PolicyState):
        assert getattr(p, f.name), f.name           # every field non-empty, non-zero
    assert {phase for _, _, phase in p.phase_histograms} == {"fault", "recovery", "steady"}
    assert ("ns:temp", 5) in p.partitions and p.clamped and p.replica_queries == 3


def test_every_field_survives_the_json_round_trip(whole):
    again = _json_round_trip(whole)
    assert again.faults == whole.faults == ((100.0, (3,)), (104.0, None))
    assert again.heals == whole.heals == ((103.0, (3,)), (108.0, None))
    assert set(again.policies) == {"failover", "legacy"}
    for name, p in whole.policies.items():
        _assert_same(again.policies[name], p)


def test_documents_from_before_later_fields_decode_with_none_of_them(whole):
    """Per-phase histograms, replica probe reads and dropped arrivals came later: an older
    document has no such keys, and means zero."""
    doc = json.loads(json.dumps(encode_state(whole)))
    for p in doc["policies"].values():
        for key in ("phase_histograms", "replica_queries", "dropped", "dropped_by_second"):
            del p[key]
    p = decode_state(doc).policies["failover"]
    assert (p.phase_histograms, p.replica_queries, p.dropped, p.dropped_by_second) == (
        {}, 0, {}, {})
    assert p.ops == whole.policies["failover"].ops


def test_merged_workers_equal_one_recorder_that_saw_everything(whole):
    a = _record(_worker_a(), late=True, drops=DROPS_A).snapshot()
    b = _record(_worker_b(), drops=DROPS_B).snapshot()
    for parts in ([a, b], [b, a]):
        merged = merge_states(_json_round_trip(s) for s in parts)
        assert merged.faults == whole.faults and merged.heals == whole.heals
        assert set(merged.policies) == {"failover", "legacy"}
        for name, p in whole.policies.items():
            _assert_same(merged.policies[name], p)
    # the worker that saw only failures after the fault does not hide the other's success
    first_ok = merged.policies["failover"].partitions[("temp", 3)].first_ok
    assert first_ok[100.0] == pytest.approx(101.0 + 0.0025 + 0.003)


def test_an_instant_announced_with_and_without_partitions_merges():
    """A relay that does not know the partitions and a controller that does may announce the
    same instant; the merge keeps both, as each recorder did."""
    told, relayed = Recorder(), Recorder()
    told.fault_at(100.0, (3,))
    told.heal_at(103.0, (3,))
    relayed.fault_at(100.0)
    relayed.heal_at(103.0)
    merged = merge_states([told.snapshot(), relayed.snapshot()])
    assert set(merged.faults) == {(100.0, (3,)), (100.0, None)}
    assert set(merged.heals) == {(103.0, (3,)), (103.0, None)}


def test_decode_refusal_names_what_it_found():
    with pytest.raises(ValueError) as info:
        decode_state({"format": "pegbench-recorder-state", "version": 2})
    assert str(info.value) == ("not a pegbench-recorder-state v1 document: "
                               "format='pegbench-recorder-state' version=2")


def test_series_of_different_widths_are_not_merged():
    states = [RecorderState(policies={"failover": PolicyState(series=Series(width=w))})
              for w in (5, 3)]
    with pytest.raises(ValueError, match="cannot merge series of 5 and 3 slots"):
        merge_states(states)
