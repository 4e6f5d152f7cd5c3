"""Real-browser checks (headless Chromium): the report renders offline, and the Locust web
UI's Recovery tab shows live rows."""

from __future__ import annotations

import re

import pytest
from support.browser import ERROR_CATCHER, dump_dom
from support.locust_procs import Procs, http, wait_for_http
from support.onebox import make_box
from support.ports import free_port
from support.runs import make_run

from loadgen.report.command import write_report

pytestmark = pytest.mark.timeout(240)

FIGURES = ("fig-timeline", "fig-fault-detail", "fig-ttr-cdf", "fig-latency-phase", "fig-latency",
           "fig-errors")


def figure_divs(dom: str) -> dict[str, str]:
    """Each figure's div (by id) up to the next figure's: the part of the DOM plotly drew."""
    starts = sorted((m.start(), m.group(1)) for m in re.finditer(r'id="(fig-[a-z-]+)"', dom))
    bounds = [s for s, _ in starts] + [len(dom)]
    return {name: dom[start:bounds[i + 1]] for i, (start, name) in enumerate(starts)}


def test_the_report_renders_every_figure_offline_with_no_script_error(tmp_path):
    run = make_run(tmp_path / "run")
    page = write_report(run)
    html = page.read_text()
    assert "https://" not in re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S), \
        "the page refers to the network outside its scripts"
    page.write_text(html.replace("<head>", "<head>" + ERROR_CATCHER, 1))
    dom = dump_dom(page.as_uri())
    errors = re.search(r'<html[^>]*data-script-errors="([^"]*)"', dom)
    assert errors is None, errors.group(1)
    divs = figure_divs(dom)
    for name in FIGURES:
        assert name in divs, f"{name} missing from the rendered page"
        svg_layers = divs[name].count('class="main-svg"')
        assert svg_layers >= 1, f"{name}: plotly drew nothing ({svg_layers} SVG layers)"
        assert divs[name].count("<path") >= 3, f"{name}: an empty plot"


@pytest.mark.onebox
def test_the_recovery_tab_of_the_locust_web_ui_shows_live_policy_rows(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with make_box(tmp_path / "box", partitions=4) as box, Procs(tmp_path) as procs:
        procs.locust("--web-host", "127.0.0.1", "--web-port", str(port),
                     "--pegbench-profile", "profiles/quick.toml", "--meta", box.meta_addrs[0],
                     "--policies", "legacy,failover", "--set", "workload.warmup_s=0.5",
                     "--set", "workload.users=2", name="locust")
        wait_for_http(f"{base}/")
        assert http(f"{base}/swarm", {"user_count": 4, "spawn_rate": 10})[0] == 200
        dom = ""
        for _ in range(4):  # the UI polls the stats every 2 s: give the rows time to fill
            dom = dump_dom(f"{base}/?tab=recovery", budget_ms=8000)
            cells = re.findall(r"<td[^>]*>(.*?)</td>", dom)
            if "failover" in cells and "legacy" in cells:
                break
        assert http(f"{base}/stop", {})[0] == 200
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", dom)]
    assert "failover" in cells and "legacy" in cells, dom[-3000:]
    row = cells[cells.index("failover"):cells.index("failover") + 3]
    assert int(row[1]) > 0, row  # live op counts in the rendered DOM


def _cell_starting(driver, prefix: str):
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.XPATH, f"//td[starts-with(normalize-space(.), '{prefix}')]")
    return cells[0] if cells else None


def _wait_quietly(driver, condition, timeout_s: float = 3.0):
    """``condition``'s value once truthy, or None after ``timeout_s``."""
    from support.webdriver import wait_for

    try:
        return wait_for(driver, condition, timeout_s)
    except AssertionError:
        return None


def _button(driver, label: str):
    from selenium.webdriver.common.by import By

    found = [b for b in driver.find_elements(By.TAG_NAME, "button")
             if b.is_displayed() and b.text.strip().upper() == label]
    return found[0] if found else None


def test_pegbench_run_web_driven_from_the_page(tmp_path):
    """``pegbench run --web``: press Start in the page; on the Recovery tab see the kill's row
    fill in (failover's TTR-first) and the live chart draw its band; inject a pause with the
    tab's fault form and see its row; press Stop and, without reloading, see the finished
    run's row; follow its report link: the report draws its figures. A screenshot of the tab
    mid-run goes to ``$PEGBENCH_SCREENSHOT`` when set (the README's)."""
    import json
    import os
    import signal
    import threading
    import time

    from selenium.webdriver.common.by import By
    from support.pegbench_cli import pegbench, web_url, write_profile
    from support.processes import processes_mentioning, wait_until
    from support.webdriver import browser, wait_for

    out = tmp_path / "web"
    proc = pegbench("run", str(write_profile(tmp_path, 40)), "--out", str(out), "--quiet",
                    "--web", "--web-port", "0")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                     daemon=True).start()
    try:
        assert wait_until(lambda: web_url(lines), 90), "".join(lines)
        base = web_url(lines)
        with browser() as driver:
            driver.set_window_size(1400, 1500)
            driver.get(base)
            wait_for(driver, lambda d: _button(d, "START"), what="the Start button").click()
            started = time.monotonic()
            wait_for(driver, lambda d: _button(d, "STOP"), what="the Stop button")
            tab = wait_for(driver, lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "[role=tab]")
                                              if t.text.strip().upper() == "RECOVERY"],
                           what="the Recovery tab")[0]
            tab.click()
            # the kill is 4 s in: its row, then failover's TTR-first on it (the last column)
            row = wait_for(driver, lambda d: _cell_starting(d, "fault 1: kill"), 60,
                           "the kill's row")
            wait_for(driver, lambda d: _cell_starting(d, "fault 1: kill").find_elements(
                By.XPATH, "./ancestor::tr/td[last()][contains(., 'ms')]"), 30,
                "failover's TTR-first of the kill")
            assert "partitions" in row.text
            # the live chart in the tab: drawn, with the kill's band labelled
            wait_for(driver, lambda d: "fault 1: kill" in d.execute_script(
                "var c = document.getElementById('recovery-chart');"
                "return c && c.querySelector('svg') ? c.textContent : '';"), 30, "the live chart")
            # the tab's fault form: a pause of partition 1's primary, then its row
            form = driver.find_element(By.ID, "fault-form")
            target = form.find_element(By.NAME, "target")
            target.clear()
            target.send_keys("primary-of:1")
            form.find_element(By.NAME, "duration_s").send_keys("1")
            _button(driver, "INJECT").click()
            result = wait_for(driver, lambda d: d.find_elements(By.ID, "fault-result"), 10,
                              "the form's answer")[0]
            assert "fault 2: pause primary-of:1" in result.text, result.text
            wait_for(driver, lambda d: _cell_starting(d, "fault 2: pause"), 30, "the pause's row")
            shot = os.environ.get("PEGBENCH_SCREENSHOT")
            if shot:   # once the chart shows both faults and the seconds after them
                time.sleep(max(0.0, 16 - (time.monotonic() - started)))
                driver.save_screenshot(shot)
            _button(driver, "STOP").click()
            # the tab polls on its own: the finished run's row comes without a reload
            run_cell = wait_for(driver, lambda d: _cell_starting(d, "run 1"), 120,
                                "the finished run's row")
            assert "verdict" in run_cell.text
            link = run_cell.find_element(By.XPATH, "./ancestor::tr//a[text()='report']")
            assert link.get_attribute("href").endswith("/pegbench/runs/1/report.html")
            link.click()
            wait_for(driver, lambda d: d.execute_script(
                "return document.querySelectorAll('#fig-timeline svg').length"), 60,
                "the report's timeline figure")
            errors = [e for e in driver.get_log("browser")   # script errors, not a favicon 404
                      if e.get("level") == "SEVERE" and e.get("source") == "javascript"]
            assert not errors, errors
        results = json.loads((out / "results.json").read_text())
        assert [f["kind"] for f in results["faults"]] == ["kill", "pause"]
        origins = [json.loads(line)["origin"] for line in (out / "faults.jsonl").open()]
        assert origins == ["faults.events[0]", "ui"]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert processes_mentioning(str(out)) == []
