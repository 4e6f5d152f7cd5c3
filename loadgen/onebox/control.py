"""The onebox control socket: a background supervisor process and its client.

``python -m loadgen.onebox.control --spec-json '{...}'`` runs an :class:`Onebox` and, once
it is healthy, serves ``<dir>/control.sock``: one JSON request line per connection
(``{"cmd": "status"|"kill"|"pause"|"resume"|"restart"|"stop", "node": ...}``), one JSON reply
line (``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {...}}``). Commands run one
at a time on the server's main thread, so concurrent CLI commands are serialised (a restart
never races a kill). Any request, even garbage or one that fails unexpectedly, gets an error
reply and the server keeps serving; a client that hangs up early is simply dropped.
SIGTERM, SIGINT or SIGHUP stop every node before the supervisor exits.

The spec travels on the command line, not through ``<dir>/spec.json``: that file belongs to
the supervisor holding the dir's lock, and a refused second start must not overwrite it.

The client half (:func:`start_background`, :func:`request`, :func:`stop`) is what
``pegbench onebox ...`` calls. :func:`stop` also stops a supervisor that cannot answer
(still starting, hung, or SIGSTOPped): SIGTERM+SIGCONT, then SIGKILL, whose death signal
takes the nodes down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Sequence

from ..errors import ClusterError, ConfigError, NodeCrashed, PegbenchError
from .node_process import NODE_PID
from .process import await_gone, live_pid, proc_state, signal_group
from .spec import OneboxSpec
from .supervisor import Onebox, owned_error, owner_pid

CONTROL_SOCK = "control.sock"
SUPERVISOR_LOG = "supervisor.log"
ACCEPT_TICK_S = 0.5
#: a client that connects must send its request line within this
REQUEST_READ_TIMEOUT_S = 5.0
#: a restart waits for the node's READY, so replies may take this long
REPLY_TIMEOUT_S = 60.0
STOP_WAIT_S = 15.0
#: a supervisor signalled to stop gets this long before SIGKILL
KILL_GRACE_S = 10.0
#: a request line longer than this is garbage, not a command
MAX_REQUEST_BYTES = 65536
_AF_UNIX_MAX = 107  # sun_path holds 108 bytes including the NUL
NODE_COMMANDS = ("kill", "pause", "resume", "restart")
#: Prefix of the JSON error line a supervisor that fails to start prints last in its log
#: (an error reply, decoded like one by start_background).
START_ERROR = "control: start failed: "


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


def _execute(box: Onebox, req: Any) -> Any:
    if not isinstance(req, dict):
        raise ConfigError("control request", "request", f"a JSON object, got {req!r:.80}")
    cmd, node = req.get("cmd"), req.get("node")
    if cmd == "status":
        return box.status()
    if cmd in NODE_COMMANDS:
        if not isinstance(node, str):
            raise ConfigError("control request", "node", f"a node name, got {node!r:.80}")
        getattr(box, cmd)(node)
        return asdict(box.nodes[node])
    raise ConfigError("control request", "cmd",
                      f"one of status, stop, {', '.join(NODE_COMMANDS)}; got {cmd!r:.80}")


def _handle(box: Onebox, conn: socket.socket) -> bool:
    """Answer one connection; True if it asked the supervisor to stop."""
    conn.settimeout(REQUEST_READ_TIMEOUT_S)
    try:
        line = conn.makefile("rb").readline(MAX_REQUEST_BYTES + 1)
    except OSError as exc:  # the client never sent its line
        print(f"control: dropped a client: {exc}", file=sys.stderr, flush=True)
        return False
    stopping = False
    try:
        if not line.endswith(b"\n"):  # hung up mid-request, or an endless line
            raise ConfigError("control request", "request",
                              f"one JSON line of at most {MAX_REQUEST_BYTES} bytes")
        try:
            req = json.loads(line)
        except ValueError:
            raise ConfigError("control request", "request",
                              f"one JSON object per line, got {line[:80]!r}") from None
        stopping = isinstance(req, dict) and req.get("cmd") == "stop"
        if stopping:
            box.stop()  # before replying: the client's "stopped" means no node runs
        reply = {"ok": True, "result": None if stopping else _execute(box, req)}
    except PegbenchError as exc:
        reply = {"ok": False, "error": _error_reply(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug must not take the nodes down with it
        traceback.print_exc(file=sys.stderr)
        reply = {"ok": False, "error": {"kind": "ClusterError",
                                        "message": f"supervisor failed: {exc!r}"}}
    if not reply["ok"]:
        print(f"control: {reply['error']}", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")
    return stopping


def _serve(box: Onebox, listener: socket.socket) -> None:
    """Answer requests one at a time until a ``stop`` request arrives."""
    listener.settimeout(ACCEPT_TICK_S)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            if _handle(box, conn):
                return


def _start_failed(exc: PegbenchError) -> None:
    print(f"pegbench: error: {exc}", file=sys.stderr)
    print(START_ERROR + json.dumps(_error_reply(exc)), file=sys.stderr, flush=True)


def _raise_reply_error(err: dict) -> None:
    """Raise the exception an error reply (or a START_ERROR line) describes."""
    if err["kind"] == "ConfigError":
        raise ConfigError(err["file"], err["key"], err["expected"])
    if err["kind"] == "NodeCrashed":
        raise NodeCrashed(err["node"], err["exit"], err["last_lines"])
    raise ClusterError(err["message"])


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def serve(spec: OneboxSpec, *, start_timeout_s: float, node_command: Sequence[str] | None) -> int:
    """Run the onebox and its control socket until stopped; the process exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    box = Onebox.from_spec(spec, start_timeout_s=start_timeout_s, node_command=node_command)
    sock_path = box.dir / CONTROL_SOCK
    serving = False  # the socket is ours to remove only once we bound it (we own the dir)
    try:
        box.start()
        sock_path.unlink(missing_ok=True)  # we own the dir lock: an old socket is stale
        with socket.socket(socket.AF_UNIX) as listener, _sock_address(sock_path) as name:
            listener.bind(name)
            serving = True
            listener.listen()
            print(f"control: onebox healthy, meta {spec.meta_addr}, serving {sock_path}",
                  file=sys.stderr, flush=True)
            _serve(box, listener)
        return 0
    except PegbenchError as exc:
        _start_failed(exc)
        return 2 if isinstance(exc, ConfigError) else 3
    except Exception as exc:  # noqa: BLE001 - reported like any runtime failure
        traceback.print_exc(file=sys.stderr)
        _start_failed(ClusterError(f"supervisor failed: {exc!r}"))
        return 3
    finally:
        # a second signal must not cut the cleanup short
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        if serving:
            sock_path.unlink(missing_ok=True)
        box.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadgen.onebox.control",
                                 description="Run a onebox supervisor with a control socket.")
    ap.add_argument("--spec-json", required=True, type=OneboxSpec.from_json,
                    help="the onebox spec as JSON (it becomes <dir>/spec.json)")
    ap.add_argument("--start-timeout", type=float, default=60.0, help="seconds to get healthy")
    ap.add_argument("--node-command", type=json.loads, default=None,
                    help="JSON argv prefix that runs a node (default: loadgen.onebox.node)")
    args = ap.parse_args(argv)
    return serve(args.spec_json, start_timeout_s=args.start_timeout,
                 node_command=args.node_command)


# ----------------------------------------------------------------------- client

def request(dir: str | Path, cmd: str, node: str | None = None, *,
            timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    """Send one command to the supervisor of ``dir``; its result, or its error re-raised."""
    dir = Path(dir).resolve()
    try:
        with socket.socket(socket.AF_UNIX) as sock, _sock_address(dir / CONTROL_SOCK) as name:
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
    _raise_reply_error(err)


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
    argv = [sys.executable, "-m", "loadgen.onebox.control", "--spec-json",
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
                    _raise_reply_error(json.loads(failure))
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


if __name__ == "__main__":
    sys.exit(main())
