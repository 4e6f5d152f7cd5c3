"""rDSN placeholder types: tagged STRUCT on the wire, but written as raw payloads.

The generated code in ``loadgen/pegasus/gen`` imports this module under the namespace that
``idl/rdsn.thrift`` declares, and calls ``read``/``write`` as it would on any struct. Thrift's
accelerated protocol bypasses these methods, so structs holding them must be encoded with the
plain ``TBinaryProtocol``.
"""

from __future__ import annotations

import socket
import struct

from ..addr import parse_addr

_I64_SIGN = 1 << 63
_U64 = 1 << 64


def signed64(u: int) -> int:
    """The thrift i64 holding the low 64 bits of ``u`` (an unsigned value) as two's complement."""
    u &= _U64 - 1
    return u - _U64 if u & _I64_SIGN else u


class blob:
    """A byte string: i32 length + bytes."""

    thrift_spec = None  # no field spec: the accelerated codec cannot encode these
    __slots__ = ("data",)

    def __init__(self, data: bytes = b""):
        self.data = data

    def read(self, iprot) -> None:
        self.data = iprot.readBinary()

    def write(self, oprot) -> None:
        oprot.writeBinary(self.data)

    def __eq__(self, other) -> bool:
        return isinstance(other, blob) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"blob({self.data!r})"


class error_code:
    """An rDSN error, carried as its name (``"ERR_OK"``)."""

    thrift_spec = None  # no field spec: the accelerated codec cannot encode these
    __slots__ = ("name",)

    def __init__(self, name: str = "ERR_OK"):
        self.name = name

    def read(self, iprot) -> None:
        self.name = iprot.readString()

    def write(self, oprot) -> None:
        oprot.writeString(self.name)

    def __eq__(self, other) -> bool:
        return isinstance(other, error_code) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"error_code({self.name!r})"


class gpid:
    """A partition id: i64 ``(partition_index << 32) | app_id``."""

    thrift_spec = None  # no field spec: the accelerated codec cannot encode these
    __slots__ = ("app_id", "partition_index")

    def __init__(self, app_id: int = 0, partition_index: int = 0):
        self.app_id = app_id
        self.partition_index = partition_index

    def to_i64(self) -> int:
        """The wire value: partition index in the high 32 bits, app id in the low."""
        return signed64(((self.partition_index & 0xFFFFFFFF) << 32) | (self.app_id & 0xFFFFFFFF))

    def read(self, iprot) -> None:
        v = iprot.readI64() % _U64
        app = v & 0xFFFFFFFF
        pidx = v >> 32
        self.app_id = app - (1 << 32) if app & 0x80000000 else app
        self.partition_index = pidx - (1 << 32) if pidx & 0x80000000 else pidx

    def write(self, oprot) -> None:
        oprot.writeI64(self.to_i64())

    def __eq__(self, other) -> bool:
        return (isinstance(other, gpid) and other.app_id == self.app_id
                and other.partition_index == self.partition_index)

    def __hash__(self) -> int:
        return hash((self.app_id, self.partition_index))

    def __repr__(self) -> str:
        return f"gpid({self.app_id}.{self.partition_index})"


class rpc_address:
    """An IPv4 endpoint: i64 ``(ipv4 << 32) | (port << 16) | 1``; all zero means "none"."""

    thrift_spec = None  # no field spec: the accelerated codec cannot encode these
    __slots__ = ("host", "port")

    def __init__(self, host: str = "", port: int = 0):
        self.host = host
        self.port = port

    @classmethod
    def from_string(cls, addr: str) -> rpc_address:
        """Parse ``"a.b.c.d:port"``."""
        return cls(*parse_addr(addr))

    def is_invalid(self) -> bool:
        """The empty address (wire value 0), e.g. "no primary"."""
        return not self.host and not self.port

    def to_u64(self) -> int:
        """The wire value: IPv4 << 32 | port << 16 | type 1 (0 when invalid)."""
        if self.is_invalid():
            return 0
        ip = struct.unpack(">I", socket.inet_aton(self.host))[0]
        return (ip << 32) | ((self.port & 0xFFFF) << 16) | 1

    @classmethod
    def from_u64(cls, v: int) -> rpc_address:
        """Inverse of :meth:`to_u64`; any type other than IPv4 reads as invalid."""
        v %= _U64
        if v & 0xFFFF != 1:  # type bits: only IPv4 (1) names a usable address
            return cls()
        return cls(socket.inet_ntoa(struct.pack(">I", v >> 32)), (v >> 16) & 0xFFFF)

    def read(self, iprot) -> None:
        other = rpc_address.from_u64(iprot.readI64())
        self.host, self.port = other.host, other.port

    def write(self, oprot) -> None:
        oprot.writeI64(signed64(self.to_u64()))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if not self.is_invalid() else ""

    def __eq__(self, other) -> bool:
        return isinstance(other, rpc_address) and (other.host, other.port) == (self.host, self.port)

    def __hash__(self) -> int:
        return hash((self.host, self.port))

    def __repr__(self) -> str:
        return f"rpc_address({str(self)!r})"
