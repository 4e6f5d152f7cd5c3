"""``pegbench bench cpu``: a tiny run prints and writes each writer's CPU per acknowledged put.

The official side needs the official client's own venv (``pegbench clients install pypegasus``,
which ``.ci/run`` runs). Where it is absent, the run test measures our writer alone and its
test id says so: nothing is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadgen.bench import cpu as cpu_bench

OFFICIAL_PYTHON = cpu_bench.default_official_python()
HAVE_OFFICIAL = cpu_bench.official_available(OFFICIAL_PYTHON)


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen.bench.cpu", *args],
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
    sides = ("ours", "client", "official") if official else ("ours", "client")
    for row in summary["rounds"]:
        assert set(sides) <= set(row)
        for side in sides:
            assert row[side]["ok"] == 20 and row[side]["cpu_s"] > 0 and row[side]["us_per_op"] > 0
    for side in sides:
        assert summary[f"{side}_us_per_op"] > 0
    assert "recorder, ledger" in summary["ours_about"] and "no observer" in summary["client_about"]
    assert "round  3:" in done.stdout and "µs CPU per acknowledged put" in done.stdout
    if official:
        for row in summary["rounds"]:
            assert row["ratio"] == pytest.approx(row["ours"]["us_per_op"] / row["official"]["us_per_op"])
            assert row["ratio_client"] == pytest.approx(
                row["client"]["us_per_op"] / row["official"]["us_per_op"])
        for key in ("ratio", "ratio_client"):
            assert summary[key] == pytest.approx(sorted(r[key] for r in summary["rounds"])[1])
        assert "pypegasus3" in summary["official_about"]
        assert "ratio_client:" in done.stdout
    else:
        assert "ratio" not in summary and "official : not measured" in done.stdout


def test_without_the_official_venv_it_says_how_to_set_it_up(tmp_path):
    done = run_bench("--ops", "5", "--official-python", str(tmp_path / "missing" / "python"))
    assert done.returncode == 2
    assert "pegbench clients install pypegasus" in done.stderr and "--ours-only" in done.stderr


def test_at_a_rate_each_writer_puts_one_arrival_per_interval(tmp_path):
    out = tmp_path / "cpu.json"
    done = run_bench("--ops", "20", "--warmup", "5", "--rounds", "2", "--rate", "200",
                     "--ours-only", "--json", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["rate"] == 200
    for row in summary["rounds"]:
        for side in ("ours", "client"):
            # 20 arrivals 5 ms apart: the batch lasts at least 19 intervals
            assert row[side]["ok"] == 20 and row[side]["wall_s"] >= 0.9 * 19 / 200


def test_the_official_side_s_scripts_are_where_the_benchmark_looks():
    """A move of the benchmark's module must not leave it looking in the wrong folder (it
    would then measure ours only, as if the official client were not set up)."""
    assert cpu_bench.OFFICIAL_WRITER.is_file()
