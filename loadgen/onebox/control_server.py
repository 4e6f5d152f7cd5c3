"""The onebox supervisor process: an :class:`Onebox` served on its control socket.

``python -m loadgen.onebox.control_server --spec-json '{...}'`` runs an :class:`Onebox` and,
once it is healthy, serves ``<dir>/control.sock`` (protocol: :mod:`.control_protocol`).
Commands run one at a time on the server's main thread, so concurrent clients are
serialised (a restart never races a kill); a fault's instants are taken in this process, right
at its signal (see :class:`.fault_applied.FaultApplied`). Any request, even garbage or one that
fails unexpectedly, gets an error reply and the server keeps serving; a client that hangs up
early is simply dropped. SIGTERM, SIGINT or SIGHUP stop every node before the supervisor exits.

The spec travels on the command line, not through ``<dir>/spec.json``: that file belongs to
the supervisor holding the dir's lock, and a refused second start must not overwrite it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from ..errors import ClusterError, ConfigError, PegbenchError
from .control_protocol import CONTROL_SOCK, NODE_COMMANDS, START_ERROR, error_reply, sock_address
from .spec import OneboxSpec
from .supervisor import Onebox

ACCEPT_TICK_S = 0.5
#: a client that connects must send its request line within this
REQUEST_READ_TIMEOUT_S = 5.0
#: a request line longer than this is garbage, not a command
MAX_REQUEST_BYTES = 65536


def _execute(box: Onebox, req: Any) -> Any:
    if not isinstance(req, dict):
        raise ConfigError("control request", "request", f"a JSON object, got {req!r:.80}")
    cmd, node = req.get("cmd"), req.get("node")
    if cmd == "status":
        return box.status()
    if cmd in NODE_COMMANDS:
        if not isinstance(node, str):
            raise ConfigError("control request", "node", f"a node name, got {node!r:.80}")
        return getattr(box, cmd)(node).to_dict()
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
        reply = {"ok": False, "error": error_reply(exc)}
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
    print(START_ERROR + json.dumps(error_reply(exc)), file=sys.stderr, flush=True)


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
        with socket.socket(socket.AF_UNIX) as listener, sock_address(sock_path) as name:
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
    ap = argparse.ArgumentParser(prog="python -m loadgen.onebox.control_server",
                                 description="Run a onebox supervisor with a control socket.")
    ap.add_argument("--spec-json", required=True, type=OneboxSpec.from_json,
                    help="the onebox spec as JSON (it becomes <dir>/spec.json)")
    ap.add_argument("--start-timeout", type=float, default=60.0, help="seconds to get healthy")
    ap.add_argument("--node-command", type=json.loads, default=None,
                    help="JSON argv prefix that runs a node (default: loadgen.onebox.node)")
    args = ap.parse_args(argv)
    return serve(args.spec_json, start_timeout_s=args.start_timeout,
                 node_command=args.node_command)


if __name__ == "__main__":
    sys.exit(main())
