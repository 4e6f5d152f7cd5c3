"""Routing: one table's partition-config cache (app id, partition count, primaries, ballots).

The cache answers "which node is primary for partition i" without a network round trip.
Refreshes run in one greenlet per table at a time: a caller that needs fresh config joins the
refresh in flight rather than asking the meta again, so a burst of failures costs one query.

A partition the meta names no primary for is "no primary" (None) by default. With
``keep_routes_without_primary`` the cache keeps its old route instead, as the Go client keeps
its old routing when a config lacks a primary (PROTOCOL.md §6): calls then wait on the old
primary until their deadline rather than failing at once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import gevent

from ..errors import PegasusError, ProtocolError
from . import keys
from .gen.replication import ttypes as replication
from .meta import MetaSession

#: Longest one refresh may spend asking the metas (callers stop waiting at their deadline).
REFRESH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class PartitionRoute:
    """Where partition ``index`` is served: its primary (None if the meta names none)."""

    index: int
    primary: str | None
    ballot: int


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
            routes[index] = PartitionRoute(index, primary or None, part.ballot or 0)
        if any(r is None for r in routes):
            raise ProtocolError(f"table {table!r}: the meta listed {len(resp.partitions or [])} "
                                f"of {count} partitions")
        return cls(table, resp.app_id, count, tuple(routes))


class TableRouting:
    """The cached config of one table, refreshed on demand from the metas."""

    def __init__(self, table: str, meta: MetaSession, *, refresh_timeout_s: float = REFRESH_TIMEOUT_S,
                 keep_routes_without_primary: bool = False):
        self.table = table
        self._meta = meta
        self._refresh_timeout_s = refresh_timeout_s
        self._keep_routes_without_primary = keep_routes_without_primary
        self._config: TableConfig | None = None
        self._refresher: gevent.Greenlet | None = None
        self._last_start = float("-inf")
        self._closed = False
        #: Successful refreshes so far (pass it to :meth:`refresh` as ``newer_than``).
        self.generation = 0
        #: Why the last refresh failed, if it did.
        self.last_error: PegasusError | ProtocolError | None = None

    @property
    def config(self) -> TableConfig:
        """The config from the last successful query."""
        if self._config is None:
            raise RuntimeError(f"table {self.table!r}: config not loaded yet")
        return self._config

    def load(self, deadline: float) -> TableConfig:
        """Fetch the config now, in this greenlet; raises if no meta gives a usable one."""
        self._apply(self._meta.query_config(self.table, deadline))
        return self.config

    def route(self, index: int) -> PartitionRoute:
        """Where partition ``index`` is served, as far as the cache knows."""
        return self.config.partitions[index]

    def refresh(self, deadline: float, *, newer_than: int | None = None) -> None:
        """Refresh (or join the refresh in flight) and wait for it until ``deadline``.

        With ``newer_than``, a refresh that already succeeded after that generation is
        enough: nothing new is started. Does nothing once closed.
        """
        if self._closed or (newer_than is not None and self.generation > newer_than):
            return
        refresher = self._refresher or self._start()
        refresher.join(timeout=max(0.0, deadline - time.monotonic()))

    def refresh_in_background(self, min_interval_s: float = 0.0) -> bool:
        """Start a refresh unless one is running or one started less than ``min_interval_s`` ago.

        Returns whether a refresh is now under way (never, once closed).
        """
        if self._closed:
            return False
        if self._refresher is not None:
            return True
        if time.monotonic() - self._last_start < min_interval_s:
            return False
        self._start()
        return True

    def close(self) -> None:
        """Stop a refresh in flight; no refresh starts from now on."""
        self._closed = True
        if self._refresher is not None:
            self._refresher.kill(block=False)

    def _start(self) -> gevent.Greenlet:
        self._last_start = time.monotonic()
        self._refresher = gevent.spawn(self._run_refresh)
        return self._refresher

    def _run_refresh(self) -> None:
        try:
            self._apply(self._meta.query_config(self.table, time.monotonic() + self._refresh_timeout_s))
        except (PegasusError, ProtocolError) as exc:
            self.last_error = exc  # keep routing with the old config; the next failure retries
        finally:
            self._refresher = None

    def _apply(self, resp: replication.query_cfg_response) -> None:
        config = TableConfig.from_response(self.table, resp)
        old = self._config
        if (self._keep_routes_without_primary and old is not None and old.app_id == config.app_id
                and old.partition_count == config.partition_count):
            config = dataclasses.replace(config, partitions=tuple(
                new if new.primary is not None else kept
                for new, kept in zip(config.partitions, old.partitions)))
        self._config = config
        self.generation += 1
        self.last_error = None
