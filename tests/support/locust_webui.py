"""A Locust web UI with the workload attached, as a script for subprocess tests.

``python tests/support/locust_webui.py PORT MARKER`` serves, in one gevent process, the
in-process test cluster (2 replicas), a local runner with the workload attached and the
web UI on 127.0.0.1:PORT; prints ``READY`` when listening. When a test starts (a swarm POSTed
over HTTP), it "kills" the primary of every partition ``FAULT_AFTER_S`` later (mode ``down``,
primaries moved to the other replica) and tells the relay, as the fault controller would.
Runs until SIGTERM. MARKER is unused: it puts the test's temp dir on the command line, so the
suite's leftover-process check sees this process.
"""

from __future__ import annotations

import signal
import sys
import time

import gevent
import locust  # noqa: F401 - monkey-patches this process, as the locust command does
from locust.env import Environment
from locust.event import Events

from loadgen.config.schema import WorkloadConfig
from loadgen.harness.hooks import attach
from loadgen.load.workload import WorkloadSettings
from loadgen.metrics import FaultInstant
from loadgen.metrics.events import INJECT
from loadgen.testing.cluster import TestCluster

FAULT_AFTER_S = 1.5


def main(port: int) -> int:
    cluster = TestCluster(replicas=2, partitions=4).start()
    env = Environment(events=Events())
    env.create_local_runner()
    env.create_web_ui("127.0.0.1", port)
    settings = WorkloadSettings(meta=tuple(cluster.meta_addrs), policies=("legacy", "failover"),
                                workload=WorkloadConfig(users=2, rate_per_user=40, warmup_s=0.3,
                                                        op_timeout_ms=500, key_space=50, max_inflight=16,
                                                        value_bytes=(16, 64)))
    harness = attach(env, settings)

    def kill_primary() -> None:
        a, b = cluster.replica_addrs
        t = time.monotonic()
        cluster.set_mode(a, "down")
        for pidx in range(cluster.partition_count):
            cluster.move_primary(pidx, b)
        harness.events.fault_instant.fire(instant=FaultInstant(
            "1", "kill", a, INJECT, t, tuple(range(cluster.partition_count))))

    env.events.test_start.add_listener(lambda **_kw: gevent.spawn_later(FAULT_AFTER_S, kill_primary))
    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    print("READY", flush=True)
    done.wait()
    env.runner.quit()
    env.web_ui.stop()
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
