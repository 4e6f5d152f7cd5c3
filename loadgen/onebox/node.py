"""Node process entry point: ``python -m loadgen.onebox.node --spec DIR/spec.json --name NODE``.

Builds the meta or a replica server from the spec, prints ``READY host:port <monotonic>`` once
listening (the CLOCK_MONOTONIC instant it started serving, which the supervisor reports as a
restart's t_ready), logs to stderr, and stops gracefully (exit 0) on SIGTERM or SIGINT.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse
import logging
import signal
import sys
import time

import gevent
from gevent.event import Event

from .spec import META_NODE, OneboxSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="path of the onebox spec.json")
    parser.add_argument("--name", required=True, help="meta1, replica1, replica2, ...")
    args = parser.parse_args(argv)
    spec = OneboxSpec.read(args.spec)
    if args.name not in spec.nodes:
        parser.error(f"unknown node {args.name!r}; the spec has {sorted(spec.nodes)}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s")
    data_dir = spec.node_dir(args.name)
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.name == META_NODE:
        from .meta_server import MetaServer
        server = MetaServer(spec, data_dir)
    else:
        from .replica_server import ReplicaServer
        server = ReplicaServer(spec, args.name, data_dir)
    stopping = Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stopping.set)
    addr = server.start()
    print(f"READY {addr} {time.monotonic():.6f}", flush=True)
    stopping.wait()
    logging.getLogger(__name__).info("stopping on signal")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
