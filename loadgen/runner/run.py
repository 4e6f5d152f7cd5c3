"""``pegbench run``: one benchmark run from a profile to its verdict and its files.

Starts the onebox (unless the profile names an external cluster) and the Locust workload
(local runner, or a master with N worker processes); measures the cluster's unloaded put
time; then one run (:class:`~.measurement.Measurement`: the load, the fault controller, the
run folder) — or, with ``--web``, Locust's web UI and one run per press of its Start.

Exit codes (DESIGN.md): 0 the SLO verdict passed, 1 it failed or is unknown (e.g. the load
generator was its own bottleneck), 2 profile error, 3 runtime failure, 130 interrupted (after
cleanup; what was measured is still analysed and written). Every process started here dies
with this one: onebox nodes by their death signal, workers are stopped in ``finally``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from ..config.profile import load_profile
from ..config.schema import Profile
from ..errors import ClusterError, ConfigError
from ..load.real_client import check_commands
from ..faults.cluster import Cluster, ExternalCluster
from .measurement import Measurement
from .locust_runs import LocustRuns
from .web import WebAddress, web_ui

if TYPE_CHECKING:
    from .baseline import Baseline

log = logging.getLogger(__name__)

WORKERS_READY_TIMEOUT_S = 60.0


@contextmanager
def open_cluster(profile: Profile, work_dir: Path) -> Iterator[Cluster]:
    """The profile's cluster, chosen here once: a onebox started in ``work_dir`` (stopped on
    exit), or the external one its metas name."""
    if profile.cluster.mode == "external":
        cluster: Cluster = ExternalCluster.from_config(profile.cluster)
    else:
        from ..onebox.cluster import OneboxCluster
        cluster = OneboxCluster.start(profile.cluster, work_dir / "onebox")
    try:
        yield cluster
    finally:
        cluster.stop()


def out_dir_for(profile: Profile, out: str | None) -> Path:
    """``--out``, else the profile's ``[report] out`` template."""
    if out:
        return Path(out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(profile.report.out.format(name=profile.name, timestamp=stamp))


def run(profile: Profile, out_dir: Path, *, workers: int = 0, quiet: bool = False,
        web: WebAddress | None = None) -> int:
    """Run ``profile``; write everything into ``out_dir``; the exit code. With ``web``, serve
    Locust's web UI there instead and measure one run per press of its Start (see
    :class:`~.locust_runs.LocustRuns`) until Ctrl-C."""
    from locust.env import Environment
    from locust.event import Events

    from ..harness.hooks import attach
    from ..load.workload import WorkloadSettings
    from .baseline import measure as measure_baseline
    from .live import LiveView

    out_dir.mkdir(parents=True, exist_ok=True)
    view = LiveView(profile, quiet=quiet)   # lines of progress between runs
    with _Signals() as signals, tempfile.TemporaryDirectory(prefix="pegbench-run-") as tmp, \
            open_cluster(profile, Path(tmp)) as cluster:
        cluster.injector(profile.injector)   # a profile error shows now, not at the first Start
        env = Environment(events=Events())
        settings = WorkloadSettings.from_profile(profile, meta=cluster.meta, run_id=out_dir.name,
                                                 meta_query_log=str(cluster.meta_query_log or ""))
        runner = env.create_master_runner("127.0.0.1", 0) if workers else env.create_local_runner()
        web_runs = None
        if web is not None:
            web_runs = LocustRuns(env, profile, out_dir, cluster=cluster, workers=workers,
                               quiet=quiet, view=view)   # listens before the harness does
            web_ui(env, web, settings)
            web_runs.add_routes()
        harness = attach(env, settings)
        procs: list[subprocess.Popen] = []
        try:
            if workers:
                procs = _start_workers(runner, workers, out_dir)
            baseline = measure_baseline(cluster.meta, profile.cluster.table,
                                        op_timeout_ms=profile.workload.op_timeout_ms)
            if web_runs is not None:
                return web_runs.serve(harness, baseline, signals)
            return _headless(profile, out_dir, runner, harness, cluster, baseline, signals,
                             workers=workers, quiet=quiet, view=view)
        finally:
            signals.calm()
            runner.quit()
            _stop_workers(procs)


def _headless(profile: Profile, out_dir: Path, runner: Any, harness: Any, cluster: Cluster,
              baseline: Baseline | None, signals: _Signals, *, workers: int, quiet: bool,
              view: Any) -> int:
    """One run: the load from now for the profile's duration, then its run folder."""
    run = Measurement(profile, out_dir, harness=harness, cluster=cluster, baseline=baseline,
                      workers=workers, quiet=quiet)
    try:
        runner.start(harness.total_users, spawn_rate=harness.total_users)
        run.start()
        run.drive()
    except KeyboardInterrupt:
        run.interrupted = True
        view.say("interrupted: stopping the load, healing faults, writing what was measured",
                 always=True)
    finally:
        signals.calm()
        run.t_end = time.monotonic()
        runner.stop()
        run.stop_faults()
    return run.finish()


def _start_workers(runner, n: int, out_dir: Path) -> list[subprocess.Popen]:
    from ..harness.distributed import master_port, ready_workers
    from ..harness.hooks import worker_argv
    from ..onebox.process import spawn

    # Each in its own process group, killed by the kernel if this process dies.
    procs = [spawn(worker_argv("127.0.0.1", master_port(runner)), out_dir / f"worker{i + 1}.log")
             for i in range(n)]
    deadline = time.monotonic() + WORKERS_READY_TIMEOUT_S
    while ready_workers(runner) < n:  # bounded by the deadline
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            _stop_workers(procs)
            raise ClusterError(f"{ready_workers(runner)} of {n} Locust workers connected "
                               f"(see {out_dir}/worker*.log)")
        gevent.sleep(0.1)
    return procs


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class _Signals:
    """SIGTERM and SIGINT during the load become KeyboardInterrupt in the main greenlet, so
    the run stops cleanly, heals its faults and writes what it measured. Once the load is
    over (:meth:`calm`), or after the first one, signals are noted and ignored: a second
    Ctrl-C must not leave a paused node or a worker behind half-way through cleanup."""

    def __init__(self) -> None:
        self.main = gevent.getcurrent()
        self.raising = True
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def calm(self) -> None:
        """From now on, signals are only noted."""
        self.raising = False

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        if not self.raising:
            log.warning("signal %d: already stopping, please wait", signum)
            return
        self.raising = False
        if gevent.getcurrent() is self.main:
            raise KeyboardInterrupt
        gevent.kill(self.main, KeyboardInterrupt)  # from the hub: no traceback printed there


def main(argv: list[str]) -> int:
    """``pegbench run PROFILE [--out DIR] [--set k=v ...] [--workers N] [--quiet]
    [--web [--web-host H] [--web-port P]]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="pegbench run", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", metavar="PROFILE", help="a TOML profile, e.g. profiles/quick.toml")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: the profile's "
                                                     "[report] out, reports/<name>-<timestamp>)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile key; VALUE is a TOML literal (repeatable)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="Locust worker processes (default 0: one local process)")
    parser.add_argument("--quiet", action="store_true", help="no live view, only the verdict")
    parser.add_argument("--web", action="store_true",
                        help="serve Locust's web UI: each Start runs the profile (its faults "
                             "too) and writes a run folder; Ctrl-C quits")
    parser.add_argument("--web-host", default=WebAddress.host, metavar="HOST",
                        help=f"the web UI's address (default {WebAddress.host})")
    parser.add_argument("--web-port", type=int, default=WebAddress.port, metavar="PORT",
                        help=f"the web UI's port (default {WebAddress.port}; 0: a free one)")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers: a number >= 0")
    if not args.web and (args.web_host != WebAddress.host or args.web_port != WebAddress.port):
        parser.error("--web-host and --web-port go with --web")
    if not 0 <= args.web_port < 65536:
        parser.error(f"--web-port: a port within 0-65535, got {args.web_port}")
    profile = load_profile(args.profile, args.sets)
    if profile.policies.mode != "paired":
        raise ConfigError(profile.source or args.profile, "policies.mode",
                          f"'paired': pegbench run does not run {profile.policies.mode!r} yet")
    check_commands(profile.clients, profile.source or args.profile)
    out_dir = out_dir_for(profile, args.out)
    web = WebAddress(args.web_host, args.web_port) if args.web else None
    return run(profile, out_dir, workers=args.workers, quiet=args.quiet, web=web)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
