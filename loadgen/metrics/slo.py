"""SLO checks, composed Jepsen-style: each yields a verdict and details; verdicts merge.

A verdict is ``True``, ``False`` or ``"unknown"``; merged, false > unknown > true. A check
that raises, or whose metric is missing, is ``"unknown"``: never passed by accident.

In ``results.json`` the run's verdict is a name, ``slo.verdict`` = ``"pass" | "fail" |
"unknown"`` (with ``slo.unknown_reason`` when unknown), and every ``passed`` is a JSON
boolean, or null where unknown: a string "unknown" would be truthy. The verdict is settled
once, when the results are built (:func:`settle`: the checks, then :func:`conclude`, unknown
when the test bench was its own bottleneck or the run is incomplete). :func:`slo_verdict`
reads the verdict of any results file, old ones included; read it nowhere else.

Spec (a profile's ``[slo]`` table): ``{"<metric path>": {"min": x} | {"max": y} | both}``.
A metric path is dotted into ``results.json``; when its first part names a policy it starts
at ``policies.<name>`` (``"failover.client_lag_ms.p99"``), else at the root
(``"durability.lost"``). A percentile that is null because it landed on a censored sample
stands for +∞ (it fails a ``max``); any other null is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Union

from ..errors import ConfigError
from .results import Results, RunFacts, Slo, SloCheck

UNKNOWN = "unknown"
Verdict = Union[bool, str]           # True | False | "unknown"
PASS, FAIL = "pass", "fail"
VERDICTS = (PASS, FAIL, UNKNOWN)     # slo.verdict in results.json
#: The first words of ``slo.unknown_reason`` when the load generator's self-check flagged the
#: run (its own CPU or hub, or a schedule not sent because the generator or the cluster fell
#: behind: the reason that follows says which).
SATURATED_REASON = "the test bench was its own bottleneck"
BOUNDS = ("min", "max")


def verdict_name(verdict: Verdict | None) -> str:
    """``"pass"``, ``"fail"`` or ``"unknown"`` for a verdict (True / False / "unknown") or
    a name; anything else (None, a stray value) is ``"unknown"``."""
    if verdict is True or verdict == PASS:
        return PASS
    if verdict is False or verdict == FAIL:
        return FAIL
    return UNKNOWN


def passed_json(verdict: Verdict | None) -> bool | None:
    """A verdict as results.json's ``passed``: true, false, or null where unknown."""
    return {PASS: True, FAIL: False}.get(verdict_name(verdict))


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``passed`` is its verdict."""

    name: str
    passed: Verdict
    value: Any = None
    threshold: Mapping[str, float] = field(default_factory=dict)
    details: str = ""

    def entry(self) -> SloCheck:
        """The ``slo.checks[]`` entry of ``results.json``."""
        value = self.value
        if isinstance(value, float) and math.isinf(value):
            value = None            # JSON has no infinity; details say "+inf"
        return SloCheck(name=self.name, value=value, threshold=dict(self.threshold),
                        passed=passed_json(self.passed), details=self.details)


Check = Callable[[Mapping[str, Any]], CheckResult]


def merge_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """false > unknown > true; no verdicts at all is true."""
    seen = list(verdicts)
    if any(v is False for v in seen):
        return False
    if any(v is not True for v in seen):
        return UNKNOWN
    return True


def resolve_metric(results: Mapping[str, Any], path: str) -> tuple[Any, Mapping[str, Any]]:
    """``(value, the dict holding it)`` at dotted ``path``; KeyError when missing."""
    parts = path.split(".")
    node: Any = results
    policies = results.get("policies", {})
    if parts[0] not in results and isinstance(policies, Mapping) and parts[0] in policies:
        node = policies
    parent: Mapping[str, Any] = node
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"no metric {path!r} (missing {part!r})")
        parent, node = node, node[part]
    return node, parent


@dataclass(frozen=True)
class ThresholdCheck:
    """``min <= metric <= max`` on one metric path of ``results.json``."""

    name: str
    min: float | None = None
    max: float | None = None

    @property
    def threshold(self) -> dict[str, float]:
        """The bounds that are set, as ``{min, max}``."""
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def __call__(self, results: Mapping[str, Any]) -> CheckResult:
        try:
            value, parent = resolve_metric(results, self.name)
        except KeyError as exc:
            return CheckResult(self.name, UNKNOWN, None, self.threshold, str(exc.args[0]))
        details = ""
        if value is None and parent.get("censored"):
            value, details = math.inf, "+inf: the percentile lands on a censored sample"
        if value is None:
            return CheckResult(self.name, UNKNOWN, None, self.threshold, "no value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return CheckResult(self.name, UNKNOWN, value, self.threshold,
                               f"not a number: {type(value).__name__}")
        ok = ((self.min is None or value >= self.min)
              and (self.max is None or value <= self.max))
        if not ok:
            details = details or f"{value} outside {self.threshold}"
        return CheckResult(self.name, ok, value, self.threshold, details)


def checks_from_spec(spec: Mapping[str, Mapping[str, float]], *,
                     source: str = "slo") -> list[ThresholdCheck]:
    """One :class:`ThresholdCheck` per spec entry; ConfigError on a malformed entry."""
    checks = []
    for name, bounds in spec.items():
        key = f"{source}.{name}" if source else name
        if not isinstance(bounds, Mapping) or not bounds:
            raise ConfigError("", key, "a table with min and/or max")
        unknown = set(bounds) - set(BOUNDS)
        if unknown:
            raise ConfigError("", key, f"only min and max, not {sorted(unknown)}")
        for bound, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError("", f"{key}.{bound}", "a number")
        checks.append(ThresholdCheck(name, bounds.get("min"), bounds.get("max")))
    return checks


def run_checks(checks: Iterable[Check], results: Mapping[str, Any]) -> list[CheckResult]:
    """Every check's result; one that raises is unknown, with the exception as details."""
    out = []
    for check in checks:
        name = getattr(check, "name", getattr(check, "__name__", repr(check)))
        try:
            result = check(results)
        except Exception as exc:  # noqa: BLE001 - a crashing check is unknown, not passed
            result = CheckResult(name, UNKNOWN, None, getattr(check, "threshold", {}),
                                 f"check raised {type(exc).__name__}: {exc}")
        out.append(result)
    return out


def evaluate(spec: Mapping[str, Mapping[str, float]], document: Mapping[str, Any],
             extra: Iterable[Check] = ()) -> Slo:
    """The checks' ``slo`` for ``spec`` (+ ``extra``) over ``document`` (results.json as
    written, :meth:`Results.to_dict`); unknown names the checks that had no verdict."""
    checks = run_checks([*checks_from_spec(spec), *extra], document)
    unknown = [c for c in checks if c.passed is not True and c.passed is not False]
    reason = "; ".join(f"SLO check {c.name} has no verdict ({c.details or 'no value'})"
                       for c in unknown)
    return slo_block(merge_verdicts(c.passed for c in checks), [c.entry() for c in checks],
                     reason)


def slo_block(verdict: Verdict, checks: Iterable[SloCheck], unknown_reason: str = "") -> Slo:
    """The ``slo`` object of results.json; ``unknown_reason`` is kept only when unknown."""
    name = verdict_name(verdict)
    return Slo(verdict=name, passed=passed_json(name),
               unknown_reason=(unknown_reason or "unknown") if name == UNKNOWN else None,
               checks=tuple(checks))


def with_unknown(slo: Slo, reason: str) -> Slo:
    """``slo`` made unknown for ``reason`` (e.g. the load generator was its own bottleneck),
    whatever its checks said; a reason it already had is kept after the new one."""
    before = slo.unknown_reason if slo.verdict == UNKNOWN else None
    reasons = [r for r in (reason, before) if r]
    return slo_block(UNKNOWN, slo.checks, "; ".join(reasons))


def incomplete_reason(facts: RunFacts) -> str:
    """Why a run's numbers are incomplete (the run was interrupted, a worker's final report is
    missing), "" when they are not (``slo.unknown_reason``)."""
    reasons = ["the run was interrupted"] if facts.interrupted is True else []
    missing = facts.workers.missing if facts.workers is not None else ()
    if missing:
        reasons.append(f"no final report from workers {', '.join(map(str, missing))}")
    return "; ".join(reasons)


def conclude(slo: Slo, facts: RunFacts) -> Slo:
    """The run's final ``slo``: the checks' verdict, made unknown with its reason when the run
    is incomplete (:func:`incomplete_reason`) or the load generator's self-check flagged it
    (``load_generator.saturated``: its own CPU or hub, or a schedule not sent)."""
    incomplete = incomplete_reason(facts)
    if incomplete:
        slo = with_unknown(slo, incomplete)
    load = facts.load_generator
    if load is not None and load.saturated:
        slo = with_unknown(slo, f"{SATURATED_REASON}: {load.reason or '?'}")
    return slo


def settle(results: Results, spec: Mapping[str, Mapping[str, float]]) -> Results:
    """``results`` with its ``slo``: ``spec``'s checks over the rest of the document,
    :func:`conclude`-d by its facts."""
    document = results.to_dict()
    document.pop("slo", None)
    return replace(results, slo=conclude(evaluate(spec, document), results.facts))


def slo_verdict(results: Results) -> str:
    """The run's verdict, ``"pass" | "fail" | "unknown"``, from any results.json: ``slo.verdict``
    when present; else (files before it) ``slo.passed`` true / false / "unknown", made
    unknown if ``load_generator.saturated``. No ``slo`` object at all is unknown."""
    slo = results.slo
    if slo is None:
        return UNKNOWN
    if slo.verdict in VERDICTS:
        return str(slo.verdict)
    load = results.facts.load_generator
    if load is not None and load.saturated is True:
        return UNKNOWN
    return verdict_name(slo.passed)


def slo_unknown_reason(results: Results) -> str:
    """Why the verdict is unknown ("" when it is not), from any results.json."""
    if slo_verdict(results) != UNKNOWN:
        return ""
    slo, load = results.slo, results.facts.load_generator
    reason = slo.unknown_reason if slo is not None else None
    if isinstance(reason, str) and reason:
        return reason
    if load is not None and load.saturated is True:
        return f"{SATURATED_REASON}: {load.reason or '?'}"
    if results.facts.interrupted is True:
        return "the run was interrupted"
    if slo is None:
        return "no slo object in results.json"
    unknown = [c.name for c in slo.checks if c.passed not in (True, False)]
    return f"SLO checks with no verdict: {', '.join(map(str, unknown))}" if unknown else "unknown"
