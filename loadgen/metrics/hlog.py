"""HdrHistogram interval logs (``.hlog``): one file per policy × op × kind, and
:func:`write_tagged` for one interval of several tagged histograms (``ttr.hlog``).

hdrh's Python log writer cannot tag histograms, hence one file per histogram (its reader
does read ``Tag=<tag>,`` lines, which :func:`write_tagged` prefixes). Each call to
``IntervalLogs.write`` appends, to every file, what was recorded since the previous call
(cumulative histograms in, interval histograms out). Values are µs; the max column is in ms.
Read back with ``hdrh.log.HistogramLogReader(path, hdr.new_histogram())``.
"""

from __future__ import annotations

import operator
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from . import hdr

MAX_VALUE_UNIT_RATIO = 1000.0          # µs -> ms in the max column
Key = tuple[str, str, str]             # (policy, op, "service" | "response")


def log_name(policy: str, op: str, kind: str) -> str:
    """File name of one histogram's log (unsafe characters become ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{policy}.{op}.{kind}")
    return f"{safe}.hlog"


def _start_time_line(start_wall_s: float) -> str:
    # hdrh's output_start_time is unusable (it misreads ms as s, then crashes)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start_wall_s))
    return f"#[StartTime: {start_wall_s:f} (seconds since epoch), {stamp}]\n"


def write_tagged(path: str | os.PathLike[str], histograms: Mapping[str, HdrHistogram], *,
                 start_s: float, end_s: float, start_wall_s: float | None = None,
                 comment: str = "", max_value_unit_ratio: float = MAX_VALUE_UNIT_RATIO) -> Path:
    """Write one interval [start_s, end_s) (s after the log's start) holding every histogram
    of ``histograms``, each on a line tagged with its key (no commas or spaces: they end a
    tag), to a new log at ``path``. Read back with ``HistogramLogReader``: ``get_tag()``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        writer = HistogramLogWriter(f)
        writer.output_log_format_version()
        if comment:
            writer.output_comment(comment)
        if start_wall_s is not None:
            f.write(_start_time_line(start_wall_s))
        writer.output_legend()
        for tag, hist in histograms.items():
            if re.search(r"[,\s]", tag):
                raise ValueError(f"tag {tag!r}: no commas or white space")
            # the writer falls back to these stamps (ms) when start_s is 0
            hist.set_start_time_stamp(start_s * 1000)
            hist.set_end_time_stamp(end_s * 1000)
            f.write(f"Tag={tag},")
            writer.output_interval_histogram(hist, start_s, end_s, max_value_unit_ratio)
    return path


class IntervalLogs:
    """Interval logs under ``directory``; times are monotonic seconds, logged relative to
    ``t0``. ``start_wall_s`` (the wall-clock time at ``t0``) goes into each file's
    ``StartTime`` header, so other HdrHistogram tools can place the intervals."""

    def __init__(self, directory: str | os.PathLike[str], *, t0: float,
                 start_wall_s: float | None = None):
        self.directory = Path(directory)
        self.t0 = t0
        self.start_wall_s = start_wall_s
        self._files: dict[Key, tuple[TextIO, HistogramLogWriter]] = {}
        self._previous: dict[Key, list[int]] = {}

    @property
    def paths(self) -> dict[Key, Path]:
        """Every log written so far."""
        return {key: self.directory / log_name(*key) for key in self._files}

    def _writer(self, key: Key) -> tuple[TextIO, HistogramLogWriter]:
        entry = self._files.get(key)
        if entry is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            f = open(self.directory / log_name(*key), "w", encoding="utf-8")  # noqa: SIM115
            writer = HistogramLogWriter(f)
            writer.output_log_format_version()
            writer.output_comment(f"[pegbench policy={key[0]} op={key[1]} kind={key[2]} unit=us]")
            if self.start_wall_s is not None:
                f.write(_start_time_line(self.start_wall_s))
            writer.output_legend()
            entry = self._files[key] = (f, writer)
        return entry

    def restart(self) -> None:
        """Forget what was logged: call it with ``Recorder.reset`` (end of warm-up), so the
        next interval is the whole of the fresh histograms."""
        self._previous.clear()

    def write(self, histograms: Mapping[Key, HdrHistogram | Sequence[int]], t_from: float,
              t_to: float, *, pause: Callable[[], object] | None = None) -> None:
        """Append the interval [t_from, t_to): each histogram (an ``HdrHistogram`` or its
        counts in hdrh's layout, e.g. ``Recorder.histogram_counts()``) minus what was logged
        before. A histogram that shrank (a reset without :meth:`restart`) starts over from
        zero. ``pause`` runs between histograms: a cooperative caller yields there, so a
        load process's hub is never held for the whole set (~1 ms each)."""
        for n, (key, hist) in enumerate(sorted(histograms.items())):
            if n and pause is not None:
                pause()
            counts = hist.counts[:hist.counts_len] if isinstance(hist, HdrHistogram) else list(hist)
            previous = self._previous.get(key)
            delta = counts
            if previous is not None:
                diff = list(map(operator.sub, counts, previous))   # C speed, unlike a comprehension
                if min(diff, default=0) >= 0:
                    delta = diff
            self._previous[key] = counts
            interval = hdr.to_histogram(delta)
            start_s, end_s = t_from - self.t0, t_to - self.t0
            # the writer falls back to these stamps (ms) when start_s is 0
            interval.set_start_time_stamp(start_s * 1000)
            interval.set_end_time_stamp(end_s * 1000)
            f, writer = self._writer(key)
            writer.output_interval_histogram(interval, start_s, end_s, MAX_VALUE_UNIT_RATIO)
            f.flush()

    def close(self) -> None:
        """Close every file."""
        for f, _ in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> IntervalLogs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
