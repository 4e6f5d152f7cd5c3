"""The pypegasus3 adapter (loadgen.adapters.pypegasus) in its real venv against a real onebox.

The venv is installed once into the default cache (``pegbench clients install pypegasus``;
a second run finds it and takes well under a second). Time bounds are relative to the op
timeout and the onebox's failure-detector timings, never tight absolute times. Every onebox
and adapter process is stopped after each test, pass or fail.
"""

from __future__ import annotations

import time

import gevent
import pytest
from support.onebox import first_new_primary, hash_keys_per_partition, make_box, node_of
from support.processes import group_gone, stop_adapters, wait_until

from loadgen.adapters import AdapterConnection, AdapterError, venvs
from loadgen.adapters.pypegasus import DEFINITE
from loadgen.pegasus import error_codes

pytestmark = [pytest.mark.onebox, pytest.mark.slow]

OP_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def command() -> list[str]:
    venvs.install("pypegasus", progress=lambda line: None)
    return venvs.adapter_command("pypegasus")


@pytest.fixture
def box(tmp_path):
    with make_box(tmp_path / "box") as b:
        yield b


@pytest.fixture
def connect(command, box):
    """connect(**kw) -> a started AdapterConnection to ``box``; stopped after the test, and
    its process group must be gone."""
    made: list[AdapterConnection] = []

    def make(**kw) -> AdapterConnection:
        kw.setdefault("op_timeout_ms", OP_TIMEOUT_MS)
        kw.setdefault("table", "temp")
        conn = AdapterConnection(command, meta=box.meta_addrs, name="pypegasus",
                                 env=venvs.adapter_env(), **kw)
        made.append(conn)
        conn.start()
        return conn

    yield make
    stop_adapters(made)


def test_definite_rejections_match_the_registry():
    """The adapter keeps its own copy (it cannot import loadgen.pegasus in its venv)."""
    assert DEFINITE == {n for n in (*error_codes.KNOWN, *error_codes.SERVER_ONLY)
                        if error_codes.info(n).definite}


def test_ops_round_trip_and_stop(connect):
    conn = connect()
    assert conn.ready.client == "pypegasus3" and conn.ready.version == "0.0.1.1"
    assert conn.ready.ops == ["put", "get", "multi_put"]
    value = bytes(range(256))   # not UTF-8: the adapter must carry bytes unchanged
    assert conn.call("put", b"user1", b"profile", value).outcome == "ok"
    got = conn.call("get", b"user1", b"profile")
    assert (got.outcome, got.error, got.value) == ("ok", None, value)
    missing = conn.call("get", b"user1", b"no-such-sort-key")
    assert (missing.outcome, missing.error, missing.value) == ("ok", None, None)
    multi = conn.call("multi_put", b"user2", sort_keys=[b"m0", b"m1", b"\xff"],
                      values=[b"a", b"\x00b", b"\xfe"])
    assert multi.outcome == "ok", multi
    assert [conn.call("get", b"user2", sk).value for sk in (b"m0", b"m1", b"\xff")] == \
        [b"a", b"\x00b", b"\xfe"]

    pid = conn.pid
    conn.stop()
    assert conn.bye and conn.exit_code == 0
    assert wait_until(lambda: group_gone(pid), 5)


def test_stdin_eof_ends_the_adapter(connect):
    conn = connect()
    conn.proc.stdin.close()   # pegbench went away without 'stop'
    assert wait_until(lambda: conn.proc.poll() is not None, 10)
    assert conn.proc.returncode == 0 and not conn.bye


def test_unknown_table_fails_before_ready(connect):
    with pytest.raises(AdapterError, match="before 'ready'") as info:
        connect(table="no-such-table", options={"init_timeout_s": 1})
    assert "exit status 1" in str(info.value)   # its own verdict, not a crash (SIGABRT)
    assert "no config for table 'no-such-table'" in str(info.value)


def test_many_ops_in_flight(connect):
    conn = connect()
    keys = hash_keys_per_partition()
    puts = [conn.submit("put", keys[i % 8] + b"-%d" % i, b"s", b"v%d" % i) for i in range(50)]
    assert conn.in_flight > 1   # none waited for the one before
    results = [r.get(timeout=10) for r in puts]
    assert [r.outcome for r in results] == ["ok"] * 50, {r.error for r in results}
    gets = [conn.submit("get", keys[i % 8] + b"-%d" % i, b"s") for i in range(50)]
    assert [r.get(timeout=10).value for r in gets] == [b"v%d" % i for i in range(50)]


def test_a_stuck_op_holds_back_no_other(connect, box):
    """Puts to a SIGSTOPped primary wait for the client's timer (ERR_TIMEOUT, unknown) while
    a put to another node's partition completes at once: the adapter serializes nothing."""
    conn = connect(op_timeout_ms=2000)
    cfg = box.config()
    keys = hash_keys_per_partition()
    victim_addr = str(cfg.partitions[0].primary)
    other = next(i for i in range(1, 8) if str(cfg.partitions[i].primary) != victim_addr)
    box.pause(node_of(box, victim_addr))
    try:
        stuck = [conn.submit("put", keys[0], b"s", b"%d" % i) for i in range(5)]
        gevent.sleep(0.1)
        free = conn.call("put", keys[other], b"s", b"x")
        assert free.outcome == "ok" and free.end - free.start < 2.0 / 2, free
        assert not any(r.ready() for r in stuck)
        results = [r.get(timeout=10) for r in stuck]
        assert {(r.outcome, r.error) for r in results} == {("unknown", "ERR_TIMEOUT")}
        assert all(r.end - r.start >= 2.0 * 0.9 for r in results)
    finally:
        box.resume(node_of(box, victim_addr))


def test_recovers_after_the_primary_is_killed(connect, box):
    """pypegasus3 never notices a lost connection: the puts to the dead primary time out,
    and after MAX_TIMEOUT_THRESHOLD (5) timeouts its 2 s meta check re-runs init() and finds
    the new primary. Puts to that partition then succeed again."""
    conn = connect()
    fd = box.spec.fd
    hk = hash_keys_per_partition()[0]
    victim_addr = str(box.config().partitions[0].primary)
    victim = node_of(box, victim_addr)
    results: list[tuple[float, float, str, str | None]] = []   # start, end, outcome, error
    running = True

    def writer() -> None:
        n = 0
        while running and n < 2000:
            r = conn.call("put", hk, b"s", b"%d" % n)
            results.append((r.start, r.end, r.outcome, r.error))
            n += 1
            gevent.sleep(0.05)

    def first_ok_after(t: float) -> float | None:
        return next((end for start, end, outcome, _ in results if start > t and outcome == "ok"),
                    None)

    # Several writers: the client refreshes only after 5 timeouts, which one writer with a
    # 1 s op timeout would take 5 s to pile up.
    workers = [gevent.spawn(writer) for _ in range(4)]
    try:
        gevent.sleep(0.5)
        assert first_ok_after(0) is not None, "no put succeeded before the fault"
        t_kill = time.monotonic()
        box.kill(victim)
        # Bound: the meta replaces the primary within grace + check; the client needs 5
        # timeouts (4 writers: about 2 op timeouts), then its 2 s check, then a connect.
        limit = fd.grace_s + fd.check_s + 3 * OP_TIMEOUT_MS / 1000 + 2 * 2.0 + 5
        deadline = t_kill + limit
        while first_ok_after(t_kill) is None and time.monotonic() < deadline:
            gevent.sleep(0.1)
        t_ok = first_ok_after(t_kill)
        errors = sorted({e for s, _, o, e in results if s > t_kill and o != "ok"})
        assert t_ok is not None, f"no put succeeded within {limit:.1f} s of the kill; errors {errors}"
        failed = [(o, e) for s, end, o, e in results if s > t_kill and end < t_ok and o != "ok"]
        assert failed, "every put after the kill succeeded: the fault did not hit the partition"
        assert {o for o, _ in failed} <= {"fail", "unknown"}
        t_new = first_new_primary(box, 0, victim_addr, t_kill)
        assert t_new is not None and t_ok > t_new, "a put succeeded before the new primary"
        print(f"\npypegasus3: new primary {t_new - t_kill:.2f} s after the kill, first ok put "
              f"{t_ok - t_kill:.2f} s after the kill; {len(failed)} puts failed before, errors "
              f"{sorted({e for _, e in failed})}")
        gevent.sleep(0.5)   # and it stays recovered
        later = [o for s, _, o, _ in results if s > t_ok + 0.1]
        assert later and set(later) == {"ok"}, later
    finally:
        running = False
        gevent.joinall(workers, timeout=2 * OP_TIMEOUT_MS / 1000 + 5)
