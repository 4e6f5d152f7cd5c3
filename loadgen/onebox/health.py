"""Onebox health: what keeps a cluster from being healthy, and its status document.

Pure functions over node snapshots and the meta's partition config, so the rules are tested
without processes. A cluster is healthy when every node runs and every partition has an alive
primary and ``replicas - 1`` alive secondaries (a paused node is not alive: it serves nobody).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

RUNNING, PAUSED, DEAD = "running", "paused", "dead"


@dataclass(frozen=True)
class NodeInfo:
    """A snapshot of one node: ``state`` is running, paused or dead; ``pid`` None if never run."""

    name: str
    addr: str
    pid: int | None
    state: str


def problems(nodes: Iterable[NodeInfo], replicas: int, cfg: Any,
             meta_error: str | None = None) -> list[str]:
    """Everything that keeps the cluster from being healthy; empty when healthy.

    ``cfg`` is the meta's ``query_cfg_response`` or None when it could not be read (then
    ``meta_error`` says why, if the meta was asked at all).
    """
    nodes = list(nodes)
    found = [f"{n.name} {n.state}" for n in nodes if n.state != RUNNING]
    if meta_error:
        found.append(meta_error)
    if cfg is None:
        return found or ["partition config unknown"]
    alive = {n.addr for n in nodes if n.state == RUNNING}
    want = replicas - 1
    for p in cfg.partitions:
        idx, primary = p.pid.partition_index, str(p.primary)
        if primary not in alive:
            found.append(f"partition {idx}: no alive primary ({primary or 'none'})")
        live_secs = [s for s in _secondaries(p) if s in alive]
        if len(live_secs) < want:
            found.append(f"partition {idx}: {len(live_secs)} of {want} secondaries alive")
    return found


def status_document(*, dir: str, supervisor_pid: int, meta: str, nodes: Iterable[NodeInfo],
                    cfg: Any, healthy: bool,
                    dropped_expired: Mapping[str, int | None] | None = None) -> dict:
    """The JSON document of DESIGN.md ("Outputs"). With no config (meta dead, paused or not
    answering) ``app_id`` and ``partition_count`` are None and ``partitions`` is empty.

    Each node also carries ``dropped_expired``: the client requests it dropped because they
    expired in its queue (node name -> count in ``dropped_expired``), None where unknown (the
    meta, a paused or dead node, one that did not answer).
    """
    dropped_expired = dropped_expired or {}
    partitions = [{"pidx": p.pid.partition_index, "ballot": p.ballot,
                   "primary": str(p.primary), "secondaries": _secondaries(p),
                   "last_committed_decree": p.last_committed_decree}
                  for p in (cfg.partitions if cfg is not None else [])]
    return {"dir": dir, "supervisor_pid": supervisor_pid, "meta": meta,
            "app_id": cfg.app_id if cfg is not None else None,
            "partition_count": cfg.partition_count if cfg is not None else None,
            "healthy": healthy,
            "nodes": [{"name": n.name, "addr": n.addr, "pid": n.pid, "state": n.state,
                       "dropped_expired": dropped_expired.get(n.name)} for n in nodes],
            "partitions": partitions}


def _secondaries(partition: Any) -> list[str]:
    return [str(s) for s in partition.secondaries or []]
