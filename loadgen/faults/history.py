"""Partition-config history: who was primary when, and when a fault's partitions failed over.

Pure data: :class:`ConfigChange` records (from the onebox meta's log or from polling a meta)
kept per partition in time order. :meth:`ConfigHistory.failover_change` implements DESIGN.md's
server failover time: from ``t_inject`` to the first config that names a new, alive primary
(which also says who was promoted). :meth:`ConfigHistory.hosted_at` tells which partitions a
node held a replica of (primary or secondary) at an instant: the partitions a fault touches.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigChange:
    """A partition's config from instant ``t`` on (monotonic seconds); "" = no primary."""

    t: float
    pidx: int
    ballot: int
    primary: str
    secondaries: tuple[str, ...] = ()
    reason: str = ""


class ConfigHistory:
    """Config changes per partition, in time order (add them in the order they happened)."""

    def __init__(self, changes: Iterable[ConfigChange] = ()):
        self._changes: dict[int, list[ConfigChange]] = {}
        self._times: dict[int, list[float]] = {}
        for change in changes:
            self.add(change)

    def add(self, change: ConfigChange) -> None:
        """Append one change (a change older than the last one of its partition is placed
        in order)."""
        changes = self._changes.setdefault(change.pidx, [])
        times = self._times.setdefault(change.pidx, [])
        i = bisect_right(times, change.t)
        changes.insert(i, change)
        times.insert(i, change.t)

    def __len__(self) -> int:
        return sum(len(c) for c in self._changes.values())

    def changes(self, pidx: int) -> list[ConfigChange]:
        """Partition ``pidx``'s changes, oldest first."""
        return list(self._changes.get(pidx, ()))

    def at(self, pidx: int, t: float) -> ConfigChange | None:
        """The config of ``pidx`` in force at ``t`` (the last change at or before it)."""
        i = bisect_right(self._times.get(pidx, []), t)
        return self._changes[pidx][i - 1] if i else None

    def primaries_at(self, t: float) -> dict[int, str]:
        """Partition -> primary address at ``t`` (partitions with no change by then left out)."""
        out = {}
        for pidx in self._changes:
            change = self.at(pidx, t)
            if change is not None:
                out[pidx] = change.primary
        return out

    def hosted_at(self, addr: str, t: float) -> tuple[int, ...]:
        """Partitions with a replica (primary or secondary) at ``addr`` in the configs in
        force at ``t``."""
        out = []
        for pidx in sorted(self._changes):
            change = self.at(pidx, t)
            if change is not None and (change.primary == addr or addr in change.secondaries):
                out.append(pidx)
        return tuple(out)

    def failover_instant(self, pidx: int, t_inject: float, old_primary: str, *,
                         t_heal: float | None = None, until: float = math.inf) -> float | None:
        """When the config of ``pidx`` first named a new, alive primary after ``t_inject``
        (see :meth:`failover_change`); None if it never did."""
        change = self.failover_change(pidx, t_inject, old_primary, t_heal=t_heal, until=until)
        return None if change is None else change.t

    def failover_change(self, pidx: int, t_inject: float, old_primary: str, *,
                        t_heal: float | None = None,
                        until: float = math.inf) -> ConfigChange | None:
        """The first config of ``pidx`` after ``t_inject`` that named a new, alive primary.

        New: another node than ``old_primary`` (the faulted one); or the faulted node itself
        once it is back (``t_heal``) after the meta had dropped it as primary (a restarted
        node's new life). Changes at or after ``until`` (the next fault touching ``pidx``)
        belong to that fault. None: no such change (the config never changed: DESIGN.md
        then takes ``t_heal - t_inject``).
        """
        dropped = False
        for change in self._changes.get(pidx, ()):
            if change.t <= t_inject:
                continue
            if change.t >= until:
                break
            if not change.primary:
                dropped = True
            elif change.primary != old_primary or (
                    dropped and t_heal is not None and change.t >= t_heal):
                return change
        return None
