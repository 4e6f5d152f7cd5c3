"""A run folder, read back: ``results.json`` (required), ``timeline.json``, ``faults.jsonl``
and the ``.hlog`` interval logs (optional), checked enough to draw from.

Everything a report shows comes from these files, so a report can be regenerated from the
folder alone. An unreadable or foreign file raises :class:`RunInputError` naming the file and
what is wrong (the commands exit 2 on it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PegbenchError
from ..metrics.hlog import log_name
from ..metrics.outputs import FAULTS_JSONL, RESULTS_JSON, TIMELINE_FORMAT, TIMELINE_JSON, TIMELINE_VERSION
from ..metrics.results import RESULTS_FORMAT, RESULTS_VERSION, Results

LATENCY_KINDS = ("service", "response")


class RunInputError(ConfigError):
    """A run file that cannot be used: ``path`` and ``problem`` (an input error, exit 2)."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path, self.problem = str(path), problem
        self.file, self.key, self.expected = str(path), "", problem
        PegbenchError.__init__(self, f"{path}: {problem}")


@dataclass(frozen=True)
class RunData:
    """One run folder's contents: results.json typed, the others as plain data."""

    directory: Path
    results: Results
    timeline: dict[str, Any] | None = None        # None: no timeline.json
    fault_log: list[dict[str, Any]] | None = None  # None: no faults.jsonl
    #: (policy, op, "service" | "response") -> its .hlog file, for those present
    hlogs: Mapping[tuple[str, str, str], Path] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunInputError(path, "not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunInputError(path, f"cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunInputError(path, f"not valid JSON ({exc})") from None


def _check_format(path: Path, doc: Any, expected: str, version: int) -> None:
    if not isinstance(doc, dict):
        raise RunInputError(path, f"expected a JSON object of format {expected!r}")
    if doc.get("format") != expected:
        raise RunInputError(path, f"format is {doc.get('format')!r}, expected {expected!r}")
    if doc.get("version") != version:
        raise RunInputError(path, f"version is {doc.get('version')!r}, expected {version}")
    if not isinstance(doc.get("policies"), dict):
        raise RunInputError(path, "no 'policies' object")


def read_results(path: str | os.PathLike[str]) -> Results:
    """``results.json`` at ``path``, checked (format, version, policies, run, faults) and
    read (:meth:`Results.from_dict`)."""
    path = Path(path)
    doc = _read_json(path)
    _check_format(path, doc, RESULTS_FORMAT, RESULTS_VERSION)
    if not isinstance(doc.get("run"), dict):
        raise RunInputError(path, "no 'run' object")
    if not isinstance(doc.get("faults", []), list):
        raise RunInputError(path, "'faults' is not a list")
    for name, block in doc["policies"].items():
        if not isinstance(block, dict):
            raise RunInputError(path, f"policies.{name} is not an object")
    try:
        return Results.from_dict(doc)
    except (ValueError, TypeError, AttributeError) as exc:
        raise RunInputError(path, f"not shaped as results.json ({exc})") from None


def read_timeline(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``timeline.json`` at ``path``, checked: format, version, policies."""
    path = Path(path)
    doc = _read_json(path)
    _check_format(path, doc, TIMELINE_FORMAT, TIMELINE_VERSION)
    return doc


def read_fault_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``faults.jsonl``; a bad line is named by its number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunInputError(path, f"cannot be read ({exc})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunInputError(path, f"line {number} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise RunInputError(path, f"line {number} is not a JSON object")
        records.append(record)
    return records


def results_path(location: str | os.PathLike[str]) -> Path:
    """``location/results.json`` for a folder, ``location`` itself for a file."""
    location = Path(location)
    if location.is_dir():
        return location / RESULTS_JSON
    if not location.exists():
        raise RunInputError(location, "not found (expected a run folder or its results.json)")
    return location


def find_hlogs(directory: Path, results: Results) -> dict[tuple[str, str, str], Path]:
    """The ``.hlog`` files of every (policy, op, kind) that ``results.json`` names."""
    found = {}
    for policy, block in results.policies.items():
        for op in block.latency_us or {}:
            for kind in LATENCY_KINDS:
                path = directory / log_name(policy, op, kind)
                if path.is_file():
                    found[(policy, op, kind)] = path
    return found


def load_run(directory: str | os.PathLike[str]) -> RunData:
    """Read a run folder (see the module docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        problem = "not found" if not directory.exists() else "not a directory (expected a run folder)"
        raise RunInputError(directory, problem)
    results = read_results(directory / RESULTS_JSON)
    timeline_file = directory / TIMELINE_JSON
    faults_file = directory / FAULTS_JSONL
    return RunData(
        directory=directory, results=results,
        timeline=read_timeline(timeline_file) if timeline_file.exists() else None,
        fault_log=read_fault_log(faults_file) if faults_file.exists() else None,
        hlogs=find_hlogs(directory, results))
