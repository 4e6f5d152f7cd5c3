"""``pegbench run --web``: Locust's web UI on the run's cluster, one measured run per Start.

Driven over HTTP the way the page drives it (``/swarm`` is the Start form, ``/stop`` the Stop
button): a Start runs the profile's fault plan from that instant, a Stop writes the run
folder a headless run writes, a second Start a second folder (ended by the profile's
duration), Ctrl-C quits with the last run's exit code and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
from pathlib import Path

import pytest
from support.locust_procs import http
from support.pegbench_cli import pegbench, web_url, write_profile
from support.processes import processes_mentioning, wait_until

pytestmark = [pytest.mark.onebox, pytest.mark.timeout(300)]

def post(url: str, form: dict) -> tuple[int, str]:
    """(status, body) of a form POST, errors included."""
    try:
        return http(url, form)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def recovery_rows(base: str) -> list[dict]:
    return json.loads(http(f"{base}recovery.json")[1])["rows"]


def test_each_start_in_the_web_ui_is_a_measured_run_with_its_own_folder(tmp_path):
    profile = write_profile(tmp_path, 12)
    headless = tmp_path / "headless"
    proc = pegbench("run", str(profile), "--out", str(headless), "--quiet")
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]

    out = tmp_path / "web"
    proc = pegbench("run", str(profile), "--out", str(out), "--quiet", "--web", "--web-port", "0")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: web_url(lines), 90), "".join(lines)
        base = web_url(lines)
        assert not (out / "results.json").exists()          # nothing runs before Start
        assert post(f"{base}pegbench/fault", {"kind": "pause", "target": "replica1",
                                              "duration_s": "1"})[0] == 409   # no run yet

        # Start with 6 users (3 per policy): the kill 4 s in shows up as a fault row
        assert http(f"{base}swarm", {"user_count": 6, "spawn_rate": 6})[0] == 200
        assert wait_until(lambda: any(r["name"].startswith("fault 1: kill")
                                      for r in recovery_rows(base)), 30), recovery_rows(base)
        # the fault form: a pause without its duration is refused, naming the field; then one
        # goes in through the same controller, recorded as the UI's
        status, body = post(f"{base}pegbench/fault", {"kind": "pause", "target": "primary-of:1"})
        assert status == 400 and "duration_s" in body, body
        status, body = post(f"{base}pegbench/fault", {"kind": "pause", "target": "primary-of:1",
                                                     "duration_s": "1"})
        assert status == 200 and "fault 2: pause primary-of:1" in body, body
        assert wait_until(lambda: any(r["name"].startswith("fault 2: pause")
                                      for r in recovery_rows(base)), 30), recovery_rows(base)
        assert http(f"{base}stop", {})[0] == 200
        assert wait_until(lambda: (out / "results.json").exists(), 90), "".join(lines)[-3000:]
        first = json.loads((out / "results.json").read_text())
        kill, pause = first["faults"]
        assert kill["kind"] == "kill" and not kill["skipped"] and pause["kind"] == "pause"
        logged = [json.loads(line) for line in (out / "faults.jsonl").read_text().splitlines()]
        assert {(f["id"], f["origin"]) for f in logged} == {(1, "faults.events[0]"), (2, "ui")}
        assert first["profile"]["workload"]["users"] == 3     # the UI's count, per policy
        assert first["durability"]["lost"] == 0 and first["policies"]["failover"]["ops"] > 0

        # a second Start: a second folder, ended by the profile's duration
        second_dir = out.with_name("web-2")
        assert http(f"{base}swarm", {"user_count": 4, "spawn_rate": 4})[0] == 200
        assert wait_until(lambda: (second_dir / "results.json").exists(), 120), \
            "".join(lines)[-3000:]
        second = json.loads((second_dir / "results.json").read_text())
        assert second["profile"]["workload"]["users"] == 2 and not second["interrupted"]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == (0 if second["slo"]["verdict"] == "pass" else 1), "".join(lines)
    # the same files as a headless run of the profile, and compare reads one against the other
    assert run_files(out) == run_files(second_dir) == run_files(headless)
    compare = pegbench("compare", str(headless), str(out))
    stdout, stderr = compare.communicate(timeout=120)
    assert compare.returncode in (0, 1), stderr[-3000:]     # 2 would be "cannot compare"
    assert "failover" in stdout
    assert processes_mentioning(str(out)) == [] and processes_mentioning(str(headless)) == []


def test_web_flags_without_web_are_a_usage_error(tmp_path):
    proc = pegbench("run", str(write_profile(tmp_path, 12)), "--web-port", "9999")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--web-host and --web-port go with --web" in stderr
