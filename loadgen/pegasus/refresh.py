"""Refreshers: how often, and when, a client asks the meta for a table's config.

A policy's hook says "refresh" (:class:`~loadgen.pegasus.policies.Reaction`); the policy's
refresher decides whether that becomes a meta query now, later or not at all. One refresher per
table per client, over the table's :class:`~loadgen.pegasus.routing.TableRouting` (which keeps
at most one query in flight). Each models one client's pacing:

* :class:`GoTriggerLoop` — the Go client's ``tryConfUpdate`` / ``loopForAutoUpdate``;
* :class:`PacedQuery` — the Java client's ``TableHandler.tryQueryMeta``;
* :class:`MetaPoller` — ``failover``: at most one query per interval however many ops ask.

``request(seen_generation)`` means "an op has seen config generation ``seen_generation`` and
needs a newer one"; it returns whether a query is now under way or scheduled.
"""

from __future__ import annotations

import time
from typing import Protocol

from .routing import TableRouting


class Refresher(Protocol):
    """Turns "this op needs a newer config" into meta queries, paced its own way."""

    def request(self, seen_generation: int) -> bool: ...


class GoTriggerLoop:
    """apache/incubator-pegasus go-client/pegasus/table_connector.go (``tryConfUpdate``,
    ``loopForAutoUpdate``, ``selfUpdate``; unchanged from 2ab5be67a^ to 75212068c).

    Triggers go into a channel of capacity 1; one loop takes a trigger, queries the meta,
    flushes the channel (triggers that came during the query are dropped), then sleeps
    ``pause_s`` (1 s). A trigger during the sleep is kept and served when the sleep ends.
    """

    def __init__(self, routing: TableRouting, pause_s: float = 1.0):
        self._routing = routing
        self._pause_s = pause_s

    def request(self, seen_generation: int) -> bool:
        routing = self._routing
        if routing.in_flight or routing.scheduled:
            return True  # flushed after the query, or the channel is full: either way dropped
        routing.refresh_at(routing.last_end + self._pause_s)
        return True


class PacedQuery:
    """apache/incubator-pegasus java-client/.../rpc/async/TableHandler.java ``tryQueryMeta``
    (at db756dcdf): one query at a time; none if the last one started less than
    ``min_interval_s`` ago (``max(1, timeout/3)`` ms); none if the config is already newer
    than the one the failed call was sent with. A request it turns down is not kept."""

    def __init__(self, routing: TableRouting, min_interval_s: float):
        self._routing = routing
        self._min_interval_s = min_interval_s

    def request(self, seen_generation: int) -> bool:
        routing = self._routing
        if routing.in_flight:
            return False
        if time.monotonic() - routing.last_start < self._min_interval_s:
            return False
        if routing.generation > seen_generation:
            return False
        return routing.refresh_now()


class MetaPoller:
    """``failover``: at most one query in flight and at most one per ``interval_s`` per table,
    however many ops ask; requests in between share the next query. With ``max_interval_s``
    the interval doubles while answers change nothing (up to that cap) and drops back to
    ``interval_s`` as soon as one does."""

    def __init__(self, routing: TableRouting, interval_s: float, max_interval_s: float | None = None):
        self._routing = routing
        self._base_s = interval_s
        self._max_s = max_interval_s
        self._interval_s = interval_s
        self._paced_generation = routing.generation

    @property
    def interval_s(self) -> float:
        """The pause between two queries right now."""
        return self._interval_s

    def request(self, seen_generation: int) -> bool:
        routing = self._routing
        if routing.generation > seen_generation:
            return False  # a newer answer is already there for the asker to look at
        if routing.in_flight or routing.scheduled:
            return True
        self._adapt()
        routing.refresh_at(routing.last_start + self._interval_s)
        return True

    def _adapt(self) -> None:
        routing = self._routing
        if self._max_s is None or routing.generation == self._paced_generation:
            return
        self._paced_generation = routing.generation
        if routing.last_changed:
            self._interval_s = self._base_s
        else:
            self._interval_s = min(self._max_s, self._interval_s * 2)
