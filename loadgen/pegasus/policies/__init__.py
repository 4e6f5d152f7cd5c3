"""Policies: how the client reacts to lost connections, timeouts and error replies.

Each built-in models one client and names the upstream files and commit it follows
(DESIGN.md, "Built-in policies"; PROTOCOL.md §5–7):

======================  ===================================  ===================================
name                    models                               on a primary's crash
======================  ===================================  ===================================
``legacy``              Go client before #1916 (the bug)     calls wait for their deadline;
                                                             nothing refreshes the config
``refresh-on-timeout``  Go client with #1916                 a deadline refreshes (≤ 1/s);
                                                             the op itself fails
``refresh-on-reset``    Go client since #2286 (today's)      only a call that could not connect
                                                             before its deadline refreshes
``java``                Java client                          pending calls fail at once; meta
                                                             queried (≤ 1 per timeout/3); retry
``pypegasus``           Python client (pypegasus)            calls wait for their timeout; every
                                                             5th time-out flags a meta query for
                                                             the next 2 s tick; no retry
``failover``            the new logic                        fail fast; redial + meta queries
                                                             timed to the failure detector's
                                                             window; retry until the deadline
======================  ===================================  ===================================

Register your own with :func:`register`, or name it by dotted path (``"pkg.mod:Class"`` or
``"pkg.mod.Class"``); :func:`create` builds one from a name and a parameter mapping,
:func:`available` lists them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from .base import NOTHING, AttemptContext, Policy, Reaction, check_positive
from .failover import Failover
from .go import Legacy, RefreshOnReset, RefreshOnTimeout
from .java import Java
from .pypegasus import Pypegasus

__all__ = [
    "NOTHING", "AttemptContext", "Policy", "Reaction", "check_positive", "Failover", "Legacy",
    "RefreshOnReset", "RefreshOnTimeout", "Java", "Pypegasus", "PolicyInfo", "register", "create",
    "available", "BUILTINS", "FD_PARAMS", "with_failure_detector",
]

_REGISTRY: dict[str, Callable[..., Policy]] = {}


@dataclass(frozen=True)
class PolicyInfo:
    """One registered policy, for ``pegbench list policies``."""

    name: str
    summary: str
    models: str
    source: str
    params: dict[str, Any]  # parameter -> default


def register(name: str, factory: Callable[..., Policy]) -> None:
    """Make ``factory(**params)`` available as policy ``name``."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"policy {name!r} is already registered")
    _REGISTRY[name] = factory


def create(spec: str | Policy, params: Mapping[str, Any] | None = None) -> Policy:
    """A policy from a registered name, a dotted path, or an instance (returned as is).

    ``params`` override the policy's fields; a name that is not one of them is a
    :class:`ConfigError` naming it (key ``policy_params.<name>``).
    """
    params = dict(params or {})
    if isinstance(spec, Policy):
        if params:
            raise ConfigError("", "policy_params", "no parameters when passing a policy instance")
        return spec
    if not isinstance(spec, str):
        raise ConfigError("", "policy", f"a policy name, dotted path or instance, got {spec!r}")
    factory = _REGISTRY.get(spec) or _import(spec)
    if inspect.isclass(factory) and not issubclass(factory, Policy):
        raise ConfigError("", "policy", f"{spec} to name a loadgen.pegasus.policies.Policy")
    known = _defaults(factory)
    if dataclasses.is_dataclass(factory):
        for key in params:
            if key not in known:
                raise ConfigError("", f"policy_params.{key}",
                                  f"a parameter of policy {spec!r}: one of {sorted(known)}")
    try:
        policy = factory(**params)
    except TypeError as exc:
        raise ConfigError("", "policy_params", f"parameters of policy {spec!r} among "
                                               f"{sorted(known)} ({exc})") from exc
    if not isinstance(policy, Policy):
        raise ConfigError("", "policy", f"{spec} to build a loadgen.pegasus.policies.Policy")
    return policy


#: The parameters that tell a policy the cluster's failure-detector timings (ms).
FD_PARAMS = ("fd_beacon_ms", "fd_check_ms", "fd_grace_ms")


def with_failure_detector(spec: str, params: Mapping[str, Any] | None, *, beacon_s: float,
                          check_s: float, grace_s: float) -> dict[str, Any]:
    """``params`` plus the cluster's failure-detector timings, for a policy that takes them
    (:data:`FD_PARAMS`) and was not given any; other policies' params come back as they are."""
    params = dict(params or {})
    factory = _REGISTRY.get(spec)
    if factory is None or any(p in params for p in FD_PARAMS) or not set(FD_PARAMS) <= set(
            _defaults(factory)):
        return params
    params.update(zip(FD_PARAMS, (beacon_s * 1000, check_s * 1000, grace_s * 1000)))
    return params


def available() -> list[PolicyInfo]:
    """Every registered policy with its one-line summary, model, source and parameters."""
    return [PolicyInfo(name, (inspect.getdoc(factory) or "").partition("\n")[0],
                       getattr(factory, "models", ""), getattr(factory, "source", ""),
                       _defaults(factory))
            for name, factory in sorted(_REGISTRY.items())]


def _defaults(factory: Callable[..., Policy]) -> dict[str, Any]:
    if not dataclasses.is_dataclass(factory):
        return {}
    return {f.name: f.default for f in dataclasses.fields(factory)}


def _import(path: str) -> Callable[..., Policy]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError("", "policy", f"one of {sorted(_REGISTRY)} or a dotted path "
                                        f"'pkg.mod:Class', got {path!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("", "policy", f"an importable policy at {path!r} ({exc})") from exc


#: The built-in policies, old to new.
BUILTINS = (Legacy, RefreshOnTimeout, RefreshOnReset, Java, Pypegasus, Failover)
for _cls in BUILTINS:
    register(_cls.name, _cls)
