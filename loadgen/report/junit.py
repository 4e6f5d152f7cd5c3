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
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ..metrics.slo import FAIL, UNKNOWN, incomplete_reason, slo_unknown_reason, slo_verdict

SELF_CHECK, RUN_COMPLETE, VERDICT_CASE = "load generator kept up", "run complete", "verdict"


def _case(root: ET.Element, suite: str, name: str, kind: str | None = None,
          message: str = "") -> None:
    """One ``<testcase>``; ``kind`` "failure" or "error" adds that child with ``message``."""
    case = ET.SubElement(root, "testcase", classname=suite, name=name)
    if kind is not None:
        ET.SubElement(case, kind, message=message).text = message


def _check_detail(check: Mapping[str, Any]) -> str:
    detail = (f"value {json.dumps(check.get('value'))}, threshold "
              f"{json.dumps(check.get('threshold'))}")
    return detail + (f": {check['details']}" if check.get("details") else "")


def _incomplete(results: Mapping[str, Any]) -> str:
    workers = results.get("workers")
    missing = workers.get("missing") if isinstance(workers, Mapping) else None
    return incomplete_reason(results.get("interrupted") is True,
                             missing if isinstance(missing, list) else ())


def junit_xml(results: Mapping[str, Any], *, suite: str = "pegbench") -> str:
    """The JUnit XML document of ``results``' verdict (see the module docstring)."""
    slo = results.get("slo") if isinstance(results.get("slo"), Mapping) else {}
    root = ET.Element("testsuite", name=suite)
    for check in slo.get("checks") or []:
        passed, detail = check.get("passed"), _check_detail(check)
        if passed is True:
            _case(root, suite, str(check.get("name")))
        elif passed is False:
            _case(root, suite, str(check.get("name")), "failure", detail)
        else:  # null, or "unknown" in files before booleans stayed booleans
            _case(root, suite, str(check.get("name")), "error", f"unknown: {detail}")
    load = results.get("load_generator")
    if isinstance(load, Mapping):
        if load.get("saturated"):
            _case(root, suite, SELF_CHECK, "error", str(load.get("reason") or "saturated"))
        else:
            _case(root, suite, SELF_CHECK)
    if "interrupted" in results or isinstance(results.get("workers"), Mapping):
        incomplete = _incomplete(results)
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


def write_junit(path: str | os.PathLike[str], results: Mapping[str, Any], *,
                suite: str = "pegbench") -> Path:
    """Write :func:`junit_xml` to ``path``; returns it."""
    path = Path(path)
    path.write_text(junit_xml(results, suite=suite), encoding="utf-8")
    return path
