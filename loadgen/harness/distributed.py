"""Locust's distributed mode: workers ship recorder state, the master merges and asks for a flush.

Every ``pegbench_*`` message of the master/worker protocol is declared here, and each half
registers the ones it receives: :meth:`MasterCollector.register`, :meth:`WorkerReporter.register`.

Workers ship **cumulative** state and the master **replaces** each worker's previous one: every
report (Locust's ``report_to_master``, every few seconds, under the ``"pegbench"`` key) holds the
worker's whole encoded recorder state since its last reset (:func:`loadgen.metrics.encode_state`),
its missed ops and its load-monitor status. A lost, late or repeated report therefore never
double counts: the merge (:func:`loadgen.metrics.merge_states`) is over the latest report of
each worker. The price is a report that grows with the run (its 1 s series and the 10 ms
detail near faults; the histograms are fixed-size): about 0.4 MB and 70 ms of encoding at the
end of a 150 s run with three faults. So a periodic report carries the state only as often as
keeps its encoding under ``STATE_CPU_SHARE`` of the worker's time; the others are light
(counters and status), and the master keeps the last state it got. The live view lags more on
long runs; the final report always carries the full state.

At the end the master sends every worker it knows a flush request (``pegbench_flush``); a
worker stops its users if they still run and answers with its final report
(``pegbench_final``). :meth:`MasterCollector.wait_final` waits for every answer (bounded) and
says which workers did not answer, since Locust's own last report is not guaranteed. A
durability read-back runs in each worker on ``pegbench_verify`` (its own writes, its own
ledger) and the master sums the answers.

The master ships its workload settings (``pegbench_settings``) and clock anchor
(``pegbench_clock``) at each test start, before Locust's spawn messages on the same
connection, so workers drive exactly the master's workload whatever their own options.
Fault and heal instants reach the workers as ``pegbench_fault`` messages holding every instant
so far (a worker that missed one catches up with the next). Workers on another host
(another boot id) shift their outcomes onto the master's monotonic clock by the difference of
the two hosts' wall-minus-monotonic offsets (NTP assumed); on the master's host the shift is 0.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event

from ..events import Events
from ..load.durability import Durability
from ..load.selfcheck import Saturation
from ..load.workload import Workload, WorkloadSettings
from ..metrics import FaultInstant, RecorderState, decode_state, encode_state, merge_states

log = logging.getLogger(__name__)

REPORT_KEY = "pegbench"
MSG_SETTINGS, MSG_CLOCK, MSG_FAULT = "pegbench_settings", "pegbench_clock", "pegbench_fault"
MSG_FLUSH, MSG_FINAL = "pegbench_flush", "pegbench_final"
MSG_VERIFY, MSG_VERIFIED = "pegbench_verify", "pegbench_verified"
REPORT_VERSION = 1
#: Periodic reports carry the full state only as often as keeps encoding it under this share
#: of the worker's time (long runs with many faults have large states); the others are light.
STATE_CPU_SHARE = 0.05


# ----------------------------------------------------------------------- clocks


def boot_id() -> str:
    """This host's boot id (monotonic clocks are comparable only within one boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return socket.gethostname()


def clock_anchor() -> dict[str, Any]:
    """This host's boot id and wall-minus-monotonic offset, for another host to align to."""
    return {"boot_id": boot_id(), "offset_s": time.time() - time.monotonic()}


def clock_shift(anchor: Mapping[str, Any]) -> float:
    """Seconds to add to this host's monotonic times to get ``anchor``'s host's (0 on it)."""
    if anchor.get("boot_id") == boot_id():
        return 0.0
    return (time.time() - time.monotonic()) - float(anchor["offset_s"])


# ----------------------------------------------------------------------- reports


def build_report(workload: Workload, *, seq: int, final: bool,
                 with_state: bool = True) -> dict[str, Any]:
    """One worker report: everything since the worker's last reset (cumulative). Without
    ``with_state`` it is light: counters and status only, the master keeps the last state.

    ``state_at`` is (the state's instant, the recorder's last reset) on the worker's own
    clock: live rates divide a worker's counts by its own interval between states."""
    since = workload.t_warmup_end if workload.t_warmup_end is not None else workload.t_test_start
    return {
        "v": REPORT_VERSION, "worker": workload.label, "epoch": workload.epoch, "seq": seq,
        "final": final,
        "state_at": [time.monotonic(), since] if with_state else None,
        "state": encode_state(workload.recorder.snapshot()) if with_state else None,
        "missed": dict(workload.missed), "open_failures": dict(workload.open_failures),
        "saturation": workload.saturation().as_dict(),
        "real_clients": workload.real_clients(),
        "warmed_up": workload.t_warmup_end is not None,
    }


@dataclass(frozen=True)
class FinalReport:
    """The merged result of every load process at the end of a test."""

    state: RecorderState
    missed: Mapping[str, int]
    saturation: Saturation
    open_failures: Mapping[str, int] = field(default_factory=dict)
    #: real client row -> its adapters' statuses, one per load process (Workload.real_clients)
    real_clients: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: workers whose final report arrived / workers known that did not answer (their last
    #: periodic report, if any, is in ``state``)
    workers: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every known worker sent its final report."""
        return not self.missing


def _add_counts(into: dict[str, int], more: Mapping[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


class MasterCollector:
    """The master's view of its workers' reports (see the module docstring)."""

    def register(self, events: Any) -> None:
        """Listen to the workers' reports and answers: Locust's ``worker_report`` event and
        the messages the master receives (``pegbench_final``, ``pegbench_verified``)."""
        events.worker_report.add_listener(self.on_report)
        self.runner.register_message(MSG_FINAL, self.on_final)
        self.runner.register_message(MSG_VERIFIED, self.on_verified)

    def __init__(self, runner: Any):
        self.runner = runner
        self._latest: dict[str, dict[str, Any]] = {}      # client id -> latest report
        self._decoded: dict[str, tuple[Any, RecorderState]] = {}
        self._merged: tuple[tuple, RecorderState] | None = None
        self._known: set[str] = set()
        self._final_request = 0
        self._finals: set[str] = set()
        self._expected: set[str] = set()
        self._final_done = Event()
        self._verify_request = 0
        self._verified: dict[str, Durability] = {}
        self._expected_verify: set[str] = set()
        self._verify_done = Event()

    def start_test(self, settings: WorkloadSettings) -> None:
        """A test starts: :meth:`reset`, then tell the workers the workload and the master's
        clock (sent before Locust's spawn messages, on the same connection: they arrive
        first)."""
        self.reset()
        send_safely(self.runner, MSG_SETTINGS, settings.to_dict())
        send_safely(self.runner, MSG_CLOCK, clock_anchor())

    def reset(self) -> None:
        """A new test starts: forget every report and worker (they report again)."""
        self._known.clear()
        self._latest.clear()
        self._decoded.clear()
        self._merged = None
        self._finals.clear()
        self._expected.clear()
        self._final_done.clear()

    # ------------------------------------------------------------------ incoming

    def on_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        """Locust's ``worker_report`` listener: keep the worker's latest report."""
        report = data.get(REPORT_KEY)
        if not report or report.get("v") != REPORT_VERSION:
            return
        self._known.add(client_id)
        if client_id in self._finals:
            return   # its final report is in: later periodic ones add nothing
        have = self._latest.get(client_id)
        if have is not None and have["seq"] > report["seq"]:
            return   # reordered (seq grows over the worker's life, across tests)
        if report["state"] is None:   # light: fresher counters on the last state shipped
            if have is None or have["epoch"] != report["epoch"]:
                return
            report = {**report, "state": have["state"], "state_at": have.get("state_at")}
        self._latest[client_id] = report

    def on_final(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_final`` from a worker."""
        data = msg.data
        if data.get("request") != self._final_request:
            return
        self._known.add(msg.node_id)
        self._latest[msg.node_id] = data["report"]
        self._finals.add(msg.node_id)
        if self._expected <= self._finals:
            self._final_done.set()

    def on_verified(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_verified`` from a worker."""
        data = msg.data
        if data.get("request") != self._verify_request:
            return
        self._verified[msg.node_id] = Durability(**data["durability"])
        if self._expected_verify <= set(self._verified):
            self._verify_done.set()

    # ------------------------------------------------------------------ requests

    def workers(self) -> set[str]:
        """Every worker seen so far: connected now or ever reported."""
        return self._known | set(getattr(self.runner, "clients", ()))   # iterates worker ids

    def request_final(self) -> int:
        """Ask every known worker for its final report (a new request each call)."""
        self._final_request += 1
        self._finals.clear()
        self._expected = self.workers()
        self._final_done.clear()
        for client_id in sorted(self._expected):
            self.runner.send_message(MSG_FLUSH, {"request": self._final_request}, client_id)
        if not self._expected:
            self._final_done.set()
        return self._final_request

    def wait_answers(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every worker asked answered the flush."""
        return self._final_done.wait(timeout_s)

    def wait_final(self, timeout_s: float) -> FinalReport:
        """Wait (at most ``timeout_s``) for the final reports asked for; the merged result."""
        if not self._final_request:
            self.request_final()
        self._final_done.wait(timeout_s)
        missing = tuple(sorted(self._expected - self._finals))
        if missing:
            log.warning("no final report from %d worker(s) within %.1f s: %s (using their "
                        "last periodic report)", len(missing), timeout_s, ", ".join(missing))
        return self.report(missing=missing)

    def request_durability(self, timeout_s: float) -> tuple[Durability, tuple[str, ...]]:
        """Every worker reads back its own acknowledged writes; (the sum, workers that did
        not answer within ``timeout_s`` plus a margin)."""
        self._verify_request += 1
        self._verified = {}
        self._expected_verify = self.workers()
        self._verify_done.clear()
        for client_id in sorted(self._expected_verify):
            self.runner.send_message(MSG_VERIFY, {"request": self._verify_request,
                                                  "timeout_s": timeout_s}, client_id)
        if self._expected_verify:
            self._verify_done.wait(timeout_s + 10.0)
        missing = tuple(sorted(self._expected_verify - set(self._verified)))
        return Durability.total(self._verified.values()), missing

    # ------------------------------------------------------------------ views

    def _state(self, client_id: str, report: Mapping[str, Any]) -> RecorderState:
        cached = self._decoded.get(client_id)   # (the encoded state, decoded): decode once
        if cached is None or cached[0] is not report["state"]:
            cached = self._decoded[client_id] = (report["state"], decode_state(report["state"]))
        return cached[1]

    def merged(self) -> RecorderState:
        """Every worker's latest state, merged (live or final); merged again only when a
        state changed (the web UI asks every second or two)."""
        reports = sorted(self._latest.items())
        key = tuple((c, id(r["state"])) for c, r in reports)
        if self._merged is None or self._merged[0] != key:
            self._merged = (key, merge_states(self._state(c, r) for c, r in reports))
        return self._merged[1]

    def live_states(self) -> dict[str, tuple[tuple, float, RecorderState]]:
        """Per worker: (what its counts started from, the instant of its latest state, that
        state), instants on the worker's own clock, for rates over its own report interval."""
        out = {}
        for client_id, r in sorted(self._latest.items()):
            at = r.get("state_at")
            if at is not None:
                out[client_id] = ((r["epoch"], at[1]), float(at[0]), self._state(client_id, r))
        return out

    def report(self, missing: Iterable[str] = ()) -> FinalReport:
        """The merged state, missed ops and saturation of the latest reports."""
        missed: dict[str, int] = {}
        failures: dict[str, int] = {}
        saturation = {}
        real: dict[str, list[dict[str, Any]]] = {}
        for client_id, r in self._latest.items():
            _add_counts(missed, r["missed"])
            _add_counts(failures, r["open_failures"])
            saturation[r.get("worker") or client_id] = Saturation.from_dict(r["saturation"])
            for row, status in r.get("real_clients", {}).items():
                real.setdefault(row, []).append(status)
        return FinalReport(state=self.merged(), missed=missed, open_failures=failures,
                           real_clients=real,
                           saturation=Saturation.combine(saturation),
                           workers=tuple(sorted(self._finals)), missing=tuple(missing))


class WorkerReporter:
    """The worker's side: periodic reports, the final flush, read-backs, clock and faults."""

    def register(self, events: Any, on_settings: Callable[..., None]) -> None:
        """Listen to Locust's ``report_to_master`` event and the messages a worker receives;
        ``on_settings`` takes ``pegbench_settings`` (the master's workload)."""
        runner = self.environment.runner
        events.report_to_master.add_listener(self.on_report_to_master)
        runner.register_message(MSG_SETTINGS, on_settings)
        runner.register_message(MSG_FLUSH, self.on_flush)
        runner.register_message(MSG_VERIFY, self.on_verify, concurrent=True)
        runner.register_message(MSG_CLOCK, self.on_clock)
        runner.register_message(MSG_FAULT, self.on_fault)

    def __init__(self, environment: Any, workload_source: Callable[[], Workload],
                 events: Events | None = None):
        self.environment = environment
        self.workload_source = workload_source
        #: fires ``final_reported`` after the final report went out
        self.events = events if events is not None else Events()
        self._seq = 0
        self._instants: set[tuple[str, str]] = set()   # (fault id, edge) marked
        self._marked: object = None          # the recorder the instants were marked on
        self._run = 0                        # the master's run they belong to
        self._next_state_at = 0.0            # monotonic: no full state before this

    def on_report_to_master(self, client_id: str = "", data: dict | None = None, **_kw: Any) -> None:
        """Locust's ``report_to_master`` listener: add this worker's cumulative report."""
        if data is None:
            return
        self._seq += 1
        now = time.monotonic()
        full = now >= self._next_state_at
        data[REPORT_KEY] = build_report(self.workload_source(), seq=self._seq, final=False,
                                        with_state=full)
        if full:   # keep the cost of shipping state within STATE_CPU_SHARE of the time
            self._next_state_at = now + (time.monotonic() - now) / STATE_CPU_SHARE

    def on_flush(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_flush``: stop the users if they still run, send the final report."""
        from locust.runners import STATE_RUNNING, STATE_SPAWNING

        runner = self.environment.runner
        if runner.state in (STATE_RUNNING, STATE_SPAWNING):
            runner.stop()
        self._seq += 1
        report = build_report(self.workload_source(), seq=self._seq, final=True)
        runner.send_message(MSG_FINAL, {"request": msg.data["request"], "report": report})
        self.events.final_reported.fire(report=report)

    def on_verify(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_verify``: read back this worker's acknowledged writes (a greenlet of
        its own: it may take a while)."""
        workload = self.workload_source()
        try:
            result = workload.verify_durability(timeout_s=float(msg.data["timeout_s"]))
        except Exception:  # noqa: BLE001 - answer anyway: the master must not wait in vain
            log.exception("durability read-back failed")
            acked = workload.book.acked()
            result = Durability(acked=acked, unreadable=acked, untracked=workload.book.untracked)
        self.environment.runner.send_message(
            MSG_VERIFIED, {"request": msg.data["request"], "durability": result.as_dict()})

    def on_clock(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_clock``: record on the master's monotonic clock."""
        self.workload_source().set_clock_shift(clock_shift(msg.data))

    def on_fault(self, environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        """``pegbench_fault``: every fault and heal instant so far, on the master's clock."""
        workload = self.workload_source()
        workload.set_clock_shift(clock_shift(msg.data["clock"]))
        run = msg.data.get("run", 0)
        if self._marked is not workload.recorder or run != self._run:
            # a new workload, or a new run (its fault ids start at 1 again): mark everything
            self._marked, self._run, self._instants = workload.recorder, run, set()
        for data in msg.data["instants"]:
            instant = FaultInstant.from_dict(data)
            if (instant.event_id, instant.edge) in self._instants:
                continue
            self._instants.add((instant.event_id, instant.edge))
            workload.recorder.fault_instant(instant)


def send_safely(runner: Any, msg_type: str, data: Any, client_id: str | None = None) -> None:
    """Send a message; a lost worker connection is logged, never fatal to the run."""
    try:
        runner.send_message(msg_type, data, client_id)
    except Exception:  # noqa: BLE001 - a broken socket must not stop a fault or a run
        log.exception("could not send %s", msg_type)


def master_port(runner: Any) -> int:
    """The port a master's workers connect to (Locust's ``MasterRunner.server``)."""
    return runner.server.port


def ready_workers(runner: Any) -> int:
    """Workers connected to a master and ready for a test."""
    return len(runner.clients.ready)


def in_message_loop(runner: Any) -> bool:
    """Whether this greenlet is the master's message loop (waiting here would deadlock)."""
    loop = getattr(runner, "client_listener", None)
    return loop is not None and getattr(gevent.getcurrent(), "_run", None) == loop
