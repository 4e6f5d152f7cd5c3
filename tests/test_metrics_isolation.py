"""metrics/ knows no sockets: importing it pulls in neither the client, gevent nor Locust."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_importing_metrics_imports_no_client_gevent_or_locust():
    code = ("import sys, loadgen.metrics, loadgen.bench.recorder, loadgen.metrics.hlog; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gevent', 'locust') "
            "or m.startswith('loadgen.pegasus') or m.startswith('loadgen.onebox')]; "
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"


def test_public_api_is_listed():
    import loadgen.metrics as metrics

    for name in metrics.__all__:
        assert getattr(metrics, name) is not None, name
