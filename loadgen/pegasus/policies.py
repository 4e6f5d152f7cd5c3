"""Policies: how the client reacts to lost connections, timeouts and error replies.

A policy is a small object the client consults on each event. It never touches sockets or the
meta itself: each ``on_*`` hook answers with a :class:`Reaction` (refresh the config now, in
the background or not at all; retry or not; re-poll the meta while the primary is gone), and
two settings shape the sessions (fail pending calls on a lost connection; reconnect throttle).
Parameters are plain dataclass fields with defaults, so a profile can override them.

Built-ins (DESIGN.md, "Built-in policies"):

=====================  ================================  ==========================================
name                   models                            behaviour
=====================  ================================  ==========================================
``legacy``             Go client before the fix          lost connection: pending calls wait for
                                                         their deadline; redial ≤ 1 per 60 s;
                                                         ERR_OBJECT_NOT_FOUND / ERR_INVALID_STATE
                                                         refresh the config; a config naming no
                                                         primary keeps the old route; never retries
``refresh-on-timeout`` Go client after PR #1916          as legacy, plus a background refresh
                                                         (≤ 1 per s) when an op times out
``failover``           the new logic                     lost connection fails pending calls at
                                                         once; refresh at once; retry with capped
                                                         exponential backoff + full jitter until
                                                         the op deadline; per-attempt timeout;
                                                         re-poll the meta while the primary is gone
=====================  ================================  ==========================================

Register your own with :func:`register`, or name it by dotted path (``"pkg.mod:Class"`` or
``"pkg.mod.Class"``); :func:`create` builds one, :func:`available` lists them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import random
from dataclasses import dataclass
from typing import Any, ClassVar
from collections.abc import Callable

from ..errors import ConfigError
from . import error_codes

NO_REFRESH, REFRESH_NOW, REFRESH_BACKGROUND = "none", "now", "background"


@dataclass(frozen=True)
class Reaction:
    """What the client does after a failed attempt."""

    #: "none"; "now": wait for a refresh (coalesced per table) before going on; "background".
    refresh: str = NO_REFRESH
    #: Background refreshes only: skip if one started less than this long ago.
    refresh_min_interval_s: float = 0.0
    #: Try again, after :meth:`Policy.backoff_s`, while the op deadline allows.
    retry: bool = False
    #: > 0: the primary counts as gone; re-poll the meta this often until the config changes.
    repoll_s: float = 0.0


NOTHING = Reaction()


@dataclass(frozen=True)
class AttemptContext:
    """The failed attempt a hook is asked about."""

    op: str
    table: str
    partition: int
    node: str | None
    attempt: int
    time_left_s: float  # until the op deadline


class Policy:
    """Base of every policy: the hooks, with "do nothing, don't retry" defaults."""

    #: Registry name; also tags every :class:`~loadgen.pegasus.outcome.Outcome`.
    name: ClassVar[str] = ""
    #: Lost connection: fail waiting calls at once (True) or let them wait for their deadline.
    fail_pending_on_loss: ClassVar[bool] = True
    #: A disconnected session dials at most once per this many seconds (0: whenever needed).
    reconnect_interval_s: float = 0.0
    #: A refreshed config naming no primary for a partition: keep the old route (True, as the
    #: Go client keeps its old routing) or record "no primary" (False, :meth:`on_no_primary`).
    keep_routes_without_primary: ClassVar[bool] = False

    def attempt_timeout_s(self, op_timeout_s: float) -> float:
        """How long one attempt may wait for its reply."""
        return op_timeout_s

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        """The attempt failed with ERR_SESSION_RESET (EOF, reset, refused connect)."""
        return NOTHING

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        """The attempt got no reply in time (``ctx.time_left_s <= 0``: the op deadline passed)."""
        return NOTHING

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        """A server answered with error name ``code``."""
        return NOTHING

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        """The cached config names no primary for the partition: nothing was sent."""
        return NOTHING

    def backoff_s(self, retry: int) -> float:
        """Pause before retry number ``retry`` (1 = the first retry)."""
        return 0.0


@dataclass(frozen=True)
class Legacy(Policy):
    """Go client before apache/incubator-pegasus#1916: EOF leaves calls waiting, no retry."""

    name: ClassVar[str] = "legacy"
    fail_pending_on_loss: ClassVar[bool] = False
    keep_routes_without_primary: ClassVar[bool] = True
    reconnect_interval_s: float = 60.0
    #: Background refreshes start at most this often (Go's loopForAutoUpdate sleeps 1 s).
    refresh_interval_s: float = 1.0

    def __post_init__(self) -> None:
        _check(self, "reconnect_interval_s", minimum=0.0)
        _check(self, "refresh_interval_s")

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        if code in ("ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE"):
            return self._background_refresh()
        return NOTHING

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        return self._background_refresh()

    def _background_refresh(self) -> Reaction:
        return Reaction(refresh=REFRESH_BACKGROUND, refresh_min_interval_s=self.refresh_interval_s)


@dataclass(frozen=True)
class RefreshOnTimeout(Legacy):
    """Go client after PR #1916: as legacy, and a timed-out op refreshes in the background."""

    name: ClassVar[str] = "refresh-on-timeout"

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return self._background_refresh()


@dataclass(frozen=True)
class Failover(Policy):
    """The new logic: fail fast on a lost connection, refresh at once, retry until the deadline."""

    name: ClassVar[str] = "failover"
    #: Per-attempt timeout; None means a third of the op timeout.
    attempt_timeout_ms: float | None = None
    backoff_base_ms: float = 10.0
    backoff_multiplier: float = 2.0
    backoff_cap_ms: float = 200.0
    repoll_ms: float = 10.0

    def __post_init__(self) -> None:
        _check(self, "backoff_base_ms", "backoff_multiplier", "backoff_cap_ms", "repoll_ms")
        if self.attempt_timeout_ms is not None:  # None: the default third
            _check(self, "attempt_timeout_ms")

    def attempt_timeout_s(self, op_timeout_s: float) -> float:
        if self.attempt_timeout_ms is None:
            return op_timeout_s / 3
        return min(op_timeout_s, self.attempt_timeout_ms / 1000)

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        return Reaction(refresh=REFRESH_NOW, retry=True, repoll_s=self.repoll_ms / 1000)

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return Reaction(refresh=REFRESH_NOW, retry=True)

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        info = error_codes.info(code)
        return Reaction(refresh=REFRESH_NOW if info.refresh else NO_REFRESH, retry=info.retriable)

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        return Reaction(refresh=REFRESH_NOW, retry=True, repoll_s=self.repoll_ms / 1000)

    def backoff_s(self, retry: int) -> float:
        # Full jitter: uniform in [0, min(cap, base * multiplier^(retry-1))]. The exponent is
        # capped only so the float cannot overflow on very long ops.
        ceiling = min(self.backoff_cap_ms,
                      self.backoff_base_ms * self.backoff_multiplier ** min(retry - 1, 64))
        return random.uniform(0.0, ceiling) / 1000


def _check(policy: Policy, *names: str, minimum: float | None = None) -> None:
    """Raise ConfigError unless each field is a number > 0 (or >= ``minimum``, if given)."""
    for field in names:
        value = getattr(policy, field)
        ok = value > 0 if minimum is None else value >= minimum
        if not ok:
            expected = "a positive number" if minimum is None else f"a number >= {minimum:g}"
            raise ConfigError("", f"policies.params.{policy.name}.{field}",
                              f"{expected}, got {value!r}")


# ---------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., Policy]] = {}


@dataclass(frozen=True)
class PolicyInfo:
    """One registered policy, for ``pegbench list policies``."""

    name: str
    summary: str
    params: dict[str, Any]  # parameter -> default


def register(name: str, factory: Callable[..., Policy]) -> None:
    """Make ``factory(**params)`` available as policy ``name``."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"policy {name!r} is already registered")
    _REGISTRY[name] = factory


def create(spec: str | Policy, **params: Any) -> Policy:
    """A policy from a registered name, a dotted path, or an instance (returned as is)."""
    if isinstance(spec, Policy):
        if params:
            raise ConfigError("", "policies.params", "no parameters when passing a policy instance")
        return spec
    if not isinstance(spec, str):
        raise ConfigError("", "policy", f"a policy name, dotted path or instance, got {spec!r}")
    factory = _REGISTRY.get(spec) or _import(spec)
    try:
        policy = factory(**params)
    except TypeError as exc:
        raise ConfigError("", f"policies.params.{spec}",
                          f"parameters among {sorted(_defaults(factory))} ({exc})") from exc
    if not isinstance(policy, Policy):
        raise ConfigError("", "policy", f"{spec} to build a loadgen.pegasus.policies.Policy")
    return policy


def available() -> list[PolicyInfo]:
    """Every registered policy with its one-line summary and parameter defaults."""
    return [PolicyInfo(name, (inspect.getdoc(factory) or "").partition("\n")[0], _defaults(factory))
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


for _cls in (Legacy, RefreshOnTimeout, Failover):
    register(_cls.name, _cls)
