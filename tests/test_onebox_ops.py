"""Onebox servers: every client op on every partition, routing errors and the meta's query."""

from __future__ import annotations

import pytest
from support.onebox import call, hash_keys_per_partition, make_box, put_args

from loadgen.onebox.kv_store import now_ts
from loadgen.pegasus import blocking, codec
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.onebox


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with make_box(tmp_path_factory.mktemp("ops") / "box") as ob:
        yield ob


def test_query_config_is_complete(box):
    cfg = box.config()
    assert cfg.is_stateful and cfg.partition_count == 8 and len(cfg.partitions) == 8
    for p in cfg.partitions:
        assert p.ballot >= 1 and not p.primary.is_invalid() and len(p.secondaries) == 2
    with pytest.raises(Exception) as exc:
        blocking.query_config(box.meta_addrs, "no_such_table")
    assert "ERR_OBJECT_NOT_FOUND" in str(exc.value)


def test_every_op_on_every_partition(box):
    cfg = box.config()
    for pidx, hk in hash_keys_per_partition().items():
        primary = str(cfg.partitions[pidx].primary)
        key = blob(make_key(hk, b"s"))

        def ok(rpc, args, primary=primary, pidx=pidx):
            reply = call(primary, rpc, args, pidx)
            assert reply.error == "ERR_OK", (rpc, pidx, reply.error)
            assert reply.result.server == primary
            return reply.result

        assert ok(codec.RPC_PUT, put_args(hk, b"s", b"v1")).error == 0
        got = ok(codec.RPC_GET, key)
        assert (got.error, got.value.data) == (0, b"v1")
        assert ok(codec.RPC_TTL, key).ttl_seconds == -1
        ok(codec.RPC_PUT, put_args(hk, b"t", b"v2", expire_ts=now_ts() + 100))
        assert 95 <= ok(codec.RPC_TTL, blob(make_key(hk, b"t"))).ttl_seconds <= 100
        ok(codec.RPC_PUT, put_args(hk, b"x", b"gone", expire_ts=now_ts() - 1))
        assert ok(codec.RPC_GET, blob(make_key(hk, b"x"))).error == 1
        kvs = [rrdb.key_value(key=blob(b"m%d" % i), value=blob(b"mv%d" % i)) for i in range(3)]
        ok(codec.RPC_MULTI_PUT, rrdb.multi_put_request(hash_key=blob(hk), kvs=kvs, expire_ts_seconds=0))
        assert ok(codec.RPC_SORTKEY_COUNT, blob(hk)).count == 5
        mg = ok(codec.RPC_MULTI_GET, rrdb.multi_get_request(
            hash_key=blob(hk), sort_keys=[], max_kv_count=100, max_kv_size=1000000, no_value=False))
        assert [(kv.key.data, kv.value.data) for kv in mg.kvs][:3] == [
            (b"m0", b"mv0"), (b"m1", b"mv1"), (b"m2", b"mv2")]
        limited = ok(codec.RPC_MULTI_GET, rrdb.multi_get_request(
            hash_key=blob(hk), sort_keys=[], max_kv_count=2, max_kv_size=0, no_value=True))
        assert limited.error == 7 and len(limited.kvs) == 2
        picked = ok(codec.RPC_MULTI_GET, rrdb.multi_get_request(
            hash_key=blob(hk), sort_keys=[blob(b"m1"), blob(b"nope")], max_kv_count=0,
            max_kv_size=0, no_value=False))
        assert [kv.key.data for kv in picked.kvs] == [b"m1"]
        mr = ok(codec.RPC_MULTI_REMOVE, rrdb.multi_remove_request(
            hash_key=blob(hk), sort_keys=[blob(b"m0"), blob(b"m1"), blob(b"nope")]))
        assert (mr.error, mr.count) == (0, 2)
        ok(codec.RPC_REMOVE, key)
        got = ok(codec.RPC_GET, key)
        assert (got.error, got.value.data) == (1, b"")
        assert ok(codec.RPC_TTL, key).error == 1
        assert ok(codec.RPC_SORTKEY_COUNT, blob(hk)).count == 2


def test_routing_errors(box):
    cfg = box.config()
    p0 = cfg.partitions[0]
    secondary = str(p0.secondaries[0])
    assert call(secondary, codec.RPC_PUT, put_args(b"a", b"b", b"c"), 0).error == "ERR_INVALID_STATE"
    assert call(secondary, codec.RPC_GET, blob(make_key(b"a", b"b")), 0).error == "ERR_INVALID_STATE"
    assert call(str(p0.primary), codec.RPC_GET, blob(b"\x00\x01a"), 99).error == "ERR_OBJECT_NOT_FOUND"
