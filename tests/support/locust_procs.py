"""Processes of the Locust tests: the test cluster, locust masters and workers, scripts.

Every process starts in its own session (process group) with the test's temp dir on its
command line (the suite's leftover check looks for it) and is stopped by :class:`Procs`
when the test ends, pass or fail: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO / "loadgen" / "locustfile.py")
SUPPORT = Path(__file__).resolve().parent
#: pegbench's locustfile plus the test plugin that adds ``--pegbench-dump-dir``
LOCUSTFILES = f"{LOCUSTFILE},{SUPPORT / 'count_dump.py'}"
#: The in-process test cluster as a process; argv[1] (the temp dir) only marks it as ours.
CLUSTER_CODE = ("import sys; from loadgen.testing.cluster import main; "
                "main(['--replicas', '2', '--partitions', '4'])")


class Procs:
    """The processes one test started; ``stop_all`` in ``finally`` (or use ``with``)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, argv: list[str], name: str, **kw: Any) -> subprocess.Popen:
        """Start ``argv``; its output goes to ``<tmp>/<name>.log`` unless ``stdout`` is given."""
        with open(self.tmp / f"{name}.log", "w") as log:   # the child keeps its own copy
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", subprocess.STDOUT)
            proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def cluster(self) -> list[str]:
        """Start the test cluster; its meta address, then its replicas'."""
        proc = self.start([sys.executable, "-c", CLUSTER_CODE, str(self.tmp)], "cluster",
                          stdout=subprocess.PIPE, text=True)
        addrs = [proc.stdout.readline().strip() for _ in range(3)]
        assert all(addrs), "the test cluster did not start"
        return addrs

    def locust(self, *args: str, name: str) -> subprocess.Popen:
        """``locust -f loadgen/locustfile.py,tests/support/count_dump.py ARGS``; with a
        profile, its run folders go under the test's folder (``<tmp>/<name>-run``)."""
        if "--pegbench-profile" in args and "--pegbench-out" not in args:
            args = (*args, "--pegbench-out", str(self.tmp / f"{name}-run"))
        return self.start([sys.executable, "-m", "locust", "-f", LOCUSTFILES, *args], name)

    def stop_all(self) -> None:
        """SIGTERM every process group still alive, then SIGKILL what is left."""
        for proc in self.procs:
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()

    def log(self, name: str) -> str:
        """The last part of a process's log, for assertion messages."""
        path = self.tmp / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def http(url: str, data: dict[str, Any] | None = None, timeout_s: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET, or of a form POST when ``data`` is given."""
    body = None if data is None else "&".join(f"{k}={v}" for k, v in data.items()).encode()
    req = urllib.request.Request(url, data=body, method="GET" if data is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.status, resp.read().decode()


def wait_for_http(url: str, timeout_s: float = 30.0) -> None:
    """Poll until ``url`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if http(url, timeout_s=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)


def recovery_rows(base: str) -> list[dict[str, Any]]:
    """The Recovery tab's rows from ``/stats/requests`` (``extended_stats``)."""
    data = json.loads(http(f"{base}/stats/requests")[1])
    return next((s["data"] for s in data.get("extended_stats", []) if s["key"] == "recovery"), [])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
