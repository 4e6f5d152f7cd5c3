"""The Go client, before PR #1916, with it, and since #2286 (apache/incubator-pegasus go-client/).

What the three models share, read from the upstream files (PROTOCOL.md §6 has the summary):

* ``session/session.go`` — ``loopForResponse`` returns on EOF without failing the pending
  calls, which wait for their context deadline; ``waitUntilSessionReady`` triggers a dial and
  waits for a connection until the deadline; ``dial`` waits ``kDialInterval`` (60 s) first when
  the last dial was less than that ago; a read timeout while writes were recent calls the
  unresponsive handler (``hasRecentUnresponsiveWrite``: max(read timeout / 2, 10 s)).
* ``rpc/rpc_conn.go`` — ``ConnReadTimeout`` 30 s.
* ``pegasus/table_connector.go`` — ``runPartitionOp`` picks the gpid and the replica session
  once, before the retry loop; ``handleReplicaError`` maps errors to (refresh, retry);
  ``tryConfUpdate`` / ``loopForAutoUpdate`` pace refreshes
  (:class:`~loadgen.pegasus.refresh.GoTriggerLoop`); ``handleQueryConfigResp`` stops at the
  first partition without a primary.
* ``pegasus/retry_failover.go`` — ``retryFailOver`` retries only when the error both refreshed
  and asked for a retry, after cenkalti/backoff v4's ``NextBackOff`` (:func:`go_backoff_s`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from ..refresh import GoTriggerLoop, Refresher
from ..routing import APPLY_GO, TableRouting
from ..session import SessionRules
from .base import NOTHING, AttemptContext, Policy, Reaction, check_positive

# cenkalti/backoff v4 as retry_failover.go uses it: NewExponentialBackOff() has already reset
# the current interval to its default 500 ms when the code sets InitialInterval = 1 s and
# Multiplier = 2, so the waits start at 0.5 s and double; ±50 % jitter; 60 s cap.
_BACKOFF_FIRST_S, _BACKOFF_MULTIPLIER, _BACKOFF_JITTER, _BACKOFF_MAX_S = 0.5, 2.0, 0.5, 60.0

# handleReplicaError: errors that neither refresh nor retry (the empty cases of its switch) ...
_NO_REACTION = frozenset({"ERR_TIMEOUT", "ERR_NOT_ENOUGH_MEMBER", "ERR_CAPACITY_EXCEEDED",
                          "ERR_BUSY", "ERR_SPLITTING", "ERR_DISK_INSUFFICIENT"})
# ... and those whose retry the second switch takes back. Everything else is the `default`
# branch: refresh and retry.
_REFRESH_NO_RETRY = frozenset({"ERR_INVALID_STATE", "ERR_PARENT_PARTITION_MISUSED"})


def go_backoff_s(retry: int) -> float:
    """The wait before retry number ``retry``: about 0.25–0.75 s, then 0.5–1.5 s, 1–3 s, …"""
    interval = _BACKOFF_FIRST_S
    for _ in range(retry - 1):
        if interval >= _BACKOFF_MAX_S / _BACKOFF_MULTIPLIER:
            interval = _BACKOFF_MAX_S
            break
        interval *= _BACKOFF_MULTIPLIER
    return random.uniform(interval * (1 - _BACKOFF_JITTER), interval * (1 + _BACKOFF_JITTER))


@dataclass(frozen=True)
class Legacy(Policy):
    """Go client before #1916: EOF leaves calls waiting for their deadline, which refreshes nothing.

    Models go-client/ at 44e83503b998 (2ab5be67a^): session/session.go, rpc/rpc_conn.go,
    pegasus/table_connector.go, pegasus/retry_failover.go. A deadline (context.DeadlineExceeded)
    neither refreshes nor retries, so after a primary's crash every call waits on the dead
    connection or for a redial throttled to one per 60 s, and the config is never refreshed
    (apache/incubator-pegasus#1856).
    """

    name: ClassVar[str] = "legacy"
    models: ClassVar[str] = "Go client before #1916 (the seed bug)"
    source: ClassVar[str] = ("go-client/{session/session.go, pegasus/table_connector.go, "
                             "pegasus/retry_failover.go} @ 44e83503b998 (2ab5be67a^)")
    reroute_retries: ClassVar[bool] = False
    config_apply: ClassVar[str] = APPLY_GO
    #: session.go ``kDialInterval``.
    dial_interval_s: float = 60.0
    #: table_connector.go ``loopForAutoUpdate``: the sleep after each refresh.
    refresh_pause_s: float = 1.0
    #: rpc_conn.go ``ConnReadTimeout``.
    read_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        check_positive(self, "dial_interval_s", minimum=0.0)
        check_positive(self, "refresh_pause_s", "read_timeout_s")

    def session_rules(self) -> SessionRules:
        return SessionRules(fail_pending_on_loss=False, dial_throttle_s=self.dial_interval_s,
                            wait_for_connection=True, read_timeout_s=self.read_timeout_s)

    def make_refresher(self, routing: TableRouting, op_timeout_s: float) -> Refresher:
        return GoTriggerLoop(routing, self.refresh_pause_s)

    def on_not_connected(self, ctx: AttemptContext) -> Reaction:
        # waitUntilSessionReady returned ctx.Err(): to handleReplicaError a deadline.
        return self.on_timeout(ctx)

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        if code in _NO_REACTION:
            return NOTHING
        if code in _REFRESH_NO_RETRY:
            return _REFRESH
        return Reaction(refresh=True, retry=True, delay_s=self.backoff_s(ctx.retries + 1))

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        # Only a table opened while the meta named no primary gets here (Go refuses to
        # connect such a table); a refresh is what would fix it.
        return _REFRESH

    def on_unresponsive(self) -> Reaction:
        return _REFRESH

    def backoff_s(self, retry: int) -> float:
        return go_backoff_s(retry)


_REFRESH = Reaction(refresh=True)


@dataclass(frozen=True)
class RefreshOnTimeout(Legacy):
    """Go client with #1916, before #2286: as legacy, and a deadline refreshes the config.

    Models go-client/ at 2ab5be67a94c (#1916): in table_connector.go ``handleReplicaError``
    ``context.DeadlineExceeded`` sets confUpdate (retry stays false: the op fails, the next
    ones use the refreshed config). Meta leader discovery by ERR_FORWARD_TO_OTHERS, also from
    #1916, is shared by every policy here (:mod:`loadgen.pegasus.meta_search`).
    """

    name: ClassVar[str] = "refresh-on-timeout"
    models: ClassVar[str] = "Go client with #1916, before #2286"
    source: ClassVar[str] = ("go-client/pegasus/table_connector.go handleReplicaError "
                             "@ 2ab5be67a94c (#1916)")

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return _REFRESH if ctx.time_left_s <= 0 else NOTHING


@dataclass(frozen=True)
class RefreshOnReset(Legacy):
    """Go client since #2286 (today's): a session that cannot connect before the deadline refreshes.

    Models go-client/ at 75212068c390 (#2286): session.go ``waitUntilSessionReady`` returns
    ERR_SESSION_RESET instead of ctx.Err(), and table_connector.go ``handleReplicaError``
    refreshes on it (no retry); context.DeadlineExceeded no longer refreshes, so a call left
    waiting on a dead connection still refreshes nothing.
    """

    name: ClassVar[str] = "refresh-on-reset"
    models: ClassVar[str] = "Go client since #2286 (today's)"
    source: ClassVar[str] = ("go-client/{session/session.go, pegasus/table_connector.go} "
                             "@ 75212068c390 (#2286)")

    def on_not_connected(self, ctx: AttemptContext) -> Reaction:
        return _REFRESH
