"""The replica's optional drop of expired requests (rDSN's
``rpc_request_dropped_before_execution_when_timeout``): a client op that waited in the node's
queue, since the node read it from its socket, for its whole header ``client_timeout`` is
dropped unanswered and counted; off by default."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
from support.onebox import APP_ID, make_box, put_args
from support.replica import FakeConnection, lone_primary

from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.internal_rpc import RPC_NODE_STATS
from loadgen.pegasus import codec
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

#: how long ago the "stale" requests were read: far beyond STALE_TIMEOUT_MS, so scheduling
#: noise cannot make them look fresh (nor the fresh ones, with a 10 s timeout, look stale)
STALE_AGE_S = 0.5
STALE_TIMEOUT_MS = 100
FRESH_TIMEOUT_MS = 10_000


def request(rpc: str, seqid: int, args, timeout_ms: int) -> codec.RequestFrame:
    return codec.decode_request(codec.encode_request(rpc, seqid, args, app_id=APP_ID,
                                                     partition_index=0,
                                                     client_timeout_ms=timeout_ms))


def get(seqid: int, timeout_ms: int) -> codec.RequestFrame:
    return request(codec.RPC_GET, seqid, blob(make_key(b"h", b"")), timeout_ms)


def put(seqid: int, timeout_ms: int) -> codec.RequestFrame:
    return request(codec.RPC_PUT, seqid, put_args(b"h", b"", b"v%d" % seqid), timeout_ms)


def close_logs(server) -> None:
    for replica in server.partitions.values():
        replica.log.close()


@pytest.mark.unit
@pytest.mark.parametrize("drop_expired", [True, False], ids=["on", "off"])
def test_requests_older_than_their_timeout_are_dropped_only_when_on(tmp_path, drop_expired):
    server = lone_primary(tmp_path, drop_expired=drop_expired)
    stale = FakeConnection(read_at=time.monotonic() - STALE_AGE_S)
    fresh = FakeConnection()
    try:
        # reads are answered inline (the reply frame is returned); writes after their commit
        stale_get = server._client_op(stale, get(1, STALE_TIMEOUT_MS))
        assert server._client_op(stale, put(2, STALE_TIMEOUT_MS)) is None
        # rDSN: "0 ms" has always expired (what the official Python client sends)
        zero_timeout = server._client_op(fresh, get(3, 0))
        fresh_get = server._client_op(fresh, get(4, FRESH_TIMEOUT_MS))
        assert server._client_op(fresh, put(5, FRESH_TIMEOUT_MS)) is None
        gevent.sleep(0.05)  # let the writes commit and reply

        assert codec.decode_response(fresh_get).error == "ERR_OK"
        assert [(r.seqid, r.error) for r in fresh.sent] == [(5, "ERR_OK")]
        if drop_expired:
            assert stale_get is None and stale.sent == []  # unanswered, not an error reply
            assert zero_timeout is None
            assert server.dropped_expired == 3
            # the dropped put was never applied: the store holds only the fresh one
            assert server.partitions[0].store.get(make_key(b"h", b""))[0] == b"v5"
        else:
            assert codec.decode_response(zero_timeout).error == "ERR_OK"
            assert codec.decode_response(stale_get).error == "ERR_OK"
            assert [(r.seqid, r.error) for r in stale.sent] == [(2, "ERR_OK")]
            assert server.dropped_expired == 0
    finally:
        close_logs(server)


@pytest.mark.unit
def test_internal_rpcs_are_never_dropped_and_report_the_count(tmp_path):
    server = lone_primary(tmp_path, drop_expired=True)
    stale = FakeConnection(read_at=time.monotonic() - STALE_AGE_S)
    try:
        assert server._client_op(stale, get(1, STALE_TIMEOUT_MS)) is None
        stats = request(RPC_NODE_STATS, 2, ob.node_stats_request(), STALE_TIMEOUT_MS)
        reply = codec.decode_response(server.handle(stale, stats))  # as stale, still answered
        assert (reply.error, reply.result.dropped_expired) == ("ERR_OK", 1)
    finally:
        close_logs(server)


@pytest.mark.onebox
def test_the_option_reaches_the_nodes_and_status_counts_the_drops(tmp_path):
    # one replica node, one partition: every client request below goes to replica1
    with make_box(tmp_path / "box", replica_nodes=1, replicas=1, min_replicas=1, partitions=1,
                  drop_expired=True) as box:
        before = box.status()
        assert [n["dropped_expired"] for n in before["nodes"]] == [None, 0]
        addr = box.spec.nodes["replica1"]
        pipelined = 2000
        # Handling 2000 gets read in a few recv batches takes far longer than 1 ms, so later
        # ones in a batch expire before they are handled: with the option lost on the way to
        # the node, none would be dropped. The last get has a minute: it is always answered,
        # and once it is, every earlier one was handled (one connection is handled in order).
        frames = [codec.encode_request(codec.RPC_GET, seq, blob(make_key(b"h", b"")),
                                       app_id=APP_ID, partition_index=0, client_timeout_ms=1)
                  for seq in range(1, pipelined + 1)]
        last = pipelined + 1
        frames.append(codec.encode_request(codec.RPC_GET, last, blob(make_key(b"h", b"")),
                                           app_id=APP_ID, partition_index=0,
                                           client_timeout_ms=60_000))
        answered: set[int] = set()
        host, _, port = addr.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"".join(frames))
            splitter = codec.FrameSplitter("response")
            while last not in answered:
                data = sock.recv(1 << 20)
                assert data, "replica1 closed the connection"
                for frame in splitter.feed(data):
                    reply = codec.decode_response(frame)
                    assert reply.error == "ERR_OK", reply.error
                    answered.add(reply.seqid)
        dropped = pipelined - len(answered - {last})
        assert dropped >= 1
        after = box.status()
        # exactly what this client saw go unanswered: the count is the node's, per node
        assert [n["dropped_expired"] for n in after["nodes"]] == [None, dropped]
