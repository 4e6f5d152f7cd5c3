"""Session: one pipelined TCP connection to one Pegasus server address.

Requests carry increasing seqids and replies are matched back by seqid, so any number of
greenlets share one connection. Per connection a reader greenlet decodes replies and wakes
their callers, and a writer greenlet flushes every frame queued since its last write in one
``sendall`` (writes coalesce under load). Socket and gevent failures become
:mod:`loadgen.errors` exceptions here and nowhere else.

What a lost connection means is the policy's choice, passed in as two settings:

* ``fail_pending_on_loss`` — True: every call waiting on the connection fails at once with
  ``ERR_SESSION_RESET`` (the Java client); False: they keep waiting until their own deadline,
  as the Go client did before apache/incubator-pegasus#1916;
* ``reconnect_interval_s`` — a disconnected session dials again only if no dial happened in
  the last interval (the first dial after a lost connection is immediate). While it may not
  dial, a fail-fast session fails calls at once; otherwise calls wait for a connection until
  their deadline and end with ``ERR_TIMEOUT``.

Uses gevent's own sockets, so it works in plain gevent code and under monkey-patching alike.
One session belongs to one gevent hub (thread).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.hub import Waiter

from ..errors import OpTimeout, PegasusError, ProtocolError, SessionReset
from . import codec
from .addr import ip_family, parse_addr
from .writer import FrameWriter

log = logging.getLogger(__name__)

#: Longest a dial may take; callers stop waiting for it at their own deadline anyway.
CONNECT_TIMEOUT_S = 3.0
_MAX_SEQID = 0x7FFFFFFF
_TIMED_OUT = object()  # what a call's timer hands its waiter


class _Connection:
    """One TCP connection's socket, writer and reader greenlet."""

    __slots__ = ("lost", "reader", "sock", "writer")

    def __init__(self, sock):
        self.sock = sock
        self.lost: SessionReset | None = None
        self.reader: gevent.Greenlet | None = None
        self.writer: FrameWriter | None = None


class Call:
    """A request handed to a connection; :meth:`wait` returns its reply."""

    __slots__ = ("_session", "_conn", "_seqid", "_waiter", "_timer")

    def __init__(self, session: Session, conn: _Connection, seqid: int, waiter: Waiter, timer):
        self._session, self._conn, self._seqid = session, conn, seqid
        self._waiter, self._timer = waiter, timer

    def wait(self) -> codec.ResponseFrame:
        """Block this greenlet until the reply, the deadline or a lost connection.

        Raises :class:`OpTimeout` at the deadline (``last_error`` is the connection loss the
        call sat through, if any) or :class:`SessionReset` when a fail-fast session loses it.
        """
        try:
            result = self._waiter.get()
        finally:
            self._timer.close()
            self._session._pending.pop(self._seqid, None)
        if result is _TIMED_OUT:
            raise OpTimeout(f"no reply from {self._session.addr} before the deadline",
                            last_error=self._conn.lost)
        if isinstance(result, PegasusError):
            raise result
        return result


class Session:
    """A pipelined connection to ``addr`` (``host:port``), dialed on first use."""

    def __init__(self, addr: str, *, fail_pending_on_loss: bool = True,
                 reconnect_interval_s: float = 0.0, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.addr = addr
        self._target = parse_addr(addr)
        # An IP literal is dialed directly: no trip through the resolver's thread pool per dial.
        self._family = ip_family(self._target[0])
        self._fail_fast = fail_pending_on_loss
        self._reconnect_interval_s = reconnect_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._seqid = 0
        self._pending: dict[int, Waiter] = {}
        self._conn: _Connection | None = None
        self._connected = Event()
        self._dialer: gevent.Greenlet | None = None
        self._dial_done: Event | None = None
        self._dial_allowed_at = 0.0
        self._dial_error = ""
        self._closed = False
        #: Dials started so far (tests check reconnect throttling with it).
        self.dials = 0

    @property
    def connected(self) -> bool:
        """Whether a live connection exists right now."""
        return self._conn is not None

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered, failed or timed out."""
        return len(self._pending)

    def call(self, rpc_name: str, args: Any, *, deadline: float, **header: int) -> codec.ResponseFrame:
        """Send one request and wait for its reply (see :meth:`send` and :meth:`Call.wait`)."""
        return self.send(rpc_name, args, deadline=deadline, **header).wait()

    def send(self, rpc_name: str, args: Any, *, deadline: float, app_id: int = 0,
             partition_index: int = 0, partition_hash: int = 0,
             client_timeout_ms: int = 0) -> Call:
        """Queue one request; ``deadline`` is a ``time.monotonic()`` instant.

        Raises before anything is sent when no connection can be had: :class:`SessionReset`
        on a fail-fast session, else :class:`OpTimeout` at the deadline.
        """
        seqid = self._seqid = self._seqid + 1 if self._seqid < _MAX_SEQID else 1
        frame = codec.encode_request(rpc_name, seqid, args, app_id=app_id,
                                     partition_index=partition_index,
                                     client_timeout_ms=client_timeout_ms,
                                     partition_hash=partition_hash)
        conn = self._conn or self._connect(deadline)
        waiter = Waiter(self._hub)
        self._pending[seqid] = waiter
        timer = self._loop.timer(max(0.0, deadline - time.monotonic()))
        timer.start(waiter.switch, _TIMED_OUT)
        conn.writer.send(frame)
        return Call(self, conn, seqid, waiter, timer)

    def close(self) -> None:
        """Drop the connection and fail every waiting call with ``ERR_SESSION_RESET``."""
        self._closed = True
        dialer, done = self._dialer, self._dial_done
        if dialer is not None:
            dialer.kill(block=False)
        if done is not None:  # a dialer killed before it ran never reaches its own finally
            self._dial_done = self._dialer = None
            done.set()
        if self._conn is not None:
            self._lose(self._conn, f"{self.addr}: session closed")
        self._fail_pending(f"{self.addr}: session closed")
        self._connected.set()  # wakes callers waiting to send; they find the session closed

    # ------------------------------------------------------------------ connecting

    def _connect(self, deadline: float) -> _Connection:
        if self._closed:
            raise SessionReset(f"{self.addr}: session closed")
        done = self._dial_done
        if done is None and time.monotonic() >= self._dial_allowed_at:
            done = self._start_dial()
        reason = "reconnect throttled"
        if done is not None:
            finished = done.wait(max(0.0, deadline - time.monotonic()))
            reason = self._dial_error if finished else "connect did not finish before the deadline"
        if self._conn is None and not self._fail_fast and not self._closed:
            # Like Go's waitUntilSessionReady: the call waits for a connection until its deadline.
            self._connected.wait(max(0.0, deadline - time.monotonic()))
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise SessionReset(f"{self.addr}: session closed")
        if self._fail_fast:
            raise SessionReset(f"{self.addr}: {reason or 'not connected'}")
        raise OpTimeout(f"could not send to {self.addr} before the deadline",
                        last_error=SessionReset(f"{self.addr}: {reason or 'not connected'}"))

    def _start_dial(self) -> Event:
        self._dial_allowed_at = time.monotonic() + self._reconnect_interval_s
        self.dials += 1
        done = self._dial_done = Event()
        self._dialer = gevent.spawn(self._dial, done)
        return done

    def _dial(self, done: Event) -> None:
        try:
            sock = self._open_socket()
        except OSError as exc:
            self._dial_error = f"connect failed: {exc}"
        else:
            if self._closed:
                sock.close()
            else:
                self._attach(sock)
        finally:
            self._dial_done = self._dialer = None
            done.set()

    def _open_socket(self):
        if self._family is None:  # a host name: resolve it on every dial, as it may move
            sock = gsocket.create_connection(self._target, timeout=self._connect_timeout_s)
        else:
            sock = gsocket.socket(self._family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._connect_timeout_s)
                sock.connect(self._target)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _attach(self, sock) -> None:
        conn = _Connection(sock)
        conn.reader = gevent.spawn(self._read_loop, conn)
        conn.writer = FrameWriter(
            sock, lambda exc: self._lose(conn, f"{self.addr}: send failed, connection dropped: {exc!r}"))
        self._conn, self._dial_error = conn, ""
        self._connected.set()

    # ------------------------------------------------------------------ connection loops

    def _read_loop(self, conn: _Connection) -> None:
        splitter = codec.FrameSplitter("response")
        pending, run_callback = self._pending, self._loop.run_callback
        recv = conn.sock.recv
        try:
            # Runs for the life of the connection: EOF and socket errors end it.
            while True:
                data = recv(codec.RECV_BYTES)
                if not data:
                    reason = "connection closed by the server"
                    break
                for frame in splitter.feed(data):
                    reply = codec.decode_response(frame)
                    waiter = pending.pop(reply.seqid, None)
                    if waiter is not None:  # else the call already timed out
                        run_callback(waiter.switch, reply)
        except OSError as exc:
            reason = f"connection lost: {exc}"
        except ProtocolError as exc:
            # A reply we cannot parse leaves the stream unusable: drop the connection.
            reason = f"unreadable reply, connection dropped: {exc}"
        except Exception as exc:  # a bug here must not leave a connection nobody reads
            log.exception("%s: reader failed", self.addr)
            reason = f"reader failed, connection dropped: {exc!r}"
        self._lose(conn, f"{self.addr}: {reason}")

    def _lose(self, conn: _Connection, reason: str) -> None:
        """Forget a dead connection (once) and apply the loss setting to waiting calls."""
        if conn.lost is not None:
            return
        conn.lost = SessionReset(reason)
        if self._conn is conn:
            self._conn = None
            self._connected.clear()
            self._dial_allowed_at = 0.0  # the first dial after a lost connection is immediate
        conn.writer.close()
        try:
            conn.sock.close()  # also wakes a reader blocked in recv
        except OSError:
            pass
        if self._fail_fast:
            self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        waiters = list(self._pending.values())
        self._pending.clear()  # in place: the reader loop holds this dict
        for waiter in waiters:
            self._loop.run_callback(waiter.switch, SessionReset(reason))

