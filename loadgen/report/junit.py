"""``junit.xml``: one test case per SLO check, plus the load generator's self-check, for CI.

A check that failed is a ``<failure>``; one whose verdict is unknown (its metric is missing or
it raised) is an ``<error>``: not a pass. The self-check is a case of its own, "load generator
kept up", an ``<error>`` with the reason when ``load_generator.saturated`` (the generator was
its own bottleneck, or its schedule did not go out); "run complete" is an ``<error>`` when
the run was interrupted or a worker's report is missing. A verdict worse than every case
shows (a hand-edited or old file) adds a case "verdict". So CI sees red exactly when
``pegbench run`` exits 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

from ..metrics.results import Results, SloCheck
from ..metrics.slo import FAIL, UNKNOWN, incomplete_reason, slo_unknown_reason, slo_verdict

SELF_CHECK, RUN_COMPLETE, VERDICT_CASE = "load generator kept up", "run complete", "verdict"


def _case(root: ET.Element, suite: str, name: str, kind: str | None = None,
          message: str = "") -> None:
    """One ``<testcase>``; ``kind`` "failure" or "error" adds that child with ``message``."""
    case = ET.SubElement(root, "testcase", classname=suite, name=name)
    if kind is not None:
        ET.SubElement(case, kind, message=message).text = message


def _check_detail(check: SloCheck) -> str:
    detail = f"value {json.dumps(check.value)}, threshold {json.dumps(check.threshold)}"
    return detail + (f": {check.details}" if check.details else "")


def junit_xml(results: Results, *, suite: str = "pegbench") -> str:
    """The JUnit XML document of ``results``' verdict (see the module docstring)."""
    facts = results.facts
    root = ET.Element("testsuite", name=suite)
    for check in results.slo.checks if results.slo is not None else ():
        passed, detail = check.passed, _check_detail(check)
        if passed is True:
            _case(root, suite, str(check.name))
        elif passed is False:
            _case(root, suite, str(check.name), "failure", detail)
        else:  # null, or "unknown" in files before booleans stayed booleans
            _case(root, suite, str(check.name), "error", f"unknown: {detail}")
    load = facts.load_generator
    if load is not None:
        if load.saturated:
            _case(root, suite, SELF_CHECK, "error", str(load.reason or "saturated"))
        else:
            _case(root, suite, SELF_CHECK)
    if facts.interrupted is not None or facts.workers is not None:
        incomplete = incomplete_reason(facts)
        _case(root, suite, RUN_COMPLETE, "error" if incomplete else None, incomplete)
    verdict = slo_verdict(results)
    kinds = [c[0].tag for c in root if len(c)]
    # junit.xml must never read greener than the exit code, whatever wrote the file.
    if verdict == UNKNOWN and "error" not in kinds:
        _case(root, suite, VERDICT_CASE, "error", slo_unknown_reason(results))
    elif verdict == FAIL and "failure" not in kinds:
        _case(root, suite, VERDICT_CASE, "failure", "the verdict is fail")
    kinds = [c[0].tag for c in root if len(c)]
    root.set("tests", str(len(root)))
    root.set("failures", str(kinds.count("failure")))
    root.set("errors", str(kinds.count("error")))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | os.PathLike[str], results: Results, *,
                suite: str = "pegbench") -> Path:
    """Write :func:`junit_xml` to ``path``; returns it."""
    path = Path(path)
    path.write_text(junit_xml(results, suite=suite), encoding="utf-8")
    return path
