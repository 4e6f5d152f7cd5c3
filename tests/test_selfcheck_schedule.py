"""The schedule self-check: did each policy's open-loop schedule go out outside the faults?

A run that sent less than 99 % of its arrivals in the steady seconds where the policy's ops
succeeded measured something else than it was asked to: it is flagged, and the reason says
whether the generator (missed arrivals, never sent) or the cluster (arrivals dropped at the
in-flight cap) fell behind. Fault and recovery seconds, and seconds whose ops failed, do not
count: a stuck policy is a result, not a generator problem.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from loadgen.load.selfcheck import SCHEDULE_SHORTFALL_LIMIT, schedule_checks, schedule_saturation
from loadgen.metrics import Recorder
from loadgen.metrics.events import FaultEvent, phases
from tests.support.metrics import record_in_end_order, writes

pytestmark = pytest.mark.unit

RATE = 20            # arrivals/s of the one policy in these histories (support.metrics.RATE)


def check(recorder: Recorder, events=(), *, missed=None, t_end=40.0):
    return schedule_checks(recorder.snapshot(), phases(events), t_start=0.0, t_end=t_end,
                           offered_per_s=RATE, settle_s=2.0, missed=missed)


def test_a_schedule_sent_in_full_passes():
    r = Recorder()
    record_in_end_order(r, writes(0, 40))
    c = check(r)["failover"]
    assert c.seconds == 38 and c.sent == 38 * RATE and c.shortfall == 0
    assert c.behind is None and not schedule_saturation({"failover": c}, 64).saturated


def test_unsent_arrivals_flag_the_generator_and_say_so():
    r = Recorder()
    # 2 arrivals of every 20 never went out (the hub was late): 10 % short
    record_in_end_order(r, [o for i, o in enumerate(writes(0, 40)) if i % 10])
    c = check(r, missed={"failover": 76})["failover"]
    assert c.shortfall == pytest.approx(0.1, abs=0.01)
    assert c.behind == "generator"
    s = schedule_saturation({"failover": c}, 64)
    assert s.saturated and "generator fell behind" in s.reason and "76 arrivals missed" in s.reason
    assert "failover 10.0%" in s.reason


def test_arrivals_dropped_at_the_cap_flag_the_cluster():
    r = Recorder()
    kept = []
    for i, o in enumerate(writes(0, 40)):
        if i % 10:
            kept.append(o)
        else:
            r.drop("failover", 3, o.intended_start)
    record_in_end_order(r, kept)
    c = check(r)["failover"]
    assert c.behind == "cluster" and c.dropped == pytest.approx(0.1 * c.intended, abs=2)
    reason = schedule_saturation({"failover": c}, 7).reason
    assert "cluster fell behind" in reason and f"{c.dropped} arrivals found all 7 ops" in reason


def test_a_shortfall_at_the_limit_passes_and_just_over_it_fails():
    r = Recorder()
    record_in_end_order(r, writes(0, 40))
    full = check(r)["failover"]
    at_limit = replace(full, sent=math.ceil(full.intended * (1 - SCHEDULE_SHORTFALL_LIMIT)))
    over = replace(full, sent=math.floor(full.intended * (1 - 2 * SCHEDULE_SHORTFALL_LIMIT)))
    assert at_limit.behind is None and over.behind == "generator"


def test_fault_and_recovery_seconds_and_failing_seconds_do_not_count():
    r = Recorder()
    # nothing went out between 10 and 22 s (a fault healed at 12 s, and its 10 s of
    # recovery), and the ops of 25-30 s failed (the policy was stuck, which is its result,
    # not the generator's)
    history = (writes(0, 10) + writes(22, 25) + writes(25, 30, ok=lambda t: False)
               + writes(30, 40))
    record_in_end_order(r, history)
    fault = FaultEvent(id="1", kind="kill", node="replica1", t_inject=10.0, t_heal=12.0,
                       affected_partitions=(3,))
    c = check(r, [fault])["failover"]
    # steady: [0, 10) and [22, 38) minus the failing [25, 30): 10 + 3 + 8 = 21 s
    assert c.seconds == 21 and c.behind is None
    # the same gap with no fault to explain it is flagged
    assert check(r)["failover"].behind == "generator"
