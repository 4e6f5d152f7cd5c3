"""``locust -f loadgen/locustfile.py --pegbench-profile PROFILE``: Locust's own command line runs
the benchmark as ``pegbench run`` does — the profile's onebox (or the cluster ``--meta`` /
``--onebox-dir`` names), its faults from the test's start, the run folder at its end, the
verdict's exit code, nothing left running."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.locust_procs import LOCUSTFILE, REPO, http, recovery_rows, wait_for_http
from support.pegbench_cli import pegbench, write_profile
from support.ports import free_port
from support.processes import processes_mentioning, wait_until

pytestmark = [pytest.mark.onebox, pytest.mark.timeout(300)]

#: The line naming the onebox's temporary folder.
ONEBOX_DIR = re.compile(r"starting the profile's onebox in (\S+)")


def locust(*args: str, log: Path) -> subprocess.Popen:
    """``locust -f loadgen/locustfile.py ARGS``, its output in ``log``, in its own group."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "locust", "-f", LOCUSTFILE, *args],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


def run_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def left_behind(log: Path) -> list:
    """Processes of the onebox the session started, and its folder if it is still there."""
    match = ONEBOX_DIR.search(log.read_text())
    assert match, log.read_text()[-3000:]
    folder = match.group(1)
    return processes_mentioning(folder) + ([folder] if Path(folder).exists() else [])


def test_headless_locust_with_a_profile_is_a_measured_run(tmp_path):
    profile = write_profile(tmp_path, 12)
    log = tmp_path / "locust.log"
    proc = locust("--headless", "--only-summary", "--pegbench-profile", str(profile),
                  "--pegbench-out", str(tmp_path / "run"), log=log)
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]   # the verdict: pass
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["slo"]["verdict"] == "pass"
    [kill] = results["faults"]              # the plan's kill went in, 4 s after the start
    assert kill["kind"] == "kill" and not kill["skipped"] and kill["t_inject"] is not None
    assert results["policies"]["failover"]["ttr_first_ms"]["recovered"] >= 1
    logged = [json.loads(line)
              for line in (tmp_path / "run" / "faults.jsonl").read_text().splitlines()]
    assert [(f["origin"], f["injector"]) for f in logged] == [("faults.events[0]", "onebox")]
    text = log.read_text()
    assert "verdict: PASS" in text and f"run written to {tmp_path / 'run'}" in text
    assert left_behind(log) == []

    # the files of a headless pegbench run of the same profile
    cli = pegbench("run", str(profile), "--out", str(tmp_path / "cli"), "--quiet")
    _, stderr = cli.communicate(timeout=180)
    assert cli.returncode == 0, stderr[-3000:]
    assert run_files(tmp_path / "run") == run_files(tmp_path / "cli")


def test_the_web_ui_of_locust_runs_a_run_per_start_and_records_an_edit(tmp_path):
    profile = write_profile(tmp_path, 20)
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    out = tmp_path / "web"
    log = tmp_path / "locust.log"
    proc = locust("--web-host", "127.0.0.1", "--web-port", str(port), "--pegbench-profile",
                  str(profile), "--pegbench-out", str(out), log=log)
    try:
        wait_for_http(base, 90)
        assert http(f"{base}swarm", {"user_count": 4, "spawn_rate": 4})[0] == 200
        assert wait_until(lambda: any(r["name"] == "failover" and r["ops"]
                                      for r in recovery_rows(base)), 30), log.read_text()[-3000:]
        # Edit: 8 users from now on (Locust's Edit posts the start form again)
        assert http(f"{base}swarm", {"user_count": 8, "spawn_rate": 8})[0] == 200
        assert wait_until(lambda: any(r["name"].startswith("fault 1: kill")
                                      for r in recovery_rows(base)), 30), log.read_text()[-3000:]
        assert wait_until(lambda: (out / "results.json").exists(), 60), log.read_text()[-3000:]
        first = json.loads((out / "results.json").read_text())
        assert first["profile"]["workload"]["users"] == 4       # in force at the end, per policy
        assert json.loads((out / "profile.json").read_text())["workload"]["users"] == 4
        [edit] = first["user_counts"]
        assert edit["users_per_policy"] == 4 and 0 < edit["at_s"] < 4, first["user_counts"]
        # the schedule check followed the edit: twice the arrivals after it (2 users per
        # policy at 40 ops/s before), and they went out
        schedule = first["load_generator"]["schedule"]["failover"]
        assert schedule["intended"] > schedule["seconds"] * 2 * 40, schedule
        assert schedule["sent"] >= 0.9 * schedule["intended"], schedule

        # a second Start, interrupted: its folder says so, the exit code is 130
        assert http(f"{base}swarm", {"user_count": 4, "spawn_rate": 4})[0] == 200
        assert wait_until(lambda: any(r["name"].startswith("fault 1: kill")
                                      for r in recovery_rows(base)), 30), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 130, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    second = json.loads((out.with_name("web-2") / "results.json").read_text())
    assert second["interrupted"] is True and second["faults"][0]["kind"] == "kill"
    assert left_behind(log) == []


def test_a_onebox_started_apart_gets_the_profiles_faults_through_its_supervisor(tmp_path,
                                                                                 background):
    from loadgen.onebox.spec import FDConfig

    box = background.start_with_cli(fd=FDConfig(beacon_s=0.1, check_s=0.05, lease_s=0.6,
                                                grace_s=0.8), partitions=4)
    log = tmp_path / "locust.log"
    proc = locust("--headless", "--only-summary", "--pegbench-profile",
                  str(write_profile(tmp_path, 12)), "--onebox-dir", str(box),
                  "--pegbench-out", str(tmp_path / "run"), log=log)
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    [kill] = json.loads((tmp_path / "run" / "results.json").read_text())["faults"]
    assert kill["t_inject"] is not None and kill["node"].startswith("replica"), kill
    status = background.status(box)       # the onebox was not ours to stop: still serving
    assert all(n["state"] == "running" for n in status["nodes"]), status


@pytest.mark.parametrize(("args", "code", "says"), [
    (("-t", "3"), 2, "faults.events[0] would start at 4 s"),            # an impossible plan
    (("--meta", "127.0.0.1:1"), 3, "the metas 127.0.0.1:1 did not give"),
    (("--meta", "127.0.0.1:1", "--onebox-dir", "/nonexistent"), 2, "--meta: not with --onebox-dir"),
])
def test_bad_runs_are_refused_at_once_naming_why(tmp_path, args, code, says):
    log = tmp_path / "locust.log"
    proc = locust("--headless", "--pegbench-profile", str(write_profile(tmp_path, 12)),
                  "--pegbench-out", str(tmp_path / "run"), *args, log=log)
    assert proc.wait(timeout=60) == code, log.read_text()[-3000:]
    assert says in log.read_text()
    assert not (tmp_path / "run").exists()
