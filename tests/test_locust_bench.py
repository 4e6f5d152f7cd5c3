"""``pegbench bench locust``: the workload's Locust users and the bare client, side by side.

A smoke run with short phases on a shared machine: both figures come out, from one server,
and the Locust users are not an order of magnitude behind the client (the 0.6 target is for
the full benchmark on a quiet machine; README has the measured figures).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def test_bench_locust_prints_both_rates_from_one_run():
    proc = subprocess.run([sys.executable, "-m", "loadgen.cli", "bench", "locust",
                           "--seconds", "2", "--rounds", "1", "--users", "20"],
                          capture_output=True, text=True, check=False, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = dict(re.findall(r"^(client|locust users)\s*:\s*(\d+) ops/s", proc.stdout, re.MULTILINE))
    ratio = float(re.search(r"^ratio\s*:\s*([\d.]+)", proc.stdout, re.MULTILINE).group(1))
    assert set(figures) == {"client", "locust users"}, proc.stdout
    client, users = int(figures["client"]), int(figures["locust users"])
    assert client > 500 and users > 500, proc.stdout
    assert ratio == pytest.approx(users / client, abs=0.01)
    assert ratio > 0.25, proc.stdout
    assert re.search(r"^saturated\s*: (yes|no)", proc.stdout, re.MULTILINE), proc.stdout
