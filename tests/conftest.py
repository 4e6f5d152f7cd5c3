"""Shared fixtures (golden vectors) and the end-of-run check that no process is left.

Helpers that test modules import live in the ``support`` package, not here.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from support.background import Background
from support.vectors import load_vectors


@pytest.fixture(scope="session")
def vectors() -> dict:
    return load_vectors()


@pytest.fixture
def background(tmp_path):
    """Background oneboxes started with ``pegbench onebox start``; stopped after the test."""
    bg = Background(tmp_path)
    try:
        yield bg
    finally:
        bg.cleanup()


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


def _leftover_processes(marker: str) -> list[tuple[int, str]]:
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


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any ``loadgen`` process started under this run's temp dirs is still alive.

    Every onebox node and supervisor gets a spec path under pytest's base temp dir, so its
    command line names it; processes of other, concurrent runs are left alone.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        basetemp = str(factory.getbasetemp())
    except Exception:  # no test asked for a temp dir: nothing could have been started there
        return
    deadline = time.monotonic() + 5
    leftovers = _leftover_processes(basetemp)
    while leftovers and time.monotonic() < deadline:  # let just-stopped processes finish dying
        time.sleep(0.1)
        leftovers = _leftover_processes(basetemp)
    if not leftovers:
        return
    own_group = os.getpgrp()
    for pid, _ in leftovers:
        try:  # nodes lead their own process group; never signal ours
            if os.getpgid(pid) == pid and pid != own_group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in leftovers)
    print(f"\nERROR: tests left processes running (now killed):\n{lines}", file=sys.stderr)
    session.exitstatus = 1
