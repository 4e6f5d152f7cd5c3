"""The ``command`` injector: actions as shell commands from ``[injector.command]`` templates.

For real clusters (ssh, kubectl, systemctl): each template may use ``{node}`` (``replica2``),
``{host}`` and ``{port}`` (the node's address). Each command runs under ``/bin/sh -c`` in its
own process group with ``timeout_s``; on timeout the whole group is SIGKILLed. Its output goes
to a temporary file, not a pipe, so a grandchild that keeps the pipe open (a daemon the command
started) cannot hang the run. Failures (non-zero exit, timeout, no template) are returned as
records, never raised.

Instants: nothing better than the command's own span is known. The fault took effect somewhere
in ``[t_sent, t]``; events use ``t``, the instant the command returned (``command-end``): no
write can succeed on a killed or paused primary between the real signal and then, so TTR-first
and the server failover time shrink by at most the command's tail, and client lag (their
difference) not at all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import ClassVar

from ..config.schema import COMMAND_TEMPLATES, CommandTemplates
from .cooperative import run_blocking
from .injector import COMMAND_END, ActionRecord, Node

#: How much of a command's output (its end) a record keeps.
OUTPUT_TAIL_CHARS = 2000
SHELL = "/bin/sh"


@dataclass(frozen=True)
class CommandRun:
    """How one command ended (monotonic seconds)."""

    exit_code: int | None   # None: killed on timeout
    timed_out: bool
    output: str             # stdout and stderr, the last OUTPUT_TAIL_CHARS
    t_sent: float
    t_returned: float


def run_command(command: str, timeout_s: float) -> CommandRun:
    """Run ``command`` in its own process group; SIGKILL the group after ``timeout_s``."""
    with tempfile.TemporaryFile() as out:
        t_sent = time.monotonic()
        proc = subprocess.Popen([SHELL, "-c", command], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        except BaseException:  # interrupted: never leave the command behind
            _kill_group(proc.pid)
            proc.wait()
            raise
        t_returned = time.monotonic()
        out.seek(max(0, out.seek(0, os.SEEK_END) - OUTPUT_TAIL_CHARS))
        output = out.read().decode(errors="replace")
    return CommandRun(exit_code=None if timed_out else proc.returncode, timed_out=timed_out,
                      output=output, t_sent=t_sent, t_returned=t_returned)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.killpg(pgid, signal.SIGKILL)


class CommandInjector:
    """Runs the template of each action (``kill``, ``pause``, ``resume``, ``restart``)."""

    name: ClassVar[str] = "command"
    injects: ClassVar[bool] = True

    def __init__(self, templates: CommandTemplates):
        self.templates = templates

    def command_for(self, action: str, node: Node) -> str | None:
        """The shell command for ``action`` on ``node``; None without a template for it."""
        template = self.templates.template(action) if action in COMMAND_TEMPLATES else None
        if template is None:
            return None
        return template.format(node=node.name, host=node.host, port=node.port)

    def apply(self, action: str, node: Node) -> ActionRecord:
        """Run the action's command; ``t`` is when it returned (see the module docstring)."""
        command = self.command_for(action, node)
        if command is None:
            now = time.monotonic()
            return ActionRecord(action=action, node=node.name, ok=False, t=None,
                                instant=COMMAND_END, t_sent=now, t_returned=now,
                                error=f"no [injector.command] template for {action!r} "
                                      f"(templates: {', '.join(COMMAND_TEMPLATES)})")
        run = run_blocking(run_command, command, self.templates.timeout_s)
        detail = {"command": command, "exit_code": run.exit_code, "timed_out": run.timed_out,
                  "output": run.output}
        error = ""
        if run.timed_out:
            error = (f"timed out after {self.templates.timeout_s:g} s "
                     "(its process group was killed)")
        elif run.exit_code != 0:
            last = run.output.strip().splitlines()[-1:] or [""]
            error = f"exit status {run.exit_code}" + (f": {last[0]}" if last[0] else "")
        ok = not error
        # A command that failed or was cut off may have done part of its work (a signal sent,
        # a node stopped): its fault must be healed like one that succeeded.
        return ActionRecord(action=action, node=node.name, ok=ok,
                            t=run.t_returned if ok else None, instant=COMMAND_END,
                            t_sent=run.t_sent, t_returned=run.t_returned, error=error,
                            uncertain=not ok, detail=detail)
