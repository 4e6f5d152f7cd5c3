"""Onebox recovery when every member of a partition is lost: only the last member may lead again.

A node dropped earlier misses what the remaining members committed after it left, so the meta
must not rebuild a partition from it (lost acknowledged writes); and learners left without a
primary must not wedge the partition forever.
"""

from __future__ import annotations

import time

import pytest
from support.onebox import TIMING_SLACK_S, call, make_box, node_of, pidx_of, put_args, wait_for

from loadgen.onebox.spec import FDConfig
from loadgen.pegasus import codec
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.onebox

# Grace long enough that a node restarted right after the primary's kill joins as its learner
# before the meta notices the primary is gone.
SLOW_GRACE_FD = FDConfig(beacon_s=0.1, check_s=0.05, lease_s=2.0, grace_s=2.5)


def test_last_member_alone_holds_the_acked_writes(tmp_path):
    with make_box(tmp_path / "box", min_replicas=1, fd=SLOW_GRACE_FD) as box:
        fd = box.spec.fd
        hk = b"last-member"
        pidx = pidx_of(hk)
        primary = str(box.config().partitions[pidx].primary)
        p_name = node_of(box, primary)
        others = [n for n in box.spec.replica_names if n != p_name]
        for name in others:
            box.kill(name)
        wait_for(lambda: not box.config().partitions[pidx].secondaries,
                 fd.grace_s + 3 + TIMING_SLACK_S)
        # The primary alone (min_replicas = 1) acknowledges this write.
        assert call(primary, codec.RPC_PUT, put_args(hk, b"", b"alone"), pidx).error == "ERR_OK"
        box.kill(p_name)
        # An earlier member comes back first: it must not lead (it lacks "alone"), and whatever
        # it is given while the dead primary is still believed alive must not wedge the partition.
        box.restart(others[0])
        wait_for(lambda: str(box.config().partitions[pidx].primary) != primary,
                 fd.grace_s + 3 + TIMING_SLACK_S)
        time.sleep(5 * fd.check_s)
        assert str(box.config().partitions[pidx].primary) == "", "an earlier member leads"
        box.restart(p_name)
        box.restart(others[1])
        box.wait_healthy(20)
        new = str(box.config().partitions[pidx].primary)

        def read():
            # A new primary serves reads once its inherited tail has committed: healthy in
            # the config does not mean readable yet (ERR_INVALID_STATE until then).
            reply = call(new, codec.RPC_GET, blob(make_key(hk, b"")), pidx)
            return reply if reply.error != "ERR_INVALID_STATE" else None

        got = wait_for(read, 5 + TIMING_SLACK_S)
        assert got.error == "ERR_OK" and got.result.value.data == b"alone"
