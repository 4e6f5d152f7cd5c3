"""One onebox node's process: spawn, READY, signals, reaping, and telling crashes from faults.

A :class:`NodeProcess` lives as long as its supervisor and goes through many process lives
(restarts). ``expected_exit`` is set before every death the supervisor causes (kill, stop,
restart), so a death without it is a crash, reported once as :class:`NodeCrashed` with the
node's last output lines. The node's process group is its own (see :func:`.process.spawn`),
so signals go to the group: whatever the node forked dies or stops with it.

Fault methods return the CLOCK_MONOTONIC instant of their signal (see
:func:`.process.signal_group`) and :meth:`NodeProcess.wait_ready` the instant the node became
ready, as the node itself reports it on its ``READY host:port <monotonic>`` line.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

from ..errors import ClusterError, NodeCrashed
from .health import DEAD, PAUSED, RUNNING, NodeInfo
from .process import await_stopped, signal_group, spawn, write_pid_file

#: a node not READY within this many seconds of its spawn is a failed start
READY_TIMEOUT_S = 20.0
#: grace between SIGTERM and SIGKILL when stopping a node; also how long a SIGKILLed node
#: may take to be reaped before it counts as stuck
STOP_TIMEOUT_S = 5.0
POLL_S = 0.02
#: how many of a node's last output lines a NodeCrashed quotes
LAST_LINES = 20
NODE_LOG = "node.log"
NODE_PID = "node.pid"


class NodeProcess:
    """One node (``meta1``, ``replica2``, ...) and its current process life, if any."""

    def __init__(self, name: str, addr: str, node_dir: Path):
        self.name, self.addr, self.dir = name, addr, node_dir
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.expected_exit = True  # nothing to report before the first spawn
        self.crash_reported = False

    @property
    def log(self) -> Path:
        return self.dir / NODE_LOG

    @property
    def pid_file(self) -> Path:
        return self.dir / NODE_PID

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

    def signal(self, sig: int) -> float | None:
        """Signal this life's group; the instant it was sent, None if there never was a life."""
        if self.proc is None:
            return None
        return signal_group(self.proc.pid, sig)

    # ------------------------------------------------------------------- lives

    def spawn(self, argv: list[str]) -> int:
        """Start a new life running ``argv``; the log offset its READY line will follow."""
        self.dir.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = spawn(argv, self.log)
        self.paused, self.expected_exit, self.crash_reported = False, False, False
        write_pid_file(self.pid_file, self.proc.pid)
        return offset

    def wait_ready(self, offset: int, deadline: float) -> float:
        """Wait for ``READY`` after ``offset`` in the log and return its instant (see
        :func:`ready_instant`); NodeCrashed if the life ends first, ClusterError (quoting the
        log) at ``deadline`` or READY_TIMEOUT_S, whichever is first."""
        deadline = min(deadline, time.monotonic() + READY_TIMEOUT_S)
        while True:
            with self.log.open("rb") as f:
                f.seek(offset)
                lines = f.read().splitlines()
            seen = time.monotonic()  # after the read: a READY line found was written before
            ready = next((line for line in lines if line.startswith(b"READY ")), None)
            if ready is not None:
                return ready_instant(ready, seen)
            if self.proc.poll() is not None:
                self.crash_reported = True
                raise NodeCrashed(self.name, self.proc.returncode, self.last_lines())
            if time.monotonic() > deadline:
                raise ClusterError(f"{self.name} did not print READY in time; last output:\n"
                                   + "\n".join(self.last_lines()))
            time.sleep(POLL_S)

    def unreported_crash(self) -> NodeCrashed | None:
        """The crash of this life if it died untold and nobody heard yet (then it is heard)."""
        if (self.proc is None or self.expected_exit or self.crash_reported
                or self.proc.poll() is None):
            return None
        self.crash_reported = True
        return NodeCrashed(self.name, self.proc.returncode, self.last_lines())

    # ------------------------------------------------------------------- faults and stopping

    def kill(self) -> float | None:
        """SIGKILL the group and wait until reaped; the signal's instant, None if the node was
        already dead (a dead node stays dead)."""
        if self.state() == DEAD:
            return None
        self.expected_exit = True
        sent = self.signal(signal.SIGKILL)
        self._await_killed()
        return sent

    def set_paused(self, paused: bool) -> float:
        """SIGSTOP or SIGCONT the group; returns the signal's instant once the kernel shows it
        took effect, so the caller never acts on a node that is not stopped (or running) yet."""
        if self.state() == DEAD:
            verb = "pause" if paused else "resume"
            raise ClusterError(f"cannot {verb} {self.name}: it is dead (restart it instead)")
        sent = self.signal(signal.SIGSTOP if paused else signal.SIGCONT)
        self.paused = paused
        await_stopped(self.proc.pid, paused)
        return sent

    def begin_stop(self) -> float | None:
        """SIGTERM the group (continued, so a paused node sees it); the SIGTERM's instant,
        None if already dead."""
        if self.state() == DEAD:
            return None
        self.expected_exit = True
        sent = self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        return sent

    def reap(self, deadline: float) -> None:
        """Wait for the exit begun by :meth:`begin_stop` until ``deadline``, then SIGKILL."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self._await_killed()
        self.signal(signal.SIGKILL)  # whatever the node itself left in its group

    def _await_killed(self) -> None:
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{self.name} (pid {self.proc.pid}) survived SIGKILL for "
                               f"{STOP_TIMEOUT_S}s") from None


def ready_instant(line: bytes, seen: float) -> float:
    """The instant a node's ``READY host:port <monotonic>`` line reports; ``seen`` (when the
    supervisor found the line) if the node did not say, e.g. a test double printing only
    ``READY host:port``."""
    parts = line.split()
    if len(parts) >= 3:
        try:
            reported = float(parts[2])
        except ValueError:
            return seen
        # a node never reports a READY later than the moment its line was read
        return min(reported, seen) if math.isfinite(reported) else seen
    return seen
