"""The web UI bundle (``loadgen/harness/recovery_ui/bundle``): Locust's UI built with
locust-ui and pegbench's Recovery tab, committed. It must be built from the committed sources
(``npm ci && npm run build`` there writes the digest this test recomputes), and Locust must
serve it unless the user names another build with ``--build-path``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from loadgen.harness.webui import UI_BUNDLE

pytestmark = pytest.mark.unit

SOURCES = UI_BUNDLE.parent


def source_digest() -> str:
    """What ``stamp.mjs`` computes: every input's name and bytes, in its order."""
    names = ["index.html", "package.json", "package-lock.json", "vite.config.js",
             *(f"src/{p.name}" for p in sorted((SOURCES / "src").iterdir()))]
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\n".encode())
        digest.update((SOURCES / name).read_bytes())
    return digest.hexdigest()


def test_the_bundle_is_built_from_the_committed_sources():
    recorded = (UI_BUNDLE / "SOURCE.sha256").read_text().strip()
    assert recorded == source_digest(), (
        "loadgen/harness/recovery_ui changed since bundle/ was built: run "
        "`npm ci && npm run build` there and commit bundle/")


def test_the_bundle_is_a_locust_page_whose_script_is_there():
    page = (UI_BUNDLE / "index.html").read_text()
    assert "window.templateArgs = {{ template_args|tojson }}" in page   # Locust renders it
    scripts = re.findall(r'src="\./(assets/[^"]+\.js)"', page)
    assert scripts and all((UI_BUNDLE / s).is_file() for s in scripts), scripts


def _web_env(monkeypatch, **web_kw):
    from locust.env import Environment
    from locust.event import Events

    from loadgen.harness.hooks import WorkloadSettings, attach

    monkeypatch.setattr("sys.argv", ["locust"])   # Locust's web UI parses the command line
    env = Environment(events=Events())
    env.create_local_runner()
    env.create_web_ui("127.0.0.1", 0, delayed_start=True, **web_kw)   # no server: test_client
    attach(env, WorkloadSettings(meta=("127.0.0.1:1",), run_id="t"))
    return env


def test_locust_serves_the_bundle_with_the_recovery_tabs_urls(monkeypatch):
    env = _web_env(monkeypatch)
    try:
        assert Path(env.web_ui.app.template_folder) == UI_BUNDLE
        urls = env.web_ui.template_args["pegbench"]
        assert set(urls) == {"rows", "series", "plotly", "chart"}    # no fault form: no runs
        client = env.web_ui.app.test_client()
        page = client.get("/").get_data(as_text=True)
        assert "/recovery.json" in page and "./assets/index-" in page
        assert client.get("/pegbench/recovery-chart.js").get_data(as_text=True).lstrip() \
            .startswith("window.pegbenchChart = function (div)")
    finally:
        env.runner.quit()


def test_a_build_path_of_the_users_own_is_left_alone(tmp_path, monkeypatch):
    env = _web_env(monkeypatch, build_path=str(tmp_path))
    try:
        assert Path(env.web_ui.app.template_folder) == tmp_path
    finally:
        env.runner.quit()
