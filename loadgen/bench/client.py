"""Client benchmark: client put throughput against the raw codec's echo ceiling.

One server process (the test cluster, ``python -m loadgen.testing.cluster``) and this
process, on loopback. Two phases against the same server:

(a) echo ceiling — one connection, a window of requests in flight, nothing but the codec:
    encode a put frame, cut and decode the replies; no routing, sessions or policy;
(b) client — ``--greenlets`` greenlets doing ``Table.put`` through :class:`Client`.

Phases alternate for ``--rounds`` rounds and the best of each counts. Prints ops/s of both and
their ratio (target: the client reaches at least half the ceiling).
Run as ``python -m loadgen.bench.client`` or ``pegbench bench client``.
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time

import gevent
from gevent import socket as gsocket

from ..errors import PegasusError
from ..pegasus import codec, keys
from ..pegasus.addr import parse_addr
from ..pegasus.client import Client

TARGET_RATIO = 0.5
_SERVER_START_TIMEOUT_S = 20.0
_PARTITIONS = 8


def start_server(partitions: int) -> tuple[subprocess.Popen, str, str]:
    """The test cluster in a child process: (process, meta address, replica address)."""
    # The standard library's Popen, not gevent's: gevent's would install a SIGCHLD watcher
    # that reaps every child of this process, stealing the exit status of others' children.
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.testing.cluster", "--replicas", "1",
                             "--partitions", str(partitions)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
    out = b""
    while out.count(b"\n") < 2:  # bounded by the deadline and by EOF
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            break
        out += chunk
    meta, replica = ([line.strip() for line in out.decode().splitlines()] + ["", ""])[:2]
    if not meta or not replica:
        proc.kill()
        proc.wait()
        raise PegasusError("ERR_NETWORK_INIT_FAILED", "the test cluster did not start")
    return proc, meta, replica


def echo_ceiling(replica: str, seconds: float, window: int, value: bytes) -> float:
    """Ops/s of pipelined put frames on one socket, with nothing but the codec."""
    args = codec.put_args(keys.make_key(b"bench", b"s"), value)
    # Every partition's primary is the one replica; the partition must match the hash.
    pidx, phash = keys.partition_index(keys.crc64(b"bench"), _PARTITIONS), keys.crc64(b"bench")

    def frame(seqid: int) -> bytes:
        return codec.encode_request(codec.RPC_PUT, seqid, args, app_id=1, partition_index=pidx,
                                    client_timeout_ms=1000, partition_hash=phash)

    sock = gsocket.create_connection(parse_addr(replica))
    try:
        splitter = codec.FrameSplitter("response")
        seqid, done = window, 0
        sock.sendall(b"".join(frame(i) for i in range(1, window + 1)))
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:  # bounded by the clock
            data = sock.recv(codec.RECV_BYTES)
            if not data:
                raise PegasusError("ERR_SESSION_RESET", "the server closed the echo connection")
            replies = [codec.decode_response(f) for f in splitter.feed(data)]
            failed = [r.error for r in replies if r.error != "ERR_OK"]
            if failed:  # an error reply is cheaper than a put: it must not count
                raise PegasusError(failed[0], "the echo phase got an error reply")
            done += len(replies)
            more = []
            for _ in replies:
                seqid += 1
                more.append(frame(seqid))
            sock.sendall(b"".join(more))
        return done / (time.monotonic() - start)
    finally:
        sock.close()


def client_puts(meta: str, seconds: float, greenlets: int, value: bytes, policy: str) -> float:
    """Ops/s of ``greenlets`` greenlets doing puts through the client, observer attached."""
    outcomes = [0]

    def observe(_outcome) -> None:
        outcomes[0] += 1

    with Client([meta], policy=policy, op_timeout_ms=5000, observer=observe) as client:
        table = client.open_table("temp")
        end = time.monotonic() + seconds
        counts = [0] * greenlets

        def worker(i: int) -> None:
            hash_key = b"user%d" % i
            n = 0
            while time.monotonic() < end:  # bounded by the clock
                table.put(hash_key, b"s%d" % (n % 1000), value)
                n += 1
            counts[i] = n

        start = time.monotonic()
        gevent.joinall([gevent.spawn(worker, i) for i in range(greenlets)], raise_error=True)
        elapsed = time.monotonic() - start
    return sum(counts) / elapsed


def main(argv: list[str] | None = None) -> int:
    """Run both phases and print ops/s and the ratio; 1 if below ``--min-ratio``."""
    parser = argparse.ArgumentParser(prog="python -m loadgen.bench.client",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each phase")
    parser.add_argument("--rounds", type=int, default=3,
                        help="phases alternate this many times; the best of each counts")
    parser.add_argument("--greenlets", type=int, default=50, help="client greenlets (and echo window)")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--policy", default="failover")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help=f"exit 1 if client/echo is below this (target {TARGET_RATIO})")
    args = parser.parse_args(argv)
    value = b"v" * args.value_bytes
    try:
        proc, meta, replica = start_server(partitions=_PARTITIONS)
    except PegasusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    echo = client = 0.0
    try:
        # Alternating rounds, best of each: one noisy neighbour cannot skew only one phase.
        for _ in range(max(1, args.rounds)):
            echo = max(echo, echo_ceiling(replica, args.seconds, args.greenlets, value))
            client = max(client, client_puts(meta, args.seconds, args.greenlets, value, args.policy))
    finally:
        proc.kill()
        proc.wait()
    ratio = client / echo
    print(f"echo ceiling : {echo:9.0f} ops/s  (raw codec, 1 connection, {args.greenlets} in flight)")
    print(f"client       : {client:9.0f} ops/s  (policy {args.policy}, {args.greenlets} greenlets, "
          f"{args.value_bytes}-byte puts)")
    print(f"ratio        : {ratio:9.2f}        (target >= {TARGET_RATIO})")
    return 1 if args.min_ratio is not None and ratio < args.min_ratio else 0


if __name__ == "__main__":
    raise SystemExit(main())
