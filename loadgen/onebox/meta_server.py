"""The meta server: partition configs, the failure detector and the guardian that repairs them.

State lives in memory (a onebox meta is never restarted on its own). Replicas beacon with an
incarnation id; a node is declared dead only when its beacons stop for ``grace_s`` (checked
every ``check_s``), never because a TCP connection closed. A new incarnation is a new life:
the old one is first handled as a death. Every config change bumps the ballot by one and is
appended to the JSON-lines config log; changed configs are pushed to every alive node, and
each beacon ack carries all configs as well so a missed push heals by itself.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import gevent

from ..pegasus import codec
from ..pegasus.gen.replication import ttypes as replication
from ..pegasus.rdsn.ttypes import error_code, gpid, rpc_address
from .gen.onebox import ttypes as ob
from .internal_rpc import (
    RPC_BEACON,
    RPC_CONFIG_PROPOSAL,
    RPC_MEMBER_CHANGE,
    well_formed,
)
from .peer import PeerPool
from .rpc_server import Connection, FrameServer
from .spec import CONFIG_LOG, QUERY_LOG, OneboxSpec

log = logging.getLogger(__name__)


@dataclass
class NodeState:
    incarnation: int
    last_beacon: float
    alive: bool = True
    removed_at: dict[int, float] = field(default_factory=dict)  # pidx -> when a primary dropped it


@dataclass
class PartitionState:
    pidx: int
    ballot: int = 0
    primary: str = ""
    secondaries: list[str] = field(default_factory=list)
    learners: list[str] = field(default_factory=list)
    last_drops: list[str] = field(default_factory=list)
    last_committed: int = 0
    last_prepared: dict[str, int] = field(default_factory=dict)  # node -> from its beacons

    @property
    def members(self) -> list[str]:
        return ([self.primary] if self.primary else []) + self.secondaries + self.learners

    def membership(self) -> ob.partition_membership:
        return ob.partition_membership(pidx=self.pidx, ballot=self.ballot, primary=self.primary,
                                       secondaries=list(self.secondaries), learners=list(self.learners))


class MetaServer:
    """The single meta node of a onebox."""

    def __init__(self, spec: OneboxSpec, data_dir: Path):
        self.spec = spec
        self.fd = spec.fd
        self.replica_addrs = [spec.nodes[n] for n in spec.replica_names]
        self.nodes: dict[str, NodeState] = {}
        self.partitions = [PartitionState(i) for i in range(spec.partitions)]
        self.assigned = False
        self.peers = PeerPool()
        self._changed: set[int] = set()
        self._log_file = open(data_dir / CONFIG_LOG, "a")  # noqa: SIM115 - open for the server's life
        # line-buffered: a reader counting a client's queries sees each within a moment
        self._query_log = open(data_dir / QUERY_LOG, "a", buffering=1)  # noqa: SIM115
        self.server = FrameServer(spec.host, spec.meta_port, self.handle, "meta1")
        self._checker: gevent.Greenlet | None = None

    def start(self) -> str:
        self.server.start()
        self._checker = gevent.spawn(self._check_loop)
        return self.spec.meta_addr

    def stop(self) -> None:
        if self._checker is not None:
            self._checker.kill()
        self.server.stop(timeout=1)
        self.peers.close()
        self._log_file.close()
        self._query_log.close()

    # ------------------------------------------------------------------ RPCs
    def handle(self, conn: Connection, req: codec.RequestFrame) -> bytes:
        rpc = req.rpc_name
        if rpc == codec.RPC_QUERY_CONFIG:
            self._query_log.write(f'{{"t": {time.monotonic():.6f}, "peer": "{conn.peer}"}}\n')
            result = self._query_config(req.args)
        elif rpc not in (RPC_BEACON, RPC_MEMBER_CHANGE):
            return codec.encode_response(rpc, req.seqid, "ERR_HANDLER_NOT_FOUND")
        elif not well_formed(req.args, len(self.partitions)):
            conn.complain("meta1", f"incomplete or out-of-range {rpc}")
            return codec.encode_response(rpc, req.seqid, "ERR_INVALID_PARAMETERS")
        elif rpc == RPC_BEACON:
            result = self._on_beacon(req.args)
        else:
            result = self._on_member_change(req.args)
        self._publish()
        return codec.encode_response(rpc, req.seqid, "ERR_OK", result)

    def _query_config(self, req: replication.query_cfg_request) -> replication.query_cfg_response:
        if req.app_name != self.spec.table:
            return replication.query_cfg_response(err=error_code("ERR_OBJECT_NOT_FOUND"), app_id=0,
                                                  partition_count=0, is_stateful=False, partitions=[])
        if not self.assigned:
            return replication.query_cfg_response(err=error_code("ERR_SERVICE_NOT_ACTIVE"), app_id=0,
                                                  partition_count=0, is_stateful=False, partitions=[])
        wanted = [i for i in (req.partition_indices or []) if isinstance(i, int)
                  and 0 <= i < len(self.partitions)]
        chosen = [self.partitions[i] for i in wanted] or self.partitions
        app_id = self.spec.app_id
        configs = [replication.partition_configuration(
            pid=gpid(app_id, p.pidx), ballot=p.ballot, max_replica_count=self.spec.replicas,
            primary=rpc_address.from_string(p.primary) if p.primary else rpc_address(),
            secondaries=[rpc_address.from_string(s) for s in p.secondaries],
            last_drops=[rpc_address.from_string(s) for s in p.last_drops],
            last_committed_decree=p.last_committed) for p in chosen]
        return replication.query_cfg_response(err=error_code("ERR_OK"), app_id=app_id,
                                              partition_count=len(self.partitions),
                                              is_stateful=True, partitions=configs)

    def _on_beacon(self, req: ob.beacon_request) -> ob.beacon_response:
        node, now = req.node, time.monotonic()
        if node not in self.replica_addrs:
            return ob.beacon_response(accepted=False, configs=[])
        st = self.nodes.get(node)
        if st is not None and st.alive and now - st.last_beacon > self.fd.grace_s:
            self._node_dead(node, "beacons stopped for the grace period")
        if st is None or st.incarnation != req.incarnation:
            if st is not None and st.alive:
                self._node_dead(node, "restarted with a new incarnation")
            log.info("node %s up (incarnation %d)", node, req.incarnation)
            st = self.nodes[node] = NodeState(req.incarnation, now)
        elif not st.alive:
            log.info("node %s is beaconing again", node)
            st.alive = True
        st.last_beacon = now
        for r in req.reports:  # well_formed() checked every pidx
            p = self.partitions[r.pidx]
            p.last_prepared[node] = r.last_prepared
            if node == p.primary and r.ballot == p.ballot:
                p.last_committed = max(p.last_committed, r.last_committed)
        if not self.assigned and all(self._alive(a) for a in self.replica_addrs):
            self._assign()
        self._guard()
        return ob.beacon_response(accepted=True, configs=[p.membership() for p in self.partitions])

    def _on_member_change(self, req: ob.member_change_request) -> ob.member_change_response:
        p = self.partitions[req.pidx]  # well_formed() checked it
        if req.requester != p.primary or req.ballot > p.ballot:
            return ob.member_change_response(err="not_primary", config=p.membership())
        # Both actions only for the current ballot. A stale remove could evict a node's new
        # life (re-added as a learner since) and bar it for the grace period; the primary
        # asks again at the new ballot, as it resets a member's failure on every config.
        if req.ballot != p.ballot:
            return ob.member_change_response(err="stale", config=p.membership())
        if req.action == "remove" and req.node in p.secondaries + p.learners:
            for group in (p.secondaries, p.learners):
                if req.node in group:
                    group.remove(req.node)
            st = self.nodes.get(req.node)
            if st is not None:
                st.removed_at[p.pidx] = time.monotonic()
            self._change(p, f"primary removed {req.node}: its prepare failed")
            self._guard()
        elif req.action == "upgrade" and req.node in p.learners:
            # A learner removed and re-added since the primary saw it catch up is a new life:
            # as a secondary it could be promoted while still missing committed writes.
            p.learners.remove(req.node)
            p.secondaries.append(req.node)
            self._change(p, f"learner {req.node} caught up: now a secondary")
        return ob.member_change_response(err="ok", config=p.membership())

    # ------------------------------------------------------------------ decisions
    def _alive(self, addr: str) -> bool:
        st = self.nodes.get(addr)
        return st is not None and st.alive

    def _change(self, p: PartitionState, reason: str) -> None:
        p.ballot += 1
        self._changed.add(p.pidx)
        record = {"t_wall": time.time(), "t_mono": time.monotonic(), "pidx": p.pidx,
                  "ballot": p.ballot, "primary": p.primary, "secondaries": list(p.secondaries),
                  "learners": list(p.learners), "reason": reason}
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()
        log.info("config change: %s", record)

    def _assign(self) -> None:
        n, k = len(self.replica_addrs), self.spec.replicas
        for p in self.partitions:
            nodes = [self.replica_addrs[(p.pidx + j) % n] for j in range(k)]
            p.primary, p.secondaries = nodes[0], nodes[1:]
            self._change(p, "initial assignment")
        self.assigned = True

    def _node_dead(self, node: str, why: str) -> None:
        self.nodes[node].alive = False
        log.warning("node %s declared dead: %s", node, why)
        for p in self.partitions:
            if p.primary == node:
                p.primary = ""
                p.last_drops = [d for d in p.last_drops if d != node] + [node]
                # Learners stream from the primary only: without one they can never catch up,
                # and a new primary adds learners of its own.
                p.learners = []
                self._change(p, f"downgrade: primary {node} dead ({why})")
            elif node in p.secondaries:
                p.secondaries.remove(node)
                p.last_drops = [d for d in p.last_drops if d != node] + [node]
                self._change(p, f"remove dead secondary {node} ({why})")
            elif node in p.learners:
                p.learners.remove(node)
                self._change(p, f"remove dead learner {node} ({why})")
        self._guard()

    def _primary_counts(self) -> dict[str, int]:
        counts = {a: 0 for a in self.replica_addrs}
        for p in self.partitions:
            if p.primary:
                counts[p.primary] += 1
        return counts

    def _guard(self) -> None:
        """Give every partition a primary and enough members, as far as alive nodes allow."""
        if not self.assigned:
            return
        now = time.monotonic()
        for p in self.partitions:
            if not p.primary:
                candidates = [s for s in p.secondaries if self._alive(s)]
                reason = "promote the most up-to-date secondary"
                if not candidates and not p.secondaries and p.last_drops:
                    # Only the member dropped last holds every acknowledged write: the others
                    # left while the rest went on committing. Wait for it to come back.
                    last = p.last_drops[-1]
                    candidates = [last] if self._alive(last) else []
                    reason = "no secondary left: recover from the last member dropped"
                if candidates:
                    counts = self._primary_counts()
                    best = max(candidates, key=lambda a: (p.last_prepared.get(a, 0), -counts[a]))
                    if best in p.secondaries:
                        p.secondaries.remove(best)
                    p.primary = best
                    self._change(p, f"{reason}: {best}")
            if not p.primary or len(p.members) >= self.spec.replicas:
                continue
            spares = [a for a in self.replica_addrs if a not in p.members and self._alive(a)
                      and now - self.nodes[a].removed_at.get(p.pidx, -1e9) > self.fd.grace_s]
            if spares:
                learner = min(spares, key=lambda a: sum(a in q.members for q in self.partitions))
                p.learners.append(learner)
                self._change(p, f"add {learner} as a learner")

    def _publish(self) -> None:
        """Push changed configs to every alive node (fire and forget: beacons repair losses)."""
        if not self._changed:
            return
        proposal = ob.config_proposal(configs=[self.partitions[i].membership() for i in sorted(self._changed)])
        self._changed.clear()
        for addr in self.replica_addrs:
            if self._alive(addr):
                self.peers.get(addr).call_async(RPC_CONFIG_PROPOSAL, proposal, lambda r, e: None,
                                                self.fd.lease_s)

    def _check_loop(self) -> None:
        while True:
            gevent.sleep(self.fd.check_s)
            try:
                self._check()
            except Exception:  # a bug in one round must not stop the failure detector
                log.exception("meta: failure-detector round failed; continuing")

    def _check(self) -> None:
        now = time.monotonic()
        for addr, st in list(self.nodes.items()):
            if st.alive and now - st.last_beacon > self.fd.grace_s:
                self._node_dead(addr, "beacons stopped for the grace period")
        self._guard()
        self._publish()
