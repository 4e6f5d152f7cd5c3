"""Client adapters: real Pegasus client builds driven by pegbench through a child process that
speaks newline-delimited JSON on its stdin/stdout (:mod:`.protocol`, :mod:`.connection`).

No Locust, no harness, runner or onebox here (tests/test_layering.py): the runner will use this,
not the other way round.
"""

from loadgen.errors import AdapterError, AdapterProtocolError

from .connection import REPLY_TIMEOUT, AdapterConnection, OpResult
from .protocol import PROTOCOL

__all__ = ["PROTOCOL", "REPLY_TIMEOUT", "AdapterConnection", "AdapterError", "AdapterProtocolError",
           "OpResult"]
