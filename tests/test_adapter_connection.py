"""AdapterConnection against the fake adapter (tests/support/fake_adapter.py), a real subprocess.

Every test checks that the adapter's process group is gone afterwards. Time bounds are relative
to the timeouts the test sets, never tight absolute times.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gevent
import pytest
from support.processes import group_gone, stop_adapters

from loadgen.adapters import REPLY_TIMEOUT, AdapterConnection, AdapterError, AdapterProtocolError

FAKE = str(Path(__file__).resolve().parent / "support" / "fake_adapter.py")


def gwait(pred, timeout_s: float) -> bool:
    """wait_until for this gevent loop: it yields, so the connection's greenlets run."""
    deadline = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < deadline:
        gevent.sleep(0.02)
    return bool(pred())


@pytest.fixture
def connect():
    """connect(mode, *args, **kw) -> an unstarted AdapterConnection named fake-<mode>; after the
    test every one of them is stopped and its process group must be gone."""
    made: list[AdapterConnection] = []

    def make(mode: str, *args: str, **kw) -> AdapterConnection:
        kw.setdefault("name", f"fake-{mode}")
        conn = AdapterConnection([sys.executable, FAKE, mode, *args], meta=["127.0.0.1:34601"],
                                 table="temp", **kw)
        made.append(conn)
        return conn

    yield make
    stop_adapters(made)


def test_many_ops_in_flight_round_trip(connect):
    with connect("normal", op_timeout_ms=2000) as conn:
        assert conn.ready.client == "fake" and conn.ready.ops == ["put", "get", "multi_put"]
        seen = []
        puts = [conn.submit("put", b"h%d" % i, b"s", b"v%d" % i, callback=seen.append)
                for i in range(200)]
        assert conn.in_flight > 1   # none waited for the one before
        results = [r.get(timeout=10) for r in puts]
        assert {r.outcome for r in results} == {"ok"} and len(seen) == 200
        assert all(r.start <= r.end for r in results)
        gets = [conn.submit("get", b"h%d" % i, b"s") for i in range(200)]
        assert [r.get(timeout=10).value for r in gets] == [b"v%d" % i for i in range(200)]
        assert conn.call("get", b"nope", b"s").value is None
        ok = conn.call("multi_put", b"m", sort_keys=[b"a", b"b"], values=[b"1", b"2"])
        assert ok.outcome == "ok" and conn.call("get", b"m", b"b").value == b"2"
        outcome = ok.to_outcome(table="temp", policy="fake")
        assert (outcome.level, outcome.op, outcome.outcome, outcome.start) == ("op", "multi_put", "ok",
                                                                               ok.start)
        assert conn.in_flight == 0
    assert conn.bye and conn.exit_code == 0
    with pytest.raises(AdapterError, match="cannot submit put: adapter fake-normal: stopped"):
        conn.submit("put", b"h", b"s", b"v")


def test_a_slow_op_ends_unknown_after_its_timeout_and_a_late_reply_is_counted(connect):
    with connect("slow", "1.0", op_timeout_ms=200, reply_grace_s=0.2) as conn:
        limit = 0.2 + 0.2
        slow, late = conn.submit("put", b"slow1", b"s", b"v"), conn.submit("put", b"late1", b"s", b"v")
        fast = conn.call("put", b"fast", b"s", b"v")
        assert fast.outcome == "ok"
        for result in (slow.get(timeout=10 * limit), late.get(timeout=10 * limit)):
            assert (result.outcome, result.error) == ("unknown", REPLY_TIMEOUT)
            assert limit <= result.end - result.start < 2 * limit
        assert gwait(lambda: conn.late_replies == 1, 5)
        assert conn.error is None and conn.call("put", b"fast", b"s", b"v").outcome == "ok"


def test_a_crash_ends_ops_in_flight_unknown_and_later_submits_fail_fast(connect):
    with connect("crash", "3", op_timeout_ms=5000) as conn:
        assert [conn.call("put", b"h%d" % i, b"s", b"v").outcome for i in range(2)] == ["ok", "ok"]
        t0 = time.monotonic()
        flying = [conn.submit("put", b"x%d" % i, b"s", b"v") for i in range(3)]
        results = [r.get(timeout=10) for r in flying]
        assert time.monotonic() - t0 < 5.0   # the death, not the op timeout, ended them
        for r in results:
            assert r.outcome == "unknown"
            assert r.error == "ADAPTER_EXITED"
            assert "adapter fake-crash exited (exit status 3) at" in r.message
        assert conn.exit_code == 3 and conn.died_at is not None
        assert any("crashing on op" in line for line in conn.stderr_tail())
        t1 = time.monotonic()
        with pytest.raises(AdapterError, match="cannot submit get: adapter fake-crash exited "
                                               "\\(exit status 3\\)"):
            conn.submit("get", b"h", b"s")
        assert time.monotonic() - t1 < 0.5


@pytest.mark.parametrize("mode, what", [
    ("garbage", "invalid JSON: 'this is not json'"),
    ("unknown-id", "reply to unknown id 1001 (never sent)"),
])
def test_a_protocol_violation_breaks_the_connection(connect, mode, what):
    conn = connect(mode, op_timeout_ms=5000)
    conn.start()
    result = conn.submit("put", b"h", b"s", b"v").get(timeout=10)
    assert result.outcome == "unknown"
    assert result.error == "ADAPTER_BROKEN"
    assert result.message.startswith(f"adapter fake-{mode} broken: adapter fake-{mode}: line 2: ")
    assert what in result.message
    assert isinstance(conn.error, AdapterProtocolError) and what in str(conn.error)
    assert [str(e) for e in conn.protocol_errors] == [str(conn.error)]
    assert gwait(lambda: group_gone(conn.pid), 10)   # stopped without being asked
    with pytest.raises(AdapterError, match=f"line 2: {what[:10]}"):
        conn.submit("put", b"h", b"s", b"v")


def test_a_silent_adapter_fails_the_handshake_in_bounded_time(connect):
    conn = connect("silent", handshake_timeout_s=0.5, stop_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(AdapterError, match="adapter fake-silent: no 'ready' within 0.5 s; stderr:"):
        conn.start()
    assert time.monotonic() - t0 < 4 * (0.5 + 0.5)
    assert group_gone(conn.pid)


def test_a_protocol_version_mismatch_fails_the_handshake(connect):
    conn = connect("wrong-protocol")
    with pytest.raises(AdapterProtocolError,
                       match="adapter fake-wrong-protocol: line 1: protocol version mismatch"):
        conn.start()
    assert gwait(lambda: group_gone(conn.pid), 5)


def test_an_adapter_that_exits_before_ready_names_its_status(connect):
    conn = AdapterConnection([sys.executable, "-c", ("import sys; print('boom', file=sys.stderr); "
                              "sys.exit(5)")], meta=["m:1"], table="t")
    with pytest.raises(AdapterError, match=r"adapter .*sys.exit\(5\).* exited \(exit status 5\) "
                                           r"at .* before 'ready'; stderr:\n    boom"):
        conn.start()
    assert group_gone(conn.pid)


def test_a_missing_command_is_a_clear_error():
    with pytest.raises(AdapterError, match="adapter /no/such/adapter: cannot start"):
        AdapterConnection(["/no/such/adapter"], meta=["m:1"], table="t").start()


def test_stop_escalates_to_sigkill_for_an_adapter_that_ignores_stop_and_sigterm(connect):
    conn = connect("stubborn", stop_timeout_s=0.3)
    conn.start()
    t0 = time.monotonic()
    conn.stop()
    assert time.monotonic() - t0 < 4 * (0.3 + 0.3)
    assert conn.exit_code == -9 and group_gone(conn.pid)


def test_ops_in_flight_at_stop_end_unknown(connect):
    conn = connect("slow", op_timeout_ms=60_000)
    conn.start()
    pending = conn.submit("put", b"slow", b"s", b"v")
    gevent.sleep(0.05)
    conn.stop()
    result = pending.get(timeout=5)
    assert (result.outcome, result.error, result.message) == (
        "unknown", "ADAPTER_STOPPED", "adapter fake-slow stopped")


def test_stop_right_after_a_break_waits_for_the_process_to_go(connect):
    conn = connect("garbage", op_timeout_ms=5000)
    conn.start()
    conn.submit("put", b"h", b"s", b"v").get(timeout=10)
    conn.stop()   # the broken connection's own stop may still be under way: this one waits for it
    assert group_gone(conn.pid)
    with pytest.raises(AdapterError, match="already started"):
        conn.start()
