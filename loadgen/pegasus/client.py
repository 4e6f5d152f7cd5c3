"""Client: the public Pegasus client API, over pipelined sessions, driven by a retry policy.

    client = Client(["127.0.0.1:34601"], policy="failover", op_timeout_ms=1000)
    table = client.open_table("temp")
    table.put("user1", "name", b"value", ttl=60)
    assert table.get("user1", "name") == b"value"
    client.close()

Every op has a deadline ``op_timeout_ms`` after it is handed to the client; how it gets there
is :mod:`loadgen.pegasus.execute`'s, as the policy (:mod:`loadgen.pegasus.policies`) directs.
The ``observer`` gets an :class:`~loadgen.pegasus.outcome.Outcome` per attempt, per op and per
meta query; a failing observer is logged, never fatal. ``meta_queries`` counts the queries
sent to the metas: the recovery cost beside the recovery time. Safe for any number of
greenlets of one gevent hub. The ops themselves are :class:`~loadgen.pegasus.table.Table`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gevent.event import AsyncResult, Event

from ..errors import ConfigError, SessionReset
from . import policies
from .addr import parse_addr
from .execute import ClientContext, TableExecutor
from .meta import MetaSession
from .outcome import FAIL, META, OK, Outcome
from .policies import Policy
from .routing import PartitionRoute, TableRouting
from .session import Session
from .table import Table

log = logging.getLogger(__name__)

#: How long ``open_table`` may take to get the table's config.
OPEN_TIMEOUT_S = 5.0

Observer = Callable[[Outcome], None]


class Client:
    """A Pegasus client for one cluster: its metas, sessions to replicas, and a policy.

    ``policy`` is a registered name, a dotted path (``"pkg.mod:Class"``) or a
    :class:`~loadgen.pegasus.policies.Policy` instance; ``policy_params`` override its fields
    (an unknown name is a :class:`ConfigError`).
    """

    def __init__(self, meta: list[str] | str, policy: str | Policy = "failover",
                 op_timeout_ms: float = 1000, observer: Observer | None = None,
                 policy_params: Mapping[str, Any] | None = None):
        addrs = [a.strip() for a in meta.split(",")] if isinstance(meta, str) else list(meta)
        try:
            for addr in addrs or [""]:  # no address at all is as bad as a malformed one
                parse_addr(addr)
        except ValueError:
            raise ConfigError("", "meta", f"meta addresses as 'host:port', got {meta!r}") from None
        if isinstance(op_timeout_ms, bool) or not isinstance(op_timeout_ms, (int, float)) \
                or not op_timeout_ms > 0:
            raise ConfigError("", "op_timeout_ms", f"a positive number of ms, got {op_timeout_ms!r}")
        self.policy: Policy = policies.create(policy, policy_params)
        self.op_timeout_ms = op_timeout_ms
        self.observer = observer
        self._closing = Event()  # wakes ops waiting between attempts
        self._rules = self.policy.session_rules()
        op_timeout_s = op_timeout_ms / 1000
        self._ctx = ClientContext(
            policy=self.policy, op_timeout_s=op_timeout_s,
            attempt_timeout_s=self.policy.attempt_timeout_s(op_timeout_s),
            session=self._session, emit=self._emit if observer is not None else None,
            closing=self._closing)
        self._meta = MetaSession(addrs, on_query=self._meta_query if observer is not None else None)
        self._sessions: dict[str, Session] = {}
        self._tables: dict[str, TableExecutor] = {}
        self._opening: dict[str, AsyncResult] = {}

    @property
    def meta_queries(self) -> int:
        """Queries sent to the meta servers so far (every retry and forward hop counts)."""
        return self._meta.queries

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing.is_set()

    def open_table(self, name: str) -> Table:
        """The table ``name``, its config fetched from the metas on first open.

        Greenlets opening the same table at once (Locust users starting together) share
        one meta query and get the same :class:`Table`.
        """
        executor = self._tables.get(name)
        if executor is not None:
            return executor.table
        if self.closed:
            raise SessionReset("client closed")
        opening = self._opening.get(name)
        if opening is not None:
            return opening.get()  # raises what the first opener met
        opening = self._opening[name] = AsyncResult()
        try:
            routing = TableRouting(name, self._meta, apply=self.policy.config_apply)
            routing.load(time.monotonic() + max(OPEN_TIMEOUT_S, self._ctx.op_timeout_s))
            refresher = self.policy.make_refresher(routing, self._ctx.op_timeout_s)
            bind = getattr(refresher, "bind_sessions", None)
            if bind is not None:  # a refresher that (re)connects the primaries it learns of
                bind(self._session)
            executor = TableExecutor(self._ctx, routing, refresher,
                                     self.policy.make_probe(routing, self._session, self._ctx.emit))
            executor.table = Table(name, executor.run, lambda: routing.config.partition_count)
            self._tables[name] = executor
        except Exception as exc:
            opening.set_exception(exc)
            raise
        except BaseException:  # the opener was killed: the others must not hang or die with it
            opening.set_exception(SessionReset(f"opening table {name!r} was interrupted"))
            raise
        else:
            opening.set(executor.table)
        finally:
            del self._opening[name]
        return executor.table

    def route(self, table: str, partition: int) -> PartitionRoute:
        """Where this client routes ``partition`` of an opened ``table`` right now."""
        return self._executor(table).routing.route(partition)

    def refresh(self, table: str, timeout_s: float = 2.0) -> bool:
        """Query the meta for an opened ``table``'s config now, bypassing the policy's pacing,
        and wait up to ``timeout_s``; returns whether a newer config was applied."""
        routing = self._executor(table).routing
        return routing.wait(time.monotonic() + timeout_s, newer_than=routing.generation)

    def _executor(self, table: str) -> TableExecutor:
        executor = self._tables.get(table)
        if executor is None:
            raise ConfigError("", "table", f"a table opened by this client, got {table!r}")
        return executor

    def close(self) -> None:
        """Close every connection; ops in flight fail at once with ERR_SESSION_RESET."""
        self._closing.set()
        for executor in self._tables.values():
            executor.routing.close()
            if executor.probe is not None:
                executor.probe.close()
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        self._meta.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _session(self, addr: str) -> Session:
        session = self._sessions.get(addr)
        if session is None:
            session = Session(addr, self._rules, on_unresponsive=self._unresponsive)
            if self.closed:
                session.close()  # an op racing close() gets a closed session, not a live one
            else:
                self._sessions[addr] = session
        return session

    def _unresponsive(self, session: Session) -> None:
        reaction = self.policy.on_unresponsive()
        for executor in self._tables.values():
            executor.request_refresh(reaction)

    def _meta_query(self, addr: str, table: str, start: float, end: float, error: str | None) -> None:
        self._emit(Outcome(level=META, op="query_config", table=table, partition=-1, node=addr,
                           start=start, end=end, outcome=OK if error is None else FAIL,
                           error=error, attempt=1, refreshed=False, policy=self.policy.name))

    def _emit(self, outcome: Outcome) -> None:
        try:
            self.observer(outcome)
        except Exception:  # an observer bug must not fail the op it observes
            log.exception("observer failed on %s", outcome)
