"""Session: pipelining, coalesced writes, deadlines, and the two connection-loss behaviours."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.server import StreamServer

from loadgen.errors import NotConnected, OpTimeout, SessionReset
from loadgen.pegasus import codec, keys
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.rdsn.ttypes import blob
from loadgen.pegasus.session import Inbox, Session, SessionRules
from loadgen.testing.cluster import TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

DEADLINE_S = 0.4
#: For calls that should end at once: a bug that makes them wait shows as a deadline reached.
LONG_DEADLINE_S = 2.0
#: For tests about throughput or matching, not deadlines.
GENEROUS_DEADLINE_S = 5.0


@pytest.fixture
def cluster():
    with TestCluster(replicas=1, partitions=1) as c:
        yield c


@pytest.fixture
def sessions():
    made: list[Session] = []

    def make(addr: str, **rules) -> Session:
        made.append(Session(addr, SessionRules(**rules)))
        return made[-1]

    yield make
    for s in made:
        s.close()


def put_args(hash_key: bytes, value: bytes) -> rrdb.update_request:
    return rrdb.update_request(key=blob(keys.make_key(hash_key, b"s")), value=blob(value),
                               expire_ts_seconds=0)


def get_args(hash_key: bytes) -> blob:
    return blob(keys.make_key(hash_key, b"s"))


def call(session: Session, rpc: str, args, deadline_s: float = DEADLINE_S):
    return session.call(rpc, args, deadline=time.monotonic() + deadline_s, app_id=1)


def spawn_pending_put(session: Session, deadline_s: float = DEADLINE_S):
    """Start a put in a greenlet; returns it and the time it started."""
    started = time.monotonic()
    return gevent.spawn(call, session, codec.RPC_PUT, put_args(b"h", b"v"), deadline_s), started


def test_pipelined_calls_share_one_connection_and_match_replies(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    for i in range(100):
        cluster.data.setdefault(b"k%d" % i, {})[b"s"] = (b"v%d" % i, 0)
    jobs = [gevent.spawn(call, session, codec.RPC_GET, get_args(b"k%d" % i), GENEROUS_DEADLINE_S)
            for i in range(100)]
    gevent.joinall(jobs, raise_error=True)
    assert [j.value.result.value.data for j in jobs] == [b"v%d" % i for i in range(100)]
    assert cluster.connections(replica) == 1
    assert session.in_flight == 0


class CountingSocket:
    """Wraps a connected socket to count the writer's ``send`` calls."""

    def __init__(self, sock):
        self._sock, self.sends = sock, 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self._sock.send(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def test_writes_queued_together_are_coalesced(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))  # connect
    counting = session._conn.writer._sock = CountingSocket(session._conn.sock)
    inbox = Inbox()
    calls = [session.send(codec.RPC_GET, get_args(b"h"), inbox=inbox,
                          deadline=time.monotonic() + GENEROUS_DEADLINE_S, app_id=1)
             for _ in range(200)]
    replies = [inbox.get(GENEROUS_DEADLINE_S) for _ in calls]
    assert {call.seqid for call, _ in replies} == {c.seqid for c in calls}
    assert all(r.result.value.data == b"v" for _, r in replies)
    # The first goes out at once (a lone request pays no loop callback), the other 199 in
    # one write.
    assert counting.sends == 2, f"200 queued frames took {counting.sends} writes"


def test_no_reply_times_out_at_the_deadline(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    cluster.set_mode(replica, "hang")
    started = time.monotonic()
    with pytest.raises(OpTimeout) as info:
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    elapsed = time.monotonic() - started
    assert 0.9 * DEADLINE_S <= elapsed < 1.5 * DEADLINE_S
    assert info.value.code == "ERR_TIMEOUT" and info.value.last_error is None
    assert session.in_flight == 0


def test_fail_fast_session_fails_pending_calls_at_once_on_loss(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=True)
    cluster.set_mode(replica, "hang")
    jobs = [spawn_pending_put(session, LONG_DEADLINE_S)[0] for _ in range(5)]
    gevent.sleep(0.05)
    lost_at = time.monotonic()
    cluster.set_mode(replica, "down")
    gevent.joinall(jobs)
    assert all(isinstance(j.exception, SessionReset) for j in jobs)
    assert time.monotonic() - lost_at < 0.25 * LONG_DEADLINE_S


def test_legacy_session_leaves_pending_calls_waiting_for_their_deadline(cluster, sessions):
    """go-client/session/session.go loopForResponse: EOF returns without notifying callers."""
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False, dial_throttle_s=60,
                       wait_for_connection=True)
    cluster.set_mode(replica, "hang")
    job, started = spawn_pending_put(session)
    gevent.sleep(0.05)
    cluster.set_mode(replica, "down")
    job.join()
    elapsed = time.monotonic() - started
    assert isinstance(job.exception, OpTimeout)
    assert elapsed >= 0.9 * DEADLINE_S
    assert isinstance(job.exception.last_error, SessionReset)


def test_go_redial_within_the_interval_of_the_last_dial_waits_the_interval(cluster, sessions):
    """go-client/session/session.go nodeSession.dial: a dial less than kDialInterval after the
    last one sleeps kDialInterval first; waitUntilSessionReady waits until the deadline."""
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False, dial_throttle_s=60,
                       wait_for_connection=True)
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert session.dials == 1
    cluster.set_mode(replica, "close")  # the connection is reset; the node stays up
    cluster.set_mode(replica, "ok")
    gevent.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(NotConnected):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    assert time.monotonic() - started >= 0.9 * DEADLINE_S
    assert session.dials == 1 and cluster.connections(replica) == 1  # no dial yet


def test_go_redial_long_after_the_last_dial_is_immediate(cluster, sessions):
    """nodeSession.dial dials at once when the last dial is kDialInterval old."""
    replica = cluster.replica_addrs[0]
    throttle_s = 0.2
    session = sessions(replica, fail_pending_on_loss=False, dial_throttle_s=throttle_s,
                       wait_for_connection=True)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    gevent.sleep(1.5 * throttle_s)
    cluster.set_mode(replica, "close")
    cluster.set_mode(replica, "ok")
    gevent.sleep(0.05)
    started = time.monotonic()
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v"), LONG_DEADLINE_S).error == "ERR_OK"
    assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    assert session.dials == 2 and cluster.connections(replica) == 2


def test_redial_backoff_spaces_failed_dials_and_a_send_does_not_wait_for_it(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, redial_backoff=lambda n: 0.1 * n)
    cluster.set_mode(replica, "down")
    for _ in range(2):  # the first dial fails at once; the next one is 0.1 s away
        started = time.monotonic()
        with pytest.raises(NotConnected):
            call(session, codec.RPC_PUT, put_args(b"h", b"v"), LONG_DEADLINE_S)
        assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    assert session.dials == 1
    cluster.set_mode(replica, "ok")
    done = session.redial()
    assert not done.is_set()
    assert done.wait(LONG_DEADLINE_S) and session.connected and session.dials == 2


def test_fail_fast_session_reports_refused_connect_at_once(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=True)
    cluster.set_mode(replica, "down")
    started = time.monotonic()
    with pytest.raises(NotConnected):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"), LONG_DEADLINE_S)
    assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    cluster.set_mode(replica, "ok")
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"


def test_unreadable_reply_drops_the_connection():
    def handle(sock, _peer):
        sock.recv(65536)
        sock.sendall(b"\x00\x00\x00\x10" + b"\xff" * 12)  # a frame whose error name is garbage
        gevent.sleep(1)

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    session = Session(f"127.0.0.1:{server.server_port}")
    try:
        with pytest.raises(SessionReset, match="unreadable"):
            call(session, codec.RPC_PUT, put_args(b"h", b"v"))
        assert not session.connected
    finally:
        session.close()
        server.stop(timeout=1)


def test_close_fails_waiting_calls(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False)
    cluster.set_mode(replica, "hang")
    job, started = spawn_pending_put(session, LONG_DEADLINE_S)
    gevent.sleep(0.05)
    session.close()
    job.join()
    assert isinstance(job.exception, SessionReset)
    assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    with pytest.raises(SessionReset):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))


@pytest.mark.parametrize("fail_pending_on_loss", [True, False])
def test_close_before_the_dial_started_wakes_the_caller_at_once(cluster, sessions,
                                                                fail_pending_on_loss):
    # The call spawns the dialer and waits for it; close() kills the dialer before it ever
    # ran, so the dialer's own cleanup never signals the waiting call.
    session = sessions(cluster.replica_addrs[0], fail_pending_on_loss=fail_pending_on_loss)
    job, started = spawn_pending_put(session, LONG_DEADLINE_S)
    gevent.sleep(0)  # the call runs up to its wait for the dial, which has not run yet
    assert session.dials == 0 and not session.connected
    session.close()
    job.join()
    assert isinstance(job.exception, SessionReset) and "closed" in str(job.exception)
    assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    gevent.sleep(0.05)
    assert not session.connected and cluster.connections(cluster.replica_addrs[0]) == 0


def test_numeric_address_is_dialed_without_the_resolver(cluster, sessions, monkeypatch):
    from gevent import socket as gsocket

    def no_resolver(*_args, **_kwargs):
        raise AssertionError("the resolver was asked for an IP literal")

    monkeypatch.setattr(gsocket, "getaddrinfo", no_resolver)
    monkeypatch.setattr(gsocket, "create_connection", no_resolver)
    session = sessions(cluster.replica_addrs[0])
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert session.dials == 1


def test_host_name_address_still_connects(cluster, sessions):
    port = cluster.replica_addrs[0].rpartition(":")[2]
    session = sessions(f"localhost:{port}")
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v"), GENEROUS_DEADLINE_S).error == "ERR_OK"


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.1:", ":34801", "host:port", "h:70000"])
def test_a_malformed_address_is_rejected_at_construction(addr):
    with pytest.raises(ValueError, match="host:port"):
        Session(addr)


def test_a_reader_bug_drops_the_connection_instead_of_leaving_it_unread(cluster, sessions, monkeypatch):
    # Without a last-resort catch the reader greenlet dies, the connection stays "connected"
    # and every later call on it times out: the session would never recover.
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=True)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))  # connect
    real = codec.decode_response

    def broken_once(frame):
        monkeypatch.setattr(codec, "decode_response", real)
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(codec, "decode_response", broken_once)
    started = time.monotonic()
    with pytest.raises(SessionReset, match="reader failed"):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"), LONG_DEADLINE_S)
    assert time.monotonic() - started < 0.25 * LONG_DEADLINE_S
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert session.dials == 2


def serve(handle) -> StreamServer:
    """A one-off socket-seam server running ``handle(sock, peer)``; stop it after use."""
    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def test_legacy_unreadable_reply_drops_connection_and_call_waits_for_its_deadline():
    # PROTOCOL.md: a reply the Go client cannot parse drops the connection, and calls in
    # flight then only time out. The next call dials again at once (the last dial is older
    # than the throttle by then).
    connections = []

    def handle(sock, _peer):
        connections.append(sock)
        request = sock.recv(65536)
        if len(connections) == 1:
            sock.sendall(b"\x00\x00\x00\x10" + b"\xff" * 12)
        else:
            frame = codec.decode_request(request)
            sock.sendall(codec.encode_response(frame.rpc_name, frame.seqid, "ERR_INVALID_STATE"))
        gevent.sleep(2)

    server = serve(handle)
    session = Session(f"127.0.0.1:{server.server_port}",
                      SessionRules(fail_pending_on_loss=False, dial_throttle_s=0.5 * DEADLINE_S,
                                   wait_for_connection=True))
    try:
        started = time.monotonic()
        with pytest.raises(OpTimeout) as info:
            call(session, codec.RPC_PUT, put_args(b"h", b"v"))
        assert time.monotonic() - started >= 0.9 * DEADLINE_S
        assert "unreadable" in str(info.value.last_error)
        assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_INVALID_STATE"
        assert session.dials == 2
    finally:
        session.close()
        server.stop(timeout=1)


def test_late_reply_for_a_timed_out_call_is_ignored_and_the_connection_kept():
    # The server answers the first request only after the caller gave up, then answers
    # the second at once: the late reply must neither crash the reader nor be taken for
    # the second call's reply.
    def handle(sock, _peer):
        splitter = codec.FrameSplitter("request")
        n = 0
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for raw in splitter.feed(data):
                n += 1
                frame = codec.decode_request(raw)
                if n == 1:
                    gevent.sleep(1.5 * DEADLINE_S)
                error = "ERR_OBJECT_NOT_FOUND" if n == 1 else "ERR_INVALID_STATE"
                sock.sendall(codec.encode_response(frame.rpc_name, frame.seqid, error))

    server = serve(handle)
    session = Session(f"127.0.0.1:{server.server_port}")
    try:
        with pytest.raises(OpTimeout):
            call(session, codec.RPC_PUT, put_args(b"h", b"v"))
        assert session.in_flight == 0  # the timed-out call left the pending table
        second = call(session, codec.RPC_PUT, put_args(b"h", b"v"), 4 * DEADLINE_S)
        assert second.error == "ERR_INVALID_STATE"
        assert session.connected and session.dials == 1 and session.in_flight == 0
    finally:
        session.close()
        server.stop(timeout=1)


def test_seqid_wraps_to_one_after_the_largest_i32(cluster, sessions):
    from loadgen.pegasus import session as session_module

    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    session._seqid = session_module._MAX_SEQID - 1
    for _ in range(3):  # MAX-0, then 1, 2: all encodable as thrift i32 and matched
        assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert cluster.last_request(replica).seqid == 2


def test_close_releases_greenlets_and_socket(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    conn = session._conn
    session.close()
    gevent.sleep(0.05)
    assert not conn.reader.active and conn.writer.dead
    assert conn.sock.fileno() == -1
    assert session.in_flight == 0
