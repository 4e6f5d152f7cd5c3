"""The replica server node: serves client ops and prepares, beacons the meta, holds the lease.

Client requests are routed by the header's gpid. Every one is checked inline, in this order:
the partition is hosted (else ERR_OBJECT_NOT_FOUND), the lease from the meta is still valid
and this replica is primary (else ERR_INVALID_STATE). The lease is the send time of the last
beacon the meta accepted + ``lease - check`` (Pegasus's worker rule), so a primary that was
SIGSTOPped answers ERR_INVALID_STATE even to requests queued while it was stopped.

With the spec's ``drop_expired`` (off by default, as in Pegasus's shipped config), a client op
that waited in the node's queue (since :attr:`Connection.read_at`) at least its header's
``client_timeout`` is dropped unanswered before anything else, and counted (rDSN's
``rpc_request_dropped_before_execution_when_timeout``). As in rDSN (``rpc_request_task::exec``
runs a handler only while its wait is under ``timeout_ms``), a ``client_timeout`` of 0 — what
the official Python client sends — is always dropped when the option is on.
Internal RPCs are never dropped. The count is served by ``RPC_ONEBOX_NODE_STATS``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gevent

from ..pegasus import codec
from .client_ops import READ_RPCS, WRITE_RPCS, MalformedRequest, Ops
from .gen.onebox import ttypes as ob
from .internal_rpc import (
    RPC_BEACON,
    RPC_CONFIG_PROPOSAL,
    RPC_MEMBER_CHANGE,
    RPC_NODE_STATS,
    RPC_PREPARE,
    well_formed,
)
from .peer import PeerPool
from .replica import PRIMARY, PartitionReplica
from .rpc_server import Connection, FrameServer
from .spec import OneboxSpec
from .storage import PartitionLog

log = logging.getLogger(__name__)

#: Pegasus's prepare timeout; shortened with short FD timings so failures are noticed in time.
PREPARE_TIMEOUT_S = 3.0


class ReplicaServer:
    """One replica node: partitions, client ops, internal RPCs and the beacon loop."""

    def __init__(self, spec: OneboxSpec, name: str, data_dir: Path):
        self.spec = spec
        self.name = name
        self.me = spec.nodes[name]
        self.app_id = spec.app_id
        self.min_replicas = spec.min_replicas
        self.checkpoint_every = spec.checkpoint_every
        self.learn_chunk_bytes = spec.learn_chunk_bytes
        self.prepare_timeout_s = min(PREPARE_TIMEOUT_S, spec.fd.grace_s)
        self.data_dir = data_dir
        self.incarnation = time.time_ns()
        self.peers = PeerPool()
        self.ops = Ops(spec.app_id, self.me)
        self.lease_until = 0.0
        self.drop_expired = spec.drop_expired
        #: client requests dropped unanswered because they expired in the queue
        self.dropped_expired = 0
        self.partitions: dict[int, PartitionReplica] = {}
        for pdir in sorted(data_dir.glob("p*")):
            if pdir.name[1:].isdigit():
                self._host(int(pdir.name[1:]))
        port = int(self.me.rpartition(":")[2])
        self.server = FrameServer(spec.host, port, self.handle, name)
        self._handlers = {RPC_PREPARE: self._on_prepare, RPC_CONFIG_PROPOSAL: self._on_proposal,
                          RPC_NODE_STATS: self._on_stats}
        self._beacons: gevent.Greenlet | None = None

    def _host(self, pidx: int) -> PartitionReplica:
        replica = self.partitions.get(pidx)
        if replica is None:
            replica = PartitionReplica(self, pidx, PartitionLog(self.data_dir / f"p{pidx}"))
            self.partitions[pidx] = replica
        return replica

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        self.server.start()
        self._beacons = gevent.spawn(self._beacon_loop)
        return self.me

    def stop(self) -> None:
        if self._beacons is not None:
            self._beacons.kill()
        self.server.stop(timeout=1)
        self.peers.close()
        for replica in self.partitions.values():
            replica.log.close()

    # ------------------------------------------------------------------ dispatch
    def handle(self, conn: Connection, req: codec.RequestFrame) -> bytes | None:
        rpc = req.rpc_name
        if rpc in WRITE_RPCS or rpc in READ_RPCS:
            return self._client_op(conn, req)
        handler = self._handlers.get(rpc)
        if handler is None:
            return codec.encode_response(rpc, req.seqid, "ERR_HANDLER_NOT_FOUND")
        if not well_formed(req.args, self.spec.partitions):
            conn.complain(self.name, f"incomplete or out-of-range {rpc}")
            return codec.encode_response(rpc, req.seqid, "ERR_INVALID_PARAMETERS")
        return codec.encode_response(rpc, req.seqid, "ERR_OK", handler(req.args))

    def _expired(self, conn: Connection, req: codec.RequestFrame) -> bool:
        """True if ``req`` waited in the queue for its whole client_timeout (rDSN's check in
        rpc_request_task::exec: a handler starts only while ``now - enqueued < timeout_ms``,
        so a timeout of 0 has always expired)."""
        return time.monotonic() - conn.read_at >= req.client_timeout_ms / 1000

    def _client_op(self, conn: Connection, req: codec.RequestFrame) -> bytes | None:
        if self.drop_expired and self._expired(conn, req):
            self.dropped_expired += 1  # unanswered: the client has given up on it already
            return None
        rpc, seqid, pidx = req.rpc_name, req.seqid, req.partition_index
        replica = self.partitions.get(pidx) if req.app_id == self.app_id else None
        if replica is None:
            return codec.encode_response(rpc, seqid, "ERR_OBJECT_NOT_FOUND")
        if time.monotonic() >= self.lease_until:
            return codec.encode_response(rpc, seqid, "ERR_INVALID_STATE")
        if rpc in READ_RPCS:
            if not replica.can_read():
                return codec.encode_response(rpc, seqid, "ERR_INVALID_STATE")
            try:
                result = self.ops.read(rpc, req.args, pidx, replica.store)
            except MalformedRequest as exc:
                conn.complain(self.name, f"malformed {rpc} ({exc})")
                return codec.encode_response(rpc, seqid, "ERR_INVALID_PARAMETERS")
            return codec.encode_response(rpc, seqid, "ERR_OK", result)
        refusal = replica.can_write()
        if refusal is not None:
            return codec.encode_response(rpc, seqid, refusal)
        try:
            mutation, finish = self.ops.plan_write(rpc, req.args, pidx)
        except MalformedRequest as exc:
            # Refused before it is logged: a mutation that cannot be applied would wedge the
            # partition on every member, and again at every replay.
            conn.complain(self.name, f"malformed {rpc} ({exc})")
            return codec.encode_response(rpc, seqid, "ERR_INVALID_PARAMETERS")
        if mutation is None:
            return codec.encode_response(rpc, seqid, "ERR_OK", finish(0, 0))

        def reply(error: str, decree: int, removed: int) -> None:
            if error == "ERR_OK" and time.monotonic() >= self.lease_until:
                # Committed, but this primary may have been replaced while it waited (e.g. it
                # was SIGSTOPped with the acks in its socket): a stale primary never acks.
                error = "ERR_TIMEOUT"
            result = finish(decree, removed) if error == "ERR_OK" else None
            conn.send(codec.encode_response(rpc, seqid, error, result))

        replica.write(mutation, reply)
        return None

    def _on_prepare(self, req: ob.prepare_request) -> ob.prepare_response:
        return self._host(req.pidx).on_prepare(req)

    def _on_stats(self, req: ob.node_stats_request) -> ob.node_stats_response:
        return ob.node_stats_response(dropped_expired=self.dropped_expired)

    def _on_proposal(self, req: ob.config_proposal) -> ob.empty_response:
        self._apply_configs(req.configs)
        return ob.empty_response()

    def _apply_configs(self, configs: list[ob.partition_membership]) -> None:
        for cfg in configs:
            named = cfg.primary == self.me or self.me in cfg.secondaries or self.me in cfg.learners
            if named:
                self._host(cfg.pidx).apply_config(cfg)
            elif cfg.pidx in self.partitions:
                self.partitions[cfg.pidx].apply_config(cfg)

    # ------------------------------------------------------------------ meta
    def request_member_change(self, pidx: int, ballot: int, node: str, action: str) -> None:
        """Ask the meta to ``remove`` a failed member or ``upgrade`` a caught-up learner."""
        req = ob.member_change_request(pidx=pidx, ballot=ballot, requester=self.me, node=node,
                                       action=action)

        def done(reply, err) -> None:
            if err is None and reply.error == "ERR_OK" and reply.result.config is not None:
                self._apply_configs([reply.result.config])
            elif err is not None:
                log.warning("member change %s %s of partition %d failed: %s", action, node, pidx, err)
                replica = self.partitions.get(pidx)
                if replica is not None and replica.role == PRIMARY and node in replica.members:
                    # Until the meta hears it, commits may wait on that member: keep asking.
                    gevent.spawn_later(self.spec.fd.beacon_s, self.request_member_change,
                                       pidx, replica.ballot, node, action)

        self.peers.get(self.spec.meta_addr).call_async(RPC_MEMBER_CHANGE, req, done,
                                                       self.spec.fd.lease_s)

    def _beacon_loop(self) -> None:
        fd = self.spec.fd
        meta = self.peers.get(self.spec.meta_addr)
        while True:
            sent = time.monotonic()
            req = ob.beacon_request(node=self.me, incarnation=self.incarnation,
                                    reports=[r.report() for r in self.partitions.values()])
            meta.call_async(RPC_BEACON, req, lambda r, e, sent=sent: self._on_beacon_ack(sent, r, e),
                            fd.lease_s)
            gevent.sleep(max(0.0, sent + fd.beacon_s - time.monotonic()))

    def _on_beacon_ack(self, sent: float, reply, err) -> None:
        if err is not None or reply.error != "ERR_OK" or not reply.result.accepted:
            return
        # Roles first: a node the meta gave up on is demoted before its lease is renewed.
        self._apply_configs(reply.result.configs)
        fd = self.spec.fd
        self.lease_until = max(self.lease_until, sent + fd.lease_s - fd.check_s)
