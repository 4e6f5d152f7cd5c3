"""Recorder state: JSON round trip, and merges that equal the sum of their parts."""

from __future__ import annotations

import json

import pytest
from support.metrics import TABLE, meta, op, record_in_end_order, writes

from loadgen.metrics import Recorder, decode_state, encode_state, merge_states

pytestmark = pytest.mark.unit

FAULTS = [(100.0, (3,)), (104.0, (3, 5))]


def _history() -> list:
    history = writes(90, 100) + writes(100, 112, ok=lambda t: t >= 100.9 and not 104 <= t < 105)
    history += writes(90, 112, partition=5, ok=lambda t: not 104 <= t < 104.5)
    history += writes(95, 110, policy="legacy", ok=lambda t: t < 100)
    history += [op(101.0 + k / 10, name="get", partition=k % 8) for k in range(30)]
    history += [meta(100.0 + k / 4) for k in range(20)] + [meta(101.0, policy="legacy")]
    return history


def _counts(hist) -> list[int]:
    return [hist.counts[i] for i in range(hist.counts_len)]


def _json_round_trip(state):
    return decode_state(json.loads(json.dumps(encode_state(state), allow_nan=False)))


def test_encode_decode_round_trip():
    r = Recorder()
    record_in_end_order(r, _history(), faults=FAULTS)
    state = r.snapshot()
    again = _json_round_trip(state)
    assert encode_state(again) == encode_state(state)
    p, q = state.policies["failover"], again.policies["failover"]
    assert q.series == p.series and q.partitions == p.partitions
    for key, hist in p.histograms.items():
        assert _counts(q.histograms[key]) == _counts(hist)


def test_decode_refuses_other_documents():
    with pytest.raises(ValueError, match="pegbench-recorder-state"):
        decode_state({"format": "something-else", "version": 1})


def test_merged_counts_equal_the_sum_of_the_parts():
    history = sorted(_history(), key=lambda o: o.end)
    whole, left, right = Recorder(), Recorder(), Recorder()
    record_in_end_order(whole, history, faults=FAULTS)
    # two "workers", each told of every fault, each seeing every other op
    record_in_end_order(left, history[0::2], faults=FAULTS)
    record_in_end_order(right, history[1::2], faults=FAULTS)
    parts = [_json_round_trip(left.snapshot()), _json_round_trip(right.snapshot())]
    merged = merge_states(parts)
    expected = whole.snapshot()
    assert merged.faults == expected.faults
    for name, want in expected.policies.items():
        got = merged.policies[name]
        a, b = (s.policies[name] for s in parts)
        assert got.ops == a.ops + b.ops == want.ops
        assert got.attempts == want.attempts and got.meta_queries == want.meta_queries
        assert got.outcomes == want.outcomes and got.errors == want.errors
        assert got.series == want.series
        assert got.latency == want.latency and got.errors_by_second == want.errors_by_second
        assert set(got.histograms) == set(want.histograms)
        for key, hist in want.histograms.items():
            assert _counts(got.histograms[key]) == _counts(hist)
            assert got.histograms[key].get_total_count() == (
                a.histograms[key].get_total_count() + b.histograms[key].get_total_count())
        for key, timeline in want.partitions.items():
            assert got.partitions[key].series == timeline.series
            assert got.partitions[key].first_ok == timeline.first_ok, key
    # the exact first success after each fault survived the split
    fo = merged.policies["failover"].partitions[(TABLE, 3)]
    assert fo.first_ok_end_after(100.0) == pytest.approx(100.9 + 0.0025 + 0.003)
    assert merged.policies["legacy"].partitions[(TABLE, 3)].first_ok_end_after(100.0) is None


def test_merge_keeps_only_totals_where_one_side_lacks_detail():
    told, untold = Recorder(), Recorder()
    told.fault_at(100.0)
    for o in writes(99, 101):
        told.record(o)
    for o in writes(99, 101):
        untold.record(o)
    merged = merge_states([told.snapshot(), untold.snapshot()])
    series = merged.policies["failover"].series
    assert series.coarse[100][0] == 40 and 100 not in series.fine
