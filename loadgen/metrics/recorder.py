"""Recorder: turns the client's ``Outcome`` records into histograms, counters and timelines.

Pass ``recorder.record`` as the client's ``observer``. Per policy it keeps:

* HDR counts per op × kind (``service`` = end − start, ``response`` = end − intended start,
  free of coordinated omission), in µs; out-of-range values are clamped and counted;
* the same per op × kind × global phase (``fault``, ``recovery``, ``steady``: DESIGN.md), an op
  belonging to the phase of its intended start (see "Phases" below);
* counters: ops, attempts, outcomes and errors by kind, attempt-level outcomes and errors,
  meta queries (``level="meta"`` records);
* a series over all ops (ok / fail / unknown / attempts / meta queries per bucket, plus a
  coarse response-time histogram and error kinds per second) and, for writes, one series
  per (table, partition) with the exact end of the first ok write after each fault instant.

``fault_at(t)`` and ``heal_at(t)`` mark instants whose ± ``FINE_WINDOW_S`` keep 10 ms
detail.

Phases: an instant can arrive after ops intended after it were recorded (a killed node fails
ops fast; a Locust worker hears of it through the master), so ops are not classified on the
hot path. ``record`` appends (intended start, op, service index, response index) to a pending
buffer; once a second, that buffer becomes a batch tagged with the latest end seen, and
batches whose tag is more than ``PHASE_SETTLE_S`` old (so every op in them was intended
before that) are folded into per-phase counts with the fault spans known then: each entry is
touched once. A snapshot adds the still-pending ones classified with the current spans,
without folding them. Spans come from ``fault_instant`` (an INJECT and a HEAL paired by event
id; no HEAL yet: the fault lasts forever; so a kill never restarted, which gets no HEAL, is
``fault`` here to the end, while its fault record's t_heal is the last failover instant, known
only later). ``fault_at``/``heal_at`` called directly (no event
id) pair in order: a heal closes the earliest open id-less fault injected at or before it; a
heal with none open bounds no phase.

``reset()`` drops everything recorded so far (after warm-up, as wrk2 does after its
calibration). ``snapshot()`` returns plain data (:mod:`loadgen.metrics.state`).

The hot path (``record`` of an op) is one function with no further calls in the common
case: it runs for every op at thousands of ops/s. Attempt-level records are only counted.
It takes ``Outcome``-shaped objects and never imports the client: metrics knows no sockets.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from hdrh.histogram import HdrHistogram

from . import hdr
from .events import HEAL, INJECT, RECOVERY_S, STEADY, FaultEvent, FaultInstant, phases
from .series import (FINE_PER_S, FINE_WINDOW_S, OUTCOME_SLOTS, POLICY_SLOTS, RECENT_S, LiveSeries,
                     PartitionTimeline)
from .state import PolicyState, RecorderState

OP_LEVEL, ATTEMPT_LEVEL, META_LEVEL, PROBE_LEVEL = "op", "attempt", "meta", "probe"
#: Ops whose outcomes feed the per-partition timelines (TTR is about writes).
WRITE_OPS = frozenset({"put", "multi_put", "remove", "multi_remove", "incr",
                       "check_and_set", "check_and_mutate"})
#: How often (in recorded time) old seconds are closed and buffers trimmed.
MAINTAIN_EVERY_S = 1.0
#: How long after an op's intended start (behind the latest end recorded) its phase is
#: settled: a fault instant may arrive this late and still classify it.
PHASE_SETTLE_S = 5.0
UNSPECIFIED_ERROR = "UNSPECIFIED"   # a failed outcome that carries no error name

_CODES = {"ok": 0, "fail": 1, "unknown": 2}
_WIDTH = len(POLICY_SLOTS)
_LATENCY_BASE = FINE_PER_S * _WIDTH     # the per-second response histogram follows the buckets
_PWIDTH = len(OUTCOME_SLOTS)
_HIGHEST, _MASK, _SHIFT, _HALF = hdr.HIGHEST_US, hdr.MASK, hdr.SHIFT, hdr.HALF_MAGNITUDE
_CMASK, _CSHIFT, _CHALF = hdr.COARSE_MASK, hdr.COARSE_SHIFT, hdr.COARSE_HALF_MAGNITUDE


class OutcomeLike(Protocol):
    """The fields of ``loadgen.pegasus.outcome.Outcome`` the recorder reads."""

    level: str
    op: str
    table: str
    partition: int
    start: float
    end: float
    outcome: str
    error: str | None
    attempt: int
    policy: str
    intended_start: float | None


class _Partition:
    """Live state of one (policy, table, partition) write timeline."""

    __slots__ = ("partition", "series", "ok_starts", "ok_ends", "scanned", "first_ok", "pending")

    def __init__(self, partition: int, instants: Iterable[float]):
        self.partition = partition
        self.series = LiveSeries(_PWIDTH)
        # A write recovers the partition only if it was handed to the client at or after the
        # fault: an ack already on its way from a killed primary proves nothing.
        self.ok_starts = array("d")  # starts of recent ok writes, aligned with ok_ends
        self.ok_ends = array("d")   # exact ends of recent ok writes, in arrival order
        self.scanned = 0            # ok_ends before this index were matched against pending
        self.first_ok: dict[float, float | None] = {t: None for t in instants}
        self.pending = list(self.first_ok)   # instants whose answer may still improve

    def add_instant(self, t: float) -> None:
        if t in self.first_ok:
            return
        self.first_ok[t] = _first_end_from(self.ok_starts, self.ok_ends, t)
        self.pending.append(t)

    def resolve(self) -> None:
        """Match the ok ends recorded since the last call against pending instants."""
        if self.pending and self.scanned < len(self.ok_ends):
            starts, ends = self.ok_starts[self.scanned:], self.ok_ends[self.scanned:]
            for t in self.pending:
                best = _first_end_from(starts, ends, t)
                have = self.first_ok[t]
                if best is not None and (have is None or best < have):
                    self.first_ok[t] = best
        self.scanned = len(self.ok_ends)

    def trim(self, cutoff: float) -> None:
        """Forget ok ends before ``cutoff``; settle instants answered before it."""
        self.resolve()
        # ends arrive in (almost exact) end order: bisect finds the old prefix
        drop = bisect_left(self.ok_ends, cutoff)
        if drop:
            del self.ok_ends[:drop]
            del self.ok_starts[:drop]
            self.scanned -= drop
        self.pending = [t for t in self.pending
                        if self.first_ok[t] is None or self.first_ok[t] >= cutoff]


def _first_end_from(starts: array, ends: array, t: float) -> float | None:
    """The earliest end among the ok writes handed over at or after ``t``."""
    return min((e for s, e in zip(starts, ends, strict=True) if s >= t), default=None)


class _Policy:
    """Live counters, histograms and series of one policy."""

    __slots__ = ("ops", "attempts", "outcomes", "errors", "attempt_outcomes", "attempt_errors",
                 "meta_queries", "meta_failed", "replica_queries", "clamped", "hists",
                 "series", "open",
                 "second_errors", "partitions", "dropped", "dropped_by_second",
                 "pending", "batches", "phase_counts")

    def __init__(self) -> None:
        self.attempts = 0
        self.outcomes = [0, 0, 0]                 # by _CODES
        self.errors: dict[str, int] = {}
        self.attempt_outcomes = [0, 0, 0]
        self.attempt_errors: dict[str, int] = {}
        self.meta_queries = 0
        self.meta_failed = 0
        self.replica_queries = 0
        self.clamped = 0
        #: op -> (service counts, response counts, is a write)
        self.hists: dict[str, tuple[list[int], list[int], bool]] = {}
        self.series = LiveSeries(_WIDTH, extra=hdr.COARSE_LEN)
        self.open = self.series.open            # the hot path's shortcut
        self.second_errors: dict[int, dict[str, int]] = {}
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self.dropped: dict[int, int] = {}
        self.dropped_by_second: dict[int, int] = {}
        #: (intended start, op, service index, response index) of ops not yet folded
        self.pending: list[tuple[float, str, int, int]] = []
        #: earlier pending buffers, oldest first, each with the latest end recorded by then
        self.batches: deque[tuple[float, list[tuple[float, str, int, int]]]] = deque()
        #: (op, phase) -> (service counts, response counts): the folded, settled ops
        self.phase_counts: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    def add_op(self, op: str) -> tuple[list[int], list[int], bool]:
        entry = self.hists[op] = (hdr.new_counts(), hdr.new_counts(), op in WRITE_OPS)
        return entry

    def clamp(self, value: int) -> int:
        self.clamped += 1
        return hdr.clamp_us(value)


class Recorder:
    """Per-policy metrics of a stream of ``Outcome`` records (see the module docstring);
    ``recovery_s``: the length of the recovery phase after each heal."""

    def __init__(self, *, recovery_s: float = RECOVERY_S) -> None:
        self._policies: dict[str, _Policy] = {}
        #: fault instants: (t, partitions or None for all); heal instants likewise
        self._faults: list[tuple[float, frozenset[int] | None]] = []
        self._heals: list[tuple[float, frozenset[int] | None]] = []
        self._recovery_s = recovery_s
        #: fault spans by event id (id-less ones from fault_at: ("", n)): [t_inject, t_heal],
        #: either None until its instant arrives
        self._spans: dict[object, list[float | None]] = {}
        self._phase_cover: tuple[list[float], list[str]] | None = None   # cache; None: stale
        self._next_maintenance = -math.inf
        self._now = -math.inf

    # ------------------------------------------------------------------ hot path

    def record(self, o: OutcomeLike) -> None:
        """Record one outcome (the client's observer callback)."""
        level = o.level
        p = self._policies.get(o.policy)
        if p is None:
            p = self._add_policy(o.policy)
        if level != OP_LEVEL:
            if level == ATTEMPT_LEVEL and o.outcome == "ok":   # _record_side's usual case
                p.attempt_outcomes[0] += 1
            else:
                self._record_side(p, o)
            return
        start, end, t = o.start, o.end, o.intended_start
        if t is None:
            t = start
        name = o.op
        entry = p.hists.get(name)
        if entry is None:
            entry = p.add_op(name)
        service, response, write = entry
        v = int((end - start) * 1e6 + 0.5)
        if not 1 <= v <= _HIGHEST:
            v = p.clamp(v)
        b = (v | _MASK).bit_length() - _SHIFT
        si = (b << _HALF) + (v >> b)
        service[si] += 1
        v = int((end - t) * 1e6 + 0.5)
        if not 1 <= v <= _HIGHEST:
            v = p.clamp(v)
        b = (v | _MASK).bit_length() - _SHIFT
        ri = (b << _HALF) + (v >> b)
        response[ri] += 1
        p.pending.append((t, name, si, ri))     # its phase is settled later (_maintain)
        code = _CODES[o.outcome]
        p.outcomes[code] += 1
        attempts = o.attempt
        p.attempts += attempts
        i = int(t * FINE_PER_S)          # 10 ms bucket of the intended start (t >= 0)
        sec = i // FINE_PER_S
        chunk = p.open.get(sec)
        if chunk is None:
            chunk = p.series.open_chunk(sec)
        j = (i - sec * FINE_PER_S) * _WIDTH
        chunk[j + code] += 1
        chunk[j + 3] += attempts
        b = (v | _CMASK).bit_length() - _CSHIFT
        chunk[_LATENCY_BASE + (b << _CHALF) + (v >> b)] += 1
        if code:
            self._count_error(p, o.error, sec)
        if write:
            part = p.partitions.get((o.table, o.partition))
            if part is None:
                part = self._add_partition(p, o.table, o.partition)
            series = part.series
            chunk = series.open.get(sec)
            if chunk is None:
                chunk = series.open_chunk(sec)
            chunk[(i - sec * FINE_PER_S) * _PWIDTH + code] += 1
            if not code:
                part.ok_starts.append(o.start)
                part.ok_ends.append(end)
        if end >= self._next_maintenance:
            self._maintain(end)

    def drop(self, policy: str, partition: int, intended_start: float) -> None:
        """An arrival of ``policy`` was dropped (its user's in-flight cap was full): it never
        became an op, so it is counted here, by partition (-1 if unknown) and second."""
        p = self._policies.get(policy)
        if p is None:
            p = self._add_policy(policy)
        p.dropped[partition] = p.dropped.get(partition, 0) + 1
        sec = int(intended_start)
        p.dropped_by_second[sec] = p.dropped_by_second.get(sec, 0) + 1

    # ------------------------------------------------------------------ the rest

    def _record_side(self, p: _Policy, o: OutcomeLike) -> None:
        """Attempt-level records are counted only; meta queries per policy and per bucket."""
        code = _CODES[o.outcome]
        if o.level == ATTEMPT_LEVEL:
            p.attempt_outcomes[code] += 1
            if code:
                name = o.error or UNSPECIFIED_ERROR
                p.attempt_errors[name] = p.attempt_errors.get(name, 0) + 1
            return
        if o.level == PROBE_LEVEL:
            p.replica_queries += 1
            return
        if o.level != META_LEVEL:
            raise ValueError(f"unknown outcome level {o.level!r}")
        p.meta_queries += 1
        p.meta_failed += code != 0
        i = int(o.start * FINE_PER_S)
        sec = i // FINE_PER_S
        chunk = p.open.get(sec)
        if chunk is None:
            chunk = p.series.open_chunk(sec)
        chunk[(i - sec * FINE_PER_S) * _WIDTH + 4] += 1

    @staticmethod
    def _count_error(p: _Policy, error: str | None, sec: int) -> None:
        name = error or UNSPECIFIED_ERROR
        p.errors[name] = p.errors.get(name, 0) + 1
        per_second = p.second_errors.get(sec)
        if per_second is None:
            per_second = p.second_errors[sec] = {}
        per_second[name] = per_second.get(name, 0) + 1

    def _add_policy(self, name: str) -> _Policy:
        policy = self._policies[name] = _Policy()
        return policy

    def _add_partition(self, p: _Policy, table: str, partition: int) -> _Partition:
        instants = [t for t, parts in self._faults if parts is None or partition in parts]
        part = p.partitions[(table, partition)] = _Partition(partition, instants)
        return part

    def _keeps_fine(self, sec: int, partition: int | None) -> bool:
        """Whether second ``sec`` lies within FINE_WINDOW_S of a fault or heal instant
        (for a partition: one that touches it)."""
        for marks in (self._faults, self._heals):
            for t, parts in marks:
                if (sec + 1 > t - FINE_WINDOW_S and sec < t + FINE_WINDOW_S
                        and (partition is None or parts is None or partition in parts)):
                    return True
        return False

    def _maintain(self, now: float) -> None:
        """Close seconds older than RECENT_S, settle first-success times, trim buffers, fold
        ops intended more than PHASE_SETTLE_S ago into their phase's counts."""
        self._now = max(self._now, now)
        self._next_maintenance = self._now + MAINTAIN_EVERY_S
        cutoff = self._now - RECENT_S
        limit = math.floor(cutoff)
        settled = self._now - PHASE_SETTLE_S
        for p in self._policies.values():
            if p.pending:
                p.batches.append((self._now, p.pending))
                p.pending = []
            if p.batches and p.batches[0][0] < settled:
                _fold(p, settled, self._cover())
            p.series.close_before(limit, lambda sec: self._keeps_fine(sec, None))
            for part in p.partitions.values():
                part.trim(cutoff)
                part.series.close_before(
                    limit, lambda sec, pidx=part.partition: self._keeps_fine(sec, pidx))

    def _cover(self) -> tuple[list[float], list[str]]:
        """The phases of the spans known now, cached until the next instant."""
        if self._phase_cover is None:
            self._phase_cover = phase_cover(self._spans.values(), self._recovery_s)
        return self._phase_cover

    def _span_edge(self, key: object, edge: str, t: float) -> None:
        span = self._spans.setdefault(key, [None, None])
        span[0 if edge == INJECT else 1] = t
        self._phase_cover = None

    def _mark_fault(self, t: float, parts: frozenset[int] | None) -> bool:
        """Note a fault instant for the timelines; False if it was known already."""
        if (t, parts) in self._faults:
            return False  # announced twice (e.g. a relay and a controller): one fault
        self._faults.append((t, parts))
        for p in self._policies.values():
            for part in p.partitions.values():
                if parts is None or part.partition in parts:
                    part.add_instant(t)
        return True

    # ------------------------------------------------------------------ public API

    def fault_at(self, t: float, partitions: Iterable[int] | None = None) -> None:
        """A fault was injected at monotonic instant ``t`` (touching ``partitions``; None:
        all). Keeps 10 ms detail around it and the exact first-success time after it; call it
        within RECENT_S of ``t`` (as the fault happens). Without an event id, it opens a
        fault span the next :meth:`heal_at` closes (module docstring, "Phases")."""
        parts = None if partitions is None else frozenset(partitions)
        if self._mark_fault(t, parts):
            self._span_edge(("", len(self._spans)), INJECT, t)

    def heal_at(self, t: float, partitions: Iterable[int] | None = None) -> None:
        """A fault was healed at ``t``: keep 10 ms detail around it too (phase boundaries);
        it closes the earliest open id-less fault span injected at or before ``t``."""
        self._heals.append((t, None if partitions is None else frozenset(partitions)))
        open_ = [(span[0], key) for key, span in self._spans.items()
                 if isinstance(key, tuple) and span[1] is None and span[0] <= t]
        if open_:
            self._span_edge(min(open_)[1], HEAL, t)

    def fault_instant(self, instant: FaultInstant) -> None:
        """A fault's inject or heal instant (a listener of the ``fault_instant`` event): marks
        it for the timelines as :meth:`fault_at` or :meth:`heal_at` do, and sets that edge
        of the event's fault span (the phases; paired by event id)."""
        parts = None if instant.partitions is None else frozenset(instant.partitions)
        if instant.edge == INJECT:
            self._mark_fault(instant.t, parts)
        else:
            self._heals.append((instant.t, parts))
        self._span_edge(instant.event_id, instant.edge, instant.t)

    def reset(self) -> None:
        """Drop everything recorded so far (end of warm-up), pending phase entries too;
        fault instants and spans are kept."""
        self._policies.clear()

    def snapshot(self, *, histograms: bool = True) -> RecorderState:
        """Everything recorded so far, as plain data (the recorder keeps running).

        ``histograms=False`` leaves the HDR histograms out: converting them costs ~2 ms each
        (30 for five policies), which a live display polled every second must not pay on
        the hub that also sends the load. The per-phase ones are the folded counts plus the
        pending entries classified with the spans known now, folding nothing: an instant
        that arrives later may still move those."""
        policies = {}
        for name, p in self._policies.items():
            series, latency = p.series.view(lambda sec: self._keeps_fine(sec, None))
            partitions = {}
            for key, part in p.partitions.items():
                part.resolve()
                pseries, _ = part.series.view(
                    lambda sec, pidx=part.partition: self._keeps_fine(sec, pidx))
                partitions[key] = PartitionTimeline(series=pseries, first_ok=dict(part.first_ok))
            hists, phase_hists = {}, {}
            if histograms:
                for op, (service, response, _) in p.hists.items():
                    hists[(op, "service")] = hdr.to_histogram(service)
                    hists[(op, "response")] = hdr.to_histogram(response)
                counts = {key: (service[:], response[:])
                          for key, (service, response) in p.phase_counts.items()}
                cover = self._cover()
                for _, batch in p.batches:
                    _count_phases(counts, batch, cover)
                _count_phases(counts, p.pending, cover)
                for (op, phase), (service, response) in counts.items():
                    phase_hists[(op, "service", phase)] = hdr.to_histogram(service)
                    phase_hists[(op, "response", phase)] = hdr.to_histogram(response)
            policies[name] = PolicyState(
                ops=sum(p.outcomes), attempts=p.attempts,
                outcomes=dict(zip(OUTCOME_SLOTS, p.outcomes)), errors=dict(p.errors),
                attempt_outcomes=dict(zip(OUTCOME_SLOTS, p.attempt_outcomes)),
                attempt_errors=dict(p.attempt_errors), meta_queries=p.meta_queries,
                meta_failed=p.meta_failed, replica_queries=p.replica_queries,
                clamped=p.clamped, histograms=hists, phase_histograms=phase_hists,
                series=series, latency=latency,
                errors_by_second={s: dict(e) for s, e in p.second_errors.items()},
                partitions=partitions, dropped=dict(p.dropped),
                dropped_by_second=dict(p.dropped_by_second))
        return RecorderState(faults=tuple((t, _parts(ps)) for t, ps in self._faults),
                             heals=tuple((t, _parts(ps)) for t, ps in self._heals),
                             policies=policies)

    def totals(self) -> dict[str, tuple[int, int, int]]:
        """Per policy (ops, errors, meta queries) so far: the counters alone, for a live view
        polled every second (a snapshot's series views cost tens of ms on the hub)."""
        return {name: (sum(p.outcomes), sum(p.outcomes) - p.outcomes[0], p.meta_queries)
                for name, p in self._policies.items()}

    def dropped_totals(self) -> dict[str, int]:
        """Arrivals dropped so far, per policy (cheap: for live displays)."""
        return {name: sum(p.dropped.values()) for name, p in self._policies.items()}

    def histograms(self) -> dict[tuple[str, str, str], HdrHistogram]:
        """Cumulative µs histograms by (policy, op, "service" | "response")."""
        return {key: hdr.to_histogram(counts) for key, counts in self.histogram_counts().items()}

    def histogram_counts(self) -> dict[tuple[str, str, str], list[int]]:
        """Copies of the cumulative µs counts (hdrh's layout) by (policy, op, kind): what
        the .hlog writer needs, without building an ``HdrHistogram`` per key."""
        return {(name, op, kind): counts[:]
                for name, p in self._policies.items()
                for op, (service, response, _) in p.hists.items()
                for kind, counts in (("service", service), ("response", response))}

    def stored_entries(self) -> int:
        """How many buckets, chunks, buffered ends and pending phase entries are held
        (memory-bound checks)."""
        total = 0
        for p in self._policies.values():
            for series in [p.series] + [part.series for part in p.partitions.values()]:
                total += len(series.open) + len(series.coarse) + len(series.fine)
                total += len(series.extra_closed)
            total += len(p.second_errors)
            total += sum(len(part.ok_ends) + len(part.first_ok) for part in p.partitions.values())
            total += len(p.pending) + sum(len(batch) for _, batch in p.batches)
        return total


def _parts(parts: frozenset[int] | None) -> tuple[int, ...] | None:
    return None if parts is None else tuple(sorted(parts))


def phase_cover(spans: Iterable[Sequence[float | None]],
                recovery_s: float = RECOVERY_S) -> tuple[list[float], list[str]]:
    """(starts, names) such that ``names[bisect_right(starts, t) - 1]`` is the global phase
    of instant ``t``, from [t_inject, t_heal] spans (t_heal None: not healed yet; t_inject
    None: only the heal arrived so far, no phase yet), by :func:`.events.phases`."""
    events = [FaultEvent(str(k), "", "", inject, None if heal is None else max(heal, inject))
              for k, (inject, heal) in enumerate(spans) if inject is not None]
    starts, names = [-math.inf], [STEADY]
    for phase in phases(events, recovery_s=recovery_s):
        # adjacent phases repeat an instant: bisect_right picks the later entry, the right one
        starts.append(phase.start)
        names.append(phase.name)
        starts.append(phase.end)
        names.append(STEADY)
    return starts, names


def _count_phases(counts: dict[tuple[str, str], tuple[list[int], list[int]]],
                  entries: list[tuple[float, str, int, int]],
                  cover: tuple[list[float], list[str]]) -> None:
    """Add pending entries into ``counts`` by (op, phase of the intended start)."""
    if not entries:
        return
    starts, names = cover
    # a batch (about a second) mostly lies in one phase: then no per-entry lookup (min and
    # max compare the tuples' first item, the intended start, at C speed)
    first = bisect_right(starts, min(entries)[0]) - 1
    if first == bisect_right(starts, max(entries)[0]) - 1:
        groups = {names[first]: entries}
    else:
        groups = {}
        for e in entries:
            groups.setdefault(names[bisect_right(starts, e[0]) - 1], []).append(e)
    for phase, group in groups.items():
        by_op: dict[str, tuple[list[int], list[int]]] = {}
        for _, op, si, ri in group:
            pair = by_op.get(op)
            if pair is None:
                pair = counts.get((op, phase))
                if pair is None:
                    pair = counts[(op, phase)] = (hdr.new_counts(), hdr.new_counts())
                by_op[op] = pair
            pair[0][si] += 1
            pair[1][ri] += 1


def _fold(p: _Policy, settled: float, cover: tuple[list[float], list[str]]) -> None:
    """Fold ``p``'s batches recorded before ``settled`` into its phase counts (an op is
    intended before it ends, so all of theirs were intended before ``settled``)."""
    batches = p.batches
    while batches and batches[0][0] < settled:
        _count_phases(p.phase_counts, batches.popleft()[1], cover)
