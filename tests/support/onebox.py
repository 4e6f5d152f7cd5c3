"""Helpers for the onebox server tests: a fixture factory, routing and a simple persistent caller."""

from __future__ import annotations

import json
import socket
import time

from loadgen.errors import PegasusError, ProtocolError
from loadgen.onebox.spec import CONFIG_LOG, FAST_FD, META_NODE, OneboxSpec
from loadgen.onebox.supervisor import Onebox
from loadgen.pegasus import blocking, codec
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import crc64, make_key, partition_index
from loadgen.pegasus.rdsn.ttypes import blob

from .ports import free_ports

TABLE = "temp"
APP_ID = 1
#: Slack for relative timing bounds: loaded CI machines stall processes for hundreds of ms.
#: Each bound that uses it must still fail on the bug it guards (state how in the test).
TIMING_SLACK_S = 1.0


def make_box(path, **kw) -> Onebox:
    """A onebox on free ports with short FD timings (not started); ``kw`` are spec fields."""
    kw.setdefault("replica_nodes", 3)
    kw.setdefault("fd", FAST_FD)
    ports = free_ports(1 + kw["replica_nodes"])  # distinct: no node may get another's port
    kw.setdefault("meta_port", ports[0])
    kw["replica_ports"] = tuple(kw.get("replica_ports") or ports[1:])
    return Onebox.from_spec(OneboxSpec(dir=str(path), **kw))


def config_log(box: Onebox) -> list[dict]:
    """The meta's config-change records, oldest first."""
    path = box.spec.node_dir(META_NODE) / CONFIG_LOG
    return [json.loads(line) for line in path.read_text().splitlines()]


def first_new_primary(box: Onebox, pidx: int, old: str, after: float) -> float | None:
    """Monotonic time the meta first named a primary other than ``old`` for ``pidx`` after
    ``after`` (the server failover instant), None if it has not yet."""
    return min((r["t_mono"] for r in config_log(box) if r["pidx"] == pidx and r["t_mono"] > after
                and r["primary"] not in ("", old)), default=None)


def pidx_of(hash_key: bytes, partitions: int = 8) -> int:
    return partition_index(crc64(hash_key), partitions)


def hash_keys_per_partition(partitions: int = 8) -> dict[int, bytes]:
    """One hash key for each partition index."""
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < partitions:
        hk = f"hk{i}".encode()
        found.setdefault(pidx_of(hk, partitions), hk)
        i += 1
    return found


def primary_of(box: Onebox, pidx: int) -> str:
    return str(box.config().partitions[pidx].primary)


def node_of(box: Onebox, addr: str) -> str:
    return next(name for name, a in box.spec.nodes.items() if a == addr)


def put_args(hash_key: bytes, sort_key: bytes, value: bytes, expire_ts: int = 0):
    return rrdb.update_request(key=blob(make_key(hash_key, sort_key)), value=blob(value),
                               expire_ts_seconds=expire_ts)


def call(addr: str, rpc: str, args, pidx: int, timeout_s: float = 2.0) -> codec.ResponseFrame:
    return blocking.call(addr, rpc, args, app_id=APP_ID, partition_index=pidx, timeout_s=timeout_s)


class Caller:
    """One persistent connection per address, one request at a time; errors become codes."""

    def __init__(self, timeout_s: float = 1.0):
        self.timeout_s = timeout_s
        self._socks: dict[str, socket.socket] = {}
        self._seq = 0

    def call(self, addr: str, rpc: str, args, pidx: int) -> tuple[str, object]:
        """(error name, result); transport trouble gives ERR_SESSION_RESET or ERR_TIMEOUT."""
        self._seq += 1
        try:
            sock = self._socks.get(addr)
            if sock is None:
                host, _, port = addr.rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=self.timeout_s)
                self._socks[addr] = sock
            sock.sendall(codec.encode_request(rpc, self._seq, args, app_id=APP_ID,
                                              partition_index=pidx))
            splitter = codec.FrameSplitter("response")
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed")
                for frame in splitter.feed(data):
                    reply = codec.decode_response(frame)
                    if reply.seqid == self._seq:
                        return reply.error, reply.result
        except TimeoutError:
            self._drop(addr)
            return "ERR_TIMEOUT", None
        except (OSError, ProtocolError):
            self._drop(addr)
            return "ERR_SESSION_RESET", None

    def _drop(self, addr: str) -> None:
        sock = self._socks.pop(addr, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for addr in list(self._socks):
            self._drop(addr)


def wait_for(predicate, timeout_s: float, interval_s: float = 0.02):
    """Poll until ``predicate()`` is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except (PegasusError, ProtocolError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


class Writer:
    """A writer thread's logic: puts ``key_i -> counter`` in a loop and records every outcome.

    ``acked[key]`` is the last acknowledged value; ``unknown[key]`` the values written after it
    whose outcome is indeterminate (timeouts, resets), which a read-back may also show;
    ``acks`` is (monotonic time the request was sent, of its reply, pidx) of every
    acknowledged write.
    """

    def __init__(self, box: Onebox, prefix: str, keys: int = 32):
        self.box = box
        self.keys = [f"{prefix}-{i}".encode() for i in range(keys)]
        self.acked: dict[bytes, bytes] = {}
        self.unknown: dict[bytes, set[bytes]] = {k: set() for k in self.keys}
        self.errors: dict[str, int] = {}
        self.acks: list[tuple[float, float, int]] = []
        self.ok = 0
        self.stop = False
        self._cfg = None
        self._caller = Caller(timeout_s=1.0)

    def _route(self, pidx: int) -> str:
        if self._cfg is None:
            try:
                self._cfg = self.box.config()
            except (PegasusError, ProtocolError):
                return ""
        return str(self._cfg.partitions[pidx].primary)

    def run(self) -> None:
        n = 0
        while not self.stop:
            key = self.keys[n % len(self.keys)]
            value = b"%d" % n
            n += 1
            pidx = pidx_of(key)
            addr = self._route(pidx)
            if not addr:
                time.sleep(0.01)
                continue
            t_sent = time.monotonic()
            err, _ = self._caller.call(addr, codec.RPC_PUT, put_args(key, b"", value), pidx)
            if err == "ERR_OK":
                self.acks.append((t_sent, time.monotonic(), pidx))
                self.ok += 1
                self.acked[key] = value
                self.unknown[key].clear()
                continue
            self.errors[err] = self.errors.get(err, 0) + 1
            if err in ("ERR_TIMEOUT", "ERR_SESSION_RESET"):
                self.unknown[key].add(value)
            self._cfg = None
            time.sleep(0.01)
        self._caller.close()

    def verify(self, box: Onebox, within_s: float = 10.0) -> list[str]:
        """Read every key back from its primary; return the lost writes (empty = none).

        A primary may refuse a read for a moment (its lease lapsed while a loaded machine
        delayed a beacon: ERR_INVALID_STATE), so a refused read is retried, with the meta's
        current config, for up to ``within_s``; a read that never succeeds fails the test."""
        deadline = time.monotonic() + within_s
        cfg = box.config()
        lost = []
        for key in self.keys:
            pidx = pidx_of(key)
            while True:
                reply = call(str(cfg.partitions[pidx].primary), codec.RPC_GET,
                             blob(make_key(key, b"")), pidx)
                if reply.error == "ERR_OK" or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
                cfg = box.config()
            assert reply.error == "ERR_OK", f"{key!r}: {reply.error} for {within_s} s"
            got = reply.result.value.data if reply.result.error == 0 else None
            want = self.acked.get(key)
            if want is not None and got != want and got not in self.unknown[key]:
                lost.append(f"{key!r}: acked {want!r}, read {got!r}")
        return lost
