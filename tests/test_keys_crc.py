"""crc64 two bytes at a step (either byte order) equals the byte-at-a-time definition."""

from __future__ import annotations

import random

import pytest

from loadgen.pegasus import keys

pytestmark = pytest.mark.unit


def bytewise(data: bytes) -> int:
    """PROTOCOL.md §4's CRC one byte at a time, as keys.crc64 computed it first."""
    crc = keys._MASK
    for b in data:
        crc = keys._TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ keys._MASK


@pytest.mark.parametrize("little_endian", [True, False], ids=["word-view", "byte-pairs"])
def test_crc64_matches_the_bytewise_definition(monkeypatch, little_endian):
    monkeypatch.setattr(keys, "_LITTLE_ENDIAN", little_endian)
    rng = random.Random(64)
    for n in list(range(0, 70)) + [255, 256, 1000, 0xFFFE]:
        data = rng.randbytes(n)
        assert keys.crc64(data) == bytewise(data), n
    assert keys.crc64(bytearray(b"user1")) == bytewise(b"user1")
