"""The onebox control socket: a background supervisor process and its client.

``python -m loadgen.onebox.control --spec <dir>/spec.json`` runs an :class:`Onebox` and, once
it is healthy, serves ``<dir>/control.sock``: one JSON request line per connection
(``{"cmd": "status"|"kill"|"pause"|"resume"|"restart"|"stop", "node": ...}``), one JSON reply
line (``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {...}}``). Commands run on
the server's main thread, so restarted nodes are spawned by the long-lived supervisor (their
PR_SET_PDEATHSIG is tied to the spawning thread), never by a short-lived CLI process.
SIGTERM, SIGINT or SIGHUP stop every node before the supervisor exits.

The client half (:func:`start_background`, :func:`request`, :func:`stop`) is what
``pegbench onebox ...`` calls.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ClusterError, ConfigError, NodeCrashed, PegbenchError
from .process import live_pid, proc_state
from .spec import OneboxSpec
from .supervisor import SUPERVISOR_LOCK, SUPERVISOR_PID, Onebox

CONTROL_SOCK = "control.sock"
SUPERVISOR_LOG = "supervisor.log"
ACCEPT_TICK_S = 0.5
#: a client that connects must send its request line within this
REQUEST_READ_TIMEOUT_S = 5.0
#: a restart waits for the node's READY, so replies may take this long
REPLY_TIMEOUT_S = 60.0
STOP_WAIT_S = 15.0
_AF_UNIX_MAX = 107  # sun_path holds 108 bytes including the NUL
NODE_COMMANDS = ("kill", "pause", "resume", "restart")


@contextlib.contextmanager
def _sock_address(path: Path) -> Iterator[str]:
    """A bindable/connectable name for ``path``, even past the AF_UNIX length limit
    (through the ``/proc/self/fd`` view of an open handle on its directory)."""
    if len(os.fsencode(path)) <= _AF_UNIX_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# ----------------------------------------------------------------------- server

def _error_reply(exc: BaseException) -> dict:
    if isinstance(exc, ConfigError):
        return {"kind": "ConfigError", "file": exc.file, "key": exc.key,
                "expected": exc.expected}
    if isinstance(exc, NodeCrashed):
        return {"kind": "NodeCrashed", "node": exc.node, "exit": exc.exit,
                "last_lines": exc.last_lines}
    return {"kind": "ClusterError", "message": str(exc)}


def _execute(box: Onebox, req: dict) -> Any:
    cmd, node = req.get("cmd"), req.get("node")
    if cmd == "status":
        return box.status()
    if cmd in NODE_COMMANDS:
        getattr(box, cmd)(node)
        return asdict(box.nodes[node])
    raise ConfigError("control request", "cmd",
                      f"one of status, stop, {', '.join(NODE_COMMANDS)}; got {cmd!r}")


def _serve(box: Onebox, listener: socket.socket) -> None:
    """Answer requests one at a time until a ``stop`` request arrives."""
    listener.settimeout(ACCEPT_TICK_S)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(REQUEST_READ_TIMEOUT_S)
            try:
                req = json.loads(conn.makefile("rb").readline())
                stopping = req.get("cmd") == "stop"
                reply = {"ok": True, "result": None if stopping else _execute(box, req)}
            except (OSError, ValueError, AttributeError) as exc:
                print(f"control: bad request: {exc}", file=sys.stderr, flush=True)
                continue
            except PegbenchError as exc:
                stopping, reply = False, {"ok": False, "error": _error_reply(exc)}
            if stopping:
                box.stop()  # before replying: the client's "stopped" means no node runs
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")
            if stopping:
                return


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def serve(spec: OneboxSpec, *, start_timeout_s: float, node_command: Sequence[str] | None) -> int:
    """Run the onebox and its control socket until stopped; the process exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    box = Onebox.from_spec(spec, start_timeout_s=start_timeout_s, node_command=node_command)
    sock_path = box.dir / CONTROL_SOCK
    try:
        box.start()
        sock_path.unlink(missing_ok=True)  # we own the dir lock: an old socket is stale
        with socket.socket(socket.AF_UNIX) as listener, _sock_address(sock_path) as name:
            listener.bind(name)
            listener.listen()
            print(f"control: onebox healthy, meta {spec.meta_addr}, serving {sock_path}",
                  file=sys.stderr, flush=True)
            _serve(box, listener)
        return 0
    except ConfigError as exc:
        print(f"pegbench: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except PegbenchError as exc:
        print(f"pegbench: error: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        # a second signal must not cut the cleanup short
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        sock_path.unlink(missing_ok=True)
        box.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadgen.onebox.control",
                                 description="Run a onebox supervisor with a control socket.")
    ap.add_argument("--spec", required=True, help="the onebox spec.json")
    ap.add_argument("--start-timeout", type=float, default=60.0, help="seconds to get healthy")
    ap.add_argument("--node-command", type=json.loads, default=None,
                    help="JSON argv prefix that runs a node (default: loadgen.onebox.node)")
    args = ap.parse_args(argv)
    return serve(OneboxSpec.read(args.spec), start_timeout_s=args.start_timeout,
                 node_command=args.node_command)


# ----------------------------------------------------------------------- client

def owner_pid(dir: str | Path) -> int | None:
    """The pid of the live supervisor owning ``dir``, None if none (stale files ignored)."""
    lock = Path(dir) / SUPERVISOR_LOCK
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return live_pid(Path(dir) / SUPERVISOR_PID) or -1  # locked, pid file not yet written
    finally:
        os.close(fd)  # closing drops a lock we may have just taken
    return None


def request(dir: str | Path, cmd: str, node: str | None = None, *,
            timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    """Send one command to the supervisor of ``dir``; its result, or its error re-raised."""
    path = Path(dir).resolve() / CONTROL_SOCK
    try:
        with socket.socket(socket.AF_UNIX) as sock, _sock_address(path) as name:
            sock.settimeout(timeout_s)
            sock.connect(name)
            sock.sendall(json.dumps({"cmd": cmd, "node": node}).encode() + b"\n")
            line = sock.makefile("rb").readline()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ClusterError(f"no onebox supervisor is running in {Path(dir).resolve()} "
                           f"(start one with: pegbench onebox start --dir {dir})") from exc
    except OSError as exc:
        raise ClusterError(f"onebox supervisor in {dir} did not answer {cmd!r}: {exc}") from exc
    if not line:
        raise ClusterError(f"onebox supervisor in {dir} closed the connection on {cmd!r}")
    reply = json.loads(line)
    if reply["ok"]:
        return reply["result"]
    err = reply["error"]
    if err["kind"] == "ConfigError":
        raise ConfigError(err["file"], err["key"], err["expected"])
    if err["kind"] == "NodeCrashed":
        raise NodeCrashed(err["node"], err["exit"], err["last_lines"])
    raise ClusterError(err["message"])


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace").strip()


def start_background(spec: OneboxSpec, *, start_timeout_s: float = 60.0,
                     node_command: Sequence[str] | None = None) -> str:
    """Start a detached supervisor for ``spec``, wait until it is healthy; the meta address.

    The supervisor outlives the caller (own session, no death signal tied to it); its output
    goes to ``<dir>/supervisor.log``.
    """
    dir = Path(spec.dir).resolve()
    owner = owner_pid(dir)
    if owner is not None:
        raise ClusterError(f"onebox dir {dir} is owned by a live supervisor (pid {owner}); "
                           f"stop it first: pegbench onebox stop --dir {dir}")
    dir.mkdir(parents=True, exist_ok=True)
    spec_path = replace(spec, dir=str(dir)).write()
    log = dir / SUPERVISOR_LOG
    offset = log.stat().st_size if log.exists() else 0
    argv = [sys.executable, "-m", "loadgen.onebox.control", "--spec", str(spec_path),
            "--start-timeout", str(start_timeout_s)]
    if node_command:
        argv += ["--node-command", json.dumps(list(node_command))]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    deadline = time.monotonic() + start_timeout_s + STOP_WAIT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterError(_log_since(log, offset).rpartition("pegbench: error: ")[2]
                                   or f"supervisor exited with {proc.returncode}")
            if (dir / CONTROL_SOCK).exists():
                with contextlib.suppress(ClusterError):
                    request(dir, "status", timeout_s=5.0)
                    return spec.meta_addr
            time.sleep(0.05)
        raise ClusterError(f"onebox in {dir} not ready after {start_timeout_s}s; "
                           f"see {log}")
    except BaseException:
        # nothing half-started survives the caller: the supervisor stops its nodes on SIGTERM
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_WAIT_S)
        raise


def stop(dir: str | Path, *, timeout_s: float = STOP_WAIT_S) -> bool:
    """Stop the supervisor of ``dir`` and all its nodes; False if none was running."""
    pid = owner_pid(dir)
    if pid is None:
        return False
    try:
        request(dir, "stop", timeout_s=timeout_s)
    except ClusterError:
        if pid > 0:  # alive but not answering (e.g. not healthy yet): signal it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    # the lock goes before the process does: wait for both
    while owner_pid(dir) is not None or (pid > 0 and proc_state(pid) not in (None, "Z")):
        if time.monotonic() > deadline:
            raise ClusterError(f"onebox supervisor in {dir} (pid {pid}) did not stop "
                               f"within {timeout_s}s")
        time.sleep(0.05)
    return True


if __name__ == "__main__":
    sys.exit(main())
