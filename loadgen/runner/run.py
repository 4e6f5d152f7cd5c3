"""``pegbench run``: one benchmark run from a profile to its verdict and its files.

Starts the onebox (unless the profile names an external cluster), runs the Locust workload
(local runner, or a master with N worker processes), the fault controller and its meta
observer; stops everything; reads acknowledged writes back; analyses; writes the run folder:
``results.json``, ``timeline.json``, ``junit.xml``, ``report.html``, ``faults.jsonl``, the
``.hlog`` interval logs, the meta's config-change log and ``profile.json``.

Exit codes (DESIGN.md): 0 the SLO verdict passed, 1 it failed or is unknown (e.g. the load
generator was its own bottleneck), 2 profile error, 3 runtime failure, 130 interrupted (after
cleanup; what was measured is still analysed and written). Every process started here dies
with this one: onebox nodes by their death signal, workers are stopped in ``finally``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from .. import __version__
from ..config.profile import load_profile
from ..config.schema import Profile
from ..errors import ClusterError, ConfigError
from ..exitcodes import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from .baseline import Baseline

log = logging.getLogger(__name__)

#: How often interval histograms go to the .hlog files.
HLOG_INTERVAL_S = 5.0
#: How long the end of a run may wait for workers' final reports and the read-back.
FINAL_REPORT_TIMEOUT_S = 30.0
DURABILITY_TIMEOUT_S = 120.0
WORKERS_READY_TIMEOUT_S = 60.0
LIBRARIES = ("locust", "gevent", "thrift", "hdrhistogram", "plotly", "rich")


@dataclass(frozen=True)
class ClusterHandle:
    """Where the run's load goes and how faults reach it."""

    meta: tuple[str, ...]
    onebox: Any = None              # the in-process Onebox, for the onebox injector
    config_log: Path | None = None  # the meta's config-change log, copied into the run


@contextmanager
def cluster_for(profile: Profile, work_dir: Path) -> Iterator[ClusterHandle]:
    """The profile's cluster: a onebox started here (stopped on exit), or the external one."""
    if profile.cluster.mode == "external":
        yield ClusterHandle(meta=tuple(profile.cluster.meta))
        return
    from ..onebox.process import free_port
    from ..onebox.spec import CONFIG_LOG, META_NODE, FDConfig
    from ..onebox.supervisor import Onebox

    c = profile.cluster
    box = Onebox(work_dir / "onebox", replica_nodes=c.replica_nodes, partitions=c.partitions,
                 replicas=c.replicas, min_replicas=c.min_replicas, table=c.table,
                 meta_port=free_port(), replica_ports=[free_port() for _ in range(c.replica_nodes)],
                 fd=FDConfig(**dataclasses.asdict(c.fd)),   # the same four timings
                 drop_expired=c.drop_expired)
    box.start()
    try:
        yield ClusterHandle(meta=tuple(box.meta_addrs), onebox=box,
                            config_log=box.spec.node_dir(META_NODE) / CONFIG_LOG)
    finally:
        box.stop()


def out_dir_for(profile: Profile, out: str | None) -> Path:
    """``--out``, else the profile's ``[report] out`` template."""
    if out:
        return Path(out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(profile.report.out.format(name=profile.name, timestamp=stamp))


def run(profile: Profile, out_dir: Path, *, workers: int = 0, quiet: bool = False) -> int:
    """Run ``profile``; write everything into ``out_dir``; the exit code."""
    from locust.env import Environment
    from locust.event import Events

    from ..faults.controller import FaultController
    from ..harness.hooks import attach
    from ..load.workload import WorkloadSettings
    from ..metrics.hlog import IntervalLogs
    from .baseline import measure as measure_baseline
    from .live import LiveView

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.json").write_text(json.dumps(profile.to_dict(), indent=2))
    view = LiveView(profile, quiet=quiet)
    interrupted = False
    with _Signals() as signals, tempfile.TemporaryDirectory(prefix="pegbench-run-") as tmp, \
            cluster_for(profile, Path(tmp)) as cluster:
        env = Environment(events=Events())
        procs: list[subprocess.Popen] = []
        if workers:
            runner = env.create_master_runner("127.0.0.1", 0)
        else:
            runner = env.create_local_runner()
        session = attach(env, WorkloadSettings.from_profile(
            profile, meta=cluster.meta, run_id=out_dir.name))
        controller = FaultController.from_profile(profile, onebox=cluster.onebox,
                                                  events=session.events, out_dir=out_dir)
        session.relay.events_source = controller.fault_events
        hlogs: IntervalLogs | None = None
        baseline: Baseline | None = None
        t_end = time.monotonic()
        try:
            if workers:
                procs = _start_workers(runner, workers, out_dir)
            view.started(cluster.meta, workers)
            baseline = measure_baseline(cluster.meta, profile.cluster.table,
                                        op_timeout_ms=profile.workload.op_timeout_ms)
            runner.start(session.total_users, spawn_rate=session.total_users)
            t0 = time.monotonic()
            controller.start(t0)
            hlogs = IntervalLogs(out_dir / "hlog", t0=t0, start_wall_s=time.time())
            _drive(profile, session, controller, view, hlogs, t0)
            signals.calm()
        except KeyboardInterrupt:
            interrupted = True
            view.say("interrupted: stopping the load, healing faults, writing what was measured",
                     always=True)
        finally:
            signals.calm()
            t_end = time.monotonic()
            try:
                runner.stop()
                controller.stop(interrupted=interrupted)
            except BaseException:
                _stop_workers(procs)
                raise
        final = session.finish(timeout_s=FINAL_REPORT_TIMEOUT_S)
        if hlogs is not None:
            hlogs.write(_histograms(final.state), hlogs.t0, t_end)
            hlogs.close()
        view.say("reading acknowledged writes back ...")
        durability = session.durability(timeout_s=DURABILITY_TIMEOUT_S)
        runner.quit()
        _stop_workers(procs)
        if cluster.config_log is not None and cluster.config_log.exists():
            shutil.copy(cluster.config_log, out_dir / "meta-config-changes.jsonl")
        return _conclude(profile, out_dir, session, controller, final, durability, t_end,
                         interrupted, view, baseline)


def _drive(profile, session, controller, view, hlogs, t0: float) -> None:
    """Until the profile's duration has passed: refresh the view, log interval histograms."""
    end = t0 + profile.workload.duration_s
    next_hlog = t0 + HLOG_INTERVAL_S
    logged_from, reset_seen = t0, False
    while True:  # bounded by ``end``
        now = time.monotonic()
        if now >= end:
            return
        gevent.sleep(min(1.0, end - now))
        now = time.monotonic()
        if not reset_seen and session.t_start is not None:
            hlogs.restart()  # warm-up is over: the recorder was reset
            logged_from, reset_seen = session.t_start, True
        if now >= next_hlog and reset_seen:
            hlogs.write(session.live_histograms(), logged_from, now, pause=_yield)
            logged_from, next_hlog = now, now + HLOG_INTERVAL_S
        view.tick(now - t0, session, session.relay.fault_events())


def _yield() -> None:
    gevent.sleep(0)   # lets the users' greenlets run between two histograms


def _histograms(state) -> dict:
    return {(name, op, kind): hist for name, p in state.policies.items()
            for (op, kind), hist in p.histograms.items()}


def _conclude(profile, out_dir: Path, session, controller, final, durability, t_end: float,
              interrupted: bool, view, baseline: Baseline | None) -> int:
    from ..harness.verdict import exit_code_for
    from ..metrics import hdr
    from ..metrics.outputs import (RESULTS_JSON, TIMELINE_JSON, build_results, build_timeline,
                                   write_results, write_timeline)
    from ..metrics.results import LoadGenerator, RunFacts, Workers
    from ..pegasus import policies
    from ..report.junit import write_junit

    events = controller.fault_events()
    t_start = session.t_start if session.t_start is not None else t_end
    saturation, schedule, queue = _load_generator_check(profile, final, events, t_start, t_end,
                                                        baseline)
    facts = RunFacts(
        profile=profile.to_dict(), seed=profile.seed, versions=_versions(),
        machine={"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count()},
        clock_anchor={"wall_s": time.time(), "monotonic_s": time.monotonic()},
        load_generator=LoadGenerator(
            **saturation.as_dict(), schedule={name: c.as_dict() for name, c in schedule.items()},
            baseline=None if baseline is None else baseline.as_dict(),
            cluster_queue=queue.as_dict()),
        workers=Workers(reported=tuple(final.workers), missing=tuple(final.missing)),
        interrupted=interrupted,
        policy_info={i.name: {"models": i.models, "summary": i.summary, "source": i.source}
                     for i in policies.available()},
        latency_hdr={name: {op: {kind: hdr.encode(h)} for (op, kind), h in p.histograms.items()}
                     for name, p in final.state.policies.items()})
    slo = {b.metric: {k: v for k, v in (("min", b.min), ("max", b.max)) if v is not None}
           for b in profile.slo}
    # the verdict is settled here: the checks, unknown if saturated or incomplete
    results = build_results(final.state, events, t_start=t_start, t_end=t_end,
                            table=profile.cluster.table, missed=final.missed,
                            durability=durability.results_block(), slo=slo, extra=facts)
    write_results(out_dir / RESULTS_JSON, results)
    write_timeline(out_dir / TIMELINE_JSON,
                   build_timeline(final.state, events, t_start=t_start, t_end=t_end))
    write_junit(out_dir / "junit.xml", results, suite=f"pegbench.{profile.name}")
    report = _write_report(out_dir)
    view.finished(results, out_dir, report)
    if interrupted:
        return EXIT_INTERRUPTED
    return exit_code_for(results.slo.verdict)


def _load_generator_check(profile, final, events, t_start: float, t_end: float,
                          baseline: Baseline | None):
    """(saturation, schedule checks, cluster queue check): the load processes' own flag,
    whether each policy's schedule went out outside the faults, and whether the cluster
    answered near its unloaded speed (:mod:`loadgen.load.selfcheck`)."""
    from ..load.selfcheck import (ClusterQueueCheck, cluster_queue_saturation, schedule_checks,
                                  schedule_saturation)
    from ..metrics.events import phases

    w = profile.workload
    checks = schedule_checks(final.state, phases(events), t_start=t_start, t_end=t_end,
                             offered_per_s=w.users * w.rate_per_user,
                             settle_s=w.op_timeout_ms / 1000 + 1.0, missed=final.missed)
    put = {name: p.histograms[("put", "response")] for name, p in final.state.policies.items()
           if ("put", "response") in p.histograms}
    queue = ClusterQueueCheck(
        baseline_p50_ms=None if baseline is None else baseline.p50_ms,
        put_p50_ms={name: h.get_value_at_percentile(50) / 1000 for name, h in put.items()
                    if h.get_total_count()})
    saturation = final.saturation.plus(schedule_saturation(checks, w.max_inflight))
    return saturation.plus(cluster_queue_saturation(queue)), checks, queue


def _write_report(out_dir: Path) -> Path | None:
    from ..report.command import write_report

    try:
        return write_report(out_dir)
    except Exception:  # noqa: BLE001 - the numbers are written; a report bug must not hide them
        log.exception("report.html could not be written (results.json is complete)")
        return None


def _versions() -> dict[str, str]:
    versions = {"pegbench": __version__, "python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


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
    """``pegbench run PROFILE [--out DIR] [--set k=v ...] [--workers N] [--quiet]``."""
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
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers: a number >= 0")
    profile = load_profile(args.profile, args.sets)
    if profile.policies.mode != "paired":
        raise ConfigError(profile.source or args.profile, "policies.mode",
                          f"'paired': pegbench run does not run {profile.policies.mode!r} yet")
    out_dir = out_dir_for(profile, args.out)
    return run(profile, out_dir, workers=args.workers, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
