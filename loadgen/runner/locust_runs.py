"""One measured run per Locust test, for ``pegbench run --web`` and for
``locust -f loadgen/locustfile.py --pegbench-profile PROFILE``.

:class:`LocustRuns` listens to Locust's test_start and test_stop: each test (a press of the
web UI's Start; with ``--headless``, the one test) is a :class:`~.measurement.Measurement`
(the profile's fault plan from that instant), and its end (Stop, the profile's duration,
Ctrl-C) writes its run folder as a headless ``pegbench run`` does; the web UI then shows the
run's verdict and serves its report (:class:`~loadgen.harness.hooks.FinishedRun`). While a
run goes, ``/pegbench/fault`` injects a fault now through the same controller
(``origin = "ui"``); Locust's *Edit* changes the user count of the run in progress (recorded
in its profile.json and results.json).

:func:`install` is the locustfile's side. With ``--pegbench-profile``, a local or master Locust
brings up the profile's cluster at init — a onebox in a temporary folder, unless ``--meta``
names a running cluster (observed; the profile's faults go in only through an injector that
can reach it: ``--onebox-dir DIR`` for a onebox of ``pegbench onebox start --dir DIR``, or
the profile's ``command`` injector) — measures the unloaded put time, and runs the tests it
is given. Run folders go to ``--pegbench-out`` (default: the profile's ``[report] out``).
``--headless``: the test lasts the profile's duration (or ``-t``), then Locust quits with the
verdict's exit code. Everything started here stops at quit.
"""

from __future__ import annotations

import atexit
import dataclasses
import html
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from ..config.schema import InjectorConfig, Profile
from ..errors import ClusterError, ConfigError
from ..load.real_client import check_commands
from ..exitcodes import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from ..faults.cluster import Cluster, ExternalCluster
from ..harness import hooks
from ..harness.hooks import MASTER, WORKER, role_of
from ..harness.options import profile_from_options
from ..harness.webui import FAULT_FORM_URL
from .measurement import Measurement

if TYPE_CHECKING:
    from ..harness.hooks import FinishedRun
    from .baseline import Baseline

log = logging.getLogger(__name__)


class LocustRuns:
    """One :class:`Measurement` per Locust test of ``env`` (see the module docstring).

    Run folders: ``out_dir`` for the first run, ``out_dir-2``, ``out_dir-3``, ... for the next
    ones. A user count other than the profile's is split evenly over the policies and
    recorded in the run's profile.json. ``quit_after_run``: quit Locust once the first run's
    folder is written (``--headless``)."""

    def __init__(self, env: Any, profile: Profile, out_dir: Path, *, cluster: Cluster,
                 workers: int, quiet: bool, view: Any, quit_after_run: bool = False):
        self.env = env
        self.profile = profile
        self.out_dir = out_dir
        self.cluster = cluster
        self.workers = workers
        self.quiet = quiet
        self.view = view
        self.quit_after_run = quit_after_run
        #: a onebox's temporary folder, when it was started for this session (the locustfile)
        self.work_dir: Path | None = None
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
        env.events.spawning_complete.add_listener(self.on_spawned)

    @property
    def exit_code(self) -> int:
        """The last run's exit code (0 if none ran)."""
        return self.done[-1][1] if self.done else EXIT_OK

    def ready(self, harness: Any, baseline: Baseline | None) -> None:
        """The workload is attached and the cluster measured: Start may run."""
        self.harness, self.baseline = harness, baseline

    def serve(self, harness: Any, baseline: Baseline | None, signals: Any) -> int:
        """``pegbench run --web``: until Ctrl-C, runs as the web UI starts and stops them;
        then the last run's exit code (0 if none ran; 130 if one was interrupted)."""
        self.ready(harness, baseline)
        self.view.say(f"web UI: {self.address().url} (press Start to run the profile; "
                      "Ctrl-C quits)", always=True)
        try:
            while True:   # until Ctrl-C: an interactive session has no other end
                gevent.sleep(1.0)
        except KeyboardInterrupt:
            signals.calm()
        self.close()
        return self.exit_code

    def close(self) -> None:
        """Locust quits: the run in progress stops (marked interrupted) and is written."""
        if self.current is not None:
            self.view.say("interrupted: stopping the load, healing faults, writing what "
                          "was measured", always=True)
            self.current.interrupted = True
            self.env.runner.stop()
        if self._finisher is not None:
            self._finisher.join()

    def address(self, timeout_s: float = 10.0) -> Any:
        """Where the web UI listens (its port once bound, for ``--web-port 0``)."""
        from .web import WebAddress

        web_ui = self.env.web_ui
        deadline = time.monotonic() + timeout_s
        while getattr(web_ui, "server", None) is None or not web_ui.server.server_port:
            if time.monotonic() > deadline:   # bounded: the UI's greenlet binds at once
                raise ClusterError(f"the web UI did not listen on {web_ui.host} within "
                                   f"{timeout_s:g} s")
            gevent.sleep(0.05)
        return WebAddress(web_ui.host, web_ui.server.server_port)

    # ------------------------------------------------------------------ the fault form

    def add_routes(self) -> None:
        """The fault form (``FAULT_FORM_URL``) on the web UI, behind its login like Locust's
        pages: a page of its own, and JSON for the Recovery tab's form."""
        from flask import Response, jsonify, request

        web_ui = self.env.web_ui
        web_ui.template_args.setdefault("pegbench", {})["fault"] = FAULT_FORM_URL

        @web_ui.app.route(FAULT_FORM_URL, methods=["GET", "POST"])
        @web_ui.auth_required_if_enabled
        def _fault() -> Response:
            if request.method == "GET":
                return Response(_fault_page(""), mimetype="text/html")
            status, message = self.inject(dict(request.form))
            if request.accept_mimetypes.best == "application/json":
                return jsonify(message=message), status
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

    # ------------------------------------------------------------------ Locust events

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
        try:
            run = Measurement(profile, out, harness=self.harness, cluster=self.cluster,
                              baseline=self.baseline, workers=self.workers, quiet=self.quiet,
                              on_demand=True)
            run.start()
        except Exception:  # noqa: BLE001 - a load nobody measures must not go on unnoticed
            log.exception("pegbench: run %s could not start; stopping the load", out)
            self.done.append((out, EXIT_RUNTIME))
            gevent.spawn(self._abandon)
            return
        self.current = run
        self._driver = gevent.spawn(self._drive, run)

    def _abandon(self) -> None:
        """A run that could not start: stop the load (and quit, ``--headless``)."""
        self.env.runner.stop()
        if self.quit_after_run:
            self.env.runner.quit()

    def on_spawned(self, user_count: int = 0, **_kw: Any) -> None:
        """Locust's spawning_complete: after an *Edit*, the run goes on with that many users."""
        run = self.current
        if run is not None and user_count:
            run.users_changed(with_user_count(run.profile, user_count).workload.users)

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
        try:
            code = run.finish()
        except Exception:  # noqa: BLE001 - a session goes on; this run's code says it failed
            log.exception("pegbench: run %s could not be finished", run.out_dir)
            code = EXIT_RUNTIME
        self.done.append((run.out_dir, code))
        if run.results is not None:
            self.harness.finished.append(finished_run(len(self.done), run.out_dir, run.results))
        if self.quit_after_run:
            self.view.say(f"run written to {run.out_dir}", always=True)
            self.env.runner.quit()
            return
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
    policies = len(profile.rows)
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


# ---------------------------------------------------------------------------- the locustfile

def add_arguments(parser: Any) -> None:
    """Locust's ``init_command_line_parser`` listener: where runs go, which onebox."""
    group = parser.add_argument_group(
        "pegbench runs", "With --pegbench-profile, each test is a measured run: the profile's "
        "faults from its start, a run folder at its end.")
    group.add_argument("--pegbench-out", default=None, metavar="DIR",
                       help="the first run's folder (next ones: DIR-2, DIR-3, ...; default: "
                            "the profile's [report] out)")
    group.add_argument("--onebox-dir", default=None, metavar="DIR",
                       help="a onebox started with 'pegbench onebox start --dir DIR': its "
                            "metas, and the profile's faults through its supervisor")


def install(events: Any) -> None:
    """The locustfile's wiring: :func:`loadgen.harness.hooks.install` (the workload, the
    Recovery tab, the exit code), and with ``--pegbench-profile`` the profile's cluster, one
    measured run per test and the verdict's exit code."""
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_open)      # before the harness reads --meta
    hooks.install(events)
    events.init.add_listener(_serve)     # once the harness is attached


def _open(environment: Any, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
    """init, first: the profile's cluster, its metas as ``--meta``, the runs' listeners."""
    options = environment.parsed_options
    if runner is None or role_of(runner) == WORKER or not getattr(options, "pegbench_profile", None):
        return
    from .live import LiveView
    from .run import out_dir_for

    try:
        run_time = getattr(options, "run_time", None)      # -t: the runs' duration
        profile = profile_from_options(
            options, {"workload.duration_s": float(run_time)} if run_time else None)
        check_commands(profile.clients, profile.source or "profile")
        profile, cluster, work_dir = _cluster(profile, options)
        _check_reachable(cluster, profile.cluster.table)
    except ConfigError as exc:
        log.error("pegbench: %s", exc)
        sys.exit(EXIT_USAGE)
    except ClusterError as exc:
        log.error("pegbench: %s", exc)
        sys.exit(EXIT_RUNTIME)
    options.meta = ",".join(cluster.meta)
    options.pegbench_meta_query_log = str(cluster.meta_query_log or "")
    environment.host = environment.host or options.meta   # the start form's Host field
    workers = int(getattr(options, "expect_workers", 0) or 0) if role_of(runner) == MASTER else 0
    runs = LocustRuns(environment, profile, out_dir_for(profile, options.pegbench_out),
                      cluster=cluster, workers=workers, quiet=True,
                      view=LiveView(profile, quiet=True), quit_after_run=bool(options.headless))
    runs.work_dir = work_dir
    if web_ui is not None:
        runs.add_routes()
    environment.pegbench_runs = runs
    atexit.register(_stop_cluster, runs)      # a crash between init and quit, too


def _cluster(profile: Profile, options: Any) -> tuple[Profile, Cluster, Path | None]:
    """(the profile as run, its cluster, the temporary folder of a onebox started here)."""
    onebox_dir, meta = getattr(options, "onebox_dir", None), getattr(options, "meta", None)
    if onebox_dir:
        from ..onebox.cluster import OneboxCluster
        from ..onebox.control_client import OneboxControl

        if meta:
            raise ConfigError("command line", "--meta", "not with --onebox-dir (the onebox "
                                                        "names its own metas)")
        cluster: Cluster = OneboxCluster(OneboxControl(onebox_dir))
        cluster.view().problems()    # ClusterError now if no supervisor answers there
        return profile, cluster, None
    if meta or profile.cluster.mode == "external":
        metas = tuple(m.strip() for m in meta.split(",") if m.strip()) if meta else \
            profile.cluster.meta
        cluster = ExternalCluster(metas, profile.cluster.table,
                                  replicas=profile.cluster.replicas,
                                  replica_nodes=profile.cluster.replica_nodes)
        if profile.injector.kind == "onebox":   # only a onebox pegbench reaches can have it
            log.warning("pegbench: --meta names a cluster pegbench did not start: its faults "
                        "are observed, not injected (--onebox-dir DIR reaches a onebox of "
                        "'pegbench onebox start --dir DIR'; injector.kind = \"command\" any "
                        "cluster)")
            profile = dataclasses.replace(profile, injector=InjectorConfig(kind="none"))
        cluster.injector(profile.injector)      # a profile error shows now
        return profile, cluster, None
    from ..onebox.cluster import OneboxCluster

    work_dir = Path(tempfile.mkdtemp(prefix="pegbench-locust-"))
    log.info("pegbench: starting the profile's onebox in %s", work_dir)
    try:
        return profile, OneboxCluster.start(profile.cluster, work_dir / "onebox"), work_dir
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def _check_reachable(cluster: Cluster, table: str) -> None:
    """ClusterError naming the metas unless they give the table's config."""
    try:
        cluster.view().config()
    except Exception as exc:  # noqa: BLE001 - any failure means the same to the user
        cluster.stop()
        raise ClusterError(f"the metas {','.join(cluster.meta)} did not give the partition "
                           f"config of table {table!r}: {exc}") from exc


def _serve(environment: Any, runner: Any = None, **_kw: Any) -> None:
    """init, last: the baseline, then tests are runs; quitting writes the last one."""
    runs = getattr(environment, "pegbench_runs", None)
    if runs is None:
        return
    from .baseline import measure as measure_baseline

    # The measurement ends the test itself (then heals, reads back and writes the folder).
    environment.parsed_options.run_time = None
    profile = runs.profile
    runs.ready(environment.pegbench, measure_baseline(
        runs.cluster.meta, profile.cluster.table, op_timeout_ms=profile.workload.op_timeout_ms))
    environment.events.quitting.add_listener(_quitting)   # fires before the harness closes
    each = ("the test" if environment.parsed_options.headless else "each test (Start)")
    log.info("pegbench: %s runs %s's faults for %g s (its duration_s, or -t), then writes "
             "its run folder (%s)", each, profile.name, profile.workload.duration_s, runs.out_dir)


def _quitting(environment: Any, **_kw: Any) -> None:
    runs = environment.pegbench_runs
    runs.close()
    if runs.done:
        environment.process_exit_code = runs.exit_code
    _stop_cluster(runs)


def _stop_cluster(runs: LocustRuns) -> None:
    """Stop the onebox started for the session and remove its folder (once)."""
    work_dir, runs.work_dir = runs.work_dir, None
    if work_dir is None:
        return
    runs.cluster.stop()
    shutil.rmtree(work_dir, ignore_errors=True)
