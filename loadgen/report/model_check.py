"""A model checked against its real client: per fault, the model's TTR-first beside the real
client's, and their error counts, from run folders of a profile that runs both.

    python -m loadgen.report.model_check RUN_DIR [RUN_DIR ...] [--model pypegasus]
                                          [--real real:pypegasus]

A fault agrees when both recovered and the model's TTR-first (mean over the fault's affected
partitions) is within ``max(20 %, 300 ms)`` of the real client's; a run agrees when every
fault does and the model's error count is within 20 % of the real client's. Exit 0 if every
run agrees, 1 if one does not, 2 on bad input (a folder without the two rows).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..metrics.results import Results

#: The tolerances the issue sets: TTR-first within max(20 %, 300 ms), errors within 20 %.
TTR_RELATIVE, TTR_ABSOLUTE_MS, ERRORS_RELATIVE = 0.2, 300.0, 0.2


@dataclass(frozen=True)
class FaultCheck:
    """One fault: mean TTR-first over its affected partitions (None: not all recovered)."""

    fault: str
    kind: str
    model_ms: float | None
    real_ms: float | None

    @property
    def agrees(self) -> bool:
        if self.model_ms is None or self.real_ms is None:
            return False
        return abs(self.model_ms - self.real_ms) <= max(TTR_RELATIVE * self.real_ms, TTR_ABSOLUTE_MS)


@dataclass(frozen=True)
class RunCheck:
    """One run: its faults, and the two rows' error counts."""

    label: str
    faults: tuple[FaultCheck, ...]
    model_errors: int
    real_errors: int

    @property
    def errors_agree(self) -> bool:
        return abs(self.model_errors - self.real_errors) <= ERRORS_RELATIVE * self.real_errors

    @property
    def agrees(self) -> bool:
        return bool(self.faults) and all(f.agrees for f in self.faults) and self.errors_agree


def check(results: Results, model: str, real: str, label: str = "") -> RunCheck:
    """The comparison of ``model`` with ``real`` in one run (ValueError if a row is missing)."""
    missing = [row for row in (model, real) if row not in results.policies]
    if missing:
        raise ValueError(f"{label or 'results'}: no row {', '.join(missing)} "
                         f"(rows: {', '.join(results.policies)})")
    faults = []
    for f in results.faults:
        if f.skipped:
            continue
        faults.append(FaultCheck(str(f.id), str(f.kind), _mean_first(f.ttr.get(model, {})),
                                 _mean_first(f.ttr.get(real, {}))))
    return RunCheck(label, tuple(faults), results.policies[model].errors,
                    results.policies[real].errors)


def _mean_first(samples) -> float | None:
    if not samples or not all(s.recovered for s in samples.values()):
        return None
    return sum(s.first_ms for s in samples.values()) / len(samples)


def format_checks(checks: Sequence[RunCheck], model: str, real: str) -> str:
    """One line per run and fault, then the verdict."""
    def ms(v: float | None) -> str:
        return "not recovered" if v is None else f"{v:,.0f} ms"

    lines = [(f"model {model} vs real client {real}: TTR-first within max(20 %, 300 ms), "
              "errors within 20 %")]
    for c in checks:
        for f in c.faults:
            lines.append(f"  {c.label}  fault {f.fault} ({f.kind}): TTR-first model {ms(f.model_ms)}"
                         f", real {ms(f.real_ms)}  {'ok' if f.agrees else 'DIFFERS'}")
        lines.append(f"  {c.label}  errors: model {c.model_errors}, real {c.real_errors}  "
                     f"{'ok' if c.errors_agree else 'DIFFERS'}")
    lines.append("agree" if checks and all(c.agrees for c in checks) else "DIFFER")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadgen.report.model_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (results.json inside)")
    parser.add_argument("--model", default="pypegasus", help="the policy that models the client")
    parser.add_argument("--real", default="real:pypegasus", help="the real client's row")
    args = parser.parse_args(argv)
    checks = []
    for run in args.runs:
        try:
            results = Results.from_dict(json.loads((run / "results.json").read_text()))
            checks.append(check(results, args.model, args.real, label=run.name))
        except (OSError, ValueError, TypeError) as exc:
            print(f"error: {run}: {exc}", file=sys.stderr)
            return 2
    print(format_checks(checks, args.model, args.real))
    return 0 if all(c.agrees for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
