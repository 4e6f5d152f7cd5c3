"""Node processes at the OS level: spawning bound to the parent, process groups, pid files,
cleanup at exit.

Linux only (``/proc``, ``prctl``). A pid file holds ``pid starttime``: the kernel's start time
tells a live process of ours from an unrelated one that reused the pid.

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the process. So
every child is forked by one long-lived daemon thread (:func:`spawn` hands it the work): a node
started from a short-lived thread (a test's helper thread, a fault controller's worker) must not
die when that thread ends. Daemon threads outlive ``atexit`` handlers, so nodes are still there
to be stopped gracefully at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no dlopen in the child


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (R, S, T, Z, ...), None if it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: fields resume after its closing paren
    return stat.rsplit(")", 1)[1].split()


def process_starttime(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it is gone."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def write_pid_file(path: Path, pid: int) -> None:
    path.write_text(f"{pid} {process_starttime(pid)}\n")


def live_pid(path: Path) -> int | None:
    """The pid in ``path`` if that very process is still alive (same start time), else None."""
    try:
        pid_s, start = path.read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    return pid if process_starttime(pid) == start and proc_state(pid) != "Z" else None


def spawn(argv: list[str], log: Path) -> subprocess.Popen:
    """Start ``argv`` leading its own session and process group, stdout+stderr appended to
    ``log``, killed (PR_SET_PDEATHSIG=SIGKILL) when this process dies."""
    parent = os.getpid()

    def bind_to_parent() -> None:
        if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(125)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(125)

    def fork() -> subprocess.Popen:
        with log.open("ab") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, preexec_fn=bind_to_parent,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})

    done = _spawner.submit(fork)
    try:
        return done.result()
    except BaseException:
        # interrupted (Ctrl-C) while the spawner forked: kill the child nobody will track
        with contextlib.suppress(BaseException):
            orphan = done.result(timeout=5)
            signal_group(orphan.pid, signal.SIGKILL)
            orphan.wait()
        raise


class _Spawner:
    """The one long-lived thread that forks every child (see the module docstring)."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def submit(self, fn: Callable[[], Any]) -> Future:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():  # none yet, or we forked
                self._work, self._pid = queue.SimpleQueue(), os.getpid()
                self._thread = threading.Thread(target=self._run, args=(self._work,),
                                                name="onebox-spawner", daemon=True)
                self._thread.start()
        done: Future = Future()
        self._work.put((fn, done))
        return done

    @staticmethod
    def _run(work: queue.SimpleQueue) -> None:
        while True:
            fn, done = work.get()
            try:
                done.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_spawner = _Spawner()


def signal_group(pgid: int, sig: int) -> float:
    """Send ``sig`` to a whole process group; a vanished group is not an error.

    Returns the CLOCK_MONOTONIC instant taken right as ``killpg`` returned: when the kernel
    has the signal (a fault's injection instant, comparable across processes on the host).
    """
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    return time.monotonic()


def await_stopped(pid: int, stopped: bool, timeout_s: float = 1.0) -> None:
    """Wait until the kernel shows ``pid`` (un)stopped: signals are delivered asynchronously,
    and a fault's instant must be when it took effect."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = proc_state(pid)
        if state is None or (state == "T") == stopped:
            return
        time.sleep(0.001)


def await_gone(pid: int, timeout_s: float = 2.0) -> None:
    """Wait until ``pid`` has exited (a zombie counts as gone: it holds no port)."""
    deadline = time.monotonic() + timeout_s
    while proc_state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.005)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just had free on ``host`` (another process may still take it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class Stoppable(Protocol):
    def stop(self) -> None: ...


_to_stop: set[Stoppable] = set()
_hooks_installed = False


def _stop_all() -> None:
    for owner in list(_to_stop):
        try:
            owner.stop()
        except Exception:  # one owner's failure must not spare the other owners' nodes
            log.exception("cleanup at exit: stopping %r failed", owner)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def register_cleanup(owner: Stoppable) -> None:
    """Have ``owner.stop()`` run at interpreter exit and on SIGTERM/SIGHUP (as SystemExit, so
    ``finally`` blocks run too); a handler someone else installed is left alone."""
    global _hooks_installed
    _to_stop.add(owner)
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _exit_on_signal)


def unregister_cleanup(owner: Stoppable) -> None:
    _to_stop.discard(owner)
