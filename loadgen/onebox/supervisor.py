"""The onebox supervisor: owns the node processes of one embedded cluster.

``Onebox`` starts the meta and replica servers (``python -m loadgen.onebox.node``), injects
faults into them (kill, pause, resume, restart) and reports their health. Hygiene, because a
benchmark that leaks servers poisons the next run:

- each node runs in its own process group and gets ``PR_SET_PDEATHSIG=SIGKILL``, so it dies
  with the supervisor even when stopped (SIGKILL reaches stopped processes);
- every started ``Onebox`` is stopped by ``stop()``/``with``, at interpreter exit, and on
  SIGTERM/SIGHUP (turned into ``SystemExit`` when no other handler is installed);
- ``<dir>/supervisor.lock`` (flock, released by the kernel when the owner dies) keeps a second
  supervisor off the same dir; pid files record ``pid starttime`` so a reused pid is never
  mistaken for ours.

Any thread may call ``start`` and ``restart``: :mod:`.process` forks every node from one
long-lived thread, so a node does not die with a short-lived caller thread. Health rules and
the status document live in :mod:`.health`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from ..errors import ClusterError, ConfigError, PegbenchError
from ..pegasus.blocking import query_config
from . import health
from .health import DEAD, PAUSED, RUNNING, NodeInfo
from .node_process import STOP_TIMEOUT_S, NodeProcess
from .process import (await_gone, live_pid, port_in_use, register_cleanup, signal_group,
                      unregister_cleanup, write_pid_file)
from .spec import DEFAULT_META_PORT, DEFAULT_TABLE, META_NODE, FDConfig, OneboxSpec

__all__ = ["Onebox", "NodeInfo", "RUNNING", "PAUSED", "DEAD"]

POLL_S = 0.02
#: a client probing the dir lock holds it for an instant: a claim retries this long
CLAIM_RETRY_S = 0.5
SUPERVISOR_PID = "supervisor.pid"
SUPERVISOR_LOCK = "supervisor.lock"


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def owner_pid(dir: str | Path) -> int | None:
    """The pid of the live supervisor owning ``dir``, None if none (stale files ignored);
    -1 while the owner holds the lock but has not written its pid file yet."""
    lock = Path(dir) / SUPERVISOR_LOCK
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        if not _try_flock(fd):
            return live_pid(Path(dir) / SUPERVISOR_PID) or -1
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return None


def owned_error(dir: Path, pid: int | None) -> ClusterError:
    """The error for a dir another live supervisor owns."""
    return ClusterError(f"onebox dir {dir} is owned by a live supervisor (pid {pid}); "
                        f"stop it first: pegbench onebox stop --dir {dir}")


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
                 start_timeout_s: float = 60.0, node_command: Sequence[str] | None = None):
        if replica_base_port is not None:
            if replica_ports:
                raise ConfigError("", "replica_base_port", "not given together with replica_ports")
            replica_ports = range(replica_base_port, replica_base_port + replica_nodes)
        spec = OneboxSpec(dir=str(dir), replica_nodes=replica_nodes, partitions=partitions,
                          replicas=replicas, min_replicas=min_replicas, table=table,
                          meta_port=meta_port, replica_ports=tuple(replica_ports or ()), fd=fd)
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
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError("", "dir", f"a writable directory; {self.dir}: "
                                         f"{exc.strerror or exc}") from None
        deadline = time.monotonic() + CLAIM_RETRY_S
        while not _try_flock(fd) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if not _try_flock(fd):
            os.close(fd)
            raise owned_error(self.dir, live_pid(self.dir / SUPERVISOR_PID)) from None
        self._lock_fd = fd
        # we hold the lock, so any recorded supervisor is dead or a reused pid: stale
        write_pid_file(self.dir / SUPERVISOR_PID, os.getpid())
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
            stopping = [node for node in self._nodes.values() if node.begin_stop()]
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
                (self.dir / SUPERVISOR_PID).unlink(missing_ok=True)
                os.close(self._lock_fd)
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

    def kill(self, name: str) -> None:
        """SIGKILL the node's group: the "core dump". A dead node stays dead."""
        with self._mutex:
            self._fault_target(name).kill()

    def pause(self, name: str) -> None:
        """SIGSTOP the node's group: a hang with its TCP connections still open."""
        with self._mutex:
            self._fault_target(name).set_paused(True)

    def resume(self, name: str) -> None:
        """SIGCONT a paused node."""
        with self._mutex:
            self._fault_target(name).set_paused(False)

    def terminate(self, name: str) -> None:
        """SIGTERM the node and wait for it to exit (SIGKILL after a grace)."""
        with self._mutex:
            node = self._node(name)
            if node.begin_stop():
                node.reap(time.monotonic() + STOP_TIMEOUT_S)

    def restart(self, name: str) -> None:
        """Stop the node if alive, then start it again with its data dir intact; wait READY.

        A new life that crashes or hangs before READY is killed (nothing half-started stays
        running) and the error raised.
        """
        with self._mutex:
            node = self._node(name)
            if self._lock_fd is None:
                raise ClusterError(f"cannot restart {name}: the onebox is not started")
            self.terminate(name)
            node.crash_reported = True  # restarting a crashed node is the answer to the crash
            offset = node.spawn(self._argv(node))
            try:
                node.wait_ready(offset, float("inf"))
            except BaseException:
                node.kill()
                raise

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
        """The status document of DESIGN.md ("Outputs"); never raises for a dead node or meta
        (then ``partitions`` is empty and ``app_id``/``partition_count`` are None)."""
        infos, cfg, problems = self._health()
        return health.status_document(dir=str(self.dir), supervisor_pid=os.getpid(),
                                      meta=self.spec.meta_addr, nodes=infos, cfg=cfg,
                                      healthy=not problems)

