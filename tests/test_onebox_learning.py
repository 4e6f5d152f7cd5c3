"""Onebox learning: a node that missed more log than one frame can carry still catches up."""

from __future__ import annotations

import pytest
from onebox_tools import Caller, make_box, node_of, pidx_of, wait_for

from loadgen.pegasus import codec
from loadgen.pegasus.codec import MAX_FRAME_BYTES
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.onebox

VALUE = b"x" * (1024 * 1024)


def test_learner_catches_up_on_more_than_a_frame_of_log(tmp_path):
    with make_box(tmp_path / "box") as box:
        fd = box.spec.fd
        hk = b"bulky"
        pidx = pidx_of(hk)
        cfg = box.config().partitions[pidx]
        primary = str(cfg.primary)
        absent = node_of(box, str(cfg.secondaries[0]))
        box.kill(absent)
        wait_for(lambda: len(box.config().partitions[pidx].secondaries) == 1, fd.grace_s + 3)
        caller = Caller(timeout_s=5.0)
        n = MAX_FRAME_BYTES // len(VALUE) + 8   # the learner misses more than one frame
        for i in range(n):
            args = rrdb.update_request(key=blob(make_key(hk, b"%d" % i)), value=blob(VALUE),
                                       expire_ts_seconds=0)
            assert caller.call(primary, codec.RPC_PUT, args, pidx)[0] == "ERR_OK"
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
