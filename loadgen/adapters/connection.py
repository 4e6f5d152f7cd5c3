"""One adapter process and the ops in flight on it.

:class:`AdapterConnection` starts the adapter command in its own process group, says ``hello``
and waits (bounded) for ``ready``, then sends ops as they are submitted; a reader greenlet
matches replies to ids. Every op ends in an :class:`OpResult` timed like pegbench's own client:
``start`` when the line was written, ``end`` when its reply was read.

Failure rules:

* no reply within the op's ``timeout_ms`` + ``reply_grace_s`` → ``unknown``, "adapter reply
  timeout"; a reply coming later is ignored and counted (``late_replies``);
* the adapter exits (EOF on its stdout) → every op in flight ``unknown``, naming the exit status
  and the time; later submits raise :class:`AdapterError` at once;
* a protocol violation (a garbage line, a reply to an id never sent or answered twice) → the
  connection is *broken*: we can no longer trust which reply belongs to which op, so every op
  in flight ends ``unknown``, the error is kept in ``error`` and the process is stopped.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import signal
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import gevent
from gevent import subprocess
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from loadgen.errors import AdapterError, AdapterProtocolError
from loadgen.pegasus.outcome import OP, UNKNOWN, Outcome

from . import protocol as p

log = logging.getLogger(__name__)

#: The error names of ops the adapter did not answer (the detail is in ``OpResult.message``):
#: no reply in time, the adapter exited, it broke the protocol, or pegbench stopped it.
REPLY_TIMEOUT = "ADAPTER_REPLY_TIMEOUT"
EXITED, BROKEN, STOPPED = "ADAPTER_EXITED", "ADAPTER_BROKEN", "ADAPTER_STOPPED"
STDERR_LINES = 50


@dataclass(frozen=True)
class OpResult:
    """How one op ended, timed on pegbench's side (``time.monotonic()`` seconds)."""

    id: int
    op: str
    start: float
    end: float
    outcome: str                # ok | fail | unknown
    error: str | None
    message: str = ""
    value: bytes | None = None

    def to_outcome(self, *, table: str, policy: str, partition: int = -1, node: str | None = None,
                   intended_start: float | None = None) -> Outcome:
        """The op-level ``Outcome`` pegbench's recorders take (one attempt: the client's
        own retries are not seen)."""
        return Outcome(level=OP, op=self.op, table=table, partition=partition, node=node,
                       start=self.start,
                       end=self.end, outcome=self.outcome, error=self.error, attempt=1,
                       refreshed=False, policy=policy, intended_start=intended_start)


@dataclass
class _Flight:
    op: str
    start: float
    result: AsyncResult
    timer: Any
    callback: Callable[[OpResult], None] | None


# Every live connection, so an exiting pegbench never leaves an adapter behind.
_LIVE: weakref.WeakSet[AdapterConnection] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for conn in list(_LIVE):
        conn.kill()


class AdapterConnection:
    """A started adapter process; use as a context manager or call :meth:`stop`."""

    def __init__(self, command: Sequence[str], *, meta: Sequence[str], table: str,
                 op_timeout_ms: int = 1000, options: dict[str, Any] | None = None,
                 name: str | None = None, handshake_timeout_s: float = 10.0,
                 reply_grace_s: float = 1.0, stop_timeout_s: float = 2.0,
                 env: dict[str, str] | None = None):
        self.command = list(command)
        self.name = name or shlex.join(self.command)
        self.hello = p.Hello(meta=list(meta), table=table, op_timeout_ms=op_timeout_ms,
                             options=dict(options or {}))
        self.handshake_timeout_s, self.reply_grace_s = handshake_timeout_s, reply_grace_s
        self.stop_timeout_s, self.env = stop_timeout_s, env
        self.conv = p.Conversation(self.name)
        self.proc: subprocess.Popen | None = None
        self.ready: p.Ready | None = None
        #: Why the connection cannot take ops any more (died, broken, stopped); None while usable.
        self.error: AdapterError | None = None
        self.protocol_errors: list[AdapterProtocolError] = []
        self.died_at: float | None = None          # wall-clock time.time() of the exit seen
        #: wall-clock time the adapter failed on its own (exited or broke the protocol while
        #: pegbench still used it); None if it ran until stopped
        self.failed_at: float | None = None
        self.exit_code: int | None = None
        self.bye = False
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._flights: dict[int, _Flight] = {}
        self._write_lock = Semaphore()
        self._ready_result: AsyncResult = AsyncResult()
        self._greenlets: list[gevent.Greenlet] = []
        self._stopping = False
        self._stopped = Event()

    # -- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def late_replies(self) -> int:
        return self.conv.late_replies

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    def stderr_tail(self) -> list[str]:
        """The adapter's last stderr lines (at most ``STDERR_LINES``)."""
        return list(self._stderr)

    def start(self) -> p.Ready:
        """Start the process, say hello, wait for ready; on any failure the process is gone."""
        if self.proc is not None:
            raise AdapterError(f"adapter {self.name}: already started")
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, env=self.env)
        except OSError as e:
            raise AdapterError(f"adapter {self.name}: cannot start: {e}") from None
        _LIVE.add(self)
        self._greenlets = [gevent.spawn(self._read_stdout), gevent.spawn(self._read_stderr)]
        try:
            try:
                self._write(p.encode(self.hello))
            except AdapterError:
                pass   # it died at once: the reader's EOF names its exit status, a better error
            ready = self._ready_result.get(timeout=self.handshake_timeout_s)
        except gevent.Timeout:
            self.stop()
            raise AdapterError(f"adapter {self.name}: no 'ready' within {self.handshake_timeout_s:g} s"
                               f"{self._stderr_note()}") from None
        except AdapterError:
            self.stop()
            raise
        self.ready = ready
        return ready

    def stop(self) -> None:
        """Ask the adapter to stop (``stop``, wait for it to exit a bounded time), then SIGTERM
        and SIGKILL its process group; ops still in flight end ``unknown``. Idempotent."""
        if self.proc is None:
            return
        if self._stopping:   # another greenlet (a broken connection's) is stopping it: wait
            self._stopped.wait(timeout=3 * self.stop_timeout_s + 10)
            return
        self._stopping = True
        try:
            self._stop()
        finally:
            self._stopped.set()

    def _stop(self) -> None:
        assert self.proc is not None
        if self.error is None:
            self.error = AdapterError(f"adapter {self.name}: stopped")
        if self.proc.poll() is None and self.ready is not None and not self._broken():
            try:
                self._write(p.encode(p.Stop()))
            except AdapterError:
                pass   # already gone: the waits below see it
            self._wait(self.stop_timeout_s)
        for sig, wait_s in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            self._signal_group(sig)
            self._wait(wait_s)
        self._signal_group(signal.SIGKILL)   # strays the adapter started in its group
        self._record_exit()
        self._fail_all(STOPPED, f"adapter {self.name} stopped")
        gevent.joinall(self._greenlets, timeout=2.0)
        for g in self._greenlets:
            g.kill(block=False)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        _LIVE.discard(self)

    def kill(self) -> None:
        """At interpreter exit: no waiting, SIGKILL the group."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)

    # -- ops ---------------------------------------------------------------------------------

    def submit(self, op: str, hash_key: bytes, sort_key: bytes | None = None,
               value: bytes | None = None, *, sort_keys: Sequence[bytes] | None = None,
               values: Sequence[bytes] | None = None, timeout_ms: int | None = None,
               callback: Callable[[OpResult], None] | None = None) -> AsyncResult:
        """Send one op; returns an AsyncResult set to its :class:`OpResult` (``callback`` too
        receives it, possibly from the hub: it must not block). Raises :class:`AdapterError` at once if the connection is not usable."""
        if self.error is not None:
            raise AdapterError(f"cannot submit {op}: {self.error}")
        if self.ready is None:
            raise AdapterError(f"adapter {self.name}: not started")
        timeout_ms = timeout_ms or self.hello.op_timeout_ms
        op_id = self.conv.new_op(op)
        msg = p.Op(id=op_id, op=op, hash_key=hash_key, timeout_ms=timeout_ms, sort_key=sort_key,
                   value=value, sort_keys=list(sort_keys) if sort_keys is not None else None,
                   values=list(values) if values is not None else None)
        line = p.encode(msg)
        result = AsyncResult()
        # A loop timer, not a greenlet per op: thousands can be in flight.
        timer = gevent.get_hub().loop.timer(timeout_ms / 1000 + self.reply_grace_s)
        start = time.monotonic()
        self._flights[op_id] = _Flight(op, start, result, timer, callback)
        timer.start(self._expire, op_id)
        try:
            self._write(line)
        except AdapterError:
            pass   # the reader sees the EOF and ends this op with the exit status
        return result

    def call(self, op: str, hash_key: bytes, sort_key: bytes | None = None,
             value: bytes | None = None, **kw: Any) -> OpResult:
        """:meth:`submit` and wait for the result (always set: by reply, timeout or death)."""
        return self.submit(op, hash_key, sort_key, value, **kw).get()

    # -- internals ---------------------------------------------------------------------------

    def _write(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        with self._write_lock:   # lines from concurrent submits must not interleave
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
            except (OSError, ValueError) as e:   # ValueError: the pipe was closed
                raise AdapterError(f"adapter {self.name}: cannot write: {e}") from None

    def _finish(self, op_id: int, outcome: str, error: str | None, message: str = "",
                value: bytes | None = None, end: float | None = None) -> None:
        flight = self._flights.pop(op_id, None)
        if flight is None:
            return
        flight.timer.close()
        result = OpResult(id=op_id, op=flight.op, start=flight.start, end=end or time.monotonic(),
                          outcome=outcome, error=error, message=message, value=value)
        flight.result.set(result)
        if flight.callback is not None:
            try:   # a caller's bug must not kill the reader (or the hub, from a timer)
                flight.callback(result)
            except Exception:
                log.exception("adapter %s: op callback failed", self.name)

    def _expire(self, op_id: int) -> None:
        if self.conv.expire(op_id):
            self._finish(op_id, UNKNOWN, REPLY_TIMEOUT,
                         f"no reply from adapter {self.name} within the op timeout + "
                         f"{self.reply_grace_s:g} s grace")

    def _fail_all(self, error: str, message: str) -> None:
        for op_id in list(self._flights):
            self.conv.pending.pop(op_id, None)
            self._finish(op_id, UNKNOWN, error, message)

    def _broken(self) -> bool:
        return bool(self.protocol_errors)

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        lineno = 0
        while True:
            try:
                raw = self.proc.stdout.readline()
            except (OSError, ValueError):
                raw = b""
            end = time.monotonic()
            if not raw:
                break
            lineno += 1
            try:
                msg = p.decode(raw, adapter=self.name, lineno=lineno, allowed=p.FROM_ADAPTER)
                if self.conv.ready is None:
                    self._ready_result.set(self.conv.on_ready(msg, lineno))
                elif isinstance(msg, p.Reply):
                    if self.conv.on_reply(msg, lineno) is not None:
                        self._finish(msg.id, msg.outcome, msg.error, msg.message, msg.value, end)
                elif isinstance(msg, p.Bye):
                    self.bye = True
                else:
                    raise AdapterProtocolError(
                        f"adapter {self.name}: line {lineno}: unexpected second 'ready'")
            except AdapterProtocolError as e:
                self._break(e)
                return
        self._on_eof()

    def _break(self, error: AdapterProtocolError) -> None:
        self.protocol_errors.append(error)
        if not self._stopping and self.failed_at is None:
            self.failed_at = time.time()
        if not self._ready_result.ready():
            self._ready_result.set_exception(error)
            return   # start() stops the process and raises it
        if self.error is None:
            self.error = error
        self._fail_all(BROKEN, f"adapter {self.name} broken: {error}")
        gevent.spawn(self.stop)   # not from this greenlet: stop() joins it

    def _on_eof(self) -> None:
        self._wait(self.stop_timeout_s)
        self._record_exit()
        if not self._stopping and self.failed_at is None:
            self.failed_at = self.died_at or time.time()
        status = _describe_exit(self.exit_code)
        stamp = time.strftime("%H:%M:%S", time.gmtime(self.died_at or time.time()))
        what = f"adapter {self.name} exited ({status}) at {stamp} UTC"
        if not self._ready_result.ready():
            self._ready_result.set_exception(AdapterError(f"{what} before 'ready'{self._stderr_note()}"))
            return
        if self.error is None:
            self.error = AdapterError(what + self._stderr_note())
        self._fail_all(EXITED, what)

    def _record_exit(self) -> None:
        if self.proc is not None and self.exit_code is None and self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            self.died_at = time.time()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:
                self._stderr.append(raw.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def _stderr_note(self) -> str:
        tail = self.stderr_tail()[-10:]
        return "; stderr:\n" + "\n".join("    " + line for line in tail) if tail else ""

    def _wait(self, timeout_s: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)   # start_new_session: its pid is its group's id
        except (ProcessLookupError, PermissionError):
            pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit status {code}"
