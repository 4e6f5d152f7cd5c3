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

FIGURES = ("fig-timeline", "fig-fault-detail", "fig-ttr-cdf", "fig-latency", "fig-errors")


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
