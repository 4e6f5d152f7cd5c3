"""``pegbench run --web``: Locust's web UI on the run's cluster, one measured run per Start.

:class:`WebRuns` listens to Locust's test_start and test_stop: each Start is a
:class:`~.measurement.Measurement` (the profile's fault plan from that instant), each Stop (the
profile's duration, or Ctrl-C) writes its run folder; the web UI then shows the run's verdict
and serves its report (:class:`~loadgen.harness.hooks.FinishedRun`). While a run goes,
``/pegbench/fault`` injects a fault now through the same controller (``origin = "ui"``).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from ..config.schema import Profile
from ..errors import ClusterError, ConfigError
from ..exitcodes import EXIT_OK
from ..faults.cluster import Cluster
from ..harness.webui import FAULT_FORM_URL
from .measurement import Measurement

if TYPE_CHECKING:
    from ..harness.hooks import FinishedRun
    from .baseline import Baseline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebAddress:
    """Where ``pegbench run --web`` serves Locust's web UI."""

    host: str = "127.0.0.1"
    port: int = 8089

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def web_ui(env: Any, web: WebAddress, settings: Any) -> None:
    """Locust's web UI on ``web``, its start form prefilled from the profile."""
    from locust.argument_parser import get_parser

    # Locust's web UI reads extra options from the process's command line (its
    # ui_extra_args_dict); pegbench's flags are not Locust's and would make it exit.
    sys.argv[1:] = []
    options = get_parser(default_config_files=()).parse_args(
        args=["--web-host", web.host, "--web-port", str(web.port)])
    options.num_users = settings.total_users
    options.spawn_rate = float(settings.total_users)
    env.parsed_options = options
    env.host = ",".join(settings.meta)
    env.create_web_ui(web.host, web.port)


class WebRuns:
    """``pegbench run --web``: one :class:`Measurement` per press of the web UI's Start.

    Start runs the profile's fault plan from that instant; Stop (the profile's duration, or
    Ctrl-C) stops the load, heals the faults, reads writes back and writes the run folder:
    ``out_dir`` for the first run, ``out_dir-2``, ``out_dir-3``, ... for the next ones. A user
    count other than the profile's is split evenly over the policies and recorded in the
    run's profile.json."""

    def __init__(self, env: Any, profile: Profile, out_dir: Path, *, cluster: Cluster,
                 workers: int, quiet: bool, view: Any):
        self.env = env
        self.profile = profile
        self.out_dir = out_dir
        self.cluster = cluster
        self.workers = workers
        self.quiet = quiet
        self.view = view
        self.harness: Any = None
        self.baseline: Baseline | None = None
        self.current: Measurement | None = None
        self.done: list[tuple[Path, int]] = []          # (run folder, exit code)
        self._count = 0
        self._rng = random.Random(profile.seed)     # the form's ``random`` targets
        self._driver: gevent.Greenlet | None = None
        self._finisher: gevent.Greenlet | None = None
        # Registered before the harness's listeners: a Start waits for the last run's
        # folder before the harness resets the recorder.
        env.events.test_start.add_listener(self.on_start)
        env.events.test_stop.add_listener(self.on_stop)

    def serve(self, harness: Any, baseline: Baseline | None, signals: Any) -> int:
        """Until Ctrl-C: runs as the web UI starts and stops them; then the last run's exit
        code (0 if none ran; 130 if one was interrupted)."""
        self.harness, self.baseline = harness, baseline
        self.view.say(f"web UI: {self.address().url} (press Start to run the profile; "
                      "Ctrl-C quits)", always=True)
        try:
            while True:   # until Ctrl-C: an interactive session has no other end
                gevent.sleep(1.0)
        except KeyboardInterrupt:
            signals.calm()
            if self.current is not None:
                self.view.say("interrupted: stopping the load, healing faults, writing what "
                              "was measured", always=True)
                self.current.interrupted = True
                self.env.runner.stop()
        if self._finisher is not None:
            self._finisher.join()
        return self.done[-1][1] if self.done else EXIT_OK

    def add_routes(self) -> None:
        """The fault form (``FAULT_FORM_URL``) on the web UI, behind its login like Locust's pages."""
        from flask import Response, request

        web_ui = self.env.web_ui

        @web_ui.app.route(FAULT_FORM_URL, methods=["GET", "POST"])
        @web_ui.auth_required_if_enabled
        def _fault() -> Response:
            if request.method == "GET":
                return Response(_fault_page(""), mimetype="text/html")
            status, message = self.inject(dict(request.form))
            return Response(_fault_page(message), status=status, mimetype="text/html")

    def inject(self, form: dict[str, str]) -> tuple[int, str]:
        """A fault from the form, into the run in progress: (HTTP status, what happened)."""
        from ..config.profile import read_fault
        from ..config.targets import NodeTarget, RandomReplica, replica_names

        run = self.current
        if run is None:
            return 409, "no run in progress: press Start first"
        data: dict[str, Any] = {k: v.strip() for k, v in form.items() if v.strip()}
        for key in ("duration_s", "restart_after_s"):
            if key in data:
                try:
                    data[key] = float(data[key])
                except ValueError:
                    return 400, f"fault.{key}: a number of seconds, got {data[key]!r}"
        try:
            kind, target, params = read_fault(data, self.profile.cluster)
        except ConfigError as exc:
            return 400, str(exc)
        if isinstance(target, RandomReplica):
            names = replica_names(self.profile.cluster.replica_nodes)
            target = NodeTarget(self._rng.choice(names))
        try:
            fault_id = run.controller.inject_now(kind, target, **params)
        except RuntimeError as exc:
            return 409, str(exc)
        return 200, (f"fault {fault_id}: {kind} {target} asked for; it shows on the Recovery "
                     "tab (skipped, with the reason, if another fault holds that node)")

    def address(self, timeout_s: float = 10.0) -> WebAddress:
        """Where the web UI listens (its port once bound, for ``--web-port 0``)."""
        web_ui = self.env.web_ui
        deadline = time.monotonic() + timeout_s
        while getattr(web_ui, "server", None) is None or not web_ui.server.server_port:
            if time.monotonic() > deadline:   # bounded: the UI's greenlet binds at once
                raise ClusterError(f"the web UI did not listen on {web_ui.host} within "
                                   f"{timeout_s:g} s")
            gevent.sleep(0.05)
        return WebAddress(web_ui.host, web_ui.server.server_port)

    def on_start(self, **_kw: Any) -> None:
        """Locust's test_start: a new run folder, the fault plan from now."""
        if self._finisher is not None:
            self._finisher.join()      # the last run's folder first
        if self.harness is None:       # Start pressed before the baseline was measured
            log.warning("pegbench: the cluster is not ready yet; this run is not measured")
            return
        self._count += 1
        out = self.out_dir if self._count == 1 else \
            self.out_dir.with_name(f"{self.out_dir.name}-{self._count}")
        profile = with_user_count(self.profile, self.env.runner.target_user_count)
        self.current = Measurement(profile, out, harness=self.harness, cluster=self.cluster,
                                   baseline=self.baseline, workers=self.workers,
                                   quiet=self.quiet, on_demand=True)
        self.current.start()
        self._driver = gevent.spawn(self._drive, self.current)

    def _drive(self, run: Measurement) -> None:
        run.drive()
        if self.current is run:        # the profile's duration is over
            self.env.runner.stop()

    def on_stop(self, **_kw: Any) -> None:
        """Locust's test_stop: the run ends; its folder is written in a greenlet."""
        run, self.current = self.current, None
        if run is None:
            return
        run.t_end = time.monotonic()
        if self._driver is not None and self._driver is not gevent.getcurrent():
            self._driver.kill(block=False)
        self._finisher = gevent.spawn(self._finish, run)

    def _finish(self, run: Measurement) -> None:
        code = run.finish()
        self.done.append((run.out_dir, code))
        self.harness.finished.append(finished_run(len(self.done), run.out_dir, run.results))
        more = "" if run.interrupted else "; press Start for another, Ctrl-C quits"
        self.view.say(f"run {len(self.done)} written to {run.out_dir}{more}", always=True)


def finished_run(number: int, folder: Path, results: Any) -> FinishedRun:
    """What the web UI shows of a written run: its verdict and SLO checks."""
    from ..harness.hooks import FinishedRun
    from ..metrics.slo import slo_verdict, verdict_name

    slo = results.slo
    checks = tuple(f"{c.name} {c.value} ({', '.join(f'{k} {v:g}' for k, v in c.threshold.items())})"
                   f": {verdict_name(c.passed)}" for c in (slo.checks if slo else ()))
    return FinishedRun(number, folder, slo_verdict(results), checks,
                       (slo.unknown_reason or "") if slo else "")


def with_user_count(profile: Profile, user_count: int | None) -> Profile:
    """``profile`` with ``user_count`` users over all policies (split evenly; at least one
    per policy); unchanged for None or the profile's own count."""
    policies = len(profile.policies.compare)
    if not user_count or user_count == profile.workload.users * policies:
        return profile
    per_policy = max(1, round(user_count / policies))
    if per_policy * policies != user_count:
        log.warning("pegbench: %d users over %d policies: recorded as %d per policy",
                    user_count, policies, per_policy)
    return dataclasses.replace(profile, workload=dataclasses.replace(profile.workload,
                                                                     users=per_policy))


def _fault_page(message: str) -> str:
    """The fault form, with what the last request did."""
    kinds_html = "".join(f"<option>{k}</option>" for k in ("pause", "kill", "restart"))
    note = f"<p id='result'>{html.escape(message)}</p>" if message else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Inject a fault</title>"
            "</head><body><h1>Inject a fault now</h1>" + note +
            f"<form method='post' action='{FAULT_FORM_URL}'>"
            f"<label>kind <select name='kind'>{kinds_html}</select></label> "
            "<label>target <input name='target' value='primary-of:0' size='16'></label> "
            "<label>duration_s (pause) <input name='duration_s' size='6'></label> "
            "<label>restart_after_s (kill, restart) <input name='restart_after_s' size='6'>"
            "</label> <button type='submit'>Inject</button></form>"
            "<p>target: replicaN, primary-of:P, secondary-of:P or random. "
            "<a href='/recovery'>Recovery</a></p></body></html>")
