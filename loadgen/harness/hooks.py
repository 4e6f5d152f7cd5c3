"""Wiring the workload into a Locust environment: the orchestration's API and the locustfile's.

Orchestration (``pegbench run``), local runner::

    env = Environment(events=Events())
    env.create_local_runner()
    harness = attach(env, WorkloadSettings.from_profile(profile, meta=[meta]))
    controller = FaultController(..., events=harness.events)   # fires fault_instant, fault_recorded
    env.runner.start(harness.total_users, spawn_rate=harness.total_users)
    ...                                       # duration_s, faults
    env.runner.stop()
    final = harness.finish(timeout_s=30)      # FinalReport: merged state, missed, saturation
    durability = harness.durability(timeout_s=60)
    set_exit_code(env, verdict, saturation=final.saturation)   # loadgen.harness.verdict
    env.runner.quit()

Master + workers: the same with ``env.create_master_runner(host, port)`` before ``attach``,
and workers started as ``locust -f loadgen/locustfile.py --worker --master-port P ...`` (see
:func:`worker_argv`); ``finish`` then waits for every worker's final report and
``durability`` asks each worker to read back its own writes. ``harness.t_start`` is where
the analysed window starts (the end of warm-up). With a web UI, create it
(``env.create_web_ui(...)``) before ``attach``, which adds the Recovery tab to it.

Plain ``locust -f loadgen/locustfile.py`` goes through :func:`install` (the locustfile calls
it): options (:mod:`loadgen.harness.options`), ``attach`` at ``init``, the Recovery tab where a
web UI exists, and an exit code at quit (:func:`default_exit_code`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..events import Events
from ..exitcodes import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from ..load.durability import Durability
from ..load.selfcheck import Saturation
from ..load.workload import Workload, WorkloadSettings
from ..metrics import RecorderState
from .distributed import FinalReport, MasterCollector, WorkerReporter, in_message_loop
from .fault_relay import FaultRelay
from .options import add_arguments, apply_run_defaults, exit_code_on_error, settings_from_options
from .users import bind, user_classes
from .verdict import exit_code_for, set_exit_code

__all__ = [
    "FinalReport",
    "Harness",
    "WorkloadSettings",
    "attach",
    "default_exit_code",
    "exit_code_for",
    "install",
    "set_exit_code",
    "worker_argv",
]

log = logging.getLogger(__name__)

#: The master waits this long inside ``test_stop`` for final reports (if it may wait there).
FINAL_WAIT_IN_STOP_S = 5.0
LOCAL, MASTER, WORKER = "local", "master", "worker"


def default_exit_code(environment: Any) -> int:
    """Plain ``locust`` runs without a verdict: 3 if the users' code raised (a bug); else
    Locust's ``--exit-code-on-error`` if given explicitly and a request failed; else 0."""
    from locust import log as locust_log

    runner = environment.runner
    crashed = bool(runner is not None and runner.exceptions) or locust_log.unhandled_greenlet_exception
    if crashed:
        return EXIT_RUNTIME
    on_error = exit_code_on_error(getattr(environment, "parsed_options", None))
    return on_error if on_error is not None and runner is not None and runner.errors else EXIT_OK


def role_of(runner: Any) -> str:
    """``"local"``, ``"master"`` or ``"worker"``."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        return MASTER
    return WORKER if isinstance(runner, WorkerRunner) else LOCAL


def worker_label(runner: Any) -> str:
    """The worker's part of key prefixes: ``w<index>`` (``local`` outside a worker)."""
    index = getattr(runner, "worker_index", -1)
    if role_of(runner) != WORKER:
        return LOCAL
    return f"w{index}" if index is not None and index >= 0 else str(runner.client_id)


class Totals(Protocol):
    """A run's figures so far and at its end, wherever they are recorded."""

    def live_state(self) -> RecorderState: ...
    def live_histograms(self) -> dict[tuple[str, str, str], Any]: ...
    def live_missed(self) -> dict[str, int]: ...
    def live_dropped(self) -> dict[str, int]: ...
    def saturation(self) -> Saturation: ...
    def live_real_clients(self) -> dict[str, list[dict[str, Any]]]: ...
    def finish(self, timeout_s: float) -> FinalReport: ...
    def durability(self, timeout_s: float) -> Durability: ...


class OwnTotals:
    """A local runner's figures: its own workload's (the workload may be replaced between
    tests, so it is looked up each time)."""

    def __init__(self, workload: Callable[[], Workload]):
        self._workload = workload

    def live_state(self) -> RecorderState:
        return self._workload().recorder.snapshot(histograms=False)

    def live_histograms(self) -> dict[tuple[str, str, str], Any]:
        return self._workload().recorder.histogram_counts()

    def live_missed(self) -> dict[str, int]:
        return dict(self._workload().missed)

    def live_dropped(self) -> dict[str, int]:
        return self._workload().recorder.dropped_totals()

    def saturation(self) -> Saturation:
        return self._workload().saturation()

    def live_real_clients(self) -> dict[str, list[dict[str, Any]]]:
        return {row: [status] for row, status in self._workload().real_clients().items()}

    def finish(self, timeout_s: float) -> FinalReport:
        w = self._workload()
        return FinalReport(state=w.recorder.snapshot(), missed=dict(w.missed),
                           open_failures=dict(w.open_failures),
                           real_clients={row: [status] for row, status in w.real_clients().items()},
                           saturation=Saturation.combine({w.label: w.saturation()}))

    def durability(self, timeout_s: float) -> Durability:
        return self._workload().verify_durability(timeout_s=timeout_s)


class MergedTotals:
    """A master's figures: its workers' reports, merged by the collector."""

    def __init__(self, collector: MasterCollector):
        self._collector = collector

    def live_state(self) -> RecorderState:
        return self._collector.merged()

    def live_histograms(self) -> dict[tuple[str, str, str], Any]:
        return {(name, op, kind): hist for name, p in self._collector.merged().policies.items()
                for (op, kind), hist in p.histograms.items()}

    def live_missed(self) -> dict[str, int]:
        return dict(self._collector.report().missed)

    def live_dropped(self) -> dict[str, int]:
        return {name: p.dropped_total for name, p in self._collector.merged().policies.items()}

    def saturation(self) -> Saturation:
        return self._collector.report().saturation

    def live_real_clients(self) -> dict[str, list[dict[str, Any]]]:
        return dict(self._collector.report().real_clients)

    def finish(self, timeout_s: float) -> FinalReport:
        return self._collector.wait_final(timeout_s)

    def durability(self, timeout_s: float) -> Durability:
        total, missing = self._collector.request_durability(timeout_s)
        if missing:
            log.warning("no durability read-back from worker(s) %s", ", ".join(missing))
        return total


@dataclass(frozen=True)
class FinishedRun:
    """A run this process measured and wrote (``pegbench run --web``), for the web UI."""

    number: int                      # 1, 2, ... in this process
    folder: Path
    verdict: str                     # "pass" | "fail" | "unknown"
    #: one line per SLO check: "failover.recovered_fraction 1.0 (min 1.0): pass"
    checks: tuple[str, ...] = ()
    unknown_reason: str = ""


class Harness:
    """The workload attached to one Locust environment (see the module docstring)."""

    def __init__(self, environment: Any, settings: WorkloadSettings | None):
        self.environment = environment
        self.runner = environment.runner
        self.role = role_of(self.runner)
        #: pegbench's own events in this process: a fault controller fires fault_instant and
        #: fault_recorded here, the workload warmup_ended
        self.events = Events()
        self.workload = Workload(settings or _placeholder(), label=worker_label(self.runner),
                                 events=self.events)
        self.configured = settings is not None
        self.relay = FaultRelay(self.workload.recorder,
                                self.runner if self.role == MASTER else None)
        self.events.fault_instant.add_listener(self.relay.fault_instant)
        self.events.fault_recorded.add_listener(self.relay.fault_recorded)
        # Locust's own stats leave warm-up out too: a worker drops its unsent part, the
        # master what it merged so far.
        self.events.warmup_ended.add_listener(self._reset_locust_stats)
        self.collector = MasterCollector(self.runner) if self.role == MASTER else None
        #: runs measured and written in this process, oldest first (``pegbench run --web``)
        self.finished: list[FinishedRun] = []
        #: this run's figures: the workers' merged (a master) or this process's own
        self.totals: Totals = (MergedTotals(self.collector) if self.collector is not None
                               else OwnTotals(lambda: self.workload))
        self.reporter = (WorkerReporter(environment, lambda: self.workload, self.events)
                         if self.role == WORKER else None)
        self._bind()

    # ------------------------------------------------------------------ configuration

    @property
    def settings(self) -> WorkloadSettings:
        """The workload settings in force."""
        return self.workload.settings

    @property
    def total_users(self) -> int:
        """Users over all policies."""
        return self.settings.total_users

    @property
    def t_start(self) -> float | None:
        """Monotonic start of the analysed window: the end of warm-up (None: not yet)."""
        return self.workload.t_warmup_end

    def configure(self, settings: WorkloadSettings) -> None:
        """Use ``settings`` from the next test on (between tests only)."""
        if self.configured and settings == self.settings:
            return
        self.workload.stop_test()
        old = self.workload
        self.workload = Workload(settings, label=worker_label(self.runner), events=self.events)
        self.workload.set_clock_shift(old.clock_shift_s)
        self.workload.epoch = old.epoch             # tests keep counting up
        self.relay.recorder = self.workload.recorder   # fault instants come again (resend)
        self.configured = True
        self._bind()

    def _bind(self) -> None:
        self.environment.user_classes = user_classes(self.settings.rows)
        bind(self.environment, self.workload)

    def _reset_locust_stats(self) -> None:
        self.environment.runner.stats.reset_all()

    # ------------------------------------------------------------------ results

    def live_state(self) -> RecorderState:
        """What is recorded so far (merged over workers on a master), for live displays:
        counters, series and timelines, without the HDR histograms of a local recorder
        (:meth:`live_histograms` has those)."""
        return self.totals.live_state()

    def live_histograms(self) -> dict[tuple[str, str, str], Any]:
        """Cumulative latency histograms so far by (policy, op, kind), for the .hlog
        writer: counts lists from a local recorder (no conversion), merged histograms on a
        master."""
        return self.totals.live_histograms()

    def live_missed(self) -> dict[str, int]:
        """Missed ops so far, per policy."""
        return self.totals.live_missed()

    def live_dropped(self) -> dict[str, int]:
        """Arrivals dropped at the in-flight cap so far, per policy."""
        return self.totals.live_dropped()

    def saturation(self) -> Saturation:
        """Whether a load process was its own bottleneck so far."""
        return self.totals.saturation()

    def live_real_clients(self) -> dict[str, list[dict[str, Any]]]:
        """Per real client row, its adapters' statuses so far (one per load process)."""
        return self.totals.live_real_clients()

    def finish(self, timeout_s: float = 30.0) -> FinalReport:
        """After the runner stopped: the final merged state (a master waits, at most
        ``timeout_s``, for every worker's final report)."""
        return self.totals.finish(timeout_s)

    def durability(self, timeout_s: float = 60.0) -> Durability:
        """Read back every acknowledged write (each worker its own); missing workers' writes
        are not counted (logged)."""
        return self.totals.durability(timeout_s)

    # ------------------------------------------------------------------ Locust events

    def register(self) -> None:
        """Listen to the environment's events and the runner's messages (once)."""
        events = self.environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if self.collector is not None:
            self.collector.register(events)
        if self.reporter is not None:
            self.reporter.register(events, self.on_settings)

    def on_settings(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_settings`` (worker): the master's workload, for the test it starts."""
        self.configure(WorkloadSettings.from_dict(msg.data))

    def on_test_start(self, environment: Any = None, **_kw: Any) -> None:
        """A test starts: a master tells its workers the settings, clock and faults; a load
        process resets its workload and starts the warm-up timer and the load monitor."""
        if self.role == WORKER and not self.configured and environment.parsed_options:
            try:   # no settings message (an older master?): the options shipped with spawn
                self.configure(settings_from_options(environment.parsed_options))
            except ConfigError as exc:
                log.error("pegbench: %s", exc)
        self.relay.reset()                 # a new run: the last one's faults are in its folder
        if self.role == MASTER:
            self.collector.start_test(self.settings)
            self.workload.start_test(monitor=False)
        else:
            self.workload.label = worker_label(self.runner)
            self.workload.start_test()

    def on_test_stop(self, environment: Any = None, **_kw: Any) -> None:
        """The users stopped: close the clients; a master asks every worker for its final
        report (and waits a little here unless that would block its own message loop)."""
        self.workload.stop_test()
        if self.role == MASTER:
            self.collector.request_final()
            if not in_message_loop(self.runner):   # else the answers could not be read
                self.collector.wait_answers(FINAL_WAIT_IN_STOP_S)

    def on_quitting(self, environment: Any = None, **_kw: Any) -> None:
        """Locust quits: close the clients."""
        self.workload.stop_test()


def _placeholder() -> WorkloadSettings:
    """Settings of a worker before its master's options arrive (never drives load)."""
    return WorkloadSettings(meta=("unset:0",), run_id="unset")


def attach(environment: Any, settings: WorkloadSettings | None, *,
           web_ui: bool = True) -> Harness:
    """Attach the workload to ``environment`` (its runner must exist): user classes, event
    listeners, messages, and the Recovery tab if ``environment.web_ui`` exists.

    ``settings`` may be None only for a worker (they come with the master's options).
    """
    if environment.runner is None:
        raise ValueError("create the environment's runner before attaching the workload")
    existing = getattr(environment, "pegbench", None)
    if existing is not None:
        if settings is not None:
            existing.configure(settings)
        return existing
    if settings is None and role_of(environment.runner) != WORKER:
        raise ConfigError("command line", "--meta/--pegbench-profile", "workload settings")
    harness = Harness(environment, settings)
    harness.register()
    environment.pegbench = harness
    if web_ui and environment.web_ui is not None:
        from .webui import register as register_tab

        register_tab(environment, harness)
    return harness


def install(events: Any) -> None:
    """Plain ``locust`` use: options, ``attach`` at ``init``, the exit code at quit."""
    events.init_command_line_parser.add_listener(add_arguments)

    @events.init.add_listener
    def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_kw: Any) -> None:
        if runner is None:
            return
        options = environment.parsed_options
        settings = None
        try:
            settings = settings_from_options(options)
        except ConfigError as exc:
            if role_of(runner) != WORKER:
                log.error("pegbench: %s", exc)
                sys.exit(EXIT_USAGE)
        attach(environment, settings)
        if settings is not None and role_of(runner) != WORKER:
            apply_run_defaults(options, settings)
            if getattr(options, "user_classes", None):
                log.warning("pegbench: user classes on the command line are ignored; "
                            "use --policies")

    @events.quitting.add_listener
    def _on_quitting(environment: Any, **_kw: Any) -> None:
        if environment.process_exit_code is None:
            environment.process_exit_code = default_exit_code(environment)


def worker_argv(master_host: str, master_port: int, *, locustfile: str | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    """A command line starting one Locust worker of this workload (for subprocess)."""
    locustfile = locustfile or str(Path(__file__).resolve().parents[1] / "locustfile.py")
    return [sys.executable, "-m", "locust", "-f", locustfile, "--worker",
            "--master-host", master_host, "--master-port", str(master_port), *extra]
