"""Onebox units without processes: health rules, spec validation, fault records, READY
instants, and the control server's handling of one connection (garbage, bad commands,
failures) over a socket pair."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from loadgen.errors import ConfigError, NodeCrashed
from loadgen.onebox import control_server, health, process
from loadgen.onebox.fault_applied import FaultApplied
from loadgen.onebox.health import NodeInfo
from loadgen.onebox.node_process import ready_instant
from loadgen.onebox.spec import FDConfig, OneboxSpec

pytestmark = pytest.mark.unit

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
NODES = [NodeInfo("meta1", "127.0.0.1:9", 10, "running"), NodeInfo("replica1", A, 11, "running"),
         NodeInfo("replica2", B, 12, "running"), NodeInfo("replica3", C, 13, "running")]


def cfg(*parts: tuple[str, list[str]]):
    return SimpleNamespace(app_id=1, partition_count=len(parts), partitions=[
        SimpleNamespace(pid=SimpleNamespace(partition_index=i), ballot=3, primary=p,
                        secondaries=s, last_committed_decree=7) for i, (p, s) in enumerate(parts)])


def with_state(name: str, state: str) -> list[NodeInfo]:
    return [NodeInfo(n.name, n.addr, n.pid, state if n.name == name else n.state) for n in NODES]


def test_healthy_needs_every_node_running_and_full_partitions():
    good = cfg((A, [B, C]), (B, [C, A]))
    assert health.problems(NODES, 3, good) == []
    assert health.problems(NODES, 3, cfg((A, [B]))) == ["partition 0: 1 of 2 secondaries alive"]
    assert health.problems(NODES, 3, cfg(("", [B, C]))) == \
        ["partition 0: no alive primary (none)"]
    # a paused node serves nobody: its partitions count as unhealthy too
    assert health.problems(with_state("replica1", "paused"), 3, good) == [
        "replica1 paused", "partition 0: no alive primary (127.0.0.1:1)",
        "partition 1: 1 of 2 secondaries alive"]


def test_no_config_is_never_healthy_and_says_why():
    assert health.problems(NODES, 3, None) == ["partition config unknown"]
    assert health.problems(with_state("meta1", "dead"), 3, None) == ["meta1 dead"]
    assert health.problems(NODES, 3, None, "meta 127.0.0.1:9 unreachable: ERR_TIMEOUT") == \
        ["meta 127.0.0.1:9 unreachable: ERR_TIMEOUT"]


def test_status_document_shape_with_and_without_config():
    dropped = {"replica1": 3, "replica2": 0, "replica3": None}
    doc = health.status_document(dir="/d", supervisor_pid=5, meta="127.0.0.1:9", nodes=NODES,
                                 cfg=cfg((A, [B, C])), healthy=True, dropped_expired=dropped)
    assert doc == {"dir": "/d", "supervisor_pid": 5, "meta": "127.0.0.1:9", "app_id": 1,
                   "partition_count": 1, "healthy": True,
                   "nodes": [{"name": n.name, "addr": n.addr, "pid": n.pid, "state": n.state,
                              "dropped_expired": dropped.get(n.name)} for n in NODES],
                   "partitions": [{"pidx": 0, "ballot": 3, "primary": A, "secondaries": [B, C],
                                   "last_committed_decree": 7}]}
    blind = health.status_document(dir="/d", supervisor_pid=5, meta="127.0.0.1:9",
                                   nodes=with_state("meta1", "dead"), cfg=None, healthy=False)
    assert (blind["app_id"], blind["partition_count"], blind["partitions"]) == (None, None, [])
    assert set(blind) == set(doc) and blind["nodes"][0]["state"] == "dead"
    assert {n["dropped_expired"] for n in blind["nodes"]} == {None}  # not asked: unknown
    json.dumps(blind)


@pytest.mark.parametrize("kw, key", [
    (dict(partitions=6), "partitions"),
    (dict(meta_port=0), "meta_port"),
    (dict(replica_ports=(5000, 5000, 5001)), "replica_ports"),
    (dict(meta_port=5000, replica_ports=(5000, 5001, 5002)), "replica_ports"),
    (dict(replica_ports=(5000, 5001, 65536)), "replica_ports"),
])
def test_spec_rejects_bad_shapes_and_ports(kw, key):
    with pytest.raises(ConfigError) as info:
        OneboxSpec(dir="x", **kw)
    assert info.value.key == key


def test_spec_drop_expired_is_off_by_default_and_a_bool(tmp_path):
    assert OneboxSpec(dir="x").drop_expired is False
    spec = OneboxSpec(dir=str(tmp_path), drop_expired=True)
    assert OneboxSpec.from_json(spec.to_json()).drop_expired is True  # reaches the nodes
    with pytest.raises(ConfigError) as info:
        OneboxSpec(dir="x", drop_expired="yes")  # a profile typo must not read as true
    assert info.value.key == "drop_expired"


@pytest.mark.parametrize("kw, key", [
    (dict(lease_s=5, grace_s=4), "fd.grace_s"),
    (dict(beacon_s=5, lease_s=5, grace_s=6), "fd.beacon_s"),
    (dict(check_s=30), "fd.check_s"),
    (dict(beacon_s=0), "fd.beacon_s"),
])
def test_fd_timings_must_be_consistent(kw, key):
    with pytest.raises(ConfigError) as info:
        FDConfig(**kw)
    assert info.value.key == key


# ----------------------------------------------------------------------- one control connection

class StubBox:
    """Just enough of an Onebox for control_server._handle."""

    def __init__(self, fail: BaseException | None = None):
        self.fail, self.calls, self.stopped = fail, [], False
        self.nodes = {"replica1": NodeInfo("replica1", A, 11, "dead")}

    def status(self) -> dict:
        return {"healthy": True}

    def kill(self, name: str) -> FaultApplied:
        self.calls.append(("kill", name))
        if self.fail:
            raise self.fail
        return FaultApplied(name, "kill", 12.5, None, 11, "dead")

    def stop(self) -> None:
        self.stopped = True


def exchange(box: StubBox, payload: bytes, *, close_after: bool = False) -> tuple[bool, dict | None]:
    """Send ``payload`` to control_server._handle; (stop requested?, decoded reply or None)."""
    server, client = socket.socketpair()
    with server, client:
        client.sendall(payload)
        if close_after:
            client.shutdown(socket.SHUT_WR)
        stopping = control_server._handle(box, server)
        server.shutdown(socket.SHUT_WR)
        line = client.makefile("rb").readline()
    return stopping, json.loads(line) if line else None


@pytest.mark.parametrize("payload, key", [
    (b"\x00\xffgarbage\n", "request"),
    (b"[1, 2]\n", "request"),
    (b'"status"\n', "request"),
    (b'{"cmd": "explode"}\n', "cmd"),
    (b'{"cmd": "kill"}\n', "node"),
    (b'{"cmd": "kill", "node": ["replica1"]}\n', "node"),
])
def test_bad_requests_get_an_error_reply(payload, key):
    box = StubBox()
    stopping, reply = exchange(box, payload)
    assert not stopping and reply["ok"] is False
    assert reply["error"]["kind"] == "ConfigError" and reply["error"]["key"] == key
    assert box.calls == [] and not box.stopped


def test_half_a_request_then_hang_up_is_dropped_with_a_reply_attempt():
    stopping, reply = exchange(StubBox(), b'{"cmd": "sta', close_after=True)
    assert not stopping and reply["ok"] is False and reply["error"]["key"] == "request"


def test_oversized_request_is_refused(monkeypatch):
    monkeypatch.setattr(control_server, "MAX_REQUEST_BYTES", 64)
    stopping, reply = exchange(StubBox(), b"{" + b" " * 200 + b"}\n")
    assert not stopping and reply["error"]["key"] == "request"
    assert reply["error"]["expected"] == "one JSON line of at most 64 bytes"


def test_cleanup_at_exit_stops_every_owner_even_after_one_fails(caplog):
    stopped = []

    class Owner:
        def __init__(self, fails: bool):
            self.fails = fails

        def stop(self) -> None:
            stopped.append(self)
            if self.fails:
                raise RuntimeError("stuck node")

    owners = [Owner(True), Owner(False), Owner(True)]
    saved = set(process._to_stop)
    process._to_stop.clear()
    try:
        process._to_stop.update(owners)
        process._stop_all()
    finally:
        process._to_stop.clear()
        process._to_stop.update(saved)
    assert sorted(map(id, stopped)) == sorted(map(id, owners))
    assert [r.exc_info[1].args for r in caplog.records] == [("stuck node",)] * 2


def test_failures_are_replied_structured_and_unexpected_ones_too():
    crash = NodeCrashed("replica2", -9, ["last words"])
    _, reply = exchange(StubBox(fail=crash), b'{"cmd": "kill", "node": "replica1"}\n')
    assert reply["error"] == {"kind": "NodeCrashed", "node": "replica2", "exit": -9,
                              "last_lines": ["last words"]}
    # a bug inside a command must not take the supervisor (and its nodes) down
    _, reply = exchange(StubBox(fail=RuntimeError("oops")), b'{"cmd": "kill", "node": "replica1"}\n')
    assert reply["ok"] is False and "oops" in reply["error"]["message"]
    # nor may an OS error of a command (a node binary gone) pass for a client hanging up
    _, reply = exchange(StubBox(fail=FileNotFoundError(2, "no such node binary")),
                        b'{"cmd": "kill", "node": "replica1"}\n')
    assert reply["ok"] is False and "no such node binary" in reply["error"]["message"]


def test_a_client_that_never_sends_is_dropped(monkeypatch):
    monkeypatch.setattr(control_server, "REQUEST_READ_TIMEOUT_S", 0.1)
    server, client = socket.socketpair()
    with server, client:
        assert control_server._handle(StubBox(), server) is False


def test_commands_and_stop():
    box = StubBox()
    assert exchange(box, b'{"cmd": "status"}\n') == (False, {"ok": True, "result": {"healthy": True}})
    _stopping, reply = exchange(box, b'{"cmd": "kill", "node": "replica1"}\n')
    assert box.calls == [("kill", "replica1")]
    # the fault record travels whole and comes back typed on the client side
    assert FaultApplied.from_dict(reply["result"]) == FaultApplied("replica1", "kill", 12.5, None,
                                                                   11, "dead")
    assert exchange(box, b'{"cmd": "stop"}\n') == (True, {"ok": True, "result": None})
    assert box.stopped


def test_onebox_takes_a_replica_base_port_or_explicit_ports(tmp_path):
    from loadgen.onebox.supervisor import Onebox

    box = Onebox(tmp_path, replica_nodes=3, meta_port=40000, replica_base_port=40010)
    assert box.spec.replica_ports == (40010, 40011, 40012)
    assert Onebox(tmp_path, meta_port=40000, replica_ports=[40005, 40007, 40009]).spec \
        .replica_ports == (40005, 40007, 40009)
    with pytest.raises(ConfigError) as err:
        Onebox(tmp_path, replica_base_port=40010, replica_ports=[40005, 40007, 40009])
    assert err.value.key == "replica_base_port"


def test_fault_record_from_json_names_what_is_wrong():
    applied = FaultApplied("replica2", "restart", 10.25, 10.75, 42, "running")
    assert FaultApplied.from_dict(json.loads(json.dumps(applied.to_dict()))) == applied
    with pytest.raises(ValueError, match="lacks t_ready, pid, state"):
        FaultApplied.from_dict({"node": "replica2", "action": "kill", "t_signal": 1.0})
    with pytest.raises(ValueError, match="t_signal must be a number or null"):
        FaultApplied.from_dict({**applied.to_dict(), "t_signal": "soon"})
    with pytest.raises(ValueError, match="JSON object"):
        FaultApplied.from_dict(None)


def test_ready_instant_is_the_nodes_own_when_it_says():
    assert ready_instant(b"READY 127.0.0.1:1 100.250000", seen=101.0) == 100.25
    # a node that does not say (a test double) is timed when the supervisor saw the line
    assert ready_instant(b"READY 127.0.0.1:1", seen=101.0) == 101.0
    assert ready_instant(b"READY 127.0.0.1:1 soon", seen=101.0) == 101.0
    assert ready_instant(b"READY 127.0.0.1:1 nan", seen=101.0) == 101.0
    # never later than the line was read: a bogus future instant is capped
    assert ready_instant(b"READY 127.0.0.1:1 500.0", seen=101.0) == 101.0
