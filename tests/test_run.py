"""``pegbench run`` end to end: a small profile on a real onebox, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import threading
from xml.etree import ElementTree as ET

import pytest
from support.pegbench_cli import pegbench, write_profile
from support.processes import processes_mentioning, wait_until

pytestmark = [pytest.mark.onebox, pytest.mark.timeout(240)]

def test_a_run_writes_every_output_and_passes_its_slos(tmp_path):
    out = tmp_path / "out"
    proc = pegbench("run", str(write_profile(tmp_path, 12)), "--out", str(out), "--quiet")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    assert "verdict: PASS" in stdout and str(out / "results.json") in stdout
    for name in ("results.json", "timeline.json", "junit.xml", "report.html", "faults.jsonl",
                 "profile.json", "meta-config-changes.jsonl"):
        assert (out / name).is_file(), name
    assert list((out / "hlog").glob("failover.put.response.hlog"))
    assert "Tag=failover.ttr_first_ms," in (out / "hlog" / "ttr.hlog").read_text()
    results = json.loads((out / "results.json").read_text())
    assert set(results["policies"]) == {"legacy", "failover"}
    (fault,) = results["faults"]
    assert fault["kind"] == "kill" and not fault["skipped"] and 0 in fault["affected_partitions"]
    failover = results["policies"]["failover"]
    assert failover["ttr_first_ms"]["recovered"] == failover["ttr_first_ms"]["n"] > 0
    assert failover["client_lag_ms"]["p99"] < 1000  # well under the op timeout
    assert results["durability"]["lost"] == 0 and results["durability"]["acked"] > 0
    assert results["slo"]["verdict"] == "pass" and results["slo"]["passed"] is True
    cases = ET.parse(out / "junit.xml").getroot().findall("testcase")
    assert sorted(c.get("name") for c in cases) == ["durability.lost", "failover.recovered_fraction",
                                                    "load generator kept up", "run complete"]
    assert all(not list(c) for c in cases)  # no failure, no error
    assert processes_mentioning(str(out)) == []


def test_an_interrupted_run_heals_writes_what_it_measured_and_exits_130(tmp_path):
    out = tmp_path / "out"
    proc = pegbench("run", str(write_profile(tmp_path, 60)), "--out", str(out))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        # interrupted once the kill (4 s in, restarted 3 s later) is in: the node is dead
        # then, so the stop must heal it (a fixed sleep raced the start-up's 2-3 s)
        assert wait_until(lambda: any(" fault " in line and "partitions" in line
                                      for line in lines), 60), "".join(lines)[-3000:]
        os.kill(proc.pid, signal.SIGINT)
        os.kill(proc.pid, signal.SIGINT)  # a second Ctrl-C must not cut the cleanup short
        proc.wait(timeout=120)
        stdout = proc.stdout.read()
        reader.join(10)
        stderr = "".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "verdict: UNKNOWN" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["slo"]["verdict"] == "unknown"
    assert results["slo"]["passed"] is None and "interrupted" in results["slo"]["unknown_reason"]
    errors = ET.parse(out / "junit.xml").getroot().findall("testcase/error")
    assert errors and int(ET.parse(out / "junit.xml").getroot().get("errors")) == len(errors)
    assert results["policies"]["failover"]["ops"] > 0
    (fault,) = results["faults"]
    assert fault["t_heal"] is not None  # the killed node was restarted before the run ended
    assert processes_mentioning(str(out)) == []


def test_a_bad_profile_is_a_usage_error_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(write_profile(tmp_path, 12).read_text().replace("partitions = 4", "partitions = 6"))
    proc = pegbench("run", str(path), "--out", str(tmp_path / "out"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "cluster.partitions" in stderr and "bad.toml" in stderr
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_a_run_with_two_locust_workers_merges_both_and_leaves_none_behind(tmp_path):
    out = tmp_path / "out"
    proc = pegbench("run", str(write_profile(tmp_path, 10)), "--out", str(out), "--workers", "2",
                    "--quiet")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert len(results["workers"]["reported"]) == 2 and results["workers"]["missing"] == []
    assert results["policies"]["failover"]["ops"] > 0 and results["durability"]["lost"] == 0
    assert processes_mentioning(str(out)) == []
