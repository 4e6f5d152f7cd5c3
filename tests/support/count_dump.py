"""Each Locust process's own counts as JSON, for tests: a second locustfile.

``locust -f loadgen/locustfile.py,tests/support/count_dump.py --pegbench-dump-dir DIR`` writes
``DIR/<role>-<label>-<when>.json`` when the process quits (``when`` = ``quit``) and, on a
worker, right after its final report went to the master (``final``). A master's file holds
what it merged from its workers (and which workers answered), a worker's or a local
runner's its own counts: a test compares the two.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from locust import events


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--pegbench-dump-dir", default=None, metavar="DIR",
                        help="(tests) write this process's counts as JSON into DIR")


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    out = getattr(environment.parsed_options, "pegbench_dump_dir", None)
    harness = getattr(environment, "pegbench", None)   # set by loadgen.locustfile's init
    if not out or harness is None:
        return
    harness.events.final_reported.add_listener(lambda report: dump(harness, out, "final"))
    environment.events.quitting.add_listener(lambda **_kw: dump(harness, out, "quit"))


def dump(harness: Any, out: str, when: str) -> Path:
    """Write ``harness``'s counts (a master: the merged ones) into ``out``."""
    data: dict[str, Any] = {"role": harness.role, "label": harness.workload.label, "when": when,
                            "pid": os.getpid(), "t": time.monotonic()}
    if harness.collector is not None:
        final = harness.collector.report(missing=())
        data["counts"] = _counts(final.state, final.missed)
        data["workers_final"] = list(final.workers)
        data["workers_known"] = sorted(harness.collector.workers())
    else:
        data["counts"] = harness.workload.counts()
    path = Path(out) / f"{harness.role}-{harness.workload.label}-{when}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return path


def _counts(state: Any, missed: Any) -> dict[str, Any]:
    return {name: {"ops": p.ops, "outcomes": dict(p.outcomes), "attempts": p.attempts,
                   "meta_queries": p.meta_queries, "missed": missed.get(name, 0),
                   "dropped": p.dropped_total}
            for name, p in state.policies.items()}
