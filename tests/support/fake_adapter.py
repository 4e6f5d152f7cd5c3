"""A fake client adapter for the adapter connection tests: ``python fake_adapter.py MODE [N]``.

It speaks the real protocol (loadgen.adapters.protocol) over stdin/stdout, with an in-memory
KV store, answering each op from a thread after a small delay so many are in flight at once.

Modes:
  normal          answer every op after ~10 ms
  slow            never answer ops whose hash key starts with b"slow"; answer those starting
                  with b"late" after N seconds (default 1); the rest as normal
  crash N         answer the first N-1 ops at once, exit with status 3 on the N-th
  garbage         write a non-JSON line instead of the first reply
  unknown-id      reply to an id never sent instead of the first reply
  silent          never say ready (reads stdin and ignores it)
  wrong-protocol  say ready with protocol version 2
  stubborn        ignore stop and SIGTERM (only SIGKILL ends it)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadgen.adapters import protocol as p

OUT_LOCK = threading.Lock()
STORE: dict[tuple[bytes, bytes], bytes] = {}


def send(line: str) -> None:
    with OUT_LOCK:
        sys.stdout.write(line)
        sys.stdout.flush()


def answer(op: p.Op) -> p.Reply:
    if op.op == "put":
        STORE[(op.hash_key, op.sort_key)] = op.value
        return p.Reply(id=op.id, outcome="ok")
    if op.op == "multi_put":
        for sort_key, value in zip(op.sort_keys, op.values, strict=True):
            STORE[(op.hash_key, sort_key)] = value
        return p.Reply(id=op.id, outcome="ok")
    if op.op == "get":
        return p.Reply(id=op.id, outcome="ok", value=STORE.get((op.hash_key, op.sort_key)))
    return p.Reply(id=op.id, outcome="fail", error="ERR_INVALID_PARAMETERS", message=op.op)


def later(delay_s: float, op: p.Op) -> None:
    threading.Timer(delay_s, lambda: send(p.encode(answer(op)))).start()


def main(argv: list[str]) -> int:
    mode = argv[1]
    n = float(argv[2]) if len(argv) > 2 else None
    print(f"fake adapter {mode} pid {os.getpid()}", file=sys.stderr, flush=True)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ops_seen = 0
    for lineno, line in enumerate(sys.stdin, 1):
        msg = p.decode(line, adapter="pegbench", lineno=lineno, allowed=p.TO_ADAPTER)
        if isinstance(msg, p.Hello):
            if mode == "silent":
                continue
            protocol = 2 if mode == "wrong-protocol" else p.PROTOCOL
            send(p.encode(p.Ready(client="fake", version="0.1", ops=list(p.OPS), protocol=protocol)))
        elif isinstance(msg, p.Stop):
            if mode == "stubborn":
                continue
            send(p.encode(p.Bye()))
            return 0
        elif isinstance(msg, p.Op):
            ops_seen += 1
            if mode == "crash":
                if ops_seen >= (n or 1):
                    print(f"crashing on op {msg.id}", file=sys.stderr, flush=True)
                    sys.stdout.flush()
                    os._exit(3)
                send(p.encode(answer(msg)))
            elif mode == "garbage" and ops_seen == 1:
                send("this is not json\n")
            elif mode == "unknown-id" and ops_seen == 1:
                send(p.encode(p.Reply(id=msg.id + 1000, outcome="ok")))
            elif mode == "slow" and msg.hash_key.startswith(b"slow"):
                pass
            elif mode == "slow" and msg.hash_key.startswith(b"late"):
                later(n or 1.0, msg)
            else:
                later(0.01, msg)
    if mode == "stubborn":
        time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
