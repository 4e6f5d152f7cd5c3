"""Outcome series: counts per time bucket, 10 ms near faults and 1 s elsewhere.

Ops are bucketed by intended start. While a second is recent (``RECENT_S``) its ops are
counted in an *open chunk*: one ``array`` of ``FINE_PER_S`` 10 ms buckets × the series'
slots, plus optional extra slots (the per-second response-time histogram). Older chunks are
*closed*: their sums go to the 1 s ``coarse`` totals, and the 10 ms detail is kept only when
the second lies within ``FINE_WINDOW_S`` of a fault or heal instant. Memory is therefore
bounded by the run's length and its number of faults, never by the op rate.

:class:`Series` is the frozen, plain-data view the analysis reads.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

FINE_BUCKET_S = 0.01
FINE_PER_S = 100                   # fine buckets per coarse (1 s) bucket
COARSE_BUCKET_S = 1.0
#: 10 ms detail is kept within ± this of a fault or heal instant.
FINE_WINDOW_S = 30.0
#: Every second stays open (10 ms detail) this long, so a fault announced late still finds
#: the detail of the ``FINE_WINDOW_S`` before it; it also bounds how late a fault may be
#: announced to the recorder and still get exact first-success times.
RECENT_S = 60.0

OUTCOME_SLOTS = ("ok", "fail", "unknown")
POLICY_SLOTS = OUTCOME_SLOTS + ("attempts", "meta")


def fine_index(t: float) -> int:
    """Index of the 10 ms bucket holding instant ``t`` (floor of t / 10 ms)."""
    return math.floor(t * FINE_PER_S)


class LiveSeries:
    """The recorder's mutable series (not thread-safe; one recorder per process)."""

    __slots__ = ("width", "extra", "open", "coarse", "fine", "extra_closed")

    def __init__(self, width: int, extra: int = 0):
        self.width = width              # slots per 10 ms bucket
        self.extra = extra              # extra per-second slots after the fine part
        self.open: dict[int, array] = {}        # second -> fine part + extra part
        self.coarse: dict[int, list[int]] = {}  # closed seconds: totals per slot
        self.fine: dict[int, array] = {}        # closed seconds near faults: fine part
        #: closed seconds: the extra part's non-zero slots, as (slot, count) pairs in a row
        self.extra_closed: dict[int, array] = {}

    def open_chunk(self, sec: int) -> array:
        """The open chunk of second ``sec``, created zeroed."""
        chunk = self.open[sec] = array("I", bytes(4 * (FINE_PER_S * self.width + self.extra)))
        return chunk

    def close_before(self, sec_limit: int, keep_fine: Callable[[int], bool]) -> None:
        """Close every open second before ``sec_limit``; keep 10 ms detail where asked."""
        for sec in [s for s in self.open if s < sec_limit]:
            self._close(sec, self.open.pop(sec), keep_fine(sec))

    def _close(self, sec: int, chunk: array, keep: bool) -> None:
        width, n_fine = self.width, FINE_PER_S * self.width
        totals = self.coarse.setdefault(sec, [0] * width)
        for slot in range(width):
            totals[slot] += sum(chunk[slot:n_fine:width])
        if keep:
            _add_into(self.fine, sec, chunk[:n_fine])
        if self.extra:
            # sparse: a second's response times fill a few dozen of the extra slots
            merged = _pairs_to_dict(self.extra_closed.get(sec))
            _add_dense(merged, chunk, n_fine)
            if merged:
                self.extra_closed[sec] = array("I", [x for kv in sorted(merged.items())
                                                     for x in kv])

    def view(self, keep_fine: Callable[[int], bool]) -> tuple[Series, dict[int, dict[int, int]]]:
        """A frozen copy with open seconds included, and the non-zero extra slots per second."""
        width, n_fine = self.width, FINE_PER_S * self.width
        coarse = {sec: list(v) for sec, v in self.coarse.items()}
        fine = {sec: array("I", v) for sec, v in self.fine.items()}
        extra = {sec: _pairs_to_dict(v) for sec, v in self.extra_closed.items()}
        for sec, chunk in self.open.items():
            totals = coarse.setdefault(sec, [0] * width)
            for slot in range(width):
                totals[slot] += sum(chunk[slot:n_fine:width])
            if keep_fine(sec):
                _add_into(fine, sec, chunk[:n_fine])
            if self.extra:
                _add_dense(extra.setdefault(sec, {}), chunk, n_fine)
        series = Series(width=width, coarse={s: tuple(v) for s, v in coarse.items()},
                        fine={s: tuple(v) for s, v in fine.items()})
        return series, {s: e for s, e in extra.items() if e}


def _pairs_to_dict(pairs: array | None) -> dict[int, int]:
    return {} if pairs is None else dict(zip(pairs[0::2], pairs[1::2]))


def _add_dense(target: dict[int, int], chunk: array, base: int) -> None:
    """Add ``chunk[base:]``'s non-zero slots into ``target`` (keys relative to ``base``)."""
    for i, count in enumerate(chunk[base:]):
        if count:
            target[i] = target.get(i, 0) + count


def _add_into(target: dict[int, array], sec: int, part: array) -> None:
    have = target.get(sec)
    if have is None:
        target[sec] = array("I", part)
    else:
        for i, count in enumerate(part):
            if count:
                have[i] += count


@dataclass(frozen=True)
class Series:
    """Counts per bucket by intended start: exact 1 s totals, and 10 ms detail near faults.

    ``coarse[sec]`` holds the totals per slot of second ``sec`` (all ops of that second);
    ``fine[sec]``, when present, splits the same ops into ``FINE_PER_S`` buckets
    (bucket-major: bucket k's slot j is at ``k * width + j``), so both always agree.
    """

    width: int
    coarse: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    fine: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def buckets(self, t_from: float = -math.inf,
                t_to: float = math.inf) -> Iterator[tuple[float, float, tuple[int, ...]]]:
        """``(start, width_s, counts)`` of the finest buckets whose start is in [t_from, t_to),
        in time order; empty buckets are skipped."""
        width, seconds = self.width, self._seconds
        first = bisect_left(seconds, math.floor(t_from)) if t_from > -math.inf else 0
        for sec in seconds[first:]:
            if sec >= t_to:
                break
            fine = self.fine.get(sec)
            if fine is None:
                if t_from <= sec and any(self.coarse[sec]):
                    yield float(sec), COARSE_BUCKET_S, self.coarse[sec]
                continue
            for k in range(FINE_PER_S):
                counts = fine[k * width:(k + 1) * width]
                if not any(counts):
                    continue
                start = (sec * FINE_PER_S + k) / FINE_PER_S
                if t_from <= start < t_to:
                    yield start, FINE_BUCKET_S, counts

    @cached_property
    def _seconds(self) -> list[int]:
        return sorted(self.coarse)


@dataclass(frozen=True)
class PartitionTimeline:
    """One (policy, table, partition)'s write outcomes and exact first-success times.

    ``first_ok[t]`` is the ``end`` of the first ok write on the partition handed to the client
    at or after the fault instant ``t`` (None: none seen; an ack already on its way at ``t``
    does not count); the recorder keeps it exact for every instant it was told of
    (``Recorder.fault_at``).
    """

    series: Series = field(default_factory=lambda: Series(width=len(OUTCOME_SLOTS)))
    first_ok: Mapping[float, float | None] = field(default_factory=dict)

    #: how far an instant may be from a registered one and still match (float round trips)
    MATCH_TOLERANCE_S = 1e-6

    def first_ok_end_after(self, t: float) -> float | None:
        """End of the first ok write handed over at or after fault instant ``t``; None if none.

        Raises LookupError when the recorder was never told of a fault at ``t``.
        """
        if t in self.first_ok:
            return self.first_ok[t]
        for instant, end in self.first_ok.items():
            if abs(instant - t) <= self.MATCH_TOLERANCE_S:
                return end
        raise LookupError(f"no fault instant {t!r} was registered with the recorder "
                          "(Recorder.fault_at): its first-success time is unknown")
