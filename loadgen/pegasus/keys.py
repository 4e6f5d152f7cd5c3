"""Pegasus key schema and partition hashing (PROTOCOL.md §4).

A stored key is ``u16 BE len(hash_key) + hash_key + sort_key``; the partition is
``crc64(hash_key) mod partition_count`` with the CRC taken as an unsigned 64-bit value
(reflected, polynomial 0x9a6c9329ac4bc9b5, init and final XOR all ones). This is not
CRC-64/Jones, so no library variant is used.
"""

from __future__ import annotations

import struct

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


#: The CRC state after each whole-16-byte prefix of recent data (bounded): hash keys that
#: share one (a load-generator user's, an application's ``user:``) hash only their tail.
_PREFIX_STATES: dict[bytes, int] = {}
_PREFIX_STATES_MAX = 4096


def crc64(data: bytes) -> int:
    """Unsigned CRC-64 as Pegasus computes it."""
    table = _TABLE
    cut = len(data) & ~15
    if cut:
        head = bytes(data[:cut])
        crc = _PREFIX_STATES.get(head)
        if crc is None:
            crc = _MASK
            for b in head:
                crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
            if len(_PREFIX_STATES) >= _PREFIX_STATES_MAX:
                _PREFIX_STATES.clear()
            _PREFIX_STATES[head] = crc
        data = data[cut:]
    else:
        crc = _MASK
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
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


_KEY_LENGTH = struct.Struct(">H")


def make_key(hash_key: bytes, sort_key: bytes) -> bytes:
    """Build the stored key blob."""
    if len(hash_key) > MAX_HASH_KEY_BYTES:
        raise ValueError(f"hash_key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_BYTES}")
    return _KEY_LENGTH.pack(len(hash_key)) + hash_key + sort_key


def key_and_hash(hash_key: bytes, sort_key: bytes) -> tuple[bytes, int]:
    """``(make_key(hash_key, sort_key), partition_hash(hash_key, sort_key))`` in one call."""
    if len(hash_key) > MAX_HASH_KEY_BYTES:
        raise ValueError(f"hash_key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_BYTES}")
    return _KEY_LENGTH.pack(len(hash_key)) + hash_key + sort_key, \
        crc64(hash_key if hash_key else sort_key)


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
