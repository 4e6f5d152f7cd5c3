"""The cluster's unloaded put time, measured once before the load starts.

A run's recovery figures are only about the client while the cluster answers at about its
unloaded speed: once replies queue, every write after a failover waits behind the backlog,
and client lag measures that queue. :func:`measure` times ``n`` puts, one at a time, through
a plain client before any user starts; the self-check (:func:`loadgen.load.selfcheck.cluster_queue`)
compares the run's steady put response time with it. The puts go to one hash key of the
profile's table (``BASELINE_HASH_KEY``), outside every user's keys.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ..pegasus import Client, PegasusError

BASELINE_HASH_KEY = b"pegbench-baseline"
BASELINE_PUTS = 100
BASELINE_VALUE_BYTES = 512


@dataclass(frozen=True)
class Baseline:
    """``puts`` sequential puts on an idle cluster: their median and fastest times."""

    puts: int
    p50_ms: float
    min_ms: float

    def as_dict(self) -> dict[str, object]:
        """Plain data for results.json."""
        return {"puts": self.puts, "p50_ms": round(self.p50_ms, 3), "min_ms": round(self.min_ms, 3)}


def measure(meta: list[str] | tuple[str, ...], table: str, *, op_timeout_ms: float,
            puts: int = BASELINE_PUTS) -> Baseline | None:
    """Time ``puts`` puts one after another; None if any fails (an unhealthy start: the
    check is then skipped and says so, the run itself goes on)."""
    value = b"b" * BASELINE_VALUE_BYTES
    times = []
    with Client(list(meta), policy="failover", op_timeout_ms=op_timeout_ms) as client:
        t = client.open_table(table)
        for i in range(puts):
            start = time.perf_counter()
            try:
                t.put(BASELINE_HASH_KEY, str(i).encode(), value)
            except PegasusError:
                return None
            times.append((time.perf_counter() - start) * 1000)
    return Baseline(puts=puts, p50_ms=statistics.median(times), min_ms=min(times))
