"""Client adapters: real Pegasus client builds driven by pegbench through a child process that
speaks newline-delimited JSON on its stdin/stdout (:mod:`.protocol`, :mod:`.connection`).
Each real client has a venv of its own (:mod:`.venvs`, ``pegbench clients install NAME``);
:mod:`.pypegasus` is the adapter of the official Python client, run in its venv.

No Locust, no harness, runner or onebox here (tests/test_layering.py): the runner will use this,
not the other way round. An adapter runs in its own client's environment (a venv without
gevent): importing this package and :mod:`.protocol` needs only the standard library, so the
names below are loaded on first use.
"""

from typing import Any

__all__ = ["PROTOCOL", "REPLY_TIMEOUT", "AdapterConnection", "AdapterError", "AdapterProtocolError",
           "OpResult"]


def __getattr__(name: str) -> Any:
    if name in ("AdapterError", "AdapterProtocolError"):
        from loadgen import errors
        return getattr(errors, name)
    if name == "PROTOCOL":
        from .protocol import PROTOCOL
        return PROTOCOL
    if name in __all__:
        from . import connection
        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
