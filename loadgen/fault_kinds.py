"""The registry of fault kinds: each a small bundle, as in Jepsen's nemesis packages.

A bundle carries what the profile checks and the reports show (its name, a one-line
description, a colour to shade its windows on timelines, the one timing parameter it takes and
whether that is required, the command-injector templates it uses) and what the fault
controller runs: ``inject(injector, node)`` and ``heal(injector, node)``, each one action of an
:class:`~loadgen.faults.injector.Injector` returning its
:class:`~loadgen.faults.injector.ActionRecord`.

======  =====================  ==========================  =================================
kind    inject                 heal (after its parameter)  command templates
======  =====================  ==========================  =================================
kill    SIGKILL                restart (if restart_after)  kill, restart
pause   SIGSTOP                SIGCONT                     pause, resume
restart SIGTERM (terminate)    restart                     restart (there is no template for
                                                           SIGTERM: see the command injector)
======  =====================  ==========================  =================================

A user kind is registered with :func:`register` (``replace=True`` to swap a built-in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import node_actions as actions

if TYPE_CHECKING:   # the steps only pass an injector its action: no import at run time
    from .faults.injector import ActionRecord, Injector, Node

#: Timing parameters a kind may take.
DURATION_S = "duration_s"
RESTART_AFTER_S = "restart_after_s"


#: ``inject``/``heal``: one action of an injector on a node.
Step = Callable[["Injector", "Node"], "ActionRecord"]


def _kill(injector: Injector, node: Node) -> ActionRecord:
    return injector.apply(actions.KILL, node)


def _pause(injector: Injector, node: Node) -> ActionRecord:
    return injector.apply(actions.PAUSE, node)


def _resume(injector: Injector, node: Node) -> ActionRecord:
    return injector.apply(actions.RESUME, node)


def _terminate(injector: Injector, node: Node) -> ActionRecord:
    return injector.apply(actions.TERMINATE, node)


def _restart(injector: Injector, node: Node) -> ActionRecord:
    return injector.apply(actions.RESTART, node)


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: display metadata, its timing parameter, and its inject/heal steps."""

    name: str
    description: str
    #: CSS colour of this kind's fault windows in report timelines.
    colour: str
    #: The timing parameter that sets when the fault heals (``duration_s`` or ``restart_after_s``).
    param: str
    #: False: the parameter may be left out (a kill without restart stays dead).
    param_required: bool
    #: Templates of ``[injector.command]`` the command injector runs for this kind; the second
    #: one, if any, heals (resume, restart) and is needed only when the fault heals.
    commands: tuple[str, ...]
    #: Puts the fault in place (its instant is the fault event's t_inject).
    inject: Step = dataclasses.field(compare=False, repr=False)
    #: Undoes it after the timing parameter (its instant is t_heal); a kill without
    #: ``restart_after_s`` is healed only when a run is interrupted.
    heal: Step = dataclasses.field(compare=False, repr=False)

    @property
    def usage(self) -> str:
        """The parameter as a profile writes it: ``duration_s`` or ``[restart_after_s]``."""
        return self.param if self.param_required else f"[{self.param}]"


KILL = FaultKind(
    name="kill", description="SIGKILL the node (the core dump); restarted after "
                             "restart_after_s if given, else it stays dead",
    colour="#d62728", param=RESTART_AFTER_S, param_required=False, commands=("kill", "restart"),
    inject=_kill, heal=_restart)
PAUSE = FaultKind(
    name="pause", description="SIGSTOP the node for duration_s, then SIGCONT: a hang with its "
                              "TCP connections still open",
    colour="#ff7f0e", param=DURATION_S, param_required=True, commands=("pause", "resume"),
    inject=_pause, heal=_resume)
RESTART = FaultKind(
    name="restart", description="SIGTERM the node, start it again after restart_after_s",
    colour="#1f77b4", param=RESTART_AFTER_S, param_required=True,
    commands=("terminate", "restart"),
    inject=_terminate, heal=_restart)

_REGISTRY: dict[str, FaultKind] = {}


def register(kind: FaultKind, *, replace: bool = False) -> None:
    """Add ``kind``; ``replace=True`` swaps an existing entry of the same name."""
    if kind.name in _REGISTRY and not replace:
        raise ValueError(f"fault kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind


def get(name: str) -> FaultKind:
    """The kind called ``name``; KeyError if there is none."""
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Registered kind names, sorted."""
    return tuple(sorted(_REGISTRY))


def available() -> list[FaultKind]:
    """Every registered kind, sorted by name (for ``pegbench list faults``)."""
    return [_REGISTRY[name] for name in names()]


for _kind in (KILL, PAUSE, RESTART):
    register(_kind)
