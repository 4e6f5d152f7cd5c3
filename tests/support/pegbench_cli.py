"""``pegbench`` as a user runs it, for the end-to-end tests: a small profile on a real onebox
(a kill 4 s in, restarted 3 s later), the CLI as a subprocess in its own process group, and
where ``pegbench run --web`` says its web UI is."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

#: ``pegbench run --web``'s line naming its web UI.
WEB_URL = re.compile(r"web UI: (http://127\.0\.0\.1:\d+/)")


PROFILE = """
name = "tiny"
seed = 7
[cluster]
replica_nodes = 3
partitions = 4
[cluster.fd]
beacon_s = 0.1
check_s = 0.05
lease_s = 0.6
grace_s = 0.8
[workload]
users = 2
rate_per_user = 40
duration_s = {duration}
warmup_s = 2
op_timeout_ms = 1000
key_space = 100
value_bytes = [16, 64]
[policies]
compare = ["legacy", "failover"]
[[faults.events]]
at_s = 4
kind = "kill"
target = "primary-of:0"
restart_after_s = 3
[faults.health_gate]
enabled = true
limit_s = 5
[slo]
"failover.recovered_fraction" = {{ min = 1.0 }}
"durability.lost" = {{ max = 0 }}
"""


def write_profile(tmp_path: Path, duration: float) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(PROFILE.format(duration=duration))
    return path


def pegbench(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loadgen.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def web_url(lines: Iterable[str]) -> str | None:
    """The web UI's URL, once ``pegbench run --web`` printed it among ``lines``."""
    return next((m.group(1) for m in map(WEB_URL.search, lines) if m), None)
