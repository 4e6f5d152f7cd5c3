"""The client adapter protocol: encode/decode round trips, strict validation, conversation rules."""

from __future__ import annotations

import json

import pytest

from loadgen.adapters import protocol as p
from loadgen.errors import AdapterError, AdapterProtocolError

pytestmark = pytest.mark.unit


def dec(line: str, allowed=None, lineno: int = 7):
    return p.decode(line, adapter="fake-x", lineno=lineno, allowed=allowed)


@pytest.mark.parametrize("msg", [
    p.Hello(meta=["127.0.0.1:34601"], table="temp", op_timeout_ms=1000, options={"a": 1}),
    p.Ready(client="pypegasus", version="0.0.1.1", ops=["put", "get", "multi_put"]),
    p.Op(id=17, op="put", hash_key=b"h\x00", sort_key=b"s", value=b"\xffv", timeout_ms=1000),
    p.Op(id=18, op="get", hash_key=b"h", sort_key=b"", timeout_ms=5),
    p.Op(id=19, op="multi_put", hash_key=b"h", sort_keys=[b"a", b"b"], values=[b"1", b""],
         timeout_ms=1000),
    p.Reply(id=17, outcome="ok"),
    p.Reply(id=18, outcome="ok", value=b"\x00bytes"),
    p.Reply(id=19, outcome="unknown", error="ERR_TIMEOUT", message="timed out"),
    p.Stop(), p.Bye(),
])
def test_every_message_round_trips_on_one_line(msg):
    line = p.encode(msg)
    assert line.endswith("\n") and line.count("\n") == 1
    assert dec(line) == msg


def test_the_wire_form_is_the_spec():
    op = p.Op(id=17, op="put", hash_key=b"h", sort_key=b"s", value=b"v", timeout_ms=1000)
    assert json.loads(p.encode(op)) == {"type": "op", "id": 17, "op": "put", "hash_key": "aA==",
                                        "sort_key": "cw==", "value": "dg==", "timeout_ms": 1000}
    hello = p.Hello(meta=["127.0.0.1:34601"], table="temp", op_timeout_ms=1000)
    assert json.loads(p.encode(hello)) == {"type": "hello", "protocol": 1, "meta": ["127.0.0.1:34601"],
                                           "table": "temp", "op_timeout_ms": 1000, "options": {}}
    assert json.loads(p.encode(p.Reply(id=3, outcome="ok"))) == {"type": "reply", "id": 3,
                                                                  "outcome": "ok", "message": ""}


@pytest.mark.parametrize("line, what", [
    ("not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"type": "hug"}', "unknown message type 'hug'"),
    ('{"id": 1}', "unknown message type None"),
    ('{"type": "reply", "outcome": "ok"}', "missing field 'id'"),
    ('{"type": "reply", "id": "1", "outcome": "ok"}', "field 'id' must be int, got str"),
    ('{"type": "reply", "id": true, "outcome": "ok"}', "field 'id' must be int, got bool"),
    ('{"type": "reply", "id": 1, "outcome": "maybe", "error": "E"}', "outcome must be one of"),
    ('{"type": "reply", "id": 1, "outcome": "fail"}', "'fail' needs an error name"),
    ('{"type": "reply", "id": 1, "outcome": "ok", "error": "E"}', "outcome 'ok' with error"),
    ('{"type": "reply", "id": 1, "outcome": "ok", "value": "!!"}', "field 'value' is not base64"),
    ('{"type": "reply", "id": 1, "outcome": "ok", "extra": 1}', "unknown field(s) extra"),
    ('{"type": "ready", "protocol": 1, "client": "c", "version": "v", "ops": ["scan"]}',
     "unknown op(s) ['scan']"),
    ('{"type": "op", "id": 1, "op": "put", "hash_key": "aA==", "sort_key": "cw==", "timeout_ms": 9}',
     "missing field 'value'"),
    ('{"type": "op", "id": 1, "op": "get", "hash_key": "aA==", "sort_key": "cw==", "timeout_ms": 0}',
     "'timeout_ms' must be > 0"),
    (('{"type": "op", "id": 1, "op": "multi_put", "hash_key": "aA==", "sort_keys": ["YQ=="], '
     '"values": [], "timeout_ms": 9}'), "1 sort_keys but 0 values"),
    (('{"type": "op", "id": 1, "op": "get", "hash_key": "aA==", "sort_key": "cw==", "value": "dg==", '
     '"timeout_ms": 9}'), "unknown field(s) value"),
])
def test_a_bad_line_names_the_adapter_the_line_and_the_fault(line, what):
    with pytest.raises(AdapterProtocolError) as err:
        dec(line)
    assert str(err.value).startswith("adapter fake-x: line 7: ")
    assert what in str(err.value)
    assert isinstance(err.value, AdapterError)


def test_each_side_accepts_only_what_it_may_receive():
    with pytest.raises(AdapterProtocolError, match="unknown message type 'op'"):
        dec(p.encode(p.Op(id=1, op="get", hash_key=b"", sort_key=b"", timeout_ms=1)), p.FROM_ADAPTER)
    with pytest.raises(AdapterProtocolError, match="unknown message type 'bye'"):
        dec(p.encode(p.Bye()), p.TO_ADAPTER)


def test_non_utf8_is_a_protocol_error():
    with pytest.raises(AdapterProtocolError, match="line 7: not UTF-8"):
        p.decode(b"\xff\xfe{}", adapter="fake-x", lineno=7)


def ready_conv(ops=("put", "get")) -> p.Conversation:
    conv = p.Conversation("fake-x")
    conv.on_ready(p.Ready(client="c", version="v", ops=list(ops)), 1)
    return conv


def test_the_first_line_must_be_ready_with_our_protocol():
    with pytest.raises(AdapterProtocolError, match="line 1: expected 'ready' first, got 'bye'"):
        p.Conversation("fake-x").on_ready(p.Bye(), 1)
    with pytest.raises(AdapterProtocolError, match="line 1: protocol version mismatch: adapter speaks 2"):
        p.Conversation("fake-x").on_ready(p.Ready(client="c", version="v", ops=[], protocol=2), 1)


def test_an_op_the_adapter_did_not_declare_is_refused():
    conv = ready_conv()
    with pytest.raises(AdapterProtocolError, match="op 'multi_put' is not among its declared ops"):
        conv.new_op("multi_put")
    assert conv.pending == {}


def test_replies_match_ids_once_and_late_ones_are_counted():
    conv = ready_conv()
    a, b, c = conv.new_op("put"), conv.new_op("get"), conv.new_op("put")
    assert len({a, b, c}) == 3
    assert conv.on_reply(p.Reply(id=b, outcome="ok", value=b"x"), 2) == "get"
    with pytest.raises(AdapterProtocolError, match=f"line 3: reply to unknown id {b} \\(already answered\\)"):
        conv.on_reply(p.Reply(id=b, outcome="ok"), 3)
    with pytest.raises(AdapterProtocolError, match="reply to unknown id 999 \\(never sent\\)"):
        conv.on_reply(p.Reply(id=999, outcome="ok"), 4)
    assert conv.expire(a) and not conv.expire(b)
    assert conv.on_reply(p.Reply(id=a, outcome="ok"), 5) is None and conv.late_replies == 1
    with pytest.raises(AdapterProtocolError, match="reply to put id .* carries a value"):
        conv.on_reply(p.Reply(id=c, outcome="ok", value=b"x"), 6)
