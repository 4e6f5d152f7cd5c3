"""Which partitions a fault touched (any replica on the node) and which node the meta promoted
for each affected partition: from the config history, through the controller, to the record
and the fault event the analysis reads."""

from __future__ import annotations

import time

import gevent
import pytest
from support.faults import NODES, FakeCluster, FakeInjector, planned

from loadgen.config.schema import HealthGateConfig
from loadgen.faults.controller import FaultController
from loadgen.faults.history import ConfigChange, ConfigHistory
from loadgen.faults.records import FaultRecord
from loadgen.metrics import FaultEvent

pytestmark = pytest.mark.unit

A, B, C = (NODES[f"replica{i}"].addr for i in (1, 2, 3))


def test_hosted_at_counts_primaries_and_secondaries_in_force_then():
    h = ConfigHistory([ConfigChange(0.0, 0, 1, A, (B, C)), ConfigChange(0.0, 1, 1, B, (C,)),
                       ConfigChange(0.0, 2, 1, C, (A,)), ConfigChange(5.0, 1, 2, B, (C, A))])
    assert h.hosted_at(A, 1.0) == (0, 2)          # primary of 0, secondary of 2
    assert h.hosted_at(A, 5.0) == (0, 1, 2)       # added to partition 1 at 5.0
    assert h.hosted_at("10.0.0.9:9", 5.0) == ()


def test_failover_change_names_the_promoted_node():
    h = ConfigHistory([ConfigChange(0.0, 0, 1, A, (B, C)), ConfigChange(10.2, 0, 2, "", (B, C)),
                       ConfigChange(10.4, 0, 3, C, (B,))])
    change = h.failover_change(0, 10.0, A)
    assert change is not None and change.primary == C and change.t == 10.4
    assert h.failover_instant(0, 10.0, A) == 10.4
    assert h.failover_change(0, 10.0, A, until=10.3) is None


def test_the_record_carries_touched_partitions_and_promoted_nodes():
    cluster = FakeCluster()          # replica1 leads 0 and 3; every node holds every partition
    t0 = time.monotonic()
    # partition 1 loses its replica on replica1 before the fault: not touched by it
    cluster.history.add(ConfigChange(t=t0 - 1, pidx=1, ballot=2, primary=B, secondaries=(C,)))
    c = FaultController([planned(1, 0.0, "kill", "replica1", restart_after_s=0.3)],
                        injector=FakeInjector(), cluster=cluster,
                        health_gate=HealthGateConfig(enabled=False))
    c.start(t0)
    gevent.sleep(0.1)
    cluster.change(time.monotonic(), 0, "")
    cluster.change(time.monotonic() + 0.001, 0, "replica3")   # partition 0: replica3 promoted
    assert c.join(5)
    (record,) = c.stop()
    event = record.event
    assert event.affected_partitions == (0, 3)
    assert event.touched_partitions == (0, 2, 3)
    assert dict(event.promoted) == {0: "replica3"}           # 3 never failed over
    line = record.to_dict()
    assert line["touched_partitions"] == [0, 2, 3] and line["promoted"] == {"0": "replica3"}
    assert event.touches(2) and not event.touches(1)


def test_a_record_without_replica_facts_touches_everything():
    event = FaultEvent(id="1", kind="pause", node="replica1", t_inject=1.0, t_heal=2.0,
                       affected_partitions=(4,))
    record = FaultRecord(event, target="replica1", origin="events", at_s=1.0, t_planned=1.0,
                         injector="onebox", addr=A)
    assert event.touched_partitions is None and event.touches(7) and event.promoted == {}
    assert record.to_dict()["touched_partitions"] is None
