"""In-process replica servers for server-logic tests: no process, no listening socket used."""

from __future__ import annotations

import time
from typing import Any

from loadgen.onebox.gen.onebox import ttypes as ob
from loadgen.onebox.replica_server import ReplicaServer
from loadgen.onebox.spec import FAST_FD, OneboxSpec
from loadgen.pegasus import codec

from .ports import onebox_ports


class FakeConnection:
    """Stands for a client connection: collects the replies a handler sends later.

    ``read_at`` is the instant its requests were read from the socket (their enqueue instant),
    now unless given: a test ages a request by passing an older one.
    """

    peer = "test"

    def __init__(self, read_at: float | None = None):
        self.sent: list[codec.ResponseFrame] = []
        self.read_at = time.monotonic() if read_at is None else read_at

    def send(self, frame: bytes) -> None:
        self.sent.append(codec.decode_response(frame))

    def complain(self, server: str, what: str) -> None:
        raise AssertionError(what)


def lone_primary(tmp_path, **spec_fields: Any) -> ReplicaServer:
    """``replica1`` of a one-node spec, primary of partition 0 (ballot 1) with a long lease.

    ``spec_fields`` override the spec (e.g. ``drop_expired=True``). Close its logs when done:
    ``for r in server.partitions.values(): r.log.close()``.
    """
    spec = OneboxSpec(dir=str(tmp_path), replica_nodes=1, replicas=1, min_replicas=1,
                      **onebox_ports(1), fd=FAST_FD, **spec_fields)
    server = ReplicaServer(spec, "replica1", tmp_path / "replica1")
    server.lease_until = time.monotonic() + 60
    server._host(0).apply_config(ob.partition_membership(pidx=0, ballot=1, primary=server.me,
                                                         secondaries=[], learners=[]))
    return server
