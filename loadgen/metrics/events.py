"""Fault events as the analysis sees them, and the global phases they define.

A fault event (DESIGN.md) is one injected fault: ``t_inject``, ``t_heal`` (resume or restart
instant; for a kill with no restart, the last failover instant among affected partitions),
the partitions whose primary was on the node at ``t_inject`` (``affected_partitions``), the
partitions the node hosted as any replica, primary or secondary (``touched_partitions``: what
ends other faults' horizons), the server failover time of each affected partition and the
node the meta promoted there (``promoted``). A fault that was not injected (e.g. the health
gate skipped it) is ``skipped`` with a reason: it yields no TTR and bounds no phase or horizon.

Phases are global, not per policy: ``fault`` = [t_inject, t_heal), ``recovery`` =
[t_heal, t_heal + recovery_s), ``steady`` = the rest; on overlap fault > recovery > steady.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECOVERY_S = 10.0
#: A (fault, partition) sample whose new primary was itself faulted less than this earlier
#: is flagged: the Go client redials an address at most once per 60 s (``kDialInterval``,
#: session.go ``dial``), so the Go models' sessions to that node may still be throttled from
#: the earlier fault, and the sample inherits that fault's after-effects.
RECENT_FAULT_WINDOW_S = 60.0
FAULT, RECOVERY, STEADY = "fault", "recovery", "steady"
#: The phase names, in the order tables and figures show them.
PHASES = (FAULT, RECOVERY, STEADY)
_RANK = {FAULT: 0, RECOVERY: 1, STEADY: 2}


@dataclass(frozen=True)
class FaultEvent:
    """One fault (times are monotonic seconds; see the module docstring)."""

    id: str
    kind: str                               # "kill" | "pause" | "restart"
    node: str
    t_inject: float
    t_heal: float | None = None             # None: never healed before the run ended
    affected_partitions: tuple[int, ...] = ()
    #: partition -> seconds from t_inject until the meta named a new, alive primary;
    #: None (or absent): the config never changed, so it is t_heal - t_inject
    server_failover_s: Mapping[int, float | None] = field(default_factory=dict, hash=False)
    skipped: bool = False
    skip_reason: str = ""
    #: partitions with any replica (primary or secondary) on the node at t_inject; None:
    #: unknown (results written before this field, or no config seen), so any partition
    #: may have been touched
    touched_partitions: tuple[int, ...] | None = None
    #: affected partition -> the node the meta promoted at its server failover instant;
    #: absent: no new primary was named (the config never changed)
    promoted: Mapping[int, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.skipped and not self.skip_reason:
            raise ValueError(f"fault event {self.id}: a skipped event needs a skip_reason")
        if self.t_heal is not None and self.t_heal < self.t_inject:
            raise ValueError(f"fault event {self.id}: t_heal {self.t_heal} before "
                             f"t_inject {self.t_inject}")

    def failover_s(self, partition: int) -> float | None:
        """Server failover time of ``partition`` (DESIGN.md's rule for an unchanged config)."""
        value = self.server_failover_s.get(partition)
        if value is not None:
            return value
        return None if self.t_heal is None else self.t_heal - self.t_inject

    def touches(self, partition: int) -> bool:
        """Whether the fault may have touched any replica of ``partition`` (True when the
        node's replicas are unknown)."""
        if partition in self.affected_partitions:
            return True
        return self.touched_partitions is None or partition in self.touched_partitions


@dataclass(frozen=True)
class NewPrimary:
    """The node the meta promoted for one affected partition, and its own last fault."""

    partition: int
    node: str
    last_fault_id: str | None = None        # that node's last injected fault before this one
    last_fault_age_s: float | None = None   # t_inject of this fault − t_inject of that one

    @property
    def recently_faulted(self) -> bool:
        """Whether that fault was less than RECENT_FAULT_WINDOW_S earlier."""
        return self.last_fault_age_s is not None and \
            self.last_fault_age_s < RECENT_FAULT_WINDOW_S


def new_primaries(event: FaultEvent, events: Iterable[FaultEvent]) -> dict[int, NewPrimary]:
    """Affected partition -> its new primary and that node's last injected fault before
    ``event`` (partitions whose config never named a new primary are left out)."""
    earlier = [e for e in injected(events) if e.t_inject < event.t_inject and e.id != event.id]
    out = {}
    for pidx in event.affected_partitions:
        node = event.promoted.get(pidx)
        if not node:
            continue
        last = max((e for e in earlier if e.node == node), key=lambda e: e.t_inject,
                   default=None)
        out[pidx] = NewPrimary(pidx, node, None if last is None else last.id,
                               None if last is None else event.t_inject - last.t_inject)
    return out


#: The two edges of a fault as it happens.
INJECT, HEAL = "inject", "heal"


@dataclass(frozen=True)
class FaultInstant:
    """One edge of one fault, as the controller announces it while the run goes on: the
    fault's id, kind and node (those of its :class:`FaultEvent`), ``edge`` (:data:`INJECT`
    or :data:`HEAL`), the monotonic instant ``t`` and the partitions whose primary was on the
    node (its affected partitions; None: all)."""

    event_id: str
    kind: str
    node: str
    edge: str
    t: float
    partitions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.edge not in (INJECT, HEAL):
            raise ValueError(f"fault {self.event_id}: edge must be {INJECT!r} or {HEAL!r}, "
                             f"not {self.edge!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the master's message to its workers)."""
        return {"event_id": self.event_id, "kind": self.kind, "node": self.node,
                "edge": self.edge, "t": self.t,
                "partitions": None if self.partitions is None else list(self.partitions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultInstant:
        """The inverse of :meth:`to_dict`."""
        parts = data.get("partitions")
        return cls(str(data["event_id"]), data["kind"], data["node"], data["edge"],
                   float(data["t"]), None if parts is None else tuple(parts))


@dataclass(frozen=True)
class Phase:
    """One stretch of time with one global phase name; ``end`` is exclusive."""

    name: str
    start: float
    end: float


def injected(events: Iterable[FaultEvent]) -> list[FaultEvent]:
    """The events that were really injected, by t_inject."""
    return sorted((e for e in events if not e.skipped), key=lambda e: e.t_inject)


def phases(events: Iterable[FaultEvent], *, recovery_s: float = RECOVERY_S) -> list[Phase]:
    """Fault and recovery stretches, in time order and non-overlapping; everything outside
    them is ``steady``. A fault never healed lasts forever (``end`` = +inf)."""
    spans = []
    for e in injected(events):
        heal = math.inf if e.t_heal is None else e.t_heal
        spans.append((FAULT, e.t_inject, heal))
        if heal < math.inf:
            spans.append((RECOVERY, heal, heal + recovery_s))
    cuts = sorted({t for _, a, b in spans for t in (a, b)})
    out: list[Phase] = []
    for a, b in zip(cuts, cuts[1:]):
        covering = [name for name, s, e in spans if s <= a and b <= e]
        if not covering:
            continue
        name = min(covering, key=_RANK.__getitem__)
        if out and out[-1].name == name and out[-1].end == a:
            out[-1] = Phase(name, out[-1].start, b)
        else:
            out.append(Phase(name, a, b))
    return out


class PhaseLookup:
    """``phase_of(t)`` over a list from :func:`phases`, by bisection."""

    def __init__(self, spans: Sequence[Phase]):
        self._spans = list(spans)
        self._starts = [p.start for p in self._spans]

    def phase_of(self, t: float) -> str:
        """The global phase instant ``t`` belongs to."""
        i = bisect_right(self._starts, t) - 1
        if i >= 0 and t < self._spans[i].end:
            return self._spans[i].name
        return STEADY


def phases_from_dicts(rows: Iterable[Mapping[str, Any]]) -> list[Phase]:
    """:func:`phases` from timeline.json's ``phases`` (``end`` null: never healed)."""
    return sorted((Phase(row["name"], row["start"], math.inf if row.get("end") is None
                         else row["end"]) for row in rows), key=lambda p: p.start)


def phase_seconds(spans: Iterable[Phase], names: Iterable[str], t_start: float,
                  t_end: float) -> float:
    """Total length of the named phases within [t_start, t_end)."""
    wanted = set(names)
    return sum(max(0.0, min(p.end, t_end) - max(p.start, t_start))
               for p in spans if p.name in wanted)
