"""Test cluster: fake Pegasus metas and replicas on loopback, in this process, built on the codec.

Real sockets on 127.0.0.1 free ports (gevent ``StreamServer``), not a mock of the client. One
in-memory store backs every replica, so moving a primary keeps the data. Each address can be
told how to behave (:data:`MODES`):

* ``ok``            — answer normally;
* ``close``         — drop every connection abruptly (RST), now and at each new request;
* ``hang``          — keep connections open and read requests, but never answer;
* ``invalid_state`` — answer every request with ``ERR_INVALID_STATE``;
* ``reply:<NAME>``  — answer every request with error name NAME (e.g. ``reply:ERR_BUSY``);
* ``slow:<S>``      — alive but slow: serve each request at once, answer it S seconds later;
* ``pause``         — a SIGSTOPped node: connections stay open, nothing is read; on leaving
  this mode every request that waited in the socket is served, in order;
* ``down``          — a crashed node: connections reset, new connects refused.

:meth:`TestCluster.reset` drops an address's connections once (it keeps serving), and
:meth:`TestCluster.writes` counts the writes each address executed.

The meta serves the partition config; non-leader metas answer ``ERR_FORWARD_TO_OTHERS`` naming
the leader. A replica that is not the partition's primary answers ``ERR_INVALID_STATE``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

import gevent
from gevent.event import Event
from gevent.server import StreamServer

from ..errors import ProtocolError
from ..pegasus import codec, error_codes, keys, ttl
from ..pegasus.addr import parse_addr
from ..pegasus.gen.replication import ttypes as replication
from ..pegasus.gen.rrdb import ttypes as rrdb
from ..pegasus.outcome import ATTEMPT, OP, Outcome
from ..pegasus.rdsn.ttypes import blob, error_code, gpid, rpc_address

MODES = ("ok", "close", "hang", "invalid_state", "pause", "down")
_STORAGE_NOT_FOUND = 1  # RocksDB kNotFound, carried in the response struct's ``error``


@dataclass
class _Endpoint:
    """One listening address and its behaviour."""

    addr: str
    role: str  # "meta" | "replica"
    mode: str = "ok"
    server: StreamServer | None = None
    sockets: set = field(default_factory=set)
    requests: int = 0
    connections: int = 0
    writes: int = 0
    last_request: codec.RequestFrame | None = None
    running: Event = field(default_factory=Event)  # clear while paused

    def __post_init__(self) -> None:
        self.running.set()


def _slow_delay(mode: str) -> float | None:
    """The reply delay of a ``slow:<S>`` mode, or None for any other mode."""
    prefix, _, seconds = mode.partition(":")
    if prefix != "slow":
        return None
    try:
        delay = float(seconds)
    except ValueError:
        return None
    return delay if delay >= 0 else None


def _reply_error(mode: str) -> str | None:
    """The error name of a ``reply:<NAME>`` mode, or None for any other mode."""
    prefix, _, name = mode.partition(":")
    if prefix == "reply" and name != "ERR_OK" and error_codes.is_decodable(name):
        return name
    return None


def _send_quietly(sock, data: bytes) -> None:
    """A late reply; the connection may be gone by then."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def _abort(sock) -> None:
    """Close with RST rather than FIN, as a crashed process's kernel would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class TestCluster:
    """Metas and replicas for one table, all primaries on the first replica at start."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, replicas: int = 2, metas: int = 1, partitions: int = 4,
                 table: str = "temp", app_id: int = 1):
        keys.check_partition_count(partitions)
        self.table, self.app_id, self.partition_count = table, app_id, partitions
        self._endpoints: dict[str, _Endpoint] = {}
        self._roles = ["meta"] * metas + ["replica"] * replicas
        self.meta_addrs: list[str] = []
        self.replica_addrs: list[str] = []
        self.leader = ""
        self._primaries: list[str] = []
        self._ballots = [1] * partitions
        self._decrees = [0] * partitions
        # hash_key -> sort_key -> (value, expire_ts)
        self.data: dict[bytes, dict[bytes, tuple[bytes, int]]] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TestCluster:
        """Bind every address on a free port and start serving."""
        for role in self._roles:
            ep = _Endpoint("", role)
            ep.server = self._listen(ep, ("127.0.0.1", 0))
            ep.addr = f"127.0.0.1:{ep.server.server_port}"
            self._endpoints[ep.addr] = ep
            (self.meta_addrs if role == "meta" else self.replica_addrs).append(ep.addr)
        self.leader = self.meta_addrs[0] if self.meta_addrs else ""
        self._primaries = [self.replica_addrs[0]] * self.partition_count
        return self

    def stop(self) -> None:
        """Stop every listener and reset every connection."""
        for ep in self._endpoints.values():
            self._kill_connections(ep)
            if ep.server is not None:
                ep.server.stop(timeout=1)
                ep.server = None

    def __enter__(self) -> TestCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ control

    def set_mode(self, addr: str, mode: str) -> None:
        """Change how ``addr`` behaves (see :data:`MODES`); takes effect at once."""
        if mode not in MODES and _reply_error(mode) is None and _slow_delay(mode) is None:
            raise ValueError(f"mode must be one of {MODES}, 'reply:<known error name>' or "
                             f"'slow:<seconds>', got {mode!r}")
        ep = self._endpoints[addr]
        was_down, ep.mode = ep.mode == "down", mode
        if mode == "pause":
            ep.running.clear()
        else:
            ep.running.set()
        if mode in ("close", "down"):
            self._kill_connections(ep)
        if mode == "down" and ep.server is not None:
            ep.server.stop(timeout=1)
            ep.server = None
        if was_down and mode != "down":
            ep.server = self._listen(ep, parse_addr(addr))

    def move_primary(self, pidx: int, addr: str | None) -> None:
        """Make ``addr`` (None: nobody) the primary of partition ``pidx``; the ballot goes up."""
        self._primaries[pidx] = addr or ""
        self._ballots[pidx] += 1

    def primary_of(self, pidx: int) -> str | None:
        """The address the meta names as primary of ``pidx`` (None: nobody)."""
        return self._primaries[pidx] or None

    def set_leader(self, addr: str) -> None:
        """The meta that answers; the others forward to it."""
        self.leader = addr

    def reset(self, addr: str) -> None:
        """Drop every connection of ``addr`` once, abruptly (RST); it keeps serving."""
        self._kill_connections(self._endpoints[addr])

    def writes(self, addr: str) -> int:
        """Writes (put, multi_put, remove) ``addr`` executed so far."""
        return self._endpoints[addr].writes

    def requests(self, addr: str) -> int:
        """Requests received by ``addr`` so far (answered or not)."""
        return self._endpoints[addr].requests

    def connections(self, addr: str) -> int:
        """Connections accepted by ``addr`` so far."""
        return self._endpoints[addr].connections

    def last_request(self, addr: str) -> codec.RequestFrame | None:
        """The last request ``addr`` decoded (requests it hung on or dropped are not decoded)."""
        return self._endpoints[addr].last_request

    def _listen(self, ep: _Endpoint, address: tuple[str, int]) -> StreamServer:
        server = StreamServer(address, lambda sock, _peer: self._handle(ep, sock))
        server.start()
        return server

    def _kill_connections(self, ep: _Endpoint) -> None:
        for sock in list(ep.sockets):
            _abort(sock)
        ep.sockets.clear()

    # ------------------------------------------------------------------ serving

    def _handle(self, ep: _Endpoint, sock) -> None:
        ep.connections += 1
        if ep.mode == "close":
            _abort(sock)
            return
        ep.sockets.add(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        splitter = codec.FrameSplitter("request")
        try:
            # Ends when the peer closes, a mode change resets the socket, or the bytes are bad.
            while True:
                ep.running.wait()  # paused: requests wait in the socket, as with SIGSTOP
                data = sock.recv(codec.RECV_BYTES)
                if not data:
                    return
                replies = []
                for frame in splitter.feed(data):
                    ep.running.wait()
                    ep.requests += 1
                    if ep.mode == "close":
                        _abort(sock)
                        return
                    if ep.mode == "hang":
                        continue
                    req = ep.last_request = codec.decode_request(frame)
                    reply = self._answer(ep, req)
                    delay = _slow_delay(ep.mode)
                    if delay:
                        gevent.spawn_later(delay, _send_quietly, sock, reply)
                    else:
                        replies.append(reply)
                if replies:
                    sock.sendall(b"".join(replies))
        except (OSError, ProtocolError):
            return
        finally:
            ep.sockets.discard(sock)
            sock.close()

    def _answer(self, ep: _Endpoint, req: codec.RequestFrame) -> bytes:
        error = "ERR_INVALID_STATE" if ep.mode == "invalid_state" else _reply_error(ep.mode)
        if error is not None:
            return codec.encode_response(req.rpc_name, req.seqid, error)
        if ep.role == "meta":
            if req.rpc_name != codec.RPC_QUERY_CONFIG:
                return codec.encode_response(req.rpc_name, req.seqid, "ERR_HANDLER_NOT_FOUND")
            return codec.encode_response(req.rpc_name, req.seqid, "ERR_OK", self._config(ep, req.args))
        handler = _REPLICA_HANDLERS.get(req.rpc_name)
        if handler is None:
            return codec.encode_response(req.rpc_name, req.seqid, "ERR_HANDLER_NOT_FOUND")
        pidx = req.partition_index
        if req.app_id != self.app_id or not 0 <= pidx < self.partition_count:
            return codec.encode_response(req.rpc_name, req.seqid, "ERR_OBJECT_NOT_FOUND")
        if self._primaries[pidx] != ep.addr:
            return codec.encode_response(req.rpc_name, req.seqid, "ERR_INVALID_STATE")
        result = handler(self, req.args, pidx)
        if req.rpc_name in _WRITE_RPCS:
            ep.writes += 1
        result.app_id, result.partition_index, result.server = self.app_id, pidx, ep.addr
        return codec.encode_response(req.rpc_name, req.seqid, "ERR_OK", result)

    def _config(self, ep: _Endpoint, args) -> replication.query_cfg_response:
        if ep.addr != self.leader:
            leader = replication.partition_configuration(primary=rpc_address.from_string(self.leader))
            return replication.query_cfg_response(err=error_code("ERR_FORWARD_TO_OTHERS"),
                                                  partitions=[leader])
        if args.app_name != self.table:
            return replication.query_cfg_response(err=error_code("ERR_OBJECT_NOT_FOUND"))
        parts = [replication.partition_configuration(
            pid=gpid(self.app_id, i), ballot=self._ballots[i], max_replica_count=3,
            primary=rpc_address.from_string(p) if p else rpc_address(),
            secondaries=[rpc_address.from_string(a) for a in self.replica_addrs if a != p],
            last_drops=[], last_committed_decree=self._decrees[i])
            for i, p in enumerate(self._primaries)]
        return replication.query_cfg_response(
            err=error_code("ERR_OK"), app_id=self.app_id, partition_count=self.partition_count,
            is_stateful=True, partitions=parts)

    # ------------------------------------------------------------------ storage

    def _lookup(self, hash_key: bytes, sort_key: bytes) -> tuple[bytes, int] | None:
        item = self.data.get(hash_key, {}).get(sort_key)
        if item is None or ttl.is_expired(item[1]):
            return None
        return item

    def _write(self, pidx: int) -> rrdb.update_response:
        self._decrees[pidx] += 1
        return rrdb.update_response(error=0, decree=self._decrees[pidx])

    def _put(self, args, pidx):
        h, s = keys.split_key(args.key.data)
        self.data.setdefault(h, {})[s] = (args.value.data, args.expire_ts_seconds or 0)
        return self._write(pidx)

    def _multi_put(self, args, pidx):
        row = self.data.setdefault(args.hash_key.data, {})
        for kv in args.kvs:
            row[kv.key.data] = (kv.value.data, args.expire_ts_seconds or 0)
        return self._write(pidx)

    def _remove(self, args, pidx):
        h, s = keys.split_key(args.data)
        self.data.get(h, {}).pop(s, None)
        return self._write(pidx)

    def _get(self, args, _pidx):
        item = self._lookup(*keys.split_key(args.data))
        if item is None:
            return rrdb.read_response(error=_STORAGE_NOT_FOUND, value=blob(b""))
        return rrdb.read_response(error=0, value=blob(item[0]))

    def _multi_get(self, args, _pidx):
        h = args.hash_key.data
        wanted = [b.data for b in args.sort_keys or []] or sorted(self.data.get(h, {}))
        kvs = []
        for s in wanted:
            item = self._lookup(h, s)
            if item is not None:
                kvs.append(rrdb.key_value(key=blob(s), value=blob(item[0])))
        return rrdb.multi_get_response(error=0, kvs=kvs)

    def _ttl(self, args, _pidx):
        item = self._lookup(*keys.split_key(args.data))
        if item is None:
            return rrdb.ttl_response(error=_STORAGE_NOT_FOUND, ttl_seconds=0)
        return rrdb.ttl_response(error=0, ttl_seconds=ttl.ttl_left(item[1]))


class Recorder:
    """A client observer that keeps every :class:`~loadgen.pegasus.outcome.Outcome`."""

    def __init__(self):
        self.outcomes: list[Outcome] = []

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def ops(self) -> list[Outcome]:
        """The op-level outcomes, in order."""
        return [o for o in self.outcomes if o.level == OP]

    def attempts(self) -> list[Outcome]:
        """The attempt-level outcomes, in order."""
        return [o for o in self.outcomes if o.level == ATTEMPT]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.outcomes.clear()


_WRITE_RPCS = frozenset({codec.RPC_PUT, codec.RPC_MULTI_PUT, codec.RPC_REMOVE})
_REPLICA_HANDLERS = {
    codec.RPC_PUT: TestCluster._put,
    codec.RPC_MULTI_PUT: TestCluster._multi_put,
    codec.RPC_REMOVE: TestCluster._remove,
    codec.RPC_GET: TestCluster._get,
    codec.RPC_MULTI_GET: TestCluster._multi_get,
    codec.RPC_TTL: TestCluster._ttl,
}


def main(argv: list[str] | None = None) -> int:
    """Serve a cluster until killed; print the meta address, then each replica's, one a line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m loadgen.testing.cluster", description=main.__doc__)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args(argv)
    with TestCluster(replicas=args.replicas, partitions=args.partitions) as cluster:
        print("\n".join(cluster.meta_addrs + cluster.replica_addrs), flush=True)
        gevent.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
