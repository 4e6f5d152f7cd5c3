"""Cooperative running: blocking calls and waits that never stall the gevent hub.

The load runs in gevent greenlets of the same process as the fault controller, so anything the
controller does that may block (a onebox command, a subprocess, a one-shot meta query) goes
through :func:`run_blocking`, and every wait through :func:`wait_until` on a gevent event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent import monkey
from gevent.event import Event

T = TypeVar("T")


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` without blocking the hub: in gevent's threadpool, or directly when the
    process is monkey-patched (Locust), where sockets, sleeps and subprocesses already yield
    and a native thread would only add a second hub."""
    if monkey.is_module_patched("socket"):
        return fn(*args, **kwargs)
    ok, value = gevent.get_hub().threadpool.apply(_capture, (fn, args, kwargs))
    if not ok:
        raise value
    return value


def _capture(fn: Callable[..., T], args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """(True, result) or (False, exception): raised in the caller's greenlet, not printed by
    the threadpool as an unhandled error (a failed fault action is an expected outcome)."""
    try:
        return True, fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller
        return False, exc


def wait_until(t: float, stop: Event | None = None) -> bool:
    """Sleep cooperatively until monotonic instant ``t``; False if ``stop`` was set first."""
    while True:
        left = t - time.monotonic()
        if stop is not None and stop.is_set():
            return False
        if left <= 0:
            return True
        if stop is None:
            gevent.sleep(left)
        elif stop.wait(None if math.isinf(left) else left):
            return False
