"""The HTML report of a run folder built through the real metrics pipeline: one offline
file, plotly.js once, SVG traces only, every section, the raw data embedded and escaped,
one colour per policy in every figure, censored samples shown as not recovered."""

from __future__ import annotations

import json
import re

import pytest
from support.runs import POLICIES, make_run

from loadgen.report import analyse, load_run, main, render
from loadgen.report.page import DATA_ID, FIGURE_IDS, SECTIONS
from loadgen.report.style import BUILTIN_COLOURS, FAULT_FILL, SVG_TRACES, policy_colours

pytestmark = pytest.mark.unit

PLOTLY_SIGNATURE = "plotly.js v"        # the library's header comment, once per copy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    assert main([str(run_dir)]) == 0
    return (run_dir / "report.html").read_text(encoding="utf-8")


def _without_library(page: str) -> str:
    start = page.index('<script type="text/javascript">')
    return page[:start] + page[page.index("</script>", start):]


def _figures_in_page(page: str) -> dict[str, tuple[list, dict]]:
    """div id -> (data, layout), decoded from each figure's Plotly.newPlot call."""
    decoder, out = json.JSONDecoder(), {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        layout, _ = decoder.raw_decode(page, page.index("{", end))
        out[match.group(1)] = (data, layout)
    return out


def _embedded(page: str, data_id: str = DATA_ID) -> dict:
    match = re.search(rf'<script type="application/json" id="{data_id}">(.*?)</script>', page,
                      re.DOTALL)
    assert match, data_id
    return json.loads(match.group(1))


def _trace_colour(trace: dict) -> str | None:
    return (trace.get("line") or {}).get("color") or (trace.get("marker") or {}).get("color")


def test_one_plotly_copy_svg_only_and_offline(page):
    assert page.count(PLOTLY_SIGNATURE) == 1
    rest = _without_library(page)
    assert PLOTLY_SIGNATURE not in rest and "scattergl" not in rest.lower()
    for div_id, (data, _) in _figures_in_page(page).items():
        assert {t["type"] for t in data} <= SVG_TRACES, div_id
    for remote in ('src="http', "src='http", 'href="http', "cdn.", "@import", "@font-face",
                   "fonts.googleapis", "<link"):
        assert remote not in rest, remote
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_every_section_and_figure_has_a_stable_id(page):
    for sid, title in SECTIONS:
        assert f'<section id="{sid}"><h2>{title}</h2>' in page
    figures = _figures_in_page(page)
    assert set(figures) == set(FIGURE_IDS.values())
    for div_id in FIGURE_IDS.values():
        assert page.count(f'<div id="{div_id}"') == 1
    assert 'class="no-data"' not in page.split('id="sec-run"')[0]     # every section had data


def test_embedded_json_equals_the_run_files(page, run_dir):
    data = _embedded(page)
    assert data["results"] == json.loads((run_dir / "results.json").read_text())
    assert data["timeline"] == json.loads((run_dir / "timeline.json").read_text())
    lines = (run_dir / "faults.jsonl").read_text().splitlines()
    assert data["fault_log"] == [json.loads(line) for line in lines]


def test_embedded_json_and_text_are_escaped(tmp_path):
    evil = "</script><script>alert(1)</script><!--"
    run_dir = make_run(tmp_path, extra={"profile": {"name": evil}, "machine": {"host": evil}})
    page = render(analyse(load_run(run_dir)))
    block = re.search(rf'id="{DATA_ID}">(.*?)</script>', page, re.DOTALL).group(1)
    assert "</" not in block and "<!--" not in block
    assert _embedded(page)["results"]["profile"]["name"] == evil
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page           # shown, as text


def test_one_colour_per_policy_in_every_figure(page):
    colours = policy_colours(POLICIES)
    assert colours == {p: BUILTIN_COLOURS[p] for p in POLICIES}
    seen: dict[str, set[str]] = {p: set() for p in POLICIES}
    for div_id, (data, _) in _figures_in_page(page).items():
        for trace in data:
            if trace.get("meta") in POLICIES:
                assert _trace_colour(trace) == colours[trace["meta"]], (div_id, trace["name"])
                seen[trace["meta"]].add(div_id)
            else:      # a non-policy trace (server failover) never borrows a policy colour
                assert _trace_colour(trace) not in colours.values(), (div_id, trace.get("name"))
    for policy in POLICIES:
        assert seen[policy] == set(FIGURE_IDS.values()), policy


def test_colours_for_custom_policies_are_distinct_and_stable():
    colours = policy_colours(["legacy", "mine", "theirs", "failover"])
    assert colours["legacy"] == BUILTIN_COLOURS["legacy"]
    assert len(set(colours.values())) == 4
    assert policy_colours(["legacy", "mine", "theirs", "failover"]) == colours


def test_censored_samples_are_shown_as_not_recovered(page, run_dir):
    figures = _figures_in_page(page)
    cdf, _ = figures["fig-ttr-cdf"]
    legacy_first = next(t for t in cdf if t["meta"] == "legacy" and t["xaxis"] == "x")
    assert legacy_first["name"] == "legacy: 2 of 7 not recovered"
    assert max(legacy_first["y"]) == pytest.approx(5 / 7)            # stays below 1
    failover_first = next(t for t in cdf if t["meta"] == "failover" and t["xaxis"] == "x")
    assert max(failover_first["y"]) == pytest.approx(1.0)
    dots, _ = figures["fig-fault-detail"]
    arrows = next(t for t in dots if t["name"] == "legacy not recovered")
    assert len(arrows["x"]) == 2 and set(arrows["x"]) == {12000.0}   # at the horizon
    faults = page.split('id="sec-faults"')[1].split("</section>")[0]
    assert faults.count("not recovered (&gt; 12,000)") == 4           # first + stable, 2 rows
    summary = page.split('class="summary"')[1].split("</table>")[0]
    legacy_p99 = re.search(r"<td>TTR-first p99 \(ms\)</td><td>([^<]*)</td>", summary).group(1)
    assert legacy_p99 == "not recovered"
    assert "legacy: 7 samples; not recovered (censored): 2 TTR-first" in page


def test_summary_has_each_metric_with_old_new_ratio(page):
    summary = page.split('class="summary"')[1].split("</table>")[0]
    assert "<th>legacy / failover</th>" in summary
    for label in ("what it models", "TTR-first p50", "TTR-first p99", "TTR-first max",
                  "recovered / total", "client lag p99", "error rate (overall)",
                  "error rate (during faults)", "attempts / op", "meta queries/s",
                  "missed arrivals (generator late)", "dropped arrivals (in-flight cap full)",
                  "put response time p99", "put response time p99.9",
                  "put response time p99 (during faults)", "put response time p99 (recovery)",
                  "put response time p99 (steady)", "lost writes"):
        assert f"<td>{label}" in summary, label
    # what the client adds leads: client lag, then the response time during faults, then TTR
    labels = re.findall(r"<tr><td>([^<]+)</td>", summary)
    assert labels[1:5] == ["client lag p99 (ms)", "put response time p50 (during faults) (ms)",
                           "put response time p99 (during faults) (ms)", "TTR-first p50 (ms)"], \
        labels
    assert "Go client before #1916" in summary and "5 / 7 (71.4 %)" in summary
    assert "0 of " in summary.split("lost writes")[1]
    slo = page.split('class="slo"')[1].split("</table>")[0]
    assert slo.count('class="badge pass"') == 3 and slo.count('class="badge unknown"') == 1


def test_latency_per_phase_draws_steady_fault_and_recovery_per_policy(page):
    traces, _ = _figures_in_page(page)["fig-latency-phase"]
    names = {t["name"] for t in traces}
    assert {"legacy fault", "failover fault", "legacy steady", "failover steady"} <= names
    fault = {t["name"]: t for t in traces if t["name"].endswith(" fault")}
    # while a primary was down legacy waited its op timeout; failover did not
    assert max(fault["legacy fault"]["y"]) > 5 * max(fault["failover fault"]["y"])
    assert {t["line"]["dash"] for t in fault.values()} == {"dash"}


def test_the_headline_leads_with_what_the_client_adds(page, run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    failover = results["policies"]["failover"]
    during = failover["latency_by_phase_us"]["put"]["response"]["fault"]
    assert during["count"] > 0 and during["p99"] > 0
    headline = re.search(r'<p class="headline">(.*?)</p>', page).group(1)
    lag, fault, ttr = (headline.index(s) for s in ("client lag p99",
                                                   "put response p50 / p99 during faults",
                                                   "TTR-first p50"))
    assert headline.startswith("failover vs legacy: client lag p99 ") and lag < fault < ttr
    p50, p99 = (f"{during[k] / 1000:.4g}" for k in ("p50", "p99"))
    assert f"during faults {p50} / {p99} ms vs" in headline.replace(",", ""), headline


def test_timeline_shades_every_fault_and_marks_failovers(page):
    data, layout = _figures_in_page(page)["fig-timeline"]
    rows = 4
    assert all(layout[f"xaxis{i}"]["matches"] == "x4" for i in ("", "2", "3"))
    fault_shapes = [s for s in layout["shapes"] if s.get("fillcolor") == FAULT_FILL]
    assert len(fault_shapes) == 3 * rows                    # 3 injected faults, every row
    assert {(s["x0"], s["x1"]) for s in fault_shapes} == {(10.0, 13.0), (20.0, 21.5),
                                                          (28.0, 31.0)}
    labels = {a["text"] for a in layout["annotations"]}
    assert {"1: kill replica1", "2: pause replica2", "3: kill replica3"} <= labels
    failover = next(t for t in data if t["name"] == "server failover")
    assert pytest.approx(sorted(failover["x"])) == [10.8, 10.82, 21.5, 28.79, 28.81]
    vlines = [s for s in layout["shapes"] if s.get("type") == "line"]
    assert len(vlines) == 5 * rows
    kinds = {t["name"] for t in data if t["meta"] == "failover" and "ERR_" in t["name"]}
    assert kinds == {"failover ERR_INVALID_STATE", "failover ERR_TIMEOUT"}


def test_error_breakdown_adds_up_to_the_results(run_dir):
    model = analyse(load_run(run_dir))
    results = model.run.results
    for policy in POLICIES:
        split = model.errors_split[policy]
        by_kind = {kind: sum(phases.values()) for kind, phases in split.items()}
        assert by_kind == results.policies[policy].errors_by_kind
        assert sum(p["fault"] for p in split.values()) > 0
        assert sum(p["steady"] for p in split.values()) == 0


def test_run_without_faults_says_so(tmp_path):
    run_dir = make_run(tmp_path, faults=False)
    assert main([str(run_dir), "--out", str(tmp_path / "out" / "r.html")]) == 0
    page = (tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    figures = _figures_in_page(page)
    assert set(figures) == {"fig-timeline", "fig-latency-phase", "fig-latency"}
    traces, _ = figures["fig-latency-phase"]                # no fault: steady state only
    assert traces and all(t["name"].endswith(" steady") for t in traces)
    for sid in ("sec-faults", "sec-ttr"):
        body = page.split(f'id="{sid}"')[1].split("</section>")[0]
        assert 'class="no-data">No fault was injected in this run' in body, sid
    assert 'class="no-data">No op failed in this run.' in page
    assert "no fault, so no time to recover to compare" in page
    assert page.count(PLOTLY_SIGNATURE) == 1
    assert _embedded(page)["fault_log"] == []


def test_a_folder_with_results_only_still_renders(tmp_path, run_dir):
    (tmp_path / "results.json").write_text((run_dir / "results.json").read_text())
    page = render(analyse(load_run(tmp_path)))
    assert "No timeline.json in the run folder" in page
    assert "No faults.jsonl in the run folder" in page
    assert "Summary points (p50, p99, p99.9) only" in page
    assert _embedded(page)["timeline"] is None


def test_same_run_folder_gives_the_same_page(run_dir, page):
    assert render(analyse(load_run(run_dir))) == page


@pytest.mark.parametrize("content, problem", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"format": "something-else", "version": 1, "policies": {}}', "format is 'something-else'"),
    ('{"format": "pegbench-results", "version": 9, "policies": {}, "run": {}}', "version is 9"),
])
def test_unreadable_input_exits_2_naming_the_file(tmp_path, capsys, content, problem):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "results.json") in err and problem in err
    assert not (tmp_path / "report.html").exists()


def test_missing_run_folder_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: not found" in capsys.readouterr().err


def test_several_runs_merge_their_histograms_into_one_page(tmp_path, capsys, run_dir):
    other = make_run(tmp_path / "other")
    assert main([str(run_dir), str(other)]) == 2          # whose folder would it go to?
    assert "--out: name the page" in capsys.readouterr().err
    out = tmp_path / "merged.html"
    assert main([str(run_dir), str(other), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    merged = page.split('id="sec-merged"')[1].split("</section>")[0]
    assert "Merged over 2 runs" in merged
    # each policy's merged TTR-first counts both runs' recovered and censored samples
    for policy in ("legacy", "failover"):
        blocks = [json.loads((d / "results.json").read_text())["policies"][policy]["ttr_hdr"]
                  ["ttr_first_ms"] for d in (run_dir, other)]
        row = next(r for r in re.findall(r"<tr>(.*?)</tr>", merged, flags=re.DOTALL)
                   if r.startswith(f"<td>{policy}</td>"))
        n, censored = (sum(b[k] for b in blocks) for k in ("count", "censored"))
        assert f"n={n}, {censored} censored" in row and "[2 runs]" in row, row
    assert page.count('id="sec-verdict"') == 1             # the first run's report follows
