"""The terminal view of ``pegbench run``: progress while it runs, the verdict when it ends.

On a terminal, a live table (rich) shows elapsed time against the total, ops/s, error rate,
meta queries/s and dropped arrivals per policy, and each fault as it happens; elsewhere (CI
logs) the same goes out as one plain line every ``PLAIN_EVERY_S``. Progress goes to stderr;
the verdict and where the results are go to stdout.

Rates (:class:`RateMeter`) are per source over the source's own interval, then summed: a
local runner is one source sampled by the view itself (about every second); on a master each
worker is one, whose cumulative counts arrive with its reports (every ~3 s, out of phase with
the view and each other), timed by the worker's own clock. Differencing the merged counts over
the view's 1 s instead showed 0 when no report came in and 2-3× when one did.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..metrics.analysis import live_p99_ms
from ..metrics.results import Results
from ..metrics.slo import SATURATED_REASON, slo_verdict, verdict_name
from ..report.views import policy_order, real_client_line

PLAIN_EVERY_S = 10.0
#: A source whose last new sample is older than this many of its intervals (and at least
#: STALE_MIN_S) stopped reporting: its last rate is dropped, not shown forever.
STALE_INTERVALS = 3.0
STALE_MIN_S = 10.0

#: Cumulative (ops, errors, meta queries) of one policy.
Counts = tuple[int, int, int]


@dataclass(frozen=True)
class Rates:
    """Per-second rates of one policy."""

    ops: float = 0.0
    errors: float = 0.0
    meta: float = 0.0

    @property
    def error_fraction(self) -> float:
        """Errors per op over the interval (0 without ops)."""
        return self.errors / self.ops if self.ops else 0.0

    def __add__(self, other: Rates) -> Rates:
        return Rates(self.ops + other.ops, self.errors + other.errors, self.meta + other.meta)


def counts_of(state: Any) -> dict[str, Counts]:
    """Per policy (ops, errors, meta queries) of a recorder state."""
    return {name: (p.ops, p.ops - p.outcomes.get("ok", 0), p.meta_queries)
            for name, p in state.policies.items()}


@dataclass
class _Source:
    generation: Hashable
    t: float
    counts: Mapping[str, Counts]
    seen_at: float                         # the view's clock when this sample was new
    interval: float = 0.0
    rates: dict[str, Rates] | None = None  # over the last interval; None before a second sample


class RateMeter:
    """Rates per policy from cumulative counts of several sources (see the module docstring)."""

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}

    def observe(self, source: str, generation: Hashable, t: float,
                counts: Mapping[str, Counts], now: float) -> None:
        """Source ``source``'s cumulative ``counts`` at ``t`` on its own clock; ``generation``
        changes when its counts restart (a new test, the end of warm-up). ``now`` is the
        caller's clock. A sample seen before is ignored."""
        last = self._sources.get(source)
        if last is not None and last.generation == generation and t == last.t:
            return
        restarted = (last is None or last.generation != generation or t < last.t
                     or any(c[0] < last.counts.get(name, (0, 0, 0))[0]
                            for name, c in counts.items()))
        if restarted:   # the previous rates stay on show until the next sample
            kept = (last.interval, last.rates) if last is not None else (0.0, None)
            self._sources[source] = _Source(generation, t, dict(counts), now, *kept)
            return
        dt = t - last.t
        rates = {}
        for name, (ops, errors, meta) in counts.items():
            o, e, m = last.counts.get(name, (0, 0, 0))
            rates[name] = Rates((ops - o) / dt, (errors - e) / dt, (meta - m) / dt)
        self._sources[source] = _Source(generation, t, dict(counts), now, dt, rates)

    def rates(self, now: float) -> dict[str, Rates]:
        """Per policy, the sum of every live source's rate over its own last interval."""
        total: dict[str, Rates] = {}
        for src in self._sources.values():
            if src.rates is None:
                continue
            if now - src.seen_at > max(STALE_MIN_S, STALE_INTERVALS * src.interval):
                continue
            for name, r in src.rates.items():
                total[name] = total.get(name, Rates()) + r
        return total


def observe_harness(meter: RateMeter, harness: Any, now: float) -> None:
    """Feed ``meter`` from a :class:`~loadgen.harness.hooks.Harness`: each worker's latest
    state on a master, else the local recorder at ``now``."""
    collector = getattr(harness, "collector", None)
    if collector is not None:
        for client_id, (generation, t, state) in collector.live_states().items():
            meter.observe(client_id, generation, t, counts_of(state), now)
        return
    w = harness.workload
    meter.observe("local", (w.epoch, w.t_warmup_end), now, w.recorder.totals(), now)


#: How often the live view takes a snapshot for the response p99 during faults.
FAULT_P99_EVERY_S = 5.0


class LiveView:
    """Progress and verdict of one run."""

    def __init__(self, profile: Any, *, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.profile = profile
        self.clock = clock
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False)
        # CI logs are no terminal: rich would wrap the tables at 80 columns
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self._live: Live | None = None
        self._meter = RateMeter()
        self._rates: dict[str, Rates] = {}
        self._dropped: dict[str, int] | None = None   # None: the harness does not count them
        self._faults_seen: set[str] = set()   # fault ids with a line
        self._fault_lines: list[str] = []
        self._next_plain = 0.0
        #: per policy, the response p99 (ms) of the seconds in fault phases so far
        self._fault_p99: dict[str, float | None] = {}
        self._next_fault_p99 = 0.0

    def started(self, meta: tuple[str, ...], workers: int) -> None:
        p, w = self.profile, self.profile.workload
        where = f"{workers} Locust workers" if workers else "one local Locust process"
        real = f"; real clients {', '.join(c.name for c in p.clients)}" if p.clients else ""
        self.say(f"pegbench run {p.name}: meta {', '.join(meta)}; policies "
                 f"{', '.join(p.policies.compare)}{real}; {w.users} users/policy × {w.rate_per_user:g} "
                 f"ops/s; {w.duration_s:g} s (warm-up {w.warmup_s:g} s); {where}")
        if self.err.is_terminal and not self.quiet:
            self._live = Live(console=self.err, refresh_per_second=2, transient=True)
            self._live.start()

    def say(self, message: str, *, always: bool = False) -> None:
        """One line of progress (``always``: even when quiet)."""
        # soft_wrap: a long line (a folder's path) stays whole, for a reader to copy
        if self._live is not None:
            self._live.console.print(message, soft_wrap=True)
        elif always or not self.quiet:
            self.err.print(message, soft_wrap=True)

    def tick(self, elapsed_s: float, harness: Any, faults: list) -> None:
        """Called about once a second while the load runs."""
        now = self.clock()
        observe_harness(self._meter, harness, now)
        self._rates = self._meter.rates(now)
        live_dropped = getattr(harness, "live_dropped", None)
        self._dropped = dict(live_dropped()) if callable(live_dropped) else None
        for event in faults:
            # A fault shows up first as its inject instant, later as the controller's record:
            # one line per fault id.
            if event.id not in self._faults_seen:
                self._faults_seen.add(event.id)
                if event.skipped:
                    what = f"skipped ({event.skip_reason})"
                else:
                    what = f"{event.kind} on {event.node}, partitions {list(event.affected_partitions)}"
                line = f"[{elapsed_s:6.1f} s] fault {event.id}: {what}"
                self._fault_lines.append(line)
                self.say(line)
        if faults and now >= self._next_fault_p99:   # a snapshot: not every second
            self._next_fault_p99 = now + FAULT_P99_EVERY_S
            self._fault_p99 = {name: live_p99_ms(p.latency, faults)
                               for name, p in harness.live_state().policies.items()}
        total = self.profile.workload.duration_s
        if self._live is not None:
            self._live.update(self.render(elapsed_s, total))
        elif not self.quiet and self._rates and elapsed_s >= self._next_plain:
            self._next_plain = elapsed_s + PLAIN_EVERY_S
            rates = "; ".join(f"{name} {r.ops:.0f} ops/s, {r.error_fraction:.1%} errors, "
                              f"{r.meta:.1f} meta q/s{self._dropped_text(name)}"
                              f"{self._fault_p99_text(name)}"
                              for name, r in self._rates.items())
            # one line a tick in a CI log (rich would wrap it at 80 columns)
            self.err.print(f"[{elapsed_s:6.1f}/{total:g} s] {rates}", soft_wrap=True)

    @property
    def rates(self) -> dict[str, Rates]:
        """The rates shown now, per policy."""
        return dict(self._rates)

    def _dropped_text(self, name: str) -> str:
        return "" if self._dropped is None else f", {self._dropped.get(name, 0)} dropped"

    def _fault_p99_text(self, name: str) -> str:
        value = self._fault_p99.get(name)
        return "" if value is None else f", p99 {value:.0f} ms in faults"

    def render(self, elapsed_s: float, total_s: float) -> Group:
        """The live table: progress, one row per policy, the last faults."""
        table = Table(box=None, pad_edge=False)
        for column in ("policy", "ops/s", "errors", "meta q/s", "dropped", "p99 ms in faults"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for name, r in self._rates.items():
            dropped = "-" if self._dropped is None else str(self._dropped.get(name, 0))
            p99 = self._fault_p99.get(name)
            table.add_row(name, f"{r.ops:.0f}", f"{r.error_fraction:.1%}", f"{r.meta:.1f}",
                          dropped, "-" if p99 is None else f"{p99:.0f}")
        header = Text(f"{elapsed_s:6.1f} / {total_s:g} s")
        bar = ProgressBar(total=total_s, completed=min(elapsed_s, total_s), width=40)
        return Group(header, bar, table, *[Text(line) for line in self._fault_lines[-5:]])

    def finished(self, results: Results, out_dir: Path, report: Path | None) -> None:
        """The verdict, the headline numbers, and where the files are (stdout)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        table = Table(title="per policy", box=None)
        for column in ("policy", "ops", "error rate", "client lag p99 ms",
                       "put p99 ms faults/all", "TTR-first p50/p99 ms", "recovered", "meta q/s",
                       "attempts/op"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for name in policy_order(results):
            p = results.policies[name]
            ttr = p.ttr_first_ms
            put = (p.latency_us or {}).get("put", {}).get("response")
            table.add_row(name, str(p.ops), _pct(p.error_rate), _num(p.client_lag_ms.p99),
                          f"{_num(p.put_p99_during_faults_ms)}/"
                          f"{_num(None if put is None or not put.count else put.p99 / 1000)}",
                          f"{_num(ttr.p50)}/{_num(ttr.p99)}", f"{ttr.recovered}/{ttr.n}",
                          _num(p.meta_queries_per_s, 1), _num(p.attempts_per_op, 2))
        self.out.print(table)
        for row in results.facts.real_clients or {}:
            self.out.print(f"{row}: {real_client_line(results, row)}")
        d = results.durability
        acked, verified, lost = (None, None, None) if d is None else (d.acked, d.verified, d.lost)
        lost_by = ", ".join(f"{row} {c.get('lost', 0)}"
                            for row, c in ((d.by_policy or {}) if d is not None else {}).items()
                            if c.get("lost"))
        self.out.print(f"durability: {acked} acknowledged writes, {verified} verified, "
                       f"{lost} lost" + (f" ({lost_by})" if lost_by else ""))
        for check in results.slo.checks if results.slo is not None else ():
            self.out.print(f"SLO {check.name}: {check.value!r} vs {check.threshold} → "
                           f"{_verdict(check.passed)}")
        load = results.facts.load_generator
        if load is not None and load.saturated:
            self.out.print(f"{SATURATED_REASON}: {load.reason}")
        self.out.print(f"verdict: {slo_verdict(results).upper()}")
        self.out.print(f"results: {out_dir}/results.json" + (f", report: {report}" if report else ""))
        sys.stdout.flush()


def _num(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.2%}"


def _verdict(passed: Any) -> str:
    return verdict_name(passed).upper()
