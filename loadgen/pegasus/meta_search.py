"""Meta search: find a table's partition config among the meta servers, over any transport.

It asks the meta at ``first``, then the others in order. A meta that is down, slow or not
serving is skipped; a non-leader's ``ERR_FORWARD_TO_OTHERS`` names the leader in
``partitions[0].primary``, which is added to the list if it is new and asked next (as the Go
client does since apache/incubator-pegasus#1916). The transport is a function, so the gevent
meta session (:mod:`loadgen.pegasus.meta`) and one-shot tool RPCs
(:mod:`loadgen.pegasus.blocking`) share this logic; nothing here needs gevent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import OpTimeout, PegasusError, ProtocolError, ServerError
from . import codec
from .gen.replication import ttypes as replication

#: ``ask(addr, request, deadline)``: one query-config call to one meta, its reply frame; raises
#: PegasusError or ProtocolError when that meta gave no usable frame.
Ask = Callable[[str, "replication.query_cfg_request", float], codec.ResponseFrame]

# Answers that are about the table, not about the meta that gave them: asking another won't help.
_FINAL_ERRORS = frozenset({"ERR_OBJECT_NOT_FOUND", "ERR_APP_NOT_EXIST"})


def find_config(addrs: list[str], table: str, deadline: float, ask: Ask, *,
                attempt_timeout_s: float, first: int = 0,
                ) -> tuple[replication.query_cfg_response, int]:
    """``table``'s config from the first meta that has it, and that meta's index in ``addrs``.

    A leader named by a forward that is not in ``addrs`` is appended to it. Raises
    :class:`ServerError` when a meta says the table does not exist, :class:`OpTimeout` when
    ``deadline`` (a ``time.monotonic()`` instant) passes, else the last meta's error.
    """
    request = replication.query_cfg_request(app_name=table, partition_indices=[])
    last: PegasusError | ProtocolError | None = None
    index = first
    # Each meta at most twice, plus one hop per forward: enough to meet a leader we
    # were told about, bounded even when metas forward in a circle.
    for _ in range(2 * len(addrs) + 2):
        now = time.monotonic()
        if now >= deadline:
            raise OpTimeout(f"no meta answered for table {table!r}",
                            last_error=last if isinstance(last, PegasusError) else None)
        addr = addrs[index]
        try:
            reply = ask(addr, request, min(deadline, now + attempt_timeout_s))
        except (PegasusError, ProtocolError) as exc:
            last, index = exc, (index + 1) % len(addrs)
            continue
        error = reply.error if reply.error != "ERR_OK" else answer_error(reply.result)
        if error == "ERR_OK":
            return reply.result, index
        last = ServerError(error, f"meta {addr}, table {table!r}")
        if error in _FINAL_ERRORS:
            raise last
        leader = forward_target(reply) if error == "ERR_FORWARD_TO_OTHERS" else ""
        index = _index_of(addrs, leader) if leader else (index + 1) % len(addrs)
    raise last or PegasusError("ERR_NO_META_SERVER", f"no meta answered for {table!r}")


def answer_error(resp: replication.query_cfg_response) -> str:
    """The error name inside an ``ERR_OK`` reply; a reply without one is invalid data."""
    return resp.err.name if resp.err is not None and resp.err.name else "ERR_INVALID_DATA"


def forward_target(reply: codec.ResponseFrame) -> str:
    """The leader a non-leader meta points at, or "" if it names none."""
    parts = (reply.result.partitions if reply.result is not None else None) or []
    return str(parts[0].primary) if parts and parts[0].primary is not None else ""


def _index_of(addrs: list[str], addr: str) -> int:
    if addr not in addrs:
        addrs.append(addr)
    return addrs.index(addr)
