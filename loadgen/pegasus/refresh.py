"""Refreshers: how often, and when, a client asks the meta for a table's config.

A policy's hook says "refresh" (:class:`~loadgen.pegasus.policies.Reaction`); the policy's
refresher decides whether that becomes a meta query now, later or not at all. One refresher per
table per client, over the table's :class:`~loadgen.pegasus.routing.TableRouting` (which keeps
at most one query in flight). Each models one client's pacing:

* :class:`GoTriggerLoop` — the Go client's ``tryConfUpdate`` / ``loopForAutoUpdate``;
* :class:`PacedQuery` — the Java client's ``TableHandler.tryQueryMeta``;
* :class:`PeriodicCheck` — the Python client's ``Pegasus.update_state`` / ``check_state``;
* :class:`MetaPoller` — ``failover``: at most one query per interval however many ops ask;
* :class:`FailureDetectorPoller` — ``failover`` told the cluster's failure-detector timings:
  no query while the meta cannot have replaced a silent primary yet, then a few, timed so the
  last one falls when it must have.

``request(seen_generation, silence)`` means "an op has seen config generation
``seen_generation`` and needs a newer one"; ``silence`` says, when the op's primary stopped
answering or was lost, since when (None for error replies and a missing primary). It returns
whether a query is now under way or scheduled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .routing import TableRouting


#: A grid point counts as a step after the last query if it is this share of a step after.
_GRID_TOLERANCE = 1 - 1e-6
#: Slack after the last instant the meta can replace a dead primary: its check loop and its
#: config change run a little late on a busy host.
FD_SLACK_S = 0.02


@dataclass(frozen=True, slots=True)
class Silence:
    """What a client knows of a primary that stopped answering (monotonic seconds): it was
    last heard at ``heard`` and was surely gone by ``gone`` (its connection was lost then; a
    primary that is merely silent is taken to have stopped when it was last heard).
    ``over`` (if given) says whether the silence no longer matters: the primary was heard
    from again, or the asker's partition has moved elsewhere. ``probed``: the partition's
    replicas are asked who is primary (:mod:`loadgen.pegasus.probe`) through the window."""

    heard: float
    gone: float
    over: Callable[[], bool] | None = field(default=None, compare=False)
    probed: bool = False


@dataclass(frozen=True, slots=True)
class FailureDetector:
    """The cluster's failure-detector timings (seconds): a replica beacons the meta every
    ``beacon_s``; every ``check_s`` the meta declares dead a node whose last beacon is older
    than ``grace_s`` and names a new primary for its partitions at once."""

    beacon_s: float
    check_s: float
    grace_s: float

    def window(self, silence: Silence) -> tuple[float, float]:
        """The first and the last instant the meta can name a new primary in place of the
        silent one: its last beacon went out at most ``beacon_s`` before it was last heard,
        and at the latest when it was gone."""
        return (silence.heard + self.grace_s - self.beacon_s,
                silence.gone + self.grace_s + self.check_s + FD_SLACK_S)


class Refresher(Protocol):
    """Turns "this op needs a newer config" into meta queries, paced its own way."""

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool: ...


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

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool:
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

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool:
        routing = self._routing
        if routing.in_flight:
            return False
        if time.monotonic() - routing.last_start < self._min_interval_s:
            return False
        if routing.generation > seen_generation:
            return False
        return routing.refresh_now()


class PeriodicCheck:
    """apache/incubator-pegasus python-client/pypegasus/pgclient.py ``Pegasus.update_state``,
    ``Pegasus.check_state`` and ``Table.update_cfg`` (at db756dcdf; the same in pypegasus3
    0.0.1.1).

    A timer fires every ``interval_s`` (``META_CHECK_INTERVAL``, 2 s) from the client's
    creation; it queries the meta only if a flag is up, clears the flag first, and re-arms
    ``interval_s`` after that query has ended. :meth:`request` raises the flag (an error
    reply of the refresh list, a partition without a session); :meth:`strike` counts one
    time-out, and every ``threshold``-th (``MAX_TIMEOUT_THRESHOLD``, 5; the count is per
    client and table, over all partitions, and starts again from 0) raises it. Neither ever
    queries at once: the op that asked has failed already. After each of its queries, every
    primary the answer names is (re)connected (``update_cfg``), which is how this client
    gets a replica connection back. Both return whether a query is now flagged.
    """

    def __init__(self, routing: TableRouting, interval_s: float, threshold: int):
        self._routing = routing
        self._interval_s = interval_s
        self._threshold = threshold
        self._anchor = time.monotonic()  # pypegasus arms the timer in Pegasus.__init__
        self._flag = False
        self._tick_query = False
        self._session: Callable[[str], Any] | None = None
        #: Time-outs counted since the flag was last raised by them.
        self.timeouts = 0

    def bind_sessions(self, session: Callable[[str], Any]) -> None:
        """How to reach the client's session to an address (to reconnect primaries)."""
        self._session = session

    @property
    def flagged(self) -> bool:
        """Whether the next tick queries the meta."""
        return self._flag

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool:
        self._raise()
        return True

    def strike(self, seen_generation: int, silence: Silence | None = None) -> bool:
        self.timeouts += 1
        if self.timeouts >= self._threshold:
            self.timeouts = 0
            self._raise()
        return self._flag

    def next_tick(self, now: float) -> float:
        """The timer's first firing after ``now``."""
        steps = math.floor((now - self._anchor) / self._interval_s) + 1
        return self._anchor + max(1, steps) * self._interval_s

    def _raise(self) -> None:
        if self._flag:
            return
        self._flag = True
        self._schedule()

    def _schedule(self, *_: Any) -> None:
        routing = self._routing
        if routing.in_flight:  # the tick that runs now re-arms when its query ends
            routing.next_result().rawlink(self._schedule)
            return
        routing.refresh_at(self.next_tick(time.monotonic()), unless=self._tick)

    def _tick(self) -> bool:
        """The timer fired with the flag up: clear it, and let the query run."""
        self._flag = False
        self._routing.next_result().rawlink(self._after_query)
        return False

    def _after_query(self, *_: Any) -> None:
        routing = self._routing
        self._anchor = routing.last_end  # callLater(META_CHECK_INTERVAL) after init() ended
        if routing.last_error is None and self._session is not None:
            for addr in sorted({r.primary for r in routing.config.partitions if r.primary}):
                self._session(addr).redial()  # update_cfg: connectTCP to every primary
        if self._flag:  # raised again while the query ran
            self._schedule()


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

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool:
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


class FailureDetectorPoller:
    """``failover`` told the cluster's :class:`FailureDetector` timings.

    A primary that went silent or was lost cannot be replaced before the meta's failure
    detector gives up on it, and must be replaced by the end of the detector's window
    (:meth:`FailureDetector.window`). So: no query before the window opens; in it, queries on
    a grid of ``interval_s`` laid back from the window's end (the last one falls when the new
    config must be there; one query if the interval is wider than the window, which is
    ``beacon + check`` wide), never two closer than ``interval_s`` whichever silences ask
    (when several primaries fall silent at once, e.g. every write stalls on a paused
    secondary, their windows differ by a little and their grids interleave); past it (the primary is alive after all, or went silent later
    than it was last heard), one query per ``late_interval_s``. Requests without a silence
    (error replies, no primary) are paced like :class:`MetaPoller`'s, and may bring a
    scheduled query forward. At most one query in flight per table, however many ops ask.
    """

    def __init__(self, routing: TableRouting, interval_s: float, fd: FailureDetector,
                 late_interval_s: float | None = None):
        self._routing = routing
        self._interval_s = interval_s
        self._fd = fd
        self._late_s = late_interval_s or max(interval_s, fd.beacon_s + fd.check_s)

    def request(self, seen_generation: int, silence: Silence | None = None) -> bool:
        routing = self._routing
        if routing.generation > seen_generation:
            return False
        if routing.in_flight:
            return True
        # A query scheduled for a silent primary is dropped if it speaks again before then
        # (a pause shorter than the window costs nothing).
        routing.refresh_at(self.next_query(silence),
                           unless=silence.over if silence is not None else None)
        return True

    def next_query(self, silence: Silence | None) -> float:
        """The instant the next query is due for an op with this ``silence``."""
        last_start, step = self._routing.last_start, self._interval_s
        if silence is None:
            return last_start + step
        first, last = self._fd.window(silence)
        if silence.probed:  # the replicas are asked through the window: the meta after it
            first = last = last + step
        # Queries stay a step apart even when silences of several primaries (whose windows
        # differ a little) ask at once: each lands on one of their grids, never closer.
        lo = max(first, last_start + step * _GRID_TOLERANCE)  # float sums land a hair off
        if lo <= last:
            return last - math.floor((last - lo) / step) * step
        if last_start < last:
            return lo  # another silence's query took this window's last slot: a step later
        return max(last_start + self._late_s, last)
