"""The onebox supervisor: owns the node processes of one embedded cluster.

``Onebox`` starts the meta and replica servers (``python -m loadgen.onebox.node``), injects
faults into them (kill, pause, resume, restart) and reports their health. Hygiene, because a
benchmark that leaks servers poisons the next run:

- each node runs in its own process group and gets ``PR_SET_PDEATHSIG=SIGKILL``, so it dies
  with the supervisor even when stopped (SIGKILL reaches stopped processes);
- every started ``Onebox`` is stopped by ``stop()``/``with``, at interpreter exit, and on
  SIGTERM/SIGHUP (turned into ``SystemExit`` when no other handler is installed);
- ``<dir>/supervisor.lock`` (flock, released by the kernel when the owner dies; see
  :mod:`.ownership`) keeps a second supervisor off the same dir; pid files record
  ``pid starttime`` so a reused pid is never mistaken for ours.

Fault methods return a :class:`.fault_applied.FaultApplied` with the CLOCK_MONOTONIC instants
of their signal and, for a restart, of the new life's READY.

Any thread may call ``start`` and ``restart``: :mod:`.process` forks every node from one
long-lived thread, so a node does not die with a short-lived caller thread. Health rules and
the status document live in :mod:`.health`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ClusterError, ConfigError, PegbenchError
from ..node_actions import KILL, PAUSE, RESTART, RESUME, TERMINATE
from ..pegasus.blocking import call, query_config
from . import health, ownership
from .fault_applied import FaultApplied
from .gen.onebox import ttypes as ob
from .health import DEAD, PAUSED, RUNNING, NodeInfo
from .internal_rpc import RPC_NODE_STATS
from .node_process import STOP_TIMEOUT_S, NodeProcess
from .process import await_gone, live_pid, port_in_use, register_cleanup, signal_group, unregister_cleanup
from .spec import DEFAULT_META_PORT, DEFAULT_TABLE, META_NODE, FDConfig, OneboxSpec

__all__ = ["Onebox", "NodeInfo", "FaultApplied", "RUNNING", "PAUSED", "DEAD"]

#: a running replica that does not answer the status's counter query within this is "unknown"
STATS_TIMEOUT_S = 0.5


class Onebox:
    """An embedded cluster of real node processes on 127.0.0.1; a context manager.

    ``replica_ports`` defaults to 34801, 34802, ...; ``replica_base_port=B`` means B, B+1, ...
    (give one or the other); tests pass free ports. ``node_command``
    is the argv prefix that runs a node (``--spec`` and ``--name`` are appended).
    """

    def __init__(self, dir: str | Path, *, replica_nodes: int = 3, partitions: int = 8,
                 replicas: int = 3, min_replicas: int = 2, table: str = DEFAULT_TABLE,
                 meta_port: int = DEFAULT_META_PORT, replica_ports: Sequence[int] | None = None,
                 replica_base_port: int | None = None, fd: FDConfig = FDConfig(),
                 start_timeout_s: float = 60.0, node_command: Sequence[str] | None = None,
                 drop_expired: bool = False):
        if replica_base_port is not None:
            if replica_ports:
                raise ConfigError("", "replica_base_port", "not given together with replica_ports")
            replica_ports = range(replica_base_port, replica_base_port + replica_nodes)
        spec = OneboxSpec(dir=str(dir), replica_nodes=replica_nodes, partitions=partitions,
                          replicas=replicas, min_replicas=min_replicas, table=table,
                          meta_port=meta_port, replica_ports=tuple(replica_ports or ()), fd=fd,
                          drop_expired=drop_expired)
        self._setup(spec, start_timeout_s, node_command)

    @classmethod
    def from_spec(cls, spec: OneboxSpec, *, start_timeout_s: float = 60.0,
                  node_command: Sequence[str] | None = None) -> Onebox:
        """An ``Onebox`` for an existing spec (its ``dir`` is where everything lives)."""
        box = cls.__new__(cls)
        box._setup(spec, start_timeout_s, node_command)
        return box

    def _setup(self, spec: OneboxSpec, start_timeout_s: float,
               node_command: Sequence[str] | None) -> None:
        self.spec = replace(spec, dir=str(Path(spec.dir).resolve()))
        self.dir = Path(self.spec.dir)
        self.start_timeout_s = start_timeout_s
        self.node_command = list(node_command or [sys.executable, "-m", "loadgen.onebox.node"])
        self._nodes = {name: NodeProcess(name, addr, self.spec.node_dir(name))
                       for name, addr in self.spec.nodes.items()}
        self._lock_fd: int | None = None
        self._mutex = threading.RLock()

    def __enter__(self) -> Onebox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def meta_addrs(self) -> list[str]:
        return [self.spec.meta_addr]

    @property
    def nodes(self) -> dict[str, NodeInfo]:
        """Node name -> snapshot, meta first."""
        with self._mutex:
            return {name: node.info() for name, node in self._nodes.items()}

    # ------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Wipe old node data, start meta then replicas, wait until READY and healthy."""
        with self._mutex:
            if self._lock_fd is not None:
                raise ClusterError(f"onebox {self.dir} is already started")
            deadline = time.monotonic() + self.start_timeout_s
            self._claim_dir()
            try:
                self._kill_orphans()
                for name, addr in self.spec.nodes.items():
                    if port_in_use(self.spec.host, int(addr.rpartition(":")[2])):
                        raise ClusterError(f"port {addr} (for {name}) is already in use; "
                                           "stop whatever holds it or choose other ports")
                for node in self._nodes.values():
                    shutil.rmtree(node.dir, ignore_errors=True)
                self.spec.write()
                self._launch([META_NODE], deadline)
                self._launch(self.spec.replica_names, deadline)
                self.wait_healthy(max(0.0, deadline - time.monotonic()))
            except BaseException:
                self.stop()
                raise

    def _claim_dir(self) -> None:
        """Take the dir's lock or fail naming the live owner; clear a stale pid file."""
        self._lock_fd = ownership.claim(self.dir)
        register_cleanup(self)

    def _kill_orphans(self) -> None:
        """SIGKILL nodes a dead supervisor left behind (we hold the lock, so any live node
        recorded in a pid file is an orphan); PR_SET_PDEATHSIG makes this rare."""
        for node in self._nodes.values():
            orphan = live_pid(node.pid_file)
            if orphan is not None:
                signal_group(orphan, signal.SIGKILL)
                await_gone(orphan)

    def _argv(self, node: NodeProcess) -> list[str]:
        return [*self.node_command, "--spec", str(self.dir / "spec.json"), "--name", node.name]

    def _launch(self, names: list[str], deadline: float) -> None:
        """Spawn ``names`` together, then wait for each one's READY line."""
        offsets = {name: self._nodes[name].spawn(self._argv(self._nodes[name])) for name in names}
        for name in names:
            self._nodes[name].wait_ready(offsets[name], deadline)

    def stop(self) -> None:
        """SIGTERM every node (SIGKILL after a grace), release the dir. Idempotent.

        A node that survives even SIGKILL (stuck in the kernel) keeps its pid file, so the next
        start finds and kills it; the dir is released either way and ClusterError names it.
        """
        with self._mutex:
            stopping = [node for node in self._nodes.values() if node.begin_stop() is not None]
            deadline = time.monotonic() + STOP_TIMEOUT_S
            stuck = []
            for node in stopping:
                try:
                    node.reap(deadline)
                except ClusterError as exc:
                    stuck.append(str(exc))
            for node in self._nodes.values():
                # only files we wrote: after a refused start they belong to the dir's owner
                if node.proc is not None and node.state() == DEAD:
                    node.pid_file.unlink(missing_ok=True)
            if self._lock_fd is not None:
                ownership.release(self.dir, self._lock_fd)
                self._lock_fd = None
            unregister_cleanup(self)
            if stuck:
                raise ClusterError("; ".join(stuck))

    # ------------------------------------------------------------------- faults

    def _node(self, name: str) -> NodeProcess:
        if name not in self._nodes:
            raise ConfigError("", "node", f"one of {', '.join(self._nodes)}; got {name!r}")
        return self._nodes[name]

    def _fault_target(self, name: str) -> NodeProcess:
        """The node to inject into, once its name is valid and every crash has been reported:
        a fault call that raises has done nothing."""
        node = self._node(name)
        self.check()
        return node

    def check(self) -> None:
        """Raise NodeCrashed for a node that died without being told to (once per death)."""
        with self._mutex:
            for node in self._nodes.values():
                crash = node.unreported_crash()
                if crash is not None:
                    raise crash

    @staticmethod
    def _applied(node: NodeProcess, action: str, t_signal: float | None,
                 t_ready: float | None = None) -> FaultApplied:
        info = node.info()
        return FaultApplied(node.name, action, t_signal, t_ready, info.pid, info.state)

    def kill(self, name: str) -> FaultApplied:
        """SIGKILL the node's group: the "core dump"; returns once it is reaped. A dead node
        stays dead (then ``t_signal`` is None)."""
        with self._mutex:
            node = self._fault_target(name)
            return self._applied(node, KILL, node.kill())

    def pause(self, name: str) -> FaultApplied:
        """SIGSTOP the node's group: a hang with its TCP connections still open."""
        with self._mutex:
            node = self._fault_target(name)
            return self._applied(node, PAUSE, node.set_paused(True))

    def resume(self, name: str) -> FaultApplied:
        """SIGCONT a paused node."""
        with self._mutex:
            node = self._fault_target(name)
            return self._applied(node, RESUME, node.set_paused(False))

    def terminate(self, name: str) -> FaultApplied:
        """SIGTERM the node and wait for it to exit (SIGKILL after a grace)."""
        with self._mutex:
            node = self._node(name)
            return self._applied(node, TERMINATE, self._terminate(node))

    @staticmethod
    def _terminate(node: NodeProcess) -> float | None:
        sent = node.begin_stop()
        if sent is not None:
            node.reap(time.monotonic() + STOP_TIMEOUT_S)
        return sent

    def restart(self, name: str) -> FaultApplied:
        """Stop the node if alive, then start it again with its data dir intact; wait READY.

        ``t_signal`` is the old life's SIGTERM (None if it was dead), ``t_ready`` the new
        life's READY. A new life that crashes or hangs before READY is killed (nothing
        half-started stays running) and the error raised.
        """
        with self._mutex:
            node = self._node(name)
            if self._lock_fd is None:
                raise ClusterError(f"cannot restart {name}: the onebox is not started")
            t_signal = self._terminate(node)
            node.crash_reported = True  # restarting a crashed node is the answer to the crash
            offset = node.spawn(self._argv(node))
            try:
                t_ready = node.wait_ready(offset, float("inf"))
            except BaseException:
                node.kill()
                raise
            return self._applied(node, RESTART, t_signal, t_ready)

    # ------------------------------------------------------------------- health

    def config(self, timeout_s: float = 2.0) -> Any:
        """The meta's partition config of the table (``query_cfg_response``)."""
        self.check()
        return self._query(timeout_s)

    def _query(self, timeout_s: float) -> Any:
        try:
            return query_config(self.meta_addrs, self.spec.table, timeout_s=timeout_s)
        except PegbenchError as exc:
            raise ClusterError(f"meta {self.spec.meta_addr} unreachable: {exc}") from exc

    def _health(self, timeout_s: float = 1.0) -> tuple[list[NodeInfo], Any, list[str]]:
        """Node snapshots, the meta's config (None if unavailable) and the health problems.

        Takes no lock, so a slow meta query never blocks fault injection; a stopped or dead meta
        is not asked at all (the query would only time out).
        """
        infos = [node.info() for node in self._nodes.values()]
        cfg, meta_error = None, None
        if infos[0].state == RUNNING:  # the meta comes first
            try:
                cfg = self._query(timeout_s)
            except ClusterError as exc:
                meta_error = str(exc)
        return infos, cfg, health.problems(infos, self.spec.replicas, cfg, meta_error)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every node runs and every partition has a primary and replicas-1
        secondaries, all alive; ClusterError naming what is unhealthy on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check()
            _, _, problems = self._health()
            if not problems:
                return
            if time.monotonic() >= deadline:
                raise ClusterError(f"onebox not healthy after {timeout_s:.1f}s: "
                                   + "; ".join(problems))
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def status(self) -> dict:
        """The status document of DESIGN.md ("Outputs"), plus each node's ``dropped_expired``;
        never raises for a dead node or meta (then ``partitions`` is empty and
        ``app_id``/``partition_count`` are None)."""
        infos, cfg, problems = self._health()
        dropped = {info.name: self._dropped_expired(info) for info in infos[1:]}
        return health.status_document(dir=str(self.dir), supervisor_pid=os.getpid(),
                                      meta=self.spec.meta_addr, nodes=infos, cfg=cfg,
                                      healthy=not problems, dropped_expired=dropped)

    @staticmethod
    def _dropped_expired(info: NodeInfo) -> int | None:
        """A running replica's count of requests dropped as expired; None if it cannot tell
        (a paused or dead node is not asked: the query would only time out)."""
        if info.state != RUNNING:
            return None
        try:
            reply = call(info.addr, RPC_NODE_STATS, ob.node_stats_request(),
                         timeout_s=STATS_TIMEOUT_S)
        except PegbenchError:
            return None
        return reply.result.dropped_expired if reply.error == "ERR_OK" else None

