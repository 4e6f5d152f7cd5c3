"""Checkpoint transfer: a member behind the primary's checkpoint learns it in pieces.

A snapshot can outgrow one frame (the codec refuses a frame over 64 MiB, every time it is
sent), so the primary sends it as prepares of at most ``learn_chunk_bytes`` of snapshot each,
in order, on the member's ordinary stream: bytes ``[offset, offset + len(piece))`` of a
snapshot of ``total`` bytes at ``decree``. The member accumulates the pieces of one
(ballot, decree, total) and installs the checkpoint only once the last one arrived; until
then its position stays before the checkpoint, so nothing counts it as caught up.

Each piece is answered with the bytes the member holds of that checkpoint. If that is not the
end of the piece (the member lost the thread: a new ballot, a restart, a piece refused), the
primary resumes where the member is, on a new stream. Within one ballot the primary is one
process whose checkpoint bytes at a decree never change, so pieces of one key always fit
together; a piece at offset 0 always starts over, and a new ballot drops what was gathered.
"""

from __future__ import annotations

import logging
from typing import Protocol

from .gen.onebox import ttypes as ob

log = logging.getLogger(__name__)


class Stream(Protocol):
    """The primary's view of one member's stream (``replica.Member``), as far as it matters here."""

    stream: int
    ckpt_decree: int    # the checkpoint being sent
    ckpt_offset: int    # its next byte to send

    def rewind(self, next_decree: int, ckpt_offset: int = 0) -> None: ...


def fill_piece(req: ob.prepare_request, m: Stream, decree: int, snapshot: bytes, chunk: int) -> int:
    """Put ``m``'s next piece of the checkpoint at ``decree`` into ``req``; the offset it ends
    at. A new checkpoint (the primary checkpointed since) or a finished one starts at byte 0."""
    if m.ckpt_decree != decree or m.ckpt_offset >= len(snapshot):
        m.ckpt_decree, m.ckpt_offset = decree, 0
    offset = m.ckpt_offset
    piece = snapshot[offset:offset + chunk]
    m.ckpt_offset = end = offset + len(piece)
    req.checkpoint_decree, req.checkpoint = decree, piece
    req.checkpoint_offset, req.checkpoint_total = offset, len(snapshot)
    if offset == 0:
        log.info("partition %d: sending the checkpoint at decree %d (%d bytes) in pieces of "
                 "up to %d bytes", req.pidx, decree, len(snapshot), chunk)
    return end


def piece_pending(m: Stream, stream: int, decree: int, end: int, result: ob.prepare_response) -> bool:
    """Whether the member answering a piece (ending at ``end``) of the checkpoint at ``decree``
    has not installed it yet. If it does not hold the piece (it lost the thread), ``m`` is
    rewound to resume where the member is, unless a later rewind already took over."""
    if result.position >= decree:
        return False
    held = result.checkpoint_received
    if held != end and stream == m.stream:
        m.rewind(result.position + 1, held if m.ckpt_decree == decree else 0)
    return True


class Assembly:
    """The member's side: the pieces gathered so far of one checkpoint."""

    __slots__ = ("_buf", "_key")

    def __init__(self):
        self._key: tuple[int, int, int] | None = None  # (ballot, decree, total)
        self._buf = bytearray()

    def clear(self) -> None:
        self._key, self._buf = None, bytearray()

    def take(self, req: ob.prepare_request) -> bytes | None:
        """Take the piece ``req`` carries; the whole snapshot once complete, else None."""
        key, offset = (req.ballot, req.checkpoint_decree, req.checkpoint_total), req.checkpoint_offset
        if offset == 0:
            self._key, self._buf = key, bytearray()
        if key != self._key or offset != len(self._buf) or offset + len(req.checkpoint) > key[2]:
            return None  # out of order or not ours: the reply says where we are
        self._buf += req.checkpoint
        if len(self._buf) < key[2]:
            return None
        snapshot = bytes(self._buf)
        self.clear()
        return snapshot

    def received(self, req: ob.prepare_request) -> int:
        """Bytes held of the checkpoint ``req`` is a piece of: where the primary resumes."""
        key = (req.ballot, req.checkpoint_decree, req.checkpoint_total)
        return len(self._buf) if self._key == key else 0
