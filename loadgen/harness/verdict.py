"""The SLO verdict as a process exit code (DESIGN.md: 0 ok, 1 verdict failed or unknown).

Locust exits 1 whenever any request failed, which in a fault run is always; the orchestration
sets ``environment.process_exit_code`` from the verdict instead (:func:`set_exit_code`).
A verdict is ``True``, ``False`` or ``"unknown"`` (:mod:`loadgen.metrics.slo`), or its name
in results.json (``"pass" | "fail" | "unknown"``); a load generator that was its own
bottleneck (:mod:`loadgen.load.selfcheck`) or a run that did not complete makes it unknown.
The exit code, ``slo.verdict``, junit.xml and the report's badge all derive from the one
``slo`` object settled when the results are built (:func:`loadgen.metrics.slo.settle`).
"""

from __future__ import annotations

from typing import Any

from ..exitcodes import EXIT_OK, EXIT_VERDICT
from ..load.selfcheck import Saturation
from ..metrics.slo import PASS, UNKNOWN, Verdict, verdict_name


def effective_verdict(verdict: Verdict | None, saturation: Saturation | None = None) -> Verdict | None:
    """``verdict``, or ``"unknown"`` if the load generator was saturated."""
    if saturation is not None and saturation.saturated and verdict is not None:
        return UNKNOWN
    return verdict


def exit_code_for(verdict: Verdict | None, *, saturation: Saturation | None = None) -> int:
    """true / "pass" → 0; false / "fail" → 1; unknown → 1 (not a pass, for CI); None (no
    verdict: a plain Locust run with no analysis) → 0. A saturated generator turns a verdict
    into unknown."""
    verdict = effective_verdict(verdict, saturation)
    if verdict is None or verdict_name(verdict) == PASS:
        return EXIT_OK
    return EXIT_VERDICT


def set_exit_code(environment: Any, verdict: Verdict | None, *,
                  saturation: Saturation | None = None) -> int:
    """Set ``environment.process_exit_code`` from the verdict; returns the code."""
    environment.process_exit_code = exit_code_for(verdict, saturation=saturation)
    return environment.process_exit_code
