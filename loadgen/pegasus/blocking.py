"""One-shot blocking RPCs over a plain socket: for tools, supervisors and tests, not load.

Under gevent's monkey-patching the socket cooperates like any other; the load path uses the
pipelined sessions of :mod:`loadgen.pegasus.session` instead.
"""

from __future__ import annotations

import socket
from typing import Any

from ..errors import PegasusError, ProtocolError, SessionReset
from . import codec
from .gen.replication import ttypes as replication


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def call(addr: str, rpc_name: str, args: Any, *, app_id: int = 0, partition_index: int = 0,
         timeout_s: float = 2.0) -> codec.ResponseFrame:
    """Send one request on a fresh connection and return the decoded reply."""
    try:
        with socket.create_connection(_split(addr), timeout=timeout_s) as sock:
            sock.sendall(codec.encode_request(rpc_name, 1, args, app_id=app_id,
                                              partition_index=partition_index,
                                              client_timeout_ms=int(timeout_s * 1000)))
            splitter = codec.FrameSplitter("response")
            while True:
                data = sock.recv(65536)
                if not data:
                    raise SessionReset(f"{addr} closed the connection before replying")
                frames = splitter.feed(data)
                if frames:
                    return codec.decode_response(frames[0])
    except socket.timeout as exc:
        raise PegasusError("ERR_TIMEOUT", f"no reply from {addr} within {timeout_s}s") from exc
    except OSError as exc:
        raise SessionReset(f"{addr}: {exc}") from exc


def query_config(meta_addrs: list[str] | str, table: str, *,
                 timeout_s: float = 2.0) -> "replication.query_cfg_response":
    """Ask the metas in turn for ``table``'s partition config; the first good answer wins.

    Raises :class:`PegasusError` with the last failure when no meta answers with ``ERR_OK``.
    """
    addrs = [meta_addrs] if isinstance(meta_addrs, str) else list(meta_addrs)
    last: Exception | None = None
    for addr in addrs:
        try:
            reply = call(addr, codec.RPC_QUERY_CONFIG,
                         replication.query_cfg_request(app_name=table, partition_indices=[]),
                         timeout_s=timeout_s)
        except (PegasusError, ProtocolError) as exc:
            last = exc
            continue
        if reply.error != "ERR_OK":
            last = PegasusError(reply.error, f"meta {addr}")
            continue
        if reply.result.err.name != "ERR_OK":
            last = PegasusError(reply.result.err.name, f"meta {addr} for table {table!r}")
            continue
        return reply.result
    if isinstance(last, PegasusError):
        raise last
    raise PegasusError("ERR_NO_META_SERVER", f"no meta answered among {addrs}: {last}")
