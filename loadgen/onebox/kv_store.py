"""The replicated state machine: a hash_key -> sort_key -> (value, expiry) store and its mutations.

A mutation is what the primary logs and prepares: a list of puts and deletes, packed as
``u32 count`` then per item ``u8 kind, u32 expire_ts, u32 key_len, key, u32 value_len, value``
(keys are Pegasus key blobs). Expiry is ``expire_ts_seconds`` since 2016-01-01 UTC, 0 = never.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

from ..pegasus.keys import make_key, split_key

#: Pegasus's epoch for expire_ts_seconds (2016-01-01 00:00:00 UTC).
EPOCH_2016 = 1451606400
PUT, DELETE = 1, 0
_COUNT = struct.Struct(">I")
_ITEM = struct.Struct(">BII")
_LEN = struct.Struct(">I")

Item = tuple[int, int, bytes, bytes]  # (kind, expire_ts, key blob, value)


def now_ts() -> int:
    """Seconds since Pegasus's epoch."""
    return int(time.time()) - EPOCH_2016


def encode_mutation(items: list[Item]) -> bytes:
    parts = [_COUNT.pack(len(items))]
    for kind, expire_ts, key, value in items:
        parts += (_ITEM.pack(kind, expire_ts & 0xFFFFFFFF, len(key)), key, _LEN.pack(len(value)), value)
    return b"".join(parts)


def decode_mutation(data: bytes) -> Iterator[Item]:
    (count,), off = _COUNT.unpack_from(data), 4
    for _ in range(count):
        kind, expire_ts, klen = _ITEM.unpack_from(data, off)
        off += 9
        key = data[off:off + klen]
        off += klen
        (vlen,) = _LEN.unpack_from(data, off)
        off += 4
        yield kind, expire_ts, key, data[off:off + vlen]
        off += vlen


def _alive(expire_ts: int, now: int) -> bool:
    return expire_ts == 0 or expire_ts > now


class KVStore:
    """Applied state of one partition."""

    __slots__ = ("rows",)

    def __init__(self):
        self.rows: dict[bytes, dict[bytes, tuple[bytes, int]]] = {}

    # ---------------------------------------------------------------- writes
    def apply(self, mutation: bytes) -> int:
        """Apply ``mutation``; the number of live cells its deletes removed."""
        rows, removed, now = self.rows, 0, None
        for kind, expire_ts, key, value in decode_mutation(mutation):
            hash_key, sort_key = split_key(key)
            if kind == PUT:
                row = rows.get(hash_key)
                if row is None:
                    row = rows[hash_key] = {}
                row[sort_key] = (value, expire_ts)
            else:
                row = rows.get(hash_key)
                if row is not None:
                    cell = row.pop(sort_key, None)
                    if cell is not None:
                        now = now_ts() if now is None else now
                        removed += _alive(cell[1], now)
                    if not row:
                        del rows[hash_key]
        return removed

    # ---------------------------------------------------------------- reads
    def get(self, key: bytes) -> tuple[bytes, int] | None:
        """(value, expire_ts) of a live key, else None."""
        hash_key, sort_key = split_key(key)
        cell = self.rows.get(hash_key, {}).get(sort_key)
        if cell is None or not _alive(cell[1], now_ts()):
            return None
        return cell

    def live_row(self, hash_key: bytes) -> list[tuple[bytes, bytes, int]]:
        """Live (sort_key, value, expire_ts) of one hash_key, sorted by sort_key."""
        now = now_ts()
        row = self.rows.get(hash_key, {})
        return [(sk, v, e) for sk, (v, e) in sorted(row.items()) if _alive(e, now)]

    # ---------------------------------------------------------------- snapshots
    def snapshot(self) -> bytes:
        """The whole state as one mutation of puts (expired cells are left out)."""
        now = now_ts()
        items = [(PUT, e, make_key(hk, sk), v)
                 for hk, row in self.rows.items() for sk, (v, e) in row.items() if _alive(e, now)]
        return encode_mutation(items)

    @classmethod
    def from_snapshot(cls, data: bytes) -> KVStore:
        store = cls()
        if data:
            store.apply(data)
        return store
