"""pyproject.toml declares every third-party package that loadgen/ imports, with a cap on
hdrhistogram while a private hdrh API is used."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
#: Import names whose distribution is not installed here (so packages_distributions cannot
#: name it), or whose name differs from the distribution's.
KNOWN_DISTRIBUTIONS = {"hdrh": "hdrhistogram", "yaml": "pyyaml", "tomli": "tomli",
                       "zmq": "pyzmq", "flask_login": "flask-login", "pypegasus": "pypegasus3"}
#: Client adapters run in their client's venv (loadgen.adapters.venvs), not in pegbench's
#: environment: their imports are declared by that client's pinned packages instead.
ADAPTER_MODULES = {"adapters/pypegasus.py": "pypegasus"}


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, str]:
    """Canonical distribution name -> its requirement string, from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {}
    for requirement in project["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"unparseable requirement {requirement!r}"
        names[canonical(match.group(1))] = requirement
    return names


def top_level_imports(root: Path) -> dict[str, set[str]]:
    """Absolute imports' first names in the files under ``root`` (at any nesting, e.g.
    inside a function), each with the files (relative to ``root``) that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(root)))
    return found


def third_party(imports: dict[str, set[str]], own: str = "loadgen") -> dict[str, set[str]]:
    return {name: files for name, files in imports.items()
            if name != own and name not in sys.stdlib_module_names}


def distributions_of(import_name: str) -> set[str]:
    """Canonical names of the distributions that provide ``import_name``."""
    installed = importlib.metadata.packages_distributions().get(import_name) or []
    known = KNOWN_DISTRIBUTIONS.get(import_name)
    return {canonical(d) for d in installed} | ({canonical(known)} if known else set()) \
        or {canonical(import_name)}


def undeclared(imports: dict[str, set[str]], names: dict[str, str]) -> list[str]:
    return [f"{name} (imported by {', '.join(sorted(files))}; distribution "
            f"{' or '.join(sorted(distributions_of(name)))})"
            for name, files in sorted(third_party(imports).items())
            if not distributions_of(name) & set(names)]


def without(imports: dict[str, set[str]], files: set[str]) -> dict[str, set[str]]:
    """``imports`` as if ``files`` did not exist."""
    kept = {name: users - files for name, users in imports.items()}
    return {name: users for name, users in kept.items() if users}


def test_every_third_party_import_under_loadgen_is_declared():
    imports = without(top_level_imports(REPO / "loadgen"), set(ADAPTER_MODULES))
    assert {"locust", "gevent", "hdrh", "flask"} <= set(imports)    # the scan sees them
    missing = undeclared(imports, declared())
    assert not missing, "imported but not in pyproject.toml dependencies: " + "; ".join(missing)


@pytest.mark.parametrize("module, client", sorted(ADAPTER_MODULES.items()))
def test_an_adapter_imports_only_what_its_client_venv_pins(module, client):
    from loadgen.adapters import venvs

    pinned = {canonical(re.split(r"[=<>!~ ;\[]", spec, maxsplit=1)[0]): spec
              for spec in venvs.CLIENTS[client].packages}
    imports = top_level_imports(REPO / "loadgen")
    mine = {name: {module} for name, users in imports.items() if module in users}
    assert third_party(mine), "the scan sees no import of its client"
    missing = undeclared(mine, pinned)
    assert not missing, f"imported but not pinned by client {client}: " + "; ".join(missing)


def test_the_check_names_an_undeclared_import(tmp_path):
    # the check itself: flask imported inside a function, and no flask declared
    (tmp_path / "mod.py").write_text("import os\n\ndef f():\n    from flask import Response\n")
    imports = top_level_imports(tmp_path)
    assert set(third_party(imports)) == {"flask"}
    names = {k: v for k, v in declared().items() if k != "flask"}
    assert undeclared(imports, names) == [
        "flask (imported by mod.py; distribution flask)"]
    assert not undeclared(imports, declared())
    assert distributions_of("hdrh") == {"hdrhistogram"}


def test_hdrhistogram_is_capped_while_a_private_hdrh_api_is_used():
    uses_private = "set_internal_tacking_values" in (REPO / "loadgen/metrics/hdr.py").read_text()
    requirement = declared()["hdrhistogram"]
    if uses_private:
        assert "<" in requirement, requirement
    assert ">=" in requirement, requirement
