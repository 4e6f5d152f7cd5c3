"""The Recovery tab in Locust's web UI, over HTTP against real processes on loopback.

1. An in-process Environment with a local runner and the web UI (the way ``pegbench run``
   would serve it): a swarm POSTed over HTTP, a primary "killed" mid-run and announced
   through the fault relay; the policy rows and the fault row fill in ``/stats/requests``'s
   ``extended_stats``, and the page declares the tab and its table.
2. Plain ``locust -f loadgen/locustfile.py`` with its web UI: the tab is registered by the
   locustfile's ``init`` hook, rows fill after a swarm, and SIGTERM exits 0 (failed requests
   do not fail a plain run).
3. With Locust's ``--web-login``: ``/recovery`` and ``/recovery.json`` refuse an anonymous
   request (a redirect to the login page, as Locust's own routes do) and answer a logged-in one.
"""

from __future__ import annotations

from http.client import HTTPConnection
import json
import re
import sys
import time

import pytest
from support.locust_procs import LOCUSTFILE, SUPPORT, Procs, http, recovery_rows, wait_for_http
from support.ports import free_port
from support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def page_template_args(base: str) -> dict:
    """``window.templateArgs`` of the UI's index page (what the React app renders from)."""
    html = http(f"{base}/")[1]
    match = re.search(r"window\.templateArgs = (\{.*?\})\s*</script>", html, re.DOTALL)
    assert match, html[:2000]
    return json.loads(match.group(1))


def poll_rows(base: str, done, timeout_s: float = 30.0) -> list[dict]:
    """Poll the Recovery rows until ``done(rows_by_name)``; the last rows either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = recovery_rows(base)
        if done({r["name"]: r for r in rows}) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_recovery_tab_rows_fill_in_with_policies_and_the_fault(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Procs(tmp_path) as procs:
        procs.start([sys.executable, str(SUPPORT / "locust_webui.py"), str(port), str(tmp_path)],
                    "webui")
        wait_for_http(f"{base}/")
        args = page_template_args(base)
        assert {"key": "recovery", "title": "Recovery"} in args["extended_tabs"]
        table = next(t for t in args["extended_tables"] if t["key"] == "recovery")
        titles = [c["title"] for c in table["structure"]]
        assert titles[0] == "Row" and "TTR-first p99 ms" in titles and "Missed ops" in titles
        assert titles[-2:] == ["TTR-first / lag legacy", "TTR-first / lag failover"]

        status, body = http(f"{base}/swarm", {"user_count": 4, "spawn_rate": 10})
        assert status == 200 and json.loads(body)["success"], body

        def filled(rows: dict) -> bool:
            fault = next((r for n, r in rows.items() if n.startswith("fault")), None)
            return (all(rows.get(p, {}).get("ops", 0) > 20 for p in ("legacy", "failover"))
                    and fault is not None and re.search(r"\d ms", fault["ttr_1"]) is not None)

        rows = {r["name"]: r for r in poll_rows(base, filled)}
        assert filled(rows), (rows, procs.log("webui"))
        failover, legacy = rows["failover"], rows["legacy"]
        assert failover["errors"] <= 0.05 * failover["ops"]
        assert isinstance(failover["ttr_first_p50_ms"], float) and failover["ttr_first_p50_ms"] < 500
        assert failover["attempts_per_op"] >= 1 and failover["meta_qps"] >= 0
        assert legacy["ttr_first_p50_ms"] == "∞"               # never recovers: censored
        fault = next(r for n, r in rows.items() if n.startswith("fault"))
        assert "partitions 0,1,2,3" in fault["name"]
        assert fault["ttr_0"].startswith("not recovered")
        # rows carry every declared column (the React table looks them up by key)
        assert {c["key"] for c in table["structure"]} <= set(fault) | set(failover)

        html = http(f"{base}/recovery")[1]
        assert "<table id='recovery'>" in html and "<td>failover</td>" in html
        assert http(f"{base}/stop", {})[0] == 200


def test_locust_with_a_profile_has_the_tab_and_exits_with_its_verdict(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Procs(tmp_path) as procs:
        meta = procs.cluster()[0]
        ui = procs.locust("--web-host", "127.0.0.1", "--web-port", str(port),
                          "--pegbench-profile", "profiles/quick.toml", "--meta", meta,
                          "--policies", "java,failover", "--set", "workload.warmup_s=0.5",
                          "--pegbench-dump-dir", str(tmp_path), name="locust")
        wait_for_http(f"{base}/")
        args = page_template_args(base)
        assert {"key": "recovery", "title": "Recovery"} in args["extended_tabs"]
        assert args["num_users"] == 8                  # 4 users per policy, 2 policies
        assert http(f"{base}/swarm", {"user_count": 4, "spawn_rate": 10})[0] == 200
        rows = poll_rows(base, lambda r: all(r.get(p, {}).get("ops", 0) > 20
                                             for p in ("java", "failover")))
        by_name = {r["name"]: r for r in rows}
        assert by_name["java"]["ops"] > 20 and by_name["failover"]["ops"] > 20, procs.log("locust")
        assert not any(n.startswith("fault") for n in by_name)   # no controller, no faults
        assert http(f"{base}/stop", {})[0] == 200
        results = tmp_path / "locust-run" / "results.json"   # the Stop wrote the run folder
        assert wait_until(results.exists, 60), procs.log("locust")
        procs.stop_all()                               # SIGTERM: Locust shuts down cleanly
        # a measured run: the exit code is its verdict's; stopped before the profile's first
        # fault (15 s), "failover recovered every fault" is unknown: exit 1, not a crash (3)
        verdict = json.loads(results.read_text())["slo"]["verdict"]
        assert verdict == "unknown" and ui.returncode == 1, (verdict, procs.log("locust"))
    dump = json.loads((tmp_path / "local-local-quit.json").read_text())
    assert set(dump["counts"]) == {"java", "failover"}


def raw_get(port: int, path: str, cookie: str | None = None) -> tuple[int, dict, str]:
    """(status, headers, body) of a GET that follows no redirect."""
    conn = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def test_recovery_routes_refuse_anonymous_requests_under_web_login(tmp_path):
    port = free_port()
    with Procs(tmp_path) as procs:
        procs.start([sys.executable, "-m", "locust",
                     "-f", f"{LOCUSTFILE},{SUPPORT / 'locust_web_login.py'}", "--web-login",
                     "--web-host", "127.0.0.1", "--web-port", str(port),
                     "--meta", "127.0.0.1:1"],
                    "locust")
        wait_for_http(f"http://127.0.0.1:{port}/login")
        for path in ("/", "/recovery", "/recovery.json"):   # Locust's own index, then ours
            status, headers, body = raw_get(port, path)
            assert status == 302 and "/login" in headers.get("Location", ""), \
                (path, status, body[:300], procs.log("locust"))
            assert "<table" not in body and "columns" not in body     # no rows leak
        status, headers, _ = raw_get(port, "/test-login")
        assert status == 200, procs.log("locust")
        cookie = headers["Set-Cookie"].split(";")[0]
        status, _, body = raw_get(port, "/recovery", cookie)
        assert status == 200 and "<table id='recovery'>" in body, body[:500]
        status, _, body = raw_get(port, "/recovery.json", cookie)
        assert status == 200 and json.loads(body)["columns"][0]["key"] == "name"
