"""The cluster a run drives (:class:`Cluster`) and the cluster as the fault controller sees it
(:class:`ClusterView`: node names and addresses, configs, health).

Two kinds, chosen once by the runner; nothing else knows which one runs:

* the onebox — :class:`loadgen.onebox.cluster.OneboxCluster`;
* :class:`ExternalCluster` — a real cluster known only through its metas; healthy when every
  partition has a primary and the configured replica count; observed by polling the meta;
  faults by the ``command`` injector (or none). Node names: the replica addresses the meta
  reports at first use, sorted by host and port, are ``replica1``, ``replica2``, ...; an
  address seen only later is named by itself.

Every :class:`ClusterView` method may block (the controller calls them through
:func:`~loadgen.faults.cooperative.run_blocking`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from ..config.schema import ClusterConfig, InjectorConfig
from ..config.targets import NodeTarget, PlannedTarget, PrimaryOf, SecondaryOf, replica_names
from ..pegasus.addr import parse_addr
from ..pegasus.blocking import query_config
from . import injectors
from .injector import Injector, Node
from .observer import MetaObserver, PollingObserver

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


class Cluster(Protocol):
    """A cluster a run drives (Jepsen's DB): where the load goes, what the fault controller
    sees, how faults reach it, what it leaves in the run folder."""

    #: meta server addresses, ``host:port``
    meta: tuple[str, ...]
    #: The meta's log of config queries by peer (a onebox's), from which a real client's meta
    #: queries are counted; None where the cluster keeps none.
    meta_query_log: Path | None

    def view(self) -> ClusterView:
        """The cluster as the fault controller sees it."""
        ...

    def injector(self, config: InjectorConfig) -> Injector:
        """The injector the profile's ``[injector]`` names, for this cluster (ConfigError if
        this cluster cannot have it)."""
        ...

    def save_logs(self, out_dir: Path) -> None:
        """Copy the cluster's own records of the run (e.g. a meta's config log) to ``out_dir``."""
        ...

    def stop(self) -> None:
        """Stop what was started for the run (nothing, for a cluster someone else runs)."""
        ...


class ExternalCluster:
    """A real cluster reached through ``meta`` addresses (see the module docstring); both a
    :class:`Cluster` and its :class:`ClusterView`."""

    def __init__(self, meta: Iterable[str], table: str, *, replicas: int, replica_nodes: int):
        self.meta = tuple(meta)
        self.meta_query_log: Path | None = None   # an external meta keeps no query log
        self.table = table
        self.replicas = replicas
        self.replica_nodes = replica_nodes
        self._nodes: dict[str, Node] | None = None

    @classmethod
    def from_config(cls, cluster: ClusterConfig) -> ExternalCluster:
        return cls(cluster.meta, cluster.table, replicas=cluster.replicas,
                   replica_nodes=cluster.replica_nodes)

    def view(self) -> ClusterView:
        return self

    def injector(self, config: InjectorConfig) -> Injector:
        return injectors.create(config.kind, injectors.InjectorContext(config=config))

    def save_logs(self, out_dir: Path) -> None:
        """Nothing: the observer's polls are in the fault records."""

    def stop(self) -> None:
        """Nothing: someone else runs this cluster."""

    def _names(self) -> dict[str, Node]:
        if self._nodes is None:
            addrs = {a for p in self.config() for a in (p.primary, *p.secondaries) if a}
            ordered = sorted(addrs, key=_addr_key)
            self._nodes = {name: Node.at(name, addr)
                           for name, addr in zip(replica_names(len(ordered)), ordered)}
        return self._nodes

    def node(self, name: str) -> Node | None:
        return self._names().get(name)

    def node_at(self, addr: str) -> Node:
        return next((n for n in self._names().values() if n.addr == addr), None) \
            or Node.at(addr, addr)

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
