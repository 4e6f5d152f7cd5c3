"""The onebox control socket's protocol, shared by its server and client halves.

``<dir>/control.sock`` carries one JSON request line per connection
(``{"cmd": "status"|"kill"|"pause"|"resume"|"restart"|"terminate"|"stop", "node": ...}``) and
one JSON reply line (``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {...}}``). A node
command's result is a :class:`.fault_applied.FaultApplied` as a JSON object. Errors travel
as ``{"kind": "ConfigError"|"NodeCrashed"|"ClusterError", ...}`` and are raised again on the
client side as the same exception.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ClusterError, ConfigError, NodeCrashed
from ..node_actions import ACTIONS

CONTROL_SOCK = "control.sock"
SUPERVISOR_LOG = "supervisor.log"
NODE_COMMANDS = ACTIONS   # what a node can be told: loadgen.node_actions
#: Prefix of the JSON error line a supervisor that fails to start prints last in its log
#: (an error reply, decoded like one by the client's start_background).
START_ERROR = "control: start failed: "
_AF_UNIX_MAX = 107  # sun_path holds 108 bytes including the NUL


@contextlib.contextmanager
def sock_address(path: Path) -> Iterator[str]:
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


def error_reply(exc: BaseException) -> dict:
    """The ``error`` object of a reply for ``exc``."""
    if isinstance(exc, ConfigError):
        return {"kind": "ConfigError", "file": exc.file, "key": exc.key,
                "expected": exc.expected}
    if isinstance(exc, NodeCrashed):
        return {"kind": "NodeCrashed", "node": exc.node, "exit": exc.exit,
                "last_lines": exc.last_lines}
    return {"kind": "ClusterError", "message": str(exc)}


def raise_reply_error(err: dict) -> None:
    """Raise the exception an error reply (or a START_ERROR line) describes."""
    if err["kind"] == "ConfigError":
        raise ConfigError(err["file"], err["key"], err["expected"])
    if err["kind"] == "NodeCrashed":
        raise NodeCrashed(err["node"], err["exit"], err["last_lines"])
    raise ClusterError(err["message"])
