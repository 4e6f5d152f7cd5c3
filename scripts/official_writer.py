"""One writer of the official Python client (pypegasus3, on Twisted): puts one at a time, in batches.

The official side of ``pegbench bench cpu`` (loadgen/bench/cpu.py). It runs under the
official client's own virtual environment (``pegbench clients install pypegasus``), so it
imports nothing from pegbench. It opens the table, does ``--warmup`` puts (connections made,
code paths warm) and prints ``{"ready": ...}``; then, for each line ``N`` read from stdin, it
does N puts, each waiting for its reply before the next one is sent, and prints one JSON
line: the process's CPU time (user + sys, ``resource.getrusage``) and wall time over those
puts, and how many were acknowledged (storage status 0). ``quit`` or end of input ends it.
While it waits for a line the reactor does nothing (the read blocks it), as ours does.

    ~/.cache/pegbench/venvs/pypegasus/bin/python scripts/official_writer.py --meta 127.0.0.1:34601 <<< 3000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time


def _rusage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def _emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve batches of puts until ``quit``; 3 if the table cannot be opened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta", required=True, help="meta address host:port")
    parser.add_argument("--table", default="temp")
    parser.add_argument("--warmup", type=int, default=300, help="puts before the first batch")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--key-space", type=int, default=1000)
    parser.add_argument("--key-prefix", default="official/",
                        help="hash keys are this prefix and the key index (0 .. key space - 1)")
    parser.add_argument("--timeout-ms", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="puts/s, an arrival every 1/rate s (default 0: back to back)")
    args = parser.parse_args(argv)

    # pypegasus configures logging at import to a file 'pegasus.log' in the working
    # directory: keep it out of the caller's.
    os.chdir(tempfile.mkdtemp(prefix="pegbench-official-"))
    import warnings

    warnings.simplefilter("ignore")  # Twisted's service_identity warning: no TLS here
    from importlib.metadata import version

    import twisted
    from pypegasus.pgclient import Pegasus
    from twisted.internet import defer, reactor, task

    value = b"v" * args.value_bytes
    prefix = args.key_prefix.encode()
    about = {"client": f"pypegasus3 {version('pypegasus3')}",
             "runtime": f"Twisted {twisted.__version__}, thrift {version('thrift')}"}
    failed: list[str] = []

    @defer.inlineCallbacks
    def run():
        client = Pegasus([args.meta], args.table, timeout=args.timeout_ms)
        try:
            opened = yield client.init()
            if not opened:
                failed.append(f"could not open table {args.table!r} via {args.meta}")
                return
            i = 0
            n, report = args.warmup, False
            while True:
                ok, errors = 0, []
                user0, sys0 = _rusage()
                wall0 = time.monotonic()
                interval = 1.0 / args.rate if args.rate else 0.0
                due = time.monotonic()
                for _ in range(n):
                    ret = yield client.set(prefix + b"%d" % (i % args.key_space), b"v", value)
                    i += 1
                    if isinstance(ret, tuple) and ret[0] == 0:
                        ok += 1
                    elif len(errors) < 3:
                        errors.append(repr(ret))
                    if interval:   # sleep until the next arrival is due
                        due += interval
                        yield task.deferLater(reactor, max(0.0, due - time.monotonic()))
                wall1 = time.monotonic()
                user1, sys1 = _rusage()
                if report:
                    _emit({"ops": n, "ok": ok, "user_s": user1 - user0, "sys_s": sys1 - sys0,
                           "cpu_s": (user1 - user0) + (sys1 - sys0), "wall_s": wall1 - wall0,
                           "errors": errors})
                else:
                    _emit({"ready": True, **about})
                line = sys.stdin.readline().strip()   # blocks the reactor between batches
                if not line or line == "quit":
                    return
                n, report = int(line), True
        except Exception as exc:  # noqa: BLE001 - reported to the caller as JSON
            failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    if failed:
        _emit({"error": failed[0]})
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
