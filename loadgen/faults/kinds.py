"""The registry of fault kinds: each a small bundle, as in Jepsen's nemesis packages.

For now a bundle carries what the profile checks and the reports show: its name, a one-line
description, a colour to shade its windows on timelines, the one timing parameter it takes
(and whether that is required), and the command-injector templates it uses.

``inject`` and ``heal`` are the seam for the fault controller: they are None here, and the
controller module fills them in (``register(dataclasses.replace(get("kill"), inject=...,
heal=...), replace=True)``). Nothing here calls them: a kind whose functions are still None
cannot be injected yet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

#: Timing parameters a kind may take.
DURATION_S = "duration_s"
RESTART_AFTER_S = "restart_after_s"


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: display metadata, its timing parameter, and (later) inject/heal."""

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
    #: Bound by the fault controller; None until then (see the module docstring).
    inject: Callable[..., Any] | None = dataclasses.field(default=None, compare=False)
    heal: Callable[..., Any] | None = dataclasses.field(default=None, compare=False)

    @property
    def usage(self) -> str:
        """The parameter as a profile writes it: ``duration_s`` or ``[restart_after_s]``."""
        return self.param if self.param_required else f"[{self.param}]"


KILL = FaultKind(
    name="kill", description="SIGKILL the node (the core dump); restarted after "
                             "restart_after_s if given, else it stays dead",
    colour="#d62728", param=RESTART_AFTER_S, param_required=False, commands=("kill", "restart"))
PAUSE = FaultKind(
    name="pause", description="SIGSTOP the node for duration_s, then SIGCONT: a hang with its "
                              "TCP connections still open",
    colour="#ff7f0e", param=DURATION_S, param_required=True, commands=("pause", "resume"))
RESTART = FaultKind(
    name="restart", description="SIGTERM the node, start it again after restart_after_s",
    colour="#1f77b4", param=RESTART_AFTER_S, param_required=True, commands=("restart",))

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
