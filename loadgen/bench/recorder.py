"""Recorder benchmark: the cost of recording one outcome against a bare ``record_value``.

In one process, on the same synthetic stream (a simulated write-heavy run at
``--rate`` ops/s over 8 partitions, 1 % errors), times (a) a bare
``HdrHistogram.record_value`` loop over the stream's service times and (b)
``Recorder.record`` on its op-level outcomes (two histograms, counters, the policy series,
the partition timeline and the pending per-phase entry, with the once-a-second maintenance,
which folds those entries into per-phase histograms, amortised). Rounds alternate;
the best of each counts. Prints both figures and their ratio (target: at most 3).
Run as ``python -m loadgen.bench.recorder`` or ``pegbench bench recorder``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass

from ..metrics import hdr
from ..metrics.recorder import Recorder

TARGET_RATIO = 3.0
_OPS = (("put", 0.85), ("multi_put", 0.10), ("get", 0.05))
_PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Shaped like ``loadgen.pegasus.outcome.Outcome`` (metrics does not import the client)."""

    level: str
    op: str
    table: str
    partition: int
    node: str | None
    start: float
    end: float
    outcome: str
    error: str | None
    attempt: int
    refreshed: bool
    policy: str = ""
    intended_start: float | None = None


def synthetic_stream(count: int, rate: float, seed: int = 1) -> list[_Outcome]:
    """``count`` op-level outcomes of a simulated open-loop run at ``rate`` ops/s."""
    rng = random.Random(seed)
    ops, weights = zip(*_OPS)
    out = []
    t0 = 1000.0
    for k in range(count):
        intended = t0 + k / rate
        start = intended + rng.expovariate(1 / 0.0005)
        end = start + rng.lognormvariate(-5.5, 0.8)          # ~4 ms median service time
        failed = rng.random() < 0.01
        out.append(_Outcome(
            level="op", op=rng.choices(ops, weights)[0], table="temp",
            partition=rng.randrange(_PARTITIONS), node="127.0.0.1:34801", start=start,
            end=end, outcome="unknown" if failed else "ok",
            error="ERR_TIMEOUT" if failed else None, attempt=2 if failed else 1,
            refreshed=failed, policy="failover", intended_start=intended))
    return out


def time_bare(values: list[int]) -> float:
    """Seconds per ``record_value`` over ``values``."""
    hist = hdr.new_histogram()
    record = hist.record_value
    start = time.perf_counter()
    for v in values:
        record(v)
    return (time.perf_counter() - start) / len(values)


def time_recorder(stream: list[_Outcome]) -> float:
    """Seconds per ``Recorder.record`` over ``stream`` (a fresh recorder)."""
    recorder = Recorder()
    recorder.fault_at(stream[len(stream) // 2].intended_start, (1, 2, 3))
    record = recorder.record
    start = time.perf_counter()
    for o in stream:
        record(o)
    return (time.perf_counter() - start) / len(stream)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints both costs and their ratio; returns 0."""
    parser = argparse.ArgumentParser(prog="pegbench bench recorder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000, help="outcomes per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (best counts)")
    parser.add_argument("--rate", type=float, default=5000.0, help="simulated ops/s")
    args = parser.parse_args(argv)
    if args.count < 1 or args.rounds < 1 or args.rate <= 0:
        parser.error("--count, --rounds and --rate must be positive")
    stream = synthetic_stream(args.count, args.rate)
    values = [int((o.end - o.start) * 1e6 + 0.5) for o in stream]
    bare, recorded = [], []
    for _ in range(args.rounds):
        bare.append(time_bare(values))
        recorded.append(time_recorder(stream))
    best_bare, best_recorded = min(bare), min(recorded)
    ratio = best_recorded / best_bare
    print(f"outcomes     : {args.count} per round, {args.rounds} rounds, {args.rate:.0f} ops/s "
          "simulated")
    print(f"record_value : {best_bare * 1e9:8.0f} ns/value   (bare HdrHistogram.record_value)")
    print(f"recorder     : {best_recorded * 1e9:8.0f} ns/outcome (Recorder.record, op level)")
    print(f"ratio        : {ratio:.2f} (target <= {TARGET_RATIO:.0f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
