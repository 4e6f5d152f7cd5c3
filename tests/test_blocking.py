"""One-shot blocking RPCs: the tool path finds a table's config as the client does.

These calls block the thread, so the fake metas run in threads of their own, not in gevent.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable

import pytest

from loadgen.errors import OpTimeout, ServerError, SessionReset
from loadgen.pegasus import blocking, codec
from loadgen.pegasus.gen.replication import ttypes as replication
from loadgen.pegasus.rdsn.ttypes import error_code, gpid, rpc_address

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

Answer = Callable[[codec.RequestFrame], "replication.query_cfg_response | None"]


def good_config() -> replication.query_cfg_response:
    parts = [replication.partition_configuration(pid=gpid(1, i), ballot=2,
                                                 primary=rpc_address("127.0.0.1", 34801))
             for i in range(2)]
    return replication.query_cfg_response(err=error_code("ERR_OK"), app_id=1, partition_count=2,
                                          is_stateful=True, partitions=parts)


def forward_to(addr: str) -> replication.query_cfg_response:
    leader = replication.partition_configuration(primary=rpc_address.from_string(addr))
    return replication.query_cfg_response(err=error_code("ERR_FORWARD_TO_OTHERS"), partitions=[leader])


class FakeMeta:
    """A meta on a loopback port that answers each query with ``answer(request)``; None hangs."""

    def __init__(self, answer: Answer):
        outer = self
        self.answer, self.requests = answer, 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                splitter = codec.FrameSplitter("request")
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    for raw in splitter.feed(data):
                        outer.requests += 1
                        req = codec.decode_request(raw)
                        resp = outer.answer(req)
                        if resp is None:
                            time.sleep(5)
                            return
                        self.request.sendall(codec.encode_response(req.rpc_name, req.seqid,
                                                                   "ERR_OK", resp))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metas():
    made: list[FakeMeta] = []

    def make(answer: Answer) -> FakeMeta:
        made.append(FakeMeta(answer))
        return made[-1]

    yield make
    for meta in made:
        meta.close()


def test_an_answer_without_error_code_is_invalid_data_not_a_crash(metas):
    def no_err(_req):
        resp = good_config()
        resp.err = None
        return resp

    bad = metas(no_err)
    with pytest.raises(ServerError) as info:
        blocking.query_config([bad.addr], "temp", timeout_s=1)
    assert info.value.code == "ERR_INVALID_DATA" and bad.addr in str(info.value)
    good = metas(lambda _req: good_config())
    assert blocking.query_config([bad.addr, good.addr], "temp").partition_count == 2


def test_a_forward_is_followed_to_a_leader_not_in_the_list(metas):
    leader = metas(lambda _req: good_config())
    follower = metas(lambda _req: forward_to(leader.addr))
    assert blocking.query_config([follower.addr], "temp", timeout_s=1).app_id == 1
    assert (follower.requests, leader.requests) == (1, 1)


def test_an_unknown_table_is_final(metas):
    missing = metas(lambda _req: replication.query_cfg_response(err=error_code("ERR_OBJECT_NOT_FOUND")))
    other = metas(lambda _req: good_config())
    with pytest.raises(ServerError) as info:
        blocking.query_config([missing.addr, other.addr], "nope", timeout_s=1)
    assert info.value.code == "ERR_OBJECT_NOT_FOUND" and other.requests == 0


def test_no_reply_in_time_is_an_op_timeout(metas):
    silent = metas(lambda _req: None)
    timeout_s = 0.3
    started = time.monotonic()
    with pytest.raises(OpTimeout) as info:
        blocking.call(silent.addr, codec.RPC_QUERY_CONFIG,
                      replication.query_cfg_request(app_name="temp", partition_indices=[]),
                      timeout_s=timeout_s)
    assert info.value.code == "ERR_TIMEOUT"
    assert time.monotonic() - started >= 0.9 * timeout_s
    with pytest.raises(OpTimeout):
        blocking.query_config([silent.addr], "temp", timeout_s=timeout_s)


def test_a_refused_connect_is_a_session_reset():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: refused
        with pytest.raises(SessionReset):
            blocking.query_config([addr], "temp", timeout_s=1)
