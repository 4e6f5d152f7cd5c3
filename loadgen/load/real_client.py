"""A real client's row: its adapter process behind the ops the users issue.

:class:`RealClient` stands where a policy's pegbench :class:`~loadgen.pegasus.Client` stands in
the workload. :meth:`~RealClient.open_table` starts the adapter once (concurrent openers wait
for the same start) and returns a :class:`RealClientTable`, whose ``put`` / ``multi_put`` /
``get`` take what :class:`~loadgen.pegasus.table.Table`'s take. Each op goes to the adapter
when it is issued, and its reply becomes one op-level :class:`~loadgen.pegasus.outcome.Outcome`
for the recorder, so the row gets the policies' analysis as it is: the partition is the hash
key's (CRC-64, as every Pegasus client routes), service time runs from the line's write to its
reply, response time from the op's intended start. A failure raises
:class:`~loadgen.errors.PegasusError` with the client's own error name and outcome, so the
durability ledger and Locust see it as they see a policy's.

What the row cannot say of itself is left out rather than made up: it has no attempts (one
per op is recorded; reports say "n/a") and its meta queries are counted on the server side:
the onebox meta logs each config query with its peer address, and the ports of the adapter's
own sockets (its process and children, sampled with psutil) say which were its. Without that
log (an external cluster) its meta queries are not known.

If the adapter cannot start, or dies, every later op of the row fails at once (``fail``,
``ADAPTER_DOWN``; no new process is started mid-run) and the row's status says when and why.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult

from ..adapters.connection import AdapterConnection, OpResult
from ..adapters.venvs import adapter_env, resolve_command
from ..config.schema import ClientConfig
from ..errors import AdapterError, ConfigError, PegasusError
from ..pegasus import keys
from ..pegasus.outcome import FAIL, META, OK, UNKNOWN, Outcome

log = logging.getLogger(__name__)

#: The error of an op the row could not even send: its adapter is not running.
ADAPTER_DOWN = "ADAPTER_DOWN"
#: How often the adapter's sockets are sampled and the meta's query log read.
ATTRIBUTION_INTERVAL_S = 0.25


class RealClient:
    """One real client's adapter for one load process (see the module docstring)."""

    def __init__(self, row: str, spec: Mapping[str, Any], meta: Sequence[str], *,
                 op_timeout_ms: float, observer: Callable[[Outcome], None],
                 meta_query_log: str = "", worker: str = "local"):
        self.row, self.meta, self.op_timeout_ms = row, list(meta), op_timeout_ms
        self.command = list(spec["command"])
        self.options = dict(spec.get("options", {}))
        self.handshake_timeout_s = float(spec.get("handshake_timeout_s", 30.0))
        self.observer = observer
        self.meta_query_log = meta_query_log
        self.worker = worker
        self.conn: Any = None
        self._opened: AsyncResult | None = None
        self._attributor: gevent.Greenlet | None = None
        self._start_error: str | None = None
        self.started_at: float | None = None     # wall clock
        self._closed = False

    # ------------------------------------------------------------------ life cycle

    def open_table(self, name: str) -> RealClientTable:
        """Start the adapter for table ``name`` (once) and return the row's table; raises
        :class:`PegasusError` (``ADAPTER_DOWN``) if it could not start."""
        if self._opened is None:
            self._opened = AsyncResult()
            try:
                self._opened.set(self._open(name))
            except PegasusError as exc:
                self._opened.set_exception(exc)
        return self._opened.get()

    def _open(self, name: str) -> RealClientTable:
        from ..pegasus import Client  # as the workload does: the client only where users run

        try:
            command = resolve_command(self.command)
            # the partition count, as a client learns it (no observer: not the row's query)
            with Client(self.meta, policy="failover", op_timeout_ms=self.op_timeout_ms) as probe:
                count = probe.open_table(name).partition_count
            self.conn = AdapterConnection(
                command, meta=self.meta, table=name, op_timeout_ms=int(self.op_timeout_ms),
                options=self.options, name=self.row, handshake_timeout_s=self.handshake_timeout_s,
                env=adapter_env())
            self.conn.start()
            if self._closed:      # the test stopped while the adapter started
                self.conn.stop()
                raise AdapterError(f"adapter {self.row}: stopped while starting")
        except (AdapterError, ConfigError, PegasusError, OSError) as exc:
            self._start_error = str(exc)
            log.error("%s: the adapter did not start: %s", self.row, exc)
            raise _down(f"{self.row}: the adapter did not start: {exc}") from None
        self.started_at = time.time()
        log.info("%s: %s %s ready (pid %s)", self.row, self.conn.ready.client,
                 self.conn.ready.version, self.conn.pid)
        if self.meta_query_log:
            self._attributor = gevent.spawn(self._attribute_meta_queries, Path(self.meta_query_log))
        return RealClientTable(self, name, count)

    def close(self) -> None:
        """Stop the adapter (ops in flight end ``unknown``)."""
        self._closed = True
        if self._attributor is not None:
            self._attributor.kill(block=False)
        if self.conn is not None:
            self.conn.stop()

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Plain data for results.json: who the client is, and whether and when it died."""
        conn = self.conn
        ready = getattr(conn, "ready", None)
        out: dict[str, Any] = {
            "worker": self.worker, "command": self.command,
            "client": ready.client if ready else None, "version": ready.version if ready else None,
            "pid": conn.pid if conn is not None else None, "started_at": self.started_at,
            "meta_queries_counted": bool(self.meta_query_log), "died_at": None, "error": None}
        if self._start_error is not None:
            out["error"] = f"did not start: {self._start_error}"
        elif conn is not None and conn.failed_at is not None:
            out["died_at"] = conn.failed_at
            out["error"] = str(conn.protocol_errors[0] if conn.protocol_errors else conn.error)
        if conn is not None:
            out["late_replies"] = conn.late_replies
        return out

    # ------------------------------------------------------------------ meta queries

    def _attribute_meta_queries(self, path: Path) -> None:
        """Count the meta's config queries whose peer is one of the adapter's sockets."""
        import psutil

        ports: set[str] = set()
        offset = 0
        table = self.conn.hello.table
        while True:
            try:
                ports |= _local_ports(psutil.Process(self.conn.pid))
            except (psutil.Error, OSError):
                pass   # it exited: its ports seen so far still count
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                chunk = b""
            end = chunk.rfind(b"\n") + 1      # a line still being written waits
            offset += end
            for line in chunk[:end].splitlines():
                try:
                    rec = json.loads(line)
                    t, peer = float(rec["t"]), str(rec["peer"])
                except (ValueError, KeyError, TypeError):
                    continue
                if peer in ports:
                    self.observer(Outcome(level=META, op="query_config", table=table,
                                          partition=-1, node=None, start=t, end=t, outcome=OK,
                                          error=None, attempt=1, refreshed=False,
                                          policy=self.row))
            gevent.sleep(ATTRIBUTION_INTERVAL_S)


class RealClientTable:
    """The row's table: Table's ops, answered by the adapter (see the module docstring)."""

    def __init__(self, client: RealClient, name: str, partition_count: int):
        self.client, self.name, self.partition_count = client, name, partition_count

    def partition_of(self, hash_key: bytes) -> int:
        """The partition ``hash_key`` maps to."""
        return keys.partition_index(keys.crc64(hash_key), self.partition_count)

    def put(self, hash_key: bytes, sort_key: bytes, value: bytes, *,
            intended_start: float | None = None) -> None:
        self._call("put", hash_key, intended_start, sort_key=sort_key, value=value)

    def multi_put(self, hash_key: bytes, kvs: Mapping[bytes, bytes], *,
                  intended_start: float | None = None) -> None:
        self._call("multi_put", hash_key, intended_start, sort_keys=list(kvs),
                   values=list(kvs.values()))

    def get(self, hash_key: bytes, sort_key: bytes, *,
            intended_start: float | None = None) -> bytes | None:
        return self._call("get", hash_key, intended_start, sort_key=sort_key)

    def _call(self, op: str, hash_key: bytes, intended_start: float | None,
              **fields: Any) -> bytes | None:
        c = self.client
        try:
            r = c.conn.call(op, hash_key, **fields)
        except AdapterError as exc:      # not running: nothing was sent
            now = time.monotonic()
            r = OpResult(id=0, op=op, start=now, end=now, outcome=FAIL, error=ADAPTER_DOWN,
                         message=str(exc))
        c.observer(r.to_outcome(table=self.name, policy=c.row, partition=self.partition_of(hash_key),
                                intended_start=intended_start))
        if r.outcome == OK:
            return r.value
        exc = PegasusError(r.error or "ERR_UNKNOWN", r.message)
        exc.outcome = FAIL if r.outcome == FAIL or op == "get" else UNKNOWN   # a read never applies
        raise exc


def _down(message: str) -> PegasusError:
    exc = PegasusError(ADAPTER_DOWN, message)
    exc.outcome = "fail"
    return exc


def _local_ports(proc: Any) -> set[str]:
    """``host:port`` of every TCP socket of ``proc`` and its children."""
    out: set[str] = set()
    for p in (proc, *proc.children(recursive=True)):
        for c in p.net_connections(kind="tcp"):
            if c.laddr:
                out.add(f"{c.laddr.ip}:{c.laddr.port}")
    return out


def check_commands(clients: Iterable[ClientConfig], source: str) -> None:
    """Before a run: every real client's adapter command resolves (its client environment is
    installed); else a ConfigError naming the profile key and the install command."""
    for c in clients:
        try:
            resolve_command(c.command)
        except (AdapterError, ConfigError) as exc:
            raise ConfigError(source, f"clients.{c.name}.command",
                              f"a command that can start: {exc}") from None
