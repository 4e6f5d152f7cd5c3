"""Headless Chromium (Debian's ``chromium``) for the real-browser checks: the DOM a page
renders to, after its scripts ran, with the page's script errors collected into it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

#: The flags this machine needs (no GPU, no sandbox as root, nothing phoning home: the
#: network is closed and Chromium's background connections would be refused, many a time).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions")
#: Put first in a page's <head>: every uncaught script error lands in an attribute of <html>.
ERROR_CATCHER = ("<script>window.addEventListener('error', function (e) {"
                 "var h = document.documentElement;"
                 "h.setAttribute('data-script-errors', (h.getAttribute('data-script-errors') || '')"
                 " + (e.message || 'error') + ' | ');});</script>")


def chromium() -> str:
    """The Chromium binary; .ci/run installs Debian's package."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed (bash .ci/run installs Debian's package)"
    return path


def dump_dom(url: str, *, budget_ms: int = 15000, timeout_s: float = 90.0) -> str:
    """The DOM of ``url`` after ``budget_ms`` of (virtual) time."""
    with tempfile.TemporaryDirectory(prefix="pegbench-chromium-") as profile:
        out = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}",
                              f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
