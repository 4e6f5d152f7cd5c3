"""Pipelined node-to-node RPC client: one connection per peer, coalesced sends, callback replies.

Calls are queued on a :class:`FrameWriter` that sends them in batches; a reader greenlet matches
replies by seqid. A broken connection fails every pending call at once and the next call
dials again. Timeouts are enforced by one sweeper greenlet per peer, not a timer per call.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore

from ..errors import PegasusError, ProtocolError, SessionReset
from ..pegasus import codec
from ..pegasus.writer import FrameWriter

log = logging.getLogger(__name__)

#: Reply callback: (reply or None, error or None).
Callback = Callable[[codec.ResponseFrame | None, PegasusError | None], None]
CONNECT_TIMEOUT_S = 1.0
SWEEP_INTERVAL_S = 0.02


class Peer:
    """A pipelined connection to one node, re-dialled on demand."""

    def __init__(self, addr: str):
        self.addr = addr
        host, _, port = addr.rpartition(":")
        self._target = (host, int(port))
        self._sock: socket.socket | None = None
        self._seq = 0
        self._pending: dict[int, tuple[float, Callback]] = {}
        self._writer: FrameWriter | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._closed = False
        self._dialing = Semaphore()

    def call_async(self, rpc_name: str, args: Any, callback: Callback, timeout_s: float,
                   app_id: int = 0, partition_index: int = 0) -> None:
        """Send one request; ``callback`` runs exactly once with the reply or the error,
        possibly before this returns (a closed peer or a failed dial calls it at once)."""
        if self._closed:
            callback(None, SessionReset(f"peer {self.addr} closed"))
            return
        if self._sock is None and not self._connect():
            callback(None, SessionReset(f"cannot connect to {self.addr}"))
            return
        self._seq = (self._seq + 1) & 0x7FFFFFFF
        seq = self._seq
        self._pending[seq] = (time.monotonic() + timeout_s, callback)
        self._writer.send(codec.encode_request(rpc_name, seq, args, app_id=app_id,
                                               partition_index=partition_index,
                                               client_timeout_ms=int(timeout_s * 1000)))

    def _connect(self) -> bool:
        with self._dialing:  # concurrent callers share one dial
            return self._sock is not None or self._dial()

    def _dial(self) -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # numeric address: no resolver
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(self._target)
        except OSError:
            sock.close()
            return False
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._writer = FrameWriter(sock, lambda exc: self._broken(sock, f"send failed: {exc}"))
        self._greenlets = [gevent.spawn(self._read_loop, sock), gevent.spawn(self._sweep_loop, sock)]
        return True

    def _read_loop(self, sock: socket.socket) -> None:
        splitter = codec.FrameSplitter("response")
        try:
            while self._sock is sock:
                data = sock.recv(256 * 1024)
                if not data:
                    self._broken(sock, "closed by the peer")
                    return
                for frame in splitter.feed(data):
                    reply = codec.decode_response(frame)
                    entry = self._pending.pop(reply.seqid, None)
                    if entry is not None:
                        self._run(entry[1], reply, None)
        except (OSError, ProtocolError) as exc:
            self._broken(sock, str(exc))
        except Exception as exc:  # noqa: BLE001 - an undecodable reply: fail the calls, not hang them
            log.warning("peer %s: bad reply (%r); reconnecting", self.addr, exc)
            self._broken(sock, f"bad reply: {exc!r}")

    def _sweep_loop(self, sock: socket.socket) -> None:
        while self._sock is sock:
            gevent.sleep(SWEEP_INTERVAL_S)
            now = time.monotonic()
            expired = [seq for seq, (deadline, _) in self._pending.items() if deadline <= now]
            for seq in expired:
                _, callback = self._pending.pop(seq)
                self._run(callback, None, PegasusError("ERR_TIMEOUT", f"no reply from {self.addr}"))

    def _broken(self, sock: socket.socket, why: str) -> None:
        if self._sock is not sock:
            return
        self._sock = None
        self._writer.close()
        sock.close()
        pending, self._pending = self._pending, {}
        err = SessionReset(f"{self.addr}: {why}")
        for _, callback in pending.values():
            self._run(callback, None, err)

    @staticmethod
    def _run(callback: Callback, reply, err) -> None:
        try:
            callback(reply, err)
        except Exception:  # one bad callback must not break the connection for the others
            log.exception("peer callback failed")

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            self._broken(self._sock, "closed locally")


class PeerPool:
    """One :class:`Peer` per address, created on first use."""

    def __init__(self):
        self._peers: dict[str, Peer] = {}

    def get(self, addr: str) -> Peer:
        peer = self._peers.get(addr)
        if peer is None:
            peer = self._peers[addr] = Peer(addr)
        return peer

    def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
