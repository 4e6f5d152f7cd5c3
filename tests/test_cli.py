"""The ``pegbench`` CLI end to end, and the onebox control socket behind ``pegbench onebox``.

Commands run as real subprocesses (so only the in-process tests are ``unit``). Background
supervisors run the fake node of ``support/fake_node.py`` (fast, independent of the servers),
except ``test_real_*``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from support.ports import free_port, free_port_run, free_ports
from support.processes import alive, kill_groups, wait_until

from loadgen.cli import main
from loadgen.errors import ClusterError
from loadgen.onebox import control_client
from loadgen.onebox.ownership import owner_pid
from loadgen.onebox.process import live_pid, proc_state
from loadgen.onebox.spec import FAST_FD

PEGBENCH = [sys.executable, "-m", "loadgen.cli"]


def pegbench(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PEGBENCH, *args], capture_output=True, text=True, timeout=timeout_s)


# ----------------------------------------------------------------------- plain commands

def test_help_lists_commands():
    out = pegbench("--help")
    assert out.returncode == 0
    for cmd in ("version", "onebox", "bench", "clients"):
        assert cmd in out.stdout
    onebox = pegbench("onebox", "--help")
    assert onebox.returncode == 0
    for cmd in ("start", "status", "stop", "kill", "pause", "resume", "restart"):
        assert cmd in onebox.stdout
    start = pegbench("onebox", "start", "--help").stdout
    for flag in ("--dir", "--replica-nodes", "--partitions", "--meta-port", "--replica-port",
                 "--fd-beacon", "--fd-check", "--fd-lease", "--fd-grace", "--drop-expired"):
        assert flag in start


def test_version():
    out = pegbench("version")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "pegbench 0.1.0" and lines[1].startswith("python 3.")
    assert any(line.startswith("gevent ") for line in lines)
    assert any(line.startswith("locust ") for line in lines)


@pytest.mark.parametrize("argv, message", [
    (["nosuch"], "invalid choice"),
    (["onebox", "kill"], "required"),
    (["onebox", "status", "--bogus"], "unrecognized arguments: --bogus"),
    (["onebox", "start", "--partitions", "3", "--dir", "unused"], "--partitions: a power of two"),
    (["onebox", "start", "--fd-lease", "5", "--fd-grace", "4", "--dir", "unused"],
     "--fd-grace: greater than --fd-lease"),
    (["onebox", "start", "--fd-check", "30", "--dir", "unused"], "--fd-check: smaller than"),
    # nan passes "<= 0" checks, and a sleep of nan or inf never ends
    (["onebox", "start", "--fd-beacon", "nan", "--dir", "unused"],
     "--fd-beacon: a positive number of seconds, got nan"),
    (["onebox", "start", "--fd-grace", "inf", "--dir", "unused"],
     "--fd-grace: a positive number of seconds, got inf"),
    (["onebox", "start", "--meta-port", "70000", "--dir", "unused"], "--meta-port"),
    (["onebox", "start", "--replica-nodes", "0", "--dir", "unused"], "--replica-nodes"),
    (["onebox", "start", "--meta-port", "40001", "--replica-port", "40000", "--dir", "unused"],
     "--replica-port: ports distinct"),
])
def test_usage_errors_exit_2(argv, message, tmp_path):
    out = subprocess.run([*PEGBENCH, *argv], capture_output=True, text=True, cwd=tmp_path,
                         timeout=30)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stdout == ""
    assert not (tmp_path / "unused").exists()


@pytest.mark.unit
def test_main_returns_exit_codes_in_process(capsys):
    assert main(["--help"]) == 0
    assert main(["nosuch"]) == 2
    assert main(["onebox", "start", "--partitions", "6", "--dir", "unused"]) == 2
    assert "--partitions: a power of two" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize("flags, drop_expired", [([], False), (["--drop-expired"], True)])
def test_drop_expired_flag_reaches_the_spec(flags, drop_expired, monkeypatch, tmp_path, capsys):
    started = []

    def fake_start(spec, **_kw):  # in process: the spec the supervisor would be given
        started.append(spec)
        return spec.meta_addr

    monkeypatch.setattr(control_client, "start_background", fake_start)
    assert main(["onebox", "start", "--dir", str(tmp_path / "box"), *flags]) == 0
    assert [spec.drop_expired for spec in started] == [drop_expired]
    assert capsys.readouterr().out == f"{started[0].meta_addr}\n"


@pytest.mark.unit
@pytest.mark.unit
def test_list_prints_every_registered_policy_fault_kind_and_injector(capsys):
    from loadgen import fault_kinds as kinds
    from loadgen.faults import injectors
    from loadgen.pegasus import policies

    for what, names in (("policies", [i.name for i in policies.available()]),
                        ("faults", list(kinds.names())), ("injectors", list(injectors.names()))):
        assert main(["list", what]) == 0
        out = capsys.readouterr().out
        listed = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
        assert listed == sorted(names) and len(names) >= 3
    main(["list", "policies"])
    assert "source: go-client/" in capsys.readouterr().out  # each upstream model names its source


def test_unexpected_errors_exit_3_not_1(monkeypatch, capsys):
    # exit 1 means "verdict failed": a bug must never look like one
    from loadgen import cli
    monkeypatch.setattr(cli.platform, "python_version", lambda: 1 / 0)
    assert main(["version"]) == 3
    assert "internal error" in capsys.readouterr().err


def test_dir_not_writable_is_a_usage_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    meta, replica = free_ports(2)
    out = pegbench("onebox", "start", "--dir", str(blocker / "box"), "--meta-port", str(meta),
                   "--replica-port", str(replica))
    assert out.returncode == 2 and out.stdout == ""
    assert f"--dir: a writable directory; {blocker / 'box'}" in out.stderr


def test_bench_delegates_all_arguments():
    for kind in ("client", "onebox"):
        out = pegbench("bench", kind, "--help")
        # the delegate's own --help (ours has add_help=False there)
        assert out.returncode == 0, out.stderr
        assert "usage:" in out.stdout, out.stdout


@pytest.mark.onebox
def test_commands_without_supervisor(tmp_path):
    d = str(tmp_path / "none")
    out = pegbench("onebox", "status", "--dir", d)
    assert out.returncode == 3 and "no onebox supervisor is running" in out.stderr
    out = pegbench("onebox", "kill", "replica1", "--dir", d)
    assert out.returncode == 3
    out = pegbench("onebox", "stop", "--dir", d)
    assert out.returncode == 0 and "no onebox supervisor was running" in out.stderr


# ----------------------------------------------------------------------- background supervisor





@pytest.mark.onebox
def test_node_commands_through_the_socket(background):
    spec = background.start()
    d = spec.dir
    status = json.loads(pegbench("onebox", "status", "--dir", d).stdout)
    assert status["healthy"] and status["meta"] == spec.meta_addr
    assert status["supervisor_pid"] != os.getpid()
    pid1 = status["nodes"][1]["pid"]

    assert pegbench("onebox", "pause", "replica1", "--dir", d).returncode == 0
    assert proc_state(pid1) == "T"
    assert pegbench("onebox", "resume", "replica1", "--dir", d).returncode == 0
    assert proc_state(pid1) not in (None, "T")
    out = pegbench("onebox", "kill", "replica1", "--dir", d)
    assert out.returncode == 0 and "now dead" in out.stderr and not alive(pid1)
    assert re.search(r"signalled at \d+\.\d{6} \(monotonic s\)", out.stderr), out.stderr
    assert not background.status(d)["healthy"]
    for _ in range(2):
        out = pegbench("onebox", "restart", "replica1", "--dir", d)
        assert out.returncode == 0 and "now running" in out.stderr
        assert re.search(r"ready at \d+\.\d{6}", out.stderr), out.stderr
    status = background.status(d)
    new_pid = status["nodes"][1]["pid"]
    assert new_pid != pid1 and alive(new_pid) and status["healthy"]
    # spawned by the supervisor, not by the short-lived CLI
    assert int(Path(f"/proc/{new_pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) \
        == status["supervisor_pid"]

    out = pegbench("onebox", "kill", "replica9", "--dir", d)
    assert out.returncode == 2 and "replica9" in out.stderr
    os.kill(status["nodes"][2]["pid"], signal.SIGKILL)  # an unexpected death
    assert wait_until(lambda: background.status(d)["nodes"][2]["state"] == "dead")
    out = pegbench("onebox", "pause", "replica3", "--dir", d)
    assert out.returncode == 3 and "replica2 crashed" in out.stderr

    out = pegbench("onebox", "stop", "--dir", d)
    assert out.returncode == 0 and "stopped" in out.stderr
    assert not any(alive(p) for p in background.pids)
    assert not (Path(d) / "control.sock").exists()


@pytest.mark.onebox
def test_second_start_on_same_dir_is_refused(background):
    spec = background.start()
    meta, replica = free_ports(2)
    out = pegbench("onebox", "start", "--dir", spec.dir, "--meta-port", str(meta),
                   "--replica-port", str(replica))
    assert out.returncode == 3 and out.stdout == ""
    assert "owned by a live supervisor" in out.stderr
    assert str(background.status(spec.dir)["supervisor_pid"]) in out.stderr
    assert background.status(spec.dir)["healthy"]


@pytest.mark.onebox
def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        d = tmp_path / "box"
        out = pegbench("onebox", "start", "--dir", str(d), "--meta-port", str(port),
                       "--replica-port", str(free_port()), "--start-timeout", "10")
    assert out.returncode == 3 and out.stdout == ""
    assert f"port 127.0.0.1:{port} (for meta1) is already in use" in out.stderr
    assert not list(d.glob("*/node.pid")) and owner_pid(d) is None


@pytest.mark.onebox
def test_sigkill_of_background_supervisor_leaves_no_node(background):
    spec = background.start()
    status = background.status(spec.dir)
    control_client.request(spec.dir, "pause", "replica2")  # a stopped node must die too
    sup, nodes = status["supervisor_pid"], [n["pid"] for n in status["nodes"]]
    os.kill(sup, signal.SIGKILL)
    assert wait_until(lambda: not alive(sup) and not any(alive(p) for p in nodes), 5), \
        [p for p in nodes if alive(p)]

    # the stale pid file and socket are recognised as such
    assert (Path(spec.dir) / "supervisor.pid").exists() and owner_pid(spec.dir) is None
    out = pegbench("onebox", "status", "--dir", spec.dir)
    assert out.returncode == 3 and "no onebox supervisor is running" in out.stderr
    background.start()  # the same dir starts again


@pytest.mark.onebox
def test_sigterm_of_background_supervisor_stops_nodes(background):
    spec = background.start()
    status = background.status(spec.dir)
    os.kill(status["supervisor_pid"], signal.SIGTERM)
    pids = [status["supervisor_pid"], *(n["pid"] for n in status["nodes"])]
    assert wait_until(lambda: not any(alive(p) for p in pids), 10)
    assert not (Path(spec.dir) / "control.sock").exists()
    assert not (Path(spec.dir) / "supervisor.pid").exists()


@pytest.mark.onebox
def test_real_onebox_via_cli(tmp_path):
    d = str(tmp_path / "box")
    base = free_port_run(4)  # replicas on base..base+2, the meta on base+3: all distinct
    meta = base + 3
    pids: list[int] = []
    try:
        out = pegbench("onebox", "start", "--dir", d, "--meta-port", str(meta),
                       "--replica-port", str(base), "--partitions", "4",
                       "--fd-beacon", str(FAST_FD.beacon_s), "--fd-check", str(FAST_FD.check_s),
                       "--fd-lease", str(FAST_FD.lease_s), "--fd-grace", str(FAST_FD.grace_s),
                       timeout_s=90)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"127.0.0.1:{meta}\n"
        status = json.loads(pegbench("onebox", "status", "--dir", d).stdout)
        pids = [status["supervisor_pid"], *(n["pid"] for n in status["nodes"])]
        assert status["healthy"] and status["partition_count"] == 4
        assert all(p["primary"] and len(p["secondaries"]) == 2 for p in status["partitions"])
        assert pegbench("onebox", "kill", "replica1", "--dir", d).returncode == 0
        assert pegbench("onebox", "restart", "replica1", "--dir", d).returncode == 0
        assert wait_until(lambda: control_client.request(d, "status")["healthy"], 20)
        assert pegbench("onebox", "stop", "--dir", d).returncode == 0
        assert not any(alive(p) for p in pids)
    finally:
        control_client.stop(d)
        kill_groups(p for p in pids if alive(p))


@pytest.mark.onebox
def test_ctrl_c_during_start_leaves_nothing(tmp_path):
    d = tmp_path / "box"
    # Pegasus's own FD timings: becoming healthy takes a few beacons, time enough to interrupt
    base = free_port_run(4)  # replicas on base..base+2, the meta on base+3: all distinct
    cli = subprocess.Popen([*PEGBENCH, "onebox", "start", "--dir", str(d), "--meta-port",
                            str(base + 3), "--replica-port", str(base)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert wait_until(lambda: owner_pid(d) not in (None, -1), 20)
        sup = owner_pid(d)
        assert wait_until(lambda: (d / "meta1" / "node.pid").exists(), 20)
        pids = [sup, *(int(p.read_text().split()[0]) for p in d.glob("*/node.pid"))]
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 130 and out == "" and "interrupted" in err
        assert wait_until(lambda: not any(alive(p) for p in pids), 10)
        assert owner_pid(d) is None
    finally:
        cli.kill()
        control_client.stop(d)
        kill_groups(p for p in pids if alive(p))


# ----------------------------------------------------------------------- robustness

@pytest.mark.onebox
def test_status_exit_codes_with_paused_node_and_dead_meta(background):
    spec = background.start()
    d = spec.dir
    assert pegbench("onebox", "pause", "replica2", "--dir", d).returncode == 0
    out = pegbench("onebox", "status", "--dir", d)
    status = json.loads(out.stdout)
    assert out.returncode == 0  # the meta answered: a full, if unhealthy, status
    assert status["nodes"][2]["state"] == "paused" and not status["healthy"]
    assert len(status["partitions"]) == 8
    assert pegbench("onebox", "kill", "meta1", "--dir", d).returncode == 0
    out = pegbench("onebox", "status", "--dir", d)
    status = json.loads(out.stdout)  # what is known: the nodes
    assert out.returncode == 3 and f"meta {spec.meta_addr} (meta1, dead)" in out.stderr
    assert [n["state"] for n in status["nodes"]] == ["dead", "running", "paused", "running"]
    assert status["partitions"] == [] and status["partition_count"] is None


@pytest.mark.onebox
def test_concurrent_commands_are_all_answered(background):
    spec = background.start()
    results: dict[str, object] = {}

    def run(key: str, cmd: str, node: str | None = None) -> None:
        try:
            results[key] = control_client.request(spec.dir, cmd, node)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            results[key] = exc

    jobs = [("kill", "kill", "replica1"), ("restart", "restart", "replica1"),
            ("pause", "pause", "replica2"), ("resume", "resume", "replica2"),
            *((f"status{i}", "status", None) for i in range(6))]
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # any order is fine; every command got an answer and none was an internal failure
    assert set(results) == {job[0] for job in jobs}
    for key, value in results.items():
        # a pause or resume may only find its node dead; anything else is a failure
        assert not isinstance(value, Exception) or (
            isinstance(value, ClusterError) and re.fullmatch(
                r"cannot (pause|resume) replica\d: it is dead \(restart it instead\)",
                str(value))), (key, value)
    control_client.request(spec.dir, "restart", "replica1")
    control_client.request(spec.dir, "resume", "replica2")
    assert wait_until(lambda: background.status(spec.dir)["healthy"], 10)


@pytest.mark.onebox
def test_stop_of_a_paused_supervisor(background):
    spec = background.start()
    status = background.status(spec.dir)
    sup = status["supervisor_pid"]
    os.kill(sup, signal.SIGSTOP)
    t0 = time.monotonic()
    out = pegbench("onebox", "stop", "--dir", spec.dir)
    assert out.returncode == 0 and "stopped" in out.stderr, out.stderr
    assert time.monotonic() - t0 < control_client.KILL_GRACE_S  # no request timeout waited out
    assert not any(alive(p) for p in background.pids)
    assert owner_pid(spec.dir) is None


HUNG_SUPERVISOR = textwrap.dedent('''
    import fcntl, json, os, signal, sys, time
    from pathlib import Path
    from loadgen.onebox.process import spawn, write_pid_file
    d = Path(sys.argv[1])
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # hung: never acts on a polite stop
    fd = os.open(d / "supervisor.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    write_pid_file(d / "supervisor.pid", os.getpid())
    (d / "replica1").mkdir()
    node = spawn(["sleep", "60"], d / "replica1" / "node.log")
    write_pid_file(d / "replica1" / "node.pid", node.pid)
    print(node.pid, flush=True)
    time.sleep(60)
''')


@pytest.mark.onebox
def test_stop_escalates_to_sigkill_for_a_hung_supervisor(tmp_path, monkeypatch):
    d = tmp_path / "box"
    d.mkdir()
    sup = subprocess.Popen([sys.executable, "-c", HUNG_SUPERVISOR, str(d)],
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    node = 0
    try:
        node = int(sup.stdout.readline())
        # holding the dir but serving no socket: "still starting", not "not running"
        out = pegbench("onebox", "status", "--dir", str(d))
        assert out.returncode == 3 and f"(pid {sup.pid}) is not serving yet" in out.stderr
        monkeypatch.setattr(control_client, "KILL_GRACE_S", 1.0)
        t0 = time.monotonic()
        assert control_client.stop(d, timeout_s=5)
        assert time.monotonic() - t0 < 5
        assert sup.wait(5) == -signal.SIGKILL
        assert wait_until(lambda: not alive(node), 5)
        assert owner_pid(d) is None
    finally:
        sup.kill()
        kill_groups([node])


@pytest.mark.onebox
def test_refused_supervisor_leaves_the_owner_intact(background):
    spec = background.start()
    before = background.status(spec.dir)
    # a second supervisor started directly (racing past the CLI's owner check)
    out = subprocess.run([sys.executable, "-m", control_client.SERVER_MODULE, "--spec-json",
                          spec.to_json(), "--start-timeout", "10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "owned by a live supervisor" in out.stderr
    assert (Path(spec.dir) / "control.sock").exists()
    after = background.status(spec.dir)  # still reachable
    assert after["supervisor_pid"] == before["supervisor_pid"] and after["healthy"]
    for n in after["nodes"]:
        assert live_pid(Path(spec.dir) / n["name"] / "node.pid") == n["pid"]
