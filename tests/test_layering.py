"""The package layering of ``loadgen/``, read from the import statements of every module
(those inside functions too): which part may import which.

The client and the load model know nothing of Locust; the metrics touch no socket; the
report knows nothing of the client or the cluster; the benches sit on top. An import that
breaks a rule and is not among ``KNOWN`` fails the test, naming the module and the import.
``KNOWN`` lists the exceptions that remain, each with why; an entry that no longer occurs
fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

LOADGEN = Path(__file__).resolve().parents[1] / "loadgen"
SOCKETS = ("socket", "gevent.socket", "selectors", "ssl", "asyncio", "gevent.server")

#: part -> the loadgen parts it must not import (and third-party or stdlib modules it must
#: not import), by name prefix. A module follows the rule of the longest part it is in.
RULES: dict[str, tuple[str, ...]] = {
    "loadgen.pegasus": ("loadgen.config", "loadgen.faults", "loadgen.metrics", "loadgen.onebox",
                        "loadgen.load", "loadgen.harness", "loadgen.runner", "loadgen.bench",
                        "loadgen.report", "locust"),
    "loadgen.onebox": ("loadgen.config", "loadgen.faults", "loadgen.metrics", "loadgen.load",
                       "loadgen.harness", "loadgen.runner", "loadgen.bench", "loadgen.report",
                       "locust"),
    # The onebox as a fault-side Cluster: the one onebox module that knows faults and profiles.
    "loadgen.onebox.cluster": ("loadgen.metrics", "loadgen.load", "loadgen.harness",
                               "loadgen.runner", "loadgen.bench", "loadgen.report", "locust"),
    "loadgen.metrics": ("loadgen.pegasus", "loadgen.onebox", "loadgen.config", "loadgen.faults",
                        "loadgen.load", "loadgen.harness", "loadgen.runner", "loadgen.bench",
                        "loadgen.report", "locust", *SOCKETS),
    "loadgen.config": ("loadgen.faults", "loadgen.onebox", "loadgen.metrics", "loadgen.load",
                       "loadgen.harness", "loadgen.runner", "loadgen.bench", "loadgen.report",
                       "locust"),
    "loadgen.faults": ("loadgen.onebox", "loadgen.load", "loadgen.harness", "loadgen.runner",
                       "loadgen.bench", "loadgen.report", "locust"),
    "loadgen.load": ("loadgen.onebox", "loadgen.faults", "loadgen.harness", "loadgen.runner",
                     "loadgen.bench", "loadgen.report", "locust"),
    "loadgen.testing": ("loadgen.config", "loadgen.faults", "loadgen.metrics", "loadgen.onebox",
                        "loadgen.load", "loadgen.harness", "loadgen.runner", "loadgen.bench",
                        "loadgen.report", "locust"),
    "loadgen.report": ("loadgen.pegasus", "loadgen.onebox", "loadgen.faults", "loadgen.load",
                       "loadgen.harness", "loadgen.runner", "loadgen.bench", "locust", *SOCKETS),
    # Client adapters: a child process per real client build; the runner will use them.
    "loadgen.adapters": ("loadgen.onebox", "loadgen.load", "loadgen.harness", "loadgen.runner",
                         "loadgen.bench", "loadgen.report", "locust"),
    "loadgen.harness": ("loadgen.runner", "loadgen.bench"),
    "loadgen.runner": ("loadgen.bench",),
}

#: (importing module, imported module) -> why it is still there.
KNOWN: dict[tuple[str, str], str] = {
    ("loadgen.report.views", "loadgen.pegasus.policies"):
        "policy labels for run folders whose results.json does not carry them",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LOADGEN.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> every module name it imports (``from x import y`` counts as x and x.y)."""
    out: dict[str, set[str]] = {}
    for path in LOADGEN.rglob("*.py"):
        if "gen" in path.relative_to(LOADGEN).parts:
            continue
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                names.add(source)
                names.update(f"{source}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        out[module] = names
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str) -> tuple[str, ...]:
    """The bans of the longest part ``module`` is in (none if it is in none)."""
    parts = [part for part in RULES if _within(module, part)]
    return RULES[max(parts, key=len)] if parts else ()


def violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(module, imported module) pairs that break a rule: a loadgen name is cut to the module
    it names (``from x import y``: x.y if y is a module, else x), another one to its shortest
    banned form."""
    found = set()
    for module, names in graph.items():
        banned = rule_for(module)
        for name in names:
            if name.startswith("loadgen."):
                while name not in graph and "." in name:
                    name = name.rpartition(".")[0]
            if any(_within(name, b) for b in banned):
                found.add((module, name))
    def redundant(module: str, name: str) -> bool:
        for m, other in found:
            if m != module or other == name:
                continue
            if name.startswith("loadgen.") and _within(other, name):
                return True   # ``from pkg import mod``: the pair names pkg.mod, not pkg
            if not name.startswith("loadgen.") and _within(name, other):
                return True   # ``locust`` and ``locust.user``: one pair, ``locust``
        return False

    return {(module, name) for module, name in found if not redundant(module, name)}


def test_the_scan_sees_the_imports_it_checks():
    graph = imports()
    assert "loadgen.pegasus.client" in graph and "loadgen.runner.run" in graph
    assert "loadgen.errors" in graph["loadgen.pegasus.client"]
    assert any(_within(n, "locust") for n in graph["loadgen.harness.hooks"])
    assert "loadgen.load.driver" in graph["loadgen.harness.users"]


def test_a_module_follows_its_most_specific_rule():
    assert "loadgen.faults" in rule_for("loadgen.onebox.supervisor")
    assert "loadgen.faults" not in rule_for("loadgen.onebox.cluster")
    assert "loadgen.faults" in rule_for("loadgen.load.driver") and rule_for("loadgen.cli") == ()
    assert "locust" in rule_for("loadgen.adapters.connection")
    assert "loadgen.runner" in rule_for("loadgen.adapters.protocol")
    graph = {"loadgen.onebox.cluster": {"loadgen.faults.cluster", "loadgen.metrics"},
             "loadgen.onebox.spec": {"loadgen.faults.cluster"},
             "loadgen.faults.cluster": set(), "loadgen.metrics": set()}
    assert violations(graph) == {("loadgen.onebox.cluster", "loadgen.metrics"),
                                 ("loadgen.onebox.spec", "loadgen.faults.cluster")}


def test_no_part_imports_what_its_rule_forbids():
    unexpected = sorted(violations(imports()) - set(KNOWN))
    assert not unexpected, "imports that break the layering:\n" + "\n".join(
        f"  {module} imports {name}" for module, name in unexpected)


def test_every_known_exception_still_occurs():
    gone = sorted(set(KNOWN) - violations(imports()))
    assert not gone, f"no longer imported, remove from KNOWN: {gone}"


def test_the_benches_are_imported_by_nothing_but_the_benches():
    users = sorted(module for module, names in imports().items()
                   if not _within(module, "loadgen.bench")
                   and any(_within(n, "loadgen.bench") for n in names))
    assert users == []


def test_a_forbidden_import_is_reported_by_module_and_name():
    graph = {"loadgen.metrics.recorder": {"loadgen.errors", "socket"},
             "loadgen.load.driver": {"locust.user"},
             "loadgen.pegasus.codec": {"loadgen.pegasus.keys"}}
    assert violations(graph) == {("loadgen.metrics.recorder", "socket"),
                                 ("loadgen.load.driver", "locust.user")}
