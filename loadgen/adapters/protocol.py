"""The client adapter protocol, version 1: newline-delimited JSON over an adapter's stdin/stdout.

pegbench → adapter: ``hello`` (once, first), ``op`` (many, concurrently), ``stop`` (last).
adapter → pegbench: ``ready`` (once, first), ``reply`` (one per op id, any order), ``bye`` (last).

Keys, sort keys and values travel as standard base64 (they are bytes). Decoding is strict: an
unknown field, a missing or mistyped one, an unknown ``type`` or bad base64 raises
:class:`AdapterProtocolError` naming the adapter, the line number and what is wrong. The rules
that need memory of the conversation (one ``ready`` with our protocol version, a reply only to an
id sent and not yet answered, ops only among those the adapter declared) live in
:class:`Conversation`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import AdapterProtocolError

PROTOCOL = 1
#: The ops the protocol defines; an adapter declares the subset it supports in ``ready``.
OPS = ("put", "get", "multi_put")
OUTCOMES = ("ok", "fail", "unknown")


@dataclass(frozen=True)
class Hello:
    meta: list[str]
    table: str
    op_timeout_ms: int
    options: dict[str, Any] = field(default_factory=dict)
    protocol: int = PROTOCOL


@dataclass(frozen=True)
class Ready:
    client: str
    version: str
    ops: list[str]
    protocol: int = PROTOCOL


@dataclass(frozen=True)
class Op:
    """One request. put: sort_key + value; get: sort_key; multi_put: sort_keys + values."""

    id: int
    op: str
    hash_key: bytes
    timeout_ms: int
    sort_key: bytes | None = None
    value: bytes | None = None
    sort_keys: list[bytes] | None = None
    values: list[bytes] | None = None


@dataclass(frozen=True)
class Reply:
    """The answer to op ``id``. ``error`` is set unless ``outcome`` is ok; ``value`` only for
    a get that found its key."""

    id: int
    outcome: str
    error: str | None = None
    message: str = ""
    value: bytes | None = None


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Bye:
    pass


Message = Hello | Ready | Op | Reply | Stop | Bye
TO_ADAPTER = {"hello": Hello, "op": Op, "stop": Stop}
FROM_ADAPTER = {"ready": Ready, "reply": Reply, "bye": Bye}
_TYPE_OF = {cls: name for name, cls in (TO_ADAPTER | FROM_ADAPTER).items()}
_BYTES = {"hash_key", "sort_key", "value"}
_BYTES_LISTS = {"sort_keys", "values"}
#: Per op: the key fields it must carry (beyond id, op, hash_key, timeout_ms) and may not lack.
_OP_FIELDS = {"put": {"sort_key", "value"}, "get": {"sort_key"}, "multi_put": {"sort_keys", "values"}}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(msg: Message) -> str:
    """One line (with its newline) for ``msg``; None fields are left out."""
    out: dict[str, Any] = {"type": _TYPE_OF[type(msg)]}
    for name, value in vars(msg).items():
        if value is None:
            continue
        if name in _BYTES:
            value = _b64(value)
        elif name in _BYTES_LISTS:
            value = [_b64(v) for v in value]
        out[name] = value
    return json.dumps(out, separators=(",", ":")) + "\n"


class _Fields:
    """Typed reads from one decoded object; every failure names the adapter and the line."""

    def __init__(self, obj: dict[str, Any], where: str, kind: str):
        self.obj, self.where, self.kind, self.seen = obj, where, kind, {"type"}

    def fail(self, what: str) -> AdapterProtocolError:
        return AdapterProtocolError(f"{self.where}: {self.kind}: {what}")

    def get(self, name: str, types: type | tuple[type, ...], *, required: bool = True,
            default: Any = None) -> Any:
        self.seen.add(name)
        if name not in self.obj or (self.obj[name] is None and not required):
            if required:
                raise self.fail(f"missing field {name!r}")
            return default
        value = self.obj[name]
        # bool is an int to isinstance; an id or a timeout of ``true`` is still wrong
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            names = "/".join(t.__name__ for t in _tuple(types))
            raise self.fail(f"field {name!r} must be {names}, got {type(value).__name__} {value!r}")
        return value

    def bytes_(self, name: str, *, required: bool = True) -> bytes | None:
        text = self.get(name, str, required=required)
        return None if text is None else self._decode64(name, text)

    def bytes_list(self, name: str) -> list[bytes]:
        items = self.get(name, list)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(f"field {name!r} must be a list of base64 strings")
        return [self._decode64(name, item) for item in items]

    def str_list(self, name: str) -> list[str]:
        items = self.get(name, list)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(f"field {name!r} must be a list of strings")
        return items

    def _decode64(self, name: str, text: str) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise self.fail(f"field {name!r} is not base64: {text[:40]!r} ({e})") from None

    def done(self) -> None:
        extra = sorted(set(self.obj) - self.seen)
        if extra:
            raise self.fail(f"unknown field(s) {', '.join(extra)}")


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def decode(line: str | bytes, *, adapter: str, lineno: int,
           allowed: dict[str, type] | None = None) -> Message:
    """The message on one line. ``allowed``: the types this side may receive (FROM_ADAPTER for
    pegbench, TO_ADAPTER for an adapter); None accepts both."""
    where = f"adapter {adapter}: line {lineno}"
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AdapterProtocolError(f"{where}: not UTF-8 ({e})") from None
    text = line.strip()
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise AdapterProtocolError(f"{where}: invalid JSON: {text[:80]!r} ({e})") from None
    if not isinstance(obj, dict):
        raise AdapterProtocolError(f"{where}: expected a JSON object, got {text[:80]!r}")
    kind = obj.get("type")
    allowed = allowed if allowed is not None else TO_ADAPTER | FROM_ADAPTER
    if kind not in allowed:
        raise AdapterProtocolError(
            f"{where}: unknown message type {kind!r} (expected one of {', '.join(sorted(allowed))})")
    f = _Fields(obj, where, kind)
    msg = _DECODERS[kind](f)
    f.done()
    return msg


def _hello(f: _Fields) -> Hello:
    meta = f.str_list("meta")
    return Hello(meta=meta, table=f.get("table", str), op_timeout_ms=_positive(f, "op_timeout_ms"),
                 options=f.get("options", dict, required=False, default={}),
                 protocol=f.get("protocol", int))


def _ready(f: _Fields) -> Ready:
    ready = Ready(client=f.get("client", str), version=f.get("version", str),
                  ops=f.str_list("ops"), protocol=f.get("protocol", int))
    unknown = [op for op in ready.ops if op not in OPS]
    if unknown:
        raise f.fail(f"unknown op(s) {unknown} (the protocol knows {list(OPS)})")
    return ready


def _op(f: _Fields) -> Op:
    op_id, name = f.get("id", int), f.get("op", str)
    if name not in _OP_FIELDS:
        raise f.fail(f"unknown op {name!r} (the protocol knows {list(OPS)})")
    needs = _OP_FIELDS[name]
    msg = Op(id=op_id, op=name, hash_key=f.bytes_("hash_key"), timeout_ms=_positive(f, "timeout_ms"),
             sort_key=f.bytes_("sort_key") if "sort_key" in needs else None,
             value=f.bytes_("value") if "value" in needs else None,
             sort_keys=f.bytes_list("sort_keys") if "sort_keys" in needs else None,
             values=f.bytes_list("values") if "values" in needs else None)
    if name == "multi_put" and len(msg.sort_keys or ()) != len(msg.values or ()):
        raise f.fail(f"multi_put has {len(msg.sort_keys or ())} sort_keys "
                     f"but {len(msg.values or ())} values")
    return msg


def _reply(f: _Fields) -> Reply:
    reply = Reply(id=f.get("id", int), outcome=f.get("outcome", str),
                  error=f.get("error", str, required=False),
                  message=f.get("message", str, required=False, default=""),
                  value=f.bytes_("value", required=False))
    if reply.outcome not in OUTCOMES:
        raise f.fail(f"outcome must be one of {list(OUTCOMES)}, got {reply.outcome!r}")
    if reply.outcome != "ok" and not reply.error:
        raise f.fail(f"outcome {reply.outcome!r} needs an error name")
    if reply.outcome == "ok" and reply.error:
        raise f.fail(f"outcome 'ok' with error {reply.error!r}")
    return reply


def _positive(f: _Fields, name: str) -> int:
    value = f.get(name, int)
    if value <= 0:
        raise f.fail(f"field {name!r} must be > 0, got {value}")
    return value


_DECODERS = {"hello": _hello, "ready": _ready, "op": _op, "reply": _reply,
             "stop": lambda f: Stop(), "bye": lambda f: Bye()}


class Conversation:
    """pegbench's memory of one connection: checks what no single line can show.

    A reply to an id that timed out on our side is *late*: counted, not an error (the adapter
    was merely slow). A reply to an id never sent, or answered twice, is a protocol error.
    """

    def __init__(self, adapter: str):
        self.adapter = adapter
        self.ready: Ready | None = None
        self.pending: dict[int, str] = {}      # id -> op
        self.expired: set[int] = set()
        self.next_id = 1
        self.late_replies = 0

    def on_ready(self, msg: Message, lineno: int) -> Ready:
        where = f"adapter {self.adapter}: line {lineno}"
        if not isinstance(msg, Ready):
            raise AdapterProtocolError(f"{where}: expected 'ready' first, got {_TYPE_OF[type(msg)]!r}")
        if msg.protocol != PROTOCOL:
            raise AdapterProtocolError(
                f"{where}: protocol version mismatch: adapter speaks {msg.protocol}, pegbench {PROTOCOL}")
        self.ready = msg
        return msg

    def new_op(self, op: str) -> int:
        """A fresh id for ``op``; raises if the adapter did not declare ``op``."""
        declared = self.ready.ops if self.ready else []
        if op not in declared:
            raise AdapterProtocolError(
                f"adapter {self.adapter}: op {op!r} is not among its declared ops {declared}")
        op_id, self.next_id = self.next_id, self.next_id + 1
        self.pending[op_id] = op
        return op_id

    def expire(self, op_id: int) -> bool:
        """Our timeout for ``op_id`` fired; False if it was already answered."""
        if self.pending.pop(op_id, None) is None:
            return False
        self.expired.add(op_id)
        return True

    def on_reply(self, reply: Reply, lineno: int) -> str | None:
        """The op ``reply`` answers, or None for a late reply (counted); raises on an id never
        sent or already answered, or a value on a reply that is not a get's."""
        where = f"adapter {self.adapter}: line {lineno}"
        if reply.id in self.pending:
            op = self.pending.pop(reply.id)
            if reply.value is not None and op != "get":
                raise AdapterProtocolError(f"{where}: reply to {op} id {reply.id} carries a value")
            return op
        if reply.id in self.expired:
            self.expired.discard(reply.id)   # a second late reply is then an error, as it should be
            self.late_replies += 1
            return None
        state = "already answered" if 0 < reply.id < self.next_id else "never sent"
        raise AdapterProtocolError(f"{where}: reply to unknown id {reply.id} ({state})")
