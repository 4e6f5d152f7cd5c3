"""The SLO verdict as a process exit code (DESIGN.md: 0 ok, 1 verdict failed).

Locust exits 1 whenever any request failed, which in a fault run is always; the orchestration
sets ``environment.process_exit_code`` from the verdict instead (:func:`set_exit_code`).
A verdict is ``True``, ``False`` or ``"unknown"`` (:mod:`loadgen.metrics.slo`); a load
generator that was its own bottleneck (:mod:`loadgen.selfcheck`) makes it ``"unknown"``.
"""

from __future__ import annotations

from typing import Any

from .metrics.slo import UNKNOWN, Verdict
from .selfcheck import Saturation

EXIT_OK, EXIT_VERDICT, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


def effective_verdict(verdict: Verdict | None, saturation: Saturation | None = None) -> Verdict | None:
    """``verdict``, or ``"unknown"`` if the load generator was saturated."""
    if saturation is not None and saturation.saturated and verdict is not None:
        return UNKNOWN
    return verdict


def exit_code_for(verdict: Verdict | None, *, saturation: Saturation | None = None) -> int:
    """true → 0; false → 1; unknown → 1 (not a pass, for CI); None (no verdict: a plain
    Locust run with no analysis) → 0. A saturated generator turns a verdict into unknown."""
    verdict = effective_verdict(verdict, saturation)
    if verdict is None or verdict is True:
        return EXIT_OK
    return EXIT_VERDICT


def set_exit_code(environment: Any, verdict: Verdict | None, *,
                  saturation: Saturation | None = None) -> int:
    """Set ``environment.process_exit_code`` from the verdict; returns the code."""
    environment.process_exit_code = exit_code_for(verdict, saturation=saturation)
    return environment.process_exit_code
