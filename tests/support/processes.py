"""Watching and cleaning up the processes a test started."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable

from loadgen.onebox.process import proc_state


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z")


def group_gone(pid: int) -> bool:
    """Whether the process group led by ``pid`` has no process left (and ``pid`` is gone)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return not alive(pid)
    return False


def wait_until(pred: Callable[[], object], timeout_s: float = 5.0) -> bool:
    """Poll ``pred`` until it is truthy or ``timeout_s`` passed; its last truth value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def kill_groups(pids: Iterable[int | None]) -> None:
    """Last-resort cleanup: SIGKILL every process group a test may have left."""
    for pid in pids:
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _ancestors() -> set[int]:
    """This process and its parents (a ``timeout`` wrapper may name the base temp dir too)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def processes_mentioning(marker: str) -> list[tuple[int, str]]:
    """Our own processes (``loadgen`` nodes, supervisors) whose command line mentions ``marker``."""
    found, skip = [], _ancestors()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if marker in cmd and "loadgen" in cmd:
            found.append((int(entry), cmd))
    return found


def stop_adapters(conns: Iterable) -> None:
    """After a test: stop every adapter connection; each process group must be gone (the
    stragglers are killed, then the test fails naming them)."""
    conns = list(conns)
    for conn in conns:
        conn.stop()
    pids = [conn.pid for conn in conns if conn.pid]
    leftovers = [pid for pid in pids if not wait_until(lambda pid=pid: group_gone(pid), 5)]
    kill_groups(leftovers)
    assert not leftovers, f"adapter process groups left behind: {leftovers}"
