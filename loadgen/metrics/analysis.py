"""Per-policy figures from recorder state: error rates, recovery cost, latency, TTR summaries.

Pure functions: state, fault events and TTRs in, results.json's typed blocks out
(:mod:`.results`). Errors are ops that did not end ``ok`` (``fail`` or ``unknown``). Bucketed
figures (by phase, recovery cost) assign each bucket to the phase of its start: 10 ms buckets
near fault and heal instants, 1 s elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import hdr, ttr_hist
from .distribution import CensoredDistribution
from .events import (FAULT, PHASES, RECOVERY, FaultEvent, Phase, PhaseLookup, new_primaries,
                     phase_seconds, phases)
from .results import (Distribution, Durability, LagDistribution, LatencySummary,
                      NewPrimaryResult, PhaseLatency, PhaseOps, PolicyResult)
from .series import Series
from .state import PolicyState
from .ttr import PartitionTTR

_OK, _FAIL, _UNKNOWN, _ATTEMPTS, _META = range(5)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def phase_totals(series: Series, spans: Iterable[Phase]) -> dict[str, list[int]]:
    """Per global phase, the totals of every slot of ``series`` (buckets by their start)."""
    lookup = PhaseLookup(list(spans))
    out = {name: [0] * series.width for name in PHASES}
    for start, _, counts in series.buckets():
        totals = out[lookup.phase_of(start)]
        for slot, count in enumerate(counts):
            totals[slot] += count
    return out


@dataclass(frozen=True)
class ErrorSummary:
    """A policy's errors overall, by phase and by error kind (:class:`PolicyResult`'s
    fields of the same names)."""

    errors: int
    error_rate: float | None
    error_rate_by_phase: dict[str, float | None]
    ops_by_phase: dict[str, PhaseOps]
    errors_by_kind: dict[str, int]
    error_rate_by_kind: dict[str, float | None]


def error_summary(policy: PolicyState, spans: Iterable[Phase]) -> ErrorSummary:
    """Error rate overall, by phase and by error kind."""
    by_phase = phase_totals(policy.series, spans)
    ops_by_phase = {name: PhaseOps(ops=c[_OK] + c[_FAIL] + c[_UNKNOWN],
                                   errors=c[_FAIL] + c[_UNKNOWN])
                    for name, c in by_phase.items()}
    errors = policy.ops - policy.outcomes.get("ok", 0)
    return ErrorSummary(
        errors=errors, error_rate=_ratio(errors, policy.ops),
        error_rate_by_phase={name: _ratio(v.errors, v.ops) for name, v in ops_by_phase.items()},
        ops_by_phase=ops_by_phase, errors_by_kind=dict(sorted(policy.errors.items())),
        error_rate_by_kind={kind: _ratio(n, policy.ops)
                            for kind, n in sorted(policy.errors.items())})


def recovery_cost(policy: PolicyState, spans: Iterable[Phase], t_start: float,
                  t_end: float) -> dict[str, Any]:
    """Meta queries/s and attempts per op over the fault and recovery phases within
    [t_start, t_end); None where nothing was there to divide by."""
    spans = list(spans)
    lookup = PhaseLookup(spans)
    ops = attempts = meta = 0
    for start, _, c in policy.series.buckets(t_start, t_end):
        if lookup.phase_of(start) in (FAULT, RECOVERY):
            ops += c[_OK] + c[_FAIL] + c[_UNKNOWN]
            attempts += c[_ATTEMPTS]
            meta += c[_META]
    seconds = phase_seconds(spans, (FAULT, RECOVERY), t_start, t_end)
    return {"seconds": seconds, "ops": ops, "attempts_per_op": _ratio(attempts, ops),
            "meta_queries": meta, "meta_queries_per_s": _ratio(meta, seconds)}


def latency_summary(policy: PolicyState) -> dict[str, dict[str, LatencySummary]]:
    """``{op: {service|response: {count, p50, p99, p999, max}}}`` in µs."""
    out: dict[str, dict[str, LatencySummary]] = {}
    for (op, kind), hist in sorted(policy.histograms.items()):
        out.setdefault(op, {})[kind] = LatencySummary(**hdr.summarize(hist))
    return out


def latency_by_phase(policy: PolicyState) -> dict[str, dict[str, dict[str, PhaseLatency]]]:
    """``{op: {service|response: {phase: {count, p50, p99, p999, max, hdr}}}}`` in µs, by the
    phase of each op's intended start; a phase without ops is left out (nothing to summarise,
    and its absence says so as clearly as zeros)."""
    out: dict[str, dict[str, dict[str, PhaseLatency]]] = {}
    for (op, kind, phase), hist in sorted(policy.phase_histograms.items(), key=_phase_order):
        if hist.get_total_count():
            out.setdefault(op, {}).setdefault(kind, {})[phase] = PhaseLatency(
                **hdr.summarize(hist), hdr=hdr.encode(hist))
    return out


def _phase_order(item: tuple[tuple[str, str, str], Any]) -> tuple[str, str, int]:
    """Op, kind, then the phases in PHASES' order (fault, recovery, steady)."""
    (op, kind, phase), _ = item
    return op, kind, PHASES.index(phase) if phase in PHASES else len(PHASES)


@dataclass(frozen=True)
class TTRSummary:
    """A policy's TTR distributions and the fractions recovered (:class:`PolicyResult`'s
    ``ttr_first_ms``, ``ttr_stable_ms``, ``client_lag_ms``, ``recovered_fraction``,
    ``stable_recovered_fraction``)."""

    first: Distribution
    stable: Distribution
    lag: LagDistribution
    recovered_fraction: float | None
    stable_recovered_fraction: float | None


def ttr_summary(ttrs: Iterable[PartitionTTR], policy: str) -> TTRSummary:
    """The policy's TTR-first, TTR-stable and client-lag distributions (ms), censored
    samples as +∞, and the fractions recovered."""
    first, stable, lag = CensoredDistribution(), CensoredDistribution(), CensoredDistribution()
    lag_unknown = 0
    for t in ttrs:
        if t.policy != policy:
            continue
        first.add(t.first_s if t.recovered else None)
        stable.add(t.stable_s if t.stable_recovered else None)
        if t.lag_s is None:
            lag_unknown += 1   # no server failover time: nothing to subtract
        else:
            lag.add(t.lag_s if t.recovered else None)
    return TTRSummary(first=first.summary_ms(), stable=stable.summary_ms(),
                      lag=lag.lag_summary_ms(unknown=lag_unknown),
                      recovered_fraction=_ratio(first.n - first.censored, first.n),
                      stable_recovered_fraction=_ratio(stable.n - stable.censored, stable.n))


def new_primary_block(event: FaultEvent,
                      events: Iterable[FaultEvent]) -> dict[int, NewPrimaryResult]:
    """``faults[].new_primary``: per affected partition whose config named a new primary,
    ``{node, last_fault_id, last_fault_age_s, recently_faulted}`` (age and id null when the
    node had not been faulted before)."""
    return {pidx: NewPrimaryResult(node=n.node, last_fault_id=n.last_fault_id,
                                   last_fault_age_s=None if n.last_fault_age_s is None
                                   else round(n.last_fault_age_s, 3),
                                   recently_faulted=n.recently_faulted)
            for pidx, n in sorted(new_primaries(event, events).items())}


def policy_results(policy: PolicyState, *, ttrs: Iterable[PartitionTTR], name: str,
                   spans: Iterable[Phase], t_start: float, t_end: float,
                   missed: int | None = None,
                   real_client: Mapping[str, Any] | None = None) -> PolicyResult:
    """``results.json``'s ``policies.<name>`` (see the README, "Reference"). A real client's
    row (``real_client``: its ``real_clients`` entry) has no attempts per op (its retries are
    its own), and no meta query rate unless the cluster counted its queries."""
    spans, ttrs = list(spans), list(ttrs)
    cost = recovery_cost(policy, spans, t_start, t_end)
    attempts_per_op = _ratio(policy.attempts, policy.ops)
    meta_overall = _ratio(policy.meta_queries, t_end - t_start)
    if real_client is not None:
        attempts_per_op = cost["attempts_per_op"] = None
        if not real_client.get("meta_queries_counted"):
            meta_overall = cost["meta_queries_per_s"] = None
    errors, ttr = error_summary(policy, spans), ttr_summary(ttrs, name)
    return PolicyResult(
        ops=policy.ops, outcomes=dict(policy.outcomes),
        errors=errors.errors, error_rate=errors.error_rate,
        error_rate_by_phase=errors.error_rate_by_phase, ops_by_phase=errors.ops_by_phase,
        errors_by_kind=errors.errors_by_kind, error_rate_by_kind=errors.error_rate_by_kind,
        attempts=policy.attempts, attempts_per_op=attempts_per_op,
        meta_queries=policy.meta_queries, meta_queries_failed=policy.meta_failed,
        meta_queries_per_s=cost["meta_queries_per_s"], meta_queries_per_s_overall=meta_overall,
        replica_queries=policy.replica_queries, recovery_cost=cost, missed=missed,
        dropped=policy.dropped_total,
        dropped_by_partition={str(k): n for k, n in sorted(policy.dropped.items())},
        attempt_outcomes=dict(policy.attempt_outcomes),
        attempt_errors=dict(sorted(policy.attempt_errors.items())), clamped=policy.clamped,
        latency_us=latency_summary(policy), latency_by_phase_us=latency_by_phase(policy),
        ttr_first_ms=ttr.first, ttr_stable_ms=ttr.stable, client_lag_ms=ttr.lag,
        recovered_fraction=ttr.recovered_fraction,
        stable_recovered_fraction=ttr.stable_recovered_fraction,
        ttr_hdr=ttr_hist.to_block(ttr_hist.ttr_histograms(ttrs, name)))


def durability(acked: int, verified: int, lost: int | None = None,
               by_policy: Mapping[str, Mapping[str, int]] | None = None) -> Durability:
    """``{acked, verified, lost[, by_policy]}`` from the caller's read-back; ``lost``
    defaults to the acknowledged writes not found again."""
    if acked < 0 or verified < 0:
        raise ValueError(f"negative counts: acked={acked} verified={verified}")
    return Durability(acked=acked, verified=verified,
                      lost=max(acked - verified, 0) if lost is None else lost,
                      by_policy=by_policy or None)


def missed_for(missed: Mapping[str, int] | None, policy: str) -> int | None:
    """The caller's missed-op count of ``policy`` (None when not given)."""
    return None if missed is None else missed.get(policy, 0)


def coarse_latency_in(latency: Mapping[int, Mapping[int, int]], events: Iterable[FaultEvent],
                      phase: str = FAULT) -> dict[int, int]:
    """The per-second coarse response-time counts (``PolicyState.latency``) of the seconds in
    ``phase``, a second by its middle: a live figure (results.json has the exact per-op
    ``latency_by_phase_us``)."""
    lookup = PhaseLookup(phases(events))
    out: dict[int, int] = {}
    for sec, counts in latency.items():
        if lookup.phase_of(sec + 0.5) == phase:
            for index, count in counts.items():
                out[index] = out.get(index, 0) + count
    return out


def live_p99_ms(latency: Mapping[int, Mapping[int, int]], events: Iterable[FaultEvent],
                phase: str = FAULT) -> float | None:
    """The response p99 (ms) over the seconds in ``phase`` (:func:`coarse_latency_in`);
    None without ops there."""
    p99 = hdr.coarse_percentiles(coarse_latency_in(latency, events, phase), (99.0,))[99.0]
    return None if p99 is None else p99 / 1000
