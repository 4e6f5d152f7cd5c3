"""Replica probe: ask a partition's surviving replicas which of them is primary now.

When a primary dies, the meta promotes one of its secondaries and tells it so at once (the
config proposal it pushes to the alive nodes). A client that still holds the partition's last
config can learn of the promotion from the secondaries themselves, at no cost to the meta: it
sends each a read of the partition; a secondary refuses it (ERR_INVALID_STATE), the new
primary serves it. It is no upstream client's way (they all ask the meta); ``failover``'s
``probe_replicas`` turns it on, and every probe is reported as an outcome of level
``probe`` (replica queries, the cost beside meta queries).

The probes of one partition follow the failure detector's window (as
:class:`~loadgen.pegasus.refresh.FailureDetectorPoller` lays its meta queries): none before
the meta can have promoted anyone, then one round per ``interval_s`` on a grid laid back from
the window's end, until a replica says it is primary (the route moves), the old primary speaks
again, or the window is over (the meta is asked from then on).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import gevent

from ..errors import PegasusError
from . import codec, keys
from .outcome import FAIL, OK, PROBE, Outcome
from .rdsn.ttypes import blob
from .refresh import FailureDetector, Silence
from .routing import PartitionRoute, TableRouting
from .session import Session

log = logging.getLogger(__name__)

#: The hash key prefix of the probe reads (a key of the probed partition is found from it).
PROBE_KEY = b"pegbench-probe"


class ReplicaProbe:
    """Probes one table's partitions whose primary went silent (one prober per partition)."""

    def __init__(self, routing: TableRouting, session: Callable[[str], Session],
                 fd: FailureDetector, interval_s: float, attempt_timeout_s: float,
                 emit: Callable[[Outcome], None] | None = None, policy: str = ""):
        self._routing = routing
        self._session = session
        self._fd = fd
        self._interval_s = interval_s
        self._timeout_s = attempt_timeout_s
        self._emit = emit
        self._policy = policy
        self._probers: dict[int, gevent.Greenlet] = {}
        self._keys: dict[tuple[int, int], tuple[bytes, int]] = {}
        #: Probe reads sent so far.
        self.probes = 0

    def request(self, route: PartitionRoute, silence: Silence) -> bool:
        """Probe ``route``'s secondaries (its partition's primary went silent); True while a
        prober is on it, False if there is nothing to ask or its window is already over."""
        if not route.secondaries:
            return False
        prober = self._probers.get(route.index)
        if prober is not None:
            return True
        _, last = self._fd.window(silence)
        if time.monotonic() > last:
            return False
        self._probers[route.index] = gevent.spawn(self._probe, route, silence)
        return True

    def probing(self, index: int) -> bool:
        """Whether partition ``index`` is being probed."""
        return index in self._probers

    def close(self) -> None:
        """Stop every prober."""
        for prober in list(self._probers.values()):
            prober.kill(block=False)
        self._probers.clear()

    def _probe(self, route: PartitionRoute, silence: Silence) -> None:
        first, last = self._fd.window(silence)
        step = self._interval_s
        now = time.monotonic()
        at = last - math.floor((last - max(first, now)) / step) * step
        try:
            while at <= last:
                gevent.sleep(max(0.0, at - time.monotonic()))
                if self._routing.route(route.index) != route or (
                        silence.over is not None and silence.over()):
                    return  # moved by a meta answer, or the primary spoke again
                answers = gevent.joinall([gevent.spawn(self._ask, route, node)
                                          for node in route.secondaries])
                primary = next((g.value for g in answers if g.value is not None), None)
                if primary is not None:
                    self._routing.learn_primary(route.index, primary, route)
                    return
                at += step
        finally:
            self._probers.pop(route.index, None)

    def _ask(self, route: PartitionRoute, node: str) -> str | None:
        """``node`` if it serves a read of the partition (it is primary), else None."""
        config = self._routing.config
        key, phash = self._key(route.index, config.partition_count)
        start = time.monotonic()
        error = None
        try:
            reply = self._session(node).call(
                codec.RPC_GET, blob(key), deadline=start + self._timeout_s, app_id=config.app_id,
                partition_index=route.index, partition_hash=phash)
            error = None if reply.error == "ERR_OK" else reply.error
        except PegasusError as exc:
            error = exc.code
        self.probes += 1
        if self._emit is not None:
            self._emit(Outcome(level=PROBE, op="probe", table=self._routing.table,
                               partition=route.index, node=node, start=start,
                               end=time.monotonic(), outcome=OK if error is None else FAIL,
                               error=error, attempt=1, refreshed=False, policy=self._policy))
        return node if error is None else None

    def _key(self, index: int, count: int) -> tuple[bytes, int]:
        """A key of partition ``index`` (of ``count``) and its hash: ``PROBE_KEY-n``."""
        found = self._keys.get((index, count))
        if found is None:
            n = 0
            while True:  # each try lands on one of ``count`` partitions: ~count tries
                hash_key = PROBE_KEY + b"-%d" % n
                key, phash = keys.key_and_hash(hash_key, b"")
                if keys.partition_index(phash, count) == index:
                    break
                n += 1
            found = self._keys[(index, count)] = (key, phash)
        return found
