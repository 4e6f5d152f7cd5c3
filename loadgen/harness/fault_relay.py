"""The seam between the fault controller and the load processes.

:class:`FaultRelay` listens to the ``fault_instant`` event (:mod:`loadgen.events`) that the
fault controller of the master or local process fires. It
marks each instant on this process's recorder, forwards every instant so far to the workers
(``pegbench_fault``), and keeps the faults seen so far for live views (the web UI's Recovery
tab, the terminal view). The controller's final records, when it has them, are richer (server
failover times, touched partitions): set :attr:`FaultRelay.events_source` to
``controller.fault_events`` and :meth:`FaultRelay.fault_events` prefers them, by fault id,
filling in the faults not final yet from their instants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..metrics import FaultEvent, FaultInstant
from ..metrics.events import INJECT
from .distributed import MSG_FAULT, clock_anchor, send_safely

log = logging.getLogger(__name__)


class FaultRelay:
    """Fault listener of the master or local process (see the module docstring)."""

    def __init__(self, recorder, runner=None):
        self.recorder = recorder
        self.runner = runner          # a MasterRunner forwards to workers; None: no workers
        #: fault id -> the fault as its instants so far describe it
        self.live: dict[str, FaultEvent] = {}
        #: e.g. ``controller.fault_events``: the controller's final fault events
        self.events_source: Callable[[], Sequence[FaultEvent]] | None = None
        self._instants: list[FaultInstant] = []

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

    def resend(self) -> None:
        """Send every instant so far to the workers again (e.g. after one joined late)."""
        if self.runner is not None and self._instants:
            send_safely(self.runner, MSG_FAULT, {
                "clock": clock_anchor(), "instants": [i.to_dict() for i in self._instants]})

    def fault_events(self) -> list[FaultEvent]:
        """The controller's fault events, plus those of the faults it has not finalised yet,
        as their instants so far describe them."""
        final: list[FaultEvent] = []
        if self.events_source is not None:
            try:
                final = list(self.events_source())
            except Exception:  # noqa: BLE001 - a live view must not break the run
                log.exception("fault events source failed")
        done = {e.id for e in final}
        return sorted(final + [e for i, e in self.live.items() if i not in done],
                      key=lambda e: e.t_inject)
