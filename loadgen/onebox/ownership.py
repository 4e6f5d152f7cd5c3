"""Who owns a onebox dir: ``<dir>/supervisor.lock`` and ``<dir>/supervisor.pid``.

One supervisor at a time owns a dir by holding an flock on ``supervisor.lock``; the kernel
releases it when the owner dies, so a crashed supervisor never blocks the next one. The pid
file (``pid starttime``, see :mod:`.process`) only names the owner for error messages and for
signalling a supervisor that cannot answer; it is believed only while the lock is held.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import ClusterError, ConfigError
from .process import live_pid, write_pid_file

SUPERVISOR_PID = "supervisor.pid"
SUPERVISOR_LOCK = "supervisor.lock"
#: a client probing the dir lock holds it for an instant: a claim retries this long
CLAIM_RETRY_S = 0.5
POLL_S = 0.02


def try_flock(fd: int) -> bool:
    """Take an exclusive flock on ``fd`` without waiting; False if someone else holds it."""
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
        if not try_flock(fd):
            return live_pid(Path(dir) / SUPERVISOR_PID) or -1
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return None


def owned_error(dir: Path, pid: int | None) -> ClusterError:
    """The error for a dir another live supervisor owns."""
    return ClusterError(f"onebox dir {dir} is owned by a live supervisor (pid {pid}); "
                        f"stop it first: pegbench onebox stop --dir {dir}")


def claim(dir: Path) -> int:
    """Take ``dir``'s lock for this process and record our pid; the lock's fd (keep it open).

    ConfigError if the dir cannot be written, ClusterError naming the live owner if another
    supervisor holds it. A pid file left by a dead owner is overwritten: we hold the lock, so
    any recorded supervisor is dead or a reused pid.
    """
    try:
        dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(dir / SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError("", "dir", f"a writable directory; {dir}: "
                                     f"{exc.strerror or exc}") from None
    deadline = time.monotonic() + CLAIM_RETRY_S
    while not try_flock(fd) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if not try_flock(fd):
        os.close(fd)
        raise owned_error(dir, live_pid(dir / SUPERVISOR_PID)) from None
    write_pid_file(dir / SUPERVISOR_PID, os.getpid())
    return fd


def release(dir: Path, fd: int) -> None:
    """Give up a dir taken with :func:`claim`: remove our pid file, then drop the lock."""
    (dir / SUPERVISOR_PID).unlink(missing_ok=True)
    os.close(fd)
