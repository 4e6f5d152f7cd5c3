#!/usr/bin/env python3
"""Did a fault hold up the partitions it did not hit? One line per (run, fault): for each
policy, ok writes/s on the partitions whose primary the fault did not hit, during the fault
÷ the 10 s before it (whole buckets only, the before-window clipped to the analysed
window), from each run folder's ``timeline.json``. With true open-loop arrivals these stay
near 1; a load generator that blocks on a dead partition drives them towards 0.

    python3 scripts/healthy_partitions.py reports/quick-*/
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

BEFORE_S = 10.0


def ok_count(rows: list[tuple[float, float, int]], t_from: float, t_to: float) -> int:
    """ok writes in the buckets lying wholly inside [t_from, t_to)."""
    return sum(ok for t, width, ok in rows if t >= t_from and t + width <= t_to)


def ratios(timeline: dict) -> list[tuple[dict, dict[str, float | None]]]:
    """(fault, {policy: during/before ratio or None}) for every injected fault."""
    out = []
    for fault in timeline["faults"]:
        if fault["skipped"] or fault["t_heal"] is None:
            continue
        a, b = fault["t_inject"], fault["t_heal"]
        during_from, during_to = math.ceil(a), math.floor(b)
        before_from = max(math.ceil(a - BEFORE_S), math.ceil(timeline["t_start"]))
        before_to = math.floor(a)
        per_policy: dict[str, float | None] = {}
        for name, policy in sorted(timeline["policies"].items()):
            during = before = 0.0
            for key, series in policy["partitions"].items():
                if int(key.rsplit(":", 1)[1]) in fault["affected_partitions"]:
                    continue
                rows = list(zip(series["t"], series["width_s"], series["ok"]))
                during += ok_count(rows, during_from, during_to) / max(during_to - during_from, 1e-9)
                before += ok_count(rows, before_from, before_to) / max(before_to - before_from, 1e-9)
            per_policy[name] = during / before if before else None
        out.append((fault, per_policy))
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for run in argv:
        path = Path(run) / "timeline.json"
        try:
            timeline = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
        for fault, per_policy in ratios(timeline):
            cells = ", ".join(f"{name} {'-' if r is None else f'{r:.2f}'}"
                              for name, r in per_policy.items())
            print(f"{run} fault {fault['id']} {fault['kind']} {fault['node']}: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
