"""One-shot blocking RPCs over a plain socket: for tools, supervisors and tests, not load.

Under gevent's monkey-patching the socket cooperates like any other; the load path uses the
pipelined sessions of :mod:`loadgen.pegasus.session` instead. Nothing here needs gevent.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from ..errors import OpTimeout, SessionReset
from . import codec
from .addr import parse_addr
from .gen.replication import ttypes as replication
from .meta_search import find_config


def call(addr: str, rpc_name: str, args: Any, *, app_id: int = 0, partition_index: int = 0,
         timeout_s: float = 2.0) -> codec.ResponseFrame:
    """Send one request on a fresh connection and return the decoded reply.

    Raises :class:`OpTimeout` when connecting or the reply takes longer than ``timeout_s``,
    :class:`SessionReset` when the connection fails, :class:`ProtocolError` for a bad reply.
    """
    try:
        with socket.create_connection(parse_addr(addr), timeout=timeout_s) as sock:
            sock.sendall(codec.encode_request(rpc_name, 1, args, app_id=app_id,
                                              partition_index=partition_index,
                                              client_timeout_ms=int(timeout_s * 1000)))
            splitter = codec.FrameSplitter("response")
            while True:
                data = sock.recv(codec.RECV_BYTES)
                if not data:
                    raise SessionReset(f"{addr} closed the connection before replying")
                frames = splitter.feed(data)
                if frames:
                    return codec.decode_response(frames[0])
    except TimeoutError as exc:
        raise OpTimeout(f"no reply from {addr} within {timeout_s}s") from exc
    except OSError as exc:
        raise SessionReset(f"{addr}: {exc}") from exc


def query_config(meta_addrs: list[str] | str, table: str, *,
                 timeout_s: float = 2.0) -> replication.query_cfg_response:
    """``table``'s partition config from the metas, found as the client finds it.

    Each meta gets ``timeout_s`` to answer, the whole search ``timeout_s`` per address given.
    Raises :class:`~loadgen.errors.ServerError` when the table does not exist, else the last
    failure (see :func:`loadgen.pegasus.meta_search.find_config`).
    """
    addrs = [meta_addrs] if isinstance(meta_addrs, str) else list(meta_addrs)

    def ask(addr: str, request: replication.query_cfg_request,
            deadline: float) -> codec.ResponseFrame:
        return call(addr, codec.RPC_QUERY_CONFIG, request,
                    timeout_s=max(0.001, deadline - time.monotonic()))

    resp, _ = find_config(addrs, table, time.monotonic() + timeout_s * max(1, len(addrs)), ask,
                          attempt_timeout_s=timeout_s)
    return resp
