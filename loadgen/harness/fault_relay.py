"""The seam between the fault controller and the load processes.

:class:`FaultRelay` is a ``FaultListener`` (``fault_at`` / ``heal_at``, see
``loadgen.faults.controller``): give it to the controller in the master or local process. It
marks each instant on this process's recorder, forwards every instant so far to the workers
(``pegbench_fault``), and keeps the faults seen so far for live views (the web UI's Recovery
tab). The controller's final records, when it has them, are richer (kind, node, server
failover times): set :attr:`FaultRelay.events_source` to ``controller.fault_events`` and
:meth:`FaultRelay.fault_events` prefers them, filling in the faults not final yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..metrics import FaultEvent
from .distributed import MSG_FAULT, clock_anchor, send_safely

log = logging.getLogger(__name__)

#: Two instants closer than this are the same fault (controller records vs live marks).
SAME_INSTANT_S = 1e-6


@dataclass
class LiveFault:
    """A fault as announced: when, which partitions, and when it was healed (if yet)."""

    t_inject: float
    partitions: tuple[int, ...] | None
    t_heal: float | None = None


class FaultRelay:
    """Fault listener of the master or local process (see the module docstring)."""

    def __init__(self, recorder, runner=None):
        self.recorder = recorder
        self.runner = runner          # a MasterRunner forwards to workers; None: no workers
        self.live: list[LiveFault] = []
        #: e.g. ``controller.fault_events``: the controller's final fault events
        self.events_source: Callable[[], Sequence[FaultEvent]] | None = None
        self._instants: list[tuple[str, float, list[int] | None]] = []

    def fault_at(self, t: float, partitions: Iterable[int] | None = None) -> None:
        """A fault took effect at monotonic ``t`` touching ``partitions`` (None: all)."""
        parts = None if partitions is None else tuple(sorted(partitions))
        self.recorder.fault_at(t, parts)
        self.live.append(LiveFault(t, parts))
        self._forward("fault", t, parts)

    def heal_at(self, t: float, partitions: Iterable[int] | None = None) -> None:
        """A fault was healed at ``t``."""
        parts = None if partitions is None else tuple(sorted(partitions))
        self.recorder.heal_at(t, parts)
        for fault in reversed(self.live):
            if fault.t_heal is None and fault.t_inject <= t and fault.partitions == parts:
                fault.t_heal = t
                break
        self._forward("heal", t, parts)

    def resend(self) -> None:
        """Send every instant so far to the workers again (e.g. after one joined late)."""
        if self.runner is not None and self._instants:
            send_safely(self.runner, MSG_FAULT, {"clock": clock_anchor(),
                                                 "instants": list(self._instants)})

    def fault_events(self) -> list[FaultEvent]:
        """The controller's fault events, plus provisional ones for faults it has not
        finalised yet (kind and node unknown: ``"?"``)."""
        final: list[FaultEvent] = []
        if self.events_source is not None:
            try:
                final = list(self.events_source())
            except Exception:  # noqa: BLE001 - a live view must not break the run
                log.exception("fault events source failed")
        out = list(final)
        for i, fault in enumerate(self.live, 1):
            if any(abs(e.t_inject - fault.t_inject) < SAME_INSTANT_S for e in final):
                continue
            out.append(FaultEvent(id=f"live-{i}", kind="?", node="?", t_inject=fault.t_inject,
                                  t_heal=fault.t_heal,
                                  affected_partitions=tuple(fault.partitions or ())))
        return sorted(out, key=lambda e: e.t_inject)

    def _forward(self, kind: str, t: float, parts: tuple[int, ...] | None) -> None:
        self._instants.append((kind, t, None if parts is None else list(parts)))
        self.resend()
