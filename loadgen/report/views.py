"""Views of ``results.json`` (:class:`~loadgen.metrics.results.Results`) that every table and
figure shares: policy order, the old/new pair, what each policy models, TTR samples per
(fault event, partition, policy).

Old/new: ``legacy`` vs ``failover`` when both ran (DESIGN.md); otherwise the first and the
last policy in report order. Report order is the profile's ``policies.compare`` (from the
``profile`` key of results.json) for the policies present, then any other, in results order.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ..metrics.results import FaultResult, Results

OLD, NEW = "legacy", "failover"


def policy_order(results: Results) -> list[str]:
    """The policies of a run in report order (see the module docstring)."""
    present = list(results.policies)
    compare = [p for p in results.facts.compared if p in present]
    return list(dict.fromkeys([*compare, *present]))


def old_new(order: Sequence[str], real: Collection[str] = ()) -> tuple[str, str] | None:
    """(old, new) for ratios and the bootstrap; None with fewer than two policies. Real
    clients' rows (``real``) are compared with the policies, not picked as old or new."""
    order = [p for p in order if p not in real]
    if OLD in order and NEW in order:
        return OLD, NEW
    if len(order) >= 2:
        return order[0], order[-1]
    return None


def policy_models(results: Results, names: Sequence[str]) -> dict[str, str]:
    """One line per policy saying what it models. Taken from results.json's ``policy_info``
    when the run recorded it (so the page needs only the run folder), else from the policy
    registry of this installation, else empty."""
    recorded = results.facts.policy_info
    out = {name: real_client_line(results, name) for name in names
           if name in (results.facts.real_clients or {})}
    for name in names:
        if name in out:
            continue
        info = recorded.get(name) if isinstance(recorded, Mapping) else None
        if isinstance(info, Mapping):
            out[name] = str(info.get("models") or info.get("summary") or "")
    missing = [n for n in names if n not in out]
    if missing:
        registry = _registry_models()
        for name in missing:
            out[name] = registry.get(name, "")
    return out


def real_client_line(results: Results, row: str) -> str:
    """What a real client's row was: the client and version its adapter announced, and, if
    its adapter died, when (s into the run) and why."""
    info = (results.facts.real_clients or {}).get(row) or {}
    who = " ".join(str(v) for v in (info.get("client"), info.get("version")) if v)
    text = f"real client {who or '(no handshake)'} through its adapter"
    died_at, t_start = info.get("died_at"), results.run.t_start
    if died_at is not None and t_start is not None:
        text += f"; the adapter died {died_at - t_start:.1f} s into the run: {info.get('error')}"
    elif info.get("error"):
        text += f"; {info['error']}"
    if not info.get("meta_queries_counted"):
        text += "; meta queries not counted (no onebox query log)"
    return text


def _registry_models() -> dict[str, str]:
    try:  # the registry pulls in the client; a report must still render without it
        from ..pegasus import policies
        return {p.name: p.models or p.summary for p in policies.available()}
    except Exception:  # noqa: BLE001 - a broken or absent registry only loses a label
        return {}


@dataclass(frozen=True)
class TTRSample:
    """One (fault event, affected partition, policy): TTR-first, TTR-stable, client lag (ms).

    ``first_ms`` / ``stable_ms`` are the time observed (the horizon) when not recovered.
    """

    event_id: str
    kind: str
    node: str
    partition: int
    policy: str
    first_ms: float
    recovered: bool
    stable_ms: float
    stable_recovered: bool
    lag_ms: float | None
    lag_negative: bool
    horizon_ms: float | None
    server_failover_ms: float | None
    t_inject: float
    #: the node the meta promoted for this partition, and the age of that node's own last
    #: fault before this one (results.json ``faults[].new_primary``; None in older results)
    new_primary: str | None = None
    new_primary_fault_age_s: float | None = None
    new_primary_recently_faulted: bool = False


def new_primary_flag(s: TTRSample) -> str:
    """"new primary replica1 faulted 18 s earlier" for a sample whose new primary was itself
    faulted within the flag window (RECENT_FAULT_WINDOW_S); "" otherwise."""
    if not s.new_primary_recently_faulted or s.new_primary_fault_age_s is None:
        return ""
    age = s.new_primary_fault_age_s
    return f"new primary {s.new_primary} faulted {age:.0f} s earlier" if age >= 10 else \
        f"new primary {s.new_primary} faulted {age:.1f} s earlier"


def _new_primary(fault: FaultResult, partition: int) -> tuple[str | None, float | None, bool]:
    entry = (fault.new_primary or {}).get(partition)
    if entry is None:
        return None, None, False
    age = entry.last_fault_age_s
    age = float(age) if isinstance(age, (int, float)) and not isinstance(age, bool) else None
    node = entry.node
    return (None if node is None else str(node)), age, entry.recently_faulted is True


def injected_faults(results: Results) -> list[FaultResult]:
    """``results.faults`` that were injected, in t_inject order."""
    return sorted((f for f in results.faults if not f.skipped), key=lambda f: f.t_inject or 0)


def skipped_faults(results: Results) -> list[FaultResult]:
    """``results.faults`` that were skipped, with their reason."""
    return [f for f in results.faults if f.skipped]


def server_failover_ms(fault: FaultResult, partition: int) -> float | None:
    """The partition's server failover time as results.json gives it (ms)."""
    value = (fault.server_failover_ms or {}).get(partition)
    return float(value) if isinstance(value, (int, float)) else None


def ttr_samples(results: Results) -> list[TTRSample]:
    """Every TTR sample of the run, by event, partition, then report order of policies."""
    order = policy_order(results)
    out = []
    for fault in injected_faults(results):
        ttr = fault.ttr or {}
        for pidx in fault.affected_partitions or ():
            promoted, age, recent = _new_primary(fault, pidx)
            for policy in order:
                entry = (ttr.get(policy) or {}).get(pidx)
                if entry is None or entry.first_ms is None:
                    continue
                out.append(TTRSample(
                    event_id=str(fault.id), kind=str(fault.kind or ""),
                    node=str(fault.node or ""), partition=int(pidx), policy=policy,
                    first_ms=float(entry.first_ms), recovered=bool(entry.recovered),
                    stable_ms=float(entry.first_ms if entry.stable_ms is None
                                    else entry.stable_ms),
                    stable_recovered=bool(entry.stable_recovered),
                    lag_ms=entry.lag_ms, lag_negative=bool(entry.lag_negative),
                    horizon_ms=entry.horizon_ms,
                    server_failover_ms=server_failover_ms(fault, pidx),
                    t_inject=float(fault.t_inject or 0.0), new_primary=promoted,
                    new_primary_fault_age_s=age, new_primary_recently_faulted=recent))
    return out


def samples_by_event(samples: Sequence[TTRSample], policy: str, *,
                     stable: bool = False) -> dict[str, list[float]]:
    """event id -> the policy's TTR samples (ms; +inf when not recovered), in event order."""
    out: dict[str, list[float]] = {}
    for s in samples:
        if s.policy != policy:
            continue
        ok = s.stable_recovered if stable else s.recovered
        value = s.stable_ms if stable else s.first_ms
        out.setdefault(s.event_id, []).append(value if ok else math.inf)
    return out
