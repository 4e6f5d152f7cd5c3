"""The ``onebox`` injector: actions through a onebox supervisor, with its exact instants.

It drives an :class:`~loadgen.onebox.supervisor.Onebox` in this process, or an
:class:`~loadgen.onebox.control_client.OneboxControl` for a onebox started with
``pegbench onebox start``: both answer each action with a
:class:`~loadgen.onebox.fault_applied.FaultApplied` whose instants the supervisor took right at
the signal (and at a restarted node's READY). Those instants are the fault's, not when the
request was sent: a round trip through the control socket adds 1-300 ms that no TTR should
carry.
"""

from __future__ import annotations

import time
from typing import ClassVar, Protocol

from ..node_actions import ACTIONS, RESTART
from ..onebox.fault_applied import FaultApplied
from .cooperative import run_blocking
from .injector import READY, SIGNAL, ActionRecord, Node


class OneboxDriver(Protocol):
    """What :class:`OneboxInjector` needs: ``Onebox`` and ``OneboxControl`` both are one."""

    def kill(self, node: str) -> FaultApplied: ...
    def pause(self, node: str) -> FaultApplied: ...
    def resume(self, node: str) -> FaultApplied: ...
    def terminate(self, node: str) -> FaultApplied: ...
    def restart(self, node: str) -> FaultApplied: ...
    def status(self) -> dict: ...


class OneboxInjector:
    """Applies actions through ``driver`` (in gevent's threadpool: the calls block)."""

    name: ClassVar[str] = "onebox"
    injects: ClassVar[bool] = True

    def __init__(self, driver: OneboxDriver):
        self.driver = driver

    def apply(self, action: str, node: Node) -> ActionRecord:
        """Run ``action`` on ``node``; ``t`` is the signal's instant (a restart's: READY)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        instant = READY if action == RESTART else SIGNAL
        t_sent = time.monotonic()
        try:
            applied = run_blocking(getattr(self.driver, action), node.name)
        except Exception as exc:  # noqa: BLE001 - a failed action is recorded, never fatal
            # The supervisor reports errors before acting (unknown node, an unreported
            # crash) or after a restart that did not come up; neither leaves a fault to heal.
            return ActionRecord(action=action, node=node.name, ok=False, t=None,
                                instant=instant, t_sent=t_sent, t_returned=time.monotonic(),
                                error=f"{type(exc).__name__}: {exc}")
        t_returned = time.monotonic()
        t = applied.t_ready if action == RESTART else applied.t_signal
        detail = {"pid": applied.pid, "state": applied.state, "t_signal": applied.t_signal,
                  "t_ready": applied.t_ready}
        if t is None:
            return ActionRecord(action=action, node=node.name, ok=False, t=None, instant=instant,
                                t_sent=t_sent, t_returned=t_returned, detail=detail,
                                error=f"nothing was signalled: {node.name} was already "
                                      f"{applied.state}")
        return ActionRecord(action=action, node=node.name, ok=True, t=t, instant=instant,
                            t_sent=t_sent, t_returned=t_returned, detail=detail)
