"""The one exception tree of pegbench.

    PegbenchError                     root: catch this to catch everything pegbench raises
    ├── ProtocolError                 bytes on the wire that are not a valid Pegasus frame
    ├── PegasusError (.code, .outcome)  an operation failed; .code is a Pegasus error name;
    │   │                             .outcome says whether the op may have applied
    │   ├── OpTimeout                 ERR_TIMEOUT: a deadline passed (an op's, an attempt's or a
    │   │                             meta query's); .last_error is the last failure other than
    │   │                             a timer (None: no reply, ever)
    │   ├── SessionReset              ERR_SESSION_RESET: the connection was lost or refused
    │   │   └── NotConnected          no connection could be had in time: nothing was sent
    │   ├── NoPrimary                 ERR_NO_PRIMARY: the cached config names no primary:
    │   │                             nothing was sent
    │   └── ServerError               any other error name a server replied with
    │       └── StorageError (.status)  an ERR_OK reply whose storage (RocksDB) status is an
    │                                   error; .code is ``STORAGE_<status>``
    ├── ConfigError(file, key, expected)   a bad profile key, flag or argument
    ├── ClusterError                  a cluster could not be started, reached or controlled
    │   └── NodeCrashed(node, exit, last_lines)   a node died without being told to
    ├── AdapterError                  a client adapter process could not be started, answered
    │   │                             nothing in time, or died (loadgen.adapters)
    │   └── AdapterProtocolError      an adapter line that breaks the protocol: names the
    │                                 adapter, the line number and what is wrong
    └── (future branches go here, never beside the root)

Lower-level exceptions (socket.error, gevent.Timeout, thrift errors) are translated into
this tree at exactly one boundary each: the session layer for the network (and, for one-shot
tool RPCs, ``loadgen.pegasus.blocking``), the codec for bytes.

STYLE.md calls the client branch ``ClientError``; it is named ``PegasusError`` here because
that is the client's public API (issue 2). A lost connection and a refused one are both
``SessionReset``: the client cannot tell them apart any better than the Pegasus clients do.
"""

from __future__ import annotations


class PegbenchError(Exception):
    """Root of every exception pegbench raises on purpose."""


class ProtocolError(PegbenchError):
    """A frame that cannot be decoded: bad magic, absurd length, unknown error name, ..."""


class PegasusError(PegbenchError):
    """An operation failed with a Pegasus error name (``.code``, e.g. ``"ERR_TIMEOUT"``).

    ``outcome`` is set on the error an op raises: ``"fail"`` (it certainly did not apply) or
    ``"unknown"`` (a write that may have applied); None on errors that end no op.
    """

    #: Whether a sent request never reached a server (the client knows it was not applied).
    unsent: bool = False

    def __init__(self, code: str, message: str = "", *, last_error: PegasusError | None = None):
        self.code = code
        self.last_error = last_error
        self.outcome: str | None = None
        detail = f"{code}: {message}" if message else code
        if last_error is not None:
            detail += f" (last error: {last_error.code})"
        super().__init__(detail)


class OpTimeout(PegasusError):
    """A deadline passed (the op's, an attempt's or a meta query's) before a reply came.

    ``last_error`` carries the last underlying failure, if any.
    """

    def __init__(self, message: str = "", *, last_error: PegasusError | None = None):
        super().__init__("ERR_TIMEOUT", message, last_error=last_error)


class SessionReset(PegasusError):
    """The connection to a server was lost or could not be established."""

    def __init__(self, message: str = ""):
        super().__init__("ERR_SESSION_RESET", message)


class NotConnected(SessionReset):
    """No connection to the server could be had before the attempt's deadline (refused,
    throttled, or unfinished): the request was never sent."""

    unsent = True


class NoPrimary(PegasusError):
    """The cached partition config names no primary: the request was never sent."""

    unsent = True

    def __init__(self, message: str = ""):
        super().__init__("ERR_NO_PRIMARY", message)


class ServerError(PegasusError):
    """A server answered with a non-OK error name."""


class StorageError(ServerError):
    """A server answered ERR_OK, but the storage engine reported ``status`` (not "not found").

    The server applied nothing and said so: a definite failure, never retried. Its code,
    ``STORAGE_<status>``, keeps it apart from a real ``ERR_UNKNOWN`` in errors-by-kind.
    """

    #: Every storage error's code starts with this (the error registry relies on it).
    CODE_PREFIX = "STORAGE_"

    def __init__(self, status: int, message: str = ""):
        self.status = status
        super().__init__(f"{self.CODE_PREFIX}{status}", message)


class ConfigError(PegbenchError):
    """Bad configuration: names the file (or source), the key and what was expected."""

    def __init__(self, file: str, key: str, expected: str):
        self.file, self.key, self.expected = file, key, expected
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key}: {expected}")


class ClusterError(PegbenchError):
    """A cluster could not be started, reached or controlled."""


class NodeCrashed(ClusterError):
    """A node process exited without being told to; quotes its last output lines."""

    def __init__(self, node: str, exit: int | None, last_lines: list[str]):
        self.node, self.exit, self.last_lines = node, exit, list(last_lines)
        tail = "\n".join("    " + line for line in self.last_lines[-20:])
        super().__init__(f"node {node} crashed (exit {exit}); last output:\n{tail}")


class AdapterError(PegbenchError):
    """A client adapter process (``loadgen.adapters``) failed: not started, silent, or dead."""


class AdapterProtocolError(AdapterError):
    """A line to or from an adapter that breaks the protocol; the message names the adapter,
    the line number and what is wrong."""
