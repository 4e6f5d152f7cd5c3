"""Session: pipelining, coalesced writes, deadlines, and the two connection-loss behaviours."""

from __future__ import annotations

import time

import gevent
import pytest
from gevent.server import StreamServer

from loadgen.errors import OpTimeout, SessionReset
from loadgen.pegasus import codec, keys
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.rdsn.ttypes import blob
from loadgen.pegasus.session import Session
from loadgen.pegasus.testing import TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

DEADLINE_S = 0.4


@pytest.fixture
def cluster():
    with TestCluster(replicas=1, partitions=1) as c:
        yield c


@pytest.fixture
def sessions():
    made: list[Session] = []

    def make(addr: str, **kwargs) -> Session:
        made.append(Session(addr, **kwargs))
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
    jobs = [gevent.spawn(call, session, codec.RPC_GET, get_args(b"k%d" % i)) for i in range(100)]
    gevent.joinall(jobs, raise_error=True)
    assert [j.value.result.value.data for j in jobs] == [b"v%d" % i for i in range(100)]
    assert cluster.connections(replica) == 1
    assert session.in_flight == 0


class CountingSocket:
    """Wraps a connected socket to count the writer's ``sendall`` calls."""

    def __init__(self, sock):
        self._sock, self.sendalls = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sendalls += 1
        self._sock.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def test_writes_queued_together_are_coalesced(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))  # connect
    counting = session._conn.sock = CountingSocket(session._conn.sock)
    calls = [session.send(codec.RPC_GET, get_args(b"h"), deadline=time.monotonic() + 1, app_id=1)
             for _ in range(200)]
    replies = [c.wait() for c in calls]
    assert all(r.result.value.data == b"v" for r in replies)
    assert counting.sendalls == 1, f"200 queued frames took {counting.sendalls} writes"


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
    jobs = [spawn_pending_put(session)[0] for _ in range(5)]
    gevent.sleep(0.05)
    lost_at = time.monotonic()
    cluster.set_mode(replica, "down")
    gevent.joinall(jobs)
    assert all(isinstance(j.exception, SessionReset) for j in jobs)
    assert time.monotonic() - lost_at < 0.25 * DEADLINE_S


def test_legacy_session_leaves_pending_calls_waiting_for_their_deadline(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False, reconnect_interval_s=60)
    cluster.set_mode(replica, "hang")
    job, started = spawn_pending_put(session)
    gevent.sleep(0.05)
    cluster.set_mode(replica, "down")
    job.join()
    elapsed = time.monotonic() - started
    assert isinstance(job.exception, OpTimeout)
    assert elapsed >= 0.9 * DEADLINE_S
    assert isinstance(job.exception.last_error, SessionReset)


def test_legacy_reconnect_first_dial_after_loss_is_immediate_then_throttled(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False, reconnect_interval_s=60)
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert session.dials == 1
    cluster.set_mode(replica, "down")
    gevent.sleep(0.05)
    # First call after the loss dials at once; the node is down so it cannot send.
    started = time.monotonic()
    with pytest.raises(OpTimeout) as info:
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    assert time.monotonic() - started >= 0.9 * DEADLINE_S
    assert isinstance(info.value.last_error, SessionReset)
    assert session.dials == 2
    # The node is back, but the throttle forbids another dial for 60 s.
    cluster.set_mode(replica, "ok")
    with pytest.raises(OpTimeout):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    assert session.dials == 2
    assert cluster.connections(replica) == 1


def test_first_dial_after_eof_is_immediate_even_within_the_interval(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=False, reconnect_interval_s=60)
    call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    cluster.set_mode(replica, "close")  # resets the open connection
    cluster.set_mode(replica, "ok")
    gevent.sleep(0.05)
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"
    assert session.dials == 2 and cluster.connections(replica) == 2


def test_fail_fast_session_reports_refused_connect_at_once(cluster, sessions):
    replica = cluster.replica_addrs[0]
    session = sessions(replica, fail_pending_on_loss=True)
    cluster.set_mode(replica, "down")
    started = time.monotonic()
    with pytest.raises(SessionReset):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
    assert time.monotonic() - started < 0.25 * DEADLINE_S
    cluster.set_mode(replica, "ok")
    assert call(session, codec.RPC_PUT, put_args(b"h", b"v")).error == "ERR_OK"


def test_unreadable_reply_drops_the_connection():
    def handle(sock, _peer):
        sock.recv(65536)
        sock.sendall(b"\x00\x00\x00\x10" + b"\xff" * 12)  # a frame whose error name is garbage
        gevent.sleep(1)

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    session = Session(f"127.0.0.1:{server.server_port}", fail_pending_on_loss=True)
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
    job, started = spawn_pending_put(session)
    gevent.sleep(0.05)
    session.close()
    job.join()
    assert isinstance(job.exception, SessionReset)
    assert time.monotonic() - started < 0.5 * DEADLINE_S
    with pytest.raises(SessionReset):
        call(session, codec.RPC_PUT, put_args(b"h", b"v"))
