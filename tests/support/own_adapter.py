"""A client adapter around pegbench's own client, for the real-client tests: ``python
own_adapter.py [MODE]``. It reaches the cluster for real (the durability read-back finds its
writes), so a row of it under a policy can be compared with that policy's own row.

``hello.options``: ``policy`` (default ``failover``). Modes:
  normal   every op through the client
  lying    answer every write ``ok`` without sending it (its acknowledged writes are lost)
  die-at N exit with status 5 on the N-th op (ops in flight are left unanswered)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import gevent
from gevent.fileobject import FileObject
from gevent.lock import Semaphore

from loadgen.adapters import protocol as p
from loadgen.errors import PegasusError
from loadgen.pegasus import Client

MODE = sys.argv[1] if len(sys.argv) > 1 else "normal"
DIE_AT = int(sys.argv[2]) if MODE == "die-at" else 0
OUT = FileObject(sys.stdout.buffer, "wb")
LOCK = Semaphore()


def send(msg: object) -> None:
    with LOCK:
        OUT.write(p.encode(msg).encode())
        OUT.flush()


def serve(table, op: p.Op) -> None:
    try:
        value = None
        if MODE == "lying" and op.op != "get":
            pass
        elif op.op == "put":
            table.put(op.hash_key, op.sort_key, op.value)
        elif op.op == "multi_put":
            table.multi_put(op.hash_key, dict(zip(op.sort_keys, op.values)))
        else:
            value = table.get(op.hash_key, op.sort_key)
        send(p.Reply(id=op.id, outcome="ok", value=value))
    except PegasusError as exc:
        send(p.Reply(id=op.id, outcome=exc.outcome or "fail", error=exc.code, message=str(exc)))


def main() -> None:
    lines = FileObject(sys.stdin.buffer, "rb")
    hello = p.decode(lines.readline(), adapter="own", lineno=1, allowed=p.TO_ADAPTER)
    client = Client(hello.meta, policy=hello.options.get("policy", "failover"),
                    op_timeout_ms=hello.op_timeout_ms)
    table = client.open_table(hello.table)
    send(p.Ready(client="pegbench-own", version=hello.options.get("policy", "failover"),
                 ops=["put", "get", "multi_put"]))
    for n, raw in enumerate(lines, start=1):
        msg = p.decode(raw, adapter="own", lineno=n + 1, allowed=p.TO_ADAPTER)
        if isinstance(msg, p.Stop):
            break
        if n == DIE_AT:        # the n-th op (no other message comes before stop)
            os._exit(5)
        gevent.spawn(serve, table, msg)
    client.close()
    send(p.Bye())


if __name__ == "__main__":
    main()
