"""Time to recover, per (fault event, affected partition, policy): pure functions.

* TTR-first: ``t_inject`` → the reply time (``Outcome.end``, exact) of the first ok write on
  the partition that was handed to the client at or after ``t_inject``.
* TTR-stable: windows ``[t_inject + kW, t_inject + (k+1)W)`` of writes bucketed by intended
  start; a window is good with ≥ ``GOOD_MIN_WRITES`` writes and ≥ 99 % of them ok.
  TTR-stable = max(TTR-first, start of the first window from which every window up to the
  end of the grid is good). Bucketing by intended start lets ops sent late (a user that fell
  behind) fill early windows with successes, hence the max: stable is never before first,
  and a sample whose TTR-first is not recovered is not stably recovered either.
  Fewer than ``MIN_STABLE_WINDOWS`` windows from that one to the grid's end → censored.
* Window grid: whole windows up to the last *fully observed* bucket before the horizon: the
  bucket (10 ms near faults, 1 s on whole seconds elsewhere) that straddles the horizon or
  the run end (its ops partly after it, or never offered) is left out with the windows it
  would fall in. A bucket's counts are shared among the windows it overlaps, in proportion
  (so a change of bucket width never leaves a window a sliver of a second). Trailing windows in which
  the policy offered no op at all (on any partition) are unobserved and dropped too; a window
  where the policy offered load elsewhere but this partition saw no write stays, and is bad.
* Horizon: the next injected fault touching *any* replica of the partition (primary or
  secondary: ``FaultEvent.touched_partitions``); a fault whose replicas are unknown (results
  written before that field existed) ends every horizon, like the next fault of any kind.
  Else the run end. Not recovered before it → censored: reported with the time observed so
  far (horizon − t_inject).
* Client lag: TTR-first − server failover time; a negative lag is kept and flagged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .events import FaultEvent, injected
from .series import COARSE_BUCKET_S, FINE_PER_S, PartitionTimeline, Series, fine_index
from .state import RecorderState

TTR_WINDOW_S = 1.0
GOOD_MIN_WRITES = 5
GOOD_MIN_OK_PERCENT = 99
MIN_STABLE_WINDOWS = 3
_EPSILON_S = 1e-9   # float slack when counting whole windows


@dataclass(frozen=True)
class PartitionTTR:
    """Recovery of one partition after one fault, for one policy (times in seconds)."""

    event_id: str
    policy: str
    partition: int
    t_inject: float
    t_horizon: float
    first_s: float                  # TTR-first, or the time observed when not recovered
    recovered: bool                 # TTR-first happened before the horizon
    stable_s: float                 # TTR-stable, or the time observed when not recovered
    stable_recovered: bool
    server_failover_s: float | None
    lag_s: float | None             # first_s - server_failover_s; None if that is unknown
    lag_negative: bool              # the client "recovered" before the server did


def horizon(event: FaultEvent, partition: int, events: Iterable[FaultEvent],
            t_end: float) -> float:
    """The next injected fault after ``event`` touching any replica of ``partition`` (or
    whose replicas are unknown), or the run end, whichever comes first."""
    later = [e.t_inject for e in injected(events)
             if e.t_inject > event.t_inject and e.touches(partition)]
    return max(min(later + [t_end]), event.t_inject)


def ttr_first(timeline: PartitionTimeline | None, t_inject: float,
              t_horizon: float) -> tuple[float, bool]:
    """(TTR-first or time observed, recovered) from the exact first-success time."""
    end = None if timeline is None else timeline.first_ok_end_after(t_inject)
    if end is not None and end <= t_horizon:
        return end - t_inject, True
    return t_horizon - t_inject, False


def window_counts(series: Series | None, t_inject: float, windows: int,
                  window_s: float = TTR_WINDOW_S) -> list[tuple[float, float]]:
    """(ok, total) writes of each window after ``t_inject``. A bucket's counts are shared
    among the windows it overlaps, in proportion: where the series changes resolution
    (1 s buckets, then the 10 ms detail kept around a later fault), counting a whole bucket
    in the window holding its start would leave one window with a sliver of a second's
    writes (a "bad" window on a healthy partition) and give its neighbour two seconds'."""
    counts = [[0.0, 0.0] for _ in range(windows)]
    if series is None or not windows:
        return [(0.0, 0.0)] * windows
    t_end = t_inject + windows * window_s
    # from a second earlier: a 1 s bucket that starts before t_inject may reach into window 0
    for start, width, c in series.buckets(t_inject - COARSE_BUCKET_S, t_end):
        end = start + width
        if end <= t_inject:
            continue
        ok, total = c[0], c[0] + c[1] + c[2]
        k = max(0, int((start - t_inject) / window_s))
        while k < windows:
            w_from = t_inject + k * window_s
            if w_from >= end:
                break
            share = (min(end, w_from + window_s) - max(start, w_from)) / width
            counts[k][0] += ok * share
            counts[k][1] += total * share
            k += 1
    return [(round(ok, 6), round(total, 6)) for ok, total in counts]


def observed_until(series: Series | None, t: float) -> float:
    """The end of the last bucket of ``series`` that ends at or before ``t``: the start of
    the bucket holding ``t`` (10 ms where that second kept its detail, else the whole
    second; a second the series never saw counts as coarse, the safe side)."""
    t += _EPSILON_S     # 103.6 * 100 is 10359.999…: an instant on an edge starts its bucket
    sec = math.floor(t)
    if series is not None and sec in series.fine:
        return fine_index(t) / FINE_PER_S
    return float(sec)


def _offered(series: Series | None, t_from: float, t_to: float) -> bool:
    """Whether ``series`` holds any op intended in [t_from, t_to)."""
    return series is not None and next(iter(series.buckets(t_from, t_to)), None) is not None


def stable_windows(series: Series | None, t_inject: float, t_horizon: float,
                   window_s: float = TTR_WINDOW_S, *,
                   offered: Series | None = None) -> list[tuple[float, float]]:
    """(ok, total) of every window of the grid (see the module docstring): whole windows
    of fully observed buckets before ``t_horizon``, less trailing windows in which
    ``offered`` (the policy's series over all ops) holds no op."""
    t_grid_end = observed_until(series, t_horizon)
    n = max(0, int((t_grid_end - t_inject) / window_s + _EPSILON_S))
    counts = window_counts(series, t_inject, n, window_s)
    while counts and counts[-1][1] == 0:
        k = len(counts) - 1
        if _offered(offered, t_inject + k * window_s, t_inject + (k + 1) * window_s):
            break   # load was offered, none of it reached this partition: a bad window
        counts.pop()
    return counts


def is_good(ok: float, total: float) -> bool:
    """A window is good with enough writes and ≥ GOOD_MIN_OK_PERCENT of them ok."""
    return total >= GOOD_MIN_WRITES and ok * 100 >= GOOD_MIN_OK_PERCENT * total


def stable_from(windows: Sequence[tuple[float, float]]) -> int | None:
    """Index of the first window from which all are good; None if fewer than
    MIN_STABLE_WINDOWS such windows are left."""
    k = len(windows)
    while k > 0 and is_good(*windows[k - 1]):
        k -= 1
    return k if len(windows) - k >= MIN_STABLE_WINDOWS else None


def ttr_stable(series: Series | None, t_inject: float, t_horizon: float,
               window_s: float = TTR_WINDOW_S, *, first_s: float | None,
               offered: Series | None = None) -> tuple[float, bool]:
    """(TTR-stable or time observed, recovered). ``first_s``: the sample's TTR-first, None
    when it did not recover (then neither does TTR-stable); ``offered``: the policy's series
    over all ops, which tells an unobserved trailing window from a bad one."""
    k = stable_from(stable_windows(series, t_inject, t_horizon, window_s, offered=offered))
    if k is None or first_s is None:
        return t_horizon - t_inject, False
    return max(first_s, k * window_s), True


def resolve_table(state: RecorderState, table: str | None) -> str:
    """The table faults refer to: ``table``, or the only one written to."""
    if table is not None:
        return table
    tables = state.tables()
    if len(tables) > 1:
        raise ValueError(f"writes went to several tables {sorted(tables)}: name one")
    return next(iter(tables), "")


def event_ttrs(state: RecorderState, events: Iterable[FaultEvent], *, t_end: float,
               table: str | None = None, window_s: float = TTR_WINDOW_S) -> list[PartitionTTR]:
    """TTRs of every (injected event, affected partition, policy); skipped events give none."""
    events = list(events)
    table = resolve_table(state, table)
    out = []
    for event in injected(events):
        for pidx in event.affected_partitions:
            t_horizon = horizon(event, pidx, events, t_end)
            failover = event.failover_s(pidx)
            for name, policy in state.policies.items():
                timeline = policy.partitions.get((table, pidx))
                try:
                    first, recovered = ttr_first(timeline, event.t_inject, t_horizon)
                except LookupError as exc:
                    raise ValueError(f"fault event {event.id}, partition {pidx}, policy "
                                     f"{name}: {exc}") from None
                stable, stable_ok = ttr_stable(
                    None if timeline is None else timeline.series, event.t_inject, t_horizon,
                    window_s, first_s=first if recovered else None, offered=policy.series)
                lag = None if failover is None else first - failover
                out.append(PartitionTTR(
                    event_id=event.id, policy=name, partition=pidx, t_inject=event.t_inject,
                    t_horizon=t_horizon, first_s=first, recovered=recovered, stable_s=stable,
                    stable_recovered=stable_ok, server_failover_s=failover, lag_s=lag,
                    lag_negative=lag is not None and lag < 0))
    return out
