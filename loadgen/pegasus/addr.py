"""Node addresses: ``host:port`` strings, parsed in one place."""

from __future__ import annotations

import ipaddress
import socket


def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` as ``(host, port)``; ValueError if ``addr`` is not of that form."""
    host, sep, port = addr.rpartition(":") if isinstance(addr, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or int(port) > 0xFFFF:
        raise ValueError(f"expected an address 'host:port', got {addr!r}")
    return host, int(port)


def ip_family(host: str) -> socket.AddressFamily | None:
    """``AF_INET`` or ``AF_INET6`` for an IP literal (dialed with no resolver); None for a name."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None
