"""The onebox and command injectors: their instants, their failures, and a hub that keeps
running while they block. The command injector runs real shell commands (no onebox here;
``test_faults_command_onebox.py`` points it at one)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gevent
import pytest
from support.processes import alive, wait_until

from loadgen.config.schema import CommandTemplates
from loadgen.errors import ClusterError
from loadgen.faults.command_injector import CommandInjector
from loadgen.faults.injector import Node
from loadgen.onebox.cluster import OneboxInjector
from loadgen.onebox.fault_applied import FaultApplied

NODE = Node("replica2", "127.0.0.1", 34802)
#: How long a blocking call takes in these tests; the hub must tick meanwhile.
BLOCK_S = 0.3


class Ticker:
    """A greenlet counting 10 ms ticks: it stalls when something blocks the hub."""

    def __init__(self) -> None:
        self.ticks = 0
        self._g = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(0.01)
            self.ticks += 1

    def stop(self) -> int:
        self._g.kill()
        return self.ticks


class SlowDriver:
    """A onebox driver whose calls block the calling thread, as the supervisor's do."""

    def __init__(self) -> None:
        self.t_signal = self.t_ready = 0.0

    def _applied(self, node: str, action: str, state: str) -> FaultApplied:
        time.sleep(BLOCK_S / 2)
        self.t_signal = time.monotonic()
        time.sleep(BLOCK_S / 2)
        self.t_ready = time.monotonic() if action == "restart" else None
        return FaultApplied(node, action, self.t_signal, self.t_ready, 42, state)

    def kill(self, node: str) -> FaultApplied:
        return self._applied(node, "kill", "dead")

    def pause(self, node: str) -> FaultApplied:
        return self._applied(node, "pause", "paused")

    def resume(self, node: str) -> FaultApplied:
        raise ClusterError(f"cannot resume {node}: it is dead (restart it instead)")

    def terminate(self, node: str) -> FaultApplied:
        return FaultApplied(node, "terminate", None, None, None, "dead")  # already dead

    def restart(self, node: str) -> FaultApplied:
        return self._applied(node, "restart", "running")

    def status(self) -> dict:
        return {}


@pytest.mark.unit
def test_onebox_injector_takes_the_supervisors_instants_without_blocking_the_hub():
    driver, ticker = SlowDriver(), Ticker()
    injector = OneboxInjector(driver)
    kill = injector.apply("kill", NODE)
    restart = injector.apply("restart", NODE)
    ticks = ticker.stop()
    assert ticks >= 2 * BLOCK_S / 0.01 / 3  # the hub ran through both blocking calls
    assert kill.ok and kill.instant == "signal" and kill.node == "replica2"
    # the fault's instant is the signal's, not the request's nor the reply's
    assert kill.t_sent < kill.t < kill.t_returned
    assert restart.ok and restart.instant == "ready" and restart.t == driver.t_ready
    assert restart.detail["t_signal"] < restart.t
    assert kill.detail["pid"] == 42 and kill.detail["state"] == "dead"


@pytest.mark.unit
def test_onebox_injector_failures_are_records():
    injector = OneboxInjector(SlowDriver())
    resume = injector.apply("resume", NODE)
    assert not resume.ok and resume.t is None and "ClusterError: cannot resume" in resume.error
    assert not resume.uncertain  # the supervisor refused before acting
    terminate = injector.apply("terminate", NODE)
    assert not terminate.ok and "already dead" in terminate.error


def _templates(tmp_path, **kw) -> CommandTemplates:
    return CommandTemplates(**{"timeout_s": 5.0, **kw})


def test_command_templates_get_node_host_and_port(tmp_path):
    out = tmp_path / "out.txt"
    injector = CommandInjector(_templates(tmp_path, kill=f"echo {{node}} {{host}} {{port}} > {out}"))
    record = injector.apply("kill", NODE)
    assert record.ok and out.read_text() == "replica2 127.0.0.1 34802\n"
    assert record.instant == "command-end" and record.t == record.t_returned >= record.t_sent
    assert record.detail["exit_code"] == 0
    assert record.detail["command"] == f"echo replica2 127.0.0.1 34802 > {out}"


def test_a_failing_command_is_recorded_with_its_output(tmp_path):
    injector = CommandInjector(_templates(tmp_path, pause="echo no such host >&2; exit 3"))
    record = injector.apply("pause", NODE)
    assert not record.ok and record.uncertain and record.t is None
    assert record.error == "exit status 3: no such host"
    assert record.detail["output"] == "no such host\n"


def test_actions_without_a_template_fail_cleanly(tmp_path):
    injector = CommandInjector(_templates(tmp_path, kill="true"))
    for action in ("resume", "terminate"):
        record = injector.apply(action, NODE)
        assert not record.ok and not record.uncertain
        assert f"no [injector.command] template for {action!r}" in record.error


def test_a_command_past_its_timeout_is_killed_with_its_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    # a background child in the command's group, and a foreground sleep that outlasts it all
    injector = CommandInjector(CommandTemplates(
        restart=f"sleep 60 & echo $! > {pid_file}; sleep 60", timeout_s=BLOCK_S))
    ticker = Ticker()
    started = time.monotonic()
    record = injector.apply("restart", NODE)
    took = time.monotonic() - started
    ticks = ticker.stop()
    assert not record.ok and record.uncertain and record.detail["timed_out"]
    assert "timed out after 0.3 s" in record.error
    assert BLOCK_S <= took < 10 * BLOCK_S + 2  # neither early nor hanging
    assert ticks >= BLOCK_S / 0.01 / 3  # the hub ran while the command did
    child = int(pid_file.read_text())
    assert wait_until(lambda: not alive(child), 5), "the command's group outlived its timeout"


_PATCHED_RUN = textwrap.dedent("""
    import json, sys, time
    from gevent import monkey
    monkey.patch_all()  # as Locust does
    import gevent
    sys.path.insert(0, sys.argv[1])
    from support.faults import FakeCluster, planned
    from loadgen.faults.command_injector import CommandInjector
    from loadgen.faults.controller import FaultController
    from loadgen.config.schema import CommandTemplates, HealthGateConfig

    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(1000)])
    injector = CommandInjector(CommandTemplates(pause="sleep 0.3", resume="true", timeout_s=5))
    c = FaultController([planned(1, 0.0, "pause", "replica1", duration_s=0.1)],
                        injector=injector, cluster=FakeCluster(),
                        health_gate=HealthGateConfig(limit_s=1))
    c.start()
    c.join(10)
    (record,) = c.stop()
    ticker.kill()
    print(json.dumps({"injected": record.injected, "ticks": len(ticks),
                      "actions": [a.action for a in record.actions]}))
""")


def test_the_controller_in_a_monkey_patched_process():
    out = subprocess.run([sys.executable, "-c", _PATCHED_RUN, str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["injected"] and result["actions"] == ["pause", "resume"]
    assert result["ticks"] >= 0.3 / 0.01 / 3  # the command did not block the hub
