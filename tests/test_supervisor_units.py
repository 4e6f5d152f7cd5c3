"""Onebox units without processes: health rules, spec validation, and the control server's
handling of one connection (garbage, bad commands, failures) over a socket pair."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from loadgen.errors import ConfigError, NodeCrashed
from loadgen.onebox import control, health, process
from loadgen.onebox.health import NodeInfo
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
    doc = health.status_document(dir="/d", supervisor_pid=5, meta="127.0.0.1:9", nodes=NODES,
                                 cfg=cfg((A, [B, C])), healthy=True)
    assert doc == {"dir": "/d", "supervisor_pid": 5, "meta": "127.0.0.1:9", "app_id": 1,
                   "partition_count": 1, "healthy": True,
                   "nodes": [{"name": n.name, "addr": n.addr, "pid": n.pid, "state": n.state}
                             for n in NODES],
                   "partitions": [{"pidx": 0, "ballot": 3, "primary": A, "secondaries": [B, C],
                                   "last_committed_decree": 7}]}
    blind = health.status_document(dir="/d", supervisor_pid=5, meta="127.0.0.1:9",
                                   nodes=with_state("meta1", "dead"), cfg=None, healthy=False)
    assert (blind["app_id"], blind["partition_count"], blind["partitions"]) == (None, None, [])
    assert set(blind) == set(doc) and blind["nodes"][0]["state"] == "dead"
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
    """Just enough of an Onebox for control._handle."""

    def __init__(self, fail: BaseException | None = None):
        self.fail, self.calls, self.stopped = fail, [], False
        self.nodes = {"replica1": NodeInfo("replica1", A, 11, "dead")}

    def status(self) -> dict:
        return {"healthy": True}

    def kill(self, name: str) -> None:
        self.calls.append(("kill", name))
        if self.fail:
            raise self.fail

    def stop(self) -> None:
        self.stopped = True


def exchange(box: StubBox, payload: bytes, *, close_after: bool = False) -> tuple[bool, dict | None]:
    """Send ``payload`` to control._handle; (stop requested?, decoded reply or None)."""
    server, client = socket.socketpair()
    with server, client:
        client.sendall(payload)
        if close_after:
            client.shutdown(socket.SHUT_WR)
        stopping = control._handle(box, server)
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
    monkeypatch.setattr(control, "MAX_REQUEST_BYTES", 64)
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
    monkeypatch.setattr(control, "REQUEST_READ_TIMEOUT_S", 0.1)
    server, client = socket.socketpair()
    with server, client:
        assert control._handle(StubBox(), server) is False


def test_commands_and_stop():
    box = StubBox()
    assert exchange(box, b'{"cmd": "status"}\n') == (False, {"ok": True, "result": {"healthy": True}})
    _stopping, reply = exchange(box, b'{"cmd": "kill", "node": "replica1"}\n')
    assert reply["result"]["state"] == "dead" and box.calls == [("kill", "replica1")]
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
