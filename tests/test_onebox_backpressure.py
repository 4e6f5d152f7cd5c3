"""Onebox RPC server backpressure: a client that pipelines requests and never reads its
replies cannot make the server queue replies without limit, and other clients are served."""

from __future__ import annotations

import gevent
import pytest
from gevent import socket
from support.ports import free_port

from loadgen.onebox import rpc_server
from loadgen.onebox.rpc_server import FrameServer
from loadgen.pegasus import codec
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.unit

REPLY_VALUE = b"x" * 64 * 1024
CAP = 1024 * 1024


def _get(seq: int) -> bytes:
    return codec.encode_request(codec.RPC_GET, seq, blob(make_key(b"h", b"")), app_id=1)


def test_a_client_that_never_reads_is_throttled_others_are_served(monkeypatch):
    monkeypatch.setattr(rpc_server, "MAX_QUEUED_REPLY_BYTES", CAP)
    conns, handled = set(), []

    def handler(conn, req):
        conns.add(conn)
        handled.append(req.seqid)
        return codec.encode_response(req.rpc_name, req.seqid, "ERR_OK", rrdb.read_response(
            error=0, value=blob(REPLY_VALUE), app_id=1, partition_index=0, server="test"))

    server = FrameServer("127.0.0.1", free_port(), handler, "test")
    server.start()
    hog = socket.create_connection(server.address)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    requests = 2000  # ~128 MiB of replies if all were handled and queued
    try:
        sender = gevent.spawn(hog.sendall, b"".join(_get(i) for i in range(requests)))
        gevent.sleep(1.0)
        peak = max(c.queued_bytes for c in conns)
        assert peak <= CAP + 2 * len(REPLY_VALUE), peak  # the cap plus the reply that crossed it
        # handled: what the cap and the kernel's socket buffers hold, far from all of them
        assert len(handled) < requests // 4, (len(handled), "the server kept reading")

        other = socket.create_connection(server.address, timeout=5)
        other.sendall(_get(requests + 1))
        splitter, frames = codec.FrameSplitter("response"), []
        while not frames:
            data = other.recv(1 << 20)
            assert data, "the other client was not answered"
            frames = splitter.feed(data)
        assert codec.decode_response(frames[0]).result.value.data == REPLY_VALUE
        other.close()
    finally:
        sender.kill()
        hog.close()
        server.stop(timeout=1)
