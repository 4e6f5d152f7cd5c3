"""The fault plan: a profile's ``[faults.schedule]`` and ``[[faults.events]]`` as one ordered list.

The plan is a pure function of the profile: same profile and seed, same plan. ``random``
targets are resolved here, with an RNG seeded from the profile's ``seed``, to a replica node
that no other fault holds at that time (never the meta); ``primary-of:P`` stays symbolic for
the controller to resolve at inject time; named nodes are kept as they are.

Impossible plans are rejected with a ConfigError naming the profile key: a fault that starts
at or after the end of the run (``workload.duration_s``) or heals after it, and two faults on
the same named node that overlap in time (a fault holds its node from ``at_s`` until it heals;
a kill without ``restart_after_s`` holds it to the end of the run).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass

from ..errors import ConfigError
from .schema import Profile
from .targets import NodeTarget, PlannedTarget, RandomReplica, Target, replica_names

#: Mixed into the seed so the plan's RNG stream differs from any other consumer of ``seed``.
RNG_SALT = "pegbench-faults"


@dataclass(frozen=True)
class PlannedFault:
    """One fault of the plan, at ``at_s`` seconds from the run start."""

    id: int  # 1, 2, ... in plan order
    at_s: float
    kind: str
    target: PlannedTarget
    duration_s: float | None = None  # pause
    restart_after_s: float | None = None  # kill (optional), restart
    #: The profile key it came from: ``faults.schedule`` or ``faults.events[i]``.
    origin: str = ""

    @property
    def heal_at_s(self) -> float | None:
        """When it heals (resume, restart); None for a kill that is never restarted."""
        after = self.duration_s if self.duration_s is not None else self.restart_after_s
        return None if after is None else self.at_s + after


@dataclass(frozen=True)
class _Draft:
    """A fault before ids and random picks; ``key`` is its profile table, ``nth`` its occurrence."""

    at_s: float
    kind: str
    target: Target
    duration_s: float | None
    restart_after_s: float | None
    key: str
    nth: int = 0

    @property
    def heal_param(self) -> str:
        return "duration_s" if self.duration_s is not None else "restart_after_s"

    @property
    def heal_at_s(self) -> float:
        after = self.duration_s if self.duration_s is not None else self.restart_after_s
        return math.inf if after is None else self.at_s + after

    @property
    def until(self) -> str:
        return "the end of the run" if self.heal_at_s == math.inf else f"{self.heal_at_s:g} s"

    @property
    def which(self) -> str:
        return f"fault {self.nth + 1} of faults.schedule" if self.key == "faults.schedule" else self.key

    def describe(self) -> str:
        return f"the {self.kind} at {self.at_s:g} s ({self.which}) holds it until {self.until}"


def plan_faults(profile: Profile) -> tuple[PlannedFault, ...]:
    """Every fault of ``profile`` in time order, ``random`` targets resolved (seeded)."""
    file = profile.source or "<profile>"
    drafts = _drafts(profile)
    _check_run_end(file, drafts, profile.workload.duration_s)
    drafts.sort(key=lambda d: d.at_s)  # stable: the schedule first, then events in file order
    _check_overlaps(file, drafts)
    return tuple(PlannedFault(id=i + 1, at_s=d.at_s, kind=d.kind, target=target,
                              duration_s=d.duration_s, restart_after_s=d.restart_after_s,
                              origin=d.key)
                 for i, (d, target) in enumerate(zip(drafts, _resolve(file, drafts, profile))))


def _drafts(profile: Profile) -> list[_Draft]:
    drafts = []
    schedule = profile.faults.schedule
    if schedule is not None:
        drafts += [_Draft(at_s, schedule.kind, schedule.target, schedule.duration_s,
                          schedule.restart_after_s, "faults.schedule", nth)
                   for nth, at_s in enumerate(schedule.times_s())]
    drafts += [_Draft(e.at_s, e.kind, e.target, e.duration_s, e.restart_after_s,
                      f"faults.events[{i}]") for i, e in enumerate(profile.faults.events)]
    return drafts


def _check_run_end(file: str, drafts: list[_Draft], end_s: float) -> None:
    for d in drafts:
        # A schedule's later faults pass the end because of how many there are: name count.
        late_key = "count" if d.nth > 0 else None
        if d.at_s >= end_s:
            key = late_key or ("start_s" if d.key == "faults.schedule" else "at_s")
            raise ConfigError(file, f"{d.key}.{key}",
                              f"a fault that starts before workload.duration_s ({end_s:g} s): "
                              f"{d.which} would start at {d.at_s:g} s")
        if d.heal_at_s != math.inf and d.heal_at_s > end_s:
            raise ConfigError(file, f"{d.key}.{late_key or d.heal_param}",
                              f"a fault that heals by workload.duration_s ({end_s:g} s): "
                              f"{d.which} at {d.at_s:g} s would heal at {d.heal_at_s:g} s")


def _check_overlaps(file: str, drafts: list[_Draft]) -> None:
    """Two faults on the same named node must not overlap (``drafts`` sorted by time)."""
    by_node: dict[str, list[_Draft]] = defaultdict(list)
    for d in drafts:
        if isinstance(d.target, NodeTarget):
            by_node[d.target.node].append(d)
    for node, held in by_node.items():
        for before, after in zip(held, held[1:]):  # sorted by start: neighbours suffice
            if before.heal_at_s <= after.at_s:
                continue
            if before.key == after.key == "faults.schedule":
                raise ConfigError(file, "faults.schedule.every_s",
                                  f"faults on {node} that do not overlap: {before.describe()}")
            raise ConfigError(file, f"{after.key}.target",
                              f"a node free at {after.at_s:g} s: on {node}, {before.describe()}")


def _resolve(file: str, drafts: list[_Draft], profile: Profile) -> list[PlannedTarget]:
    """Each draft's target, ``random`` ones picked in time order among nodes free then."""
    rng = random.Random(f"{RNG_SALT}:{profile.seed}")
    nodes = replica_names(profile.cluster.replica_nodes)
    busy: dict[str, list[_Draft]] = defaultdict(list)
    for d in drafts:
        if isinstance(d.target, NodeTarget):
            busy[d.target.node].append(d)
    resolved: list[PlannedTarget] = []
    for d in drafts:
        if not isinstance(d.target, RandomReplica):
            resolved.append(d.target)
            continue
        free = [n for n in nodes
                if all(other.heal_at_s <= d.at_s or d.heal_at_s <= other.at_s for other in busy[n])]
        if not free:
            raise ConfigError(file, f"{d.key}.target",
                              f"a replica node free from {d.at_s:g} s to {d.until}: each of "
                              f"the {len(nodes)} is held by another fault then")
        node = rng.choice(free)
        busy[node].append(d)
        resolved.append(NodeTarget(node))
    return resolved
