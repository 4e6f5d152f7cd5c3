"""``results.json`` and ``timeline.json``: built from recorder state and fault events, written
atomically. Shapes: DESIGN.md "Outputs" (results.json's typed tree: :mod:`.results`); every
field: the README, "Reference".
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import hdr
from .analysis import durability as durability_block
from .analysis import missed_for, new_primary_block, policy_results
from .events import RECOVERY_S, FaultEvent, phases
from .results import FACT_KEYS, FaultResult, Results, RunFacts, RunInfo, TTRResult
from .series import COARSE_BUCKET_S, FINE_BUCKET_S, OUTCOME_SLOTS
from .slo import settle
from .state import PolicyState, RecorderState
from .ttr import TTR_WINDOW_S, PartitionTTR, event_ttrs, resolve_table

TIMELINE_FORMAT, TIMELINE_VERSION = "pegbench-timeline", 1
#: A run folder's files: its results, its timelines, its fault records (one JSON object a line).
RESULTS_JSON, TIMELINE_JSON, FAULTS_JSONL = "results.json", "timeline.json", "faults.jsonl"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _fault_entry(event: FaultEvent, ttrs: Iterable[PartitionTTR],
                 events: Sequence[FaultEvent]) -> FaultResult:
    ttr: dict[str, dict[int, TTRResult]] = {}
    for t in ttrs:
        if t.event_id != event.id:
            continue
        ttr.setdefault(t.policy, {})[t.partition] = TTRResult(
            first_ms=_ms(t.first_s), stable_ms=_ms(t.stable_s), lag_ms=_ms(t.lag_s),
            recovered=t.recovered, stable_recovered=t.stable_recovered,
            lag_negative=t.lag_negative, horizon_ms=_ms(t.t_horizon - t.t_inject))
    return FaultResult(
        id=event.id, kind=event.kind, node=event.node, t_inject=event.t_inject,
        t_heal=event.t_heal, affected_partitions=tuple(event.affected_partitions),
        skipped=event.skipped, skip_reason=event.skip_reason,
        server_failover_ms={} if event.skipped else {
            p: _ms(event.failover_s(p)) for p in event.affected_partitions},
        touched_partitions=None if event.touched_partitions is None
        else tuple(event.touched_partitions),
        new_primary={} if event.skipped else new_primary_block(event, events),
        ttr=ttr)


def _run_facts(extra: RunFacts | Mapping[str, Any] | None) -> RunFacts:
    """``extra`` as :class:`RunFacts`: a mapping is read as results.json spells the facts; a
    key that is no fact (e.g. one that would replace a computed block) is a ValueError."""
    if isinstance(extra, RunFacts):
        return extra
    extra = extra or {}
    unknown = set(extra) - FACT_KEYS
    if unknown:
        raise ValueError(f"extra keys {sorted(unknown)} are no run facts "
                         f"(they would replace computed results or name nothing)")
    return RunFacts.from_dict(extra)


def build_results(state: RecorderState, events: Iterable[FaultEvent], *, t_start: float,
                  t_end: float, recovery_s: float = RECOVERY_S, table: str | None = None,
                  window_s: float = TTR_WINDOW_S, missed: Mapping[str, int] | None = None,
                  durability: Mapping[str, int] | None = None,
                  slo: Mapping[str, Mapping[str, float]] | None = None,
                  extra: RunFacts | Mapping[str, Any] | None = None) -> Results:
    """The run's results, verdict settled. ``durability``: ``{acked, verified[, lost]}`` from
    the caller's read-back; ``slo``: the profile's ``[slo]`` spec; ``extra``: what the run
    records beside the numbers (:class:`RunFacts`, or a mapping spelled as in results.json).
    The verdict is settled here (:func:`.slo.settle`): the checks' over the document, unknown
    when the facts say the run was incomplete or the load generator was its own bottleneck."""
    events = sorted(events, key=lambda e: e.t_inject)
    spans = phases(events, recovery_s=recovery_s)
    table = resolve_table(state, table)
    ttrs = event_ttrs(state, events, t_end=t_end, table=table, window_s=window_s)
    facts = _run_facts(extra)
    real = facts.real_clients or {}
    results = Results(
        run=RunInfo(clock="monotonic", t_start=t_start, t_end=t_end, duration_s=t_end - t_start,
                    recovery_s=recovery_s, table=table, ttr_window_s=window_s),
        policies={name: policy_results(p, ttrs=ttrs, name=name, spans=spans,
                                       t_start=t_start, t_end=t_end,
                                       missed=missed_for(missed, name), real_client=real.get(name))
                  for name, p in state.policies.items()},
        faults=tuple(_fault_entry(e, ttrs, events) for e in events),
        durability=None if durability is None else durability_block(**durability),
        facts=facts)
    return settle(results, slo or {})


def _per_second(p: PolicyState) -> dict[str, Any]:
    seconds = sorted(set(p.series.coarse) | set(p.latency) | set(p.errors_by_second))
    if not seconds:
        return {"t": [], "ops": [], "errors": {}, "p50_response_ms": [],
                "p99_response_ms": [], "meta_queries": [], "attempts": []}
    span = range(seconds[0], seconds[-1] + 1)
    kinds = sorted({k for e in p.errors_by_second.values() for k in e})
    empty = (0,) * p.series.width
    out: dict[str, Any] = {"t": [float(s) for s in span], "ops": [], "attempts": [],
                           "meta_queries": [], "p50_response_ms": [], "p99_response_ms": [],
                           "errors": {k: [] for k in kinds}}
    for sec in span:
        c = p.series.coarse.get(sec, empty)
        out["ops"].append(c[0] + c[1] + c[2])
        out["attempts"].append(c[3])
        out["meta_queries"].append(c[4])
        pct = hdr.coarse_percentiles(dict(p.latency.get(sec, {})), (50.0, 99.0))
        out["p50_response_ms"].append(None if pct[50.0] is None else round(pct[50.0] / 1000, 3))
        out["p99_response_ms"].append(None if pct[99.0] is None else round(pct[99.0] / 1000, 3))
        errors = p.errors_by_second.get(sec, {})
        for k in kinds:
            out["errors"][k].append(errors.get(k, 0))
    return out


def _partition_series(p: PolicyState) -> dict[str, Any]:
    out = {}
    for (table, pidx), timeline in sorted(p.partitions.items()):
        cols: dict[str, list[Any]] = {"t": [], "width_s": [], **{s: [] for s in OUTCOME_SLOTS}}
        for start, width, counts in timeline.series.buckets():
            cols["t"].append(start)
            cols["width_s"].append(width)
            for slot, count in zip(OUTCOME_SLOTS, counts):
                cols[slot].append(count)
        out[f"{table}:{pidx}"] = cols
    return out


def build_timeline(state: RecorderState, events: Iterable[FaultEvent], *, t_start: float,
                   t_end: float, recovery_s: float = RECOVERY_S) -> dict[str, Any]:
    """The ``timeline.json`` document: per-second series per policy, per-partition series
    (10 ms near faults, 1 s elsewhere), faults and phases for shading."""
    events = sorted(events, key=lambda e: e.t_inject)
    return {
        "format": TIMELINE_FORMAT, "version": TIMELINE_VERSION, "clock": "monotonic",
        "t_start": t_start, "t_end": t_end,
        "fine_bucket_s": FINE_BUCKET_S, "coarse_bucket_s": COARSE_BUCKET_S,
        "faults": [{"id": e.id, "kind": e.kind, "node": e.node, "t_inject": e.t_inject,
                    "t_heal": e.t_heal, "affected_partitions": list(e.affected_partitions),
                    "skipped": e.skipped} for e in events],
        "phases": [{"name": s.name, "start": s.start,
                    "end": None if math.isinf(s.end) else s.end}
                   for s in phases(events, recovery_s=recovery_s)],
        "policies": {name: {"per_second": _per_second(p), "partitions": _partition_series(p)}
                     for name, p in state.policies.items()},
    }


def write_json(path: str | os.PathLike[str], document: Mapping[str, Any], *,
               indent: int | None = 2) -> Path:
    """Write ``document`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=indent, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def write_results(path: str | os.PathLike[str], results: Results) -> Path:
    """Write ``results.json``."""
    return write_json(path, results.to_dict())


def write_timeline(path: str | os.PathLike[str], timeline: Mapping[str, Any]) -> Path:
    """Write ``timeline.json`` (compact: it can be large on soak runs)."""
    return write_json(path, timeline, indent=None)
