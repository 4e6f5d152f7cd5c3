"""pegbench's own events, declared once, in Locust's style: each an :class:`EventHook` whose
listeners ``fire(**kwargs)`` calls in the order they were added. A listener that raises is
logged and the others still run: no listener's bug stops a fault or a run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class EventHook:
    """One event's listeners."""

    def __init__(self, name: str):
        self.name = name
        self._listeners: list[Callable[..., Any]] = []

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``listener(**kwargs)`` on every :meth:`fire` (returns it: usable as a decorator)."""
        self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[..., Any]) -> None:
        self._listeners.remove(listener)

    def fire(self, **kwargs: Any) -> None:
        """Call every listener with ``kwargs``; a failing one is logged, never raised."""
        for listener in list(self._listeners):
            try:
                listener(**kwargs)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the run
                log.exception("pegbench event %s: listener %r failed", self.name, listener)


@dataclass
class Events:
    """The events of one run (one process)."""

    #: ``instant``: a :class:`~loadgen.metrics.FaultInstant`, a fault taking effect or being
    #: healed (fired by the fault controller)
    fault_instant: EventHook = field(default_factory=lambda: EventHook("fault_instant"))
    #: ``event``: a :class:`~loadgen.metrics.FaultEvent`, a fault's final record (healed,
    #: skipped, or held to the run's end; with server failover times), fired by the controller
    fault_recorded: EventHook = field(default_factory=lambda: EventHook("fault_recorded"))
    #: ``report``: a worker's final report, just sent to its master (fired by the worker's
    #: reporter when the master flushes)
    final_reported: EventHook = field(default_factory=lambda: EventHook("final_reported"))
    #: no arguments: warm-up ended and the recorder was reset (fired by the workload)
    warmup_ended: EventHook = field(default_factory=lambda: EventHook("warmup_ended"))
