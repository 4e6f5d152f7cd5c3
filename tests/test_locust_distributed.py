"""Locust's distributed mode with real processes on loopback: a master and two workers.

1. Plain ``locust``: ``--master --headless`` and two ``--worker`` processes against the test
   cluster; each process dumps its own final counts; the master's merge must equal the sum of
   what the workers recorded (no double counting, nothing lost), and every worker must have
   answered the final flush.
2. The way ``pegbench run`` drives it (support/locust_run.py): an in-process master
   (``attach`` + ``finish`` + ``durability``) with two worker processes, and a local runner,
   each with a primary "killed" mid-run and announced through the fault relay: the workers
   learn the fault instant, ``failover`` recovers on every partition, every acknowledged
   write reads back.

Every process is stopped in ``finally`` (support.locust_procs.Procs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.locust_procs import SUPPORT, Procs, read_json
from support.pegbench_cli import write_profile
from support.ports import free_port

import loadgen
from loadgen.harness.hooks import exit_code_for, worker_argv

pytestmark = pytest.mark.timeout(180)

COUNT_KEYS = ("ops", "outcomes", "attempts", "meta_queries", "missed", "dropped")


def summed(dumps: list[dict]) -> dict[str, dict]:
    """Per policy, the sum of several processes' counts."""
    total: dict[str, dict] = {}
    for dump in dumps:
        for policy, counts in dump["counts"].items():
            mine = total.setdefault(policy, {"ops": 0, "outcomes": {}, "attempts": 0,
                                             "meta_queries": 0, "missed": 0, "dropped": 0})
            for key in ("ops", "attempts", "meta_queries", "missed", "dropped"):
                mine[key] += counts[key]
            for kind, n in counts["outcomes"].items():
                mine["outcomes"][kind] = mine["outcomes"].get(kind, 0) + n
    return total


def test_master_merges_exactly_what_the_workers_recorded(tmp_path):
    port = free_port()
    profile = write_profile(tmp_path, 30)      # a kill 4 s in (observed: --meta)
    with Procs(tmp_path) as procs:
        meta = procs.cluster()[0]
        master = procs.locust(
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--headless", "--expect-workers", "2", "-t", "8", "--only-summary",
            "--pegbench-profile", str(profile), "--meta", meta, "--policies", "legacy,failover",
            "--set", "workload.warmup_s=1", "--set", "workload.users=2",
            "--pegbench-dump-dir", str(tmp_path), name="master")
        workers = [procs.locust("--worker", "--master-host", "127.0.0.1", "--master-port",
                                str(port), "--pegbench-dump-dir", str(tmp_path), name=f"worker{i}")
                   for i in range(2)]
        code = master.wait(timeout=90)
        for i, proc in enumerate(workers):
            assert proc.wait(timeout=30) == 0, procs.log(f"worker{i}")
    # a measured run of 8 s (-t): its folder has both workers' figures; the master exits with
    # its verdict's code
    results = read_json(tmp_path / "master-run" / "results.json")
    assert results["profile"]["workload"]["duration_s"] == 8
    assert len(results["workers"]["reported"]) == 2 and not results["workers"]["missing"]
    assert code == exit_code_for(results["slo"]["verdict"]), procs.log("master")
    merged = read_json(tmp_path / "master-local-quit.json")
    worker_dumps = [read_json(p) for p in sorted(tmp_path.glob("worker-*-quit.json"))]
    assert len(worker_dumps) == 2
    assert len(merged["workers_final"]) == 2, merged          # both answered the flush
    assert set(merged["counts"]) == {"legacy", "failover"}
    expected = summed(worker_dumps)
    for policy, counts in merged["counts"].items():
        assert counts["ops"] > 50, merged
        assert {k: counts[k] for k in COUNT_KEYS} == {k: expected[policy][k] for k in COUNT_KEYS}
    # the final report each worker shipped is what it had at quit: nothing recorded after it
    for final in sorted(tmp_path.glob("worker-*-final.json")):
        quit_dump = read_json(final.with_name(final.name.replace("-final", "-quit")))
        assert read_json(final)["counts"] == quit_dump["counts"]
    summary = procs.log("master")
    assert "failover:put" in summary and "legacy:put" in summary


def run_script(tmp_path, mode: str) -> dict:
    """``support/locust_run.py MODE``: a run driven as ``pegbench run`` does; its result."""
    with Procs(tmp_path) as procs:
        script = procs.start([sys.executable, str(SUPPORT / "locust_run.py"), mode,
                              str(tmp_path)], "orchestrator")
        assert script.wait(timeout=120) == 0, procs.log("orchestrator")
    return read_json(tmp_path / f"{mode}-result.json")


def check_recovery_and_durability(result: dict) -> None:
    """The fault reached the recorders; failover recovered; every acked write reads back."""
    t_fault = result["t_fault"]
    assert [f[0] for f in result["faults"]] == [t_fault]
    assert result["t_start"] is not None and result["t_start"] < t_fault
    assert all(c["ops"] > 30 for c in result["counts"].values()), result["counts"]
    # failover's first ok write after the fault, on every partition, within its op timeout
    firsts = {p: next(e for t, e in pairs if t == t_fault)
              for p, pairs in result["first_ok"]["failover"].items()}
    assert len(firsts) == 4 and all(e is not None and 0 < e - t_fault < 0.5
                                    for e in firsts.values()), firsts
    durability = result["durability"]
    assert durability["acked"] > 20 and durability["verified"] == durability["acked"]
    assert durability["lost"] == 0 and durability["unreadable"] == 0
    assert result["exit_code"] == 0 and not result["saturation"]["saturated"]


def test_orchestrated_master_finishes_with_every_worker_and_reads_writes_back(tmp_path):
    result = run_script(tmp_path, "master")
    assert result["workers_ready"] == 2 and len(result["workers"]) == 2, result
    assert result["missing"] == [] and result["worker_exit"] == [0, 0]
    # the merged final state is the sum of the workers' own counts (only workers record, so
    # the fault instant in it came to them from the master's relay)
    workers = [read_json(p) for p in sorted(tmp_path.glob("worker-*-quit.json"))]
    expected = summed(workers)
    assert {p: {k: c[k] for k in COUNT_KEYS} for p, c in result["counts"].items()} == \
        {p: {k: c[k] for k in COUNT_KEYS} for p, c in expected.items()}
    check_recovery_and_durability(result)


def test_orchestrated_local_runner_finishes_and_reads_writes_back(tmp_path):
    result = run_script(tmp_path, "local")
    check_recovery_and_durability(result)
    # Locust's own stats dropped warm-up too, and saw the same ops as the recorder
    ops = sum(c["ops"] for c in result["counts"].values())
    assert abs(result["locust_requests"] - ops) <= 0.05 * ops, result
    # legacy stalls after the kill: its arrivals go out on schedule until its 8 ops in flight
    # all wait on the dead primary, then they are dropped and counted (never delayed)
    assert result["counts"]["legacy"]["dropped"] > 0


def test_a_worker_starts_from_the_shipped_locustfile():
    argv = worker_argv("127.0.0.1", 5557)
    locustfile = Path(argv[argv.index("-f") + 1])
    assert locustfile.is_file() and locustfile == Path(loadgen.__file__).parent / "locustfile.py"


def test_workload_modules_do_not_import_locust():
    code = ("import sys, loadgen.load.workload, loadgen.load.driver, loadgen.load.pacing, loadgen.load.durability, "
            "loadgen.harness.distributed, loadgen.harness.fault_relay, loadgen.harness.webui, loadgen.harness.verdict, "
            "loadgen.load.selfcheck, loadgen.harness.options; print('locust' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
