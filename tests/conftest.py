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
from support.processes import processes_mentioning
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
    leftovers = processes_mentioning(basetemp)
    while leftovers and time.monotonic() < deadline:  # let just-stopped processes finish dying
        time.sleep(0.1)
        leftovers = processes_mentioning(basetemp)
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
