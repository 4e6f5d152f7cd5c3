"""Pegasus wire codec: request and response frames, both directions (PROTOCOL.md §1-§3).

Requests: a 48-byte ``THFT`` v0 header (or the v1 fixed part + request meta), then a strict
TBinaryProtocol message (CALL, rpc name, seqid) whose args struct has one field, id 1.
Responses: u32 length counting itself, the error name, a strict REPLY message header
(``<name>_ACK``, same seqid), then, only for ``ERR_OK``, a result struct with field id 0.

Structs are encoded by the generated code with the plain ``TBinaryProtocol``: the accelerated
protocol would bypass the hand-written rDSN placeholder types. Every decoding failure raises
:class:`~loadgen.errors.ProtocolError`; a claimed length is checked against
``MAX_FRAME_BYTES`` before anything is allocated for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

from ..errors import ProtocolError
from . import error_codes
from .gen.replication import ttypes as replication
from .gen.rpc import ttypes as rpc_meta
from .gen.rrdb import ttypes as rrdb
from .rdsn import ttypes as rdsn

MAGIC = b"THFT"
HEADER_V0_BYTES = 48
HEADER_V1_FIXED_BYTES = 16
#: Frames claiming more than this are rejected before any buffer is sized for them.
MAX_FRAME_BYTES = 64 * 1024 * 1024
#: How much a frame stream's reader asks ``recv`` for at once.
RECV_BYTES = 256 * 1024

_CALL_BEGIN = struct.pack(">I", 0x80010001)
_REPLY_BEGIN = struct.pack(">I", 0x80010002)
_VERSION_MASK = 0xFFFF0000
_VERSION_1 = 0x80010000
_HEADER_V0 = struct.Struct(">4sIIIIIiiIiQ")
_HEADER_V1 = struct.Struct(">4sIII")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_ARGS_FIELD = bytes([TType.STRUCT, 0, 1])
_RESULT_FIELD = bytes([TType.STRUCT, 0, 0])
_STOP = b"\x00"


@dataclass(frozen=True)
class RpcSpec:
    """One RPC: its request name, the class of its single argument and of its result."""

    name: str
    args: type
    result: type | None


_RPCS: dict[str, RpcSpec] = {}


def register_rpc(name: str, args: type, result: type | None) -> RpcSpec:
    """Make an RPC known to the codec (the onebox adds its internal RPCs this way)."""
    spec = RpcSpec(name, args, result)
    existing = _RPCS.get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"RPC {name} already registered with other types")
    _RPCS[name] = spec
    return spec


RPC_PUT = register_rpc("RPC_RRDB_RRDB_PUT", rrdb.update_request, rrdb.update_response).name
RPC_MULTI_PUT = register_rpc("RPC_RRDB_RRDB_MULTI_PUT", rrdb.multi_put_request, rrdb.update_response).name
RPC_REMOVE = register_rpc("RPC_RRDB_RRDB_REMOVE", rdsn.blob, rrdb.update_response).name
RPC_MULTI_REMOVE = register_rpc(
    "RPC_RRDB_RRDB_MULTI_REMOVE", rrdb.multi_remove_request, rrdb.multi_remove_response).name
RPC_GET = register_rpc("RPC_RRDB_RRDB_GET", rdsn.blob, rrdb.read_response).name
RPC_MULTI_GET = register_rpc("RPC_RRDB_RRDB_MULTI_GET", rrdb.multi_get_request, rrdb.multi_get_response).name
RPC_TTL = register_rpc("RPC_RRDB_RRDB_TTL", rdsn.blob, rrdb.ttl_response).name
RPC_SORTKEY_COUNT = register_rpc("RPC_RRDB_RRDB_SORTKEY_COUNT", rdsn.blob, rrdb.count_response).name
RPC_QUERY_CONFIG = register_rpc(
    "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", replication.query_cfg_request,
    replication.query_cfg_response).name


@dataclass(slots=True)
class RequestFrame:
    """A decoded request. ``args`` is None when the RPC name is not registered."""

    rpc_name: str
    seqid: int
    args: Any
    app_id: int = 0
    partition_index: int = 0
    client_timeout_ms: int = 0
    partition_hash: int = 0
    hdr_version: int = 0


@dataclass(slots=True)
class ResponseFrame:
    """A decoded response; ``result`` is set only when ``error == "ERR_OK"``."""

    error: str
    rpc_name: str
    seqid: int
    result: Any = None


# ---------------------------------------------------------------------------- encoding

def encode_struct(obj: Any) -> bytes:
    """Thrift-binary payload of one struct (or placeholder) as the generated code writes it."""
    buf = TMemoryBuffer()
    obj.write(TBinaryProtocol(buf))
    return buf.getvalue()


def _message(begin: bytes, name: bytes, seqid: int) -> bytes:
    return begin + _I32.pack(len(name)) + name + _I32.pack(seqid)


def encode_request(rpc_name: str, seqid: int, args: Any, *, app_id: int = 0,
                   partition_index: int = 0, client_timeout_ms: int = 0,
                   partition_hash: int = 0, hdr_version: int = 0) -> bytes:
    """One complete request frame (header + body)."""
    body = b"".join((_message(_CALL_BEGIN, rpc_name.encode(), seqid), _ARGS_FIELD,
                     encode_struct(args), _STOP))
    if hdr_version == 0:
        header = _HEADER_V0.pack(
            MAGIC, 0, HEADER_V0_BYTES, 0, len(body), 0, app_id, partition_index,
            client_timeout_ms & 0xFFFFFFFF, (app_id * 7919 + partition_index) & 0x7FFFFFFF,
            partition_hash & 0xFFFFFFFFFFFFFFFF)
        return header + body
    if hdr_version == 1:
        meta = encode_struct(rpc_meta.request_meta_v1(
            app_id=app_id, partition_index=partition_index, client_timeout=client_timeout_ms,
            client_partition_hash=rdsn.signed64(partition_hash), is_backup_request=False))
        return _HEADER_V1.pack(MAGIC, 1, len(meta), len(body)) + meta + body
    raise ValueError(f"header version must be 0 or 1, got {hdr_version}")


def encode_response(rpc_name: str, seqid: int, error: str = "ERR_OK", result: Any = None) -> bytes:
    """One complete response frame; ``rpc_name`` is the request's name (``_ACK`` is added)."""
    err = error.encode()
    parts = [_I32.pack(len(err)), err, _message(_REPLY_BEGIN, (rpc_name + "_ACK").encode(), seqid)]
    if error == "ERR_OK":
        if result is None:
            raise ValueError(f"an ERR_OK reply to {rpc_name} needs a result struct")
        parts += [_RESULT_FIELD, encode_struct(result), _STOP]
    payload = b"".join(parts)
    return _U32.pack(len(payload) + 4) + payload


# ---------------------------------------------------------------------------- decoding

class _Reader:
    """Thrift binary reader over one frame that turns every failure into ProtocolError."""

    __slots__ = ("prot", "buf", "size")

    def __init__(self, data: bytes, offset: int = 0):
        self.buf = TMemoryBuffer(data[offset:] if offset else data)
        self.size = len(data) - offset
        self.prot = TBinaryProtocol(self.buf, strictRead=True, string_length_limit=self.size,
                                    container_length_limit=self.size)

    def string(self, what: str) -> str:
        raw = self.buf.read(4)
        if len(raw) != 4:
            raise ProtocolError(f"{what}: truncated")
        n = _I32.unpack(raw)[0]
        if n < 0 or n > self.size:
            raise ProtocolError(f"{what}: bad string length {n}")
        raw = self.buf.read(n)
        if len(raw) != n:
            raise ProtocolError(f"{what}: truncated")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{what}: not UTF-8") from exc

    def message_begin(self, expected_type: int, what: str) -> tuple[str, int]:
        raw = self.buf.read(4)
        if len(raw) != 4:
            raise ProtocolError(f"{what}: truncated before the message header")
        version = _U32.unpack(raw)[0]
        if version & _VERSION_MASK != _VERSION_1:
            raise ProtocolError(f"{what}: message header is not strict thrift (0x{version:08x})")
        if version & 0xFF != expected_type:
            raise ProtocolError(f"{what}: message type {version & 0xFF}, expected {expected_type}")
        name = self.string(f"{what} rpc name")
        raw = self.buf.read(4)
        if len(raw) != 4:
            raise ProtocolError(f"{what}: truncated seqid")
        return name, _I32.unpack(raw)[0]

    def single_field(self, field_id: int, cls: type | None, what: str) -> Any:
        """Read a struct holding (at least) ``field_id`` of type STRUCT; decode it as ``cls``."""
        value = None
        prot = self.prot
        try:
            while True:
                _, ftype, fid = prot.readFieldBegin()
                if ftype == TType.STOP:
                    break
                if fid == field_id and ftype == TType.STRUCT and cls is not None:
                    value = cls()
                    value.read(prot)
                else:
                    prot.skip(ftype)
        except ProtocolError:
            raise
        except Exception as exc:  # thrift, struct and EOF errors from a malformed body
            raise ProtocolError(f"{what}: malformed body ({type(exc).__name__}: {exc})") from exc
        return value


def request_frame_size(prefix: bytes) -> int | None:
    """Total size of the request frame starting at ``prefix``, or None if more bytes are needed."""
    if len(prefix) >= 4 and prefix[:4] != MAGIC:
        raise ProtocolError(f"bad magic {bytes(prefix[:4])!r}, expected {MAGIC!r}")
    if len(prefix) < 8:
        return None
    version = _U32.unpack_from(prefix, 4)[0]
    if version == 0:
        if len(prefix) < 20:
            return None
        hdr_len, _, body_len = struct.unpack_from(">III", prefix, 8)
        if hdr_len != HEADER_V0_BYTES:
            raise ProtocolError(f"v0 header_length {hdr_len}, expected {HEADER_V0_BYTES}")
        total = HEADER_V0_BYTES + body_len
    elif version == 1:
        if len(prefix) < HEADER_V1_FIXED_BYTES:
            return None
        meta_len, body_len = struct.unpack_from(">II", prefix, 8)
        total = HEADER_V1_FIXED_BYTES + meta_len + body_len
    else:
        raise ProtocolError(f"unsupported header version {version}")
    if total > MAX_FRAME_BYTES:
        raise ProtocolError(f"request frame of {total} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return total


def response_frame_size(prefix: bytes) -> int | None:
    """Total size of the response frame starting at ``prefix``, or None if more bytes are needed."""
    if len(prefix) < 4:
        return None
    total = _U32.unpack_from(prefix)[0]
    if total < 4 + 4 + 4:
        raise ProtocolError(f"response length {total} is too small for a reply frame")
    if total > MAX_FRAME_BYTES:
        raise ProtocolError(f"response frame of {total} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return total


def _check_whole(frame: bytes, total: int | None, kind: str) -> None:
    """Raise unless ``frame`` is exactly one frame of ``total`` bytes."""
    if total is None or len(frame) < total:
        raise ProtocolError(f"truncated {kind} frame ({len(frame)} bytes)")
    if len(frame) != total:
        raise ProtocolError(f"{kind} frame has {len(frame) - total} trailing bytes")


def decode_request(frame: bytes) -> RequestFrame:
    """Decode one whole request frame."""
    _check_whole(frame, request_frame_size(frame), "request")
    version = _U32.unpack_from(frame, 4)[0]
    if version == 0:
        (_, _, _, _, _, _, app_id, pidx, client_timeout, _, phash) = _HEADER_V0.unpack_from(frame)
        offset = HEADER_V0_BYTES
    else:
        meta_len = _U32.unpack_from(frame, 8)[0]
        meta = _Reader(frame[HEADER_V1_FIXED_BYTES:HEADER_V1_FIXED_BYTES + meta_len])
        m = rpc_meta.request_meta_v1()
        try:
            m.read(meta.prot)
        except Exception as exc:
            raise ProtocolError(f"malformed v1 request meta ({exc})") from exc
        app_id, pidx = m.app_id or 0, m.partition_index or 0
        client_timeout = m.client_timeout or 0
        phash = (m.client_partition_hash or 0) & 0xFFFFFFFFFFFFFFFF
        offset = HEADER_V1_FIXED_BYTES + meta_len
    reader = _Reader(frame, offset)
    name, seqid = reader.message_begin(1, "request")
    spec = _RPCS.get(name)
    args = reader.single_field(1, spec.args if spec else None, f"request {name}")
    if spec is not None and args is None:
        raise ProtocolError(f"request {name}: missing its argument (field 1)")
    return RequestFrame(name, seqid, args, app_id, pidx, client_timeout, phash, version)


def decode_response(frame: bytes) -> ResponseFrame:
    """Decode one whole response frame."""
    _check_whole(frame, response_frame_size(frame), "response")
    reader = _Reader(frame, 4)
    error = reader.string("response error name")
    if not error_codes.is_decodable(error):
        raise ProtocolError(f"unknown error name {error!r}")
    ack, seqid = reader.message_begin(2, "response")
    if not ack.endswith("_ACK"):
        raise ProtocolError(f"reply name {ack!r} does not end with _ACK")
    name = ack[:-4]
    spec = _RPCS.get(name)
    if spec is None:
        raise ProtocolError(f"reply to unknown RPC {name!r}")
    result = None
    if error == "ERR_OK":
        result = reader.single_field(0, spec.result, f"reply {ack}")
        if result is None and spec.result is not None:
            raise ProtocolError(f"reply {ack}: ERR_OK without a result struct (field 0)")
    return ResponseFrame(error, name, seqid, result)


class FrameSplitter:
    """Cuts a byte stream into whole frames; ``feed`` returns the frames completed so far.

    ``kind`` is ``"request"`` (server side) or ``"response"`` (client side). Garbage raises
    ProtocolError at the first bad header, before any large buffer is reserved.
    """

    __slots__ = ("_buf", "_need", "_size")

    def __init__(self, kind: str):
        if kind not in ("request", "response"):
            raise ValueError(f"kind must be 'request' or 'response', got {kind!r}")
        self._buf = bytearray()
        self._need = None
        self._size = request_frame_size if kind == "request" else response_frame_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every frame it completed, oldest first."""
        buf = self._buf
        buf += data
        frames = []
        while True:
            if self._need is None:
                self._need = self._size(buf[:HEADER_V0_BYTES])
                if self._need is None:
                    break
            if len(buf) < self._need:
                break
            frames.append(bytes(buf[:self._need]))
            del buf[:self._need]
            self._need = None
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes held back waiting for the rest of their frame."""
        return len(self._buf)
