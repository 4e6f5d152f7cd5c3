"""Session: one pipelined TCP connection to one Pegasus server address.

Requests carry increasing seqids and replies are matched back by seqid, so any number of
greenlets share one connection. A connection has no greenlet of its own: its non-blocking
socket is read by a callback of the event loop, which decodes the replies and hands each to
the :class:`Inbox` its request named (the waiting op resumes at once, with no hand-off through
another greenlet), and a :class:`~loadgen.pegasus.writer.HubWriter` sends every frame queued
in one turn of the loop in one ``send`` (writes coalesce under load). One op may wait on
several attempts at once. Socket and gevent failures become :mod:`loadgen.errors` exceptions
here and nowhere else.

How the session behaves when things go wrong is the policy's, as :class:`SessionRules`: fail
pending calls on a lost connection or let them wait; how soon to redial; whether a send waits
for a connection until its deadline; read-timeout and time-out-window detectors. Uses gevent's
own sockets, so it works in plain gevent code and under monkey-patching alike. One session
belongs to one gevent hub (thread).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.hub import Waiter

from ..errors import NotConnected, OpTimeout, PegasusError, ProtocolError, SessionReset
from . import codec
from .addr import ip_family, parse_addr
from .writer import HubWriter

log = logging.getLogger(__name__)

#: Longest a dial may take; callers stop waiting for it at their own deadline anyway.
CONNECT_TIMEOUT_S = 3.0
#: Go's hasRecentUnresponsiveWrite: a read timeout counts only with a write this recent.
UNRESPONSIVE_MIN_WRITE_WINDOW_S = 10.0
_MAX_SEQID = 0x7FFFFFFF


@dataclass(frozen=True)
class SessionRules:
    """What a session does on connection trouble (set by the policy; defaults: fail fast)."""

    #: A lost connection fails every waiting call at once with ERR_SESSION_RESET (else they
    #: wait for their own deadline, as the Go client's do).
    fail_pending_on_loss: bool = True
    #: A dial requested within this long of the previous dial first waits this long (Go's
    #: ``kDialInterval`` rule); 0: never.
    dial_throttle_s: float = 0.0
    #: A send on an unconnected session waits for a connection until its deadline (Go's
    #: ``waitUntilSessionReady``) instead of failing as soon as the dial fails.
    wait_for_connection: bool = False
    #: After ``n`` failed dials in a row the next waits ``redial_backoff(n)`` seconds.
    redial_backoff: Callable[[int], float] | None = None
    #: No data read for this long while a write happened recently: ``on_unresponsive``.
    read_timeout_s: float | None = None
    #: Calls that did nothing but time out for this long reset the session (Java's
    #: ``session_reset_time_window_secs``).
    timeout_reset_window_s: float | None = None
    #: A send dials when it finds no connection. False: only the session's first send does;
    #: after that only :meth:`Session.redial` dials (pypegasus reconnects a replica only when
    #: a meta answer names it), and a send waits for a connection until its deadline.
    dial_on_demand: bool = True


class Inbox:
    """Where the replies to one op's attempts arrive, as ``(call, reply or error)`` items.

    :meth:`put` and :meth:`wake` run in the hub (loop callbacks, timers, event links, the
    connections' read callbacks).
    """

    __slots__ = ("_items", "_waiter", "_loop")

    def __init__(self):
        self._items: deque = deque()
        self._waiter: Waiter | None = None
        self._loop = gevent.get_hub().loop

    def put(self, item: tuple[Call, Any]) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None   # wake(), inlined: once per reply
        if waiter is not None:
            waiter.switch(None)

    def wake(self, *_: Any) -> None:
        """Wake the greenlet waiting in :meth:`get` (it then finds no item)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.switch(None)

    def get(self, timeout_s: float, wake_on: Iterable[Event] = ()) -> tuple[Call, Any] | None:
        """The next item; None after ``timeout_s`` or when an event of ``wake_on`` is set."""
        if self._items:
            return self._items.popleft()
        if timeout_s <= 0:
            return None
        waiter = self._waiter = Waiter()
        timer = self._loop.timer(timeout_s)
        timer.start(self.wake)
        for event in wake_on:
            event.rawlink(self.wake)
        try:
            waiter.get()
        finally:
            timer.close()
            self._waiter = None
            for event in wake_on:
                event.unlink(self.wake)
        return self._items.popleft() if self._items else None


class _Connection:
    """One TCP connection: its non-blocking socket, the read watcher whose callback decodes
    the replies, the writer, and (with ``read_timeout_s``) the silence timer."""

    __slots__ = ("last_read", "lost", "reader", "sock", "splitter", "timer", "writer")

    def __init__(self, sock):
        self.sock = sock
        self.lost: SessionReset | None = None
        self.reader = None   # the loop's io watcher (readable)
        self.writer: HubWriter | None = None
        self.splitter = codec.FrameSplitter("response")
        self.timer = None
        self.last_read = 0.0


class Call:
    """A request handed to a connection; its reply (or failure) goes to its inbox."""

    __slots__ = ("_conn", "_session", "inbox", "seqid", "tag")

    def __init__(self, session: Session, conn: _Connection, seqid: int, inbox: Inbox, tag: Any):
        self._session, self._conn, self.seqid, self.inbox, self.tag = session, conn, seqid, inbox, tag

    @property
    def connection_lost(self) -> SessionReset | None:
        """Why the call's connection died, if it did (a call may sit through that)."""
        return self._conn.lost

    def cancel(self) -> None:
        """Stop waiting for the reply: one that still arrives is dropped."""
        self._session._pending.pop(self.seqid, None)


class _Dial:
    """One dial, possibly scheduled for later; ``done`` is set when it has finished."""

    __slots__ = ("done", "greenlet", "starts_at")

    def __init__(self, starts_at: float):
        self.starts_at = starts_at
        self.done = Event()
        self.greenlet: gevent.Greenlet | None = None


class Session:
    """A pipelined connection to ``addr`` (``host:port``), dialed on first use."""

    def __init__(self, addr: str, rules: SessionRules = SessionRules(), *,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 on_unresponsive: Callable[[Session], None] | None = None):
        self.addr = addr
        self.rules = rules
        self._watch_writes = rules.read_timeout_s is not None  # Go's read-timeout rule needs them
        self._target = parse_addr(addr)
        # An IP literal is dialed directly: no trip through the resolver's thread pool per dial.
        self._family = ip_family(self._target[0])
        self._connect_timeout_s = connect_timeout_s
        self._on_unresponsive = on_unresponsive
        self._loop = gevent.get_hub().loop
        self._seqid = 0
        self._pending: dict[int, Call] = {}
        self._conn: _Connection | None = None
        self._connected = Event()
        self._dial: _Dial | None = None
        self._last_dial_end = float("-inf")
        self._failed_dials = 0
        self._dial_error = ""
        self._last_write = float("-inf")
        self._first_timeout: float | None = None
        self._closed = False
        #: Dials started so far (tests and reports count reconnects with it).
        self.dials = 0
        #: Monotonic instants the server was last heard from (any data read) and a connection
        #: was last lost (-inf: never).
        self.last_heard = self.lost_at = float("-inf")

    @property
    def connected(self) -> bool:
        """Whether a live connection exists right now."""
        return self._conn is not None

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered, failed or cancelled."""
        return len(self._pending)

    def call(self, rpc_name: str, args: Any, *, deadline: float, **header: int) -> codec.ResponseFrame:
        """Send one request and wait for its reply until ``deadline`` (raises OpTimeout)."""
        inbox = Inbox()
        call = self.send(rpc_name, args, inbox=inbox, deadline=deadline, **header)
        item = inbox.get(deadline - time.monotonic())
        if item is None:
            call.cancel()
            raise OpTimeout(f"no reply from {self.addr} before the deadline",
                            last_error=call.connection_lost)
        if isinstance(item[1], PegasusError):
            raise item[1]
        return item[1]

    def send(self, rpc_name: str, args: Any, *, inbox: Inbox, deadline: float, tag: Any = None,
             app_id: int = 0, partition_index: int = 0, partition_hash: int = 0,
             client_timeout_ms: int = 0) -> Call:
        """Queue one request; its reply goes to ``inbox`` as ``(call, reply)``.

        Without a connection it dials (or joins the dial under way) and raises
        :class:`NotConnected` when none can be had: at once when the dial fails, or at
        ``deadline`` (a ``time.monotonic()`` instant) with ``wait_for_connection``.
        """
        conn = self._conn or self._connect(deadline)
        seqid = self._seqid = self._seqid + 1 if self._seqid < _MAX_SEQID else 1
        frame = codec.encode_request(rpc_name, seqid, args, app_id=app_id,
                                     partition_index=partition_index,
                                     client_timeout_ms=client_timeout_ms,
                                     partition_hash=partition_hash)
        call = self._pending[seqid] = Call(self, conn, seqid, inbox, tag)
        if self._watch_writes:
            self._last_write = time.monotonic()
        conn.writer.send(frame)
        return call

    def redial(self) -> Event:
        """Make sure a dial is under way or scheduled (by the rules); set when it has ended.

        Already connected: an event that is set.
        """
        if self._conn is not None or self._closed:
            done = Event()
            done.set()
            return done
        return (self._dial or self._start_dial()).done

    def note_timeout(self) -> bool:
        """A call on this session got no reply in time. True if that reset the session:
        every call since the first of an unbroken run of time-outs ``timeout_reset_window_s``
        ago timed out (Java's ReplicaSession rule); waiting calls then fail at once."""
        window = self.rules.timeout_reset_window_s
        if window is None:
            return False
        now = time.monotonic()
        if self._first_timeout is None:
            self._first_timeout = now
            return False
        if now - self._first_timeout < window:
            return False
        self._first_timeout = None
        if self._conn is not None:
            self._lose(self._conn, f"{self.addr}: closed after {window:g} s of nothing but "
                                   "time-outs")
        return True

    def close(self) -> None:
        """Drop the connection and fail every waiting call with ``ERR_SESSION_RESET``."""
        self._closed = True
        dial, self._dial = self._dial, None
        if dial is not None:
            if dial.greenlet is not None:
                dial.greenlet.kill(block=False)
            dial.done.set()  # a dialer killed before it ran never reaches its own finally
        if self._conn is not None:
            self._lose(self._conn, f"{self.addr}: session closed")
        self._fail_pending(f"{self.addr}: session closed")
        self._connected.set()  # wakes callers waiting to send; they find the session closed

    # ------------------------------------------------------------------ connecting

    def _connect(self, deadline: float) -> _Connection:
        if self._closed:
            raise NotConnected(f"{self.addr}: session closed")
        dial = self._dial
        if dial is None and (self.rules.dial_on_demand or self._last_dial_end == float("-inf")):
            dial = self._start_dial()
        if dial is None:  # no dial on demand: wait (as if sent into the dead connection)
            self._connected.wait(max(0.0, deadline - time.monotonic()))
            reason = "connection lost; this client redials only when the meta names the node"
        elif self.rules.wait_for_connection:
            # Like Go's waitUntilSessionReady: wait for a connection until the deadline,
            # even past a failed dial.
            self._connected.wait(max(0.0, deadline - time.monotonic()))
            reason = self._dial_error or "connect did not finish before the deadline"
        elif dial.starts_at > time.monotonic():
            raise NotConnected(f"{self.addr}: redial backing off after {self._failed_dials} "
                               f"failed dials ({self._dial_error})")
        else:
            finished = dial.done.wait(max(0.0, deadline - time.monotonic()))
            reason = self._dial_error if finished else "connect did not finish before the deadline"
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise NotConnected(f"{self.addr}: session closed")
        raise NotConnected(f"{self.addr}: {reason or 'not connected'}")

    def _start_dial(self) -> _Dial:
        now = time.monotonic()
        starts_at = now
        throttle = self.rules.dial_throttle_s
        if throttle and now - self._last_dial_end < throttle:
            starts_at = now + throttle  # Go's dial(): sleep kDialInterval, then dial
        backoff = self.rules.redial_backoff
        if backoff is not None and self._failed_dials:
            starts_at = max(starts_at, self._last_dial_end + backoff(self._failed_dials))
        dial = self._dial = _Dial(starts_at)
        dial.greenlet = gevent.spawn(self._run_dial, dial)
        return dial

    def _run_dial(self, dial: _Dial) -> None:
        try:
            delay = dial.starts_at - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            self.dials += 1
            try:
                sock = self._open_socket()
            except OSError as exc:
                self._dial_error = f"connect failed: {exc}"
                self._failed_dials += 1
            else:
                self._failed_dials = 0
                if self._closed:
                    sock.close()
                else:
                    self._attach(sock)
            self._last_dial_end = time.monotonic()
        finally:
            if self._dial is dial:
                self._dial = None
            dial.done.set()

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
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _attach(self, gsock) -> None:
        # The dialed gevent socket's descriptor, as a plain non-blocking socket: the event
        # loop's read callback and the HubWriter use it directly (no greenlet per connection).
        family = gsock.family
        sock = socket.socket(family, socket.SOCK_STREAM, 0, gsock.detach())
        sock.setblocking(False)
        conn = _Connection(sock)
        conn.writer = HubWriter(
            sock, lambda exc: self._lose(conn, f"{self.addr}: send failed, connection dropped: {exc!r}"))
        conn.reader = self._loop.io(sock.fileno(), 1)  # 1: readable
        conn.reader.start(self._on_readable, conn)
        if self.rules.read_timeout_s is not None:
            conn.last_read = time.monotonic()
            self._arm_read_timer(conn, self.rules.read_timeout_s)
        self._conn, self._dial_error = conn, ""
        self._connected.set()

    # ------------------------------------------------------------------ reading

    def _on_readable(self, conn: _Connection) -> None:
        """The read callback (in the event loop): read what has arrived, decode the replies,
        then hand each to its call's inbox; any failure drops the connection."""
        if conn.lost is not None:
            return
        try:
            data = conn.sock.recv(codec.RECV_BYTES)
        except BlockingIOError:  # woken with nothing to read after all
            return
        except OSError as exc:
            self._lose(conn, f"{self.addr}: connection lost: {exc}")
            return
        if not data:
            self._lose(conn, f"{self.addr}: connection closed by the server")
            return
        self._first_timeout = None  # Java: any reply shows the server is alive
        self.last_heard = now = time.monotonic()
        if conn.timer is not None:
            conn.last_read = now
        # Every reply of this read is matched before any is handed over, as a reader
        # greenlet did: an op resumed by one hand-off (which may close the session) runs
        # only after all of them are decoded.
        handed: list[tuple[Call, codec.ResponseFrame]] = []
        pending = self._pending
        failure = None
        try:
            for frame in conn.splitter.feed(data):
                reply = codec.decode_response(frame)
                call = pending.pop(reply.seqid, None)
                if call is not None:  # else the call was cancelled
                    handed.append((call, reply))
        except ProtocolError as exc:
            # A reply we cannot parse leaves the stream unusable: drop the connection.
            failure = f"unreadable reply, connection dropped: {exc}"
        except Exception as exc:  # a bug here must not leave a connection nobody reads
            log.exception("%s: reader failed", self.addr)
            failure = f"reader failed, connection dropped: {exc!r}"
        for item in handed:   # Inbox.put, inlined: once per reply
            inbox = item[0].inbox
            inbox._items.append(item)
            waiter, inbox._waiter = inbox._waiter, None
            if waiter is not None:
                waiter.switch(None)
        if failure is not None:
            self._lose(conn, f"{self.addr}: {failure}")

    def _arm_read_timer(self, conn: _Connection, delay_s: float) -> None:
        conn.timer = self._loop.timer(delay_s)
        conn.timer.start(self._read_timer_fired, conn)

    def _read_timer_fired(self, conn: _Connection) -> None:
        """``read_timeout_s`` without data (since the last data, or the last time-out), as a
        socket read timeout measures it: Go's read loop checks for an unresponsive server."""
        conn.timer.close()
        conn.timer = None
        if conn.lost is not None:
            return
        timeout_s = self.rules.read_timeout_s
        now = time.monotonic()
        silent_s = now - conn.last_read
        if silent_s >= timeout_s:
            conn.last_read = now
            gevent.spawn(self._read_timed_out)  # a handler may block: not in the event loop
            self._arm_read_timer(conn, timeout_s)
        else:
            self._arm_read_timer(conn, timeout_s - silent_s)

    def _read_timed_out(self) -> None:
        """Go's loopForResponse: a read timeout with a recent write means "unresponsive"."""
        window = max(self.rules.read_timeout_s / 2, UNRESPONSIVE_MIN_WRITE_WINDOW_S)
        if self._on_unresponsive is not None and time.monotonic() - self._last_write < window:
            try:
                self._on_unresponsive(self)
            except Exception:  # a listener bug must not end the reader
                log.exception("%s: unresponsive handler failed", self.addr)

    def _lose(self, conn: _Connection, reason: str) -> None:
        """Forget a dead connection (once) and apply the loss rule to waiting calls."""
        if conn.lost is not None:
            return
        conn.lost = SessionReset(reason)
        self.lost_at = time.monotonic()
        if self._conn is conn:
            self._conn = None
            self._connected.clear()
        conn.reader.close()  # before the socket: the loop must not watch a closed descriptor
        if conn.timer is not None:
            conn.timer.close()
            conn.timer = None
        conn.writer.close()
        try:
            conn.sock.close()
        except OSError:
            pass
        if self.rules.fail_pending_on_loss:
            self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        calls = list(self._pending.values())
        self._pending.clear()  # in place: the reader loop holds this dict
        for call in calls:
            self._loop.run_callback(call.inbox.put, (call, SessionReset(reason)))
