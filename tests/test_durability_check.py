"""The durability check's verdict: which acknowledged writes read back, which were lost.

"Acknowledged writes are never lost" is what a run checks; these tests state what the
read-back (:func:`verify`) counts for each situation a slot can be in, per row and in total,
and what reaches results.json. The cluster is a dict behind a stand-in client (no sockets):
``hash key -> {sort key: value}``, and a key may refuse a number of reads first.
"""

from __future__ import annotations

import logging

import gevent
import pytest

from loadgen.errors import PegasusError
from loadgen.load import durability
from loadgen.load.durability import (MAX_MAYBE, MULTI_SLOT, MULTI_SORT_KEYS, PUT_SLOT, PUT_SORT_KEY,
                                     Durability, DurabilityBook, ValueMaker, pack_token, token_counter,
                                     token_size, verify)

pytestmark = pytest.mark.unit


class Cluster:
    """What the read-back's client finds: rows, reads refused first, a table that won't open."""

    def __init__(self):
        self.rows: dict[bytes, dict[bytes, bytes]] = {}
        self.refuse: dict[bytes, int] = {}      # hash key -> reads refused before answering
        self.slow: dict[bytes, float] = {}      # hash key -> seconds a read takes
        self.no_table = False
        self.clients: list[dict] = []

    def put(self, hash_key: bytes, sort_key: bytes, value: bytes) -> None:
        self.rows.setdefault(hash_key, {})[sort_key] = value

    def _read(self, hash_key: bytes) -> dict[bytes, bytes]:
        gevent.sleep(self.slow.get(hash_key, 0))
        if self.refuse.get(hash_key, 0) > 0:
            self.refuse[hash_key] -= 1
            raise PegasusError("ERR_INVALID_STATE", "lease lapsed")
        return self.rows.get(hash_key, {})

    def client(self, meta, policy="failover", op_timeout_ms=None):
        cluster = self
        cluster.clients.append({"meta": meta, "policy": policy, "op_timeout_ms": op_timeout_ms})

        class Table:
            def get(self, hash_key, sort_key):
                return cluster._read(hash_key).get(sort_key)

            def multi_get(self, hash_key, sort_keys):
                row = cluster._read(hash_key)
                return {s: row[s] for s in sort_keys if s in row}

        class Client:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def open_table(self, name):
                if cluster.no_table:
                    raise PegasusError("ERR_OBJECT_NOT_FOUND", f"no table {name}")
                return Table()

        return Client()


@pytest.fixture
def cluster(monkeypatch):
    c = Cluster()
    monkeypatch.setattr("loadgen.pegasus.client.Client", c.client)
    return c


VALUES = ValueMaker(256, seed=1)


def book(max_slots: int = 1000) -> DurabilityBook:
    return DurabilityBook(VALUES, max_slots=max_slots)


def put_slot(idx: int) -> int:
    return idx * 2 + PUT_SLOT


def multi_slot(idx: int) -> int:
    return idx * 2 + MULTI_SLOT


def write_put(cluster: Cluster, ledger, idx: int, token: int, *, ack: bool = True) -> None:
    """The workload's put of ``token`` to key ``idx``: stored, and acknowledged if ``ack``."""
    cluster.put(ledger.prefix + b"%d" % idx, PUT_SORT_KEY, VALUES.value(token))
    if ack:
        ledger.ok(put_slot(idx), token)


def write_multi(cluster: Cluster, ledger, idx: int, token: int) -> None:
    for s in MULTI_SORT_KEYS:
        cluster.put(ledger.prefix + b"%d" % idx, s, VALUES.value(token))
    ledger.ok(multi_slot(idx), token)


def counts(d: Durability) -> tuple[int, int, int, int]:
    return d.acked, d.verified, d.lost, d.unreadable


# ----------------------------------------------------------------------- tokens and values


def test_a_token_carries_the_op_counter_and_the_value_size():
    for counter, size in [(0, 0), (1, 1), (123, 300), (2**40, 2**24 - 1)]:
        token = pack_token(counter, size)
        assert (token_counter(token), token_size(token)) == (counter, size)
    assert pack_token(1, 5) != pack_token(5, 1)


def test_every_value_has_the_size_its_token_says_and_is_recognised():
    values = ValueMaker(1024, seed="run1")
    for counter in range(500):
        token = pack_token(counter, 1024)
        value = values.value(token)
        assert len(value) == 1024
        assert values.token_of(value) == token
    assert values.value(pack_token(9, 8)) == pack_token(9, 8).to_bytes(8, "big")
    assert values.token_of(b"") is None and values.token_of(b"not one of ours at all") is None


def test_values_depend_on_the_seed():
    token = pack_token(7, 100)
    assert ValueMaker(100, seed=1).value(token) != ValueMaker(100, seed=2).value(token)


def test_value_sizes_beyond_what_a_token_holds_are_refused():
    assert ValueMaker(0).value(pack_token(3, 0)) == b""
    with pytest.raises(ValueError, match=r"value sizes must be within 0\.\.16777215, got 16777216"):
        ValueMaker(2**24)
    with pytest.raises(ValueError, match="got -1"):
        ValueMaker(-1)


def test_the_largest_value_size_a_token_holds_is_accepted():
    ValueMaker(2**24 - 1)                       # value_bytes up to 16 MiB - 1: no error


# ----------------------------------------------------------------------- the ledger's budget


def test_a_full_book_counts_new_slots_untracked_but_keeps_following_its_slots():
    b = book(max_slots=2)
    ledger = b.ledger(b"u0/")
    ledger.ok(0, pack_token(1, 10))
    ledger.ok(2, pack_token(2, 10))
    ledger.ok(4, pack_token(3, 10))          # over budget
    ledger.ok(6, pack_token(4, 10))          # over budget
    ledger.ok(0, pack_token(5, 10))          # a tracked slot's newer ack still counts
    assert (b.acked(), b.untracked) == (2, 2)
    assert ledger.candidates(0) == (pack_token(5, 10), [])


def test_clearing_the_book_starts_a_new_test_with_an_empty_budget():
    b = book(max_slots=1)
    b.ledger(b"u0/").ok(0, 1)
    b.ledger(b"u1/").ok(0, 2)
    b.clear()
    assert (b.acked(), b.untracked, b.ledgers) == (0, 0, [])
    ledger = b.ledger(b"u2/")
    ledger.ok(0, 3)
    assert (b.acked(), b.untracked) == (1, 0)


# ----------------------------------------------------------------------- the read-back's verdict


def test_writes_that_read_back_as_acknowledged_are_verified(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_put(cluster, ledger, 0, pack_token(1, 40))
    write_put(cluster, ledger, 7, pack_token(2, 40))
    write_multi(cluster, ledger, 3, pack_token(3, 40))
    result = verify(b, ["meta1:34601", "meta2:34601"], "bench")
    assert counts(result) == (3, 3, 0, 0)
    assert result.by_row == {"failover": {"acked": 3, "verified": 3, "lost": 0, "unreadable": 0}}
    # through a fresh failover client on the run's meta servers
    assert cluster.clients == [{"meta": ["meta1:34601", "meta2:34601"], "policy": "failover",
                                "op_timeout_ms": durability.VERIFY_OP_TIMEOUT_MS}]


def test_a_missing_or_overwritten_put_is_lost(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_put(cluster, ledger, 0, pack_token(1, 40))
    ledger.ok(put_slot(1), pack_token(2, 40))                    # acked, but not there
    write_put(cluster, ledger, 2, pack_token(3, 40))
    cluster.put(b"u0/2", PUT_SORT_KEY, VALUES.value(pack_token(99, 40)))   # someone else's value
    write_put(cluster, ledger, 3, pack_token(4, 40))
    cluster.put(b"u0/3", PUT_SORT_KEY, VALUES.value(pack_token(4, 40))[:-1] + b"!")  # corrupted
    result = verify(b, ["m:1"], "bench")
    assert counts(result) == (4, 1, 3, 0)
    assert result.by_row["failover"] == {"acked": 4, "verified": 1, "lost": 3, "unreadable": 0}


def test_an_older_write_landing_after_the_acknowledged_one_is_a_lost_update(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    old, new = pack_token(1, 40), pack_token(2, 40)         # same size: only the bytes differ
    ledger.unknown(put_slot(0), old)
    write_put(cluster, ledger, 0, new)
    cluster.put(b"u0/0", PUT_SORT_KEY, VALUES.value(old))
    assert counts(verify(b, ["m:1"], "bench")) == (1, 0, 1, 0)


def test_a_multi_put_is_verified_only_when_every_sort_key_reads_back(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_multi(cluster, ledger, 0, pack_token(1, 30))
    write_multi(cluster, ledger, 1, pack_token(2, 30))
    del cluster.rows[b"u0/1"][MULTI_SORT_KEYS[2]]                 # a torn multi_put
    write_multi(cluster, ledger, 2, pack_token(3, 30))
    cluster.put(b"u0/2", MULTI_SORT_KEYS[0], VALUES.value(pack_token(1, 30)))
    # a put to the same key index is another slot: it does not stand for the multi_put
    write_put(cluster, ledger, 4, pack_token(4, 30))
    ledger.ok(multi_slot(4), pack_token(5, 30))
    assert counts(verify(b, ["m:1"], "bench")) == (5, 2, 3, 0)


def test_writes_that_ended_unknown_after_the_ack_may_be_what_is_read(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    for idx in range(4):
        write_put(cluster, ledger, idx, pack_token(10 + idx, 50))
    # key 0: two unknown writes since the ack, the second one applied
    ledger.unknown(put_slot(0), pack_token(20, 50))
    ledger.unknown(put_slot(0), pack_token(21, 60))
    write_put(cluster, ledger, 0, pack_token(21, 60), ack=False)
    # key 1: the write in flight when the user stopped applied
    ledger.inflight[put_slot(1)] = pack_token(22, 50)
    write_put(cluster, ledger, 1, pack_token(22, 50), ack=False)
    # key 2: an unknown write that never applied: the ack still reads back
    ledger.unknown(put_slot(2), pack_token(23, 50))
    # key 3: a value of ours written to another key is lost even with unknown writes about
    ledger.unknown(put_slot(3), pack_token(24, 50))
    ledger.unknown(put_slot(3), pack_token(25, 50))
    write_put(cluster, ledger, 3, pack_token(26, 50), ack=False)
    assert counts(verify(b, ["m:1"], "bench")) == (4, 3, 1, 0)


def test_an_ack_forgets_the_unknown_writes_before_it(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    ledger.unknown(put_slot(0), pack_token(1, 50))
    write_put(cluster, ledger, 0, pack_token(2, 50))
    cluster.put(b"u0/0", PUT_SORT_KEY, VALUES.value(pack_token(1, 50)))
    assert counts(verify(b, ["m:1"], "bench")) == (1, 0, 1, 0)


def test_past_the_unknown_writes_a_slot_lists_any_newer_value_of_ours_verifies(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    for idx, size in enumerate((50, 8)):
        slot = put_slot(idx)
        write_put(cluster, ledger, idx, pack_token(100, size))
        for counter in range(101, 101 + MAX_MAYBE + 1):           # one more than it lists
            ledger.unknown(slot, pack_token(counter, size))
        # a newer write than any listed one (its unknown outcome was not kept) applied
        write_put(cluster, ledger, idx, pack_token(500, size), ack=False)
    assert counts(verify(b, ["m:1"], "bench")) == (2, 2, 0, 0)
    # but not an older value, nor bytes that are not one of our values
    write_put(cluster, ledger, 0, pack_token(99, 50), ack=False)
    cluster.put(b"u0/1", PUT_SORT_KEY, b"12345678")
    assert counts(verify(b, ["m:1"], "bench")) == (2, 0, 2, 0)


def test_a_refused_read_is_retried_and_one_refused_every_time_is_unreadable(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    for idx in range(3):
        write_put(cluster, ledger, idx, pack_token(idx, 40))
    cluster.refuse[b"u0/0"] = durability.VERIFY_TRIES - 1          # answers on the last try
    cluster.refuse[b"u0/1"] = durability.VERIFY_TRIES              # never answers
    result = verify(b, ["m:1"], "bench")
    assert counts(result) == (3, 2, 0, 1)
    assert result.by_row["failover"] == {"acked": 3, "verified": 2, "lost": 0, "unreadable": 1}
    assert result.results_block()["lost"] == 1                     # not shown to survive


def test_counts_are_kept_per_row_and_unnamed_writers_only_in_the_total(cluster):
    b = book(max_slots=6)
    users = [b.ledger(b"a/", "failover"), b.ledger(b"b/", "failover"),   # two users of one row
             b.ledger(b"c/", "java"), b.ledger(b"d/")]                    # and one of no row
    for idx in range(2):
        write_put(cluster, users[0], idx, pack_token(idx, 40))
        write_put(cluster, users[3], idx, pack_token(idx, 40))
    write_put(cluster, users[1], 0, pack_token(5, 40))
    users[2].ok(put_slot(0), pack_token(7, 40))                   # lost
    users[2].ok(put_slot(1), pack_token(8, 40))                   # over budget: untracked
    users[2].ok(put_slot(2), pack_token(9, 40))                   # over budget: untracked
    result = verify(b, ["m:1"], "bench")
    assert counts(result) == (6, 5, 1, 0) and result.untracked == 2
    assert result.by_row == {"failover": {"acked": 3, "verified": 3, "lost": 0, "unreadable": 0},
                             "java": {"acked": 1, "verified": 0, "lost": 1, "unreadable": 0}}


def test_a_table_that_cannot_be_opened_leaves_every_write_unreadable_and_says_why(cluster, caplog):
    b = book(max_slots=3)
    a, z = b.ledger(b"a/", "failover"), b.ledger(b"z/", "")
    write_put(cluster, a, 0, pack_token(1, 40))
    write_put(cluster, a, 1, pack_token(2, 40))
    write_put(cluster, z, 0, pack_token(3, 40))
    a.ok(put_slot(2), pack_token(4, 40))                            # untracked
    cluster.no_table = True
    with caplog.at_level(logging.ERROR):
        result = verify(b, ["m:1"], "bench")
    assert counts(result) == (3, 0, 0, 3) and result.untracked == 1
    assert result.by_row == {"failover": {"acked": 2, "verified": 0, "lost": 0, "unreadable": 2}}
    assert [r.getMessage() for r in caplog.records] == [
        "durability read-back: cannot open table 'bench': ERR_OBJECT_NOT_FOUND: no table bench"]


def test_slots_not_read_before_the_deadline_are_unreadable(cluster):
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_put(cluster, ledger, 0, pack_token(1, 40))
    write_put(cluster, ledger, 1, pack_token(2, 40))
    result = verify(b, ["m:1"], "bench", timeout_s=0)
    assert counts(result) == (2, 0, 0, 2)
    assert result.by_row["failover"] == {"acked": 2, "verified": 0, "lost": 0, "unreadable": 2}


def test_a_read_that_never_returns_is_unreadable_once_the_read_back_times_out(cluster, monkeypatch):
    monkeypatch.setattr(durability, "VERIFY_OP_TIMEOUT_MS", 50)
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_put(cluster, ledger, 0, pack_token(1, 40))
    write_put(cluster, ledger, 1, pack_token(2, 40))
    write_multi(cluster, ledger, 2, pack_token(3, 40))
    cluster.slow[b"u0/1"] = 1.0                 # far past the read-back's 0.15 s bound
    result = verify(b, ["m:1"], "bench", timeout_s=0.1, concurrency=1)
    assert counts(result) == (3, 1, 0, 2)          # the slot after the hung one was not reached
    assert result.by_row["failover"] == {"acked": 3, "verified": 1, "lost": 0, "unreadable": 2}


def test_a_read_begun_before_the_deadline_may_finish_within_its_op_timeout(cluster, monkeypatch):
    monkeypatch.setattr(durability, "VERIFY_OP_TIMEOUT_MS", 400)
    b = book()
    ledger = b.ledger(b"u0/", "failover")
    write_put(cluster, ledger, 0, pack_token(1, 40))
    cluster.slow[b"u0/0"] = 0.2                    # past the 0.1 s deadline, within 0.4 s more
    assert counts(verify(b, ["m:1"], "bench", timeout_s=0.1)) == (1, 1, 0, 0)


# ----------------------------------------------------------------------- what reaches results.json


def test_workers_read_backs_add_up_per_row():
    a = Durability(acked=5, verified=4, lost=1, unreadable=0, untracked=2,
                   by_row={"failover": {"acked": 5, "verified": 4, "lost": 1, "unreadable": 0}})
    b = Durability(acked=3, verified=1, lost=0, unreadable=2, untracked=1,
                   by_row={"failover": {"acked": 2, "verified": 1, "lost": 0, "unreadable": 1},
                           "java": {"acked": 1, "verified": 0, "lost": 0, "unreadable": 1}})
    total = Durability.total([a, b])
    assert counts(total) == (8, 5, 1, 2) and total.untracked == 3
    assert total.by_row == {"failover": {"acked": 7, "verified": 5, "lost": 1, "unreadable": 1},
                            "java": {"acked": 1, "verified": 0, "lost": 0, "unreadable": 1}}
    assert Durability.total(iter([a, b])) == total
    assert Durability(**total.as_dict()) == total                  # as a worker sends it
    assert Durability.total([]) == Durability()


def test_the_results_block_lists_rows_by_name_and_counts_unreadable_as_lost():
    d = Durability(acked=6, verified=3, lost=1, unreadable=2,
                   by_row={"zk-client": {"acked": 4, "verified": 1, "lost": 1, "unreadable": 2},
                           "failover": {"acked": 2, "verified": 2}})
    block = d.results_block()
    assert block == {"acked": 6, "verified": 3, "lost": 3,
                     "by_policy": {"failover": {"acked": 2, "verified": 2, "lost": 0},
                                   "zk-client": {"acked": 4, "verified": 1, "lost": 3}}}
    assert list(block["by_policy"]) == ["failover", "zk-client"]
    assert Durability(by_row={"r": {}}).results_block()["by_policy"] == {
        "r": {"acked": 0, "verified": 0, "lost": 0}}
