"""Framed RPC server: a gevent StreamServer that cuts requests with the codec and pipelines replies.

Each connection has a reader (the handler greenlet) and a :class:`FrameWriter` that coalesces
every reply queued since its last send into one ``sendall``. A handler either returns the reply frame at
once or keeps the :class:`Connection` and calls :meth:`Connection.send` later (2PC writes).
Garbage, oversized or truncated input closes only that connection, with one log line.
:attr:`Connection.read_at` is the instant the requests being handled were read from the socket:
their enqueue instant (as in rDSN), so a request that waited in the kernel's buffer while the
node was stopped starts its queueing time only once the node reads it.
Backpressure: while more than ``MAX_QUEUED_REPLY_BYTES`` of replies wait to be sent (a client
that pipelines requests and does not read), the connection's reader stops reading, so the
client's own socket buffers fill up instead of this server's memory.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from gevent.event import Event
from gevent.server import StreamServer

from ..errors import ProtocolError
from ..pegasus import codec
from ..pegasus.writer import FrameWriter

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024
#: Reply bytes queued on one connection beyond which its requests are no longer read.
MAX_QUEUED_REPLY_BYTES = 8 * 1024 * 1024
#: Handler: (connection, request) -> reply frame now, or None if it replies later itself.
Handler = Callable[["Connection", codec.RequestFrame], bytes | None]


class _CountingSocket:
    """What the FrameWriter sends through: counts each sent batch off the queued bytes."""

    __slots__ = ("_conn", "_sock")

    def __init__(self, sock: socket.socket, conn: Connection):
        self._sock = sock
        self._conn = conn

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self._conn._sent(len(data))


class Connection:
    """One client connection's outbound side: replies are queued and sent in batches."""

    __slots__ = ("_complained", "_drained", "_writer", "closed", "peer", "queued_bytes", "read_at",
                 "sock")

    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.peer = peer
        self.closed = False
        #: monotonic instant the current batch of requests was read from the socket
        self.read_at = time.monotonic()
        self.queued_bytes = 0  # reply bytes queued and not yet handed to the kernel
        self._drained = Event()
        self._drained.set()
        self._complained = False
        self._writer = FrameWriter(_CountingSocket(sock, self), lambda exc: self.close())

    def send(self, frame: bytes) -> None:
        """Queue one reply frame; dropped silently once the connection is closed."""
        if self.closed:
            return
        self.queued_bytes += len(frame)
        if self.queued_bytes > MAX_QUEUED_REPLY_BYTES:
            self._drained.clear()
        self._writer.send(frame)

    def _sent(self, n: int) -> None:
        self.queued_bytes -= n
        if self.queued_bytes <= MAX_QUEUED_REPLY_BYTES:
            self._drained.set()

    def wait_drained(self) -> None:
        """Block this connection's reader while too many reply bytes wait to be sent."""
        self._drained.wait()

    def complain(self, server: str, what: str) -> None:
        """Log a rejected request: the first one of this connection only, so a client that
        pipelines bad requests cannot flood the node's log."""
        if not self._complained:
            self._complained = True
            log.warning("%s: %s from %s (further ones on this connection not logged)", server,
                        what, self.peer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        self.queued_bytes = 0
        self._drained.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FrameServer(StreamServer):
    """Serves Pegasus-framed requests on ``127.0.0.1:port`` through one ``handler``."""

    def __init__(self, host: str, port: int, handler: Handler, name: str):
        super().__init__((host, port), backlog=1024)
        self.handler = handler
        self.name = name

    def handle(self, sock: socket.socket, address: tuple) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock, f"{address[0]}:{address[1]}")
        splitter = codec.FrameSplitter("request")
        try:
            while not conn.closed:
                data = sock.recv(RECV_BYTES)
                conn.read_at = time.monotonic()  # one enqueue instant per batch read
                if not data:
                    if splitter.pending_bytes:
                        log.warning("%s: %s closed mid-frame (%d bytes pending)", self.name,
                                    conn.peer, splitter.pending_bytes)
                    return
                for frame in splitter.feed(data):
                    if conn.queued_bytes > MAX_QUEUED_REPLY_BYTES:
                        conn.wait_drained()  # per frame: one recv may hold thousands of gets
                        if conn.closed:
                            return
                    reply = self.handler(conn, codec.decode_request(frame))
                    if reply is not None:
                        conn.send(reply)
        except ProtocolError as exc:
            log.warning("%s: closing %s after a bad frame: %s", self.name, conn.peer, exc)
        except OSError:
            pass  # the peer reset the connection: nothing to answer
        except Exception:  # a handler bug must cost one connection, never the server
            log.exception("%s: closing %s after a handler failure", self.name, conn.peer)
        finally:
            conn.close()
