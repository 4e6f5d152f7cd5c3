"""Fault targets: the three forms a profile may name, parsed once into small typed values.

========================  =================  ===============================================
profile text              value              resolved
========================  =================  ===============================================
``"replica2"``            ``NodeTarget``     already: a node name that must exist
``"primary-of:3"``        ``PrimaryOf``      at inject time, by the controller (the node that
                                             is primary of partition 3 at that instant)
``"secondary-of:3"``      ``SecondaryOf``    at inject time: partition 3's first secondary
                                             (a paused secondary stalls that partition's 2PC)
``"random"``              ``RandomReplica``  at plan time, by the seeded RNG of the schedule;
                                             never the meta
========================  =================  ===============================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

#: Replica nodes are named ``replica1`` .. ``replicaN`` (as the onebox names them).
REPLICA_PREFIX = "replica"
PRIMARY_OF_PREFIX = "primary-of:"
SECONDARY_OF_PREFIX = "secondary-of:"
RANDOM = "random"

_REPLICA_RE = re.compile(rf"{REPLICA_PREFIX}([1-9][0-9]*)")
_PARTITION_RE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class NodeTarget:
    """One named replica node, e.g. ``replica2``."""

    node: str

    def __str__(self) -> str:
        return self.node


@dataclass(frozen=True)
class PrimaryOf:
    """Whichever node is primary of ``partition`` when the fault is injected."""

    partition: int

    def __str__(self) -> str:
        return f"{PRIMARY_OF_PREFIX}{self.partition}"


@dataclass(frozen=True)
class SecondaryOf:
    """Partition ``partition``'s first secondary (by address) when the fault is injected."""

    partition: int

    def __str__(self) -> str:
        return f"{SECONDARY_OF_PREFIX}{self.partition}"


@dataclass(frozen=True)
class RandomReplica:
    """A replica node picked by the plan's seeded RNG (never the meta)."""

    def __str__(self) -> str:
        return RANDOM


#: Any target a profile may name.
Target = Union[NodeTarget, PrimaryOf, SecondaryOf, RandomReplica]
#: A target after planning: ``random`` has become a node.
PlannedTarget = Union[NodeTarget, PrimaryOf, SecondaryOf]


def replica_names(replica_nodes: int) -> tuple[str, ...]:
    """Names of the replica nodes of a cluster with ``replica_nodes`` of them."""
    return tuple(f"{REPLICA_PREFIX}{i}" for i in range(1, replica_nodes + 1))


def expected_forms(replica_nodes: int, partitions: int) -> str:
    """What a target may be, in words, for error messages."""
    return (f"'{REPLICA_PREFIX}N' with N in 1..{replica_nodes}, "
            f"'{PRIMARY_OF_PREFIX}P' or '{SECONDARY_OF_PREFIX}P' with P in 0..{partitions - 1}, "
            f"or '{RANDOM}'")


def parse_target(text: str, *, replica_nodes: int, partitions: int) -> Target:
    """The target ``text`` names in a cluster of this shape.

    Raises ValueError (with the expected forms in words) for anything else, including a
    replica or partition that does not exist.
    """
    if isinstance(text, str):
        if text == RANDOM:
            return RandomReplica()
        node = _REPLICA_RE.fullmatch(text)
        if node and int(node.group(1)) <= replica_nodes:
            return NodeTarget(text)
        for prefix, kind in ((PRIMARY_OF_PREFIX, PrimaryOf), (SECONDARY_OF_PREFIX, SecondaryOf)):
            if text.startswith(prefix):
                index = text[len(prefix):]
                if _PARTITION_RE.fullmatch(index) and int(index) < partitions:
                    return kind(int(index))
    raise ValueError(f"{expected_forms(replica_nodes, partitions)}, got {text!r}")
