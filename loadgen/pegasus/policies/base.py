"""Policy base: the hooks the client asks after each failed attempt, and their answer.

A policy is a small frozen object. It never touches sockets or the meta itself: each ``on_*``
hook answers with a :class:`Reaction` (refresh or not; retry or not, after what), and a few
settings shape the rest (:meth:`Policy.session_rules` for connections, :meth:`make_refresher`
for how meta queries are paced, :attr:`reroute_retries`, :attr:`config_apply`). Parameters
are plain dataclass fields with defaults; :func:`check_positive` validates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...errors import ConfigError
from ..refresh import MetaPoller, Refresher
from ..routing import APPLY_REPLACE, TableRouting
from ..session import Session, SessionRules

if TYPE_CHECKING:
    from ..outcome import Outcome
    from ..probe import ReplicaProbe


@dataclass(frozen=True)
class Reaction:
    """What the client does after a failed attempt."""

    #: Ask the policy's refresher for a newer partition config (it may pace or drop this).
    refresh: bool = False
    #: Try again within the op, while its deadline allows.
    retry: bool = False
    #: Pause this long before the retry (replies to earlier attempts still count meanwhile).
    delay_s: float = 0.0
    #: Before the retry, also wait until a config newer than the failed attempt's is in.
    wait_for_refresh: bool = False
    #: The primary is unreachable: before the retry, wait until the config names another
    #: primary (or a higher ballot) or a redial of the primary succeeds, whichever is first.
    wait_for_route: bool = False
    #: The attempt got no reply in time but stays pending: send again only once the config
    #: names another primary or a higher ballot (a slow primary gets each write once).
    keep_waiting: bool = False
    #: Count one strike toward the refresher's own threshold instead of asking it outright
    #: (pypegasus: every fifth time-out flags a meta query); a refresher without a
    #: ``strike`` method takes it as a plain request.
    strike: bool = False


NOTHING = Reaction()


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """The failed attempt a hook is asked about."""

    op: str
    table: str
    partition: int
    node: str | None
    attempt: int          # this attempt's number in its op (1 = the first)
    retries: int          # retries the op has made so far
    time_left_s: float    # until the op deadline (<= 0: it has passed)
    op_timeout_s: float


class Policy:
    """Base of every policy: the hooks, with "do nothing, don't retry" defaults."""

    #: Registry name; also tags every :class:`~loadgen.pegasus.outcome.Outcome`.
    name: ClassVar[str] = ""
    #: The client it models, in a few words (reports and ``pegbench list policies``).
    models: ClassVar[str] = ""
    #: Upstream files and commit it follows ("" for an original design).
    source: ClassVar[str] = ""
    #: Retries re-read the config (True), or reuse the route the op started with, as the Go
    #: client's ``runPartitionOp`` picks gpid and session once, before its retry loop.
    reroute_retries: ClassVar[bool] = True
    #: How a meta answer is applied (:mod:`loadgen.pegasus.routing`).
    config_apply: ClassVar[str] = APPLY_REPLACE
    #: An attempt may outlive the op deadline (each Java attempt has the full op timeout).
    attempt_outlives_op: ClassVar[bool] = False
    #: While an attempt waits, a config (fetched for any op) naming another primary sends
    #: the op there at once; the waiting attempt's reply still counts.
    follow_route_moves: ClassVar[bool] = False

    def session_rules(self) -> SessionRules:
        """How this policy's sessions treat lost connections, dials and silent servers."""
        return SessionRules()

    def make_refresher(self, routing: TableRouting, op_timeout_s: float) -> Refresher:
        """The object that paces this policy's meta queries for one table (default: one
        query in flight, requests during it share it)."""
        return MetaPoller(routing, 0.0)

    def make_probe(self, routing: TableRouting, session: Callable[[str], Session],
                   emit: Callable[[Outcome], None] | None) -> ReplicaProbe | None:
        """The object that asks one table's replicas who is primary when a primary goes
        silent (:mod:`loadgen.pegasus.probe`), or None (default: the meta alone is asked)."""
        return None

    def attempt_timeout_s(self, op_timeout_s: float) -> float:
        """How long one attempt waits for its reply before :meth:`on_timeout`."""
        return op_timeout_s

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        """The attempt failed with ERR_SESSION_RESET: its connection was lost."""
        return NOTHING

    def on_not_connected(self, ctx: AttemptContext) -> Reaction:
        """No connection could be had for the attempt (nothing was sent)."""
        return self.on_connection_lost(ctx)

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        """No reply within :meth:`attempt_timeout_s` (``ctx.time_left_s <= 0``: the op
        deadline passed)."""
        return NOTHING

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        """A server answered with error name ``code``."""
        return NOTHING

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        """The cached config names no primary for the partition: nothing was sent."""
        return NOTHING

    def on_unresponsive(self) -> Reaction:
        """A connection read nothing for its read timeout while writes were recent."""
        return NOTHING

    def backoff_s(self, retry: int) -> float:
        """Pause before retry number ``retry`` (1 = the first retry)."""
        return 0.0


def check_positive(policy: Policy, *names: str, minimum: float | None = None,
                   optional: bool = False) -> None:
    """Raise ConfigError unless each field is a number > 0 (or >= ``minimum``); with
    ``optional`` a field may also be None."""
    for field in names:
        value = getattr(policy, field)
        if optional and value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and (value > 0 if minimum is None else value >= minimum)
        if not ok:
            expected = "a positive number" if minimum is None else f"a number >= {minimum:g}"
            if optional:
                expected += " or None"
            raise ConfigError("", f"policy_params.{field}",
                              f"{expected} ({policy.name}), got {value!r}")
