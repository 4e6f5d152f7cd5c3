"""A run driven the way ``pegbench run`` drives one, as a script for subprocess tests.

``python tests/support/locust_run.py MODE DIR`` (MODE ``local`` or ``master``) runs, in one
gevent process, the in-process test cluster (2 replicas) and a Locust runner with the
workload attached: a local runner, or a master runner plus two worker subprocesses
(``locust -f loadgen/locustfile.py --worker``, no pegbench options: the master ships its
settings; each dumps its own counts into DIR). After warm-up it "kills" the primary of every
partition (mode ``down``, primaries moved to the other replica) and tells the relay, as the
fault controller would; then stops the runner, takes the final report, reads the
acknowledged writes back, sets the exit code and writes ``DIR/<MODE>-result.json``.
Workers are stopped in ``finally``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import gevent
import locust  # noqa: F401 - monkey-patches this process, as the locust command does
from locust.env import Environment
from locust.event import Events
from locust_procs import LOCUSTFILES   # this script's folder is on sys.path

from loadgen.config.schema import WorkloadConfig
from loadgen.harness.hooks import attach, worker_argv
from loadgen.harness.verdict import set_exit_code
from loadgen.load.workload import WorkloadSettings
from loadgen.metrics import FaultInstant
from loadgen.metrics.events import INJECT
from loadgen.testing.cluster import TestCluster

RUN_S, WARMUP_S, FAULT_AT_S = 5.0, 1.0, 2.5
WORKERS = 2


def start_workers(port: int, out: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(WORKERS):
        with open(out / f"worker{i}.log", "w") as log:
            workers.append(subprocess.Popen(
                worker_argv("127.0.0.1", port, locustfile=LOCUSTFILES,
                            extra=["--pegbench-dump-dir", str(out)]),
                stdout=subprocess.DEVNULL, stderr=log))
    return workers


def kill_primary(cluster: TestCluster, harness) -> float:
    a, b = cluster.replica_addrs
    t = time.monotonic()
    cluster.set_mode(a, "down")
    for pidx in range(cluster.partition_count):
        cluster.move_primary(pidx, b)
    harness.events.fault_instant.fire(instant=FaultInstant(
        "1", "kill", a, INJECT, t, tuple(range(cluster.partition_count))))
    return t


def main(mode: str, out: Path) -> int:
    cluster = TestCluster(replicas=2, partitions=4).start()
    env = Environment(events=Events())
    runner = env.create_master_runner("127.0.0.1", 0) if mode == "master" else env.create_local_runner()
    settings = WorkloadSettings(meta=tuple(cluster.meta_addrs), policies=("legacy", "failover"),
                                workload=WorkloadConfig(users=2, rate_per_user=40, duration_s=RUN_S,
                                                        warmup_s=WARMUP_S, op_timeout_ms=500, key_space=20,
                                                        max_inflight=8, value_bytes=(16, 64)))
    harness = attach(env, settings)
    workers = start_workers(runner.server.port, out) if mode == "master" else []
    result: dict = {}
    try:
        deadline = time.monotonic() + 30
        while workers and len(runner.clients.ready) < WORKERS and time.monotonic() < deadline:
            gevent.sleep(0.1)
        result["workers_ready"] = len(runner.clients.ready) if workers else 0
        runner.start(harness.total_users, spawn_rate=100)
        gevent.sleep(FAULT_AT_S)
        t_fault = kill_primary(cluster, harness)
        gevent.sleep(RUN_S - FAULT_AT_S)
        runner.stop()
        final = harness.finish(timeout_s=20)
        durability = harness.durability(timeout_s=20)
        code = set_exit_code(env, True, saturation=final.saturation)
        counts = {name: {"ops": p.ops, "outcomes": dict(p.outcomes), "attempts": p.attempts,
                         "meta_queries": p.meta_queries, "missed": final.missed.get(name, 0),
                         "dropped": p.dropped_total}
                  for name, p in final.state.policies.items()}
        first_ok = {name: {f"{t}:{pidx}": [[i, e] for i, e in tl.first_ok.items()]
                           for (t, pidx), tl in p.partitions.items()}
                    for name, p in final.state.policies.items()}
        result.update(t_fault=t_fault, t_start=harness.t_start, workers=list(final.workers),
                      missing=list(final.missing), counts=counts, faults=list(final.state.faults),
                      first_ok=first_ok, durability=durability.as_dict(), exit_code=code,
                      saturation=final.saturation.as_dict(),
                      locust_requests=env.stats.total.num_requests)
        runner.quit()
        result["worker_exit"] = [proc.wait(timeout=20) for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cluster.stop()
        (out / f"{mode}-result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
