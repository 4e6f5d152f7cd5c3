"""Hand-built outcome histories for the metrics tests: real ``Outcome`` records, by keyword."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loadgen.metrics import Recorder
from loadgen.pegasus.outcome import Outcome

TABLE = "temp"
SERVICE_S = 0.003           # an ok write's service time
TIMEOUT_S = 1.0             # a timed-out write's service time
RATE = 20                   # writes/s per partition in the hand-built histories
OFFSET_S = 0.0025           # intended starts sit mid-bucket, away from 10 ms bucket edges


def op(t: float, *, ok: bool = True, end: float | None = None, partition: int = 3,
       policy: str = "failover", name: str = "put", outcome: str | None = None,
       error: str | None = None, attempt: int = 1, start: float | None = None,
       intended: bool = True) -> Outcome:
    """An op-level outcome intended at ``t`` (started at ``start``, default ``t``)."""
    outcome = outcome or ("ok" if ok else "unknown")
    start = t if start is None else start
    if end is None:
        end = start + (SERVICE_S if outcome == "ok" else TIMEOUT_S)
    if error is None and outcome != "ok":
        error = "ERR_TIMEOUT"
    return Outcome(level="op", op=name, table=TABLE, partition=partition, node="n1",
                   start=start, end=end, outcome=outcome, error=error, attempt=attempt,
                   refreshed=False, policy=policy, intended_start=t if intended else None)


def meta(t: float, *, policy: str = "failover", ok: bool = True) -> Outcome:
    """A meta-server config query started at ``t``."""
    return Outcome(level="meta", op="query_config", table=TABLE, partition=-1, node="meta1",
                   start=t, end=t + 0.001, outcome="ok" if ok else "fail",
                   error=None if ok else "ERR_TIMEOUT", attempt=1, refreshed=False,
                   policy=policy)


def attempt(t: float, *, policy: str = "failover", ok: bool = True,
            error: str = "ERR_SESSION_RESET") -> Outcome:
    """One attempt-level outcome."""
    return Outcome(level="attempt", op="put", table=TABLE, partition=3, node="n1", start=t,
                   end=t + 0.002, outcome="ok" if ok else "unknown",
                   error=None if ok else error, attempt=1, refreshed=not ok, policy=policy)


def writes(t_from: float, t_to: float, ok: Callable[[float], bool] = lambda t: True, *,
           rate: int = RATE, partition: int = 3, policy: str = "failover") -> list[Outcome]:
    """Writes intended every 1/rate s in [t_from, t_to) (plus OFFSET_S); ``ok(t)`` decides
    each outcome (failed ones time out after TIMEOUT_S)."""
    count = round((t_to - t_from) * rate)
    return [op(t, ok=ok(t), partition=partition, policy=policy)
            for t in (t_from + k / rate + OFFSET_S for k in range(count))]


def record_in_end_order(recorder: Recorder, outcomes: Iterable[Outcome],
                        faults: Iterable[tuple[float, tuple[int, ...] | None]] = ()) -> None:
    """Feed outcomes as a client would (in order of ``end``), announcing each fault as soon
    as the recorded time passes it."""
    pending = sorted(faults, key=lambda f: f[0])
    for o in sorted(outcomes, key=lambda o: o.end):
        while pending and pending[0][0] <= o.end:
            t, parts = pending.pop(0)
            recorder.fault_at(t, parts)
        recorder.record(o)
    for t, parts in pending:
        recorder.fault_at(t, parts)
