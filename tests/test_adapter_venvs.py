"""Client venvs (loadgen.adapters.venvs) with fake venv folders in tmp_path: no pip, no network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadgen import cli
from loadgen.adapters import venvs
from loadgen.errors import AdapterError, ConfigError
from loadgen.exitcodes import EXIT_OK, EXIT_USAGE

pytestmark = pytest.mark.unit


def fake_venv(cache: Path, name: str = "pypegasus", *, marker: bool = True,
              packages: list[str] | None = None) -> Path:
    """A venv folder whose python succeeds at everything (the import check passes)."""
    path = cache / "venvs" / name
    (path / "bin").mkdir(parents=True)
    python = path / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    if marker:
        (path / venvs.MARKER).write_text(json.dumps({
            "client": name, "version": "0.0.1.1", "installed_at": "then",
            "packages": packages if packages is not None else list(venvs.CLIENTS[name].packages)}))
    return path


def test_placeholder_replaced_in_every_element(tmp_path):
    path = fake_venv(tmp_path)
    cmd = ["{venv:pypegasus}/bin/python", "-m", "x", "--lib={venv:pypegasus}/lib", "plain"]
    assert venvs.resolve_command(cmd, tmp_path) == [f"{path}/bin/python", "-m", "x",
                                                   f"--lib={path}/lib", "plain"]
    assert venvs.adapter_command("pypegasus", tmp_path) == [
        f"{path}/bin/python", "-m", "loadgen.adapters.pypegasus"]
    assert venvs.resolve_command(["python", "adapter.py"], tmp_path) == ["python", "adapter.py"]


@pytest.mark.parametrize("state", ["missing", "no marker", "stale marker"])
def test_a_missing_or_incomplete_venv_says_how_to_install_it(tmp_path, state):
    if state == "no marker":
        fake_venv(tmp_path, marker=False)
    elif state == "stale marker":   # installed with another package set
        fake_venv(tmp_path, packages=["pypegasus3==0.0.1.0"])
    with pytest.raises(AdapterError) as info:
        venvs.resolve_command(["{venv:pypegasus}/bin/python"], tmp_path)
    message = str(info.value)
    assert "client pypegasus" in message and "`pegbench clients install pypegasus`" in message
    assert str(tmp_path / "venvs" / "pypegasus") in message
    assert ("is missing" if state == "missing" else "not installed completely") in message


def test_unknown_client_lists_the_known_ones(tmp_path):
    for call in (lambda: venvs.resolve_command(["{venv:nope}/bin/python"], tmp_path),
                 lambda: venvs.install("nope", cache_dir=tmp_path),
                 lambda: venvs.venv_path("nope")):
        with pytest.raises(ConfigError, match=r"'nope'.*known: pypegasus"):
            call()


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PEGBENCH_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert venvs.venv_path("pypegasus") == tmp_path / "home/.cache/pegbench/venvs/pypegasus"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert venvs.cache_root() == tmp_path / "xdg/pegbench"
    monkeypatch.setenv("PEGBENCH_CACHE", str(tmp_path / "pb"))
    assert venvs.cache_root() == tmp_path / "pb"
    assert venvs.venv_path("pypegasus", tmp_path / "flag") == tmp_path / "flag/venvs/pypegasus"


def test_install_keeps_a_good_venv(tmp_path):
    path = fake_venv(tmp_path)
    lines: list[str] = []
    assert venvs.install("pypegasus", cache_dir=tmp_path, progress=lines.append) == path
    assert len(lines) == 1 and "already installed" in lines[0] and str(path) in lines[0]


def test_adapter_env_puts_loadgen_first(monkeypatch):
    root = str(Path(venvs.__file__).resolve().parents[2])
    assert venvs.adapter_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{root}{os.pathsep}/x"
    assert venvs.adapter_env({})["PYTHONPATH"] == root
    assert (Path(root) / "loadgen" / "adapters" / "pypegasus.py").exists()


def test_cli_list_and_install_errors(tmp_path, capsys):
    assert cli.main(["clients", "list", "--cache", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "pypegasus" in out and "not installed" in out
    fake_venv(tmp_path)
    assert cli.main(["clients", "list", "--cache", str(tmp_path)]) == EXIT_OK
    assert "installed (pypegasus3 0.0.1.1)" in capsys.readouterr().out
    assert cli.main(["clients", "install", "pypegasus", "--cache", str(tmp_path)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "venvs" / "pypegasus")
    assert "already installed" in captured.err
    assert cli.main(["clients", "install", "nope", "--cache", str(tmp_path)]) == EXIT_USAGE
    assert "known: pypegasus" in capsys.readouterr().err
