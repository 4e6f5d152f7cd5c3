"""Locust benchmark: the workload's Locust users vs the bare client, in one process, one server.

A load generator that saturates itself measures itself. Against the same test cluster (one
server process, ``python -m loadgen.testing.cluster``, started as ``pegbench bench client``
does), two phases alternate for ``--rounds`` rounds and the best of each counts:

(a) client — ``--users`` greenlets doing ``Table.put`` through the client, closed loop
    (``pegbench bench client``'s own client phase);
(b) locust — a Locust local runner in this process with ``--users`` users of the workload
    (open-loop schedule, ledger, recorder, Locust's request event), each scheduled far above
    what it can do, so it issues its backlog back to back: the most the users can drive.

Prints ops/s of both, their ratio (target: the Locust users reach at least 60 % of the
client) and whether the load monitor flagged the Locust process as its own bottleneck (it
should here: this phase saturates it on purpose). Run as ``pegbench bench locust``.
"""

from __future__ import annotations

import argparse
import sys
import time

import gevent
import locust  # noqa: F401 - monkey-patches the process, as the locust command does
from locust.env import Environment
from locust.event import Events

from ..config.schema import OpMix, WorkloadConfig
from ..errors import PegasusError
from ..harness.hooks import attach
from ..load.selfcheck import LoadMonitor
from ..load.workload import WorkloadSettings
from .client import client_puts, start_server

TARGET_RATIO = 0.6
_PARTITIONS = 8
#: Each user is scheduled above what it can do (ops/s) with one op in flight at a time, so it
#: never waits, like the bare client's greenlets; the surplus arrivals are dropped (counted).
#: At least this, and what a bare client's greenlet did in the same run (a user, doing more
#: per op, cannot keep up with it): a fixed rate alone capped the users (20 × 400 = 8,000
#: ops/s) below a fast host's client. Higher only spends the users' CPU on drops.
_OVERDRIVE_RATE = 400.0
_OVERDRIVE_FACTOR = 1.0


def locust_ops(meta: str, seconds: float, users: int, value_bytes: int, policy: str,
               warmup_s: float = 1.0, rate_per_user: float = _OVERDRIVE_RATE
               ) -> tuple[float, float, dict[str, object]]:
    """(ops/s, CPU fraction, saturation) of a local Locust runner driving the workload's
    users, each scheduled at ``rate_per_user``; the load monitor's window is shortened to fit
    the phase."""
    settings = WorkloadSettings(meta=(meta,), policies=(policy,), workload=WorkloadConfig(
        users=users, rate_per_user=rate_per_user, duration_s=seconds + warmup_s, warmup_s=0,
        op_timeout_ms=5000, key_space=1000, value_bytes=(value_bytes, value_bytes),
        mix=OpMix(put=1.0, multi_put=0.0, get=0.0), max_lag_s=1.0, max_inflight=1))
    env = Environment(events=Events())
    runner = env.create_local_runner()
    harness = attach(env, settings, web_ui=False)
    harness.workload.monitor = LoadMonitor(window_s=max(1.0, min(5.0, seconds - 1.0)))
    try:
        runner.start(settings.total_users, spawn_rate=100)
        gevent.sleep(warmup_s)
        harness.workload.end_warmup()      # count from here: clients open, users running
        start, cpu = time.monotonic(), time.process_time()
        gevent.sleep(seconds)
        state = harness.workload.recorder.snapshot()
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
        saturation = harness.saturation().as_dict()
    finally:
        runner.quit()
    ops = sum(p.ops for p in state.policies.values())
    return ops / elapsed, cpu / elapsed, saturation


def main(argv: list[str] | None = None) -> int:
    """Run both phases; print ops/s, the ratio and the load monitor's flag; 1 if below
    ``--min-ratio``, 3 if the server would not start."""
    parser = argparse.ArgumentParser(prog="pegbench bench locust",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="phases alternate this many times; the best of each counts")
    parser.add_argument("--users", type=int, default=50,
                        help="Locust users, and client greenlets (default 50)")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--policy", default="failover")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help=f"exit 1 if locust/client is below this (target {TARGET_RATIO})")
    args = parser.parse_args(argv)
    value = b"v" * args.value_bytes
    try:
        proc, meta, _replica = start_server(partitions=_PARTITIONS)
    except PegasusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    client = users = cpu = 0.0
    saturation: dict[str, object] = {}
    try:
        # Alternating rounds, best of each: one noisy neighbour cannot skew only one phase.
        for _ in range(max(1, args.rounds)):
            client = max(client, client_puts(meta, args.seconds, args.users, value, args.policy))
            rate = max(_OVERDRIVE_RATE, _OVERDRIVE_FACTOR * client / args.users)
            got, used, sat = locust_ops(meta, args.seconds, args.users, args.value_bytes,
                                        args.policy, rate_per_user=rate)
            if got > users:
                users, cpu, saturation = got, used, sat
    finally:
        proc.kill()
        proc.wait()
    ratio = users / client if client else 0.0
    flag = (f"yes: {saturation.get('reason')}" if saturation.get("saturated")
            else f"no (window CPU max {saturation.get('cpu_max'):.0%})")
    print(f"client       : {client:9.0f} ops/s  (policy {args.policy}, {args.users} greenlets, "
          f"closed loop, {args.value_bytes}-byte puts)")
    print(f"locust users : {users:9.0f} ops/s  ({args.users} workload users in one Locust "
          f"process, open loop overdriven, puts; process CPU {cpu:.0%})")
    print(f"ratio        : {ratio:9.2f}        (target >= {TARGET_RATIO})")
    print(f"saturated    : {flag}")
    return 1 if args.min_ratio is not None and ratio < args.min_ratio else 0


if __name__ == "__main__":
    raise SystemExit(main())
