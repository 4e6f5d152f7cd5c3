"""Free TCP ports on 127.0.0.1 for servers a test starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick; another process may take it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: held open together while chosen, since the kernel may hand
    out a just-closed port again (separate :func:`free_port` calls can repeat one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def onebox_ports(replica_nodes: int = 3) -> dict[str, object]:
    """Distinct free ``meta_port`` and ``replica_ports`` for a OneboxSpec: ``**onebox_ports()``."""
    meta_port, *replica_ports = free_ports(1 + replica_nodes)
    return {"meta_port": meta_port, "replica_ports": tuple(replica_ports)}


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free ports (for flags that take a base port)."""
    while True:
        base = free_port()
        if base + n < 65536 and all(port_is_free(p) for p in range(base, base + n)):
            return base
