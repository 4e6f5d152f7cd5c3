"""Where the golden wire vectors live: the shared copy if present, else the repository's."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS_CANDIDATES = [ROOT.parent / "shared" / "vectors" / "pegasus-wire.json",
                      ROOT / "tests" / "data" / "pegasus-wire.json"]


def load_vectors() -> dict:
    """The golden vectors (``pegasus-wire.json``); FileNotFoundError naming where it looked."""
    for path in VECTORS_CANDIDATES:
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"golden vectors not found in {VECTORS_CANDIDATES}")
