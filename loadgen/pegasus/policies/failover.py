"""``failover``: the new logic, fast and cheap (DESIGN.md, "Built-in policies")."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from ...errors import ConfigError
from .. import error_codes
from ..outcome import Outcome
from ..probe import ReplicaProbe
from ..refresh import FailureDetector, FailureDetectorPoller, MetaPoller, Refresher
from ..routing import TableRouting
from ..session import Session, SessionRules
from .base import NOTHING, AttemptContext, Policy, Reaction, check_positive

#: A probe read waits at least this long for its answer (a dial to a node not asked before
#: comes first).
PROBE_MIN_TIMEOUT_S = 0.1
_UNREACHABLE = Reaction(refresh=True, retry=True, wait_for_route=True)
_SLOW = Reaction(refresh=True, retry=True, keep_waiting=True)


@dataclass(frozen=True)
class Failover(Policy):
    """The new logic: fail fast on a lost connection, poll the meta (paced) and redial, retry until the deadline.

    * A lost connection fails its pending calls at once. While the config still names the
      unreachable primary, the op redials it (backoff) and waits for the meta poller; whichever
      answers first wins.
    * No reply for ``attempt_timeout_ms``: keep waiting and poll the meta (at the poller's
      pace) until the config names another primary; only then send again. A config another
      op fetched that names another primary redirects a waiting op at once. A reply to any
      attempt completes the op, so a slow primary gets each write once.
    * Error replies retry per the error registry (:mod:`loadgen.pegasus.error_codes`), those
      that call for it after a refresh, all after a capped exponential backoff with full jitter.
    * Meta queries: at most one in flight and one per ``repoll_ms`` per table per client,
      however many ops wait (:class:`~loadgen.pegasus.refresh.MetaPoller`); with
      ``repoll_max_ms`` the interval doubles while answers change nothing.
    * Told the cluster's failure-detector timings (``fd_beacon_ms``, ``fd_check_ms``,
      ``fd_grace_ms``: the cluster's ``fd_beacon_interval_seconds``,
      ``fd_check_interval_seconds`` and ``fd_grace_seconds``), it does not ask the meta
      about a primary that went silent or was lost until the meta can have replaced it
      (queries before that cannot find anything): the window opens ``grace − beacon`` after
      the primary was last heard and closes ``grace + check`` after it was gone. In it, it
      asks on a ``repoll_ms`` grid laid back from the window's end (never two queries closer
      than ``repoll_ms``), so the last query falls when the new config must be there: a kill costs ``(beacon + check) / repoll_ms + 1``
      queries at most (one if ``repoll_ms`` is wider than the window) and is seen at most
      ``repoll_ms`` late; a pause shorter than the window's opening and a slow primary cost
      none. Past the window, one query per ``repoll_max_ms`` (default: the window's width).
      (:class:`~loadgen.pegasus.refresh.FailureDetectorPoller`.) Error replies and a config
      without a primary are paced by ``repoll_ms`` alone.
    * ``probe_replicas`` (with the timings): through that window, ask the silent primary's
      secondaries (from the last config) on the same grid which of them is primary now, a
      read each, instead of the meta; the meta is asked only after the window
      (:class:`~loadgen.pegasus.probe.ReplicaProbe`). A kill then costs the meta nothing
      and ``len(secondaries)`` replica queries per grid point. No upstream client does this.
    """

    name: ClassVar[str] = "failover"
    models: ClassVar[str] = "the new logic"
    follow_route_moves: ClassVar[bool] = True
    #: Per-attempt wait for a reply before refreshing; None: a third of the op timeout.
    attempt_timeout_ms: float | None = None
    backoff_base_ms: float = 10.0
    backoff_multiplier: float = 2.0
    backoff_cap_ms: float = 200.0
    repoll_ms: float = 10.0
    #: Back off the meta polling up to this while nothing changes; None: never. With the
    #: failure-detector timings: the pace after the window.
    repoll_max_ms: float | None = None
    #: The cluster's failure-detector timings; all three or none (None: not known).
    fd_beacon_ms: float | None = None
    fd_check_ms: float | None = None
    fd_grace_ms: float | None = None
    #: Through the failure detector's window, ask the silent primary's secondaries which of
    #: them is primary now instead of the meta (needs the timings; no upstream client does).
    probe_replicas: bool = False

    def __post_init__(self) -> None:
        check_positive(self, "backoff_base_ms", "backoff_multiplier", "backoff_cap_ms", "repoll_ms")
        check_positive(self, "attempt_timeout_ms", "repoll_max_ms", "fd_beacon_ms",
                       "fd_check_ms", "fd_grace_ms", optional=True)
        fd = (self.fd_beacon_ms, self.fd_check_ms, self.fd_grace_ms)
        if None in fd and fd != (None, None, None):
            raise ConfigError("", "policy_params.fd_grace_ms",
                              f"all of fd_beacon_ms, fd_check_ms and fd_grace_ms, or none "
                              f"({self.name}), got {fd}")
        if not isinstance(self.probe_replicas, bool):
            raise ConfigError("", "policy_params.probe_replicas",
                              f"true or false ({self.name}), got {self.probe_replicas!r}")
        if self.probe_replicas and self.fd_grace_ms is None:
            raise ConfigError("", "policy_params.probe_replicas",
                              f"the failure-detector timings fd_beacon_ms, fd_check_ms and "
                              f"fd_grace_ms along with it ({self.name})")
        if self.fd_grace_ms is not None and self.fd_grace_ms <= self.fd_beacon_ms:
            raise ConfigError("", "policy_params.fd_grace_ms",
                              f"more than fd_beacon_ms ({self.fd_beacon_ms:g}) ({self.name}), "
                              f"got {self.fd_grace_ms!r}")
        if self.repoll_max_ms is not None and self.repoll_max_ms < self.repoll_ms:
            raise ConfigError("", "policy_params.repoll_max_ms",
                              f"at least repoll_ms ({self.repoll_ms:g}) ({self.name}), "
                              f"got {self.repoll_max_ms!r}")

    def session_rules(self) -> SessionRules:
        return SessionRules(fail_pending_on_loss=True, redial_backoff=self.backoff_s)

    @property
    def failure_detector(self) -> FailureDetector | None:
        """The cluster's failure-detector timings, if the policy was told them."""
        if self.fd_grace_ms is None:
            return None
        return FailureDetector(self.fd_beacon_ms / 1000, self.fd_check_ms / 1000,
                               self.fd_grace_ms / 1000)

    def make_refresher(self, routing: TableRouting, op_timeout_s: float) -> Refresher:
        top = None if self.repoll_max_ms is None else self.repoll_max_ms / 1000
        fd = self.failure_detector
        if fd is not None:
            return FailureDetectorPoller(routing, self.repoll_ms / 1000, fd, top)
        return MetaPoller(routing, self.repoll_ms / 1000, top)

    def make_probe(self, routing: TableRouting, session: Callable[[str], Session],
                   emit: Callable[[Outcome], None] | None) -> ReplicaProbe | None:
        if not self.probe_replicas:
            return None
        step_s = self.repoll_ms / 1000
        return ReplicaProbe(routing, session, self.failure_detector, step_s,
                            max(step_s, PROBE_MIN_TIMEOUT_S), emit, self.name)

    def attempt_timeout_s(self, op_timeout_s: float) -> float:
        if self.attempt_timeout_ms is None:
            return op_timeout_s / 3
        return min(op_timeout_s, self.attempt_timeout_ms / 1000)

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        return _UNREACHABLE

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        return _UNREACHABLE

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return _SLOW if ctx.time_left_s > 0 else NOTHING

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        info = error_codes.info(code)
        if not info.retriable:
            return NOTHING
        return Reaction(refresh=info.refresh, retry=True, wait_for_refresh=info.refresh,
                        delay_s=self.backoff_s(ctx.retries + 1))

    def backoff_s(self, retry: int) -> float:
        # Full jitter: uniform in [0, min(cap, base * multiplier^(retry-1))]. The exponent is
        # capped only so the float cannot overflow on very long ops.
        ceiling = min(self.backoff_cap_ms,
                      self.backoff_base_ms * self.backoff_multiplier ** min(retry - 1, 64))
        return random.uniform(0.0, ceiling) / 1000
