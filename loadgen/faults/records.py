"""Fault records: what the controller did with each planned fault, and ``faults.jsonl``.

A :class:`FaultRecord` is the controller's full account of one planned fault: the plan entry,
whether and how it was injected (the injector's :class:`~.injector.ActionRecord` of every
action, failed ones included), the instants, the affected partitions with their server
failover times and promoted nodes, the touched partitions (any replica on the node), or why it
was skipped. ``to_event()`` gives the analysis its
:class:`~loadgen.metrics.events.FaultEvent` (a fault not injected is ``skipped``).
``faults.jsonl`` holds one ``to_dict()`` per line, one line per planned fault, in the order
the records became final (a fault is final once healed and its failover settled: at the next
injection or at the end of the run; a skipped fault at once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..metrics.events import FaultEvent
from .injector import ActionRecord

#: ``healed_by``: the plan healed it on time; the end of the run (``stop``) did; nothing did.
HEALED_BY_PLAN, HEALED_BY_STOP, NOT_HEALED = "plan", "stop", ""


@dataclass(frozen=True)
class FaultRecord:
    """One planned fault, as it went (monotonic seconds; see the module docstring)."""

    id: int
    kind: str
    #: As planned: ``replica2`` or ``primary-of:3`` (``random`` is resolved by the plan).
    target: str
    origin: str
    at_s: float
    t_planned: float
    injector: str
    injected: bool
    node: str = ""
    addr: str = ""
    t_inject: float | None = None
    #: Resume/restart instant; for a kill never restarted, the last failover instant among
    #: the affected partitions (None if none failed over).
    t_heal: float | None = None
    healed_by: str = NOT_HEALED
    affected_partitions: tuple[int, ...] = ()
    #: partition -> seconds from t_inject until the meta named a new, alive primary; None:
    #: the config never changed (then it is t_heal - t_inject).
    server_failover_s: Mapping[int, float | None] = field(default_factory=dict, hash=False)
    skip_reason: str = ""
    actions: tuple[ActionRecord, ...] = ()
    #: Partitions with any replica (primary or secondary) on the node at t_inject; None:
    #: no config was seen to tell.
    touched_partitions: tuple[int, ...] | None = None
    #: affected partition -> the node the meta promoted at its server failover instant.
    promoted: Mapping[int, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.injected and not self.skip_reason:
            raise ValueError(f"fault {self.id}: a fault not injected needs a skip_reason")
        if self.injected and self.t_inject is None:
            raise ValueError(f"fault {self.id}: an injected fault needs t_inject")

    def to_event(self) -> FaultEvent:
        """The fault event the analysis reads."""
        return FaultEvent(
            id=str(self.id), kind=self.kind, node=self.node or self.target,
            t_inject=self.t_inject if self.injected else self.t_planned,
            t_heal=self.t_heal if self.injected else None,
            affected_partitions=self.affected_partitions,
            server_failover_s=dict(self.server_failover_s), skipped=not self.injected,
            skip_reason=self.skip_reason, touched_partitions=self.touched_partitions,
            promoted=dict(self.promoted))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (one ``faults.jsonl`` line)."""
        return {
            "id": self.id, "kind": self.kind, "target": self.target, "origin": self.origin,
            "at_s": self.at_s, "t_planned": self.t_planned, "injector": self.injector,
            "injected": self.injected, "skipped": not self.injected,
            "skip_reason": self.skip_reason, "node": self.node, "addr": self.addr,
            "t_inject": self.t_inject, "t_heal": self.t_heal, "healed_by": self.healed_by,
            "affected_partitions": list(self.affected_partitions),
            "server_failover_ms": {str(p): None if s is None else round(s * 1000, 3)
                                   for p, s in sorted(self.server_failover_s.items())},
            "touched_partitions": None if self.touched_partitions is None
            else list(self.touched_partitions),
            "promoted": {str(p): node for p, node in sorted(self.promoted.items())},
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
