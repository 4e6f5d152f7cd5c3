"""Pegasus protocol layer and gevent client with pluggable retry policies (no Locust here).

Public API: :class:`Client` and :class:`Table`, the :class:`Outcome` records they report,
the policy registry (:mod:`loadgen.pegasus.policies`) and the error tree of
:mod:`loadgen.errors`. The test cluster lives in :mod:`loadgen.testing.cluster`.

Names are imported on first use: the generated Thrift code refers to
``loadgen.pegasus.rdsn`` by its full dotted name, which only works once this package
has finished initialising.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import (NoPrimary, NotConnected, OpTimeout, PegasusError, ProtocolError, ServerError,
                      SessionReset, StorageError)

_LAZY = {
    "Client": ".client", "Table": ".table", "Outcome": ".outcome",
    "Policy": ".policies", "PolicyInfo": ".policies", "Reaction": ".policies",
    "AttemptContext": ".policies",
}

__all__ = [
    "Client", "Table", "Outcome",
    "policies", "Policy", "PolicyInfo", "Reaction", "AttemptContext",
    "PegasusError", "OpTimeout", "SessionReset", "NotConnected", "NoPrimary", "ServerError",
    "StorageError", "ProtocolError",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name == "policies":
        return importlib.import_module(".policies", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
