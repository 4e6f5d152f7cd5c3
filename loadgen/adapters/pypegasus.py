"""The adapter for the official Python client, PyPI ``pypegasus3`` (Twisted).

Run in the client's own venv (:mod:`.venvs`) as
``{venv:pypegasus}/bin/python -m loadgen.adapters.pypegasus`` with ``PYTHONPATH`` naming the
folder that holds ``loadgen``. It imports only the standard library, :mod:`.protocol`,
:mod:`loadgen.errors` and the client: the venv has neither gevent nor pegbench's other
dependencies.

The Twisted reactor runs in the main thread; a thread reads stdin and hands each message to
the reactor (``callFromThread``), so many ops are in flight at once and every client call
happens on the reactor, as pypegasus requires. ``hello`` creates ``Pegasus(meta, table,
op_timeout_ms)`` and runs its ``init()`` (again every 0.2 s until it has the table's config,
for at most ``options.init_timeout_s``, default 8 s; then the adapter exits 1 and says why
on stderr), then says ``ready``. Each op calls the client's async API with the op's timeout
and answers with one ``reply``; nothing the client raises or returns ends the process.

How pypegasus3 0.0.1.1 reports the end of a call, and the reply each becomes:

* ``(0, data)``: ok (get: ``data`` is the value); get ``(23, ...)``: ok, not found;
* ``(18, None)``: its own timer fired (``ERR_TIMEOUT``). It never notices a lost connection:
  calls in flight on it, and later calls on the same session, end this way. A write:
  ``unknown``;
* an ``error_types`` member: the server answered with that error name. ``fail`` for a read or
  for a rejection that proves the write did not apply, else ``unknown``;
* another number in a tuple: the storage status of an ERR_OK reply, ``STORAGE_<status>``,
  ``fail``;
* a tuple returned at once instead of a Deferred (``(30, 0)``): no session to the
  partition's primary, nothing sent: ``ERR_INVALID_STATE``, ``fail``;
* None: a failure the client logged and swallowed (a send error, an exception reply);
  ``ERR_UNKNOWN``, a write ``unknown``. An exception raised by a call: ``ERR_UNKNOWN``,
  ``fail`` (nothing was sent).

``multi_put``: the client's ``multi_set`` wraps each sort key and value in ``str()``, which on
Python 3 turns ``b"a"`` into ``"b'a'"``, so it cannot write bytes. The adapter takes
``multi_set``'s own steps (the table's routing, its session, ``operate`` with the op's
timeout) with the blobs built from the bytes.

The client logs to ``./pegasus.log`` from import on; here its logging goes to stderr instead
(level ``options.log_level``, default WARNING), where pegbench keeps the last lines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from importlib import metadata
from typing import Any, TextIO

from loadgen.adapters import protocol as p
from loadgen.errors import AdapterProtocolError

CLIENT = "pypegasus3"
DEFAULT_INIT_TIMEOUT_S = 8.0
INIT_RETRY_S = 0.2
OPTIONS = ("init_timeout_s", "log_level")

# The client's numbers (pypegasus.base.ttypes.error_types; storage statuses 1 and 7 mapped).
_OK, _TIMEOUT, _NOT_FOUND, _INCOMPLETE = 0, 18, 23, 38
_STORAGE_OF = {_NOT_FOUND: 1, _INCOMPLETE: 7}   # statuses the client renumbered

#: Error replies that prove a write was rejected before it applied. The same set as
#: loadgen.pegasus.error_codes (which this process cannot import); a test keeps them equal.
DEFINITE = frozenset({
    "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE", "ERR_INACTIVE_STATE", "ERR_NOT_ENOUGH_MEMBER",
    "ERR_BUSY", "ERR_CAPACITY_EXCEEDED", "ERR_PARENT_PARTITION_MISUSED",
    "ERR_FORWARD_TO_OTHERS", "ERR_SERVICE_NOT_ACTIVE", "ERR_INVALID_PARAMETERS",
    "ERR_HANDLER_NOT_FOUND",
})

log = logging.getLogger("pegbench.adapter.pypegasus")


def import_client() -> Any:
    """``pypegasus.pgclient``, imported without its logging config (a file in the cwd)."""
    import logging.config

    real = logging.config.fileConfig
    logging.config.fileConfig = lambda *a, **kw: None
    try:
        from pypegasus import pgclient
    finally:
        logging.config.fileConfig = real
    return pgclient


def interpret(pg: Any, op: p.Op, result: Any, *, sent: bool) -> p.Reply:
    """The reply for what one client call gave back (see the module docstring)."""
    write = op.op != "get"

    def failed(error: str, message: str, *, definite: bool) -> p.Reply:
        outcome = "fail" if definite or not write or not sent else "unknown"
        return p.Reply(id=op.id, outcome=outcome, error=error, message=message)

    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
        code, data = result
        if not sent:
            try:
                name = pg.error_types(code).name
            except ValueError:
                name = "ERR_UNKNOWN"
            return failed(name, f"the client returned {result!r} at once: no session to the "
                                "partition's primary, nothing sent", definite=True)
        if code == _OK:
            value = bytes(data) if op.op == "get" and data is not None else None
            return p.Reply(id=op.id, outcome="ok", value=value)
        if code == _NOT_FOUND and op.op == "get":
            return p.Reply(id=op.id, outcome="ok")
        if code == _TIMEOUT:
            return failed("ERR_TIMEOUT", f"no reply within {op.timeout_ms} ms (the client's timer)",
                          definite=False)
        status = _STORAGE_OF.get(code, code)
        return failed(f"STORAGE_{status}", f"storage status {status} in an ERR_OK reply",
                      definite=True)
    if isinstance(result, pg.error_types):
        return failed(result.name, f"the server answered {result.name}",
                      definite=result.name in DEFINITE)
    if result is None:
        return failed("ERR_UNKNOWN", "the call ended without a result (the client logged and "
                                     "dropped a failure; see its stderr)", definite=False)
    return failed("ERR_UNKNOWN", f"unexpected result {result!r:.200}", definite=False)


class Adapter:
    """One conversation: the reactor-side handlers of the messages the stdin thread reads."""

    def __init__(self, pg: Any, reactor: Any, out: TextIO):
        self.pg, self.reactor, self.out = pg, reactor, out
        self.client: Any = None
        self.hello: p.Hello | None = None
        self.exit_code = 0
        self.init_deadline = 0.0
        self.init_attempts = 0
        self.ready = False
        self.done = False

    # -- output (reactor thread only) --------------------------------------------------------

    def send(self, msg: p.Message) -> None:
        try:
            self.out.write(p.encode(msg))
            self.out.flush()
        except (OSError, ValueError):   # pegbench is gone: nobody to answer
            self.finish(0)

    def finish(self, code: int) -> None:
        if self.done:
            return
        self.done, self.exit_code = True, code
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                log.exception("closing the client failed")
        self.reactor.stop()

    # -- messages ----------------------------------------------------------------------------

    def dispatch(self, msg: p.Message) -> None:
        if self.done:
            return
        if isinstance(msg, p.Hello):
            if self.hello is not None:
                return self.protocol_error("a second 'hello'")
            self.on_hello(msg)
        elif self.hello is None:
            self.protocol_error(f"expected 'hello' first, got {type(msg).__name__.lower()!r}")
        elif isinstance(msg, p.Op):
            self.on_op(msg)
        elif isinstance(msg, p.Stop):
            self.send(p.Bye())
            self.finish(0)

    def protocol_error(self, what: str) -> None:
        log.error("pegbench broke the protocol: %s", what)
        self.finish(2)

    def on_eof(self) -> None:
        log.warning("stdin closed without 'stop': exiting")
        self.finish(0)

    def on_hello(self, hello: p.Hello) -> None:
        self.hello = hello
        unknown = sorted(set(hello.options) - set(OPTIONS))
        if unknown:
            log.warning("ignoring unknown option(s) %s (known: %s)", unknown, list(OPTIONS))
        level = hello.options.get("log_level")
        if isinstance(level, str):
            logging.getLogger().setLevel(level.upper())
        timeout_s = float(hello.options.get("init_timeout_s", DEFAULT_INIT_TIMEOUT_S))
        self.init_deadline = self.reactor.seconds() + timeout_s
        # init() may also never end (a connect to a silent address): give up at the deadline
        self.reactor.callLater(timeout_s, self.init_expired)
        self.client = self.pg.Pegasus(list(hello.meta), hello.table, hello.op_timeout_ms)
        self.init()

    def init(self) -> None:
        self.init_attempts += 1
        try:
            d = self.client.init()
        except Exception:
            log.exception("the client's init() raised")
            return self.after_init(None)
        d.addBoth(self.after_init)

    def after_init(self, _: Any) -> None:
        if self.done or self.ready:
            return
        if self.client.table.query_cfg_response is not None:   # init found the table
            self.ready = True
            ops = ["put", "get"] + (["multi_put"] if hasattr(self.pg.Pegasus, "multi_set") else [])
            self.send(p.Ready(client=CLIENT, version=metadata.version(CLIENT), ops=ops))
        elif self.reactor.seconds() + INIT_RETRY_S < self.init_deadline:
            self.reactor.callLater(INIT_RETRY_S, self.init)
        else:
            self.init_expired()

    def init_expired(self) -> None:
        if self.done or self.ready:
            return
        assert self.hello is not None
        log.error("no config for table %r from meta %s after %d init() attempts",
                  self.hello.table, ",".join(self.hello.meta), self.init_attempts)
        self.finish(1)

    def on_op(self, op: p.Op) -> None:
        try:
            result = self.call(op)
        except Exception as e:   # the client's bug or a state it cannot handle: nothing sent
            log.exception("op %d (%s) raised", op.id, op.op)
            return self.send(p.Reply(id=op.id, outcome="fail", error="ERR_UNKNOWN",
                                     message=f"the client raised {type(e).__name__}: {e}"))
        if not isinstance(result, self.pg.defer.Deferred):
            return self.send(interpret(self.pg, op, result, sent=False))
        result.addCallbacks(lambda r: interpret(self.pg, op, r, sent=True),
                            lambda f: p.Reply(id=op.id, outcome="fail" if op.op == "get" else "unknown",
                                              error="ERR_UNKNOWN", message=f.getErrorMessage()))
        result.addCallback(self.send)
        result.addErrback(lambda f: log.error("op %d: %s", op.id, f.getTraceback()))

    def call(self, op: p.Op) -> Any:
        """Start ``op`` on the client: a Deferred, or what the client returned at once."""
        client, timeout = self.client, op.timeout_ms
        if op.op == "put":
            return client.set(op.hash_key, op.sort_key, op.value, 0, timeout)
        if op.op == "get":
            return client.get(op.hash_key, op.sort_key, timeout)
        # multi_set's steps with byte blobs (module docstring)
        pg, table = self.pg, client.table
        peer = table.get_hash_key_pid(op.hash_key)
        session = table.get_session(peer)
        if not session:
            return pg.error_types.ERR_INVALID_STATE.value, 0
        kvs = [pg.key_value(pg.blob(k), pg.blob(v))
               for k, v in zip(op.sort_keys or (), op.values or (), strict=True)]
        request = pg.multi_put_request(pg.blob(op.hash_key), kvs, 0)
        return session.operate(pg.RrdbMultiPutOperator(peer, request), timeout)


def read_stdin(adapter: Adapter, stdin: Any) -> None:
    """The stdin thread: decode each line and hand it to the reactor."""
    call = adapter.reactor.callFromThread
    lineno = 0
    for line in stdin:
        lineno += 1
        if not line.strip():
            continue
        try:
            msg = p.decode(line, adapter="pegbench", lineno=lineno, allowed=p.TO_ADAPTER)
        except AdapterProtocolError as e:
            call(adapter.protocol_error, str(e))
            return
        call(adapter.dispatch, msg)
        if isinstance(msg, p.Stop):
            return
    call(adapter.on_eof)


def _setup_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Twisted's own errors (an unhandled Deferred error, an exception in a protocol) to stderr;
    # redirectStandardIO=False: stdout stays ours
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def main() -> int:
    # The protocol gets fd 1 to itself; a stray print of the client goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _setup_logging()
    pg = import_client()
    from twisted.internet import reactor

    adapter = Adapter(pg, reactor, out)
    threading.Thread(target=read_stdin, args=(adapter, sys.stdin.buffer), daemon=True,
                     name="stdin").start()
    reactor.run()
    return adapter.exit_code


if __name__ == "__main__":
    code = main()
    # os._exit, not sys.exit: the stdin thread may still be blocked in a read (after an init
    # failure, say), and the interpreter aborts (SIGABRT) when it finalizes around one.
    sys.stderr.flush()
    os._exit(code)
