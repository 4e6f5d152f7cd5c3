"""``junit.xml``: one test case per SLO check, for CI systems.

A check that failed is a ``<failure>``; one whose verdict is unknown (its metric is missing,
it raised, or the load generator was its own bottleneck) is an ``<error>``: not a pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def junit_xml(results: dict[str, Any], *, suite: str = "pegbench") -> str:
    """The JUnit XML document of ``results``' SLO checks."""
    checks = results.get("slo", {}).get("checks", [])
    failures = sum(1 for c in checks if c.get("passed") is False)
    errors = sum(1 for c in checks if c.get("passed") not in (True, False))
    root = ET.Element("testsuite", name=suite, tests=str(len(checks)), failures=str(failures),
                      errors=str(errors))
    for check in checks:
        case = ET.SubElement(root, "testcase", classname=suite, name=check["name"])
        detail = (f"value {json.dumps(check.get('value'))}, threshold "
                  f"{json.dumps(check.get('threshold'))}")
        if check.get("details"):
            detail += f": {check['details']}"
        if check.get("passed") is False:
            ET.SubElement(case, "failure", message=detail).text = detail
        elif check.get("passed") is not True:
            ET.SubElement(case, "error", message=f"unknown: {detail}").text = detail
    load = results.get("load_generator") or {}
    if load.get("saturated"):
        ET.SubElement(root, "system-out").text = ("the load generator was its own bottleneck: "
                                                  f"{load.get('reason')}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | os.PathLike[str], results: dict[str, Any], *, suite: str = "pegbench") -> Path:
    """Write :func:`junit_xml` to ``path``; returns it."""
    path = Path(path)
    path.write_text(junit_xml(results, suite=suite), encoding="utf-8")
    return path
