"""One measured run: from the load's start to its run folder.

A :class:`Measurement` starts the fault controller (the plan's instants count from the load's
start) and the interval logs, keeps the live view and the ``.hlog`` files going while the load
runs, and at the end heals the faults, takes the final figures, reads acknowledged writes
back and writes the run folder: ``profile.json``, ``results.json``, ``timeline.json``,
``junit.xml``, ``report.html``, ``faults.jsonl``, ``hlog/`` and the cluster's own logs.
``pegbench run`` makes one; ``pegbench run --web`` one per press of the web UI's Start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

import gevent

from .. import __version__
from ..config.schema import Profile
from ..exitcodes import EXIT_INTERRUPTED
from ..faults.cluster import Cluster
from ..metrics import hdr

if TYPE_CHECKING:
    from .baseline import Baseline

log = logging.getLogger(__name__)

#: How often interval histograms go to the .hlog files.
HLOG_INTERVAL_S = 5.0
#: How long the end of a run may wait for workers' final reports and the read-back.
FINAL_REPORT_TIMEOUT_S = 30.0
DURABILITY_TIMEOUT_S = 120.0
LIBRARIES = ("locust", "gevent", "thrift", "hdrhistogram", "plotly", "rich")


class Measurement:
    """One run of ``profile`` against ``cluster`` through ``harness`` (a ``Harness``),
    written into ``out_dir``; :meth:`start` when the load starts, :meth:`drive` (or
    :meth:`tick`) while it runs, :meth:`finish` once the runner stopped."""

    def __init__(self, profile: Profile, out_dir: Path, *, harness: Any, cluster: Cluster,
                 baseline: Baseline | None, workers: int = 0, quiet: bool = False,
                 on_demand: bool = False):
        from ..faults.controller import FaultController
        from .live import LiveView

        self.profile = profile
        self.out_dir = out_dir
        self.harness = harness
        self.cluster = cluster
        self.baseline = baseline
        self.workers = workers
        self.view = LiveView(profile, quiet=quiet)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "profile.json").write_text(json.dumps(profile.to_dict(), indent=2))
        self.controller = FaultController.from_profile(profile, cluster, events=harness.events,
                                                       on_demand=on_demand,
                                                       out_dir=out_dir)
        self.t0: float | None = None
        self.t_end: float | None = None
        self.interrupted = False
        #: what :meth:`finish` wrote (a :class:`~loadgen.metrics.results.Results`)
        self.results: Any = None
        self._hlogs: Any = None
        self._logged_from = 0.0
        self._next_hlog = 0.0
        self._reset_seen = False
        #: users per policy at the start; (monotonic instant, users per policy from then
        #: on) after each *Edit* mid-run
        self.users_at_start = profile.workload.users
        self.user_steps: list[tuple[float, int]] = []

    @property
    def t_due(self) -> float:
        """When the profile's duration is over (monotonic)."""
        assert self.t0 is not None, "not started"
        return self.t0 + self.profile.workload.duration_s

    def start(self, t0: float | None = None) -> None:
        """The load started (at ``t0``, default now): run the fault plan, log intervals."""
        from ..metrics.hlog import IntervalLogs

        self.t0 = time.monotonic() if t0 is None else t0
        self.view.started(self.cluster.meta, self.workers)
        self.controller.start(self.t0)
        self._hlogs = IntervalLogs(self.out_dir / "hlog", t0=self.t0, start_wall_s=time.time())
        self._logged_from = self.t0
        self._next_hlog = self.t0 + HLOG_INTERVAL_S

    def drive(self) -> None:
        """Until the profile's duration has passed: :meth:`tick` about once a second."""
        while True:  # bounded by t_due
            now = time.monotonic()
            if now >= self.t_due:
                return
            gevent.sleep(min(1.0, self.t_due - now))
            self.tick()

    def tick(self) -> None:
        """Refresh the live view; log interval histograms once warm-up is over."""
        now = time.monotonic()
        harness = self.harness
        if not self._reset_seen and harness.t_start is not None:
            self._hlogs.restart()  # warm-up is over: the recorder was reset
            self._logged_from, self._reset_seen = harness.t_start, True
        if now >= self._next_hlog and self._reset_seen:
            self._hlogs.write(harness.live_histograms(), self._logged_from, now, pause=_yield)
            self._logged_from, self._next_hlog = now, now + HLOG_INTERVAL_S
        self.view.tick(now - self.t0, harness, harness.relay.fault_events())

    def users_changed(self, users: int) -> None:
        """Locust's *Edit*: ``users`` per policy from now on. profile.json says the count at
        the end, results.json each change, and the schedule check follows them."""
        if users == self.profile.workload.users or self.t0 is None:
            return
        self.user_steps.append((time.monotonic(), users))
        self.profile = dataclasses.replace(self.profile, workload=dataclasses.replace(
            self.profile.workload, users=users))
        (self.out_dir / "profile.json").write_text(json.dumps(self.profile.to_dict(), indent=2))
        log.info("pegbench: %d users per policy from %.1f s on", users,
                 self.user_steps[-1][0] - self.t0)

    def stop_faults(self) -> None:
        """The load stopped: heal what is in place, write the last fault records."""
        if self.t_end is None:
            self.t_end = time.monotonic()
        self.controller.stop(interrupted=self.interrupted)

    def finish(self) -> int:
        """After the runner stopped: faults healed, final figures, read-back, run folder;
        the exit code (0 pass, 1 fail or unknown, 130 interrupted)."""
        self.stop_faults()
        final = self.harness.finish(timeout_s=FINAL_REPORT_TIMEOUT_S)
        if self._hlogs is not None:
            self._hlogs.write(_histograms(final.state), self._hlogs.t0, self.t_end)
            self._hlogs.close()
        self.view.say("reading acknowledged writes back ...")
        durability = self.harness.durability(timeout_s=DURABILITY_TIMEOUT_S)
        self.cluster.save_logs(self.out_dir)
        return self._conclude(final, durability)

    def _conclude(self, final, durability) -> int:
        from ..harness.verdict import exit_code_for
        from ..metrics.outputs import (RESULTS_JSON, TIMELINE_JSON, build_results, build_timeline,
                                       write_results, write_timeline)
        from ..metrics.results import LoadGenerator, RunFacts, Workers
        from ..metrics.ttr_hist import write_ttr_log
        from ..pegasus import policies
        from ..report.junit import write_junit

        profile, out_dir, t_end = self.profile, self.out_dir, self.t_end
        events = self.controller.fault_events()
        t_start = self.harness.t_start if self.harness.t_start is not None else t_end
        saturation, schedule, queue = _load_generator_check(profile, final, events, t_start,
                                                            t_end, self.baseline,
                                                            self.users_at_start, self.user_steps)
        facts = RunFacts(
            profile=profile.to_dict(), seed=profile.seed, versions=_versions(),
            machine={"platform": platform.platform(), "python": platform.python_version(),
                     "cpus": os.cpu_count()},
            clock_anchor={"wall_s": time.time(), "monotonic_s": time.monotonic()},
            load_generator=LoadGenerator(
                **saturation.as_dict(), schedule={name: c.as_dict() for name, c in schedule.items()},
                baseline=None if self.baseline is None else self.baseline.as_dict(),
                cluster_queue=queue.as_dict()),
            workers=Workers(reported=tuple(final.workers), missing=tuple(final.missing)),
            interrupted=self.interrupted,
            policy_info={i.name: {"models": i.models, "summary": i.summary, "source": i.source}
                         for i in policies.available()},
            latency_hdr=_latency_hdr(final.state),
            user_counts=[{"at_s": round(t - self.t0, 3), "users_per_policy": users}
                         for t, users in self.user_steps] or None,
            real_clients=_real_clients(profile, final.real_clients) or None)
        slo = {b.metric: {k: v for k, v in (("min", b.min), ("max", b.max)) if v is not None}
               for b in profile.slo}
        results = build_results(final.state, events, t_start=t_start, t_end=t_end,
                                table=profile.cluster.table, missed=final.missed,
                                durability=durability.results_block(), slo=slo, extra=facts)
        self.results = results
        write_results(out_dir / RESULTS_JSON, results)
        if self._hlogs is not None:    # beside the other .hlog files, same origin (t0)
            write_ttr_log(self._hlogs.directory, results, t0=self._hlogs.t0,
                          start_wall_s=self._hlogs.start_wall_s)
        write_timeline(out_dir / TIMELINE_JSON,
                       build_timeline(final.state, events, t_start=t_start, t_end=t_end))
        write_junit(out_dir / "junit.xml", results, suite=f"pegbench.{profile.name}")
        report = _write_report(out_dir)
        self.view.finished(results, out_dir, report)
        if self.interrupted:
            return EXIT_INTERRUPTED
        return exit_code_for(results.slo.verdict)


def _yield() -> None:
    gevent.sleep(0)   # lets the users' greenlets run between two histograms


def _latency_hdr(state) -> dict[str, dict[str, dict[str, str]]]:
    """policy -> op -> kind (service, response) -> the histogram, HdrHistogram-encoded."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name, p in state.policies.items():
        for (op, kind), hist in p.histograms.items():
            out.setdefault(name, {}).setdefault(op, {})[kind] = hdr.encode(hist)
    return out


def _real_clients(profile: Profile, statuses: Mapping[str, list[dict[str, Any]]]
                  ) -> dict[str, dict[str, Any]]:
    """results.json's ``real_clients``: per row, who the client was (from its handshake) and
    whether and when its adapter died (the earliest death over the load processes, on this
    host's monotonic clock)."""
    mono_minus_wall = time.monotonic() - time.time()
    out = {}
    for c in profile.clients:
        adapters = list(statuses.get(c.row, []))
        ready = next((a for a in adapters if a.get("client")), {})
        died = [a for a in adapters if a.get("died_at") is not None or
                (a.get("error") and a.get("client") is None)]
        first = min(died, key=lambda a: a.get("died_at") or 0.0, default=None)
        out[c.row] = {
            "name": c.name, "command": list(c.command), "client": ready.get("client"),
            "version": ready.get("version"),
            "meta_queries_counted": bool(adapters) and all(a.get("meta_queries_counted")
                                                           for a in adapters),
            "died_at": (first["died_at"] + mono_minus_wall
                        if first is not None and first.get("died_at") is not None else None),
            "error": first.get("error") if first is not None else None,
            "adapters": adapters}
    return out


def _histograms(state) -> dict:
    return {(name, op, kind): hist for name, p in state.policies.items()
            for (op, kind), hist in p.histograms.items()}


def _load_generator_check(profile, final, events, t_start: float, t_end: float,
                          baseline: Baseline | None, users: int,
                          user_steps: list[tuple[float, int]]):
    """(saturation, schedule checks, cluster queue check): the load processes' own flag,
    whether each policy's schedule went out outside the faults, and whether the cluster
    answered near its unloaded speed (:mod:`loadgen.load.selfcheck`)."""
    from ..load.selfcheck import (ClusterQueueCheck, cluster_queue_saturation, schedule_checks,
                                  schedule_saturation)
    from ..metrics.events import phases

    w = profile.workload
    checks = schedule_checks(final.state, phases(events), t_start=t_start, t_end=t_end,
                             offered_per_s=users * w.rate_per_user,
                             settle_s=w.op_timeout_ms / 1000 + 1.0, missed=final.missed,
                             changes=[(t, n * w.rate_per_user) for t, n in user_steps])
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
