"""What a fault injection did to a node, and when: the record the supervisor hands back.

Instants are CLOCK_MONOTONIC seconds (``time.monotonic()``), which on Linux is one clock for
the whole host: an instant taken in the supervisor compares directly with ``time.monotonic()``
in any other process, e.g. the load generator's reply times (fault events' t_inject/t_heal).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FaultApplied:
    """One fault applied to ``node``.

    ``t_signal``: the instant the signal went out, taken in the supervisor right at its
    ``killpg`` (SIGKILL, SIGSTOP, SIGCONT, or a restart's SIGTERM); None when no process was
    signalled (killing or restarting a node that was already dead). ``t_ready``: for a restart,
    the instant the new life served again (its READY), else None. ``pid`` and ``state`` describe
    the node once the call returned (after a restart: the new life).
    """

    node: str
    action: str
    t_signal: float | None
    t_ready: float | None
    pid: int | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> FaultApplied:
        """The record from its JSON form; ValueError naming what is missing or mistyped."""
        if not isinstance(raw, dict):
            raise ValueError(f"a fault record must be a JSON object, got {raw!r:.80}")
        missing = [name for name in cls.__dataclass_fields__ if name not in raw]
        if missing:
            raise ValueError(f"fault record lacks {', '.join(missing)}: {raw!r:.200}")
        for key in ("t_signal", "t_ready"):
            if raw[key] is not None and not isinstance(raw[key], (int, float)):
                raise ValueError(f"fault record's {key} must be a number or null, got {raw[key]!r}")
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__})
