"""Onebox primary in-process with a fake peer pool: a write never commits below min_replicas,
and a primary never prepares what it has not logged itself."""

from __future__ import annotations

import time
from types import SimpleNamespace

import gevent
import pytest
from support.onebox import put_args
from support.ports import onebox_ports
from support.replica import FakeConnection, lone_primary

from loadgen.errors import SessionReset
from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.internal_rpc import RPC_PREPARE, well_formed
from loadgen.onebox.kv_store import KVStore
from loadgen.onebox.replica_server import ReplicaServer
from loadgen.onebox.spec import FAST_FD, OneboxSpec
from loadgen.onebox.storage import parse_records
from loadgen.pegasus import codec
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.unit


class FakePeers:
    """Records every call; the test answers them by hand."""

    def __init__(self):
        self.calls: list[tuple[str, str, object, object]] = []  # (addr, rpc, request, callback)

    def get(self, addr: str):
        def call_async(rpc, req, callback, timeout_s, **_header):
            self.calls.append((addr, rpc, req, callback))
        return SimpleNamespace(call_async=call_async)

    def take(self, rpc: str) -> list[tuple[str, object, object]]:
        """The calls of ``rpc`` made so far (removed from the record)."""
        mine = [(a, q, cb) for a, r, q, cb in self.calls if r == rpc]
        self.calls = [c for c in self.calls if c[1] != rpc]
        return mine

    def close(self) -> None:
        pass


def _primary_with_two_secondaries(tmp_path):
    spec = OneboxSpec(dir=str(tmp_path), min_replicas=2, **onebox_ports(3), fd=FAST_FD)
    server = ReplicaServer(spec, "replica1", tmp_path / "replica1")
    server.peers = FakePeers()
    server.lease_until = time.monotonic() + 60
    me, b, c = (spec.nodes[n] for n in spec.replica_names)
    replica = server._host(0)
    replica.apply_config(ob.partition_membership(pidx=0, ballot=1, primary=me,
                                                 secondaries=[b, c], learners=[]))
    return server, replica, me, b, c


def _config(ballot, primary, secondaries=(), learners=()):
    return ob.partition_membership(pidx=0, ballot=ballot, primary=primary,
                                   secondaries=list(secondaries), learners=list(learners))


def _put(server, conn, seq: int, value: bytes) -> None:
    frame = codec.encode_request(codec.RPC_PUT, seq, put_args(b"h", b"", value), app_id=1,
                                 partition_index=0)
    assert server._client_op(conn, codec.decode_request(frame)) is None  # replies after commit


@pytest.mark.parametrize("then", ["learner-catches-up", "demoted"])
def test_pending_write_never_acked_on_the_primary_alone(tmp_path, then):
    server, replica, me, b, c = _primary_with_two_secondaries(tmp_path)
    conn = FakeConnection()
    _put(server, conn, 1, b"v")
    gevent.sleep(0.01)
    prepares = server.peers.take(RPC_PREPARE)
    assert sorted(a for a, _, _ in prepares) == sorted([b, c])
    for _, _, callback in prepares:
        callback(None, SessionReset("down"))
    # The meta drops them one by one: no counting member is left, min_replicas is 2.
    replica.apply_config(_config(2, me, [c]))
    replica.apply_config(_config(3, me))
    gevent.sleep(0.05)
    assert conn.sent == [], "a write committed with fewer than min_replicas copies"
    assert replica.can_write() == "ERR_NOT_ENOUGH_MEMBER"

    if then == "demoted":
        replica.apply_config(_config(4, b))
        assert [r.error for r in conn.sent] == ["ERR_TIMEOUT"]  # outcome unknown, not ok
    else:
        replica.apply_config(_config(4, me, learners=[b]))
        gevent.sleep(0.01)
        (addr, req, callback), = server.peers.take(RPC_PREPARE)
        assert addr == b and req.entries == b""  # a new learner starts at the end
        callback(SimpleNamespace(error="ERR_OK", result=ob.prepare_response(
            err="gap", position=0, ballot=4)), None)  # b lost everything: send from decree 1
        (addr, req, callback), = server.peers.take(RPC_PREPARE)
        assert addr == b and [r[2] for r in parse_records(req.entries)[0]] == [1]
        callback(SimpleNamespace(error="ERR_OK", result=ob.prepare_response(
            err="ok", position=1, ballot=4)), None)
        gevent.sleep(0.01)
        assert [r.error for r in conn.sent] == ["ERR_OK"]  # two copies now: primary + b
    for r in server.partitions.values():
        r.log.close()


def test_primary_prepares_only_what_it_logged(tmp_path):
    server, replica, _, b, _ = _primary_with_two_secondaries(tmp_path)
    conn = FakeConnection()
    _put(server, conn, 1, b"v1")
    gevent.sleep(0.01)
    first = server.peers.take(RPC_PREPARE)
    # A second write is taken (in memory, its flush not yet run) when b's ack arrives: the
    # prepare that follows the ack must not carry it before it is in the primary's log.
    _put(server, conn, 2, b"v2")
    ack = SimpleNamespace(error="ERR_OK", result=ob.prepare_response(err="ok", position=1, ballot=1))
    next(cb for a, _, cb in first if a == b)(ack, None)
    logged = {r[2] for r in parse_records((replica.log.dir / "log.0").read_bytes())[0] if r[0] == 1}
    for addr, req, _ in server.peers.take(RPC_PREPARE):
        sent = {r[2] for r in parse_records(req.entries)[0]}
        assert sent <= logged, (addr, sent, logged)
    for r in server.partitions.values():
        r.log.close()


def _ack(position: int, ballot: int):
    return SimpleNamespace(error="ERR_OK", result=ob.prepare_response(err="ok", position=position,
                                                                      ballot=ballot))


def test_a_learner_behind_the_checkpoint_gets_it_alone_then_the_log(tmp_path):
    server, replica, me, b, c = _primary_with_two_secondaries(tmp_path)
    server.checkpoint_every = 2
    conn = FakeConnection()
    for seq in (1, 2, 3):
        _put(server, conn, seq, b"v%d" % seq)
        gevent.sleep(0.01)
        for _, req, callback in server.peers.take(RPC_PREPARE):
            records = parse_records(req.entries)[0]
            callback(_ack(records[-1][2] if records else seq - 1, 1), None)
        gevent.sleep(0.01)
    assert [r.error for r in conn.sent] == ["ERR_OK"] * 3 and replica.ckpt_decree >= 2
    server.peers.take(RPC_PREPARE)  # commit-point notices: no answer needed
    replica.apply_config(_config(2, me, [c], [b]))  # b re-added: a new life, starting empty
    gevent.sleep(0.01)
    (_, req, callback), = [x for x in server.peers.take(RPC_PREPARE) if x[0] == b]
    callback(SimpleNamespace(error="ERR_OK", result=ob.prepare_response(
        err="gap", position=0, ballot=2)), None)
    (_, req, callback), = [x for x in server.peers.take(RPC_PREPARE) if x[0] == b]
    assert well_formed(req, server.spec.partitions)
    assert (req.checkpoint_decree, req.entries) == (replica.ckpt_decree, b"")
    assert KVStore.from_snapshot(req.checkpoint).get(make_key(b"h", b""))[0] == b"v%d" % replica.ckpt_decree
    callback(_ack(replica.ckpt_decree, 2), None)
    (_, req, _), = [x for x in server.peers.take(RPC_PREPARE) if x[0] == b]
    assert req.checkpoint == b""
    assert [r[2] for r in parse_records(req.entries)[0]] == list(
        range(replica.ckpt_decree + 1, replica.last_prepared + 1))
    for r in server.partitions.values():
        r.log.close()


def test_multi_remove_counts_what_earlier_writes_of_the_pipeline_put(tmp_path):
    server = lone_primary(tmp_path)
    conn = FakeConnection()
    _put(server, conn, 1, b"v")  # not applied yet when the multi_remove below is planned
    remove = rrdb.multi_remove_request(hash_key=blob(b"h"), sort_keys=[blob(b""), blob(b"none")])
    frame = codec.encode_request(codec.RPC_MULTI_REMOVE, 2, remove, app_id=1, partition_index=0)
    assert server._client_op(conn, codec.decode_request(frame)) is None
    gevent.sleep(0.05)
    assert [(r.error, r.result.error) for r in conn.sent] == [("ERR_OK", 0)] * 2
    assert conn.sent[1].result.count == 1
    for r in server.partitions.values():
        r.log.close()
