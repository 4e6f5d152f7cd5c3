"""Pegasus client operations on a partition replica: requests to mutations, reads to responses.

Write ops become a mutation (see :mod:`kv_store`) plus a function that turns the commit
decree and the live cells the mutation's deletes removed into the response struct; read ops are answered from the applied store. Storage
status codes are RocksDB's (0 ok, 1 not found, 4 invalid argument, 7 incomplete).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..pegasus import codec
from ..pegasus.gen.rrdb import ttypes as rrdb
from ..pegasus.keys import make_key, split_key
from ..pegasus.rdsn.ttypes import blob
from .kv_store import DELETE, PUT, KVStore, encode_mutation, now_ts

OK, NOT_FOUND, INVALID_ARGUMENT, INCOMPLETE = 0, 1, 4, 7
#: Builds the response of an applied write from its decree and the live cells it removed
#: (counted when applied: earlier writes of the same pipeline may not be applied at plan time).
Finish = Callable[[int, int], Any]
#: (mutation or None when nothing needs replicating, finish)
WritePlan = tuple[bytes | None, Finish]

WRITE_RPCS = frozenset({codec.RPC_PUT, codec.RPC_MULTI_PUT, codec.RPC_REMOVE, codec.RPC_MULTI_REMOVE})
READ_RPCS = frozenset({codec.RPC_GET, codec.RPC_MULTI_GET, codec.RPC_TTL, codec.RPC_SORTKEY_COUNT})


#: What a request with missing fields or an unsplittable key blob raises while it is handled.
_MALFORMED = (AttributeError, TypeError, ValueError, struct.error)


class MalformedRequest(Exception):
    """A client request the replica cannot act on: a missing field or a bad key blob."""


class Ops:
    """Client op handlers of one replica server; responses name it as ``server``."""

    def __init__(self, app_id: int, server: str):
        self.app_id = app_id
        self.server = server

    # ------------------------------------------------------------------ writes
    def plan_write(self, rpc: str, args: Any, pidx: int) -> WritePlan:
        """The mutation of a write op and its response builder; MalformedRequest if the
        request could not be applied (checked here, before anything is logged)."""
        try:
            return self._plan_write(rpc, args, pidx)
        except _MALFORMED as exc:
            raise MalformedRequest(str(exc) or type(exc).__name__) from exc

    def _plan_write(self, rpc: str, args: Any, pidx: int) -> WritePlan:
        if rpc == codec.RPC_PUT:
            key = _checked_key(args.key.data)
            mutation = encode_mutation([(PUT, args.expire_ts_seconds or 0, key, args.value.data)])
            return mutation, lambda d, _: self._update(OK, pidx, d)
        if rpc == codec.RPC_REMOVE:
            key = _checked_key(args.data)
            return encode_mutation([(DELETE, 0, key, b"")]), lambda d, _: self._update(OK, pidx, d)
        if rpc == codec.RPC_MULTI_PUT:
            if not args.kvs:
                return None, lambda d, _: self._update(INVALID_ARGUMENT, pidx, 0)
            hk, default_ts = args.hash_key.data, args.expire_ts_seconds or 0
            items = [(PUT, kv.expire_ts_seconds or default_ts, make_key(hk, kv.key.data), kv.value.data)
                     for kv in args.kvs]
            return encode_mutation(items), lambda d, _: self._update(OK, pidx, d)
        # multi_remove
        if not args.sort_keys:
            return None, lambda d, _: self._multi_remove(INVALID_ARGUMENT, 0, pidx, 0)
        hk = args.hash_key.data
        sort_keys = [b.data for b in args.sort_keys]
        mutation = encode_mutation([(DELETE, 0, make_key(hk, sk), b"") for sk in sort_keys])
        return mutation, lambda d, removed: self._multi_remove(OK, removed, pidx, d)

    def _update(self, error: int, pidx: int, decree: int) -> rrdb.update_response:
        return rrdb.update_response(error=error, app_id=self.app_id, partition_index=pidx,
                                    decree=decree, server=self.server)

    def _multi_remove(self, error: int, count: int, pidx: int, decree: int):
        return rrdb.multi_remove_response(error=error, count=count, app_id=self.app_id,
                                          partition_index=pidx, decree=decree, server=self.server)

    # ------------------------------------------------------------------ reads
    def read(self, rpc: str, args: Any, pidx: int, store: KVStore) -> Any:
        """The response struct of a read op; MalformedRequest for a request with holes."""
        try:
            return self._read(rpc, args, pidx, store)
        except _MALFORMED as exc:
            raise MalformedRequest(str(exc) or type(exc).__name__) from exc

    def _read(self, rpc: str, args: Any, pidx: int, store: KVStore) -> Any:
        common = {"app_id": self.app_id, "partition_index": pidx, "server": self.server}
        if rpc == codec.RPC_GET:
            cell = store.get(args.data)
            return rrdb.read_response(error=OK if cell else NOT_FOUND,
                                      value=blob(cell[0] if cell else b""), **common)
        if rpc == codec.RPC_TTL:
            cell = store.get(args.data)
            if cell is None:
                return rrdb.ttl_response(error=NOT_FOUND, ttl_seconds=0, **common)
            ttl = -1 if cell[1] == 0 else cell[1] - now_ts()
            return rrdb.ttl_response(error=OK, ttl_seconds=ttl, **common)
        if rpc == codec.RPC_SORTKEY_COUNT:
            return rrdb.count_response(error=OK, count=len(store.live_row(args.data)), **common)
        error, kvs = self._multi_get(args, store)
        return rrdb.multi_get_response(error=error, kvs=kvs, **common)

    @staticmethod
    def _multi_get(req: rrdb.multi_get_request, store: KVStore) -> tuple[int, list]:
        hk = req.hash_key.data
        if req.sort_keys:
            wanted = {b.data for b in req.sort_keys}
            rows = [r for r in store.live_row(hk) if r[0] in wanted]
        else:
            rows = [r for r in store.live_row(hk) if _in_range(req, r[0]) and _matches(req, r[0])]
            if req.reverse:
                rows.reverse()
        max_count = req.max_kv_count if req.max_kv_count and req.max_kv_count > 0 else len(rows)
        max_size = req.max_kv_size if req.max_kv_size and req.max_kv_size > 0 else None
        kvs, size, error = [], 0, OK
        for sk, value, expire_ts in rows:
            if len(kvs) >= max_count or (max_size is not None and size >= max_size):
                error = INCOMPLETE
                break
            size += len(sk) + len(value)
            kvs.append(rrdb.key_value(key=blob(sk), value=blob(b"" if req.no_value else value),
                                      expire_ts_seconds=expire_ts or None))
        return error, kvs


def _checked_key(key: bytes) -> bytes:
    """``key`` if it is a key blob the store can split (ValueError otherwise)."""
    split_key(key)
    return key


def _in_range(req: rrdb.multi_get_request, sk: bytes) -> bool:
    start = req.start_sortkey.data if req.start_sortkey else b""
    stop = req.stop_sortkey.data if req.stop_sortkey else b""
    start_incl = True if req.start_inclusive is None else req.start_inclusive
    stop_incl = False if req.stop_inclusive is None else req.stop_inclusive
    if start and (sk < start or (sk == start and not start_incl)):
        return False
    return not (stop and (sk > stop or (sk == stop and not stop_incl)))


def _matches(req: rrdb.multi_get_request, sk: bytes) -> bool:
    kind = req.sort_key_filter_type or 0
    pattern = req.sort_key_filter_pattern.data if req.sort_key_filter_pattern else b""
    if kind == 0 or not pattern:
        return True
    if kind == 1:
        return pattern in sk
    if kind == 2:
        return sk.startswith(pattern)
    if kind == 3:
        return sk.endswith(pattern)
    return True
