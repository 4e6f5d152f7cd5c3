"""Onebox servers survive bad input: the offending connection closes, other clients carry on."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from support.onebox import Caller, make_box, pidx_of, put_args

from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.internal_rpc import (
    RPC_BEACON,
    RPC_CONFIG_PROPOSAL,
    RPC_MEMBER_CHANGE,
    RPC_PREPARE,
)
from loadgen.pegasus import codec
from loadgen.pegasus.gen.rrdb import ttypes as rrdb
from loadgen.pegasus.keys import make_key
from loadgen.pegasus.rdsn.ttypes import blob

pytestmark = pytest.mark.onebox


def _valid_header_garbage_body() -> bytes:
    body = os.urandom(64)
    frame = codec.encode_request(codec.RPC_PUT, 1, put_args(b"h", b"s", b"v"), app_id=1)
    header = bytearray(frame[:48])
    struct.pack_into(">I", header, 16, len(body))
    return bytes(header) + body


BAD_INPUTS = {
    "random bytes": lambda: os.urandom(4096),
    "2 GiB length": lambda: codec.MAGIC + struct.pack(">IIIII", 0, 48, 0, 2 ** 31, 0),
    "garbage body": _valid_header_garbage_body,
    "half a frame": lambda: codec.encode_request(codec.RPC_PUT, 1, put_args(b"h", b"s", b"v"),
                                                 app_id=1)[:30],
}


def _send_and_close(addr: str, payload: bytes) -> None:
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # a half frame then EOF: the server must not wait on it
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass  # drain whatever the server answers before it closes
        except OSError:
            pass


def test_bad_frames_disturb_nobody(tmp_path):
    with make_box(tmp_path / "box") as box:
        cfg = box.config()
        hk = b"steady"
        pidx = pidx_of(hk)
        primary = str(cfg.partitions[pidx].primary)
        outcomes: list[str] = []
        stop = threading.Event()

        def steady_client():
            caller = Caller(timeout_s=2.0)
            n = 0
            while not stop.is_set():
                err, _ = caller.call(primary, codec.RPC_PUT, put_args(hk, b"", b"%d" % n), pidx)
                outcomes.append(err)
                n += 1
            caller.close()

        worker = threading.Thread(target=steady_client, daemon=True)
        worker.start()
        targets = [box.meta_addrs[0]] + list(box.spec.nodes.values())[1:]
        for addr in targets:
            for payload in BAD_INPUTS.values():
                _send_and_close(addr, payload())
        time.sleep(0.2)
        stop.set()
        worker.join(10)
        assert outcomes and set(outcomes) == {"ERR_OK"}, set(outcomes)
        for name, info in box.nodes.items():
            assert info.state == "running", name
        box.wait_healthy(5)


def _pipeline(addr: str, frames: list[bytes]) -> list[codec.ResponseFrame]:
    """Send every frame on one connection and collect the replies."""
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"".join(frames))
        splitter, replies = codec.FrameSplitter("response"), []
        while len(replies) < len(frames):
            data = sock.recv(65536)
            assert data, f"closed after {len(replies)} replies"
            replies += [codec.decode_response(f) for f in splitter.feed(data)]
    return replies


def _warnings(box, name: str) -> int:
    return sum(" WARNING " in line for line in (box.spec.node_dir(name) / "node.log").read_text().splitlines())


def test_unappliable_write_is_refused_not_logged(tmp_path):
    """A put whose key blob cannot be split must not enter the log: applying it at commit
    would fail on every member and at every replay, wedging the partition for good."""
    with make_box(tmp_path / "box") as box:
        hk = b"poison"
        pidx = pidx_of(hk)
        primary = str(box.config().partitions[pidx].primary)
        bad = [rrdb.update_request(key=blob(b"\x00\x09short"), value=blob(b"v")),
               rrdb.update_request(value=blob(b"no key"))]
        frames = [codec.encode_request(codec.RPC_PUT, i, args, app_id=1, partition_index=pidx)
                  for i, args in enumerate(bad * 50)]
        frames.append(codec.encode_request(codec.RPC_GET, 999, blob(b"\x00"), app_id=1,
                                           partition_index=pidx))
        assert {r.error for r in _pipeline(primary, frames)} == {"ERR_INVALID_PARAMETERS"}
        caller = Caller(timeout_s=2.0)
        assert caller.call(primary, codec.RPC_PUT, put_args(hk, b"", b"good"), pidx)[0] == "ERR_OK"
        name = next(n for n, a in box.spec.nodes.items() if a == primary)
        assert _warnings(box, name) <= 2, "one line per bad connection, not per request"
        box.restart(name)  # its log replays cleanly
        box.wait_healthy(15)
        new = str(box.config().partitions[pidx].primary)
        err, got = caller.call(new, codec.RPC_GET, blob(make_key(hk, b"")), pidx)
        caller.close()
        assert err == "ERR_OK" and got.value.data == b"good"


def test_internal_rpcs_with_holes_or_unknown_partitions(tmp_path):
    """Framed correctly but wrong struct, missing fields or a partition that does not exist:
    answered ERR_INVALID_PARAMETERS, nothing hosted or changed, one log line per connection."""
    with make_box(tmp_path / "box") as box:
        replica = box.spec.nodes["replica1"]
        partitions = box.spec.partitions
        to_replica = [
            (RPC_PREPARE, ob.prepare_request(pidx=partitions + 99, ballot=10 ** 9, primary="x",
                                             last_committed=0, entries=b"", checkpoint_decree=0,
                                             checkpoint=b"")),
            (RPC_PREPARE, ob.prepare_request(pidx=-1, ballot=1)),
            (RPC_PREPARE, ob.beacon_request(node="x", incarnation=1, reports=[])),  # wrong struct
            (RPC_CONFIG_PROPOSAL, ob.config_proposal(configs=[ob.partition_membership(
                pidx=partitions, ballot=10 ** 9, primary=replica, secondaries=[], learners=[])])),
            (RPC_CONFIG_PROPOSAL, ob.beacon_request(node="x")),
        ]
        to_meta = [
            (RPC_BEACON, ob.prepare_request(pidx=1)),
            (RPC_BEACON, ob.beacon_request(node=replica, incarnation=5,
                                           reports=[ob.replica_report(pidx=0)])),
            (RPC_MEMBER_CHANGE, ob.member_change_request(pidx=None, action="remove")),
        ]
        for addr, calls in ((replica, to_replica), (box.meta_addrs[0], to_meta)):
            frames = [codec.encode_request(rpc, i, args) for i, (rpc, args) in enumerate(calls * 20)]
            assert {r.error for r in _pipeline(addr, frames)} == {"ERR_INVALID_PARAMETERS"}
        assert sorted(p.name for p in box.spec.node_dir("replica1").glob("p*")) == \
            sorted(f"p{i}" for i in range(partitions))
        for name in ("meta1", "replica1"):
            assert _warnings(box, name) <= 2, name
        box.wait_healthy(5)
        assert all(info.state == "running" for info in box.nodes.values())
