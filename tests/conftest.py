"""Shared fixtures: golden vectors, free ports."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_CANDIDATES = [ROOT.parent / "shared" / "vectors" / "pegasus-wire.json",
                      ROOT / "tests" / "data" / "pegasus-wire.json"]


@pytest.fixture(scope="session")
def vectors() -> dict:
    for path in VECTORS_CANDIDATES:
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"golden vectors not found in {VECTORS_CANDIDATES}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
