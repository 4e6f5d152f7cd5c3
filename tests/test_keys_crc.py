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


def test_key_and_hash_is_make_key_and_partition_hash():
    rng = random.Random(5)
    for _ in range(500):
        h, s = rng.randbytes(rng.choice([0, 1, 16, 40, 100])), rng.randbytes(rng.randint(0, 5))
        assert keys.key_and_hash(h, s) == (keys.make_key(h, s), keys.partition_hash(h, s))
    with pytest.raises(ValueError, match="limit"):
        keys.key_and_hash(b"h" * (keys.MAX_HASH_KEY_BYTES + 1), b"s")
