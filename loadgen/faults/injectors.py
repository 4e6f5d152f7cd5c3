"""The registry of injectors: name → factory, listable (for ``pegbench list injectors``).

=========  ==========================================================  =====================
name       carries out faults                                          instants
=========  ==========================================================  =====================
``onebox``  through the onebox supervisor (in-process or its socket)   exact: at the signal
``command`` by running ``[injector.command]`` templates                 when the command ends
``none``    not at all: observe only; planned faults are recorded as    —
            events marked not injected
=========  ==========================================================  =====================

A factory takes an :class:`InjectorContext` (the profile's ``[injector]`` and the cluster's own
injector, if it has one) and returns an :class:`~.injector.Injector`. A cluster builds its
injector from here (:meth:`~.cluster.Cluster.injector`); ``onebox`` is the onebox's own
(:class:`loadgen.onebox.cluster.OneboxInjector`), which only the onebox can give.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ..config.schema import InjectorConfig
from ..errors import ConfigError
from .command_injector import CommandInjector
from .injector import ActionRecord, Injector, Node


@dataclass(frozen=True)
class InjectorContext:
    """What a factory may need: the profile's ``[injector]``, and the cluster's own injector."""

    config: InjectorConfig = field(default_factory=InjectorConfig)
    #: The injector the cluster brings (the onebox's supervisor); None for an external one.
    native: Injector | None = None


@dataclass(frozen=True)
class InjectorInfo:
    """One registered injector, for listings."""

    name: str
    summary: str
    instants: str


class NoneInjector:
    """Observes only: injects nothing (someone else may)."""

    name: ClassVar[str] = "none"
    injects: ClassVar[bool] = False

    def apply(self, action: str, node: Node) -> ActionRecord:
        """Never carries anything out; the record says so."""
        now = time.monotonic()
        return ActionRecord(action=action, node=node.name, ok=False, t=None, instant="none",
                            t_sent=now, t_returned=now,
                            error="the 'none' injector observes only")


Factory = Callable[[InjectorContext], Injector]
_REGISTRY: dict[str, tuple[Factory, InjectorInfo]] = {}


def register(name: str, factory: Factory, *, summary: str, instants: str,
             replace: bool = False) -> None:
    """Make ``factory`` available as injector ``name``."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"injector {name!r} is already registered")
    _REGISTRY[name] = (factory, InjectorInfo(name=name, summary=summary, instants=instants))


def create(name: str, context: InjectorContext | None = None) -> Injector:
    """The injector ``name`` built for ``context``; ConfigError for an unknown name or a
    context it cannot work with."""
    if name not in _REGISTRY:
        raise ConfigError("", "injector.kind", f"one of {', '.join(names())}, got {name!r}")
    return _REGISTRY[name][0](context or InjectorContext())


def names() -> tuple[str, ...]:
    """Registered injector names, sorted."""
    return tuple(sorted(_REGISTRY))


def available() -> list[InjectorInfo]:
    """Every registered injector, sorted by name."""
    return [_REGISTRY[name][1] for name in names()]


def _native(context: InjectorContext) -> Injector:
    if context.native is None:
        raise ConfigError("", "injector.kind", "'command' or 'none' without a onebox to drive "
                                               "(the onebox injector reaches only the onebox)")
    return context.native


register("onebox", _native, instants="exact: the supervisor's signal (a restart: READY)",
         summary="kill, pause, resume, terminate, restart through the onebox supervisor")
register("command", lambda context: CommandInjector(context.config.command),
         instants="approximate: when the command returned",
         summary="run the [injector.command] templates ({node} {host} {port}), each under "
                 "timeout_s in its own process group")
register("none", lambda context: NoneInjector(), instants="none: nothing is injected",
         summary="observe only: planned faults are recorded as events marked not injected")
