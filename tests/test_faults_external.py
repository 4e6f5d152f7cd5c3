"""The external-cluster view against a onebox seen only through its meta: node names from the
meta's addresses, health from the replica count, and the meta polled every 20 ms dates a
failover within a poll of the meta's own log."""

from __future__ import annotations

import time

import gevent
import pytest
from support.onebox import TIMING_SLACK_S, first_new_primary, make_box, node_of

from loadgen.config.targets import NodeTarget, PrimaryOf
from loadgen.faults.cluster import ExternalCluster, resolve_target
from loadgen.faults.observer import POLL_INTERVAL_S, PollingObserver

pytestmark = pytest.mark.onebox


def _eventually(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.05)
    return True


def test_a_onebox_seen_as_an_external_cluster(tmp_path):
    threads = gevent.get_hub().threadpool
    with make_box(tmp_path / "box") as box:
        grace = box.spec.fd.grace_s
        cluster = ExternalCluster(box.meta_addrs, box.spec.table, replicas=3, replica_nodes=3)
        # names follow the meta's addresses in sorted order, whatever the onebox calls them
        by_port = sorted((box.spec.nodes[n] for n in box.spec.replica_names),
                         key=lambda addr: int(addr.rpartition(":")[2]))
        assert [cluster.node(f"replica{i}").addr for i in (1, 2, 3)] == by_port
        assert cluster.node("replica4") is None
        assert threads.apply(cluster.problems) == []
        node, config, _ = threads.apply(resolve_target, (cluster, PrimaryOf(0)))
        assert node.addr == config[0].primary
        assert threads.apply(resolve_target, (cluster, NodeTarget("replica9"))).reason == \
            "no node named replica9"

        observer = PollingObserver(box.meta_addrs, box.spec.table)
        observer.start()
        try:
            gevent.sleep(0.3)
            old = node.addr
            started = time.monotonic()
            applied = threads.apply(box.kill, (node_of(box, old),))
            assert _eventually(lambda: observer.history.failover_instant(
                0, applied.t_signal, old) is not None, grace + 3 + TIMING_SLACK_S)
            polled = observer.history.failover_instant(0, applied.t_signal, old)
            logged = first_new_primary(box, 0, old, applied.t_signal)
            # dated by the reply that first showed it: never before the change, at most a poll
            # interval (plus a loaded machine's delays) after it
            assert logged <= polled <= logged + POLL_INTERVAL_S + 0.3
            assert observer.polls >= (time.monotonic() - started) / POLL_INTERVAL_S / 4
            assert _eventually(lambda: threads.apply(cluster.problems) != [], 5)
            assert "of 3 replicas" in threads.apply(cluster.problems)[0]
            threads.apply(box.restart, (node_of(box, old),))
            assert _eventually(lambda: threads.apply(cluster.problems) == [], 20)
        finally:
            observer.stop()
