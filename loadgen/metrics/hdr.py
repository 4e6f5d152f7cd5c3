"""HDR histograms: pegbench's one configuration, a fast counting path, and conversions.

Every latency and TTR histogram covers 1 µs … 1 h with 3 significant digits, so any two of
them add losslessly. The recorder's hot path does not call ``HdrHistogram.record_value``
(a chain of method calls per value); it increments a plain list laid out exactly like
hdrh's counts array, using the index arithmetic below, and converts to an
``HdrHistogram`` only when asked (wrk2 keeps per-thread histograms the same way and merges
them at the end). A test pins the index arithmetic to hdrh's own.

A second, coarse layout (16 sub-buckets per half-octave, ≤ 6.25 % error) keeps one small
response-time histogram per second for the per-second p50/p99 series of ``timeline.json``.
"""

from __future__ import annotations

import ctypes
from array import array
from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000          # one hour
SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 99.0, 99.9)    # reported as p50, p99, p999


def new_histogram() -> HdrHistogram:
    """An empty histogram in pegbench's configuration (µs, 1 µs … 1 h, 3 digits)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


_REFERENCE = new_histogram()
COUNTS_LEN = _REFERENCE.counts_len
#: ``counts_index(v) = (b << HALF_MAGNITUDE) + (v >> b)`` with ``b = (v | MASK).bit_length() - SHIFT``
#: (hdrh's ``_counts_index_for`` with unit magnitude 0, i.e. a lowest value of 1).
HALF_MAGNITUDE = _REFERENCE.sub_bucket_half_count_magnitude
MASK = _REFERENCE.sub_bucket_mask
SHIFT = HALF_MAGNITUDE + 1
assert _REFERENCE.unit_magnitude == 0, "the fast index assumes LOWEST_US == 1"
assert ctypes.sizeof(_REFERENCE.counts) == array("Q").itemsize * COUNTS_LEN, \
    "to_histogram copies 64-bit counts byte for byte"

#: The coarse per-second layout: the same arithmetic with 16 sub-buckets per half-octave.
COARSE_HALF_MAGNITUDE = 4
COARSE_MASK = (1 << (COARSE_HALF_MAGNITUDE + 1)) - 1
COARSE_SHIFT = COARSE_HALF_MAGNITUDE + 1


def clamp_us(value: int) -> int:
    """``value`` pulled into [LOWEST_US, HIGHEST_US] (callers count the clamped ones)."""
    return LOWEST_US if value < LOWEST_US else HIGHEST_US if value > HIGHEST_US else value


def counts_index(value: int) -> int:
    """Index of ``value`` (µs, within range) in an hdrh counts array of our configuration."""
    b = (value | MASK).bit_length() - SHIFT
    return (b << HALF_MAGNITUDE) + (value >> b)


def coarse_index(value: int) -> int:
    """Index of ``value`` (µs, within range) in a coarse per-second counts array."""
    b = (value | COARSE_MASK).bit_length() - COARSE_SHIFT
    return (b << COARSE_HALF_MAGNITUDE) + (value >> b)


COARSE_LEN = coarse_index(HIGHEST_US) + 1


def coarse_value(index: int) -> float:
    """Middle of the value range a coarse index stands for (µs)."""
    half = 1 << COARSE_HALF_MAGNITUDE
    b, sub = divmod(index, half)
    if b == 0:  # the first bucket spans [0, 2 * half) with unit width
        return float(index)
    b -= 1
    low = (sub + half) << b
    return low + ((1 << b) - 1) / 2


def coarse_percentiles(counts: dict[int, int], percentiles: Iterable[float]) -> dict[float, float | None]:
    """Percentiles (µs, nearest rank as hdrh computes it) of a sparse coarse histogram."""
    total = sum(counts.values())
    ranks = {p: max(int(p * total / 100 + 0.5), 1) for p in percentiles}
    out: dict[float, float | None] = {p: None for p in ranks}
    if not total:
        return out
    seen = 0
    pending = sorted(ranks.items(), key=lambda item: item[1])
    for index in sorted(counts):
        seen += counts[index]
        while pending and pending[0][1] <= seen:
            out[pending.pop(0)[0]] = coarse_value(index)
        if not pending:
            break
    return out


def new_counts() -> list[int]:
    """A zeroed counts list in the layout of :func:`counts_index`."""
    return [0] * COUNTS_LEN


def to_histogram(counts: Sequence[int]) -> HdrHistogram:
    """An ``HdrHistogram`` holding ``counts`` (a list in the :func:`counts_index` layout).

    Copied and scanned at C speed (array, memmove, byte strips): a Python loop over the
    23k counts cost ~2 ms, and a load process converts tens of them at a time."""
    hist = new_histogram()
    if len(counts) != hist.counts_len:
        raise ValueError(f"{len(counts)} counts, expected {hist.counts_len}")
    raw = array("Q", counts).tobytes()
    width = 8
    first_byte = len(raw) - len(raw.lstrip(b"\0"))
    if first_byte == len(raw):
        return hist
    ctypes.memmove(hist.counts, raw, len(raw))
    last_byte = len(raw.rstrip(b"\0")) - 1
    hist.set_internal_tacking_values(first_byte // width, last_byte // width, sum(counts))
    return hist


def add_counts(target: list[int], hist: HdrHistogram) -> None:
    """Add an ``HdrHistogram`` of our configuration into a counts list."""
    if hist.counts_len != len(target):
        raise ValueError(f"histogram has {hist.counts_len} counts, expected {len(target)} "
                         "(another HDR configuration?)")
    source = hist.counts
    for index in range(hist.counts_len):
        count = source[index]
        if count:
            target[index] += count


def encode(hist: HdrHistogram) -> str:
    """The histogram's standard compressed base64 encoding, as text."""
    return hist.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    """A histogram from :func:`encode`'s text."""
    return HdrHistogram.decode(text.encode("ascii"))


def summarize(hist: HdrHistogram) -> dict[str, int]:
    """``{count, p50, p99, p999, max}`` in the histogram's unit (µs); 0s when empty."""
    count = hist.get_total_count()
    if not count:
        return {"count": 0, "p50": 0, "p99": 0, "p999": 0, "max": 0}
    values = hist.get_percentile_to_value_dict(list(PERCENTILES))
    return {"count": count, "p50": values[50.0], "p99": values[99.0], "p999": values[99.9],
            "max": hist.get_max_value()}


def value_at_rank(hist: HdrHistogram, rank: int) -> int:
    """The value of the ``rank``-th smallest sample (1-based), as hdrh reports percentiles
    (the highest value equivalent to the sample's bucket)."""
    seen = 0
    counts = hist.counts
    for index in range(hist.counts_len):
        seen += counts[index]
        if seen >= rank:
            return hist.get_highest_equivalent_value(hist.get_value_from_index(index))
    raise ValueError(f"rank {rank} beyond the {seen} samples recorded")
