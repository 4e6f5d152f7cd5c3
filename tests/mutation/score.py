"""Mutation score of the code that turns outcomes into a verdict (issue 19).

    python -m tests.mutation.score                              # every configured module
    python -m tests.mutation.score loadgen/metrics/ttr.py ...   # only these
    python -m tests.mutation.score --no-run                     # the last results again

Runs mutmut (3.8.1, ``[tool.mutmut]`` in pyproject.toml: the modules and the fast unit tests
they are checked against) with one worker, from the repository root, then prints per module:
mutants, killed (a timeout counts as killed, as mutmut counts it; the last column says how
many), survived ("no tests" and "suspicious" count as survived: nothing checks that code), how many of the survivors are
listed in ``tests/mutation/equivalent.toml`` (a mutant that cannot change what a user sees,
with why), and two percentages: killed / mutants and (killed + listed) / mutants. Then the
survivors that are *not* listed, for ``mutmut show <name>``, and listed names that no longer
survive (stale entries). mutmut keeps its results in ``mutants/`` (git-ignored) and, on the
next run, re-tests only the functions (or tests) that changed.

Exit code: 0, or 1 when some survivor is not listed. Not part of ``.ci/run``: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.toml")
KILLED = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}   # mutmut's stats.status_by_exit_code
SURVIVED = {0, 5, 33, 35}                              # survived, no tests, suspicious
NOT_RUN = {None, 2, 34}                                # not checked, interrupted, skipped
TIMEOUT = {36, -24, 24, 152, 255}                      # counted as killed; shown apart


def configured_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def listed() -> dict[str, str]:
    """Mutant name → why it cannot change observable behaviour."""
    if not EQUIVALENT.exists():
        return {}
    return {name: entry["why"]
            for name, entry in tomllib.loads(EQUIVALENT.read_text()).get("mutant", {}).items()}


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def exit_codes(path: str) -> dict[str, int | None]:
    meta = ROOT / "mutants" / (path + ".meta")
    if not meta.exists():
        return {}
    return json.loads(meta.read_text())["exit_code_by_key"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths from [tool.mutmut] only_mutate")
    parser.add_argument("--no-run", action="store_true", help="report the last results only")
    args = parser.parse_args(argv)
    modules = args.modules or configured_modules()
    unknown = [m for m in modules if m not in configured_modules()]
    if unknown:
        parser.error(f"not in [tool.mutmut] only_mutate: {unknown}")

    if not args.no_run:
        started = time.monotonic()
        patterns = [f"{module_name(m)}.*" for m in modules]
        rc = subprocess.call([sys.executable, "-m", "mutmut", "run", "--max-children", "1",
                              *patterns], cwd=ROOT)
        print(f"mutmut ran in {time.monotonic() - started:.0f} s (exit code {rc})")

    why = listed()
    rows, loose, stale, missing = [], [], [], []
    for path in modules:
        codes = exit_codes(path)
        if not codes:
            missing.append(path)
            continue
        killed = sum(c in KILLED for c in codes.values())
        survivors = [n for n, c in codes.items() if c in SURVIVED]
        not_run = sum(c in NOT_RUN for c in codes.values())
        on_list = [n for n in survivors if n in why]
        loose += [n for n in survivors if n not in why]
        prefix = module_name(path) + "."
        stale += [n for n in why if n.startswith(prefix) and codes.get(n) not in SURVIVED]
        timeouts = sum(c in TIMEOUT for c in codes.values())
        rows.append((path, len(codes), killed, len(survivors), len(on_list), not_run, timeouts))

    header = f"{'module':32} {'mutants':>7} {'killed':>6} {'survived':>8} {'listed':>6} " \
             f"{'killed%':>7} {'+listed%':>8} {'not run':>7} {'timeout':>7}"
    print(header)
    for path, n, killed, survived, on_list, not_run, timeouts in rows:
        print(f"{path:32} {n:7} {killed:6} {survived:8} {on_list:6} {100 * killed / n:6.1f}% "
              f"{100 * (killed + on_list) / n:7.1f}% {not_run:7} {timeouts:7}")
    for path in missing:
        print(f"{path:32} no results yet (run without --no-run)")
    if loose:
        print(f"\n{len(loose)} survivors not listed in {EQUIVALENT.relative_to(ROOT)} "
              f"(mutmut show <name>):")
        for name in loose:
            print(f"  {name}")
    if stale:
        print(f"\nlisted but no longer surviving (remove from the list): {', '.join(stale)}")
    return 1 if loose else 0


if __name__ == "__main__":
    sys.exit(main())
