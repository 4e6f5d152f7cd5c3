"""Plain-data views of ``results.json`` that every table and figure shares: policy order,
the old/new pair, what each policy models, TTR samples per (fault event, partition, policy).

Old/new: ``legacy`` vs ``failover`` when both ran (DESIGN.md); otherwise the first and the
last policy in report order. Report order is the profile's ``policies.compare`` (from the
``profile`` key of results.json) for the policies present, then any other, in results order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OLD, NEW = "legacy", "failover"


def policy_order(results: Mapping[str, Any]) -> list[str]:
    """The policies of a run in report order (see the module docstring)."""
    present = list(results.get("policies", {}))
    profile = results.get("profile")
    compare = []
    if isinstance(profile, Mapping):
        policies = profile.get("policies")
        if isinstance(policies, Mapping) and isinstance(policies.get("compare"), list):
            compare = [p for p in policies["compare"] if p in present]
    return list(dict.fromkeys([*compare, *present]))


def old_new(order: Sequence[str]) -> tuple[str, str] | None:
    """(old, new) for ratios and the bootstrap; None with fewer than two policies."""
    if OLD in order and NEW in order:
        return OLD, NEW
    if len(order) >= 2:
        return order[0], order[-1]
    return None


def policy_models(results: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """One line per policy saying what it models. Taken from results.json's ``policy_info``
    when the run recorded it (so the page needs only the run folder), else from the policy
    registry of this installation, else empty."""
    recorded = results.get("policy_info")
    out = {}
    for name in names:
        info = recorded.get(name) if isinstance(recorded, Mapping) else None
        if isinstance(info, Mapping):
            out[name] = str(info.get("models") or info.get("summary") or "")
    missing = [n for n in names if n not in out]
    if missing:
        registry = _registry_models()
        for name in missing:
            out[name] = registry.get(name, "")
    return out


def _registry_models() -> dict[str, str]:
    try:  # the registry pulls in the client; a report must still render without it
        from ..pegasus import policies
        return {p.name: p.models or p.summary for p in policies.available()}
    except Exception:  # noqa: BLE001 - a broken or absent registry only loses a label
        return {}


def value_or_inf(block: Any, key: str) -> float | None:
    """``block[key]`` as a float; a null percentile of a distribution with censored samples
    is +inf (it landed on one), any other null or non-number is None."""
    if not isinstance(block, Mapping):
        return None
    value = block.get(key)
    if value is None:
        return math.inf if block.get("censored") else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def dig(block: Any, path: Sequence[str]) -> Any:
    """``block[p0][p1]…`` or None when a step is missing."""
    for part in path:
        if not isinstance(block, Mapping) or part not in block:
            return None
        block = block[part]
    return block


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


def _new_primary(fault: Mapping[str, Any], partition: int) -> tuple[str | None, float | None, bool]:
    entry = (fault.get("new_primary") or {}).get(str(partition))
    if not isinstance(entry, Mapping):
        return None, None, False
    age = entry.get("last_fault_age_s")
    age = float(age) if isinstance(age, (int, float)) and not isinstance(age, bool) else None
    node = entry.get("node")
    return (None if node is None else str(node)), age, entry.get("recently_faulted") is True


def injected_faults(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``results.faults`` that were injected, in t_inject order."""
    faults = [f for f in results.get("faults", []) if isinstance(f, Mapping)]
    return sorted((f for f in faults if not f.get("skipped")), key=lambda f: f.get("t_inject", 0))


def skipped_faults(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``results.faults`` that were skipped, with their reason."""
    return [f for f in results.get("faults", []) if isinstance(f, Mapping) and f.get("skipped")]


def server_failover_ms(fault: Mapping[str, Any], partition: int) -> float | None:
    """The partition's server failover time as results.json gives it (ms)."""
    value = (fault.get("server_failover_ms") or {}).get(str(partition))
    return float(value) if isinstance(value, (int, float)) else None


def ttr_samples(results: Mapping[str, Any]) -> list[TTRSample]:
    """Every TTR sample of the run, by event, partition, then report order of policies."""
    order = policy_order(results)
    out = []
    for fault in injected_faults(results):
        ttr = fault.get("ttr") or {}
        for pidx in fault.get("affected_partitions", []):
            promoted, age, recent = _new_primary(fault, pidx)
            for policy in order:
                entry = (ttr.get(policy) or {}).get(str(pidx))
                if not isinstance(entry, Mapping) or entry.get("first_ms") is None:
                    continue
                out.append(TTRSample(
                    event_id=str(fault.get("id")), kind=str(fault.get("kind", "")),
                    node=str(fault.get("node", "")), partition=int(pidx), policy=policy,
                    first_ms=float(entry["first_ms"]), recovered=bool(entry.get("recovered")),
                    stable_ms=float(entry["first_ms"] if entry.get("stable_ms") is None
                                    else entry["stable_ms"]),
                    stable_recovered=bool(entry.get("stable_recovered")),
                    lag_ms=entry.get("lag_ms"), lag_negative=bool(entry.get("lag_negative")),
                    horizon_ms=entry.get("horizon_ms"),
                    server_failover_ms=server_failover_ms(fault, pidx),
                    t_inject=float(fault.get("t_inject", 0.0)), new_primary=promoted,
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
