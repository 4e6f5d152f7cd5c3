"""Onebox server logic in-process: a primary whose lease ran out never acks, and the meta
changes a member (upgrade or remove) only at the current ballot."""

from __future__ import annotations

import time

import gevent
import pytest
from support.onebox import put_args
from support.ports import onebox_ports
from support.replica import FakeConnection, lone_primary

from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.meta_server import MetaServer, NodeState
from loadgen.onebox.spec import FAST_FD, OneboxSpec
from loadgen.pegasus import codec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("lease_runs_out", [False, True])
def test_no_ack_once_the_lease_ran_out_while_the_write_waited(tmp_path, lease_runs_out):
    server = lone_primary(tmp_path)
    conn = FakeConnection()
    frame = codec.encode_request(codec.RPC_PUT, 1, put_args(b"h", b"", b"v"), app_id=1,
                                 partition_index=0)
    assert server._client_op(conn, codec.decode_request(frame)) is None  # replies after commit
    if lease_runs_out:
        server.lease_until = time.monotonic()  # e.g. SIGSTOPped with the prepare acks queued
    gevent.sleep(0.05)
    assert [r.error for r in conn.sent] == ["ERR_TIMEOUT" if lease_runs_out else "ERR_OK"]
    for replica in server.partitions.values():
        replica.log.close()


@pytest.mark.parametrize("action", ["upgrade", "remove"])
def test_meta_changes_a_member_only_at_the_current_ballot(tmp_path, action):
    spec = OneboxSpec(dir=str(tmp_path), **onebox_ports(3), fd=FAST_FD)
    meta = MetaServer(spec, tmp_path)
    a, b, c = (spec.nodes[n] for n in spec.replica_names)
    now = time.monotonic()
    for addr in (a, b, c):
        meta.nodes[addr] = NodeState(incarnation=1, last_beacon=now)
    meta.assigned = True
    p = meta.partitions[0]
    p.ballot, p.primary, p.secondaries, p.learners = 10, a, [b], [c]

    def change(ballot: int) -> ob.member_change_response:
        return meta._on_member_change(ob.member_change_request(pidx=0, ballot=ballot, requester=a,
                                                               node=c, action=action))

    # c caught up (or failed) at ballot 8, then was removed and re-added: a new life
    stale = change(8)
    assert (p.secondaries, p.learners, p.ballot) == ([b], [c], 10)
    assert stale.config.ballot == 10  # the primary learns the current config and asks again
    assert meta.nodes[c].removed_at == {}  # not barred from re-joining either
    change(10)
    want = ([b, c], []) if action == "upgrade" else ([b], [])
    assert (p.secondaries, p.learners, p.ballot) == (*want, 11)
    meta._log_file.close()


def test_meta_failure_detector_survives_a_failing_round(tmp_path, caplog):
    spec = OneboxSpec(dir=str(tmp_path), **onebox_ports(3), fd=FAST_FD)
    meta = MetaServer(spec, tmp_path)
    rounds = []

    def failing_round() -> None:
        rounds.append(time.monotonic())
        raise RuntimeError("a bug in one round")

    meta._check = failing_round
    checker = gevent.spawn(meta._check_loop)
    gevent.sleep(FAST_FD.check_s * 4)
    assert not checker.dead, "the failure detector died with its first failing round"
    checker.kill()
    meta._log_file.close()
    assert len(rounds) >= 2
    assert "failure-detector round failed" in caplog.text
