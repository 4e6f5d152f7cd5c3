"""The committed Thrift code is exactly what the compiler makes from our IDL.

Not ``unit``: both tests run the Thrift compiler as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_current():
    if shutil.which("thrift") is None:
        if os.environ.get("CI"):
            pytest.fail("thrift compiler missing in CI: apt-get install -y thrift-compiler")
        pytest.skip("thrift compiler not installed (apt-get install -y thrift-compiler)")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_thrift.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"regenerate with scripts/gen_thrift.py:\n{proc.stdout}{proc.stderr}"


def test_check_detects_a_stale_file(tmp_path, monkeypatch):
    """The checker itself must notice an edit, or the test above proves nothing."""
    if shutil.which("thrift") is None:
        pytest.skip("thrift compiler not installed")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_thrift
    finally:
        sys.path.pop(0)
    fake_root = tmp_path / "repo"
    shutil.copytree(ROOT / "loadgen", fake_root / "loadgen",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(gen_thrift, "ROOT", fake_root)
    assert gen_thrift.check() == []
    target = fake_root / "loadgen" / "pegasus" / "gen" / "rrdb" / "ttypes.py"
    target.write_text(target.read_text().replace("expire_ts_seconds", "expire_ts", 1))
    assert any("stale" in p and "rrdb" in p for p in gen_thrift.check())
