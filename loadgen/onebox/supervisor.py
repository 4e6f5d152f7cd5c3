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

PR_SET_PDEATHSIG fires when the *thread* that spawned a node exits, so call ``start`` and
``restart`` from a long-lived thread (the control server uses its main thread).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import ClusterError, ConfigError, NodeCrashed, PegbenchError
from ..pegasus.blocking import query_config
from .process import (await_gone, await_stopped, live_pid, port_in_use, register_cleanup,
                      signal_group, spawn, unregister_cleanup, write_pid_file)
from .spec import DEFAULT_META_PORT, DEFAULT_TABLE, META_NODE, FDConfig, OneboxSpec

#: a node not READY within this many seconds of its spawn is a failed start
READY_TIMEOUT_S = 20.0
#: grace between SIGTERM and SIGKILL when stopping a node
STOP_TIMEOUT_S = 5.0
POLL_S = 0.02
LAST_LINES = 20
CLAIM_RETRY_S = 0.5
NODE_LOG = "node.log"
NODE_PID = "node.pid"
SUPERVISOR_PID = "supervisor.pid"
SUPERVISOR_LOCK = "supervisor.lock"

RUNNING, PAUSED, DEAD = "running", "paused", "dead"


@dataclass(frozen=True)
class NodeInfo:
    """A snapshot of one node: ``state`` is running, paused or dead; ``pid`` None if never run."""

    name: str
    addr: str
    pid: int | None
    state: str


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# ----------------------------------------------------------------------- nodes

class _Node:
    """One node's process and bookkeeping; ``expected_exit`` tells injected deaths apart."""

    def __init__(self, name: str, addr: str, node_dir: Path):
        self.name, self.addr, self.dir = name, addr, node_dir
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.expected_exit = True  # nothing to report before the first spawn
        self.crash_reported = False

    @property
    def log(self) -> Path:
        return self.dir / NODE_LOG

    def state(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return DEAD
        return PAUSED if self.paused else RUNNING

    def info(self) -> NodeInfo:
        return NodeInfo(self.name, self.addr, self.proc.pid if self.proc else None, self.state())

    def last_lines(self) -> list[str]:
        try:
            with self.log.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-LAST_LINES:]

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, sig)


# ----------------------------------------------------------------------- the supervisor

class Onebox:
    """An embedded cluster of real node processes on 127.0.0.1; a context manager.

    ``replica_ports`` defaults to 34801, 34802, ...; tests pass free ports. ``node_command``
    is the argv prefix that runs a node (``--spec`` and ``--name`` are appended).
    """

    def __init__(self, dir: str | Path, *, replica_nodes: int = 3, partitions: int = 8,
                 replicas: int = 3, min_replicas: int = 2, table: str = DEFAULT_TABLE,
                 meta_port: int = DEFAULT_META_PORT, replica_ports: Sequence[int] | None = None,
                 fd: FDConfig = FDConfig(), start_timeout_s: float = 60.0,
                 node_command: Sequence[str] | None = None):
        spec = OneboxSpec(dir=str(dir), replica_nodes=replica_nodes, partitions=partitions,
                          replicas=replicas, min_replicas=min_replicas, table=table,
                          meta_port=meta_port, replica_ports=tuple(replica_ports or ()), fd=fd)
        self._setup(spec, start_timeout_s, node_command)

    @classmethod
    def from_spec(cls, spec: OneboxSpec, *, start_timeout_s: float = 60.0,
                  node_command: Sequence[str] | None = None) -> "Onebox":
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
        self._nodes = {name: _Node(name, addr, self.spec.node_dir(name))
                       for name, addr in self.spec.nodes.items()}
        self._lock_fd: int | None = None
        self._mutex = threading.RLock()

    def __enter__(self) -> "Onebox":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------- properties

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
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        # a client probing ownership holds the lock for an instant: retry briefly
        deadline = time.monotonic() + CLAIM_RETRY_S
        while not _try_flock(fd) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if not _try_flock(fd):
            os.close(fd)
            owner = live_pid(self.dir / SUPERVISOR_PID)
            raise ClusterError(f"onebox dir {self.dir} is owned by a live supervisor "
                               f"(pid {owner}); stop it first: pegbench onebox stop "
                               f"--dir {self.dir}") from None
        self._lock_fd = fd
        # we hold the lock, so any recorded supervisor is dead or a reused pid: stale
        write_pid_file(self.dir / SUPERVISOR_PID, os.getpid())
        register_cleanup(self)

    def _kill_orphans(self) -> None:
        """SIGKILL nodes a dead supervisor left behind (we hold the lock, so any live node
        recorded in a pid file is an orphan); PR_SET_PDEATHSIG makes this rare."""
        for node in self._nodes.values():
            orphan = live_pid(node.dir / NODE_PID)
            if orphan is not None:
                signal_group(orphan, signal.SIGKILL)
                await_gone(orphan)

    def _launch(self, names: list[str], deadline: float) -> None:
        """Spawn ``names`` together, then wait for each one's READY line."""
        offsets = {name: self._spawn_node(self._nodes[name]) for name in names}
        for name in names:
            self._wait_ready(self._nodes[name], offsets[name], deadline)

    def _spawn_node(self, node: _Node) -> int:
        node.dir.mkdir(parents=True, exist_ok=True)
        offset = node.log.stat().st_size if node.log.exists() else 0
        argv = [*self.node_command, "--spec", str(self.dir / "spec.json"), "--name", node.name]
        node.proc = spawn(argv, node.log)
        node.paused, node.expected_exit, node.crash_reported = False, False, False
        write_pid_file(node.dir / NODE_PID, node.proc.pid)
        return offset

    def _wait_ready(self, node: _Node, offset: int, deadline: float) -> None:
        deadline = min(deadline, time.monotonic() + READY_TIMEOUT_S)
        while True:
            with node.log.open("rb") as f:
                f.seek(offset)
                if any(line.startswith(b"READY ") for line in f.read().splitlines()):
                    return
            if node.proc.poll() is not None:
                node.crash_reported = True
                raise NodeCrashed(node.name, node.proc.returncode, node.last_lines())
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name} did not print READY in time; last output:\n"
                                   + "\n".join(node.last_lines()))
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGTERM every node (SIGKILL after a grace), release the dir. Idempotent."""
        with self._mutex:
            running = [n for n in self._nodes.values() if n.state() != DEAD]
            for node in running:
                node.expected_exit = True
                node.signal_group(signal.SIGTERM)
                node.signal_group(signal.SIGCONT)  # a stopped node only sees SIGTERM once continued
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for node in running:
                self._reap(node, deadline)
            for node in self._nodes.values():
                (node.dir / NODE_PID).unlink(missing_ok=True)
            if self._lock_fd is not None:
                (self.dir / SUPERVISOR_PID).unlink(missing_ok=True)
                os.close(self._lock_fd)
                self._lock_fd = None
            unregister_cleanup(self)

    @staticmethod
    def _reap(node: _Node, deadline: float) -> None:
        try:
            node.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.signal_group(signal.SIGKILL)
            node.proc.wait(timeout=STOP_TIMEOUT_S)
        node.signal_group(signal.SIGKILL)  # whatever the node itself left in its group

    # ------------------------------------------------------------------- faults

    def _node(self, name: str) -> _Node:
        if name not in self._nodes:
            raise ConfigError("", "node", f"one of {', '.join(self._nodes)}; got {name!r}")
        return self._nodes[name]

    def check(self) -> None:
        """Raise NodeCrashed for a node that died without being told to (once per death)."""
        with self._mutex:
            for node in self._nodes.values():
                if (node.proc is not None and not node.expected_exit and not node.crash_reported
                        and node.proc.poll() is not None):
                    node.crash_reported = True
                    raise NodeCrashed(node.name, node.proc.returncode, node.last_lines())

    def kill(self, name: str) -> None:
        """SIGKILL the node's group: the "core dump". A dead node stays dead."""
        with self._mutex:
            self.check()
            node = self._node(name)
            if node.state() == DEAD:
                return
            node.expected_exit = True
            node.signal_group(signal.SIGKILL)
            node.proc.wait(timeout=STOP_TIMEOUT_S)

    def pause(self, name: str) -> None:
        """SIGSTOP the node's group: a hang with its TCP connections still open."""
        with self._mutex:
            self.check()
            node = self._require_alive(name, "pause")
            node.signal_group(signal.SIGSTOP)
            node.paused = True
            await_stopped(node.proc.pid, True)

    def resume(self, name: str) -> None:
        """SIGCONT a paused node."""
        with self._mutex:
            self.check()
            node = self._require_alive(name, "resume")
            node.signal_group(signal.SIGCONT)
            node.paused = False
            await_stopped(node.proc.pid, False)

    def _require_alive(self, name: str, verb: str) -> _Node:
        node = self._node(name)
        if node.state() == DEAD:
            raise ClusterError(f"cannot {verb} {name}: it is dead (restart it instead)")
        return node

    def terminate(self, name: str) -> None:
        """SIGTERM the node and wait for it to exit (SIGKILL after a grace)."""
        with self._mutex:
            node = self._node(name)
            if node.state() == DEAD:
                return
            node.expected_exit = True
            node.signal_group(signal.SIGTERM)
            node.signal_group(signal.SIGCONT)
            self._reap(node, time.monotonic() + STOP_TIMEOUT_S)

    def restart(self, name: str) -> None:
        """Stop the node if alive, then start it again with its data dir intact; wait READY."""
        with self._mutex:
            node = self._node(name)
            if self._lock_fd is None:
                raise ClusterError(f"cannot restart {name}: the onebox is not started")
            self.terminate(name)
            node.crash_reported = True  # restarting a crashed node is the answer to the crash
            offset = self._spawn_node(node)
            self._wait_ready(node, offset, time.monotonic() + READY_TIMEOUT_S)

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

    def _problems(self, timeout_s: float = 1.0) -> tuple[list[str], Any]:
        """What keeps the cluster from being healthy (empty if healthy), and the config."""
        states = {n: node.state() for n, node in self._nodes.items()}
        problems = [f"{n} {s}" for n, s in states.items() if s != RUNNING]
        if states[META_NODE] != RUNNING:
            return problems, None
        try:
            cfg = self._query(timeout_s)
        except ClusterError as exc:
            return problems + [str(exc)], None
        alive = {node.addr for node in self._nodes.values() if node.state() == RUNNING}
        want = self.spec.replicas - 1
        for p in cfg.partitions:
            primary, secs = str(p.primary), [str(s) for s in p.secondaries or []]
            idx = p.pid.partition_index
            if primary not in alive:
                problems.append(f"partition {idx}: no alive primary ({primary or 'none'})")
            live_secs = [s for s in secs if s in alive]
            if len(live_secs) < want:
                problems.append(f"partition {idx}: {len(live_secs)} of {want} secondaries alive")
        return problems, cfg

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every node runs and every partition has a primary and replicas-1
        secondaries, all alive; ClusterError naming what is unhealthy on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check()
            problems, _ = self._problems()  # no lock held: a fault may land meanwhile
            if not problems:
                return
            if time.monotonic() >= deadline:
                raise ClusterError(f"onebox not healthy after {timeout_s:.1f}s: "
                                   + "; ".join(problems))
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def status(self) -> dict:
        """The status document of DESIGN.md ("Outputs"); never raises for a dead node."""
        problems, cfg = self._problems()
        nodes = [{"name": i.name, "addr": i.addr, "pid": i.pid, "state": i.state}
                 for i in self.nodes.values()]
        partitions = [{"pidx": p.pid.partition_index, "ballot": p.ballot,
                       "primary": str(p.primary),
                       "secondaries": [str(s) for s in p.secondaries or []],
                       "last_committed_decree": p.last_committed_decree}
                      for p in (cfg.partitions if cfg else [])]
        return {"dir": str(self.dir), "supervisor_pid": os.getpid(), "meta": self.spec.meta_addr,
                "app_id": cfg.app_id if cfg else None,
                "partition_count": cfg.partition_count if cfg else None,
                "healthy": not problems, "nodes": nodes, "partitions": partitions}
