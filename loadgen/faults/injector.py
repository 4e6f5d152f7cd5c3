"""The injector interface: one method that applies one action to one node, and its record.

An injector carries out the actions fault kinds are made of (:mod:`loadgen.fault_kinds`): ``kill``
(SIGKILL), ``pause`` (SIGSTOP), ``resume`` (SIGCONT), ``terminate`` (SIGTERM, wait for the
exit) and ``restart`` (start again, stopping first if alive). ``apply`` never raises for a
failed action: it returns an :class:`ActionRecord` saying what happened, so a failure lands in
the fault event instead of ending the run. Implementations: the onebox's
(:mod:`loadgen.onebox.cluster`), :mod:`.command_injector`; the registry is :mod:`.injectors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..pegasus.addr import parse_addr

#: What an :class:`ActionRecord`'s ``t`` is (its ``instant``):
SIGNAL = "signal"              # taken by the supervisor right at the signal (exact)
READY = "ready"                # a restarted node's READY line (exact)
COMMAND_END = "command-end"    # the command returned: the fault took effect in [t_sent, t]


@dataclass(frozen=True)
class Node:
    """A resolved fault target: a node's name and address."""

    name: str
    host: str
    port: int

    @classmethod
    def at(cls, name: str, addr: str) -> Node:
        """The node called ``name`` at ``addr`` (``host:port``)."""
        host, port = parse_addr(addr)
        return cls(name=name, host=host, port=port)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ActionRecord:
    """One action an injector carried out (or failed to); monotonic seconds.

    ``t`` is when the action took effect, as well as the injector can tell (``instant`` says
    how it knows); None when it failed. ``uncertain``: a failed action that may still have
    taken effect (a command that timed out or failed halfway), so its fault must be healed.
    """

    action: str
    node: str
    ok: bool
    t: float | None
    instant: str
    t_sent: float
    t_returned: float
    error: str = ""
    uncertain: bool = False
    #: Injector-specific facts: the command, exit code, output tail; the node's pid, state.
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "node": self.node, "ok": self.ok, "t": self.t,
                "instant": self.instant, "t_sent": self.t_sent, "t_returned": self.t_returned,
                "error": self.error, "uncertain": self.uncertain, "detail": dict(self.detail)}


class Injector(Protocol):
    """Carries out actions on nodes; ``apply`` blocks until the action took effect."""

    #: Registry name (``[injector] kind``).
    name: ClassVar[str]
    #: False: observes only (``none``); the controller records planned faults, injects nothing.
    injects: ClassVar[bool]

    def apply(self, action: str, node: Node) -> ActionRecord:
        """Apply ``action`` (one of :data:`loadgen.node_actions.ACTIONS`) to ``node``; never
        raises for a failure."""
        ...
