"""Routing: one table's partition-config cache (app id, partition count, primaries, ballots).

The cache answers "which node is primary for partition i" without a network round trip. It
offers the mechanism of refreshing, not its pacing (that is the policy's refresher,
:mod:`loadgen.pegasus.refresh`): at most one query in flight per table, at most one scheduled,
the instants of the last start and end, and an event for "the next result is in".

How an answer is applied is the policy's too (:data:`APPLY_REPLACE`, :data:`APPLY_GO`): the
Java client and ``failover`` take the answer whole, so a partition the meta names no primary for
becomes "no primary" (None); the Go client's ``handleQueryConfigResp`` walks the partitions in
order and stops at the first one without a primary, keeping the old routes from there on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
from gevent.event import Event

from ..errors import PegasusError, ProtocolError
from . import keys
from .gen.replication import ttypes as replication
from .meta import MetaSession

#: Longest one refresh may spend asking the metas (callers stop waiting at their deadline).
REFRESH_TIMEOUT_S = 2.0
#: How an answer is applied: whole, or Go's way (stop at the first partition without primary).
APPLY_REPLACE, APPLY_GO = "replace", "go"


@dataclass(frozen=True, slots=True)
class PartitionRoute:
    """Where partition ``index`` is served: its primary (None if the meta names none) and,
    as far as the meta listed them, its secondaries."""

    index: int
    primary: str | None
    ballot: int
    secondaries: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableConfig:
    """A table's partition config as one meta answer gave it."""

    table: str
    app_id: int
    partition_count: int
    partitions: tuple[PartitionRoute, ...]

    @classmethod
    def from_response(cls, table: str, resp: replication.query_cfg_response) -> TableConfig:
        """Validate a query-config answer; raises :class:`ProtocolError` if it is unusable."""
        if resp.app_id is None:
            raise ProtocolError(f"table {table!r}: the meta's answer has no app_id")
        count = resp.partition_count or 0
        try:
            keys.check_partition_count(count)
        except ValueError as exc:
            raise ProtocolError(f"table {table!r}: {exc}") from exc
        routes: list[PartitionRoute | None] = [None] * count
        for part in resp.partitions or []:
            index = part.pid.partition_index if part.pid is not None else -1
            if not 0 <= index < count or routes[index] is not None:
                raise ProtocolError(f"table {table!r}: bad or repeated partition index {index}")
            primary = str(part.primary) if part.primary is not None else ""
            secondaries = tuple(a for a in (str(s) for s in part.secondaries or []) if a)
            routes[index] = PartitionRoute(index, primary or None, part.ballot or 0, secondaries)
        if any(r is None for r in routes):
            raise ProtocolError(f"table {table!r}: the meta listed {len(resp.partitions or [])} "
                                f"of {count} partitions")
        return cls(table, resp.app_id, count, tuple(routes))


class TableRouting:
    """The cached config of one table and the machinery to refresh it from the metas."""

    def __init__(self, table: str, meta: MetaSession, *, apply: str = APPLY_REPLACE,
                 refresh_timeout_s: float = REFRESH_TIMEOUT_S):
        if apply not in (APPLY_REPLACE, APPLY_GO):
            raise ValueError(f"apply must be {APPLY_REPLACE!r} or {APPLY_GO!r}, got {apply!r}")
        self.table = table
        self._meta = meta
        self._apply_rule = apply
        self._refresh_timeout_s = refresh_timeout_s
        self._config: TableConfig | None = None
        self._refresher: gevent.Greenlet | None = None
        self._scheduled: gevent.Greenlet | None = None
        self._scheduled_at = 0.0
        self._result = Event()  # set when the refresh under way (or the next one) ends
        self._closed = False
        #: Successful refreshes so far; goes up by one per answer applied.
        self.generation = 0
        #: Monotonic instants the last refresh started and ended (-inf: none yet).
        self.last_start = self.last_end = float("-inf")
        #: Whether the last applied answer changed any partition's primary or ballot.
        self.last_changed = False
        #: Why the last refresh failed, if it did.
        self.last_error: PegasusError | ProtocolError | None = None

    @property
    def config(self) -> TableConfig:
        """The config from the last successful query."""
        if self._config is None:
            raise RuntimeError(f"table {self.table!r}: config not loaded yet")
        return self._config

    @property
    def in_flight(self) -> bool:
        """Whether a refresh is asking the metas right now."""
        return self._refresher is not None

    @property
    def scheduled(self) -> bool:
        """Whether a refresh is scheduled to start later."""
        return self._scheduled is not None

    def load(self, deadline: float) -> TableConfig:
        """Fetch the config now, in this greenlet; raises if no meta gives a usable one."""
        self._apply(self._meta.query_config(self.table, deadline))
        return self.config

    def route(self, index: int) -> PartitionRoute:
        """Where partition ``index`` is served, as far as the cache knows."""
        return self.config.partitions[index]

    def next_result(self) -> Event:
        """An event set when the refresh under way, or the next one to start, has ended."""
        return self._result

    def refresh_now(self) -> bool:
        """Start a refresh unless one is under way; returns whether one is under way now."""
        if self._closed:
            return False
        if self._refresher is None:
            self.last_start = time.monotonic()
            self._refresher = gevent.spawn(self._run_refresh)
        return True

    def refresh_at(self, when: float, unless: Callable[[], bool] | None = None) -> None:
        """Start a refresh at monotonic instant ``when`` (at once if past), unless one is
        under way or one is scheduled no later than that (one scheduled later moves up).
        A scheduled one for which ``unless()`` is true when it is due is dropped: no query,
        but waiters on :meth:`next_result` wake (to ask again if they still need one)."""
        if self._closed or self._refresher is not None:
            return
        if self._scheduled is not None:
            if self._scheduled_at <= when:
                return
            self._scheduled.kill(block=False)
            self._scheduled = None
        delay = when - time.monotonic()
        if delay <= 0:
            self.refresh_now()
        else:
            self._scheduled_at = when
            self._scheduled = gevent.spawn_later(delay, self._start_scheduled, unless)

    def wait(self, deadline: float, *, newer_than: int) -> bool:
        """Refresh unless one newer than generation ``newer_than`` already succeeded, and wait
        for it until ``deadline``; returns whether the config is now newer."""
        while self.generation <= newer_than and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done = self._result
            self.refresh_now()
            done.wait(left)
            if self.last_error is not None and self.generation <= newer_than:
                break  # the metas could not answer: the caller decides what is next
        return self.generation > newer_than

    def learn_primary(self, index: int, primary: str, seen: PartitionRoute) -> bool:
        """A replica of partition ``index`` said it is primary now (a probe, not the meta):
        route there, unless the route is no longer ``seen``. The cached config changes for
        that partition alone (ballot + 1, the old primary dropped from its members) until
        the next meta answer replaces it whole; waiters on :meth:`next_result` wake."""
        config = self._config
        if self._closed or config is None or config.partitions[index] != seen:
            return False
        members = tuple(m for m in seen.secondaries if m != primary)
        parts = list(config.partitions)
        parts[index] = PartitionRoute(index, primary, seen.ballot + 1, members)
        self._config = TableConfig(config.table, config.app_id, config.partition_count, tuple(parts))
        self.generation += 1
        self.last_changed = True
        done, self._result = self._result, Event()
        done.set()
        return True

    def close(self) -> None:
        """Stop a refresh in flight or scheduled; no refresh starts from now on."""
        self._closed = True
        for greenlet in (self._refresher, self._scheduled):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._result.set()

    def _start_scheduled(self, unless: Callable[[], bool] | None = None) -> None:
        self._scheduled = None
        if unless is not None and unless():
            done, self._result = self._result, Event()
            done.set()
            return
        self.refresh_now()

    def _run_refresh(self) -> None:
        try:
            self._apply(self._meta.query_config(self.table, time.monotonic() + self._refresh_timeout_s))
        except (PegasusError, ProtocolError) as exc:
            self.last_error = exc  # keep routing with the old config; the next failure retries
        finally:
            self._refresher = None
            self.last_end = time.monotonic()
            done, self._result = self._result, Event()
            done.set()

    def _apply(self, resp: replication.query_cfg_response) -> None:
        config = TableConfig.from_response(self.table, resp)
        old = self._config
        if (self._apply_rule == APPLY_GO and old is not None and old.app_id == config.app_id
                and old.partition_count == config.partition_count):
            # handleQueryConfigResp: partitions are taken in order until the first one without
            # a primary, whose error ends the update; the ones after it keep their old route.
            parts = list(old.partitions)
            for index, new in enumerate(config.partitions):
                if new.primary is None:
                    break
                parts[index] = new
            config = TableConfig(config.table, config.app_id, config.partition_count, tuple(parts))
        self.last_changed = old is None or old.partitions != config.partitions
        self._config = config
        self.generation += 1
        self.last_error = None
