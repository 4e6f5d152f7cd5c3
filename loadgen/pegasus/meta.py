"""Meta session: asks the meta servers for a table's partition config over pipelined sessions.

The search itself (last answering meta first, skip bad metas, follow a non-leader's forward to
the leader) is :func:`loadgen.pegasus.meta_search.find_config`; this module adds a gevent
session per meta, remembers which meta answered last, and counts every query it sends (the
recovery cost a policy pays in meta load).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import PegasusError, ProtocolError, SessionReset
from . import codec
from .gen.replication import ttypes as replication
from .meta_search import find_config
from .session import Session

#: How long one meta may take to answer before the next one is asked.
META_ATTEMPT_TIMEOUT_S = 1.0

#: ``on_query(meta_addr, table, t_start, t_end, error)``: one query sent to one meta
#: (``error`` None when it answered ERR_OK).
QueryListener = Callable[[str, str, float, float, "str | None"], None]


class MetaSession:
    """Partition-config queries over several meta addresses."""

    def __init__(self, addrs: list[str], *, attempt_timeout_s: float = META_ATTEMPT_TIMEOUT_S,
                 on_query: QueryListener | None = None):
        if not addrs:
            raise ValueError("at least one meta address is needed")
        self.addrs = list(addrs)
        self._attempt_timeout_s = attempt_timeout_s
        self._on_query = on_query
        #: Queries sent to any meta so far (each forward hop and each retry counts).
        self.queries = 0
        self._leader = 0  # index in addrs of the meta that answered last
        self._sessions: dict[str, Session] = {}
        self._closed = False

    @property
    def leader(self) -> str:
        """The meta asked first: the last one that answered."""
        return self.addrs[self._leader]

    def query_config(self, table: str, deadline: float) -> replication.query_cfg_response:
        """The config of every partition of ``table``, from the first meta that has it.

        Raises :class:`~loadgen.errors.ServerError` when the leader says the table does not
        exist, :class:`~loadgen.errors.OpTimeout` when ``deadline`` passes, else the last
        meta's error.
        """
        def ask(addr: str, request: replication.query_cfg_request,
                deadline: float) -> codec.ResponseFrame:
            self.queries += 1
            start, error = time.monotonic(), "ERR_OK"
            try:
                reply = self._session(addr).call(codec.RPC_QUERY_CONFIG, request, deadline=deadline)
                error = reply.error
                return reply
            except PegasusError as exc:
                error = exc.code
                raise
            except ProtocolError:
                error = "ERR_INVALID_DATA"
                raise
            finally:
                if self._on_query is not None:
                    self._on_query(addr, table, start, time.monotonic(),
                                   None if error == "ERR_OK" else error)

        resp, self._leader = find_config(self.addrs, table, deadline, ask,
                                         attempt_timeout_s=self._attempt_timeout_s,
                                         first=self._leader)
        return resp

    def close(self) -> None:
        """Close every meta connection."""
        self._closed = True
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def _session(self, addr: str) -> Session:
        session = self._sessions.get(addr)
        if session is None:
            if self._closed:
                raise SessionReset("meta session closed")
            session = self._sessions[addr] = Session(addr)
        return session
