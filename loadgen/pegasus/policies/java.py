"""The Java client (apache/incubator-pegasus java-client/, at db756dcdf24e)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..refresh import PacedQuery, Refresher
from ..routing import TableRouting
from ..session import SessionRules
from .base import NOTHING, AttemptContext, Policy, Reaction, check_positive

# TableHandler.onRpcReply: query the meta, then the delayed retry ...
_QUERY_AND_RETRY = frozenset({"ERR_SESSION_RESET", "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE",
                              "ERR_PARENT_PARTITION_MISUSED"})
# ... the delayed retry alone; any other error completes the op with that error.
_RETRY_ONLY = frozenset({"ERR_TIMEOUT", "ERR_NOT_ENOUGH_MEMBER", "ERR_CAPACITY_EXCEEDED"})


@dataclass(frozen=True)
class Java(Policy):
    """Java client: a lost connection fails every pending call, which queries the meta (paced) and retries.

    Models java-client/src/main/java/org/apache/pegasus/ at db756dcdf24e:
    rpc/async/ReplicaSession.java (``markSessionDisconnect`` fails every pending and queued
    request with ERR_SESSION_RESET; a connect on demand, never throttled; a timer per request
    of the full op timeout; ``tryNotifyFailureWithSeqID`` closes a session whose requests did
    nothing but time out for ``session_reset_time_window_secs``, 30 s),
    rpc/async/TableHandler.java (``onRpcReply``: ERR_SESSION_RESET, ERR_OBJECT_NOT_FOUND,
    ERR_INVALID_STATE and ERR_PARENT_PARTITION_MISUSED query the meta and retry;
    ERR_TIMEOUT, ERR_NOT_ENOUGH_MEMBER and ERR_CAPACITY_EXCEEDED retry; others fail;
    ``call`` re-reads the config on every try and, with no primary, queries the meta and
    retries; ``tryQueryMeta`` paces queries, :class:`~loadgen.pegasus.refresh.PacedQuery`)
    and client/retry/DefaultRetryPolicy.java (the delay before a retry is
    ``timeoutNanos / 3_000_000`` *nanoseconds*, 333 ns at 1 s: in effect none).

    One deviation: pegbench waits at least ``min_retry_delay_ms`` between tries, so a
    refused-connect loop, which the real client runs as fast as the JVM allows, cannot
    starve the load generator; the model may thus recover up to that much later.
    """

    name: ClassVar[str] = "java"
    models: ClassVar[str] = "Java client"
    source: ClassVar[str] = ("java-client/.../rpc/async/{ReplicaSession,TableHandler}.java, "
                             "client/retry/DefaultRetryPolicy.java @ db756dcdf24e")
    attempt_outlives_op: ClassVar[bool] = True
    #: tryQueryMeta's pace; None: ``max(1, timeout / 3)`` ms as upstream.
    meta_query_interval_ms: float | None = None
    #: ClientOptions ``session_reset_time_window_secs``.
    session_reset_window_s: float = 30.0
    #: The floor under DefaultRetryPolicy's delay (see the class docstring).
    min_retry_delay_ms: float = 1.0

    def __post_init__(self) -> None:
        check_positive(self, "meta_query_interval_ms", optional=True)
        check_positive(self, "session_reset_window_s")
        check_positive(self, "min_retry_delay_ms", minimum=0.0)

    def session_rules(self) -> SessionRules:
        return SessionRules(fail_pending_on_loss=True,
                            timeout_reset_window_s=self.session_reset_window_s)

    def make_refresher(self, routing: TableRouting, op_timeout_s: float) -> Refresher:
        interval_ms = self.meta_query_interval_ms
        if interval_ms is None:
            interval_ms = max(1.0, int(op_timeout_s * 1000) // 3)  # integer ms, as in Java
        return PacedQuery(routing, interval_ms / 1000)

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        return self._retry(ctx, query_meta=True)

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return self._retry(ctx, query_meta=False)

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        if code in _QUERY_AND_RETRY:
            return self._retry(ctx, query_meta=True)
        if code in _RETRY_ONLY:
            return self._retry(ctx, query_meta=False)
        return NOTHING

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        return self._retry(ctx, query_meta=True)

    def retry_delay_s(self, op_timeout_s: float) -> float:
        """DefaultRetryPolicy.shouldRetry's delay, under the ``min_retry_delay_ms`` floor."""
        timeout_ns = op_timeout_s * 1e9
        upstream_ns = timeout_ns / 3_000_000 if timeout_ns > 3_000_000 else 1
        return max(upstream_ns / 1e9, self.min_retry_delay_ms / 1000)

    def _retry(self, ctx: AttemptContext, *, query_meta: bool) -> Reaction:
        # tryDelayCall: past the deadline the op fails (the client checks time_left); the
        # delay never runs past the deadline.
        return Reaction(refresh=query_meta, retry=True,
                        delay_s=min(self.retry_delay_s(ctx.op_timeout_s), max(0.0, ctx.time_left_s)))
