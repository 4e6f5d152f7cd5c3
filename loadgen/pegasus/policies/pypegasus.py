"""The official Python client (apache/incubator-pegasus python-client/pypegasus/, at db756dcdf24e)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..refresh import PeriodicCheck, Refresher
from ..routing import TableRouting
from ..session import SessionRules
from .base import NOTHING, AttemptContext, Policy, Reaction, check_positive

# Pegasus.update_state: these error replies raise the refresh flag at once ...
_FLAG = frozenset({"ERR_OBJECT_NOT_FOUND", "ERR_INACTIVE_STATE", "ERR_INVALID_STATE",
                   "ERR_NOT_ENOUGH_MEMBER", "ERR_PARENT_PARTITION_MISUSED"})
# ... ERR_TIMEOUT, replied or local, counts toward MAX_TIMEOUT_THRESHOLD; ERR_SESSION_RESET
# and everything else is logged and ignored. No error is ever retried.

_STRIKE = Reaction(strike=True)
_FLAG_REFRESH = Reaction(refresh=True)


@dataclass(frozen=True)
class Pypegasus(Policy):
    """Python client: no retry; every 5th time-out or a routing error flags a meta query for the 2 s tick.

    Models python-client/pypegasus/ at db756dcdf24e (b273abce7, the last change to
    pgclient.py; pypegasus3 0.0.1.1 on PyPI has the same logic, with thrift 0.13.0 and
    Twisted 21.2.0):

    * pgclient.py ``BaseSession.operate``: one send per op, a Twisted ``addTimeout`` of the op
      timeout (``DEFAULT_TIMEOUT`` 2000 ms); ``on_timeout`` makes the op's result
      ``(ERR_TIMEOUT, None)`` and calls ``update_state(ERR_TIMEOUT)``. No retry anywhere.
    * ``BaseSession.recv_ACK``: a non-OK error name ends the op with that error and calls
      ``update_state`` with it.
    * ``Pegasus.update_state``: ERR_TIMEOUT counts (``timeout_times``); the
      ``MAX_TIMEOUT_THRESHOLD``-th (5) raises ``update_partition`` and resets the count;
      ERR_OBJECT_NOT_FOUND, ERR_INACTIVE_STATE, ERR_INVALID_STATE, ERR_NOT_ENOUGH_MEMBER and
      ERR_PARENT_PARTITION_MISUSED raise it at once; anything else only logs.
    * ``Pegasus.__init__`` / ``check_state``: a ``reactor.callLater(META_CHECK_INTERVAL)``
      timer (2 s) that, if the flag is up, clears it and runs ``init()`` (query the meta,
      ``Table.update_cfg``), then re-arms: at most one query per 2 s, never inline
      (:class:`~loadgen.pegasus.refresh.PeriodicCheck`).
    * ``Table.update_cfg``: connects to every primary the answer names (closing the old
      session to it); the only way the client reconnects to a replica.
    * ``Table.get_session``: a partition whose primary has no session (none named, or never
      connected) raises the flag and the op returns ERR_INVALID_STATE at once, unsent.
    * transport/protocol.py ``TPegasusThriftClientProtocol.connectionLost`` calls thrift's
      ``ThriftClientProtocol.connectionLost``, which walks ``client._reqs``; the session keeps
      its calls in ``_requests``, so that raises AttributeError, which is swallowed: calls
      pending on a lost connection are NOT failed, they wait for their time-out. The dead
      session stays in ``session_dict``; Twisted's ``write`` on a closed transport drops the
      data silently, so later ops to that node time out too.

    A timed-out op reports ERR_TIMEOUT (a write's fate is unknown). After a primary's crash,
    recovery therefore needs the fifth time-out (of any partition of the table), then the
    next tick of the 2 s timer, then a put sent after it: a writer that sends one put at a
    time with a 1 s timeout sees time-outs at 1, 2, 3, 4 and 5 s; a tick in (5 s, 6 s)
    queries the meta, but the put sent at 5 s is in the dead connection and times out at
    6 s, so the first success comes at 6 s (measured with pypegasus3 0.0.1.1 on a onebox,
    grace 1.5 s: 6.05 s after the kill, the meta's failover at 1.48 s, tick at 5.34 s).
    With many puts in flight the fifth time-out comes right after the first op timeout.

    Deviations: ``update_cfg`` closes and redials every primary's connection, even live ones
    (replies in flight on them are lost); the model redials only the ones that are down. An
    op sent while its node is down waits for a connection and goes out if one comes up
    before its deadline; the real one went into the dead socket and times out. A primary
    never reached at all (down when the client first needs it) makes the real client fail
    at once with ERR_INVALID_STATE (``get_session`` finds no session) and flag a query; the
    model's op waits for its deadline and counts a time-out.
    """

    name: ClassVar[str] = "pypegasus"
    models: ClassVar[str] = "Python client (pypegasus)"
    source: ClassVar[str] = ("python-client/pypegasus/{pgclient.py (Pegasus.update_state, "
                             "check_state; BaseSession.operate; Table.update_cfg), "
                             "transport/protocol.py} @ db756dcdf24e")
    #: pgclient.py ``META_CHECK_INTERVAL`` (s).
    check_interval_s: float = 2.0
    #: pgclient.py ``MAX_TIMEOUT_THRESHOLD``: time-outs per flagged meta query.
    timeout_threshold: int = 5

    def __post_init__(self) -> None:
        check_positive(self, "check_interval_s")
        check_positive(self, "timeout_threshold", minimum=1)

    def session_rules(self) -> SessionRules:
        return SessionRules(fail_pending_on_loss=False, wait_for_connection=True,
                            dial_on_demand=False)

    def make_refresher(self, routing: TableRouting, op_timeout_s: float) -> Refresher:
        return PeriodicCheck(routing, self.check_interval_s, int(self.timeout_threshold))

    def on_timeout(self, ctx: AttemptContext) -> Reaction:
        return _STRIKE

    def on_connection_lost(self, ctx: AttemptContext) -> Reaction:
        # Not raised by this client's sessions (calls outlive their connection); if it were,
        # update_state ignores ERR_SESSION_RESET.
        return NOTHING

    def on_not_connected(self, ctx: AttemptContext) -> Reaction:
        # The write went into a dead connection: to the client, a time-out.
        return _STRIKE

    def on_error(self, code: str, ctx: AttemptContext) -> Reaction:
        if code in _FLAG:
            return _FLAG_REFRESH
        if code == "ERR_TIMEOUT":
            return _STRIKE
        return NOTHING

    def on_no_primary(self, ctx: AttemptContext) -> Reaction:
        # get_session: update_state(ERR_OBJECT_NOT_FOUND), ERR_INVALID_STATE at once.
        return _FLAG_REFRESH
