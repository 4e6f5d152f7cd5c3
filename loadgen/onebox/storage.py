"""A partition's durable log: append-only segments of (ballot, decree, mutation) plus checkpoints.

Files in the partition dir: ``checkpoint`` (decree + a KV snapshot, replaced atomically) and
``log.<seq>`` segments. A record is ``u32 len, u32 crc32, payload`` with payload
``u8 type, i64 ballot, i64 decree, mutation``; ``COMMIT`` records carry the commit point.
No fsync: a SIGKILLed process keeps the page cache, and power cuts are out of scope. Replay
stops at a torn or corrupt record and truncates the segment there (kill -9 mid-write).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY, COMMIT = 1, 2
_HEAD = struct.Struct(">II")
_BODY = struct.Struct(">Bqq")
_CKPT = struct.Struct(">8sq")
_CKPT_MAGIC = b"OBXCKPT1"
Entry = tuple[int, int, bytes, bytes]  # (ballot, decree, mutation, raw record)


def _record(kind: int, ballot: int, decree: int, mutation: bytes = b"") -> bytes:
    payload = _BODY.pack(kind, ballot, decree) + mutation
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def entry_record(ballot: int, decree: int, mutation: bytes) -> bytes:
    return _record(ENTRY, ballot, decree, mutation)


def commit_record(decree: int) -> bytes:
    return _record(COMMIT, 0, decree)


@dataclass
class Replayed:
    """What a partition dir holds: checkpoint, the entries after it, the commit point."""

    checkpoint_decree: int = 0
    snapshot: bytes = b""
    entries: list[Entry] = field(default_factory=list)
    committed: int = 0


Record = tuple[int, int, int, bytes, bytes]  # (type, ballot, decree, mutation, raw record)


def parse_records(data: bytes) -> tuple[list[Record], int]:
    """Whole, intact records at the start of ``data`` and the byte length they span."""
    out, off = [], 0
    while off + 8 <= len(data):
        size, crc = _HEAD.unpack_from(data, off)
        end = off + 8 + size
        payload = data[off + 8:end]
        if size < _BODY.size or len(payload) != size or zlib.crc32(payload) != crc:
            break
        kind, ballot, decree = _BODY.unpack_from(payload)
        out.append((kind, ballot, decree, payload[_BODY.size:], data[off:end]))
        off = end
    return out, off


class PartitionLog:
    """Append-only log + checkpoint of one partition replica."""

    def __init__(self, path: Path):
        self.dir = path
        self.dir.mkdir(parents=True, exist_ok=True)
        self._file = None
        self._seq = 0

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("log.*"), key=lambda p: int(p.suffix[1:]))

    def replay(self) -> Replayed:
        """Rebuild the partition's state; later records for a decree replace earlier ones."""
        state = Replayed()
        ckpt = self.dir / "checkpoint"
        if ckpt.exists():
            state.checkpoint_decree, state.snapshot = self._load_checkpoint(ckpt)
            state.committed = state.checkpoint_decree
        base = state.checkpoint_decree
        entries = state.entries
        segments = self._segments()
        for seg in segments:
            data = seg.read_bytes()
            records, good = parse_records(data)
            if good != len(data):
                log.warning("%s: dropping a torn tail of %d bytes", seg, len(data) - good)
                os.truncate(seg, good)
            for kind, ballot, decree, mutation, raw in records:
                if kind == COMMIT:
                    state.committed = max(state.committed, decree)
                elif decree > base:
                    if decree > base + len(entries) + 1:
                        log.warning("%s: decree %d leaves a gap; ignored", seg, decree)
                        continue
                    del entries[decree - base - 1:]  # a newer primary's record wins
                    entries.append((ballot, decree, mutation, raw))
        state.committed = min(state.committed, base + len(entries))
        self._seq = int(segments[-1].suffix[1:]) if segments else 0
        self._file = open(self.dir / f"log.{self._seq}", "ab")  # noqa: SIM115 - the open segment
        return state

    @staticmethod
    def _load_checkpoint(path: Path) -> tuple[int, bytes]:
        data = path.read_bytes()
        magic, decree = _CKPT.unpack_from(data)
        if magic != _CKPT_MAGIC:
            raise ValueError(f"{path}: not a onebox checkpoint")
        return decree, data[_CKPT.size:]

    def write(self, records: bytes) -> None:
        """Append records and hand them to the OS (survives SIGKILL)."""
        self._file.write(records)
        self._file.flush()

    def checkpoint(self, decree: int, snapshot: bytes, tail: list[Entry]) -> None:
        """Persist the state at ``decree``, restart the log with ``tail`` and drop older segments."""
        tmp = self.dir / "checkpoint.tmp"
        tmp.write_bytes(_CKPT.pack(_CKPT_MAGIC, decree) + snapshot)
        os.replace(tmp, self.dir / "checkpoint")
        old = self._segments()
        self._file.close()
        self._seq += 1
        self._file = open(self.dir / f"log.{self._seq}", "ab")  # noqa: SIM115 - the open segment
        self.write(b"".join(e[3] for e in tail) + commit_record(decree))
        for seg in old:
            seg.unlink()

    def read_checkpoint(self) -> tuple[int, bytes]:
        ckpt = self.dir / "checkpoint"
        return self._load_checkpoint(ckpt) if ckpt.exists() else (0, b"")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
