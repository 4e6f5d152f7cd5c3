"""Meta session and routing cache: leader discovery, skipping bad metas, coalesced refreshes."""

from __future__ import annotations

import time

import gevent
import pytest

from loadgen.errors import OpTimeout, PegasusError, ProtocolError, ServerError, SessionReset
from loadgen.pegasus import Client
from loadgen.pegasus.gen.replication import ttypes as replication
from loadgen.pegasus.meta import MetaSession
from loadgen.pegasus.rdsn.ttypes import error_code, gpid, rpc_address
from loadgen.pegasus.routing import APPLY_GO, TableConfig, TableRouting
from loadgen.testing.cluster import TestCluster

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture
def cluster():
    with TestCluster(replicas=2, metas=3, partitions=4) as c:
        yield c


@pytest.fixture
def metas():
    made: list[MetaSession] = []

    def make(addrs, **kwargs) -> MetaSession:
        made.append(MetaSession(addrs, **kwargs))
        return made[-1]

    yield make
    for m in made:
        m.close()


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


def test_first_meta_down_then_forward_to_a_leader_not_in_the_list(cluster, metas):
    m1, m2, m3 = cluster.meta_addrs
    cluster.set_mode(m1, "down")
    cluster.set_leader(m3)
    meta = metas([m1, m2])
    resp = meta.query_config("temp", soon())
    assert (resp.app_id, resp.partition_count, len(resp.partitions)) == (1, 4, 4)
    assert meta.leader == m3 and meta.addrs == [m1, m2, m3]
    assert cluster.requests(m2) == 1 and cluster.requests(m3) == 1
    # The leader is asked first from now on.
    meta.query_config("temp", soon())
    assert cluster.requests(m2) == 1 and cluster.requests(m3) == 2


def test_client_opens_a_table_through_a_forwarding_meta(cluster):
    m1, m2, m3 = cluster.meta_addrs
    cluster.set_mode(m1, "down")
    cluster.set_leader(m3)
    with Client([m1, m2], op_timeout_ms=500) as client:
        table = client.open_table("temp")
        table.put("h", "s", "v")
        assert table.get("h", "s") == b"v"


def test_hanging_meta_is_skipped_after_the_attempt_timeout(cluster, metas):
    m1, m2, _ = cluster.meta_addrs
    cluster.set_mode(m1, "hang")
    cluster.set_leader(m2)
    attempt_timeout_s, query_timeout_s = 0.2, 4.0
    meta = metas([m1, m2], attempt_timeout_s=attempt_timeout_s)
    started = time.monotonic()
    assert meta.query_config("temp", soon(query_timeout_s)).partition_count == 4
    # m2 was asked once m1's attempt timed out: well before the query's own deadline.
    assert 0.9 * attempt_timeout_s <= time.monotonic() - started < 0.5 * query_timeout_s
    assert meta.leader == m2 and cluster.requests(m2) == 1


def test_all_metas_down_fails_fast_with_the_last_error(cluster, metas):
    for addr in cluster.meta_addrs:
        cluster.set_mode(addr, "down")
    meta = metas(cluster.meta_addrs)
    started = time.monotonic()
    with pytest.raises(SessionReset):
        meta.query_config("temp", soon())
    assert time.monotonic() - started < 0.5


def test_all_metas_hanging_ends_at_the_deadline(cluster, metas):
    for addr in cluster.meta_addrs:
        cluster.set_mode(addr, "hang")
    meta = metas(cluster.meta_addrs, attempt_timeout_s=0.1)
    with pytest.raises(OpTimeout) as info:
        meta.query_config("temp", soon(0.25))
    assert info.value.last_error.code == "ERR_TIMEOUT"


def test_forward_to_a_dead_leader_is_bounded(cluster, metas):
    m1, m2, m3 = cluster.meta_addrs
    cluster.set_mode(m3, "down")
    cluster.set_leader(m3)
    meta = metas([m1, m2])
    with pytest.raises(PegasusError):
        meta.query_config("temp", soon())
    assert cluster.requests(m1) + cluster.requests(m2) <= 2 * 3 + 2


def test_unknown_table_is_final(cluster, metas):
    m1, m2, _ = cluster.meta_addrs
    meta = metas([m1, m2])
    with pytest.raises(ServerError) as info:
        meta.query_config("nope", soon())
    assert info.value.code == "ERR_OBJECT_NOT_FOUND"
    assert cluster.requests(m2) == 0


def test_answer_without_error_code_skips_to_the_next_meta(cluster, metas, monkeypatch):
    # An ERR_OK frame whose query_cfg_response lacks its err field used to escape as an
    # AttributeError, outside the error tree, and stop the search for a meta.
    m1, m2, _ = cluster.meta_addrs
    cluster.set_leader(m2)
    real = TestCluster._config

    def no_err_from_m1(self, ep, args):
        resp = real(self, ep, args)
        if ep.addr == m1:
            resp.err = None
        return resp

    monkeypatch.setattr(TestCluster, "_config", no_err_from_m1)
    meta = metas([m1, m2])
    assert meta.query_config("temp", soon()).partition_count == 4
    assert meta.leader == m2
    cluster.set_leader(m1)
    with pytest.raises(ServerError) as info:
        metas([m1]).query_config("temp", soon(0.5))
    assert info.value.code == "ERR_INVALID_DATA" and m1 in str(info.value)


# ---------------------------------------------------------------------------- routing


def config_response(count: int, indexes: list[int]) -> replication.query_cfg_response:
    parts = [replication.partition_configuration(
        pid=gpid(1, i), ballot=3, primary=rpc_address("127.0.0.1", 34801)) for i in indexes]
    return replication.query_cfg_response(err=error_code("ERR_OK"), app_id=1,
                                          partition_count=count, is_stateful=True, partitions=parts)


def test_table_config_from_a_good_answer():
    config = TableConfig.from_response("t", config_response(2, [1, 0]))
    assert [(r.index, r.primary, r.ballot) for r in config.partitions] == \
        [(0, "127.0.0.1:34801", 3), (1, "127.0.0.1:34801", 3)]


@pytest.mark.parametrize("count, indexes", [(3, [0, 1, 2]), (4, [0, 1, 2]), (2, [0, 0]),
                                            (2, [0, 5]), (0, [])])
def test_table_config_rejects_unusable_answers(count, indexes):
    with pytest.raises(ProtocolError):
        TableConfig.from_response("t", config_response(count, indexes))


def test_table_config_rejects_an_answer_without_app_id():
    resp = config_response(2, [0, 1])
    resp.app_id = None
    with pytest.raises(ProtocolError, match="app_id"):
        TableConfig.from_response("t", resp)


def test_missing_primary_is_kept_as_none(cluster, metas):
    cluster.move_primary(2, None)
    routing = TableRouting("temp", metas(cluster.meta_addrs))
    routing.load(soon())
    assert routing.route(2).primary is None and routing.route(1).primary is not None


def test_concurrent_refreshes_coalesce_into_one_meta_query(cluster, metas):
    leader = cluster.meta_addrs[0]
    routing = TableRouting("temp", metas(cluster.meta_addrs))
    routing.load(soon())
    before, generation = cluster.requests(leader), routing.generation
    jobs = [gevent.spawn(routing.wait, soon(), newer_than=generation) for _ in range(30)]
    gevent.joinall(jobs, raise_error=True)
    assert all(job.value for job in jobs)
    assert cluster.requests(leader) == before + 1
    assert routing.generation == generation + 1
    # Already newer than what these callers saw: no query at all.
    assert routing.wait(soon(), newer_than=generation)
    assert cluster.requests(leader) == before + 1 and routing.generation == generation + 1


def test_one_refresh_in_flight_and_one_scheduled_at_most(cluster, metas):
    leader = cluster.meta_addrs[0]
    routing = TableRouting("temp", metas(cluster.meta_addrs))
    routing.load(soon())
    before = cluster.requests(leader)
    assert routing.refresh_now() and routing.refresh_now() and routing.in_flight
    routing.refresh_at(time.monotonic() + 0.2)  # one is in flight: not scheduled
    assert not routing.scheduled
    done = routing.next_result()
    assert done.wait(2) and not routing.in_flight
    routing.refresh_at(time.monotonic() + 0.1)
    routing.refresh_at(time.monotonic() + 0.3)  # a later one joins the one scheduled
    assert routing.scheduled and cluster.requests(leader) == before + 1
    gevent.sleep(0.05)
    assert cluster.requests(leader) == before + 1
    assert routing.next_result().wait(2)        # at +0.1 s: one query, nothing left
    assert cluster.requests(leader) == before + 2 and not routing.scheduled
    gevent.sleep(0.3)
    assert cluster.requests(leader) == before + 2


def test_an_earlier_request_moves_the_scheduled_refresh_up_and_a_dropped_one_wakes_waiters(
        cluster, metas):
    leader = cluster.meta_addrs[0]
    routing = TableRouting("temp", metas(cluster.meta_addrs))
    routing.load(soon())
    before = cluster.requests(leader)
    t0 = time.monotonic()
    routing.refresh_at(t0 + 1.0)
    routing.refresh_at(t0 + 0.05)               # moves it up: one query, at +0.05 s
    assert routing.next_result().wait(2) and time.monotonic() - t0 < 0.5
    gevent.sleep(0.1)
    assert cluster.requests(leader) == before + 1 and not routing.scheduled
    waiter = routing.next_result()
    routing.refresh_at(time.monotonic() + 0.05, unless=lambda: True)
    assert waiter.wait(2)                       # dropped when due: woken, nothing asked
    assert cluster.requests(leader) == before + 1


def test_failed_refresh_keeps_the_old_config(cluster, metas):
    routing = TableRouting("temp", metas(cluster.meta_addrs[:1]))
    old = routing.load(soon())
    cluster.set_mode(cluster.meta_addrs[0], "down")
    generation = routing.generation
    assert routing.wait(soon(), newer_than=generation) is False
    assert routing.config is old and isinstance(routing.last_error, SessionReset)
    assert routing.generation == generation


def test_closed_routing_starts_no_refresh(cluster, metas):
    # A closed client's ops still fail and ask their policy; its routing must not go on
    # querying the metas (or leave greenlets behind) on their behalf.
    leader = cluster.meta_addrs[0]
    routing = TableRouting("temp", metas(cluster.meta_addrs))
    routing.load(soon())
    routing.close()
    before, generation = cluster.requests(leader), routing.generation
    assert routing.refresh_now() is False
    routing.refresh_at(time.monotonic() + 0.01)
    assert not routing.in_flight and not routing.scheduled
    assert routing.wait(soon(), newer_than=generation) is False
    gevent.sleep(0.05)
    assert cluster.requests(leader) == before and routing.generation == generation


def test_go_apply_stops_at_the_first_partition_without_primary(cluster, metas):
    """go-client/pegasus/table_connector.go handleQueryConfigResp: partitions are taken in
    order until the first one without a primary; the rest keep their old routes. Taken whole,
    the same answer names no primary for that partition."""
    meta = metas(cluster.meta_addrs)
    go = TableRouting("temp", meta, apply=APPLY_GO)
    whole = TableRouting("temp", meta)
    for routing in (go, whole):
        routing.load(soon())
    old2, old3 = go.route(2), go.route(3)
    b = cluster.replica_addrs[1]
    cluster.move_primary(1, b)
    cluster.move_primary(2, None)
    cluster.move_primary(3, b)
    for routing in (go, whole):
        assert routing.wait(soon(), newer_than=routing.generation)
    assert go.route(1).primary == whole.route(1).primary == b
    assert go.route(2) == old2 and whole.route(2).primary is None
    assert go.route(3) == old3 and whole.route(3).primary == b
    assert go.last_changed and whole.last_changed
