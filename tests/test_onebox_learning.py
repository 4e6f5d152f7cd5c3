"""Onebox learning: a node that missed more log, or a bigger checkpoint, than one frame can carry
still catches up."""

from __future__ import annotations

import re
import threading
import time

import pytest
from support.onebox import Caller, Writer, make_box, node_of, pidx_of, put_args, wait_for

from loadgen.pegasus import codec
from loadgen.pegasus.codec import MAX_FRAME_BYTES
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.onebox

VALUE = b"x" * (1024 * 1024)


def kill_a_secondary(box, hash_key: bytes) -> tuple[int, str, str]:
    """Kill one secondary of ``hash_key``'s partition and wait until the meta drops it.

    Returns ``(pidx, primary address, name of the killed node)``.
    """
    pidx = pidx_of(hash_key)
    cfg = box.config().partitions[pidx]
    absent = node_of(box, str(cfg.secondaries[0]))
    box.kill(absent)
    wait_for(lambda: len(box.config().partitions[pidx].secondaries) == 1, box.spec.fd.grace_s + 3)
    return pidx, str(cfg.primary), absent


def test_learner_catches_up_on_more_than_a_frame_of_log(tmp_path):
    with make_box(tmp_path / "box") as box:
        fd = box.spec.fd
        hk = b"bulky"
        pidx, primary, absent = kill_a_secondary(box, hk)
        caller = Caller(timeout_s=5.0)
        n = MAX_FRAME_BYTES // len(VALUE) + 8   # the learner misses more than one frame
        for i in range(n):
            assert caller.call(primary, codec.RPC_PUT, put_args(hk, b"%d" % i, VALUE), pidx)[0] == "ERR_OK"
        box.restart(absent)
        box.wait_healthy(30)
        # The learner holds it all: with the other secondary gone it alone can carry on.
        other = node_of(box, next(str(s) for s in box.config().partitions[pidx].secondaries
                                  if str(s) != box.spec.nodes[absent]))
        box.kill(other)
        box.kill(node_of(box, primary))
        wait_for(lambda: str(box.config().partitions[pidx].primary) == box.spec.nodes[absent],
                 2 * (fd.grace_s + fd.check_s) + 10)
        err, got = caller.call(box.spec.nodes[absent], codec.RPC_GET,
                               blob(make_key(hk, b"%d" % (n - 1))), pidx)
        caller.close()
        assert err == "ERR_OK" and got.value.data == VALUE


CHUNK = 16 * 1024


def test_restarted_node_learns_a_multi_piece_checkpoint_while_writes_go_on(tmp_path):
    with make_box(tmp_path / "box", checkpoint_every=100, learn_chunk_bytes=CHUNK) as box:
        fd = box.spec.fd
        hk = b"pieces"
        pidx, primary, absent = kill_a_secondary(box, hk)
        caller = Caller(timeout_s=5.0)
        value = b"v" * 2048
        n = 400  # ~800 KiB of snapshot (~50 pieces), four checkpoints past what `absent` holds
        for i in range(n):
            assert caller.call(primary, codec.RPC_PUT, put_args(hk, b"%d" % i, value), pidx)[0] == "ERR_OK"
        writer = Writer(box, "during", keys=32)  # writes go on while the node learns
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        box.restart(absent)
        box.wait_healthy(30)
        time.sleep(0.3)
        writer.stop = True
        thread.join(10)
        assert writer.ok > 0
        assert writer.verify(box) == []
        logs = (box.spec.node_dir(node_of(box, primary)) / "node.log").read_text()
        sent = [int(m) for m in re.findall(rf"partition {pidx}: sending the checkpoint at decree "
                                           rf"\d+ \((\d+) bytes\)", logs)]
        assert sent and max(sent) > 4 * CHUNK, sent  # it went in several pieces
        assert "installing the primary's checkpoint" in (
            box.spec.node_dir(absent) / "node.log").read_text()
        # The learner holds it all: with the other two gone it alone serves the partition.
        addr = box.spec.nodes[absent]
        other = node_of(box, next(str(s) for s in box.config().partitions[pidx].secondaries
                                  if str(s) != addr))
        box.kill(other)
        box.kill(node_of(box, primary))
        wait_for(lambda: str(box.config().partitions[pidx].primary) == addr,
                 2 * (fd.grace_s + fd.check_s) + 10)
        for i in range(0, n, 37):
            err, got = caller.call(addr, codec.RPC_GET, blob(make_key(hk, b"%d" % i)), pidx)
            assert err == "ERR_OK" and got.value.data == value, (i, err)
        for key in writer.keys:
            if pidx_of(key) == pidx and key in writer.acked:
                err, got = caller.call(addr, codec.RPC_GET, blob(make_key(key, b"")), pidx)
                assert err == "ERR_OK" and got.error == 0, (key, err)
                assert got.value.data in {writer.acked[key], *writer.unknown[key]}, key
        caller.close()
