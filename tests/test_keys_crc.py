"""crc64 with its prefix-state memo equals the byte-at-a-time definition."""

from __future__ import annotations

import random

import pytest

from loadgen.pegasus import keys

pytestmark = pytest.mark.unit


def bytewise(data: bytes) -> int:
    """PROTOCOL.md §4's CRC one byte at a time, with no memo."""
    crc = keys._MASK
    for b in data:
        crc = keys._TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ keys._MASK


def test_crc64_matches_the_bytewise_definition_with_and_without_a_shared_prefix(monkeypatch):
    monkeypatch.setattr(keys, "_PREFIX_STATES", {})
    monkeypatch.setattr(keys, "_PREFIX_STATES_MAX", 50)   # the memo fills and is cleared
    rng = random.Random(64)
    prefix = b"20261205-132808-abcdef/failover/local/0/"
    for n in list(range(0, 70)) + [255, 256, 1000]:
        data = rng.randbytes(n)
        assert keys.crc64(data) == bytewise(data), n
        for i in range(0, 1000, 7):
            key = prefix[:n % len(prefix)] + b"%d" % i
            assert keys.crc64(key) == bytewise(key) == keys.crc64(key), key
    assert len(keys._PREFIX_STATES) <= 50
    assert keys.crc64(bytearray(b"user1" * 9)) == bytewise(b"user1" * 9)
    assert keys.crc64(memoryview(b"user1" * 9)) == bytewise(b"user1" * 9)
