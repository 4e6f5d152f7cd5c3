"""The terminal view of ``pegbench run``: progress while it runs, the verdict when it ends.

On a terminal, a live table (rich) shows elapsed time against the total, ops/s and error rate
per policy over the last second, meta queries/s, and each fault as it happens; elsewhere (CI
logs) the same goes out as one plain line every ``PLAIN_EVERY_S``. Progress goes to stderr;
the verdict and where the results are go to stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .metrics.slo import slo_verdict

PLAIN_EVERY_S = 10.0


class LiveView:
    """Progress and verdict of one run."""

    def __init__(self, profile: Any, *, quiet: bool = False):
        self.profile = profile
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False)
        # CI logs are no terminal: rich would wrap the tables at 80 columns
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self._live: Live | None = None
        self._last: dict[str, tuple[float, int, int, int]] = {}  # policy -> (t, ops, errs, meta)
        self._rates: dict[str, tuple[float, float, float]] = {}
        self._faults_seen: set[object] = set()  # by injection instant (or id if skipped)
        self._fault_lines: list[str] = []
        self._next_plain = 0.0

    def started(self, meta: tuple[str, ...], workers: int) -> None:
        p, w = self.profile, self.profile.workload
        where = f"{workers} Locust workers" if workers else "one local Locust process"
        self.say(f"pegbench run {p.name}: meta {', '.join(meta)}; policies "
                 f"{', '.join(p.policies.compare)}; {w.users} users/policy × {w.rate_per_user:g} "
                 f"ops/s; {w.duration_s:g} s (warm-up {w.warmup_s:g} s); {where}")
        if self.err.is_terminal and not self.quiet:
            self._live = Live(console=self.err, refresh_per_second=2, transient=True)
            self._live.start()

    def say(self, message: str, *, always: bool = False) -> None:
        """One line of progress (``always``: even when quiet)."""
        if self._live is not None:
            self._live.console.print(message)
        elif always or not self.quiet:
            self.err.print(message)

    def tick(self, elapsed_s: float, session: Any, faults: list) -> None:
        """Called about once a second while the load runs."""
        self._update_rates(session.live_state())
        for event in faults:
            # A fault shows up first as the relay saw it, later as the controller's record.
            key = event.id if event.skipped else round(event.t_inject, 3)
            if key not in self._faults_seen:
                self._faults_seen.add(key)
                if event.skipped:
                    what = f"skipped ({event.skip_reason})"
                else:  # kind and node are known once the controller's record is final
                    kind = event.kind if event.kind not in ("", "?") else "injected"
                    node = f" on {event.node}" if event.node not in ("", "?") else ""
                    what = f"{kind}{node}, partitions {list(event.affected_partitions)}"
                line = f"[{elapsed_s:6.1f} s] fault {event.id}: {what}"
                self._fault_lines.append(line)
                self.say(line)
        total = self.profile.workload.duration_s
        if self._live is not None:
            self._live.update(self._render(elapsed_s, total))
        elif not self.quiet and self._rates and elapsed_s >= self._next_plain:
            self._next_plain = elapsed_s + PLAIN_EVERY_S
            rates = "; ".join(f"{name} {ops:.0f} ops/s, {err:.1%} errors, {meta:.1f} meta q/s"
                              for name, (ops, err, meta) in self._rates.items())
            self.err.print(f"[{elapsed_s:6.1f}/{total:g} s] {rates}")

    def _update_rates(self, state: Any) -> None:
        now = time.monotonic()
        for name, p in state.policies.items():
            errors = p.ops - p.outcomes.get("ok", 0)
            last = self._last.get(name)
            self._last[name] = (now, p.ops, errors, p.meta_queries)
            if last is None or now <= last[0] or p.ops < last[1]:  # first look, or a reset
                continue
            dt, d_ops = now - last[0], p.ops - last[1]
            self._rates[name] = (d_ops / dt, (errors - last[2]) / d_ops if d_ops else 0.0,
                                 (p.meta_queries - last[3]) / dt)

    def _render(self, elapsed_s: float, total_s: float) -> Group:
        table = Table(box=None, pad_edge=False)
        for column in ("policy", "ops/s", "errors", "meta q/s"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for name, (ops, err, meta) in self._rates.items():
            table.add_row(name, f"{ops:.0f}", f"{err:.1%}", f"{meta:.1f}")
        header = Text(f"{elapsed_s:6.1f} / {total_s:g} s")
        bar = ProgressBar(total=total_s, completed=min(elapsed_s, total_s), width=40)
        return Group(header, bar, table, *[Text(line) for line in self._fault_lines[-5:]])

    def finished(self, results: dict, out_dir: Path, report: Path | None) -> None:
        """The verdict, the headline numbers, and where the files are (stdout)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        table = Table(title="per policy", box=None)
        for column in ("policy", "ops", "error rate", "TTR-first p50/p99 ms", "recovered",
                       "client lag p99 ms", "meta q/s", "attempts/op"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for name, p in results["policies"].items():
            ttr = p.get("ttr_first_ms") or {}
            lag = p.get("client_lag_ms") or {}
            table.add_row(name, str(p.get("ops")), _pct(p.get("error_rate")),
                          f"{_num(ttr.get('p50'))}/{_num(ttr.get('p99'))}",
                          f"{ttr.get('recovered', 0)}/{ttr.get('n', 0)}", _num(lag.get("p99")),
                          _num(p.get("meta_queries_per_s"), 1), _num(p.get("attempts_per_op"), 2))
        self.out.print(table)
        d = results.get("durability") or {}
        self.out.print(f"durability: {d.get('acked')} acknowledged writes, {d.get('verified')} "
                       f"verified, {d.get('lost')} lost")
        for check in results["slo"]["checks"]:
            self.out.print(f"SLO {check['name']}: {check['value']!r} vs {check['threshold']} → "
                           f"{_verdict(check['passed'])}")
        load = results.get("load_generator") or {}
        if load.get("saturated"):
            self.out.print(f"the load generator was its own bottleneck: {load.get('reason')}")
        self.out.print(f"verdict: {slo_verdict(results).upper()}")
        self.out.print(f"results: {out_dir}/results.json" + (f", report: {report}" if report else ""))
        sys.stdout.flush()


def _num(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.2%}"


def _verdict(passed: Any) -> str:
    return {True: "PASS", False: "FAIL"}.get(passed, "UNKNOWN")
