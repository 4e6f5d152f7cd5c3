"""The op engine's outcome maker builds exactly what ``Outcome(...)`` builds."""

from __future__ import annotations

import dataclasses

import pytest

from loadgen.pegasus import execute
from loadgen.pegasus.outcome import Outcome

pytestmark = pytest.mark.unit


def test_the_outcome_maker_is_outcome_at_half_the_cost():
    assert execute.make_outcome is not Outcome, "Outcome's fields changed: the fast maker is off"
    values = dict(level="attempt", op="put", table="temp", partition=3, node="127.0.0.1:1",
                  start=1.5, end=2.25, outcome="unknown", error="ERR_TIMEOUT", attempt=2,
                  refreshed=True, policy="failover", intended_start=None)
    made = execute.make_outcome(*values.values())
    built = Outcome(**values)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert dataclasses.asdict(made) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.end = 3.0


def test_a_changed_outcome_falls_back_to_its_own_constructor(monkeypatch):
    monkeypatch.setattr(execute, "_OUTCOME_FIELDS", execute._OUTCOME_FIELDS + ("extra",))
    assert execute._outcome_maker() is Outcome
