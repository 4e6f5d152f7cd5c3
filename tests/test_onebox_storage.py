"""Onebox durable log: replay, torn last record, conflicting tails, checkpoints."""

from __future__ import annotations

import pytest

from loadgen.onebox.kv_store import PUT, KVStore, encode_mutation
from loadgen.onebox.storage import PartitionLog, commit_record, entry_record
from loadgen.pegasus.keys import make_key

pytestmark = pytest.mark.unit


def _put(key: bytes, value: bytes) -> bytes:
    return encode_mutation([(PUT, 0, make_key(key, b""), value)])


def test_replay_drops_a_torn_last_record(tmp_path):
    plog = PartitionLog(tmp_path)
    plog.replay()
    plog.write(entry_record(1, 1, _put(b"a", b"1")) + entry_record(1, 2, _put(b"b", b"2"))
               + commit_record(2))
    torn = entry_record(1, 3, _put(b"c", b"3"))
    plog.write(torn[:len(torn) - 3])  # kill -9 in the middle of a write
    plog.close()
    again = PartitionLog(tmp_path)
    state = again.replay()
    assert [e[1] for e in state.entries] == [1, 2] and state.committed == 2
    # the torn bytes are gone: new records append cleanly after the good ones
    again.write(entry_record(1, 3, _put(b"c", b"4")))
    again.close()
    assert [e[1] for e in PartitionLog(tmp_path).replay().entries] == [1, 2, 3]


def test_newer_ballot_replaces_a_conflicting_tail(tmp_path):
    plog = PartitionLog(tmp_path)
    plog.replay()
    plog.write(b"".join(entry_record(1, d, _put(b"k", b"old%d" % d)) for d in (1, 2, 3))
               + commit_record(1))
    plog.write(entry_record(3, 2, _put(b"k", b"new2")))
    plog.close()
    state = PartitionLog(tmp_path).replay()
    assert [(e[0], e[1]) for e in state.entries] == [(1, 1), (3, 2)]
    assert state.committed == 1


def test_checkpoint_truncates_and_replays(tmp_path):
    plog = PartitionLog(tmp_path)
    plog.replay()
    store = KVStore()
    entries = []
    for d in range(1, 6):
        m = _put(b"k%d" % d, b"v%d" % d)
        raw = entry_record(1, d, m)
        plog.write(raw)
        entries.append((1, d, m, raw))
    for e in entries[:4]:
        store.apply(e[2])
    plog.checkpoint(4, store.snapshot(), entries[4:])
    plog.close()
    assert len(list(tmp_path.glob("log.*"))) == 1
    state = PartitionLog(tmp_path).replay()
    assert state.checkpoint_decree == 4 and state.committed == 4
    assert [e[1] for e in state.entries] == [5]
    assert len(KVStore.from_snapshot(state.snapshot).rows) == 4
