"""Onebox supervisor: lifecycle, fault injection, health, and process hygiene.

Most tests run a tiny fake node (``support/fake_node.py``: listens, prints READY; the fake
meta serves a fixed healthy config) so hygiene is tested independently of the real servers;
``test_real_nodes_*`` run ``loadgen.onebox.node`` itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from support import fake_node as fake_node_module
from support.ports import free_ports
from support.processes import alive, kill_groups, wait_until

from loadgen.errors import ClusterError, ConfigError, NodeCrashed
from loadgen.onebox import node_process
from loadgen.onebox.process import live_pid, proc_state, process_starttime, write_pid_file
from loadgen.onebox.spec import FAST_FD
from loadgen.onebox.supervisor import Onebox

pytestmark = pytest.mark.onebox


@pytest.fixture
def fake_node() -> list[str]:
    return list(fake_node_module.COMMAND)


class Boxes:
    """Makes oneboxes on free ports and guarantees their cleanup."""

    def __init__(self, tmp_path: Path, node_command: list[str] | None):
        self.tmp_path, self.node_command = tmp_path, node_command
        self.made: list[Onebox] = []

    def __call__(self, name: str = "box", **kw) -> Onebox:
        kw.setdefault("replica_nodes", 3)
        ports = free_ports(1 + kw["replica_nodes"])  # distinct, unlike repeated free_port()
        kw.setdefault("meta_port", ports[0])
        kw.setdefault("replica_ports", ports[1:])
        kw.setdefault("fd", FAST_FD)
        kw.setdefault("start_timeout_s", 30)
        kw.setdefault("node_command", self.node_command)
        box = Onebox(self.tmp_path / name, **kw)
        self.made.append(box)
        return box

    def cleanup(self) -> None:
        pids = [i.pid for box in self.made for i in box.nodes.values()]
        for box in self.made:
            box.stop()
        kill_groups(p for p in pids if p and alive(p))


@pytest.fixture
def boxes(tmp_path, fake_node):
    made = Boxes(tmp_path, fake_node)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def real_boxes(tmp_path):
    made = Boxes(tmp_path, None)
    try:
        yield made
    finally:
        made.cleanup()


STATUS_KEYS = {"dir", "supervisor_pid", "meta", "app_id", "partition_count", "healthy", "nodes",
               "partitions"}


def check_status_shape(status: dict, box: Onebox) -> None:
    assert set(status) == STATUS_KEYS
    assert status["dir"] == str(box.dir) and status["supervisor_pid"] == os.getpid()
    assert status["meta"] == box.meta_addrs[0]
    assert [n["name"] for n in status["nodes"]] == list(box.spec.nodes)
    for n in status["nodes"]:
        assert set(n) == {"name", "addr", "pid", "state", "dropped_expired"}
        assert n["state"] in ("running", "paused", "dead")
        # counted by replicas only, and only one that answers can tell
        assert n["dropped_expired"] is None or (n["name"] != "meta1" and n["state"] == "running")
    for p in status["partitions"]:
        assert set(p) == {"pidx", "ballot", "primary", "secondaries", "last_committed_decree"}
    json.dumps(status)


def test_start_status_stop(boxes):
    box = boxes(partitions=4)
    (box.dir / "replica1").mkdir(parents=True)
    (box.dir / "replica1" / "old-data").write_text("from an earlier onebox")
    with box:
        assert not (box.dir / "replica1" / "old-data").exists()  # start wipes old node data
        status = box.status()
        check_status_shape(status, box)
        assert status["healthy"] and status["app_id"] == 1 and status["partition_count"] == 4
        assert [p["pidx"] for p in status["partitions"]] == [0, 1, 2, 3]
        pids = [n.pid for n in box.nodes.values()]
        assert all(alive(p) for p in pids)
        # each node leads its own process group and session
        assert all(os.getpgid(p) == p for p in pids)
        assert live_pid(box.dir / "supervisor.pid") == os.getpid()
        assert live_pid(box.dir / "replica1" / "node.pid") == box.nodes["replica1"].pid
        assert "fake replica2 up" in (box.dir / "replica2" / "node.log").read_text()
    assert not any(alive(p) for p in pids)
    assert not (box.dir / "supervisor.pid").exists()
    assert {i.state for i in box.nodes.values()} == {"dead"}


def test_fault_transitions(boxes):
    with boxes() as box:
        pid = box.nodes["replica2"].pid
        box.pause("replica2")
        assert box.nodes["replica2"].state == "paused" and proc_state(pid) == "T"
        assert not box.status()["healthy"]
        box.resume("replica2")
        assert box.nodes["replica2"].state == "running" and proc_state(pid) not in (None, "T")
        box.wait_healthy(5)

        box.kill("replica2")
        assert box.nodes["replica2"].state == "dead" and not alive(pid)
        box.kill("replica2")  # killing the dead is a no-op
        with pytest.raises(ClusterError, match="dead"):
            box.pause("replica2")
        with pytest.raises(ClusterError, match="replica2 dead"):
            box.wait_healthy(0.2)
        box.check()  # an injected kill is not a crash

        for _ in range(3):  # any number of times, from dead or from running
            box.restart("replica2")
            new = box.nodes["replica2"]
            assert new.state == "running" and new.pid != pid and alive(new.pid)
            pid = new.pid
            box.wait_healthy(5)

        box.pause("replica3")  # a paused node restarts too
        box.restart("replica3")
        assert box.nodes["replica3"].state == "running"
        box.wait_healthy(5)
        # restart keeps the data dir: the log has both lives
        assert (box.dir / "replica2" / "node.log").read_text().count("READY") == 4
        with pytest.raises(ConfigError, match="replica9"):
            box.kill("replica9")


def test_unexpected_death_is_reported_once_with_last_lines(boxes):
    with boxes() as box:
        os.kill(box.nodes["replica1"].pid, signal.SIGKILL)
        assert wait_until(lambda: box.nodes["replica1"].state == "dead")
        assert box.status()["nodes"][1]["state"] == "dead"  # status reports, never raises
        with pytest.raises(NodeCrashed) as info:
            box.wait_healthy(5)
        assert info.value.node == "replica1" and info.value.exit == -signal.SIGKILL
        assert any("fake replica1 up" in line for line in info.value.last_lines)
        box.check()  # reported once
        box.restart("replica1")
        box.wait_healthy(5)


def test_node_failing_before_ready(boxes, tmp_path):
    bad = tmp_path / "bad_node.py"
    bad.write_text("import sys\n"
                   "print('boom: cannot open data dir', file=sys.stderr)\nsys.exit(3)\n")
    box = boxes(node_command=[sys.executable, str(bad)])
    with pytest.raises(NodeCrashed) as info:
        box.start()
    assert info.value.node == "meta1" and info.value.exit == 3
    assert "boom: cannot open data dir" in info.value.last_lines
    assert not (box.dir / "supervisor.pid").exists()


def test_wait_healthy_timeout_names_the_problem(boxes, tmp_path):
    silent = tmp_path / "silent_node.py"  # READY but never answers the config query
    silent.write_text("import time\nprint('READY x', flush=True)\ntime.sleep(60)\n")
    box = boxes(node_command=[sys.executable, str(silent)], start_timeout_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="not healthy.*unreachable"):
        box.start()
    assert time.monotonic() - t0 < 8
    assert not any(i.state != "dead" for i in box.nodes.values())


def test_port_in_use_is_named_before_spawning(boxes):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        first, last = free_ports(2)  # neither can be the held port
        box = boxes(replica_ports=[first, port, last])
        with pytest.raises(ClusterError, match=f"port 127.0.0.1:{port} \\(for replica2\\)"):
            box.start()
    assert all(i.pid is None for i in box.nodes.values())


def test_second_supervisor_on_same_dir_is_refused(boxes):
    with boxes("shared") as first:
        second = boxes("shared")
        owned = f"owned by a live supervisor \\(pid {os.getpid()}\\)"
        with pytest.raises(ClusterError, match=owned):
            second.start()
        second.stop()  # what a failed supervisor does on its way out
        first.wait_healthy(2)  # the refused start touched nothing
        for name, info in first.nodes.items():
            assert live_pid(first.dir / name / "node.pid") == info.pid
    with boxes("shared"):  # free again once the first stopped
        pass


def test_stale_pid_files_are_detected(boxes, tmp_path):
    box = boxes()
    box.dir.mkdir(parents=True)
    # a pid that exists but is another process (wrong start time): not ours
    (box.dir / "supervisor.pid").write_text(f"{os.getppid()} 1\n")
    assert live_pid(box.dir / "supervisor.pid") is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (box.dir / "supervisor.pid").write_text(f"{dead.pid} 12345\n")
    assert live_pid(box.dir / "supervisor.pid") is None
    # a node a dead supervisor left behind, recorded in its pid file: killed on start
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (box.dir / "replica1").mkdir()
        write_pid_file(box.dir / "replica1" / "node.pid", orphan.pid)
        with box:
            assert live_pid(box.dir / "supervisor.pid") == os.getpid()
            assert process_starttime(os.getpid()) in (box.dir / "supervisor.pid").read_text()
            assert not alive(orphan.pid)
    finally:
        orphan.kill()
        orphan.wait()


SUPERVISOR_SCRIPT = textwrap.dedent('''
    import json, sys
    from loadgen.onebox.spec import FAST_FD
    from loadgen.onebox.supervisor import Onebox
    cfg = json.loads(sys.argv[1])
    box = Onebox(cfg["dir"], meta_port=cfg["meta"], replica_ports=cfg["replicas"], fd=FAST_FD,
                 node_command=cfg["cmd"])
    box.start()
    box.pause("replica1")
    print(json.dumps([i.pid for i in box.nodes.values()]), flush=True)
    sys.stdin.read()
''')


@pytest.fixture
def supervisor_script(tmp_path, fake_node):
    """A separate supervisor process (SUPERVISOR_SCRIPT) and its node pids; cleaned up."""
    meta, *replicas = free_ports(4)
    cfg = {"dir": str(tmp_path / "box"), "meta": meta, "replicas": replicas, "cmd": fake_node}
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR_SCRIPT, json.dumps(cfg)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids.extend(json.loads(sup.stdout.readline()))
        yield sup, pids
    finally:
        sup.kill()
        sup.wait()
        kill_groups(pids)


def test_sigkill_of_supervisor_leaves_no_node(supervisor_script):
    sup, pids = supervisor_script
    assert len(pids) == 4 and all(alive(p) for p in pids)
    assert proc_state(pids[1]) == "T"  # even a stopped node must die
    sup.kill()
    sup.wait(5)
    assert wait_until(lambda: not any(alive(p) for p in pids), 5), [p for p in pids if alive(p)]


def test_sigterm_of_supervisor_stops_nodes_gracefully(supervisor_script, tmp_path):
    sup, pids = supervisor_script
    sup.terminate()
    assert sup.wait(10) == 128 + signal.SIGTERM
    assert not any(alive(p) for p in pids)
    assert not (tmp_path / "box" / "supervisor.pid").exists()


def test_nodes_outlive_the_thread_that_restarted_them(boxes):
    # PR_SET_PDEATHSIG fires when the forking *thread* exits: a node restarted from a
    # short-lived thread must not die with that thread
    with boxes() as box:
        for name in ("replica1", "replica2"):
            worker = threading.Thread(target=box.restart, args=(name,))
            worker.start()
            worker.join()
        pids = [box.nodes[n].pid for n in ("replica1", "replica2")]
        time.sleep(0.3)
        assert all(alive(p) for p in pids)
        box.check()  # no crash to report either
        box.wait_healthy(5)


HANG_ON_SECOND_LIFE = textwrap.dedent('''
    import argparse, pathlib, runpy, sys, time
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec"); ap.add_argument("--name")
    args, _ = ap.parse_known_args()
    marker = pathlib.Path(args.spec).parent / (args.name + ".lived")
    if args.name == "replica1" and marker.exists():
        print("second life: stuck before READY", flush=True)
        time.sleep(60)
    marker.touch()
    sys.argv = [FAKE] + sys.argv[1:]
    runpy.run_path(FAKE, run_name="__main__")
''')


def test_restart_that_never_gets_ready_leaves_nothing_running(boxes, fake_node, tmp_path,
                                                               monkeypatch):
    script = tmp_path / "hang_second.py"
    script.write_text(f"FAKE = {fake_node[1]!r}\n" + HANG_ON_SECOND_LIFE)
    monkeypatch.setattr(node_process, "READY_TIMEOUT_S", 1.0)
    with boxes(node_command=[sys.executable, str(script)]) as box:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="(?s)replica1 did not print READY.*stuck before"):
            box.restart("replica1")
        assert time.monotonic() - t0 < 1.0 + node_process.STOP_TIMEOUT_S
        info = box.nodes["replica1"]
        assert info.state == "dead" and not alive(info.pid)
        box.check()  # the supervisor killed it: not a crash


def test_status_when_the_meta_is_paused_or_dead(boxes, monkeypatch):
    with boxes() as box:
        box.pause("meta1")

        def no_query(timeout_s):
            raise AssertionError("a stopped meta was queried (status would wait out a timeout)")

        monkeypatch.setattr(box, "_query", no_query)  # checked exactly, not with a clock
        status = box.status()
        check_status_shape(status, box)
        assert status["nodes"][0]["state"] == "paused" and not status["healthy"]
        assert (status["app_id"], status["partition_count"], status["partitions"]) == \
            (None, None, [])
        box.kill("meta1")
        status = box.status()
        assert status["nodes"][0]["state"] == "dead" and status["partitions"] == []
        with pytest.raises(ClusterError, match="meta1 dead"):
            box.wait_healthy(0.2)


def test_real_nodes_lifecycle(real_boxes):
    with real_boxes(partitions=8) as box:
        status = box.status()
        check_status_shape(status, box)
        assert status["healthy"] and status["partition_count"] == 8
        assert all(p["primary"] and len(p["secondaries"]) == 2 for p in status["partitions"])
        # real replicas answer the counter query (drop_expired is off: nothing dropped)
        assert [n["dropped_expired"] for n in status["nodes"]] == [None, 0, 0, 0]
        box.kill("replica1")
        before = time.monotonic()
        applied = box.restart("replica1")
        after = time.monotonic()
        # a dead node gets no signal; the new life reports when it started serving
        assert applied.t_signal is None and before <= applied.t_ready <= after
        box.wait_healthy(15)
        box.pause("replica2")
        box.resume("replica2")
        box.restart("replica3")
        box.wait_healthy(15)
        pids = [i.pid for i in box.nodes.values()]
    assert not any(alive(p) for p in pids)
