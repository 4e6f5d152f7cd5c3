"""The typed control client: each fault command says when it took effect, as instants taken in
the supervisor (another process) on the host-wide CLOCK_MONOTONIC, so they fall between this
process's own clock readings around the call."""

from __future__ import annotations

import time

import pytest
from support.processes import alive

from loadgen.errors import ConfigError
from loadgen.onebox.control_client import OneboxControl
from loadgen.onebox.fault_applied import FaultApplied
from loadgen.onebox.process import proc_state

pytestmark = pytest.mark.onebox




def timed(fault, node: str) -> tuple[float, FaultApplied, float]:
    """(monotonic before, the fault's record, monotonic after) around one command."""
    before = time.monotonic()
    applied = fault(node)
    return before, applied, time.monotonic()


def node_pid(ctl: OneboxControl, name: str) -> int:
    return next(n["pid"] for n in ctl.status()["nodes"] if n["name"] == name)


def test_fault_instants_fall_within_the_call_and_the_fault_has_taken_effect(background):
    spec = background.start()
    ctl = OneboxControl(spec.dir)
    pid = node_pid(ctl, "replica1")

    before, applied, after = timed(ctl.pause, "replica1")
    assert (applied.node, applied.action, applied.pid, applied.state) == \
        ("replica1", "pause", pid, "paused")
    assert before <= applied.t_signal <= after and applied.t_ready is None
    assert proc_state(pid) == "T"  # stopped by the time the call returned

    before, applied, after = timed(ctl.resume, "replica1")
    assert applied.action == "resume" and before <= applied.t_signal <= after
    assert proc_state(pid) not in (None, "T")

    before, applied, after = timed(ctl.kill, "replica1")
    assert (applied.action, applied.pid, applied.state) == ("kill", pid, "dead")
    assert before <= applied.t_signal <= after
    assert not alive(pid)  # reaped before the reply: gone at the returned instant's granularity
    assert ctl.kill("replica1").t_signal is None  # a dead node gets no signal

    before, applied, after = timed(ctl.restart, "replica1")
    assert applied.t_signal is None and before <= applied.t_ready <= after  # was dead already
    assert applied.state == "running" and applied.pid != pid and alive(applied.pid)

    old = node_pid(ctl, "replica2")
    before, applied, after = timed(ctl.restart, "replica2")
    # the old life is signalled, then the new one becomes READY, all within the call
    assert before <= applied.t_signal < applied.t_ready <= after
    assert not alive(old) and alive(applied.pid) and applied.pid != old
    background.status(spec.dir)  # remember the new pids for cleanup


def test_errors_come_back_typed(background):
    spec = background.start()
    with pytest.raises(ConfigError) as info:
        OneboxControl(spec.dir).pause("replica9")
    assert info.value.key == "node" and "replica9" in info.value.expected
