"""Background onebox supervisors (``control_client.start_background``) running fake nodes, or
real ones started through ``pegbench onebox start``, always cleaned up: use through a fixture
that calls :meth:`Background.cleanup` in ``finally``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadgen.onebox import control_client
from loadgen.onebox.spec import FAST_FD, FDConfig, OneboxSpec

from . import fake_node
from .ports import free_port_run, free_ports
from .processes import alive, kill_groups

#: The ``pegbench`` command, as a subprocess runs it.
PEGBENCH = [sys.executable, "-m", "loadgen.cli"]


class Background:
    """Starts supervisors under ``tmp_path`` on free ports; remembers every pid it saw."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.dirs: list[Path] = []
        self.pids: set[int] = set()

    def start(self, name: str = "box", **spec_fields: Any) -> OneboxSpec:
        """A healthy background onebox of fake nodes; its spec (``spec_fields`` override)."""
        meta_port, *replica_ports = free_ports(4)
        spec = OneboxSpec(dir=str(self.tmp_path / name), meta_port=meta_port,
                          replica_ports=tuple(replica_ports), fd=FAST_FD, **spec_fields)
        self.dirs.append(Path(spec.dir))
        meta = control_client.start_background(spec, start_timeout_s=20,
                                               node_command=fake_node.COMMAND)
        assert meta == spec.meta_addr
        self.status(spec.dir)
        return spec

    def start_with_cli(self, name: str = "box", fd: FDConfig = FAST_FD,
                       partitions: int = 8) -> Path:
        """A healthy background onebox of real nodes, started with ``pegbench onebox start``
        on free ports; its dir."""
        d = self.tmp_path / name
        self.dirs.append(d)
        base = free_port_run(4)  # replicas on base..base+2, the meta on base+3
        out = subprocess.run(
            [*PEGBENCH, "onebox", "start", "--dir", str(d), "--meta-port", str(base + 3),
             "--replica-port", str(base), "--partitions", str(partitions),
             "--fd-beacon", str(fd.beacon_s), "--fd-check", str(fd.check_s),
             "--fd-lease", str(fd.lease_s), "--fd-grace", str(fd.grace_s)],
            capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr
        self.status(d)
        return d

    def status(self, dir: str | Path) -> dict:
        """The supervisor's status document (its pids are remembered for cleanup)."""
        status = control_client.request(dir, "status")
        self.pids |= {status["supervisor_pid"], *(n["pid"] for n in status["nodes"])}
        return status

    def cleanup(self) -> None:
        for d in self.dirs:
            try:
                control_client.stop(d)
            except Exception:  # noqa: BLE001 - cleanup goes on to the signals below
                pass
        kill_groups(p for p in self.pids if alive(p))
        for p in self.pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
