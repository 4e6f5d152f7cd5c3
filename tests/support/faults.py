"""Fakes for the fault-controller tests: an injector, a cluster and an observer in memory.

The fake cluster has replica1..3 at 10.0.0.1:1..3 and 4 partitions; its configs and health
problems are plain attributes a test changes. The fake injector applies actions instantly
(``t`` = now) and keeps the node states, so a test checks what a run left behind.
"""

from __future__ import annotations

import time
from typing import ClassVar

from loadgen.config.targets import NodeTarget, PrimaryOf
from loadgen.faults.cluster import PartitionConfig
from loadgen.faults.history import ConfigChange, ConfigHistory
from loadgen.faults.injector import ActionRecord, Node
from loadgen.config.plan import PlannedFault
from loadgen.metrics import FaultInstant

NODES = {f"replica{i}": Node(f"replica{i}", "10.0.0.1", i) for i in (1, 2, 3)}
ADDRS = [n.addr for n in NODES.values()]


def config(primaries: dict[int, str]) -> tuple[PartitionConfig, ...]:
    """Partitions with these primaries (node names; "" for none), the others as secondaries."""
    out = []
    for pidx, name in sorted(primaries.items()):
        primary = NODES[name].addr if name else ""
        out.append(PartitionConfig(pidx=pidx, ballot=1, primary=primary,
                                   secondaries=tuple(a for a in ADDRS if a != primary)))
    return tuple(out)


#: partition -> primary node: replica1 leads 0 and 3, replica2 leads 1, replica3 leads 2.
PRIMARIES = {0: "replica1", 1: "replica2", 2: "replica3", 3: "replica1"}


class FakeObserver:
    """A meta observer whose history the test (or the fake cluster) fills."""

    def __init__(self, history: ConfigHistory):
        self.history = history
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def sync(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


class FakeCluster:
    """``ClusterView`` in memory; ``problems`` is what ``problems()`` returns."""

    table = "temp"

    def __init__(self, primaries: dict[int, str] = PRIMARIES, t0: float | None = None):
        self.partitions = config(primaries)
        self.problems_now: list[str] = []
        t0 = time.monotonic() - 100 if t0 is None else t0
        self.history = ConfigHistory(
            ConfigChange(t=t0, pidx=p.pidx, ballot=1, primary=p.primary,
                         secondaries=p.secondaries) for p in self.partitions)
        self.health_checks = 0

    def node(self, name: str) -> Node | None:
        return NODES.get(name)

    def node_at(self, addr: str) -> Node:
        return next(n for n in NODES.values() if n.addr == addr)

    def config(self) -> tuple[PartitionConfig, ...]:
        return self.partitions

    def problems(self) -> list[str]:
        self.health_checks += 1
        return list(self.problems_now)

    def observer(self) -> FakeObserver:
        return FakeObserver(self.history)

    def change(self, t: float, pidx: int, primary: str) -> None:
        """The meta names ``primary`` (a node name, "" for none) for ``pidx`` at ``t``."""
        addr = NODES[primary].addr if primary else ""
        self.history.add(ConfigChange(t=t, pidx=pidx, ballot=2, primary=addr))


class FakeInjector:
    """Applies actions at once; ``fail`` maps an action to (error, uncertain)."""

    name: ClassVar[str] = "fake"
    injects: ClassVar[bool] = True

    def __init__(self, fail: dict[str, tuple[str, bool]] | None = None):
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, str, float]] = []
        self.state = {name: "running" for name in NODES}

    def apply(self, action: str, node: Node) -> ActionRecord:
        now = time.monotonic()
        self.calls.append((action, node.name, now))
        if action in self.fail:
            error, uncertain = self.fail[action]
            return ActionRecord(action=action, node=node.name, ok=False, t=None,
                                instant="signal", t_sent=now, t_returned=now, error=error,
                                uncertain=uncertain)
        self.state[node.name] = {"kill": "dead", "terminate": "dead", "pause": "paused",
                                 "resume": "running", "restart": "running"}[action]
        return ActionRecord(action=action, node=node.name, ok=True, t=now, instant="signal",
                            t_sent=now, t_returned=now)

    def actions(self) -> list[tuple[str, str]]:
        return [(a, n) for a, n, _ in self.calls]


class RecordingListener:
    """Keeps every fault instant it hears."""

    def __init__(self) -> None:
        self.heard: list[FaultInstant] = []

    def fault_instant(self, instant: FaultInstant) -> None:
        self.heard.append(instant)


def planned(id: int, at_s: float, kind: str, target: str, *, duration_s: float | None = None,
            restart_after_s: float | None = None) -> PlannedFault:
    """One plan entry; ``target`` is ``replicaN`` or ``primary-of:P``."""
    parsed = (PrimaryOf(int(target.partition(":")[2])) if target.startswith("primary-of:")
              else NodeTarget(target))
    return PlannedFault(id=id, at_s=at_s, kind=kind, target=parsed, duration_s=duration_s,
                        restart_after_s=restart_after_s, origin=f"faults.events[{id - 1}]")
