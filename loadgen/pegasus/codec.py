"""Pegasus wire codec: request and response frames, both directions (PROTOCOL.md §1-§3).

Requests: a 48-byte ``THFT`` v0 header (or the v1 fixed part + request meta), then a strict
TBinaryProtocol message (CALL, rpc name, seqid) whose args struct has one field, id 1.
Responses: u32 length counting itself, the error name, a strict REPLY message header
(``<name>_ACK``, same seqid), then, only for ``ERR_OK``, a result struct with field id 0.

Structs are encoded and decoded by the generated code with the plain ``TBinaryProtocol``: the
accelerated protocol would bypass the hand-written rDSN placeholder types. The put, the hot
path, is the exception, measured (``pegbench bench cpu``) and held to the generated code's
bytes and results by tests/test_codec_fast_paths.py: its argument is built in one join, and
an ERR_OK reply whose result is a flat struct (``update_response``) laid out as the generated
code writes it is read in a few ``unpack_from`` calls; anything else takes the general path.
Every decoding failure raises :class:`~loadgen.errors.ProtocolError`; a claimed length is
checked against ``MAX_FRAME_BYTES`` before anything is allocated for it.
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
#: reply name as its bytes on the wire (``RPC_..._ACK``) -> the RPC
_ACKS: dict[bytes, RpcSpec] = {}


def register_rpc(name: str, args: type, result: type | None) -> RpcSpec:
    """Make an RPC known to the codec (the onebox adds its internal RPCs this way)."""
    spec = RpcSpec(name, args, result)
    existing = _RPCS.get(name)
    if existing is not None and existing != spec:
        raise ValueError(f"RPC {name} already registered with other types")
    _RPCS[name] = spec
    _ACKS[(name + "_ACK").encode()] = spec
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

class _Sink:
    """A write-only transport that keeps the pieces the protocol writes, joined once at the
    end: the plain protocol's every ``trans.write`` is then a list append."""

    __slots__ = ("parts", "write")

    def __init__(self):
        self.parts: list[bytes] = []
        self.write = self.parts.append


def encode_struct(obj: Any) -> bytes:
    """Thrift-binary payload of one struct (or placeholder) as the generated code writes it."""
    sink = _Sink()
    obj.write(TBinaryProtocol(sink))
    return b"".join(sink.parts)


def _message(begin: bytes, name: bytes, seqid: int) -> bytes:
    return begin + _I32.pack(len(name)) + name + _I32.pack(seqid)


_KEY_FIELD, _VALUE_FIELD, _EXPIRE_FIELD = b"\x0c\x00\x01", b"\x0c\x00\x02", b"\x08\x00\x03"
_I32_MIN, _I32_MAX = -2 ** 31, 2 ** 31 - 1


class EncodedArgs(bytes):
    """A request's argument struct already in its wire form (see :func:`put_args`)."""

    __slots__ = ()


def put_args(key: bytes, value: bytes, expire_ts_seconds: int = 0) -> EncodedArgs:
    """A put's argument (``update_request``: key and value blobs, expire time) as the
    generated code writes it, built in one join: the put is the hot path, and building the
    Thrift objects and running the generated ``write`` costs more than the put's own work.
    tests/test_codec_fast_paths.py holds both to the same bytes. Raises ValueError for an
    expire time outside i32."""
    if not _I32_MIN <= expire_ts_seconds <= _I32_MAX:
        raise ValueError(f"expire_ts_seconds {expire_ts_seconds} does not fit an i32")
    pack = _I32.pack
    return EncodedArgs(b"".join((_KEY_FIELD, pack(len(key)), key, _VALUE_FIELD, pack(len(value)),
                                 value, _EXPIRE_FIELD, pack(expire_ts_seconds), _STOP)))


#: rpc name -> the strict CALL message header up to its seqid (built once per name)
_CALL_NAMES: dict[str, bytes] = {}


def encode_request(rpc_name: str, seqid: int, args: Any, *, app_id: int = 0,
                   partition_index: int = 0, client_timeout_ms: int = 0,
                   partition_hash: int = 0, hdr_version: int = 0) -> bytes:
    """One complete request frame (header + body); ``args`` is the argument struct, or
    :class:`EncodedArgs`."""
    payload = args if type(args) is EncodedArgs else encode_struct(args)
    call = _CALL_NAMES.get(rpc_name)
    if call is None:
        name = rpc_name.encode()
        call = _CALL_NAMES[rpc_name] = _CALL_BEGIN + _I32.pack(len(name)) + name
    if hdr_version == 0:
        header = _HEADER_V0.pack(
            MAGIC, 0, HEADER_V0_BYTES, 0, len(call) + len(payload) + 8, 0, app_id,
            partition_index, client_timeout_ms & 0xFFFFFFFF,
            (app_id * 7919 + partition_index) & 0x7FFFFFFF, partition_hash & 0xFFFFFFFFFFFFFFFF)
        return b"".join((header, call, _I32.pack(seqid), _ARGS_FIELD, payload, _STOP))
    body = b"".join((call, _I32.pack(seqid), _ARGS_FIELD, payload, _STOP))
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

def _string_at(frame: bytes, offset: int, limit: int, what: str) -> tuple[str, int]:
    """The thrift string at ``offset`` (no longer than ``limit``) and the offset after it."""
    if offset + 4 > len(frame):
        raise ProtocolError(f"{what}: truncated")
    n = _I32.unpack_from(frame, offset)[0]
    if n < 0 or n > limit:
        raise ProtocolError(f"{what}: bad string length {n}")
    offset += 4
    end = offset + n
    if end > len(frame):
        raise ProtocolError(f"{what}: truncated")
    try:
        return frame[offset:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what}: not UTF-8") from exc


def _message_at(frame: bytes, offset: int, limit: int, expected_type: int,
                what: str) -> tuple[str, int, int]:
    """The strict message header at ``offset``: (rpc name, seqid, offset after it)."""
    if offset + 4 > len(frame):
        raise ProtocolError(f"{what}: truncated before the message header")
    version = _U32.unpack_from(frame, offset)[0]
    if version & _VERSION_MASK != _VERSION_1:
        raise ProtocolError(f"{what}: message header is not strict thrift (0x{version:08x})")
    if version & 0xFF != expected_type:
        raise ProtocolError(f"{what}: message type {version & 0xFF}, expected {expected_type}")
    name, offset = _string_at(frame, offset + 4, limit, f"{what} rpc name")
    if offset + 4 > len(frame):
        raise ProtocolError(f"{what}: truncated seqid")
    return name, _I32.unpack_from(frame, offset)[0], offset + 4


class _Reader:
    """Thrift binary reader over one frame that turns every failure into ProtocolError."""

    __slots__ = ("prot", "buf", "size")

    def __init__(self, data: bytes, offset: int = 0, limit: int | None = None):
        self.buf = TMemoryBuffer(data[offset:] if offset else data)
        self.size = len(data) - offset if limit is None else limit
        self.prot = TBinaryProtocol(self.buf, strictRead=True, string_length_limit=self.size,
                                    container_length_limit=self.size)

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
    limit = len(frame) - offset
    name, seqid, body = _message_at(frame, offset, limit, 1, "request")
    spec = _RPCS.get(name)
    args = _Reader(frame, body, limit).single_field(1, spec.args if spec else None,
                                                    f"request {name}")
    if spec is not None and args is None:
        raise ProtocolError(f"request {name}: missing its argument (field 1)")
    return RequestFrame(name, seqid, args, app_id, pidx, client_timeout, phash, version)


#: struct formats of the scalar field types a flat result may hold
_SCALAR_FORMATS = {TType.BOOL: "?", TType.BYTE: "b", TType.I16: "h", TType.I32: "i",
                   TType.I64: "q", TType.DOUBLE: "d"}


class _FlatPlan:
    """How the generated code writes a flat struct (scalar and string fields only, no rDSN
    placeholder) with every field set: its fields in id order, each a type byte, an i16 id
    and the value, a string being an i32 length and UTF-8 bytes, then STOP. ``read`` takes
    that layout apart in a few ``unpack_from`` calls: the reply to every put is one."""

    __slots__ = ("cls", "segments")

    def __init__(self, cls: type, fields_: list[tuple[int, int]]):
        self.cls = cls
        #: (struct of the fields up to and including a string's length, their types, their
        #: ids, whether the last one is a string), in field order
        self.segments: list[tuple[struct.Struct, tuple, tuple, bool]] = []
        run: list[tuple[int, int]] = []
        for i, field in enumerate(fields_):
            run.append(field)
            if field[0] == TType.STRING or i == len(fields_) - 1:
                fmt = ">" + "".join("bh" + ("i" if t == TType.STRING else _SCALAR_FORMATS[t])
                                    for t, _ in run)
                self.segments.append((struct.Struct(fmt), tuple(t for t, _ in run),
                                      tuple(i for _, i in run), field[0] == TType.STRING))
                run = []

    def read(self, frame: bytes, offset: int) -> Any:
        """The struct at ``offset`` if it is laid out as the generated code writes it with
        every field set, followed by the result's STOP; else None. Its fields are the
        generated ``__init__``'s arguments, in order."""
        values: list[Any] = []
        try:
            for layout, types, ids, string_last in self.segments:
                got = layout.unpack_from(frame, offset)
                if got[0::3] != types or got[1::3] != ids:
                    return None
                offset += layout.size
                values += got[2::3]
                if string_last:
                    n = values[-1]
                    raw = frame[offset:offset + n]
                    if n < 0 or len(raw) != n:
                        return None
                    values[-1] = raw.decode("utf-8")
                    offset += n
        except (struct.error, UnicodeDecodeError):
            return None   # short or not UTF-8: the plain path says how
        if frame[offset:offset + 2] != b"\x00\x00":
            return None
        return self.cls(*values)


def _flat_plan(cls: type | None) -> _FlatPlan | None:
    spec = getattr(cls, "thrift_spec", None)
    if spec is None:
        return None
    fields_ = [(f[1], f[0]) for f in spec if f is not None]   # (type, id), in spec order
    if not fields_ or not all(t in _SCALAR_FORMATS or t == TType.STRING for t, _ in fields_) \
            or [i for _, i in fields_] != sorted(i for _, i in fields_):
        return None
    return _FlatPlan(cls, fields_)


#: result class -> its plan, or None: always decoded by the generated code
_FLAT_PLANS: dict[type, _FlatPlan | None] = {}
#: Off: every result goes through the generated code (the tests compare both ways).
FLAT_RESULTS = True
_UNPLANNED = object()


def flat_plan(cls: type | None) -> _FlatPlan | None:
    """The fast layout reader of ``cls`` results, or None."""
    if cls not in _FLAT_PLANS:
        _FLAT_PLANS[cls] = _flat_plan(cls)
    return _FLAT_PLANS[cls] if FLAT_RESULTS else None


def _reply_header(frame: bytes) -> tuple[str, str, int, int]:
    """(error name, reply name, seqid, offset of the body) of a whole response frame."""
    limit = len(frame) - 4  # as a reader over the frame after its length would bound it
    error, offset = _string_at(frame, 4, limit, "response error name")
    if not error_codes.is_decodable(error):
        raise ProtocolError(f"unknown error name {error!r}")
    ack, seqid, offset = _message_at(frame, offset, limit, 2, "response")
    return error, ack, seqid, offset


#: What an ERR_OK reply holds after its length: the error name, then a strict REPLY header.
_OK_REPLY = _I32.pack(6) + b"ERR_OK" + _REPLY_BEGIN
_OK_NAME_AT = 4 + len(_OK_REPLY)


def decode_response(frame: bytes) -> ResponseFrame:
    """Decode one whole response frame."""
    # The usual reply first, read in a few steps: a well-formed ERR_OK reply to a known RPC
    # (every check below is one the general path makes); any other frame, the general path
    # reads and judges.
    total, spec = len(frame), None
    if frame[4:_OK_NAME_AT] == _OK_REPLY and 12 <= total <= MAX_FRAME_BYTES \
            and _U32.unpack_from(frame)[0] == total and total >= _OK_NAME_AT + 4:
        n = _I32.unpack_from(frame, _OK_NAME_AT)[0]
        offset = _OK_NAME_AT + 8 + n
        if n > 0 and offset <= total:
            spec = _ACKS.get(frame[_OK_NAME_AT + 4:_OK_NAME_AT + 4 + n])
    if spec is not None:
        error, name, seqid = "ERR_OK", spec.name, _I32.unpack_from(frame, offset - 4)[0]
    else:
        _check_whole(frame, response_frame_size(frame), "response")
        error, ack, seqid, offset = _reply_header(frame)
        if not ack.endswith("_ACK"):
            raise ProtocolError(f"reply name {ack!r} does not end with _ACK")
        name = ack[:-4]
        spec = _RPCS.get(name)
        if spec is None:
            raise ProtocolError(f"reply to unknown RPC {name!r}")
    result = None
    if error == "ERR_OK":
        plan = _FLAT_PLANS.get(spec.result, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = flat_plan(spec.result)
        if plan is not None and FLAT_RESULTS and frame[offset:offset + 3] == _RESULT_FIELD:
            result = plan.read(frame, offset + 3)
        if result is None:
            result = _Reader(frame, offset, len(frame) - 4).single_field(
                0, spec.result, f"reply {name}_ACK")
        if result is None and spec.result is not None:
            raise ProtocolError(f"reply {name}_ACK: ERR_OK without a result struct (field 0)")
    return ResponseFrame(error, name, seqid, result)


class FrameSplitter:
    """Cuts a byte stream into whole frames; ``feed`` returns the frames completed so far.

    ``kind`` is ``"request"`` (server side) or ``"response"`` (client side). Garbage raises
    ProtocolError at the first bad header, before any large buffer is reserved.
    """

    __slots__ = ("_buf", "_need", "_replies", "_size")

    def __init__(self, kind: str):
        if kind not in ("request", "response"):
            raise ValueError(f"kind must be 'request' or 'response', got {kind!r}")
        self._buf = bytearray()
        self._need = None
        self._replies = kind == "response"
        self._size = request_frame_size if kind == "request" else response_frame_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every frame it completed, oldest first."""
        buf = self._buf
        if not buf and type(data) is bytes:  # nothing held back: the usual read
            if self._replies and 12 <= len(data) <= MAX_FRAME_BYTES \
                    and _U32.unpack_from(data)[0] == len(data):
                return [data]   # exactly one whole reply, as response_frame_size checks it
            try:
                need = self._size(data[:HEADER_V0_BYTES])
            except ProtocolError:
                buf += data
                raise
            if need == len(data):
                return [data]                 # exactly one whole frame: no copy
            self._need = need
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
