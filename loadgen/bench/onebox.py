"""Onebox throughput benchmark: acknowledged replicated writes/s of a 3-node onebox.

``pegbench bench onebox [--duration-s S] [--concurrency N] ...`` starts a onebox on free
ports, then runs the load in a child process (it needs gevent's monkey-patching, which a
supervisor with threads must not get): ``concurrency`` greenlets put through the project's
client as fast as replies come back (closed loop, pipelined per node). It prints sustained
acknowledged writes/s and p50/p99/p99.9 service time from an HDR histogram.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_WRITES_PER_S = 5000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pegbench bench onebox", description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=20.0, help="measured seconds (default 20)")
    p.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    p.add_argument("--concurrency", type=int, default=256, help="writer greenlets (default 256)")
    p.add_argument("--value-bytes", type=int, default=100, help="value size (default 100)")
    p.add_argument("--keys", type=int, default=100000, help="distinct keys written (default 100000)")
    p.add_argument("--replica-nodes", type=int, default=3)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--dir", help="onebox dir (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--load-only", metavar="META", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.load_only:
        return _load(args)
    from ..onebox.process import free_port
    from ..onebox.supervisor import Onebox

    with contextlib.ExitStack() as stack:
        root = args.dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="pegbench-bench-"))
        box_dir = Path(root) / "onebox"
        with Onebox(box_dir, replica_nodes=args.replica_nodes, partitions=args.partitions,
                    replicas=args.replicas, meta_port=free_port(),
                    replica_ports=[free_port() for _ in range(args.replica_nodes)]) as box:
            cmd = [sys.executable, "-m", "loadgen.bench.onebox", "--load-only", box.meta_addrs[0],
                   *(argv if argv is not None else sys.argv[1:])]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"onebox {args.replica_nodes} nodes, {args.partitions} partitions x {args.replicas} "
              f"replicas, {args.concurrency} writers, {args.value_bytes}-byte values")
        print(f"acked writes/s: {figures['writes_per_s']:.0f} over {figures['duration_s']:.1f}s "
              f"({figures['acked']} acked, {figures['failed']} failed; target {TARGET_WRITES_PER_S})")
        print("service time ms: p50 {p50_ms:.2f}  p99 {p99_ms:.2f}  p99.9 {p999_ms:.2f}  "
              "max {max_ms:.2f}".format(**figures))
    return 0


def _load(args: argparse.Namespace) -> int:
    """The load generator (child process, monkey-patched): prints one JSON line."""
    import gevent
    from hdrh.histogram import HdrHistogram

    from ..errors import PegasusError
    from ..pegasus.client import Client

    client = Client([args.load_only], policy="failover", op_timeout_ms=5000)
    table = client.open_table("temp")
    hist = HdrHistogram(1, 60_000_000, 3)  # microseconds
    value = b"v" * args.value_bytes
    state = {"measuring": False, "stop": False, "acked": 0, "failed": 0}

    def writer(i: int) -> None:
        n = i
        while not state["stop"]:
            t0 = time.monotonic()
            try:
                table.put(b"k%d" % (n % args.keys), b"", value)
            except PegasusError:
                if state["measuring"]:
                    state["failed"] += 1
                continue
            finally:
                n += args.concurrency
            if state["measuring"]:
                state["acked"] += 1
                hist.record_value(max(1, int((time.monotonic() - t0) * 1e6)))

    workers = [gevent.spawn(writer, i) for i in range(args.concurrency)]
    gevent.sleep(args.warmup_s)
    state["measuring"] = True
    t_start = time.monotonic()
    gevent.sleep(args.duration_s)
    state["measuring"] = False
    elapsed = time.monotonic() - t_start
    state["stop"] = True
    gevent.joinall(workers, timeout=10)
    client.close()
    figures = {"writes_per_s": state["acked"] / elapsed, "duration_s": elapsed,
               "acked": state["acked"], "failed": state["failed"],
               "p50_ms": hist.get_value_at_percentile(50) / 1000,
               "p99_ms": hist.get_value_at_percentile(99) / 1000,
               "p999_ms": hist.get_value_at_percentile(99.9) / 1000,
               "max_ms": hist.get_max_value() / 1000}
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    if "--load-only" in sys.argv:
        from gevent import monkey

        monkey.patch_all()
    sys.exit(main())
