"""Onebox durability: kill/restart replicas (the written primary too) under writes; nothing acked is lost."""

from __future__ import annotations

import threading
import time

import pytest
from support.onebox import Writer, config_log, node_of, pidx_of
from support.ports import onebox_ports

from loadgen.onebox.spec import FAST_FD, FDConfig, OneboxSpec
from loadgen.onebox.supervisor import Onebox

pytestmark = pytest.mark.onebox

#: A grace period long enough that a killed node restarts within it even on a loaded machine
#: (a restart takes well under a second), so the meta sees a new incarnation, not a silence.
RESTART_FD = FDConfig(beacon_s=0.1, check_s=0.05, lease_s=2.5, grace_s=3.0)


def _box(path, checkpoint_every: int, fd: FDConfig = FAST_FD) -> Onebox:
    spec = OneboxSpec(dir=str(path), **onebox_ports(3), fd=fd,
                      checkpoint_every=checkpoint_every)
    return Onebox.from_spec(spec)


@pytest.mark.parametrize("checkpoint_every", [10000, 40], ids=["log-only", "checkpoints"])
def test_no_acked_write_lost_across_kills_and_restarts(tmp_path, checkpoint_every):
    with _box(tmp_path / "box", checkpoint_every, RESTART_FD) as box:
        writers = [Writer(box, f"d{i}", keys=24) for i in range(3)]
        threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
        for t in threads:
            t.start()
        hot = writers[0].keys[0]

        def primary_of_hot() -> str:
            return node_of(box, str(box.config().partitions[pidx_of(hot)].primary))

        time.sleep(0.5)
        victim = primary_of_hot()
        box.kill(victim)                  # the primary being written, restarted after failover
        time.sleep(box.spec.fd.grace_s + 0.7)  # declared dead, failed over
        box.restart(victim)
        box.wait_healthy(15)
        time.sleep(0.3)
        victim = primary_of_hot()
        t_kill = time.monotonic()
        box.kill(victim)                  # restarted before the grace period ends: new incarnation
        box.restart(victim)
        box.wait_healthy(15)
        addr = box.spec.nodes[victim]
        deaths = [r["reason"] for r in config_log(box)
                  if r["t_mono"] > t_kill and f"{addr} dead" in r["reason"]]
        assert deaths and all("restarted with a new incarnation" in why for why in deaths), deaths
        time.sleep(0.3)
        other = next(n for n in box.spec.replica_names if n != primary_of_hot())
        box.restart(other)                # graceful restart of a secondary
        box.wait_healthy(15)
        time.sleep(0.5)
        for w in writers:
            w.stop = True
        for t in threads:
            t.join(10)
        box.wait_healthy(15)
        cfg = box.config()
        every = {box.spec.nodes[n] for n in box.spec.replica_names}
        for p in cfg.partitions:
            assert {str(p.primary), *map(str, p.secondaries)} == every
        assert sum(w.ok for w in writers) > 100
        for w in writers:
            assert w.verify(box) == []


def test_restart_after_torn_log_tail(tmp_path):
    """kill -9 mid-write leaves half a record: the node replays what is whole and rejoins."""
    from loadgen.onebox.storage import entry_record

    with _box(tmp_path / "box", 10000) as box:
        writer = Writer(box, "torn", keys=16)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        time.sleep(0.5)
        box.kill("replica2")
        torn = entry_record(99, 10 ** 6, b"\x00" * 64)
        for seg in box.spec.node_dir("replica2").glob("p*/log.*"):
            with open(seg, "ab") as f:
                f.write(torn[:len(torn) // 2])
        box.restart("replica2")
        box.wait_healthy(15)
        time.sleep(0.3)
        writer.stop = True
        thread.join(10)
        assert writer.ok > 0 and writer.verify(box) == []
