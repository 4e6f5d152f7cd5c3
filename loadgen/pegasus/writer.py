"""Frame writers: every frame queued on a connection since its last send goes out in one send.

Two shapes of the same idea. :class:`FrameWriter` (the onebox's servers and peers) is a
greenlet per connection: frames queue while a ``sendall`` is in progress, so under load writes
coalesce into large sends with no timer and no lock; an idle connection sends each frame as
soon as it is queued. :class:`HubWriter` (the client's sessions) has no greenlet: the first
frame of a turn of the event loop is sent at once on the non-blocking socket, from the
greenlet that queues it; a frame queued after it in the same turn schedules one flush in the
event loop, run after the current greenlet yields, so the rest of the turn's frames go out in
one ``send``; a send the kernel cannot take whole waits for the socket to be writable. A lone
put then costs one system call and neither a greenlet switch nor a loop callback on its way
out.
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
        except Exception as exc:
            _failed(self, exc)


def _failed(writer: FrameWriter | HubWriter, exc: Exception) -> None:
    """A send failed. An OSError means the peer is gone, anything else is a bug; either way
    the stream is unusable: report it once, never hang (called in the ``except`` block)."""
    if not isinstance(exc, OSError):
        log.exception("frame writer failed")
    if not writer.closed:
        writer.closed = True
        writer._on_error(exc)


class HubWriter:
    """The outbound side of one non-blocking socket, flushed from the event loop (see the
    module docstring); ``on_error`` runs once if a send fails, in the event loop."""

    __slots__ = ("_loop", "_on_error", "_out", "_scheduled", "_sent_in", "_sock", "_watcher",
                 "closed")

    def __init__(self, sock, on_error: Callable[[Exception], None]):
        self._sock = sock
        self._on_error = on_error
        self._loop = gevent.get_hub().loop
        self._out: list[bytes] = []   # first, the part of a send the kernel did not take yet
        self._scheduled = False   # a flush is queued in the loop
        self._sent_in = -1        # the loop turn of the last frame sent at once
        self._watcher = None      # waiting for the socket to be writable
        self.closed = False

    def send(self, frame: bytes) -> None:
        """Queue one frame; frames queued after :meth:`close` are dropped."""
        if self.closed:
            return
        if not self._out and not self._scheduled and self._watcher is None \
                and self._loop.iteration != self._sent_in:
            # The first frame of a loop turn goes out at once, from the calling greenlet:
            # a lone put pays no loop callback. Later ones in the same turn coalesce.
            self._sent_in = self._loop.iteration
            try:
                sent = self._sock.send(frame)
            except OSError:   # the flush, in the event loop, meets it again and reports it
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        self._out.append(frame)
        if not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self._flush)

    def close(self) -> None:
        """Stop the writer; frames not sent yet are dropped."""
        self.closed = True
        self._out = []
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    @property
    def dead(self) -> bool:
        """Whether the writer has stopped (closed, or a send failed)."""
        return self.closed

    def _flush(self) -> None:
        """Send what is queued (in the event loop): at once, or once the socket is writable."""
        self._scheduled = False
        if self.closed or self._watcher is not None:  # the writable callback flushes again
            return
        out, self._out = self._out, []
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except Exception as exc:
            _failed(self, exc)
            return
        if sent < len(data):  # the kernel's buffer is full: the rest goes first when writable
            self._out.insert(0, data[sent:])
            self._watcher = self._loop.io(self._sock.fileno(), 2)  # 2: writable
            self._watcher.start(self._on_writable)

    def _on_writable(self) -> None:
        self._watcher.close()
        self._watcher = None
        self._flush()
