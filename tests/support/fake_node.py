"""A tiny stand-in for a onebox node, so supervisor tests do not depend on the real servers.

Run as ``python fake_node.py --spec DIR/spec.json --name NODE`` (what :data:`COMMAND` is, the
supervisor appends the arguments). It listens on its port and prints
``READY host:port <monotonic>`` like a real node; the fake ``meta1`` answers every request
with a fixed healthy partition config, a fake replica closes every connection at once.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time

from loadgen.onebox.spec import OneboxSpec
from loadgen.pegasus import codec
from loadgen.pegasus.gen.replication import ttypes as r
from loadgen.pegasus.rdsn.ttypes import error_code, gpid, rpc_address

#: the argv prefix that runs this fake as a node
COMMAND = [sys.executable, __file__]


def _config(spec: OneboxSpec) -> r.query_cfg_response:
    reps = [spec.nodes[n] for n in spec.replica_names]
    parts = []
    for i in range(spec.partitions):
        m = [rpc_address.from_string(reps[(i + k) % len(reps)]) for k in range(spec.replicas)]
        parts.append(r.partition_configuration(
            pid=gpid(spec.app_id, i), ballot=1, max_replica_count=spec.replicas,
            primary=m[0], secondaries=m[1:], last_drops=[], last_committed_decree=0))
    return r.query_cfg_response(err=error_code("ERR_OK"), app_id=spec.app_id,
                                partition_count=spec.partitions, is_stateful=True,
                                partitions=parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec")
    ap.add_argument("--name")
    args = ap.parse_args()
    spec = OneboxSpec.read(args.spec)
    addr = spec.nodes[args.name]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    srv = socket.create_server(("127.0.0.1", int(addr.rpartition(":")[2])))
    print("READY", addr, f"{time.monotonic():.6f}", flush=True)
    print("fake", args.name, "up", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            if args.name == "meta1":
                for frame in codec.FrameSplitter("request").feed(conn.recv(65536)):
                    req = codec.decode_request(frame)
                    conn.sendall(codec.encode_response(req.rpc_name, req.seqid, "ERR_OK",
                                                       _config(spec)))


if __name__ == "__main__":
    main()
