"""``pegbench bench cpu``: a tiny run prints and writes each writer's CPU per acknowledged put.

The official side needs the official client's own venv (``bash scripts/official_client_venv.sh``,
which ``.ci/run`` runs). Where it is absent, the run test measures our writer alone and its
test id says so: nothing is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadgen import cpu_bench

OFFICIAL_PYTHON = cpu_bench.default_official_python()
HAVE_OFFICIAL = cpu_bench.official_available(OFFICIAL_PYTHON)


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen.cpu_bench", *args],
                          capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("official", [HAVE_OFFICIAL], ids=[
    "ours-and-official" if HAVE_OFFICIAL else "ours-only-because-the-official-venv-is-absent"])
def test_a_tiny_run_reports_cpu_per_acknowledged_put(tmp_path, official):
    out = tmp_path / "cpu.json"
    done = run_bench("--ops", "20", "--warmup", "5", "--rounds", "3", "--json", str(out),
                     *([] if official else ["--ours-only"]))
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert len(summary["rounds"]) == 3
    for row in summary["rounds"]:
        assert row["ours"]["ok"] == 20 and row["ours"]["cpu_s"] > 0 and row["ours"]["us_per_op"] > 0
    assert summary["ours_us_per_op"] > 0
    assert "round  3: ours" in done.stdout and "µs CPU per acknowledged put" in done.stdout
    if official:
        for row in summary["rounds"]:
            assert row["official"]["ok"] == 20 and row["official"]["us_per_op"] > 0
            assert row["ratio"] == pytest.approx(row["ours"]["us_per_op"] / row["official"]["us_per_op"])
        assert summary["ratio"] == pytest.approx(sorted(r["ratio"] for r in summary["rounds"])[1])
        assert "pypegasus3" in summary["official_client"]
        assert "ratio    :" in done.stdout
    else:
        assert "ratio" not in summary and "official : not measured" in done.stdout


def test_without_the_official_venv_it_says_how_to_set_it_up(tmp_path):
    done = run_bench("--ops", "5", "--official-python", str(tmp_path / "missing" / "python"))
    assert done.returncode == 2
    assert "scripts/official_client_venv.sh" in done.stderr and "--ours-only" in done.stderr
