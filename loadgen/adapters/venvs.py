"""Client environments: one venv per real client build, in pegbench's cache folder.

A real client cannot share pegbench's environment (pypegasus3 pins thrift 0.13 and Twisted
21.2), so each known client gets its own venv under ``<cache>/venvs/<name>``, where
``<cache>`` is ``$PEGBENCH_CACHE``, else ``$XDG_CACHE_HOME/pegbench``, else
``~/.cache/pegbench``. :func:`install` creates it (``pegbench clients install NAME``), checks
that the client imports and writes a marker; an adapter command names it as ``{venv:NAME}``,
which :func:`resolve_command` replaces by the venv's path.

The venv does not contain ``loadgen``: an adapter runs with ``PYTHONPATH`` set to the folder
that holds the package (:func:`adapter_env`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import AdapterError, ConfigError

#: The marker a complete install leaves in the venv's root.
MARKER = "pegbench-client.json"
PLACEHOLDER = re.compile(r"\{venv:([^{}]*)\}")


@dataclass(frozen=True)
class ClientEnv:
    """A known client build: what to pip install and how to check that it works."""

    name: str
    summary: str
    dist: str                      # the distribution whose version the adapter reports
    packages: tuple[str, ...]      # pip requirement specifiers, all pinned
    check: str                     # Python code that must run in the venv
    command: tuple[str, ...]       # the adapter command, with ``{venv:NAME}``


CLIENTS: dict[str, ClientEnv] = {
    "pypegasus": ClientEnv(
        name="pypegasus",
        summary="the official Python client, PyPI pypegasus3 (Twisted)",
        dist="pypegasus3",
        # pypegasus3 pins Twisted, thrift, aenum, pyOpenSSL and cryptography itself and needs
        # nothing more to import on Python 3.11; the rest are pinned to the set it was checked
        # with (their newer releases may drop what Twisted 21.2 relies on). six: pgclient
        # imports it without declaring it.
        packages=("pypegasus3==0.0.1.1", "Twisted==21.2.0", "thrift==0.13.0", "aenum==3.0.0",
                  "pyOpenSSL==20.0.1", "cryptography==3.2", "six==1.17.0", "attrs==26.1.0",
                  "Automat==25.4.16", "constantly==23.10.4", "hyperlink==21.0.0",
                  "incremental==24.11.0", "zope.interface==8.7", "idna==3.21", "cffi==2.1.1",
                  "pycparser==3.12", "packaging==26.4"),
        check="import pypegasus.pgclient",
        command=("{venv:pypegasus}/bin/python", "-m", "loadgen.adapters.pypegasus"),
    ),
}


def cache_root() -> Path:
    """pegbench's cache folder (not created)."""
    if os.environ.get("PEGBENCH_CACHE"):
        return Path(os.environ["PEGBENCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pegbench"


def client(name: str) -> ClientEnv:
    """The known client ``name``; a ConfigError listing the known ones otherwise."""
    try:
        return CLIENTS[name]
    except KeyError:
        raise ConfigError("clients", repr(name),
                          f"not a known client (known: {', '.join(sorted(CLIENTS))})") from None


def venv_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where client ``name``'s venv is (or would be); ``cache_dir`` overrides the cache root."""
    client(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / "venvs" / name


def read_marker(path: Path) -> dict | None:
    """The marker of the venv at ``path``, None if there is none (or it is unreadable)."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _python(path: Path) -> Path:
    return path / "bin" / "python"


def is_installed(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether a complete install of ``name``'s current package set is there (no process run)."""
    path = venv_path(name, cache_dir)
    marker = read_marker(path)
    return (marker is not None and marker.get("packages") == list(CLIENTS[name].packages)
            and _python(path).exists())


def _missing(name: str, path: Path) -> AdapterError:
    state = "is not installed completely" if path.exists() else "is missing"
    return AdapterError(f"client {name}: its environment {path} {state}; "
                        f"run `pegbench clients install {name}`")


def resolve_command(command: Sequence[str],
                    cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """``command`` with every ``{venv:NAME}`` replaced by NAME's venv path; raises
    :class:`AdapterError` (saying how to install it) when that venv is missing or incomplete,
    :class:`ConfigError` for an unknown NAME."""
    out = []
    for part in command:
        def venv(match: re.Match[str]) -> str:
            name = match.group(1)
            path = venv_path(name, cache_dir)
            if not is_installed(name, cache_dir):
                raise _missing(name, path)
            return str(path)
        out.append(PLACEHOLDER.sub(venv, part))
    return out


def adapter_command(name: str, cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The command that starts client ``name``'s adapter, resolved."""
    return resolve_command(client(name).command, cache_dir)


def adapter_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for an adapter process: ``base`` (default ``os.environ``) with the folder
    holding ``loadgen`` first on ``PYTHONPATH`` (the venv does not contain pegbench)."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[2])
    rest = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root + (os.pathsep + rest if rest else "")
    return env


def _run(cmd: list[str], progress: Callable[[str], None], what: str) -> None:
    """Run ``cmd``, passing each output line to ``progress``; AdapterError if it fails."""
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                progress(f"  {line}")
                tail = (tail + [line])[-20:]
        code = proc.wait()
    if code != 0:
        detail = "\n".join("    " + line for line in tail[-10:])
        raise AdapterError(f"{what} failed (exit {code}):\n{detail}")


def _check(env: ClientEnv, path: Path) -> str | None:
    """None if the client imports in the venv at ``path``, else why not."""
    try:
        # cwd: importing pypegasus opens ./pegasus.log; keep it inside the venv
        done = subprocess.run([str(_python(path)), "-c", env.check], capture_output=True,
                              text=True, errors="replace", timeout=120, cwd=path, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def _versions(path: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    done = subprocess.run([str(_python(path)), "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def install(name: str, *, cache_dir: str | os.PathLike[str] | None = None,
            progress: Callable[[str], None] = print) -> Path:
    """Create client ``name``'s venv (or find a good one) and return its path.

    A venv with a marker for the same package set that still imports is kept as it is; any
    other content of the folder is replaced. Raises :class:`AdapterError` if venv, pip or the
    import check fails (the folder is then left without a marker: "not installed completely").
    """
    env = client(name)
    path = venv_path(name, cache_dir)
    if is_installed(name, cache_dir):
        why = _check(env, path)
        if why is None:
            marker = read_marker(path) or {}
            progress(f"{name}: already installed in {path} "
                     f"({env.dist} {marker.get('version', '?')}, {marker.get('installed_at', '?')})")
            return path
        progress(f"{name}: the venv in {path} no longer imports ({why}); reinstalling")
    t0 = time.monotonic()
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"{name}: creating a venv in {path} ({sys.executable})")
    _run([sys.executable, "-m", "venv", str(path)], progress, f"client {name}: python -m venv")
    progress(f"{name}: pip install {' '.join(env.packages)}")
    _run([str(_python(path)), "-m", "pip", "install", "--disable-pip-version-check",
          *env.packages], progress, f"client {name}: pip install")
    why = _check(env, path)
    if why is not None:
        raise AdapterError(f"client {name}: installed, but `{env.check}` fails in {path}: {why}")
    versions = _versions(path)
    marker = {"client": name, "dist": env.dist, "version": versions.get(env.dist, "?"),
              "packages": list(env.packages), "installed": versions,
              "python": sys.version.split()[0],
              "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    tmp.replace(path / MARKER)   # atomic: a marker is there only once all of it is
    progress(f"{name}: installed {env.dist} {marker['version']} in {time.monotonic() - t0:.1f} s")
    return path
