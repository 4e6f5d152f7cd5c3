"""Onebox servers survive bad input: the offending connection closes, other clients carry on."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from onebox_tools import Caller, make_box, pidx_of, put_args

from loadgen.pegasus import codec

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
