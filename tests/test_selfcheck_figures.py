"""The self-check's figures and wording: what results.json and the report say about whether
the load generator (or the cluster) was the bottleneck.

The load monitor (CPU, hub lateness) runs on injected clocks; the schedule check on
hand-built histories; the flags of several processes and checks add up into one.
"""

from __future__ import annotations

import gevent
import pytest

from loadgen.load.selfcheck import (ClusterQueueCheck, LoadMonitor, Saturation, ScheduleCheck, offered_at,
                                    schedule_checks, schedule_saturation)
from loadgen.metrics import Recorder
from loadgen.metrics.events import FaultEvent, phases
from tests.support.metrics import op, record_in_end_order, writes

pytestmark = pytest.mark.unit


# ----------------------------------------------------------------------- flags adding up


def test_a_flag_plus_another_keeps_both_reasons_the_maxima_and_the_earliest_flag():
    cpu = Saturation(True, "CPU 95%", cpu_max=0.95, late_max_ms=3.0, since=40.0)
    late = Saturation(True, "hub late", cpu_max=0.5, late_max_ms=80.0, since=25.0)
    calm = Saturation(False, "", cpu_max=0.2, late_max_ms=1.0, since=None)
    assert cpu.plus(late) == Saturation(True, "CPU 95%; hub late", 0.95, 80.0, 25.0)
    assert calm.plus(cpu) == Saturation(True, "CPU 95%", 0.95, 3.0, 40.0)
    assert calm.plus(calm) == calm
    # an unflagged part's instant is not when the run was flagged
    assert cpu.plus(Saturation(False, "", since=1.0)).since == 40.0
    assert cpu.plus(Saturation(True, "no instant")).since == 40.0


def test_several_processes_name_each_flagged_one_and_keep_the_earliest_flag():
    parts = {"w1": Saturation(True, "CPU 99%", 0.99, 3.0, 7.0),
             "w0": Saturation(True, "hub late", 0.4, 90.0, 5.0),
             "w2": Saturation(False, "", 0.3, 120.0, 2.0),
             "w3": Saturation(True, "no instant", 0.1, 1.0, None)}
    s = Saturation.combine(parts)
    assert s == Saturation(True, "w0: hub late; w1: CPU 99%; w3: no instant", 0.99, 120.0, 5.0)
    assert Saturation.combine({}) == Saturation(False, "", 0.0, 0.0, None)


def test_the_flag_as_results_json_holds_it_and_reads_back_from_partial_data():
    s = Saturation(True, "CPU 95%", cpu_max=0.912345, late_max_ms=12.34567, since=3.5)
    assert s.as_dict() == {"saturated": True, "reason": "CPU 95%", "cpu_max": 0.912,
                           "late_max_ms": 12.346, "since": 3.5}
    assert Saturation.from_dict({"saturated": True}) == Saturation(True, "", 0.0, 0.0, None)
    assert Saturation.from_dict({}) == Saturation()


# ----------------------------------------------------------------------- the load monitor


class Clocks:
    def __init__(self):
        self.wall = self.cpu = 0.0


def feed(m: LoadMonitor, c: Clocks, seconds: int, *, cpu: float, late: float, wall: float = 1.0):
    for _ in range(seconds):
        c.wall += wall
        c.cpu += cpu * wall
        m.sample(c.wall, c.cpu, late)


def test_the_limits_are_reached_at_equality():
    c = Clocks()
    m = LoadMonitor(cpu_limit=0.75, window_s=2, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 2, cpu=0.75, late=0.0)
    assert m.status().saturated and m.status().reason == "load process CPU 75% over 2 s (limit 75%)"
    c = Clocks()
    m = LoadMonitor(late_limit_s=0.0625, late_window_s=2, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 2, cpu=0.1, late=0.0625)
    assert m.status().reason == ("gevent hub late by 62 ms (median of the worst per second over 2 s; "
                                 "limit 62 ms): ops leave behind schedule")


def test_a_window_of_one_second_flags_on_one_sample():
    c = Clocks()
    m = LoadMonitor(window_s=1, late_window_s=1, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 1, cpu=0.1, late=0.2)
    assert m.status().saturated and "hub late by 200 ms" in m.status().reason
    c = Clocks()
    m = LoadMonitor(window_s=1, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 1, cpu=1.0, late=0.0)
    assert m.status().saturated and "CPU 100% over 1 s" in m.status().reason


def test_cpu_is_the_share_of_wall_time_whatever_the_sample_length():
    c = Clocks()
    m = LoadMonitor(window_s=3, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 3, cpu=0.5, late=0.0, wall=2.0)
    assert m.status().cpu_max == pytest.approx(0.5) and not m.status().saturated


def test_cpu_max_counts_full_windows_only():
    c = Clocks()
    m = LoadMonitor(window_s=3, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 2, cpu=0.99, late=0.0)                 # a busy start, not yet a window
    assert m.status().cpu_max == 0.0 and not m.status().saturated
    feed(m, c, 1, cpu=0.3, late=0.0)
    assert m.status().cpu_max == pytest.approx((0.99 * 2 + 0.3) / 3)


def test_the_flag_its_reason_and_its_instant_stay_once_raised():
    c = Clocks()
    m = LoadMonitor(window_s=2, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    feed(m, c, 3, cpu=0.2, late=0.0)
    assert m.status().since is None                   # not flagged: no instant
    feed(m, c, 2, cpu=1.0, late=0.0)
    flagged = m.status()
    assert flagged.saturated and flagged.since == 5.0
    feed(m, c, 4, cpu=0.1, late=0.0)                  # calm again: still flagged, same reason
    assert (m.status().saturated, m.status().reason, m.status().since) == (True, flagged.reason, 5.0)


def test_a_sample_of_no_wall_time_is_ignored():
    c = Clocks()
    m = LoadMonitor(window_s=1, clock=lambda: c.wall, cpu_clock=lambda: c.cpu)
    m.sample(0.0, 5.0, 0.5)
    assert m.status() == Saturation()


class TickingClock:
    """A clock that moves ``step`` seconds each time it is read: every 10 ms tick of the
    monitor then wakes ``step`` - 10 ms late."""

    def __init__(self, step: float):
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def run_until_flagged(m: LoadMonitor) -> Saturation:
    for _ in range(300):
        gevent.sleep(0.01)
        if m.status().saturated:
            break
    return m.status()


def test_the_running_monitor_measures_how_late_each_tick_wakes_once_a_second():
    clock = TickingClock(0.25)
    m = LoadMonitor(late_window_s=2, clock=clock, cpu_clock=lambda: 0.0)
    m.start()
    m.start()                                        # started once: a second start changes nothing
    try:
        s = run_until_flagged(m)
    finally:
        m.stop()
    # samples close at 1.75 s and 2.75 s of this clock (a second apart), each tick 240 ms late
    assert s.saturated and s.since == 2.75
    assert s.late_max_ms == pytest.approx(240)
    assert s.reason.startswith("gevent hub late by 240 ms (median of the worst per second over 2 s")
    clock.step = 1.0                                 # stopped: later ticks change nothing
    gevent.sleep(0.05)
    assert m.status() == s


def test_a_stopped_monitor_starts_again_from_nothing():
    clock = TickingClock(0.25)
    m = LoadMonitor(late_window_s=2, clock=clock, cpu_clock=lambda: 0.0)
    m.stop()                                         # never started: nothing to stop
    m.start()
    try:
        run_until_flagged(m)
    finally:
        m.stop()
    clock.step = 0.125
    m.start()
    try:
        assert not m.status().saturated
        s = run_until_flagged(m)
    finally:
        m.stop()
    assert s.saturated and s.late_max_ms == pytest.approx(115)


# ----------------------------------------------------------------------- the schedule check


RATE = 20


def check(r: Recorder, events=(), *, t_start=0.0, t_end=40.0, missed=None, changes=()):
    return schedule_checks(r.snapshot(), phases(events), t_start=t_start, t_end=t_end,
                           offered_per_s=RATE, settle_s=2.0, missed=missed, changes=changes)["failover"]


def test_the_schedule_check_as_results_json_holds_it():
    c = ScheduleCheck("failover", seconds=30, intended=600.4, sent=541, dropped=50, missed=3)
    assert c.as_dict() == {"seconds": 30, "intended": 600, "sent": 541, "dropped": 50, "missed": 3,
                           "shortfall": 0.0989, "behind": "cluster"}


def test_steady_seconds_near_a_fault_count_every_op_of_the_second():
    r = Recorder()
    # the recorder keeps 10 ms detail within 30 s of a fault: those seconds count whole
    record_in_end_order(r, writes(0, 40), faults=[(20.0, (3,))])
    fault = FaultEvent(id="1", kind="kill", node="replica1", t_inject=20.0, t_heal=21.0,
                       affected_partitions=(3,))
    c = check(r, [fault])
    assert (c.seconds, c.sent, c.intended) == (27, 27 * RATE, 27 * RATE) and c.behind is None


def second(sec: int, n: int, failing: dict[int, str]) -> list:
    """``n`` ops intended in second ``sec``; op k ends as ``failing[k]`` (default ok)."""
    return [op(sec + k / n + 0.0025, outcome=failing.get(k, "ok")) for k in range(n)]


def test_unknown_and_failed_ops_went_out_and_seconds_failing_over_one_percent_are_left_out():
    r = Recorder()
    history = [o for o in writes(0, 40) if not 5 <= o.intended_start < 9]
    history += second(5, 100, {0: "unknown"})             # 1 %: counted, 100 ops went out
    history += second(6, 100, {0: "fail"})                # 1 %: counted
    history += second(7, RATE, {0: "fail", 1: "fail", 2: "fail"})    # 15 %: left out
    history += second(8, 100, {0: "unknown", 50: "unknown"})         # 2 %: left out
    # a fault at 30 s: the recorder keeps 10 ms detail of the seconds before it
    record_in_end_order(r, history, faults=[(30.0, (3,))])
    fault = FaultEvent(id="1", kind="kill", node="replica1", t_inject=30.0, t_heal=30.5,
                       affected_partitions=(3,))
    c = check(r, [fault])
    assert (c.seconds, c.sent) == (28, 26 * RATE + 200)


def test_a_second_failing_just_at_the_error_rate_limit_still_counts():
    r = Recorder()
    # second 5: 1 failed op of 100 (1 %, the limit: counted); second 6: 1 failed of 200
    history = [o for o in writes(0, 40) if not 5 <= o.intended_start < 7]
    history += [op(5 + k / 100 + 0.0025, outcome="fail" if k == 0 else "ok") for k in range(100)]
    history += [op(6 + k / 200 + 0.0025, outcome="fail" if k == 0 else "ok") for k in range(200)]
    record_in_end_order(r, history)
    c = check(r)
    assert (c.seconds, c.sent) == (38, 36 * RATE + 300)


def test_only_whole_steady_seconds_from_the_start_count_and_a_silent_second_sent_nothing():
    r = Recorder()
    record_in_end_order(r, writes(0, 10) + writes(11, 40))      # second 10: nothing back
    fault = FaultEvent(id="1", kind="kill", node="replica1", t_inject=20.5, t_heal=21.0,
                       affected_partitions=(3,))
    c = check(r, [fault], t_start=4.5)
    # [5, 38) minus seconds 20 (half steady) to 30 (recovery until 31.0): 33 - 11 = 22 seconds
    assert (c.seconds, c.intended, c.sent) == (22, 22 * RATE, 21 * RATE)


def test_missed_arrivals_are_reported_per_policy_and_zero_when_unknown():
    r = Recorder()
    record_in_end_order(r, writes(0, 40))
    assert check(r).missed == 0
    assert check(r, missed={"java": 5}).missed == 0
    assert check(r, missed={"failover": 7}).missed == 7


def test_seconds_around_a_user_count_change_are_left_out_and_the_new_rate_applies_after():
    r = Recorder()
    record_in_end_order(r, writes(0, 20) + writes(20, 40, rate=2 * RATE))
    c = check(r, changes=[(20.0, 2 * RATE)])
    # [0, 38) minus 18, 19 and 20: 18 seconds before at 20/s, 17 after at 40/s
    assert (c.seconds, c.intended, c.sent) == (35, 18 * RATE + 17 * 2 * RATE, 18 * RATE + 17 * 2 * RATE)
    assert c.behind is None


def test_the_offered_rate_follows_each_change_outside_its_margin():
    changes = [(30.0, 50.0), (10.0, 40.0)]
    rates = {sec: offered_at(sec, 20.0, changes) for sec in range(5, 35)}
    assert [s for s, r in rates.items() if r is None] == [8, 9, 10, 28, 29, 30]
    assert {rates[s] for s in range(5, 8)} == {20.0}
    assert {rates[s] for s in range(11, 28)} == {40.0}
    assert {rates[s] for s in range(31, 35)} == {50.0}
    assert offered_at(12, 20.0, [(10.5, 40.0)]) == 40.0 and offered_at(11, 20.0, [(10.5, 40.0)]) is None


def test_the_reason_names_every_late_policy_and_both_sides():
    def c(policy, sent, dropped, missed):
        return ScheduleCheck(policy, seconds=10, intended=1000.0, sent=sent, dropped=dropped, missed=missed)

    checks = {"java": c("java", 950, 0, 12), "failover": c("failover", 900, 3, 40),
              "legacy": c("legacy", 800, 150, 0), "ok": c("ok", 1000, 0, 0)}
    s = schedule_saturation(checks, 16)
    assert s.saturated and s.reason == (
        "the generator fell behind: part of the schedule outside faults was not sent "
        "(failover 10.0%, java 5.0% of it; limit 1%); 52 arrivals missed (more than max_lag_s "
        "late), the rest never left the load process; "
        "the cluster fell behind: part of the schedule outside faults was not sent "
        "(legacy 20.0% of it; limit 1%); 150 arrivals found all 16 ops of their user in flight")


# ----------------------------------------------------------------------- the cluster-queue check


def test_the_cluster_queue_check_as_results_json_rounds_its_figures():
    q = ClusterQueueCheck(baseline_p50_ms=3.0, put_p50_ms={"failover": 40.12345, "java": 20.0})
    assert q.as_dict()["put_p50_ms"] == {"failover": 40.123, "java": 20.0}
    assert q.as_dict()["ratio"] == 10.02                       # 30.061725 / 3
