"""The client inside Locust: monkey-patched process, Locust's own runner and user greenlets.

Each case runs in a subprocess, since importing Locust monkey-patches the whole interpreter.
Bounds are generous (the subprocess has a hard timeout); assertions are about behaviour:
requests succeed, a primary crash mid-run is ridden out by ``failover``, stopping the
runner leaves nothing hanging, and ``loadgen.pegasus`` itself never imports Locust.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)  # subprocesses: not "unit"

_LOCUST_RUN = textwrap.dedent("""
    import json, sys, time
    import locust  # monkey-patches everything, as the locust command does
    import gevent
    from locust import User, constant, events, task
    from locust.env import Environment
    from loadgen.pegasus import Client, PegasusError
    from loadgen.testing.cluster import TestCluster

    RUN_S, CRASH_AT_S = float(sys.argv[1]), float(sys.argv[2])
    cluster = TestCluster(replicas=2, partitions=4).start()
    client = Client(cluster.meta_addrs, policy="failover", op_timeout_ms=1000)
    counts = {"ok": 0, "fail": 0, "after_crash_ok": 0}
    crashed = []

    class PegasusUser(User):
        wait_time = constant(0.005)

        def on_start(self):
            self.table = client.open_table("temp")
            self.n = 0

        @task
        def put_then_get(self):
            self.n += 1
            key = f"user{id(self) % 1000}-{self.n % 50}"
            start = time.monotonic()
            try:
                self.table.put(key, "s", b"v")
                assert self.table.get(key, "s") == b"v"
            except PegasusError as exc:
                counts["fail"] += 1
                self.environment.events.request.fire(
                    request_type="pegasus", name="put+get", response_time=0,
                    response_length=0, exception=exc)
                return
            counts["ok"] += 1
            if crashed and start > crashed[0]:
                counts["after_crash_ok"] += 1
            self.environment.events.request.fire(
                request_type="pegasus", name="put+get",
                response_time=(time.monotonic() - start) * 1000, response_length=0, exception=None)

    def crash():
        a, b = cluster.replica_addrs
        crashed.append(time.monotonic())
        cluster.set_mode(a, "down")
        for pidx in range(cluster.partition_count):
            cluster.move_primary(pidx, b)

    env = Environment(user_classes=[PegasusUser], events=events)
    runner = env.create_local_runner()
    runner.start(8, spawn_rate=100)
    gevent.spawn_later(CRASH_AT_S, crash)
    gevent.spawn_later(RUN_S, runner.quit)
    quit_ok = bool(runner.greenlet.join(timeout=RUN_S + 20))  # True: every greenlet ended
    client.close()
    cluster.stop()
    stats = env.stats.total
    print(json.dumps({"quit_ok": quit_ok, "users_left": runner.user_count, **counts,
                      "locust_requests": stats.num_requests, "locust_failures": stats.num_failures}))
""")


def run_python(code: str, *args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout_s)


def test_locust_users_drive_the_client_through_a_primary_crash():
    proc = run_python(_LOCUST_RUN, "3", "1.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["quit_ok"] and result["users_left"] == 0
    assert result["ok"] >= 50, result
    assert result["after_crash_ok"] >= 10, result  # failover rode out the crash
    # A crash with an instant meta failover costs failover at most a handful of ops.
    assert result["fail"] <= 0.05 * result["ok"], result
    assert result["locust_requests"] == result["ok"] + result["fail"]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_the_client_package_does_not_import_locust():
    proc = run_python("import sys, loadgen.pegasus as p; p.Client; p.policies; "
                      "import loadgen.testing.cluster, loadgen.bench.client; "
                      "print('locust' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
