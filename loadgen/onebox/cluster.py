"""The onebox as a :class:`~loadgen.faults.cluster.Cluster`: its nodes, health, config log and
supervisor-driven injector, for the fault controller and the runner.

This is the one module of the onebox that knows the fault side: the supervisor, the servers
and the control socket below it know nothing of faults or profiles.

* :class:`OneboxCluster` — nodes from the onebox spec; healthy when every partition has an
  alive primary and ``replicas - 1`` alive secondaries (a paused node is not alive); observed
  through the meta's config-change log; the ``onebox`` injector acts through its supervisor.
* :class:`OneboxInjector` — actions through a supervisor (an :class:`~.supervisor.Onebox` in
  this process, or an :class:`~.control_client.OneboxControl` for a onebox started with
  ``pegbench onebox start``). Both answer with a :class:`.fault_applied.FaultApplied` whose
  instants the supervisor took right at the signal (and at a restarted node's READY). Those
  instants are the fault's, not when the request was sent: a round trip through the control
  socket adds 1-300 ms that no TTR should carry.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..config.schema import ClusterConfig, InjectorConfig
from ..faults import injectors
from ..faults.cluster import QUERY_TIMEOUT_S, ClusterView, PartitionConfig, config_problems, partitions_of
from ..faults.cooperative import run_blocking
from ..faults.injector import READY, SIGNAL, ActionRecord, Injector, Node
from ..faults.observer import LogTailObserver, MetaObserver
from ..node_actions import ACTIONS, RESTART
from ..pegasus.blocking import query_config
from .fault_applied import FaultApplied
from .process import free_port
from .spec import CONFIG_LOG, META_NODE, QUERY_LOG, FDConfig, OneboxSpec

#: The meta's config-change log, as a run folder keeps it.
RUN_CONFIG_LOG = "meta-config-changes.jsonl"


class OneboxDriver(Protocol):
    """A onebox's supervisor: ``Onebox`` and ``OneboxControl`` both are one."""

    def kill(self, node: str) -> FaultApplied: ...
    def pause(self, node: str) -> FaultApplied: ...
    def resume(self, node: str) -> FaultApplied: ...
    def terminate(self, node: str) -> FaultApplied: ...
    def restart(self, node: str) -> FaultApplied: ...
    def status(self) -> dict: ...


def status_problems(status: Mapping[str, Any], replicas: int) -> list[str]:
    """What keeps a onebox (its status document) from being healthy; empty when healthy.

    Partitions only: a node that is down but hosts nothing any more (more nodes than
    replicas, its partitions copied elsewhere) does not keep the next fault waiting."""
    if status.get("partition_count") is None:
        return ["partition config unknown (the meta did not answer)"]
    partitions = [PartitionConfig(pidx=p["pidx"], ballot=p["ballot"], primary=p["primary"],
                                  secondaries=tuple(p["secondaries"]))
                  for p in status["partitions"]]
    alive = {n["addr"] for n in status["nodes"] if n["state"] == "running"}
    return config_problems(partitions, replicas, alive)


class OneboxCluster:
    """A onebox, through its driver; both a ``Cluster`` and its ``ClusterView``.

    ``owned``: :meth:`stop` stops the onebox (one :meth:`start` started); a onebox someone
    else started (``pegbench onebox start``) is left running."""

    def __init__(self, driver: OneboxDriver, *, owned: bool = False):
        self.driver = driver
        self.owned = owned
        spec = getattr(driver, "spec", None)  # an Onebox has its spec; read it for a control
        self.spec: OneboxSpec = spec if spec is not None else \
            OneboxSpec.read(Path(driver.dir) / "spec.json")
        self.table = self.spec.table
        self.meta: tuple[str, ...] = (self.spec.meta_addr,)
        self._nodes = {name: Node.at(name, addr) for name, addr in self.spec.nodes.items()}
        self._by_addr = {n.addr: n for n in self._nodes.values()}

    @classmethod
    def start(cls, config: ClusterConfig, work_dir: Path) -> OneboxCluster:
        """A onebox of ``config`` started in ``work_dir`` on free ports (stopped by :meth:`stop`)."""
        from .supervisor import Onebox

        box = Onebox(work_dir, replica_nodes=config.replica_nodes, partitions=config.partitions,
                     replicas=config.replicas, min_replicas=config.min_replicas, table=config.table,
                     meta_port=free_port(),
                     replica_ports=[free_port() for _ in range(config.replica_nodes)],
                     fd=fd_config(config), drop_expired=config.drop_expired)
        box.start()
        return cls(box, owned=True)

    # --------------------------------------------------------------- Cluster

    def view(self) -> ClusterView:
        return self

    def injector(self, config: InjectorConfig) -> Injector:
        return injectors.create(config.kind, injectors.InjectorContext(
            config=config, native=OneboxInjector(self.driver)))

    @property
    def meta_query_log(self) -> Path:
        """The meta's log of config queries (a real client's meta queries are counted from it)."""
        return self.spec.node_dir(META_NODE) / QUERY_LOG

    def save_logs(self, out_dir: Path) -> None:
        log = self.spec.node_dir(META_NODE) / CONFIG_LOG
        if log.exists():
            shutil.copy(log, Path(out_dir) / RUN_CONFIG_LOG)

    def stop(self) -> None:
        if self.owned:
            self.driver.stop()

    # --------------------------------------------------------------- ClusterView

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def node_at(self, addr: str) -> Node:
        return self._by_addr.get(addr) or Node.at(addr, addr)

    def config(self) -> tuple[PartitionConfig, ...]:
        return partitions_of(query_config(self.spec.meta_addr, self.table,
                                          timeout_s=QUERY_TIMEOUT_S))

    def problems(self) -> list[str]:
        return status_problems(self.driver.status(), self.spec.replicas)

    def observer(self) -> MetaObserver:
        return LogTailObserver(self.spec.node_dir(META_NODE) / CONFIG_LOG)


def fd_config(config: ClusterConfig) -> FDConfig:
    """The onebox's failure-detector timings: the profile's ``[cluster.fd]``, field by field."""
    return FDConfig(**dataclasses.asdict(config.fd))


class OneboxInjector:
    """Applies actions through ``driver`` (in gevent's threadpool: the calls block)."""

    name: ClassVar[str] = "onebox"
    injects: ClassVar[bool] = True

    def __init__(self, driver: OneboxDriver):
        self.driver = driver

    def apply(self, action: str, node: Node) -> ActionRecord:
        """Run ``action`` on ``node``; ``t`` is the signal's instant (a restart's: READY)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        instant = READY if action == RESTART else SIGNAL
        t_sent = time.monotonic()
        try:
            applied = run_blocking(getattr(self.driver, action), node.name)
        except Exception as exc:  # noqa: BLE001 - a failed action is recorded, never fatal
            # The supervisor reports errors before acting (unknown node, an unreported
            # crash) or after a restart that did not come up; neither leaves a fault to heal.
            return ActionRecord(action=action, node=node.name, ok=False, t=None,
                                instant=instant, t_sent=t_sent, t_returned=time.monotonic(),
                                error=f"{type(exc).__name__}: {exc}")
        t_returned = time.monotonic()
        t = applied.t_ready if action == RESTART else applied.t_signal
        detail = {"pid": applied.pid, "state": applied.state, "t_signal": applied.t_signal,
                  "t_ready": applied.t_ready}
        if t is None:
            return ActionRecord(action=action, node=node.name, ok=False, t=None, instant=instant,
                                t_sent=t_sent, t_returned=t_returned, detail=detail,
                                error=f"nothing was signalled: {node.name} was already "
                                      f"{applied.state}")
        return ActionRecord(action=action, node=node.name, ok=True, t=t, instant=instant,
                            t_sent=t_sent, t_returned=t_returned, detail=detail)
