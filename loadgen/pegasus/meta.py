"""Meta session: asks the meta servers for a table's partition config, finding the leader.

It asks the last meta that answered first, then the others in order. A meta that is down,
slow or not serving is skipped; a non-leader's ``ERR_FORWARD_TO_OTHERS`` names the leader in
``partitions[0].primary``, which is added to the list if it is new and asked next (as the Go
client does since apache/incubator-pegasus#1916).
"""

from __future__ import annotations

import time

from ..errors import OpTimeout, PegasusError, ServerError, SessionReset
from . import codec
from .gen.replication import ttypes as replication
from .session import Session

#: How long one meta may take to answer before the next one is asked.
META_ATTEMPT_TIMEOUT_S = 1.0
# Answers that are about the table, not about the meta that gave them: asking another won't help.
_FINAL_ERRORS = frozenset({"ERR_OBJECT_NOT_FOUND", "ERR_APP_NOT_EXIST"})


class MetaSession:
    """Partition-config queries over several meta addresses."""

    def __init__(self, addrs: list[str], *, attempt_timeout_s: float = META_ATTEMPT_TIMEOUT_S):
        if not addrs:
            raise ValueError("at least one meta address is needed")
        self.addrs = list(addrs)
        self._attempt_timeout_s = attempt_timeout_s
        self._leader = 0  # index in addrs of the meta that answered last
        self._sessions: dict[str, Session] = {}
        self._closed = False

    @property
    def leader(self) -> str:
        """The meta asked first: the last one that answered."""
        return self.addrs[self._leader]

    def query_config(self, table: str, deadline: float) -> "replication.query_cfg_response":
        """The config of every partition of ``table``, from the first meta that has it.

        Raises :class:`ServerError` when the leader says the table does not exist,
        :class:`OpTimeout` when ``deadline`` passes, else the last meta's error.
        """
        request = replication.query_cfg_request(app_name=table, partition_indices=[])
        last: PegasusError | None = None
        index = self._leader
        # Each meta at most twice, plus one hop per forward: enough to meet a leader we
        # were told about, bounded even when metas forward in a circle.
        for _ in range(2 * len(self.addrs) + 2):
            now = time.monotonic()
            if now >= deadline:
                raise OpTimeout(f"no meta answered for table {table!r}", last_error=last)
            addr = self.addrs[index]
            try:
                reply = self._session(addr).call(
                    codec.RPC_QUERY_CONFIG, request,
                    deadline=min(deadline, now + self._attempt_timeout_s))
            except PegasusError as exc:
                last, index = exc, (index + 1) % len(self.addrs)
                continue
            error = reply.error if reply.error != "ERR_OK" else _answer_error(reply.result)
            if error == "ERR_OK":
                self._leader = index
                return reply.result
            last = ServerError(error, f"meta {addr}, table {table!r}")
            if error in _FINAL_ERRORS:
                raise last
            leader = _forward_target(reply) if error == "ERR_FORWARD_TO_OTHERS" else ""
            index = self._index_of(leader) if leader else (index + 1) % len(self.addrs)
        raise last or PegasusError("ERR_NO_META_SERVER", f"no meta answered for {table!r}")

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

    def _index_of(self, addr: str) -> int:
        if addr not in self.addrs:
            self.addrs.append(addr)
        return self.addrs.index(addr)


def _answer_error(resp: "replication.query_cfg_response") -> str:
    """The error name inside an ``ERR_OK`` reply; a reply without one is invalid data."""
    return resp.err.name if resp.err is not None and resp.err.name else "ERR_INVALID_DATA"


def _forward_target(reply: codec.ResponseFrame) -> str:
    """The leader a non-leader meta points at, or "" if it names none."""
    parts = (reply.result.partitions if reply.result is not None else None) or []
    return str(parts[0].primary) if parts and parts[0].primary is not None else ""
