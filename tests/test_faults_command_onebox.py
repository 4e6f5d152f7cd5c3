"""The fault controller with the command injector against a real onebox: the templates are
``pegbench onebox kill|restart|pause|resume {node} --dir D`` against a onebox started with
``pegbench onebox start``, the health gate reads its status, the meta observer tails its
config log. Checks instants, affected partitions, server failover times and the heals."""

from __future__ import annotations

import re
import shlex
import time

import gevent
import pytest
from support.background import PEGBENCH
from support.onebox import TIMING_SLACK_S

from loadgen.config.profile import build_profile
from loadgen.faults.controller import FaultController
from loadgen.onebox import control_client
from loadgen.onebox.cluster import OneboxCluster
from loadgen.onebox.control_client import OneboxControl
from loadgen.onebox.spec import FAST_FD
from loadgen.report.run_dir import read_fault_log

pytestmark = pytest.mark.onebox

KILL_AT_S, RESTART_AFTER_S = 0.5, 1.5
PAUSE_AT_S, PAUSE_S = 4.0, 2 * FAST_FD.grace_s  # past the grace period: the meta fails over




def _profile(d, **injector) -> object:
    cli = " ".join(shlex.quote(a) for a in PEGBENCH)
    templates = {verb: f"{cli} onebox {verb} {{node}} --dir {shlex.quote(str(d))}"
                 for verb in ("kill", "pause", "resume", "restart")}
    return build_profile({
        "name": "command-onebox",
        "workload": {"duration_s": 30},
        "faults": {"events": [
            {"at_s": KILL_AT_S, "kind": "kill", "target": "primary-of:0",
             "restart_after_s": RESTART_AFTER_S},
            {"at_s": PAUSE_AT_S, "kind": "pause", "target": "primary-of:1",
             "duration_s": PAUSE_S}],
            "health_gate": {"enabled": True, "limit_s": 20}},
        "injector": {"kind": "command", "command": {**templates, "timeout_s": 30, **injector}},
    }, "command-onebox.toml")


def _signalled_at(output: str) -> float:
    """The supervisor's instant of the signal, as ``pegbench onebox kill`` prints it."""
    return float(re.search(r"signalled at (\d+\.\d+)", output).group(1))


def test_command_injector_against_a_cli_onebox(background, tmp_path):
    d = background.start_with_cli()
    control = OneboxControl(d)
    controller = FaultController.from_profile(_profile(d), OneboxCluster(control),
                                              out_dir=tmp_path)
    try:
        controller.start()
        assert controller.join(60)
    finally:
        records = controller.stop()
    background.status(d)  # remember the restarted node's pid for cleanup
    kill, pause = records

    for record in records:
        assert record.injected, record.event.skip_reason
        assert record.injector == "command" and all(a.ok for a in record.actions)
        assert [a.instant for a in record.actions] == ["command-end", "command-end"]
        inject = record.actions[0]
        # the real signal lies within the command's span; the event takes its end
        assert inject.t_sent <= _signalled_at(inject.detail["output"]) <= inject.t
        assert record.event.t_inject == inject.t

    log = _config_log(d)
    for record in records:
        before = {}
        for line in log:  # the config in force at t_inject, from the meta's own log
            if line["t_mono"] <= record.event.t_inject:
                before[line["pidx"]] = line["primary"]
        assert record.event.affected_partitions == tuple(
            sorted(p for p, addr in before.items() if addr == record.addr))
        assert record.event.affected_partitions  # primary-of:P: at least P
        for failover in record.event.server_failover_s.values():
            # the meta replaces a silent primary after the grace period (not before: the
            # lower bound fails if the failover were dated from the wrong fault or instant)
            assert 0.5 * FAST_FD.grace_s < failover < FAST_FD.grace_s + TIMING_SLACK_S
    assert kill.event.node != "" and 0 in kill.event.affected_partitions
    assert kill.event.t_heal - kill.event.t_inject >= RESTART_AFTER_S
    assert pause.event.t_heal - pause.event.t_inject >= PAUSE_S and 1 in pause.event.affected_partitions
    assert pause.event.t_inject - controller.t0 >= PAUSE_AT_S

    assert [line["id"] for line in read_fault_log(tmp_path / "faults.jsonl")] == [1, 2]
    status = control.status()
    assert all(n["state"] == "running" for n in status["nodes"])


def test_a_command_that_hangs_is_cut_off_and_the_run_goes_on(background, tmp_path):
    d = background.start_with_cli("hang")
    timeout_s = 5.0
    profile = _profile(d, kill="sleep 60", timeout_s=timeout_s)  # a kill that never returns
    controller = FaultController.from_profile(profile, OneboxCluster(OneboxControl(d)),
                                              out_dir=tmp_path)
    started = time.monotonic()
    try:
        controller.start()
        gevent.sleep(KILL_AT_S + 0.5)
    finally:
        records = controller.stop(interrupted=True)  # waits for the kill's timeout
    took = time.monotonic() - started
    background.status(d)
    kill, pause = records
    # cut off at its timeout, then healed (it may have half-worked) by a restart command
    assert KILL_AT_S + timeout_s <= took < KILL_AT_S + 2 * timeout_s + TIMING_SLACK_S
    assert not kill.injected and "timed out after 5 s" in kill.event.skip_reason
    assert [(a.action, a.ok) for a in kill.actions] == [("kill", False), ("restart", True)]
    assert not pause.injected and "ended before it came due" in pause.event.skip_reason
    status = control_client.request(d, "status")
    assert all(n["state"] == "running" for n in status["nodes"])


def _config_log(d) -> list[dict]:
    import json

    path = d / "meta1" / "config-changes.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_restart_fault_through_the_control_socket(background, tmp_path):
    """The onebox injector driving a background supervisor (fake nodes): a restart fault is
    SIGTERM (``terminate``) then, ``restart_after_s`` later, a start; instants from the
    supervisor; without a config log, the affected partitions come from the meta's answer."""
    spec = background.start()  # fake nodes: replica2 leads partitions 1, 4, 7 of 8
    before = background.status(spec.dir)["nodes"][2]
    profile = build_profile({
        "name": "restart", "workload": {"duration_s": 20},
        "faults": {"events": [{"at_s": 0.2, "kind": "restart", "target": "replica2",
                               "restart_after_s": 0.5}]},
        "injector": {"kind": "onebox"}}, "restart.toml")
    controller = FaultController.from_profile(profile, OneboxCluster(OneboxControl(spec.dir)))
    try:
        controller.start()
        assert controller.join(30)
    finally:
        (record,) = controller.stop()
    after = background.status(spec.dir)["nodes"][2]
    assert record.injected and record.event.node == "replica2" and record.injector == "onebox"
    assert [(a.action, a.instant) for a in record.actions] == [("terminate", "signal"),
                                                              ("restart", "ready")]
    terminate, restart = record.actions
    assert terminate.t_sent <= terminate.t <= terminate.t_returned  # the supervisor's instant
    assert record.event.t_heal == restart.t and record.event.t_heal - record.event.t_inject >= 0.5
    assert record.event.affected_partitions == (1, 4, 7)
    assert after["state"] == "running" and after["pid"] != before["pid"]
