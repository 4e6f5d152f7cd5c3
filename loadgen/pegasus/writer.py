"""Frame writer: one greenlet per connection sends every frame queued since its last send at once.

Frames queue while a ``sendall`` is in progress, so under load writes coalesce into large
sends with no timer and no lock; an idle connection sends each frame as soon as it is queued.
Shared by the client's sessions and the onebox's servers and peers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
from gevent.event import Event

log = logging.getLogger(__name__)


class FrameWriter:
    """The outbound side of one connection; ``on_error`` runs once if a send fails."""

    __slots__ = ("_greenlet", "_on_error", "_out", "_sock", "_wake", "closed")

    def __init__(self, sock, on_error: Callable[[Exception], None]):
        self._sock = sock
        self._on_error = on_error
        self._out: list[bytes] = []
        self._wake = Event()
        self.closed = False
        self._greenlet = gevent.spawn(self._run)

    def send(self, frame: bytes) -> None:
        """Queue one frame; frames queued after :meth:`close` are dropped."""
        if self.closed:
            return
        out = self._out
        out.append(frame)
        if len(out) == 1:  # the writer is idle, or will swap in a fresh queue before it waits
            self._wake.set()

    def close(self) -> None:
        """Stop the writer; frames not sent yet are dropped."""
        self.closed = True
        self._out = []
        self._wake.set()

    @property
    def dead(self) -> bool:
        """Whether the writer greenlet has finished."""
        return self._greenlet.dead

    def _run(self) -> None:
        try:
            while True:  # for the life of the connection: close() or a failed send ends it
                self._wake.wait()
                self._wake.clear()
                if self.closed:
                    return
                out = self._out
                if not out:
                    continue
                self._out = []
                self._sock.sendall(out[0] if len(out) == 1 else b"".join(out))
        except Exception as exc:  # OSError: the peer is gone; anything else is a bug. Either
            if not isinstance(exc, OSError):  # way the stream is unusable: report, never hang.
                log.exception("frame writer failed")
            if not self.closed:
                self.closed = True
                self._on_error(exc)
