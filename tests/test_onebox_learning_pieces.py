"""Checkpoint transfer in pieces, in-process: a primary and real member replicas joined by a
loopback peer pool that passes every prepare through the codec (so a frame over the limit is
refused as on a socket) and delivers it only when the test says so."""

from __future__ import annotations

import time
from types import SimpleNamespace

import gevent
import pytest
from support.ports import onebox_ports
from support.replica import FakeConnection

from loadgen.errors import ProtocolError, SessionReset
from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.internal_rpc import RPC_PREPARE
from loadgen.onebox.kv_store import PUT, KVStore, encode_mutation
from loadgen.onebox.learning import Assembly
from loadgen.onebox.replica_server import ReplicaServer
from loadgen.onebox.spec import FAST_FD, OneboxSpec
from loadgen.pegasus import codec
from loadgen.pegasus.keys import make_key

pytestmark = pytest.mark.unit

CHUNK = 1024
CHECKPOINT_EVERY = 10


class Loopback:
    """A peer pool whose calls wait in a queue until the test delivers them."""

    def __init__(self):
        self.servers: dict[str, ReplicaServer] = {}
        self.queue: list[tuple[str, str, object, object]] = []  # (addr, rpc, request, callback)
        self.member_changes: list[tuple[str, str]] = []

    def get(self, addr: str):
        def call_async(rpc, req, callback, timeout_s, **_header):
            if rpc == RPC_PREPARE:
                self.queue.append((addr, rpc, req, callback))
            else:
                self.member_changes.append((req.node, req.action))  # the meta: not modelled
        return SimpleNamespace(call_async=call_async)

    def close(self) -> None:
        pass

    def step(self, addr: str | None = None) -> tuple[str, ob.prepare_request] | None:
        """Deliver the oldest queued prepare (to ``addr`` if given) and run its callback."""
        gevent.sleep(0)  # scheduled flushes run first
        i = next((i for i, c in enumerate(self.queue) if addr in (None, c[0])), None)
        if i is None:
            return None
        to, rpc, req, callback = self.queue.pop(i)
        try:
            frame = codec.decode_request(codec.encode_request(rpc, 1, req, app_id=1, partition_index=0))
        except ProtocolError as exc:  # over the frame limit: a real connection breaks
            callback(None, SessionReset(str(exc)))
            return to, req
        reply = self.servers[to].handle(FakeConnection(), frame)
        callback(codec.decode_response(reply), None)
        return to, req

    def drain(self, addr: str | None = None, limit: int = 10000) -> list[tuple[str, ob.prepare_request]]:
        done = []
        for _ in range(limit):
            got = self.step(addr)
            if got is None:
                gevent.sleep(0.001)
                got = self.step(addr)
                if got is None:
                    return done
            done.append(got)
        raise AssertionError("prepares never stopped")

    def cut(self, addr: str) -> None:
        """``addr``'s connection breaks: its queued prepares fail."""
        mine = [c for c in self.queue if c[0] == addr]
        self.queue = [c for c in self.queue if c[0] != addr]
        for _, _, _, callback in mine:
            callback(None, SessionReset("closed"))


def _config(ballot, primary, secondaries=(), learners=()):
    return ob.partition_membership(pidx=0, ballot=ballot, primary=primary,
                                   secondaries=list(secondaries), learners=list(learners))


def _cluster(tmp_path):
    """replica1 primary of partition 0 with replica3 as its secondary (ballot 1); replica2 idle."""
    spec = OneboxSpec(dir=str(tmp_path), min_replicas=2, **onebox_ports(3), fd=FAST_FD,
                      checkpoint_every=CHECKPOINT_EVERY, learn_chunk_bytes=CHUNK)
    net = Loopback()
    a, b, c = (spec.nodes[n] for n in spec.replica_names)
    for name in spec.replica_names:
        _start(net, spec, name)
    net.servers[c]._host(0).apply_config(_config(1, a, [c]))
    primary = net.servers[a]._host(0)
    primary.apply_config(_config(1, a, [c]))
    return net, primary, a, b, c


def _start(net: Loopback, spec: OneboxSpec, name: str) -> ReplicaServer:
    """replica ``name`` (again, after a restart: its data dir is replayed)."""
    server = ReplicaServer(spec, name, spec.node_dir(name))
    server.peers = net
    server.lease_until = time.monotonic() + 60
    net.servers[server.me] = server
    return server


def _write(net: Loopback, primary, first: int, n: int, *, drain: bool = True) -> list[str]:
    """``n`` puts of 390-byte values, each drained to the members before the next if ``drain``."""
    replies: list[str] = []
    for i in range(first, first + n):
        mutation = encode_mutation([(PUT, 0, make_key(b"k%d" % i, b""), b"%03d" % i * 130)])
        primary.write(mutation, lambda err, decree, removed: replies.append(err))
        if drain:
            net.drain()
    return replies


def _close(net: Loopback) -> None:
    for server in net.servers.values():
        for r in server.partitions.values():
            r.log.close()


def _behind_a_multi_piece_checkpoint(tmp_path, monkeypatch):
    """The cluster after 40 writes, with replica2 just added as a learner (ballot 2): the
    primary's checkpoint is several pieces and larger than a (shrunk) frame."""
    monkeypatch.setattr(codec, "MAX_FRAME_BYTES", 8 * CHUNK)  # the whole snapshot would not fit
    net, primary, a, b, c = _cluster(tmp_path)
    assert _write(net, primary, 0, 40) == ["ERR_OK"] * 40
    assert primary.ckpt_decree == 40
    snapshot = primary._snapshot()
    assert len(snapshot) > 8 * CHUNK
    primary.apply_config(_config(2, a, [c], [b]))
    net.drain(c)
    return net, primary, a, b, c, snapshot


def _pieces(delivered, ballot=None):
    return [r for _, r in delivered if r.checkpoint_total and ballot in (None, r.ballot)]


def _assert_contiguous(pieces, snapshot, decree):
    assert [p.checkpoint_offset for p in pieces] == list(range(0, len(snapshot), CHUNK))
    assert b"".join(p.checkpoint for p in pieces) == snapshot
    assert {(p.checkpoint_decree, p.checkpoint_total) for p in pieces} == {(decree, len(snapshot))}
    assert all(p.entries == b"" for p in pieces)


def test_a_checkpoint_bigger_than_a_piece_is_learned_in_pieces_installed_whole(tmp_path, monkeypatch):
    net, primary, _, b, c, snapshot = _behind_a_multi_piece_checkpoint(tmp_path, monkeypatch)
    learner = net.servers[b]._host(0)
    delivered = []
    while learner.ckpt_decree == 0:
        got = net.step(b)
        assert got is not None, "the transfer stalled"
        delivered.append(got)
        if len(_pieces(delivered)) == 2:
            # Writes go on while the learner learns: the primary and its secondary commit them.
            acks = _write(net, primary, 40, 3, drain=False)
            net.drain(c)
            assert acks == ["ERR_OK"] * 3
        if learner.ckpt_decree == 0:
            assert learner.store.rows == {} and learner.verified == 0  # nothing before the last piece
    pieces = _pieces(delivered)
    assert len(pieces) == -(-len(snapshot) // CHUNK) >= 10
    _assert_contiguous(pieces, snapshot, 40)
    assert learner.store.rows == KVStore.from_snapshot(snapshot).rows
    assert primary.committed == 43  # committed while the learner was learning
    net.drain()
    # Then the log after the checkpoint, and the learner counts from now on.
    assert (learner.last_prepared, learner.committed) == (43, 43)
    assert learner.store.rows == primary.store.rows
    assert primary.members[b].counting and (b, "upgrade") in net.member_changes
    assert learner.log.read_checkpoint() == (40, snapshot)
    _close(net)


@pytest.mark.parametrize("interruption", ["new-ballot", "learner-restarted"])
def test_an_interrupted_transfer_starts_over_cleanly(tmp_path, monkeypatch, interruption):
    net, primary, a, b, c, snapshot = _behind_a_multi_piece_checkpoint(tmp_path, monkeypatch)
    learner = net.servers[b]._host(0)
    taken = 0
    while taken < 3:  # three pieces taken, more in flight
        taken += bool(net.step(b)[1].checkpoint_total)
    assert learner.ckpt_decree == 0 and sum(1 for q in net.queue if q[0] == b) > 0
    if interruption == "new-ballot":
        primary.apply_config(_config(3, a, [c], [b]))  # still a learner: the same member
        ballot = 3
    else:
        net.cut(b)  # replica2 dies with pieces in flight, restarts and is added back
        learner.log.close()
        _start(net, net.servers[b].spec, "replica2")
        primary.apply_config(_config(3, a, [c]))
        primary.apply_config(_config(4, a, [c], [b]))
        ballot = 4
        learner = net.servers[b]._host(0)
        assert learner.ckpt_decree == 0 and learner.store.rows == {}  # nothing half-installed
    delivered = net.drain()
    pieces = _pieces(delivered, ballot)
    restart = max(i for i, p in enumerate(pieces) if p.checkpoint_offset == 0)
    _assert_contiguous(pieces[restart:], snapshot, 40)  # from byte 0 again, under the new ballot
    assert learner.ckpt_decree == 40 and learner.log.read_checkpoint() == (40, snapshot)
    assert learner.store.rows == primary.store.rows and learner.committed == primary.committed
    assert primary.members[b].counting
    _close(net)


def test_a_new_primary_checkpoint_mid_transfer_moves_the_transfer_to_it(tmp_path, monkeypatch):
    net, primary, _, b, c, _ = _behind_a_multi_piece_checkpoint(tmp_path, monkeypatch)
    learner = net.servers[b]._host(0)
    net.step(b)
    net.step(b)
    acks = _write(net, primary, 40, CHECKPOINT_EVERY, drain=False)
    net.drain(c)
    assert acks == ["ERR_OK"] * CHECKPOINT_EVERY
    assert primary.ckpt_decree == 50 and learner.ckpt_decree == 0
    delivered = net.drain()
    newer = [p for p in _pieces(delivered) if p.checkpoint_decree == 50]
    _assert_contiguous(newer, primary._snapshot(), 50)
    assert learner.ckpt_decree == 50 and learner.store.rows == primary.store.rows
    _close(net)


def test_assembly_takes_pieces_in_order_of_one_checkpoint_only():
    def piece(ballot, offset, data, decree=7, total=6):
        return ob.prepare_request(ballot=ballot, checkpoint_decree=decree, checkpoint_total=total,
                                  checkpoint_offset=offset, checkpoint=data)

    asm = Assembly()
    assert asm.take(piece(1, 0, b"ab")) is None and asm.received(piece(1, 2, b"")) == 2
    assert asm.take(piece(1, 4, b"ef")) is None  # out of order: refused, nothing kept of it
    assert asm.take(piece(2, 2, b"cd")) is None  # another ballot's piece does not fit ours
    assert asm.received(piece(2, 2, b"")) == 0 and asm.received(piece(1, 2, b"")) == 2
    assert asm.take(piece(1, 2, b"cdXXX")) is None  # past the total
    assert asm.take(piece(1, 2, b"cd")) is None
    assert asm.take(piece(1, 4, b"ef")) == b"abcdef"
    assert asm.received(piece(1, 6, b"")) == 0  # installed: nothing held any more
    assert asm.take(piece(1, 0, b"ab")) is None and asm.take(piece(1, 0, b"xy")) is None  # 0 restarts
    assert asm.take(piece(1, 2, b"zzzz")) == b"xyzzzz"
