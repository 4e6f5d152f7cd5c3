"""The cluster as the fault controller sees it: node names and addresses, configs, health.

Two kinds, one small interface (:class:`ClusterView`); every method may block (the controller
calls them through :func:`~loadgen.faults.cooperative.run_blocking`):

* :class:`OneboxCluster` — nodes from the onebox spec; healthy when every partition has an
  alive primary and ``replicas - 1`` alive secondaries (a paused node is not alive); observed
  through the meta's config-change log.
* :class:`ExternalCluster` — a real cluster known only through its metas; healthy when every
  partition has a primary and the configured replica count; observed by polling the meta.
  Node names: the replica addresses the meta reports at first use, sorted by host and port,
  are ``replica1``, ``replica2``, ...; an address seen only later is named by itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..config.schema import ClusterConfig
from ..config.targets import NodeTarget, PlannedTarget, PrimaryOf, SecondaryOf, replica_names
from ..onebox.spec import CONFIG_LOG, META_NODE, OneboxSpec
from ..pegasus.addr import parse_addr
from ..pegasus.blocking import query_config
from .injector import Node
from .observer import LogTailObserver, MetaObserver, PollingObserver

#: One-shot meta queries (config, health) give up after this.
QUERY_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PartitionConfig:
    """One partition's config as the meta gives it; addresses ``host:port``, "" for none."""

    pidx: int
    ballot: int
    primary: str
    secondaries: tuple[str, ...]


def partitions_of(resp: Any) -> tuple[PartitionConfig, ...]:
    """The partitions of a ``query_cfg_response``, by index."""
    return tuple(sorted((PartitionConfig(pidx=p.pid.partition_index, ballot=p.ballot,
                                         primary=str(p.primary),
                                         secondaries=tuple(str(s) for s in p.secondaries or ()))
                         for p in resp.partitions), key=lambda p: p.pidx))


def config_problems(partitions: Iterable[PartitionConfig], replicas: int,
                    alive: set[str] | None = None) -> list[str]:
    """What keeps these partitions from being healthy; empty when healthy.

    With ``alive`` (the onebox, which knows its nodes' states): an alive primary and
    ``replicas - 1`` alive secondaries each. Without: a primary and ``replicas`` members each.
    """
    found = []
    for p in partitions:
        if not p.primary or (alive is not None and p.primary not in alive):
            found.append(f"partition {p.pidx}: no {'alive ' if alive is not None else ''}"
                         f"primary ({p.primary or 'none'})")
        members = [s for s in p.secondaries if alive is None or s in alive]
        if alive is not None and len(members) < replicas - 1:
            found.append(f"partition {p.pidx}: {len(members)} of {replicas - 1} "
                         "secondaries alive")
        elif alive is None and 1 + len(members) < replicas:
            found.append(f"partition {p.pidx}: {1 + len(members)} of {replicas} replicas")
    return found


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


def _node(name: str, addr: str) -> Node:
    host, port = parse_addr(addr)
    return Node(name=name, host=host, port=port)


class ClusterView(Protocol):
    """What the controller asks of a cluster (every method may block)."""

    table: str

    def node(self, name: str) -> Node | None:
        """The node called ``name``; None if there is none."""
        ...

    def node_at(self, addr: str) -> Node:
        """The node at ``addr`` (named by its address if it has no name)."""
        ...

    def config(self) -> tuple[PartitionConfig, ...]:
        """The table's partition configs, fresh from the meta (raises if it cannot say)."""
        ...

    def problems(self) -> list[str]:
        """What keeps the cluster from being healthy; empty when healthy."""
        ...

    def observer(self) -> MetaObserver:
        """A new observer of this cluster's partition configs."""
        ...


class OneboxCluster:
    """A onebox, through its driver (``Onebox`` in this process, or ``OneboxControl``)."""

    def __init__(self, driver: Any):
        self.driver = driver
        spec = getattr(driver, "spec", None)  # an Onebox has its spec; read it for a control
        self.spec: OneboxSpec = spec if spec is not None else \
            OneboxSpec.read(Path(driver.dir) / "spec.json")
        self.table = self.spec.table
        self._nodes = {name: _node(name, addr) for name, addr in self.spec.nodes.items()}
        self._by_addr = {n.addr: n for n in self._nodes.values()}

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def node_at(self, addr: str) -> Node:
        return self._by_addr.get(addr) or _node(addr, addr)

    def config(self) -> tuple[PartitionConfig, ...]:
        return partitions_of(query_config(self.spec.meta_addr, self.table,
                                          timeout_s=QUERY_TIMEOUT_S))

    def problems(self) -> list[str]:
        return status_problems(self.driver.status(), self.spec.replicas)

    def observer(self) -> MetaObserver:
        return LogTailObserver(self.spec.node_dir(META_NODE) / CONFIG_LOG)


class ExternalCluster:
    """A real cluster reached through ``meta`` addresses (see the module docstring)."""

    def __init__(self, meta: Iterable[str], table: str, *, replicas: int, replica_nodes: int):
        self.meta = list(meta)
        self.table = table
        self.replicas = replicas
        self.replica_nodes = replica_nodes
        self._nodes: dict[str, Node] | None = None

    @classmethod
    def from_config(cls, cluster: ClusterConfig) -> ExternalCluster:
        return cls(cluster.meta, cluster.table, replicas=cluster.replicas,
                   replica_nodes=cluster.replica_nodes)

    def _names(self) -> dict[str, Node]:
        if self._nodes is None:
            addrs = {a for p in self.config() for a in (p.primary, *p.secondaries) if a}
            ordered = sorted(addrs, key=_addr_key)
            self._nodes = {name: _node(name, addr)
                           for name, addr in zip(replica_names(len(ordered)), ordered)}
        return self._nodes

    def node(self, name: str) -> Node | None:
        return self._names().get(name)

    def node_at(self, addr: str) -> Node:
        return next((n for n in self._names().values() if n.addr == addr), None) \
            or _node(addr, addr)

    def config(self) -> tuple[PartitionConfig, ...]:
        return partitions_of(query_config(self.meta, self.table, timeout_s=QUERY_TIMEOUT_S))

    def problems(self) -> list[str]:
        return config_problems(self.config(), self.replicas)

    def observer(self) -> MetaObserver:
        return PollingObserver(self.meta, self.table)


def _addr_key(addr: str) -> tuple[int, str, int]:
    host, port = parse_addr(addr)
    try:
        return int(ipaddress.ip_address(host)), "", port
    except ValueError:  # a host name
        return -1, host, port


def cluster_view(cluster: ClusterConfig, *, onebox: Any = None) -> ClusterView:
    """The view of a profile's ``[cluster]``: the onebox ``onebox`` drives, or the metas."""
    if cluster.mode == "onebox":
        if onebox is None:
            raise ValueError("cluster.mode = 'onebox' needs the onebox (Onebox or OneboxControl)")
        return OneboxCluster(onebox)
    return ExternalCluster.from_config(cluster)


class Resolution(NamedTuple):
    """A target resolved at inject time: the node (None: skip, ``reason`` says why) and the
    config the meta gave just before (None if it did not answer)."""

    node: Node | None
    config: tuple[PartitionConfig, ...] | None
    reason: str


def resolve_target(cluster: ClusterView, target: PlannedTarget) -> Resolution:
    """The node ``target`` names now: ``primary-of:P`` / ``secondary-of:P`` ask the meta (no
    such member: none); a node name maps to its address. Blocks (a config query)."""
    try:
        config = cluster.config()
    except Exception as exc:  # noqa: BLE001 - a node target does without it
        if isinstance(target, (PrimaryOf, SecondaryOf)):
            return Resolution(None, None, f"{target}: the meta did not answer ({exc})")
        config = None
    if isinstance(target, NodeTarget):
        node = cluster.node(target.node)
        return Resolution(node, config, "" if node else f"no node named {target.node}")
    assert config is not None
    part = next((p for p in config if p.pidx == target.partition), None)
    if part is None:
        return Resolution(None, config, f"{target}: the table has no partition {target.partition}")
    if isinstance(target, SecondaryOf):
        if not part.secondaries:
            return Resolution(None, config,
                              f"{target}: partition {target.partition} has no secondary")
        return Resolution(cluster.node_at(sorted(part.secondaries)[0]), config, "")
    if not part.primary:
        return Resolution(None, config, f"{target}: partition {target.partition} has no primary")
    return Resolution(cluster.node_at(part.primary), config, "")
