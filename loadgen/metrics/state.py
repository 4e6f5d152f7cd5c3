"""Recorder state as plain data: what the analysis reads, workers ship and processes merge.

``encode_state`` gives JSON-able data (histograms as hdrh's compressed base64 text, series
and counters as numbers); ``decode_state`` reverses it; ``merge_states`` combines the
states of several processes losslessly: counts add, histograms add, first-success times take
the earliest. Every process must have been told of the same fault instants; where one lacks
10 ms detail for a second the other has, the merged second keeps its exact 1 s totals only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from . import hdr
from .series import FINE_BUCKET_S, FINE_PER_S, FINE_WINDOW_S, PartitionTimeline, Series

FORMAT = "pegbench-recorder-state"
VERSION = 1
KINDS = ("service", "response")


@dataclass(frozen=True)
class PolicyState:
    """Everything one policy's ops left behind (see ``Recorder``)."""

    ops: int = 0
    attempts: int = 0                                   # attempts made, summed over ops
    outcomes: Mapping[str, int] = field(default_factory=dict)          # ok / fail / unknown
    errors: Mapping[str, int] = field(default_factory=dict)            # op errors by name
    attempt_outcomes: Mapping[str, int] = field(default_factory=dict)
    attempt_errors: Mapping[str, int] = field(default_factory=dict)
    meta_queries: int = 0
    meta_failed: int = 0
    replica_queries: int = 0                            # a replica probe's reads
    clamped: int = 0                                    # latencies pulled into 1 µs … 1 h
    #: (op, "service" | "response") -> µs histogram
    histograms: Mapping[tuple[str, str], HdrHistogram] = field(default_factory=dict)
    #: (op, "service" | "response", global phase) -> µs histogram of the ops intended in
    #: that phase; only (op, phase) pairs that had ops
    phase_histograms: Mapping[tuple[str, str, str], HdrHistogram] = field(default_factory=dict)
    #: all ops: ok, fail, unknown, attempts, meta queries per bucket
    series: Series = field(default_factory=lambda: Series(width=5))
    #: second -> sparse coarse response-time histogram {coarse index: count}
    latency: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    errors_by_second: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    partitions: Mapping[tuple[str, int], PartitionTimeline] = field(default_factory=dict)
    #: arrivals dropped because the user's in-flight cap was full: partition -> count
    #: (-1: the table was not open yet) and second of the intended start -> count
    dropped: Mapping[int, int] = field(default_factory=dict)
    dropped_by_second: Mapping[int, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        """Arrivals dropped over all partitions."""
        return sum(self.dropped.values())


@dataclass(frozen=True)
class RecorderState:
    """All policies, plus the fault and heal instants the recorder was told of."""

    faults: tuple[tuple[float, tuple[int, ...] | None], ...] = ()
    heals: tuple[tuple[float, tuple[int, ...] | None], ...] = ()
    policies: Mapping[str, PolicyState] = field(default_factory=dict)

    def tables(self) -> set[str]:
        """Every table some policy wrote to."""
        return {table for p in self.policies.values() for table, _ in p.partitions}


# ----------------------------------------------------------------------- encode


def _encode_series(series: Series) -> dict[str, Any]:
    fine = {}
    width = series.width
    for sec, counts in series.fine.items():
        rows = []
        for k in range(FINE_PER_S):
            row = counts[k * width:(k + 1) * width]
            if any(row):
                rows.append([k, *row])
        fine[str(sec)] = rows
    return {"width": width, "coarse": {str(s): list(v) for s, v in series.coarse.items()},
            "fine": fine}


def _encode_policy(p: PolicyState) -> dict[str, Any]:
    histograms: dict[str, dict[str, str]] = {}
    for (op, kind), hist in p.histograms.items():
        histograms.setdefault(op, {})[kind] = hdr.encode(hist)
    phase_histograms: dict[str, dict[str, dict[str, str]]] = {}
    for (op, kind, phase), hist in p.phase_histograms.items():
        phase_histograms.setdefault(op, {}).setdefault(kind, {})[phase] = hdr.encode(hist)
    return {
        "ops": p.ops, "attempts": p.attempts, "outcomes": dict(p.outcomes),
        "errors": dict(p.errors), "attempt_outcomes": dict(p.attempt_outcomes),
        "attempt_errors": dict(p.attempt_errors), "meta_queries": p.meta_queries,
        "meta_failed": p.meta_failed, "replica_queries": p.replica_queries,
        "clamped": p.clamped, "histograms": histograms, "phase_histograms": phase_histograms,
        "series": _encode_series(p.series),
        "latency": {str(s): [[k, c] for k, c in sorted(h.items())] for s, h in p.latency.items()},
        "errors_by_second": {str(s): dict(e) for s, e in p.errors_by_second.items()},
        "partitions": {f"{table}:{pidx}": {"series": _encode_series(t.series),
                                           "first_ok": [[i, e] for i, e in t.first_ok.items()]}
                       for (table, pidx), t in p.partitions.items()},
        "dropped": {str(k): n for k, n in p.dropped.items()},
        "dropped_by_second": {str(s): n for s, n in p.dropped_by_second.items()},
    }


def encode_state(state: RecorderState) -> dict[str, Any]:
    """JSON-able form of ``state`` (see the README, "Reference", "Recorder state")."""
    return {
        "format": FORMAT, "version": VERSION,
        "fine_bucket_s": FINE_BUCKET_S, "fine_window_s": FINE_WINDOW_S,
        "faults": [[t, None if ps is None else list(ps)] for t, ps in state.faults],
        "heals": [[t, None if ps is None else list(ps)] for t, ps in state.heals],
        "policies": {name: _encode_policy(p) for name, p in state.policies.items()},
    }


# ----------------------------------------------------------------------- decode


def _decode_series(data: Mapping[str, Any]) -> Series:
    width = int(data["width"])
    fine = {}
    for sec, rows in data["fine"].items():
        counts = [0] * (FINE_PER_S * width)
        for k, *row in rows:
            counts[k * width:(k + 1) * width] = row
        fine[int(sec)] = tuple(counts)
    return Series(width=width, coarse={int(s): tuple(v) for s, v in data["coarse"].items()},
                  fine=fine)


def _decode_policy(data: Mapping[str, Any]) -> PolicyState:
    histograms = {(op, kind): hdr.decode(text)
                  for op, kinds in data["histograms"].items() for kind, text in kinds.items()}
    # absent in documents from before per-phase histograms: none
    phase_histograms = {(op, kind, phase): hdr.decode(text)
                        for op, kinds in data.get("phase_histograms", {}).items()
                        for kind, by_phase in kinds.items()
                        for phase, text in by_phase.items()}
    partitions = {}
    for key, t in data["partitions"].items():
        table, _, pidx = key.rpartition(":")
        partitions[(table, int(pidx))] = PartitionTimeline(
            series=_decode_series(t["series"]), first_ok={i: e for i, e in t["first_ok"]})
    return PolicyState(
        ops=data["ops"], attempts=data["attempts"], outcomes=dict(data["outcomes"]),
        errors=dict(data["errors"]), attempt_outcomes=dict(data["attempt_outcomes"]),
        attempt_errors=dict(data["attempt_errors"]), meta_queries=data["meta_queries"],
        meta_failed=data["meta_failed"], replica_queries=data.get("replica_queries", 0),
        clamped=data["clamped"], histograms=histograms, phase_histograms=phase_histograms,
        series=_decode_series(data["series"]),
        latency={int(s): {k: c for k, c in rows} for s, rows in data["latency"].items()},
        errors_by_second={int(s): dict(e) for s, e in data["errors_by_second"].items()},
        partitions=partitions,
        # absent in documents from before the open-loop arrivals: nothing was dropped
        dropped={int(k): n for k, n in data.get("dropped", {}).items()},
        dropped_by_second={int(s): n for s, n in data.get("dropped_by_second", {}).items()})


def decode_state(data: Mapping[str, Any]) -> RecorderState:
    """The state :func:`encode_state` encoded; ValueError on another format or version."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError(f"not a {FORMAT} v{VERSION} document: "
                         f"format={data.get('format')!r} version={data.get('version')!r}")
    return RecorderState(
        faults=tuple((t, None if ps is None else tuple(ps)) for t, ps in data["faults"]),
        heals=tuple((t, None if ps is None else tuple(ps)) for t, ps in data["heals"]),
        policies={name: _decode_policy(p) for name, p in data["policies"].items()})


# ----------------------------------------------------------------------- merge


def _add_maps(a: Mapping[Any, int], b: Mapping[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


def _add_tuples(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b))


def _merge_series(a: Series, b: Series) -> Series:
    if a.width != b.width:
        raise ValueError(f"cannot merge series of {a.width} and {b.width} slots")
    coarse = dict(a.coarse)
    for sec, counts in b.coarse.items():
        coarse[sec] = _add_tuples(coarse[sec], counts) if sec in coarse else counts
    fine = {}
    for sec in set(a.fine) | set(b.fine):
        fa, fb = a.fine.get(sec), b.fine.get(sec)
        if fa is not None and fb is not None:
            fine[sec] = _add_tuples(fa, fb)
        elif fa is not None and sec not in b.coarse:
            fine[sec] = fa
        elif fb is not None and sec not in a.coarse:
            fine[sec] = fb
        # else one side has ops in this second without 10 ms detail: keep 1 s totals only
    return Series(width=a.width, coarse=coarse, fine=fine)


def _merge_first_ok(a: Mapping[float, float | None],
                    b: Mapping[float, float | None]) -> dict[float, float | None]:
    out = dict(a)
    for t, end in b.items():
        have = out.get(t)
        out[t] = end if have is None else have if end is None else min(have, end)
    return out


def _merge_histograms(a: Mapping[Any, HdrHistogram],
                      b: Mapping[Any, HdrHistogram]) -> dict[Any, HdrHistogram]:
    """Histograms added key by key (keys: (op, kind) or (op, kind, phase))."""
    out = {}
    for key in set(a) | set(b):
        # summed count by count (not HdrHistogram.add, which loses the minimum)
        counts = hdr.new_counts()
        for part in (a.get(key), b.get(key)):
            if part is not None:
                hdr.add_counts(counts, part)
        out[key] = hdr.to_histogram(counts)
    return out


def _merge_policy(a: PolicyState, b: PolicyState) -> PolicyState:
    partitions = dict(a.partitions)
    for key, t in b.partitions.items():
        have = partitions.get(key)
        partitions[key] = t if have is None else PartitionTimeline(
            series=_merge_series(have.series, t.series),
            first_ok=_merge_first_ok(have.first_ok, t.first_ok))
    latency = {s: dict(h) for s, h in a.latency.items()}
    for sec, h in b.latency.items():
        latency[sec] = _add_maps(latency.get(sec, {}), h)
    errors_by_second = {s: dict(e) for s, e in a.errors_by_second.items()}
    for sec, e in b.errors_by_second.items():
        errors_by_second[sec] = _add_maps(errors_by_second.get(sec, {}), e)
    return PolicyState(
        ops=a.ops + b.ops, attempts=a.attempts + b.attempts,
        outcomes=_add_maps(a.outcomes, b.outcomes), errors=_add_maps(a.errors, b.errors),
        attempt_outcomes=_add_maps(a.attempt_outcomes, b.attempt_outcomes),
        attempt_errors=_add_maps(a.attempt_errors, b.attempt_errors),
        meta_queries=a.meta_queries + b.meta_queries, meta_failed=a.meta_failed + b.meta_failed,
        replica_queries=a.replica_queries + b.replica_queries,
        clamped=a.clamped + b.clamped, histograms=_merge_histograms(a.histograms, b.histograms),
        phase_histograms=_merge_histograms(a.phase_histograms, b.phase_histograms),
        series=_merge_series(a.series, b.series), latency=latency,
        errors_by_second=errors_by_second, partitions=partitions,
        dropped=_add_maps(a.dropped, b.dropped),
        dropped_by_second=_add_maps(a.dropped_by_second, b.dropped_by_second))


def merge_states(states: Iterable[RecorderState]) -> RecorderState:
    """One state holding the sum of ``states`` (e.g. one per Locust worker)."""
    faults: dict[tuple[float, tuple[int, ...] | None], None] = {}
    heals: dict[tuple[float, tuple[int, ...] | None], None] = {}
    policies: dict[str, PolicyState] = {}
    for state in states:
        faults.update(dict.fromkeys(state.faults))
        heals.update(dict.fromkeys(state.heals))
        for name, p in state.policies.items():
            policies[name] = _merge_policy(policies[name], p) if name in policies else p
    return RecorderState(faults=tuple(sorted(faults, key=lambda f: f[0])),
                         heals=tuple(sorted(heals, key=lambda f: f[0])), policies=policies)
