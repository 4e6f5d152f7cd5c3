"""Fault records: what the controller did with each planned fault, and ``faults.jsonl``.

A :class:`FaultRecord` is the controller's full account of one planned fault: its
:class:`~loadgen.metrics.events.FaultEvent` (what the analysis reads: the instants, the affected
partitions with their server failover times and promoted nodes, the touched partitions, or why
it was skipped), the plan entry, the injector, the resolved node's address, what healed it and
the injector's :class:`~.injector.ActionRecord` of every action, failed ones included. A fault
not injected is a ``skipped`` event at its planned instant, named by its target when no node was
resolved. ``faults.jsonl`` holds one ``to_dict()`` per line, one line per planned fault, in the
order the records became final (a fault is final once healed and its failover settled: at the
next injection or at the end of the run; a skipped fault at once).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..metrics.events import FaultEvent
from .injector import ActionRecord

#: ``healed_by``: the plan healed it on time; the end of the run (``stop``) did; nothing did.
HEALED_BY_PLAN, HEALED_BY_STOP, NOT_HEALED = "plan", "stop", ""


@dataclass(frozen=True)
class FaultRecord:
    """One planned fault, as it went (monotonic seconds; see the module docstring)."""

    #: Its id is the plan's (``"3"``); ``node`` the resolved node, else the target.
    event: FaultEvent
    #: As planned: ``replica2`` or ``primary-of:3`` (``random`` is resolved by the plan).
    target: str
    origin: str
    at_s: float
    t_planned: float
    injector: str
    #: The resolved node's address ("": none was resolved, and the event names the target).
    addr: str = ""
    healed_by: str = NOT_HEALED
    actions: tuple[ActionRecord, ...] = ()

    def __post_init__(self) -> None:
        e = self.event
        if not e.id.isdigit():
            raise ValueError(f"fault {e.id!r}: the id must be the plan's number")
        if e.skipped and (e.t_inject != self.t_planned or e.t_heal is not None):
            raise ValueError(f"fault {e.id}: a skipped fault is at its planned instant, unhealed")
        if not e.skipped and not self.addr:
            raise ValueError(f"fault {e.id}: an injected fault needs its node's addr")
        if not self.addr and e.node != self.target:
            raise ValueError(f"fault {e.id}: with no node resolved, the event names the target")

    @property
    def id(self) -> int:
        """The plan's id."""
        return int(self.event.id)

    @property
    def injected(self) -> bool:
        """Whether it was injected (its event is not skipped)."""
        return not self.event.skipped

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (one ``faults.jsonl`` line)."""
        e = self.event
        return {
            "id": self.id, "kind": e.kind, "target": self.target, "origin": self.origin,
            "at_s": self.at_s, "t_planned": self.t_planned, "injector": self.injector,
            "injected": self.injected, "skipped": e.skipped, "skip_reason": e.skip_reason,
            "node": e.node if self.addr else "", "addr": self.addr,
            "t_inject": e.t_inject if self.injected else None, "t_heal": e.t_heal,
            "healed_by": self.healed_by, "affected_partitions": list(e.affected_partitions),
            "server_failover_ms": {str(p): None if s is None else round(s * 1000, 3)
                                   for p, s in sorted(e.server_failover_s.items())},
            "touched_partitions": None if e.touched_partitions is None
            else list(e.touched_partitions),
            "promoted": {str(p): node for p, node in sorted(e.promoted.items())},
            "actions": [a.to_dict() for a in self.actions],
        }


class FaultLog:
    """``faults.jsonl``: one JSON line per record, flushed as it is written."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")

    def write(self, record: FaultRecord) -> None:
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(json.dumps(record.to_dict(), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
