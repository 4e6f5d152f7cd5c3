"""pegbench's own events: listeners in order, a failing one logged while the others run."""

from __future__ import annotations

import logging

import pytest

from loadgen.events import EventHook, Events

pytestmark = pytest.mark.unit


def test_listeners_hear_each_fire_in_the_order_they_were_added():
    hook, heard = EventHook("e"), []
    hook.add_listener(lambda **kw: heard.append(("a", kw)))
    second = hook.add_listener(lambda **kw: heard.append(("b", kw)))
    hook.fire(x=1)
    hook.remove_listener(second)
    hook.fire(x=2)
    assert heard == [("a", {"x": 1}), ("b", {"x": 1}), ("a", {"x": 2})]


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog):
    events, heard = Events(), []

    def broken(**_kw):
        raise RuntimeError("listener bug")

    events.warmup_ended.add_listener(broken)
    events.warmup_ended.add_listener(lambda: heard.append("after"))
    with caplog.at_level(logging.ERROR):
        events.warmup_ended.fire()
    assert heard == ["after"]
    assert "warmup_ended" in caplog.text and "listener bug" in caplog.text


def test_each_run_has_its_own_events():
    a, b = Events(), Events()
    a.fault_instant.add_listener(lambda **_kw: None)
    assert a.fault_instant is not b.fault_instant and b.fault_instant._listeners == []
