"""TTL clock: Pegasus expire timestamps count seconds from 2016-01-01 00:00:00 UTC.

An ``expire_ts_seconds`` of 0 means "never expires" (PROTOCOL.md §3).
"""

from __future__ import annotations

import time

#: Unix time of 2016-01-01 00:00:00 UTC, the origin of Pegasus expire timestamps.
EPOCH_2016_S = 1451606400


def now_ts() -> int:
    """Seconds since the Pegasus epoch, now."""
    return int(time.time()) - EPOCH_2016_S


def expire_ts(ttl_s: int, now: int | None = None) -> int:
    """Expire timestamp for a TTL in seconds; ``ttl_s <= 0`` means no expiry (0)."""
    if ttl_s <= 0:
        return 0
    return (now_ts() if now is None else now) + int(ttl_s)


def ttl_left(expire: int, now: int | None = None) -> int:
    """Seconds left before ``expire`` (never below 0); -1 when there is no expiry."""
    if not expire:
        return -1
    return max(0, expire - (now_ts() if now is None else now))


def is_expired(expire: int, now: int | None = None) -> bool:
    """Whether a value stored with ``expire`` is gone."""
    return bool(expire) and expire <= (now_ts() if now is None else now)
