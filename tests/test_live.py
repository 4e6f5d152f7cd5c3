"""The live view's rates and columns, with synthetic reports and a fake clock (no Locust).

With workers, each worker's cumulative state reaches the master every ~3 s, out of phase
with the view's 1 s ticks and with the other workers. The view must show the true rate at
every tick (each worker's counts over its own report interval, summed); the old computation
(the merged counts differenced over the view's own second) showed 0 and 2-3× instead.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console
from support.metrics import op

from loadgen.harness.distributed import MasterCollector, build_report
from loadgen.load.workload import Workload, WorkloadSettings
from loadgen.runner.live import LiveView, RateMeter, counts_of

pytestmark = pytest.mark.unit

REPORT_EVERY_S = 3.0          # Locust's WORKER_REPORT_INTERVAL
DELIVERY_S = 0.02             # a report reaches the master this much after it was built
ERROR_EVERY = 10              # every 10th op fails
TOLERANCE = 0.20


class FakeRunner:
    clients: list[str] = []

    def send_message(self, *_args, **_kw) -> None:
        pass


class SyntheticWorker:
    """A worker recording ``rate`` ops/s from ``t0`` (master time), its clock ``offset_s``
    away from the master's, reporting every 3 s from ``phase_s``; every ``light_every``-th
    report is light (no state), as a long run's reports are."""

    def __init__(self, label: str, rate: float, offset_s: float, phase_s: float, *,
                 light_every: int = 0):
        self.workload = Workload(WorkloadSettings(meta=("h:1",), policies=("failover",),
                                                  run_id="r"), label=label)
        self.workload.epoch, self.workload.t_test_start = 1, offset_s
        self.rate, self.offset_s, self.light_every = rate, offset_s, light_every
        self.next_report, self.recorded_until, self.seq = phase_s, 0.0, 0

    def record_until(self, t: float) -> None:
        n0, n1 = round(self.recorded_until * self.rate), round(t * self.rate)
        for k in range(n0, n1):
            at = k / self.rate + self.offset_s          # on the worker's own clock
            self.workload.recorder.record(op(at, ok=k % ERROR_EVERY != 0, end=at + 0.001))
        self.recorded_until = t

    def report(self) -> dict:
        """The report built at ``next_report`` (master time), stamped with the worker's clock."""
        self.record_until(self.next_report)
        self.seq += 1
        full = not self.light_every or self.seq % self.light_every != 0
        report = build_report(self.workload, seq=self.seq, final=False, with_state=full)
        if full:
            report["state_at"][0] = self.next_report + self.offset_s
        self.next_report += REPORT_EVERY_S
        return report


def drive(workers: list[SyntheticWorker], until_s: float):
    """Yield (tick time, the live view's rates, the merged state) once a second (with some
    jitter), the workers' reports delivered to a real MasterCollector as they fall due."""
    collector = MasterCollector(FakeRunner())
    harness = SimpleNamespace(collector=collector, live_state=collector.merged)
    clock = SimpleNamespace(now=0.0)
    view = LiveView(SimpleNamespace(workload=SimpleNamespace(duration_s=until_s)), quiet=True,
                    clock=lambda: clock.now)
    for n in range(1, int(until_s)):
        clock.now = n + 0.013 * (n % 5)               # the view's sleeps are not exact
        for i, w in enumerate(workers):
            while w.next_report + DELIVERY_S <= clock.now:
                collector.on_report(f"c{i}", {"pegbench": w.report()})
        view.tick(clock.now, harness, [])
        yield clock.now, view.rates, collector.merged()


def old_rates(samples) -> list[tuple[float, float]]:
    """What the view showed before: merged ops differenced over the view's own interval."""
    out, last = [], None
    for now, _rates, state in samples:
        ops = sum(p.ops for p in state.policies.values())
        if last is not None and ops >= last[1]:
            out.append((now, (ops - last[1]) / (now - last[0])))
        last = (now, ops)
    return out


def test_two_workers_out_of_phase_show_the_true_rate_at_every_tick():
    workers = [SyntheticWorker("w0", 40.0, offset_s=1000.0, phase_s=0.4),
               SyntheticWorker("w1", 25.0, offset_s=-50.0, phase_s=1.9, light_every=3)]
    true_rate = 40.0 + 25.0
    samples = list(drive(workers, until_s=30))
    # from the second state of the later worker (t = 1.9 + 3 s) on; w1's every third report
    # is light, so its interval is then 6 s
    shown = [(now, rates["failover"]) for now, rates, _ in samples if now > 5.0]
    assert len(shown) >= 20
    for now, r in shown:
        assert abs(r.ops - true_rate) <= TOLERANCE * true_rate, (now, r)
        assert abs(r.error_fraction - 1 / ERROR_EVERY) <= 0.02, (now, r)
    # the old computation fails the same check: 0 between reports, a multiple on arrival
    old = [r for now, r in old_rates(samples) if now > 5.0]
    assert min(old) < (1 - TOLERANCE) * true_rate and max(old) > (1 + TOLERANCE) * true_rate
    assert sum(abs(r - true_rate) > TOLERANCE * true_rate for r in old) >= len(old) / 2


def test_a_local_runner_uses_the_views_own_interval_and_survives_the_warmup_reset():
    totals: dict = {}
    workload = SimpleNamespace(epoch=1, t_warmup_end=None,
                               recorder=SimpleNamespace(totals=lambda: dict(totals)))
    harness = SimpleNamespace(workload=workload)
    clock = SimpleNamespace(now=0.0)
    view = LiveView(SimpleNamespace(workload=SimpleNamespace(duration_s=60)), quiet=True,
                    clock=lambda: clock.now)

    def at(t: float, ops: int, ok: int, meta: int) -> None:
        clock.now = t
        totals["java"] = (ops, ops - ok, meta)   # Recorder.totals(): (ops, errors, meta)
        view.tick(t, harness, [])

    at(1.0, 100, 100, 0)
    assert view.rates == {}                             # one sample: no rate yet
    at(1.8, 180, 170, 4)
    r = view.rates["java"]
    assert r.ops == pytest.approx(100.0) and r.meta == pytest.approx(5.0)
    assert r.error_fraction == pytest.approx(10 / 80)
    workload.t_warmup_end = 2.0                         # the recorder was reset
    at(3.1, 90, 90, 0)
    assert view.rates["java"].ops == pytest.approx(100.0)   # kept, never negative
    at(4.1, 180, 180, 0)
    assert view.rates["java"].ops == pytest.approx(90.0)


def test_a_source_that_stops_reporting_drops_out():
    meter = RateMeter()
    for k in range(3):
        meter.observe("c0", (1, 0.0), 3.0 * k, {"p": (300 * k, 0, 0)}, now=3.0 * k)
        meter.observe("c1", (1, 0.0), 3.0 * k, {"p": (150 * k, 0, 0)}, now=3.0 * k)
    assert meter.rates(now=6.5)["p"].ops == pytest.approx(150.0)
    meter.observe("c0", (1, 0.0), 9.0, {"p": (900, 0, 0)}, now=9.0)   # c1 went silent
    assert meter.rates(now=12.0)["p"].ops == pytest.approx(150.0)
    assert meter.rates(now=19.0)["p"].ops == pytest.approx(100.0)      # c1 is stale
    meter.observe("c0", (1, 0.0), 9.0, {"p": (900, 0, 0)}, now=19.5)  # seen before: no news
    assert meter.rates(now=19.5) == {}                                  # c0 is stale too


def test_counts_of_a_state_are_ops_errors_and_meta_queries():
    state = SimpleNamespace(policies={"a": SimpleNamespace(ops=10, outcomes={"ok": 7, "fail": 3},
                                                           meta_queries=2)})
    assert counts_of(state) == {"a": (10, 3, 2)}


@pytest.mark.parametrize("dropped", [None, {"failover": 7}])
def test_the_dropped_column_shows_the_sessions_count_when_it_has_one(dropped):
    totals: dict = {}
    workload = SimpleNamespace(epoch=1, t_warmup_end=None,
                               recorder=SimpleNamespace(totals=lambda: dict(totals)))
    harness = SimpleNamespace(workload=workload)
    if dropped is not None:
        harness.live_dropped = lambda: dropped
    clock = SimpleNamespace(now=0.0)
    view = LiveView(SimpleNamespace(workload=SimpleNamespace(duration_s=60)), clock=lambda: clock.now)
    plain = io.StringIO()
    view.err = Console(file=plain, width=200, highlight=False)
    for t, ops in ((1.0, 0), (2.0, 50), (12.5, 150)):
        clock.now = t
        totals["failover"] = (ops, 0, 0)
        view.tick(t, harness, [])
    table = io.StringIO()
    Console(file=table, width=200).print(view.render(12.5, 60))
    row = next(line for line in table.getvalue().splitlines() if line.startswith("failover"))
    assert "dropped" in table.getvalue()
    if dropped is None:
        assert row.split()[4] == "-" and "dropped" not in plain.getvalue()
    else:
        assert row.split()[4] == "7" and "failover 10 ops/s, 0.0% errors, 0.0 meta q/s, 7 dropped" \
            in plain.getvalue()
    assert row.split()[-1] == "-" and "in faults" not in plain.getvalue()   # no fault yet


def test_the_live_view_shows_each_policys_response_p99_during_faults():
    from support.metrics import TIMEOUT_S, record_in_end_order, writes

    from loadgen.metrics import FaultEvent, Recorder

    recorder = Recorder()
    history = writes(100.0, 110.0, policy="failover")                      # fast, all along
    history += writes(100.0, 110.0, ok=lambda t: t < 105.0, policy="legacy")  # times out after
    record_in_end_order(recorder, history, faults=[(105.0, (3,))])
    fault = FaultEvent(id="1", kind="kill", node="replica1", t_inject=105.0,
                       affected_partitions=(3,))
    harness = SimpleNamespace(
        workload=SimpleNamespace(epoch=1, t_warmup_end=None,
                                 recorder=SimpleNamespace(totals=recorder.totals)),
        live_state=lambda: recorder.snapshot(histograms=False))
    clock = SimpleNamespace(now=119.0)
    view = LiveView(SimpleNamespace(workload=SimpleNamespace(duration_s=60)),
                    clock=lambda: clock.now)
    for clock.now in (119.0, 120.0):        # a second tick: the rows come with the rates
        view.tick(clock.now - 100.0, harness, [fault])
    table = io.StringIO()
    Console(file=table, width=200).print(view.render(20.0, 60))
    p99 = {line.split()[0]: line.split()[-1] for line in table.getvalue().splitlines()
           if line.startswith(("failover", "legacy"))}
    # legacy's ops in the fault seconds waited their timeout; failover's did not
    assert float(p99["legacy"]) >= 0.9 * TIMEOUT_S * 1000 > 10 * float(p99["failover"]), p99


@pytest.mark.parametrize("dropped", [None, {"failover": 3}])
def test_the_recovery_tab_has_a_dropped_column_too(dropped):
    from loadgen.harness.fault_relay import FaultRelay
    from loadgen.harness.webui import RecoveryTab
    from loadgen.metrics import Recorder

    recorder = Recorder()
    for k in range(20):
        recorder.record(op(100.0 + k * 0.05))
    harness = SimpleNamespace(
        settings=WorkloadSettings(meta=("h:1",), policies=("failover",), run_id="r"),
        relay=FaultRelay(recorder), live_state=recorder.snapshot, live_missed=lambda: {}, finished=[],
        workload=SimpleNamespace(labels={"failover": "failover"}, t_test_start=100.0))
    if dropped is not None:
        harness.live_dropped = lambda: dropped
    tab = RecoveryTab(harness, clock=lambda: 102.0)
    assert "Dropped arrivals" in [c["title"] for c in tab.columns()]
    row = tab.rows()[0]
    assert row["ops"] == 20 and row["dropped"] == ("" if dropped is None else 3)
