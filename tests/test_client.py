"""Client: every op round-trips against the test cluster; routing, headers, outcomes, API rules."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import gevent
import pytest
from support.policy import LONG_OP_TIMEOUT_MS, wait_for

from loadgen.errors import ConfigError, OpTimeout, SessionReset, StorageError
from loadgen.pegasus import Client, Outcome, ServerError, codec, keys, ttl
from loadgen.pegasus.rdsn.ttypes import blob
from loadgen.testing.cluster import Recorder, TestCluster

pytestmark = pytest.mark.timeout(60)

OP_TIMEOUT_MS = 400
#: For tests about throughput or sharing, not deadlines.
GENEROUS_OP_TIMEOUT_MS = 5000


@pytest.fixture
def cluster():
    with TestCluster(replicas=3, partitions=8) as c:
        yield c


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def client(cluster, recorder):
    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS, observer=recorder) as client:
        yield client


@pytest.fixture
def table(client, recorder):
    table = client.open_table("temp")
    recorder.clear()  # the meta query that opened it
    return table


@pytest.mark.unit
def test_put_get_round_trip_with_str_and_bytes(table):
    table.put("hé", "sort", "välue")
    assert table.get("hé", "sort") == "välue".encode()
    table.put(b"\x00\xff", b"", b"\x01")
    assert table.get(b"\x00\xff", b"") == b"\x01"


@pytest.mark.unit
def test_get_missing_key_is_none(table):
    assert table.get("nobody", "nothing") is None


@pytest.mark.unit
def test_remove(table):
    table.put("h", "s", "v")
    table.remove("h", "s")
    assert table.get("h", "s") is None
    table.remove("h", "s")  # removing a missing key succeeds


@pytest.mark.unit
def test_multi_put_and_multi_get(table):
    table.multi_put("row", {"a": "1", b"b": b"2", "c": "3"})
    assert table.multi_get("row", ["a", "b", "missing"]) == {b"a": b"1", b"b": b"2"}
    assert table.multi_get("row", []) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert table.multi_get("no-such-row", ["a"]) == {}


@pytest.mark.unit
def test_ttl_missing_none_and_expiring(table, cluster):
    table.put("h", "forever", "v")
    table.put("h", "soon", "v", ttl=100)
    assert table.ttl("h", "nothing") is None
    assert table.ttl("h", "forever") == -1
    assert 98 <= table.ttl("h", "soon") <= 100
    _, expire = cluster.data[b"h"][b"soon"]
    assert abs(expire - (ttl.now_ts() + 100)) <= 2  # seconds since 2016-01-01 UTC


@pytest.mark.unit
def test_multi_put_ttl_applies_to_every_value(table, cluster):
    table.multi_put("row", {"a": "1", "b": "2"}, ttl=50)
    assert all(48 <= table.ttl("row", s) <= 50 for s in ("a", "b"))


@pytest.mark.unit
def test_expired_value_reads_as_missing(table, cluster):
    table.put("h", "s", "v")
    cluster.data[b"h"][b"s"] = (b"v", ttl.now_ts() - 1)
    assert table.get("h", "s") is None and table.ttl("h", "s") is None


@pytest.mark.unit
def test_multi_ops_reject_empty_hash_key_and_empty_values(table):
    with pytest.raises(ValueError):
        table.multi_put("", {"a": "1"})
    with pytest.raises(ValueError):
        table.multi_put("h", {})
    with pytest.raises(ValueError):
        table.multi_get("", ["a"])


@pytest.mark.unit
def test_requests_reach_the_primary_of_their_partition(cluster, client, table, recorder):
    # Spread primaries: a request routed to the wrong partition would meet a non-primary
    # and get ERR_INVALID_STATE, forcing a second attempt.
    for pidx in range(cluster.partition_count):
        cluster.move_primary(pidx, cluster.replica_addrs[pidx % 3])
    assert client.refresh("temp")
    recorder.clear()
    for i in range(64):
        table.put(f"user{i}", "s", "v")
    ops = recorder.ops()
    assert len(ops) == 64 and all(o.attempt == 1 and o.outcome == "ok" for o in ops)
    for i, o in enumerate(ops):
        expected = keys.crc64(f"user{i}".encode()) % cluster.partition_count
        assert o.partition == expected == table.partition_of(f"user{i}")
        assert o.node == cluster.primary_of(expected)
    assert len({o.partition for o in ops}) > 4


@pytest.mark.unit
def test_header_carries_ms_left_and_partition_hash(cluster, table):
    table.put("hash-key", "s", "v")
    req = cluster.last_request(cluster.replica_addrs[0])
    assert req.partition_hash == keys.crc64(b"hash-key")
    assert 0.8 * OP_TIMEOUT_MS <= req.client_timeout_ms <= OP_TIMEOUT_MS
    assert req.app_id == cluster.app_id and req.partition_index == table.partition_of("hash-key")


@pytest.mark.unit
def test_observer_gets_attempts_then_op(table, recorder):
    before = time.monotonic()
    table.put("h", "s", "v", intended_start=before - 0.5)
    attempt, op = recorder.outcomes
    assert isinstance(op, Outcome)
    assert (attempt.level, op.level) == ("attempt", "op")
    assert (op.op, op.table, op.outcome, op.error, op.attempt, op.refreshed, op.policy) == \
        ("put", "temp", "ok", None, 1, False, "failover")
    assert before <= op.start <= attempt.start <= attempt.end <= op.end <= time.monotonic()
    assert op.intended_start == attempt.intended_start == before - 0.5


@pytest.mark.unit
def test_failing_observer_is_logged_not_fatal(cluster, caplog):
    def broken(_outcome):
        raise RuntimeError("observer bug")

    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS, observer=broken) as client:
        table = client.open_table("temp")
        with caplog.at_level(logging.ERROR):
            table.put("h", "s", "v")
        assert table.get("h", "s") == b"v"
    assert "observer failed" in caplog.text


@pytest.mark.unit
def test_timed_out_write_is_unknown_and_timed_out_read_is_fail(cluster, table, recorder):
    table.put("h", "s", "v")  # connect first, so both ops below are sent
    recorder.clear()
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    with pytest.raises(OpTimeout):
        table.put("h", "s", "v")
    with pytest.raises(OpTimeout):
        table.get("h", "s")
    put_op, get_op = recorder.ops()
    assert (put_op.outcome, put_op.error) == ("unknown", "ERR_TIMEOUT")
    assert (get_op.outcome, get_op.error) == ("fail", "ERR_TIMEOUT")


@pytest.mark.unit
def test_unknown_table_is_a_server_error(cluster):
    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS) as client:
        with pytest.raises(ServerError) as info:
            client.open_table("no_such_table")
    assert info.value.code == "ERR_OBJECT_NOT_FOUND"


@pytest.mark.unit
def test_policy_by_name_dotted_path_or_instance_with_params(cluster):
    from loadgen.pegasus.policies import Failover

    for spec in ("failover", "loadgen.pegasus.policies:Failover", "loadgen.pegasus.policies.Failover"):
        with Client(cluster.meta_addrs, policy=spec, policy_params={"attempt_timeout_ms": 50}) as client:
            assert isinstance(client.policy, Failover) and client.policy.attempt_timeout_ms == 50
    instance = Failover(repoll_ms=5)
    with Client(cluster.meta_addrs, policy=instance) as client:
        assert client.policy is instance


@pytest.mark.unit
@pytest.mark.parametrize("kwargs, key", [
    ({"policy": "no-such-policy"}, "policy"),
    ({"policy": "failover", "policy_params": {"no_such_param": 1}}, "policy_params.no_such_param"),
    ({"policy": "failover", "policy_params": {"repoll_ms": 0}}, "policy_params.repoll_ms"),
    ({"policy": "legacy", "policy_params": {"repoll_ms": 10}}, "policy_params.repoll_ms"),
    ({"policy": "java", "policy_params": {"session_reset_window_s": -1}},
     "policy_params.session_reset_window_s"),
    ({"policy": "no.such.module:Policy"}, "policy"),
    ({"policy": "loadgen.pegasus.client:Client"}, "policy"),  # importable, but not a policy
    ({"policy": dict}, "policy"),
])
def test_bad_policy_specs_are_config_errors_naming_the_parameter(cluster, kwargs, key):
    with pytest.raises(ConfigError) as info:
        Client(cluster.meta_addrs, **kwargs)
    assert info.value.key == key


@pytest.mark.unit
@pytest.mark.parametrize("meta, op_timeout_ms", [
    ([], 1000), ("", 1000), (["127.0.0.1"], 1000), (["127.0.0.1:x"], 1000), ([34601], 1000),
    (["127.0.0.1:34601"], 0), (["127.0.0.1:34601"], -5),
])
def test_bad_meta_addresses_and_timeouts_are_config_errors(meta, op_timeout_ms):
    # Caught at construction, naming the key, not later as a socket error in a greenlet.
    with pytest.raises(ConfigError) as info:
        Client(meta, op_timeout_ms=op_timeout_ms)
    assert info.value.key in ("meta", "op_timeout_ms")  # the library's names, not profile keys


@pytest.mark.unit
def test_ops_after_close_fail_with_session_reset(cluster):
    client = Client(cluster.meta_addrs, op_timeout_ms=LONG_OP_TIMEOUT_MS)
    table = client.open_table("temp")
    table.put("h", "s", "v")
    client.close()
    started = time.monotonic()
    with pytest.raises(SessionReset):
        table.put("h", "s", "v")
    assert time.monotonic() - started < 0.25 * LONG_OP_TIMEOUT_MS / 1000


@pytest.mark.unit
@pytest.mark.parametrize("policy", ["failover", "legacy", "refresh-on-timeout", "refresh-on-reset",
                                    "java"])
def test_ops_after_close_start_no_config_refresh(cluster, recorder, policy):
    client = Client(cluster.meta_addrs, policy=policy, op_timeout_ms=OP_TIMEOUT_MS,
                    observer=recorder)
    table = client.open_table("temp")
    client.close()
    queries = client.meta_queries
    with pytest.raises(SessionReset):
        table.put("h", "s", "v")
    gevent.sleep(0.05)
    assert client.meta_queries == queries  # none sent on the closed client's behalf
    (op,) = recorder.ops()
    assert (op.error, op.refreshed) == ("ERR_SESSION_RESET", False)


@pytest.mark.unit
def test_storage_error_is_its_own_definite_kind(cluster, recorder, monkeypatch):
    # An ERR_OK reply whose storage status is an error: the server answered and applied
    # nothing. It must not pass for ERR_UNKNOWN (indefinite) in errors-by-kind.
    from loadgen.testing import cluster as testing
    from loadgen.pegasus.gen.rrdb import ttypes as rrdb

    monkeypatch.setitem(testing._REPLICA_HANDLERS, codec.RPC_PUT,
                        lambda *_args: rrdb.update_response(error=5, decree=0))
    monkeypatch.setitem(testing._REPLICA_HANDLERS, codec.RPC_GET,
                        lambda *_args: rrdb.read_response(error=5, value=blob(b"")))
    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS, observer=recorder) as client:
        table = client.open_table("temp")
        for op in (lambda: table.put("h", "s", "v"), lambda: table.get("h", "s")):
            with pytest.raises(StorageError) as info:
                op()
            assert isinstance(info.value, ServerError) and info.value.status == 5
            assert info.value.code == "STORAGE_5"
    assert [(o.op, o.outcome, o.error, o.attempt) for o in recorder.ops()] == \
        [("put", "fail", "STORAGE_5", 1), ("get", "fail", "STORAGE_5", 1)]


@pytest.mark.unit
def test_close_fails_ops_in_flight_without_retrying(cluster, recorder):
    client = Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS, observer=recorder)
    table = client.open_table("temp")
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    job = gevent.spawn(table.put, "h", "s", "v")
    gevent.sleep(0.05)
    client.close()
    job.join()
    assert isinstance(job.exception, SessionReset)
    assert [o.error for o in recorder.attempts()] == ["ERR_SESSION_RESET"]


@pytest.mark.unit
def test_many_greenlets_share_the_client(cluster):
    with Client(cluster.meta_addrs, op_timeout_ms=GENEROUS_OP_TIMEOUT_MS) as client:
        table = client.open_table("temp")
        jobs = [gevent.spawn(table.put, f"k{i}", "s", f"v{i}") for i in range(200)]
        gevent.joinall(jobs, raise_error=True)
        got = [gevent.spawn(table.get, f"k{i}", "s") for i in range(200)]
        gevent.joinall(got, raise_error=True)
        assert [g.value for g in got] == [f"v{i}".encode() for i in range(200)]
        assert cluster.connections(cluster.replica_addrs[0]) == 1


def test_works_under_gevent_monkey_patching():
    # Locust monkey-patches the whole process before anything else is imported.
    script = textwrap.dedent("""
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from loadgen.pegasus import Client
        from loadgen.testing.cluster import TestCluster
        assert monkey.is_module_patched("socket")
        with TestCluster(replicas=2, partitions=4) as cluster:
            with Client(cluster.meta_addrs, op_timeout_ms=2000) as client:
                table = client.open_table("temp")
                jobs = [gevent.spawn(table.put, f"k{i}", "s", "v") for i in range(50)]
                gevent.joinall(jobs, raise_error=True)
                cluster.set_mode(cluster.replica_addrs[0], "down")
                for pidx in range(cluster.partition_count):
                    cluster.move_primary(pidx, cluster.replica_addrs[1])
                print("ok", table.get("k7", "s"))  # fails over to the new primary
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok b'v'"


@pytest.mark.unit
def test_concurrent_open_table_shares_one_query_and_one_table(cluster):
    # Locust users start together and each opens the table on a shared client.
    meta = cluster.meta_addrs[0]
    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS) as client:
        before = cluster.requests(meta)
        jobs = [gevent.spawn(client.open_table, "temp") for _ in range(20)]
        gevent.joinall(jobs, raise_error=True)
        assert len({id(j.value) for j in jobs}) == 1
        assert cluster.requests(meta) - before == 1


@pytest.mark.unit
def test_concurrent_open_of_a_missing_table_fails_every_opener(cluster):
    with Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS) as client:
        jobs = [gevent.spawn(client.open_table, "no_such_table") for _ in range(5)]
        gevent.joinall(jobs)
        assert all(isinstance(j.exception, ServerError) for j in jobs)
        assert client.open_table("temp").name == "temp"  # nothing left half-open


@pytest.mark.unit
@pytest.mark.parametrize("fault", ["down", "invalid_state"])  # re-polling / backing off
def test_close_ends_ops_pausing_between_attempts_at_once(cluster, recorder, fault):
    client = Client(cluster.meta_addrs, op_timeout_ms=5 * OP_TIMEOUT_MS, observer=recorder,
                    policy_params={"backoff_base_ms": 1000, "backoff_cap_ms": 1000})
    table = client.open_table("temp")
    table.put("h", "s", "v")
    # The meta keeps naming the failed primary: failover re-polls ("down") or backs off
    # ("invalid_state") until the op deadline, unless the client is closed.
    cluster.set_mode(cluster.replica_addrs[0], fault)
    job = gevent.spawn(table.put, "h", "s", "v")
    gevent.sleep(0.1)
    closed_at = time.monotonic()
    client.close()
    job.join()
    assert isinstance(job.exception, SessionReset) and "closed" in str(job.exception)
    assert time.monotonic() - closed_at < 0.1 * 5 * OP_TIMEOUT_MS / 1000
    assert recorder.ops()[-1].error == "ERR_SESSION_RESET"


def client_greenlets() -> list:
    """Live greenlets running session or routing code (readers, writers, dialers, refreshers)."""
    import gc

    from loadgen.pegasus.routing import TableRouting
    from loadgen.pegasus.session import Session

    return [g for g in gc.get_objects()
            if isinstance(g, gevent.Greenlet) and not g.dead
            and isinstance(getattr(g._run, "__self__", None), (Session, TableRouting))]


@pytest.mark.unit
def test_close_releases_every_greenlet_and_socket(cluster):
    assert client_greenlets() == []
    client = Client(cluster.meta_addrs, op_timeout_ms=OP_TIMEOUT_MS)
    table = client.open_table("temp")
    for pidx in range(cluster.partition_count):  # a session to every replica
        cluster.move_primary(pidx, cluster.replica_addrs[pidx % 3])
    assert client.refresh("temp")
    jobs = [gevent.spawn(table.put, f"k{i}", "s", "v") for i in range(64)]
    gevent.joinall(jobs, raise_error=True)
    cluster.set_mode(cluster.replica_addrs[0], "hang")
    cluster.set_mode(cluster.replica_addrs[1], "down")
    for meta in cluster.meta_addrs:   # the refreshes the lost puts ask for stay under way
        cluster.set_mode(meta, "hang")
    pending = [gevent.spawn(table.put, f"k{i}", "s", "v") for i in range(64)]
    gevent.sleep(0.05)
    assert client_greenlets()
    sessions = list(client._sessions.values()) + list(client._meta._sessions.values())
    socks = [s._conn.sock for s in sessions if s._conn is not None]
    client.close()
    gevent.joinall(pending, timeout=10)
    assert all(j.dead for j in pending)
    assert wait_for(lambda: client_greenlets() == [], timeout_s=5), client_greenlets()
    assert socks and all(sock.fileno() == -1 for sock in socks)
    assert all(s.in_flight == 0 for s in sessions)
