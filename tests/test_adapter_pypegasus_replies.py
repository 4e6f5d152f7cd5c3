"""How the pypegasus adapter turns what a pypegasus3 call gave back into a reply
(loadgen.adapters.pypegasus.interpret), with a stand-in for the client's error enum: fast, no venv."""

from __future__ import annotations

import enum
from types import SimpleNamespace

import pytest

from loadgen.adapters import protocol as p
from loadgen.adapters.pypegasus import Adapter, interpret
from loadgen.pegasus import error_codes

pytestmark = pytest.mark.unit

# The client's enum: the same names and numbers as loadgen.pegasus.error_codes.KNOWN.
PG = SimpleNamespace(error_types=enum.Enum("error_types", dict(error_codes.KNOWN)))


def op(kind: str) -> p.Op:
    if kind == "multi_put":
        return p.Op(id=7, op=kind, hash_key=b"h", timeout_ms=500, sort_keys=[b"a"], values=[b"1"])
    return p.Op(id=7, op=kind, hash_key=b"h", timeout_ms=500, sort_key=b"s",
                value=b"v" if kind == "put" else None)


def reply(kind: str, result, sent: bool = True) -> tuple:
    r = interpret(PG, op(kind), result, sent=sent)
    assert r.id == 7
    return r.outcome, r.error, r.value


@pytest.mark.parametrize("kind", ["put", "multi_put", "get"])
def test_ok_timeout_storage_and_unsent(kind):
    write = kind != "get"
    assert reply(kind, (0, b"x" if not write else None)) == ("ok", None, b"x" if not write else None)
    assert reply(kind, (18, None)) == ("unknown" if write else "fail", "ERR_TIMEOUT", None)
    assert reply(kind, (5, None)) == ("fail", "STORAGE_5", None)             # kIOError
    assert reply(kind, (38, None)) == ("fail", "STORAGE_7", None)            # kIncomplete
    assert reply(kind, (30, 0), sent=False) == ("fail", "ERR_INVALID_STATE", None)


def test_get_not_found_is_ok_without_value():
    assert reply("get", (23, b"")) == ("ok", None, None)
    assert reply("get", (0, b"")) == ("ok", None, b"")   # an empty value is a value
    assert reply("put", (23, None)) == ("fail", "STORAGE_1", None)


@pytest.mark.parametrize("name, write_outcome", [
    ("ERR_INVALID_STATE", "fail"), ("ERR_OBJECT_NOT_FOUND", "fail"), ("ERR_BUSY", "fail"),
    ("ERR_TIMEOUT", "unknown"), ("ERR_UNKNOWN", "unknown")])
def test_server_error_names(name, write_outcome):
    assert reply("put", PG.error_types[name]) == (write_outcome, name, None)
    assert reply("get", PG.error_types[name]) == ("fail", name, None)


def test_swallowed_failures_and_oddities():
    assert reply("put", None) == ("unknown", "ERR_UNKNOWN", None)
    assert reply("get", None) == ("fail", "ERR_UNKNOWN", None)
    assert reply("put", "what") == ("unknown", "ERR_UNKNOWN", None)
    assert reply("put", (999, 0), sent=False) == ("fail", "ERR_UNKNOWN", None)


class FakeReactor:
    def __init__(self):
        self.stopped = False

    def stop(self):
        self.stopped = True


class FakeOut(list):
    def write(self, line):
        self.append(p.decode(line, adapter="test", lineno=len(self) + 1, allowed=p.FROM_ADAPTER))

    def flush(self):
        pass


def test_a_raising_or_unsent_call_is_a_reply_not_a_crash():
    class Client:
        def set(self, *a):
            raise RuntimeError("boom")

        def get(self, *a):
            return PG.error_types.ERR_INVALID_STATE.value, 0   # no session: returned at once

        def close(self):
            pass

    pg = SimpleNamespace(error_types=PG.error_types, defer=SimpleNamespace(Deferred=type("D", (), {})))
    out = FakeOut()
    adapter = Adapter(pg, FakeReactor(), out)
    adapter.client, adapter.hello = Client(), p.Hello(meta=["m:1"], table="t", op_timeout_ms=100)
    adapter.dispatch(op("put"))
    adapter.dispatch(op("get"))
    assert [(r.outcome, r.error) for r in out] == [("fail", "ERR_UNKNOWN"), ("fail", "ERR_INVALID_STATE")]
    assert "RuntimeError: boom" in out[0].message
    adapter.dispatch(p.Stop())
    assert isinstance(out[-1], p.Bye) and adapter.reactor.stopped and adapter.exit_code == 0
