"""Pegasus key schema and partition hashing (PROTOCOL.md §4).

A stored key is ``u16 BE len(hash_key) + hash_key + sort_key``; the partition is
``crc64(hash_key) mod partition_count`` with the CRC taken as an unsigned 64-bit value
(reflected, polynomial 0x9a6c9329ac4bc9b5, init and final XOR all ones). This is not
CRC-64/Jones, so no library variant is used.
"""

from __future__ import annotations

import struct
import sys

_POLY = 0x9A6C9329AC4BC9B5
_MASK = 0xFFFFFFFFFFFFFFFF
MAX_HASH_KEY_BYTES = 0xFFFE


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()
_LITTLE_ENDIAN = sys.byteorder == "little"
#: The same CRC two bytes at a step (65,536 entries, built on first use): a hash key takes
#: half the interpreted steps.
_TABLE16: tuple[int, ...] | None = None


def _make_table16() -> tuple[int, ...]:
    t = _TABLE
    # two byte steps: low byte lo, then high byte hi, from a CRC whose low 16 bits were XORed in
    return tuple(t[(t[i & 0xFF] ^ (i >> 8)) & 0xFF] ^ (t[i & 0xFF] >> 8) for i in range(65536))


def crc64(data: bytes) -> int:
    """Unsigned CRC-64 as Pegasus computes it."""
    global _TABLE16
    table = _TABLE16
    if table is None:
        table = _TABLE16 = _make_table16()
    crc = _MASK
    n = len(data)
    # bytes 2k and 2k+1 as one little-endian 16-bit word, XORed into the CRC's low bits
    if _LITTLE_ENDIAN:
        for word in memoryview(data)[:n & ~1].cast("H"):
            crc = table[(crc ^ word) & 0xFFFF] ^ (crc >> 16)
    else:
        for k in range(0, n - 1, 2):
            crc = table[(crc ^ data[k] ^ (data[k + 1] << 8)) & 0xFFFF] ^ (crc >> 16)
    if n & 1:
        crc = _TABLE[(crc ^ data[n - 1]) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK


def to_bytes(value: bytes | str) -> bytes:
    """Accept ``str`` (encoded as UTF-8) or bytes-like values."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def make_key(hash_key: bytes, sort_key: bytes) -> bytes:
    """Build the stored key blob."""
    if len(hash_key) > MAX_HASH_KEY_BYTES:
        raise ValueError(f"hash_key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_BYTES}")
    return struct.pack(">H", len(hash_key)) + hash_key + sort_key


def split_key(key: bytes) -> tuple[bytes, bytes]:
    """Inverse of :func:`make_key`: ``(hash_key, sort_key)``."""
    if len(key) < 2:
        raise ValueError("key blob shorter than its 2-byte length prefix")
    n = struct.unpack_from(">H", key)[0]
    if 2 + n > len(key):
        raise ValueError(f"key blob claims a {n}-byte hash_key but holds {len(key) - 2} bytes")
    return key[2:2 + n], key[2 + n:]


def partition_hash(hash_key: bytes, sort_key: bytes) -> int:
    """Partition hash of a key: crc64 of its hash_key, or of its sort_key if that is empty."""
    return crc64(hash_key if hash_key else sort_key)


def key_hash(key: bytes) -> int:
    """Partition hash of a stored key blob (see :func:`partition_hash`)."""
    return partition_hash(*split_key(key))


def check_partition_count(partition_count: int) -> None:
    """Raise ValueError unless ``partition_count`` is a power of two (as Pegasus requires)."""
    if partition_count < 1 or partition_count & (partition_count - 1):
        raise ValueError(f"partition_count must be a power of two, got {partition_count}")


def partition_index(hash_value: int, partition_count: int) -> int:
    """Partition of an unsigned hash, the one way every part of pegbench computes it.

    ``partition_count`` is checked once, where a config is accepted
    (:func:`check_partition_count`), not on every op.
    """
    return hash_value % partition_count
