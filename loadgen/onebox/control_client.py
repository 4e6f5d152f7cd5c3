"""The client half of the onebox control socket: start, command and stop a background supervisor.

:class:`OneboxControl` is the typed client: its fault commands return a
:class:`.fault_applied.FaultApplied` whose instants were taken in the supervisor right at the
signal (CLOCK_MONOTONIC, comparable with ``time.monotonic()`` here), so a fault event's
t_inject/t_heal do not carry the 100-300 ms of a CLI round trip. :func:`request` is the
untyped JSON call underneath; :func:`start_background` and :func:`stop` start and stop the
supervisor (``python -m loadgen.onebox.control_server``). :func:`stop` also stops a
supervisor that cannot answer (still starting, hung, or SIGSTOPped): SIGTERM+SIGCONT, then
SIGKILL, whose death signal takes the nodes down.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ClusterError, ConfigError
from ..node_actions import KILL, PAUSE, RESTART, RESUME, TERMINATE
from .control_protocol import CONTROL_SOCK, START_ERROR, SUPERVISOR_LOG, raise_reply_error, sock_address
from .fault_applied import FaultApplied
from .node_process import NODE_PID
from .ownership import owned_error, owner_pid
from .process import await_gone, live_pid, proc_state, signal_group
from .spec import OneboxSpec

__all__ = ["OneboxControl", "FaultApplied", "request", "start_background", "stop"]

#: the module a background supervisor runs (``python -m``)
SERVER_MODULE = "loadgen.onebox.control_server"
#: a restart waits for the node's READY, so replies may take this long
REPLY_TIMEOUT_S = 60.0
STOP_WAIT_S = 15.0
#: a supervisor signalled to stop gets this long before SIGKILL
KILL_GRACE_S = 10.0


class OneboxControl:
    """Typed commands to the background supervisor of ``dir`` (one connection per call).

    Every fault command returns once the fault took effect in the supervisor (a killed node is
    reaped, a paused one stopped, a restarted one READY), with the instants it was applied.
    Errors are raised as the supervisor reported them: ConfigError (an unknown node),
    NodeCrashed (a node died untold: reported before acting, so nothing was done),
    ClusterError (anything else, or no supervisor).
    """

    def __init__(self, dir: str | Path, *, timeout_s: float = REPLY_TIMEOUT_S):
        self.dir = Path(dir).resolve()
        self.timeout_s = timeout_s

    def status(self) -> dict:
        """The status document (``pegbench onebox status``)."""
        return request(self.dir, "status", timeout_s=self.timeout_s)

    def kill(self, node: str) -> FaultApplied:
        """SIGKILL ``node``'s group; ``t_signal`` None if it was already dead."""
        return self._fault(KILL, node)

    def pause(self, node: str) -> FaultApplied:
        """SIGSTOP ``node``'s group; returns once the kernel shows it stopped."""
        return self._fault(PAUSE, node)

    def resume(self, node: str) -> FaultApplied:
        """SIGCONT a paused ``node``."""
        return self._fault(RESUME, node)

    def restart(self, node: str) -> FaultApplied:
        """SIGTERM ``node`` if alive (``t_signal``), start it again, wait for its READY
        (``t_ready``)."""
        return self._fault(RESTART, node)

    def terminate(self, node: str) -> FaultApplied:
        """SIGTERM ``node`` and wait for it to exit (SIGKILL after a grace); ``t_signal`` None
        if it was already dead. It stays down until ``restart``."""
        return self._fault(TERMINATE, node)

    def stop(self) -> bool:
        """Stop the supervisor and every node; False if none was running."""
        return stop(self.dir)

    def _fault(self, action: str, node: str) -> FaultApplied:
        result = request(self.dir, action, node, timeout_s=self.timeout_s)
        try:
            return FaultApplied.from_dict(result)
        except ValueError as exc:
            raise ClusterError(f"onebox supervisor in {self.dir} answered {action} {node} "
                               f"with no fault record: {exc}") from None


def request(dir: str | Path, cmd: str, node: str | None = None, *,
            timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    """Send one command to the supervisor of ``dir``; its result, or its error re-raised."""
    dir = Path(dir).resolve()
    try:
        with socket.socket(socket.AF_UNIX) as sock, sock_address(dir / CONTROL_SOCK) as name:
            sock.settimeout(timeout_s)
            sock.connect(name)
            sock.sendall(json.dumps({"cmd": cmd, "node": node}).encode() + b"\n")
            line = sock.makefile("rb").readline()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        owner = owner_pid(dir)
        if owner is not None:  # the socket appears only once the cluster is healthy
            raise ClusterError(f"the onebox supervisor in {dir} (pid {owner}) is not serving "
                               f"yet (still starting?); see {dir / SUPERVISOR_LOG}") from exc
        raise ClusterError(f"no onebox supervisor is running in {dir} "
                           f"(start one with: pegbench onebox start --dir {dir})") from exc
    except OSError as exc:
        raise ClusterError(f"onebox supervisor in {dir} did not answer {cmd!r}: {exc}") from exc
    try:
        reply = json.loads(line)
        ok, result, err = reply["ok"], reply.get("result"), reply.get("error")
    except (ValueError, TypeError, KeyError):
        raise ClusterError(f"onebox supervisor in {dir} gave no valid reply to {cmd!r} "
                           f"(got {line[:80]!r}); see {dir / SUPERVISOR_LOG}") from None
    if ok:
        return result
    raise_reply_error(err)


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").strip()


def start_background(spec: OneboxSpec, *, start_timeout_s: float = 60.0,
                     node_command: Sequence[str] | None = None) -> str:
    """Start a detached supervisor for ``spec``, wait until it is healthy; the meta address.

    The supervisor outlives the caller (own session, no death signal tied to it); its output
    goes to ``<dir>/supervisor.log``. Interrupted or failed, it is stopped before this returns.
    """
    dir = Path(spec.dir).resolve()
    owner = owner_pid(dir)
    if owner is not None:
        raise owned_error(dir, owner)
    log = dir / SUPERVISOR_LOG
    try:
        dir.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
    except OSError as exc:
        raise ConfigError("", "dir", f"a writable directory; {dir}: "
                                     f"{exc.strerror or exc}") from None
    offset = log.stat().st_size
    argv = [sys.executable, "-m", SERVER_MODULE, "--spec-json",
            replace(spec, dir=str(dir)).to_json(),
            "--start-timeout", str(start_timeout_s)]
    if node_command:
        argv += ["--node-command", json.dumps(list(node_command))]
    with out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + start_timeout_s + STOP_WAIT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                failure = _log_since(log, offset).rpartition(START_ERROR)[2].split("\n", 1)[0]
                if failure:
                    raise_reply_error(json.loads(failure))
                raise ClusterError(f"supervisor exited with {proc.returncode}; see {log}")
            if (dir / CONTROL_SOCK).exists():
                with contextlib.suppress(ClusterError):
                    request(dir, "status", timeout_s=5.0)
                    return spec.meta_addr
            time.sleep(0.05)
        raise ClusterError(f"onebox in {dir} not ready after {start_timeout_s}s; see {log}")
    except BaseException:
        # nothing half-started survives the caller: the supervisor stops its nodes on SIGTERM
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()  # its nodes die with it (PR_SET_PDEATHSIG)
                proc.wait()
        raise


def stop(dir: str | Path, *, timeout_s: float = STOP_WAIT_S) -> bool:
    """Stop the supervisor of ``dir`` and all its nodes; False if none was running.

    A supervisor that does not answer within ``timeout_s`` (still starting, hung, or
    SIGSTOPped) gets SIGTERM and SIGCONT, then SIGKILL after KILL_GRACE_S; nodes recorded in
    the dir that still live after that (verified by start time) are killed too.
    """
    dir = Path(dir).resolve()
    pid = owner_pid(dir)
    if pid is None:
        return False
    answered = False
    if pid < 0 or proc_state(pid) != "T":  # a stopped supervisor cannot answer
        with contextlib.suppress(ClusterError):
            request(dir, "stop", timeout_s=timeout_s)
            answered = True
    if not answered and pid > 0:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
        if not _await_released(dir, pid, KILL_GRACE_S):
            _signal(pid, signal.SIGKILL)
    if not _await_released(dir, pid, timeout_s):
        raise ClusterError(f"onebox supervisor in {dir} (pid {pid}) did not stop "
                           f"within {timeout_s}s")
    _kill_recorded_nodes(dir)
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _await_released(dir: Path, pid: int, timeout_s: float) -> bool:
    """Wait until nobody holds the dir's lock and ``pid`` is gone (the lock goes first)."""
    deadline = time.monotonic() + timeout_s
    while owner_pid(dir) is not None or (pid > 0 and proc_state(pid) not in (None, "Z")):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_recorded_nodes(dir: Path) -> None:
    """SIGKILL the group of every node still alive per its pid file; normally there is none
    (the supervisor stopped them, or its death signal did)."""
    for pid_file in dir.glob(f"*/{NODE_PID}"):
        pid = live_pid(pid_file)
        if pid is not None:
            signal_group(pid, signal.SIGKILL)
            await_gone(pid)
