"""Table: one table's operations, how each builds its request and how each reply is read.

Each op is described as an :class:`Op` (rpc, args, partition hash, reply parser, write or not)
and handed to the client's one execute path, a function the client gives the table.

A reply's RocksDB status (the response struct's ``error``) is a result, not a failure: a
missing key reads as None (``get``, ``ttl``) or is left out (``multi_get``, where "incomplete"
means the server's limits cut the answer short); any other non-zero status raises
:class:`~loadgen.errors.StorageError` (code ``STORAGE_<status>``, a definite failure) and is
never retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from ..errors import StorageError
from . import codec, keys, ttl as ttl_clock
from .gen.rrdb import ttypes as rrdb
from .rdsn.ttypes import blob

# RocksDB statuses in a response struct's ``error``.
_STATUS_OK, _STATUS_NOT_FOUND, _STATUS_INCOMPLETE = 0, 1, 7


class Op(NamedTuple):
    """One operation as the client executes it (immutable; a tuple: one is built per op)."""

    name: str                       # "put", "get", ...
    rpc: str                        # request name, e.g. codec.RPC_PUT
    args: Any                       # the thrift args struct, or codec.EncodedArgs
    partition_hash: int             # crc64 of the hash key: picks the partition
    parse: Callable[[Any], Any]     # ERR_OK result -> the op's value; raises StorageError
    write: bool                     # a write may end "unknown" when its fate is not known


#: ``execute(op, intended_start)``: run ``op`` to its value or raise its PegasusError.
Execute = Callable[[Op, "float | None"], Any]


class Table:
    """One table's operations. ``str`` keys and values are encoded as UTF-8.

    Every op takes an optional keyword ``intended_start`` (the monotonic time the op was due
    on an open-loop schedule), copied into its outcomes. Tables come from
    :meth:`Client.open_table <loadgen.pegasus.client.Client.open_table>`.
    """

    def __init__(self, name: str, execute: Execute, partition_count: Callable[[], int]):
        self._name = name
        self._execute = execute
        self._partition_count = partition_count

    @property
    def name(self) -> str:
        """The table's name."""
        return self._name

    @property
    def partition_count(self) -> int:
        """The table's partition count (from its config)."""
        return self._partition_count()

    def partition_of(self, hash_key: bytes | str) -> int:
        """The partition index ``hash_key`` maps to."""
        return keys.partition_index(keys.crc64(keys.to_bytes(hash_key)), self._partition_count())

    def put(self, hash_key: bytes | str, sort_key: bytes | str, value: bytes | str,
            ttl: int = 0, *, intended_start: float | None = None) -> None:
        """Write one value; ``ttl`` in seconds, 0 = never expires."""
        key, phash = keys.key_and_hash(  # _key(), inlined: the put is the hot path
            hash_key if type(hash_key) is bytes else keys.to_bytes(hash_key),
            sort_key if type(sort_key) is bytes else keys.to_bytes(sort_key))
        args = codec.put_args(key, value if type(value) is bytes else keys.to_bytes(value),
                              ttl_clock.expire_ts(ttl) if ttl else 0)
        self._execute(Op("put", codec.RPC_PUT, args, phash, _written, True), intended_start)

    def get(self, hash_key: bytes | str, sort_key: bytes | str, *,
            intended_start: float | None = None) -> bytes | None:
        """The value, or None if the key is missing or expired."""
        key, phash = _key(hash_key, sort_key)
        op = Op(name="get", rpc=codec.RPC_GET, args=blob(key),
                partition_hash=phash, parse=_read_value, write=False)
        return self._execute(op, intended_start)

    def multi_put(self, hash_key: bytes | str, values: Mapping[bytes | str, bytes | str],
                  ttl: int = 0, *, intended_start: float | None = None) -> None:
        """Write several sort keys of one hash key atomically."""
        h = _hash_key(hash_key)
        if not values:
            raise ValueError("multi_put needs at least one sort key")
        args = rrdb.multi_put_request(
            hash_key=blob(h), expire_ts_seconds=ttl_clock.expire_ts(ttl),
            kvs=[rrdb.key_value(key=blob(keys.to_bytes(s)), value=blob(keys.to_bytes(v)))
                 for s, v in values.items()])
        op = Op(name="multi_put", rpc=codec.RPC_MULTI_PUT, args=args,
                partition_hash=keys.crc64(h), parse=_written, write=True)
        self._execute(op, intended_start)

    def multi_get(self, hash_key: bytes | str, sort_keys: Iterable[bytes | str], *,
                  intended_start: float | None = None) -> dict[bytes, bytes]:
        """``{sort_key: value}`` for the sort keys that exist (no sort keys: all of them)."""
        h = _hash_key(hash_key)
        args = rrdb.multi_get_request(
            hash_key=blob(h), sort_keys=[blob(keys.to_bytes(s)) for s in sort_keys],
            max_kv_count=-1, max_kv_size=-1, no_value=False)  # -1: the server's own limits
        op = Op(name="multi_get", rpc=codec.RPC_MULTI_GET, args=args,
                partition_hash=keys.crc64(h), parse=_read_kvs, write=False)
        return self._execute(op, intended_start)

    def remove(self, hash_key: bytes | str, sort_key: bytes | str, *,
               intended_start: float | None = None) -> None:
        """Delete one key (deleting a missing key succeeds)."""
        key, phash = _key(hash_key, sort_key)
        op = Op(name="remove", rpc=codec.RPC_REMOVE, args=blob(key),
                partition_hash=phash, parse=_written, write=True)
        self._execute(op, intended_start)

    def ttl(self, hash_key: bytes | str, sort_key: bytes | str, *,
            intended_start: float | None = None) -> int | None:
        """Seconds left to live: None if the key is missing, -1 if it never expires."""
        key, phash = _key(hash_key, sort_key)
        op = Op(name="ttl", rpc=codec.RPC_TTL, args=blob(key),
                partition_hash=phash, parse=_read_ttl, write=False)
        return self._execute(op, intended_start)


def _key(hash_key: bytes | str, sort_key: bytes | str) -> tuple[bytes, int]:
    """The stored key blob and its partition hash."""
    h = hash_key if type(hash_key) is bytes else keys.to_bytes(hash_key)
    s = sort_key if type(sort_key) is bytes else keys.to_bytes(sort_key)
    return keys.key_and_hash(h, s)


def _hash_key(hash_key: bytes | str) -> bytes:
    h = keys.to_bytes(hash_key)
    if not h:
        raise ValueError("hash_key must not be empty for multi-key operations")
    return h


def _storage_error(status: int) -> StorageError:
    return StorageError(status, f"storage status {status}")


def _written(resp: rrdb.update_response) -> None:
    if resp.error != _STATUS_OK:
        raise _storage_error(resp.error)


def _read_value(resp: rrdb.read_response) -> bytes | None:
    if resp.error == _STATUS_NOT_FOUND:
        return None
    if resp.error != _STATUS_OK:
        raise _storage_error(resp.error)
    return resp.value.data if resp.value is not None else b""


def _read_kvs(resp: rrdb.multi_get_response) -> dict[bytes, bytes]:
    if resp.error == _STATUS_NOT_FOUND:
        return {}
    if resp.error not in (_STATUS_OK, _STATUS_INCOMPLETE):  # incomplete: hit the server's limits
        raise _storage_error(resp.error)
    return {kv.key.data: kv.value.data for kv in resp.kvs or []}


def _read_ttl(resp: rrdb.ttl_response) -> int | None:
    if resp.error == _STATUS_NOT_FOUND:
        return None
    if resp.error != _STATUS_OK:
        raise _storage_error(resp.error)
    return resp.ttl_seconds
