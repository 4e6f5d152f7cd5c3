"""The seam between the fault controller and the load processes.

:class:`FaultRelay` listens to the events (:mod:`loadgen.events`) that the fault controller
of the master or local process fires. On ``fault_instant`` it marks the instant on this
process's recorder, forwards every instant so far to the workers (``pegbench_fault``), and
keeps the fault as its instants describe it, for live views (the web UI's Recovery tab, the
terminal view). On ``fault_recorded`` it keeps the controller's final record, which is richer
(server failover times, touched partitions): :meth:`FaultRelay.fault_events` prefers it, by
fault id.
"""

from __future__ import annotations

from dataclasses import replace

from ..metrics import FaultEvent, FaultInstant
from ..metrics.events import INJECT
from .distributed import MSG_FAULT, clock_anchor, send_safely


class FaultRelay:
    """Fault listener of the master or local process (see the module docstring)."""

    def __init__(self, recorder, runner=None):
        self.recorder = recorder
        self.runner = runner          # a MasterRunner forwards to workers; None: no workers
        #: fault id -> the fault as its instants so far describe it
        self.live: dict[str, FaultEvent] = {}
        #: fault id -> the controller's final record of it
        self.final: dict[str, FaultEvent] = {}
        self._instants: list[FaultInstant] = []
        #: bumped by :meth:`reset`: workers tell one run's fault ids from the next one's
        self.run = 0

    def fault_instant(self, instant: FaultInstant) -> None:
        """A fault took effect or was healed: mark it, keep it, forward it."""
        self.recorder.fault_instant(instant)
        if instant.edge == INJECT:
            self.live[instant.event_id] = FaultEvent(
                id=instant.event_id, kind=instant.kind, node=instant.node, t_inject=instant.t,
                affected_partitions=tuple(instant.partitions or ()))
        elif instant.event_id in self.live:
            self.live[instant.event_id] = replace(self.live[instant.event_id], t_heal=instant.t)
        self._instants.append(instant)
        self.resend()

    def reset(self) -> None:
        """Forget the faults so far (a new run starts)."""
        self.live.clear()
        self.final.clear()
        self._instants.clear()
        self.run += 1

    def fault_recorded(self, event: FaultEvent) -> None:
        """The controller's final record of a fault: it wins over the fault's instants."""
        self.final[event.id] = event

    def resend(self) -> None:
        """Send every instant so far to the workers again (e.g. after one joined late)."""
        if self.runner is not None and self._instants:
            send_safely(self.runner, MSG_FAULT, {
                "clock": clock_anchor(), "run": self.run, "instants": [i.to_dict() for i in self._instants]})

    def fault_events(self) -> list[FaultEvent]:
        """The controller's final records, plus the faults it has not finalised yet as their
        instants so far describe them; by inject time."""
        pending = [e for i, e in self.live.items() if i not in self.final]
        return sorted([*self.final.values(), *pending], key=lambda e: e.t_inject)
