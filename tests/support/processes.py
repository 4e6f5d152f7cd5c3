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
