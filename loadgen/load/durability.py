"""Durability: which acknowledged writes are still there after the run.

Every write the workload sends carries a *token* (the user's op counter and the value's size,
packed in one int) and a value derived from it (:class:`ValueMaker`): 8 bytes of token, then a
slice of a random buffer chosen by the token. So a read-back can tell exactly which write it
found, and the ledger keeps ints, not values.

Per user, a :class:`KeyLedger` keeps, for each key slot (key index × ``put`` or ``multi_put``),
the token of the last acknowledged write and the tokens of writes that ended ``unknown`` since
(they may have applied); the one write in flight counts as unknown too (a user stopped mid-op).
A read-back (:func:`verify`) finds a slot *verified* when it reads the last acknowledged value
or one of those later unknown ones, *lost* when it reads anything else or nothing, and
*unreadable* when the read keeps failing. An unknown write issued *before* the last ack that
lands after it (an old write overwriting a newer acknowledged one) counts as lost: for a
register that is a lost update.

Memory is bounded: :class:`DurabilityBook` tracks at most ``max_slots`` slots per process;
acknowledged writes to slots beyond that are counted in ``untracked`` and not verified.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.pool import Pool

from ..errors import PegasusError

log = logging.getLogger(__name__)

#: Slots (key × op kind) tracked per process before new ones go untracked.
MAX_TRACKED_SLOTS = 500_000
#: Unknown writes remembered per slot; past that, any newer self-consistent value verifies.
MAX_MAYBE = 16
#: Sort keys of the workload's ``put`` and ``multi_put`` (multi_put writes all of them).
PUT_SORT_KEY = b"v"
MULTI_SORT_KEYS = (b"m0", b"m1", b"m2")
PUT_SLOT, MULTI_SLOT = 0, 1
#: Read-back: greenlets reading at once, tries per key, client op timeout.
VERIFY_CONCURRENCY = 32
VERIFY_TRIES = 3
VERIFY_OP_TIMEOUT_MS = 2000

_SIZE_BITS = 24
_SIZE_MASK = (1 << _SIZE_BITS) - 1
_HEADER = 8
_ANY_NEWER = -1            # marker in ``maybe``: too many unknown writes to list


def pack_token(counter: int, size: int) -> int:
    """One int for (op counter, value size)."""
    return (counter << _SIZE_BITS) | size


def token_size(token: int) -> int:
    """The value size a token was written with."""
    return token & _SIZE_MASK


def token_counter(token: int) -> int:
    """The op counter a token was written with."""
    return token >> _SIZE_BITS


class ValueMaker:
    """Values derived from tokens: ``value(token)`` is the same bytes in every process that
    was built with the same ``seed`` and ``max_bytes``."""

    def __init__(self, max_bytes: int, seed: int | str = 0):
        if not 0 <= max_bytes <= _SIZE_MASK:
            raise ValueError(f"value sizes must be within 0..{_SIZE_MASK}, got {max_bytes}")
        self._span = max(1 << 16, 2 * max_bytes)
        self._buf = random.Random(f"values/{seed}").randbytes(self._span + max_bytes)

    def value(self, token: int) -> bytes:
        """The value a write with ``token`` carries."""
        size = token & _SIZE_MASK
        head = token.to_bytes(_HEADER, "big")
        if size <= _HEADER:
            return head[_HEADER - size:]
        off = ((token >> _SIZE_BITS) * 2654435761) % self._span   # spread values over the buffer
        return head + self._buf[off:off + size - _HEADER]

    def token_of(self, value: bytes) -> int | None:
        """The token ``value`` was made from, if it is one of ours (header and body agree).

        A value of 8 bytes is its token alone; a shorter one holds too little to say."""
        if len(value) < _HEADER:
            return None
        token = int.from_bytes(value[:_HEADER], "big")
        return token if token_size(token) == len(value) and self.value(token) == value else None


class KeyLedger:
    """One user's acknowledged writes (see the module docstring); ``prefix`` is its key prefix."""

    __slots__ = ("acked", "book", "inflight", "maybe", "owner", "prefix")

    def __init__(self, prefix: bytes, book: DurabilityBook, owner: str = ""):
        self.prefix = prefix
        self.owner = owner                       # the row (policy or real client) writing
        self.acked: dict[int, int] = {}          # slot -> token of the last acknowledged write
        self.maybe: dict[int, list[int]] = {}    # slot -> tokens of unknown writes since
        self.inflight: dict[int, int] = {}       # slot -> token of the write in flight there
        self.book = book

    def ok(self, slot: int, token: int) -> None:
        """The write ``token`` to ``slot`` was acknowledged."""
        if slot not in self.acked and not self.book.admit():
            return
        self.acked[slot] = token
        self.maybe.pop(slot, None)

    def unknown(self, slot: int, token: int) -> None:
        """The write ``token`` to ``slot`` ended ``unknown``: it may have applied."""
        tokens = self.maybe.get(slot)
        if tokens is None:
            self.maybe[slot] = [token]
        elif tokens[-1] != _ANY_NEWER:
            tokens.append(token if len(tokens) < MAX_MAYBE else _ANY_NEWER)

    def candidates(self, slot: int) -> tuple[int, list[int]]:
        """(last acknowledged token, tokens that may have replaced it)."""
        extra = list(self.maybe.get(slot, ()))
        if slot in self.inflight:
            extra.append(self.inflight[slot])
        return self.acked[slot], extra

    def hash_key(self, slot: int) -> bytes:
        """The hash key of ``slot``."""
        return self.prefix + b"%d" % (slot >> 1)


class DurabilityBook:
    """Every user's ledger in this process, within a budget of tracked slots."""

    def __init__(self, values: ValueMaker, max_slots: int = MAX_TRACKED_SLOTS):
        self.values = values
        self.max_slots = max_slots
        self.ledgers: list[KeyLedger] = []
        self.tracked = 0
        self.untracked = 0       # acknowledged writes to slots beyond the budget

    def ledger(self, prefix: bytes, owner: str = "") -> KeyLedger:
        """A new ledger for the user owning ``prefix``, of row ``owner``."""
        ledger = KeyLedger(prefix, self, owner)
        self.ledgers.append(ledger)
        return ledger

    def admit(self) -> bool:
        """Whether one more slot may be tracked (counts it, or counts the write untracked)."""
        if self.tracked >= self.max_slots:
            self.untracked += 1
            return False
        self.tracked += 1
        return True

    def acked(self) -> int:
        """Slots holding an acknowledged write."""
        return sum(len(ledger.acked) for ledger in self.ledgers)

    def clear(self) -> None:
        """Forget every ledger (a new test)."""
        self.ledgers.clear()
        self.tracked = self.untracked = 0


@dataclass(frozen=True)
class Durability:
    """A read-back's counts: ``acked`` slots, of which ``verified`` read back as expected,
    ``lost`` read back wrong or missing, ``unreadable`` could not be read."""

    acked: int = 0
    verified: int = 0
    lost: int = 0
    unreadable: int = 0
    untracked: int = 0
    #: the same counts per row (policy or real client) that wrote them: row -> count -> n
    by_row: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every count, as plain data (what a worker sends its master)."""
        return {"acked": self.acked, "verified": self.verified, "lost": self.lost,
                "unreadable": self.unreadable, "untracked": self.untracked,
                "by_row": {row: dict(c) for row, c in self.by_row.items()}}

    def results_block(self) -> dict[str, Any]:
        """``build_results(durability=...)``: ``{acked, verified, lost, by_policy}`` where a
        write that could not be read back counts as lost (it was not shown to survive)."""
        return {"acked": self.acked, "verified": self.verified,
                "lost": self.lost + self.unreadable,
                "by_policy": {row: {"acked": c.get("acked", 0), "verified": c.get("verified", 0),
                                    "lost": c.get("lost", 0) + c.get("unreadable", 0)}
                              for row, c in sorted(self.by_row.items())}}

    @staticmethod
    def total(parts: Iterable[Durability]) -> Durability:
        """The sum of several processes' read-backs."""
        parts = list(parts)
        by_row: dict[str, dict[str, int]] = {}
        for p in parts:
            for row, counts in p.by_row.items():
                into = by_row.setdefault(row, {})
                for k, n in counts.items():
                    into[k] = into.get(k, 0) + n
        return Durability(*(sum(getattr(p, f) for p in parts)
                            for f in ("acked", "verified", "lost", "unreadable", "untracked")),
                          by_row=by_row)


def _matches(values: ValueMaker, found: bytes | None, acked: int, extra: Sequence[int]) -> bool:
    if found is None:
        return False
    for token in (acked, *extra):
        if token == _ANY_NEWER:
            got = values.token_of(found)
            if got is not None and token_counter(got) > token_counter(acked):
                return True
        elif token_size(token) == len(found) and values.value(token) == found:
            return True
    return False


def _read_slot(table, ledger: KeyLedger, slot: int) -> list[bytes | None]:
    hash_key = ledger.hash_key(slot)
    if slot & 1 == PUT_SLOT:
        return [table.get(hash_key, PUT_SORT_KEY)]
    got = table.multi_get(hash_key, MULTI_SORT_KEYS)
    return [got.get(s) for s in MULTI_SORT_KEYS]


def verify(book: DurabilityBook, meta: Sequence[str], table_name: str, *,
           timeout_s: float = 60.0, concurrency: int = VERIFY_CONCURRENCY) -> Durability:
    """Read every tracked acknowledged write back through a fresh ``failover`` client.

    Bounded: a slot not read within ``timeout_s`` counts as unreadable. Call it after the
    load stopped (and, for a fair verdict, after every fault was healed).
    """
    from ..pegasus.client import Client  # the client only where a read-back runs

    counts = {"verified": 0, "lost": 0}      # a slot neither of these is unreadable
    work = [(ledger, slot) for ledger in book.ledgers for slot in list(ledger.acked)]
    by_row: dict[str, dict[str, int]] = {}
    for ledger in book.ledgers:
        row = by_row.setdefault(ledger.owner, {"acked": 0, "verified": 0, "lost": 0})
        row["acked"] += len(ledger.acked)
    deadline = time.monotonic() + timeout_s
    with Client(list(meta), policy="failover", op_timeout_ms=VERIFY_OP_TIMEOUT_MS) as client:
        try:
            table = client.open_table(table_name)
        except PegasusError as exc:
            log.error("durability read-back: cannot open table %r: %s", table_name, exc)
            for row in by_row.values():
                row["unreadable"] = row["acked"]
            return Durability(acked=len(work), unreadable=len(work), untracked=book.untracked,
                              by_row={k: v for k, v in by_row.items() if k})

        def check(item: tuple[KeyLedger, int]) -> None:
            ledger, slot = item
            for _ in range(VERIFY_TRIES):   # every try refused, or past the deadline: unreadable
                if time.monotonic() >= deadline:
                    return
                try:
                    found = _read_slot(table, ledger, slot)
                except PegasusError:
                    continue
                acked, extra = ledger.candidates(slot)
                ok = all(_matches(book.values, v, acked, extra) for v in found)
                counts["verified" if ok else "lost"] += 1
                by_row[ledger.owner]["verified" if ok else "lost"] += 1
                return

        pool = Pool(max(1, concurrency))
        try:
            with gevent.Timeout(timeout_s + VERIFY_OP_TIMEOUT_MS / 1000, False):
                pool.map(check, work)
        finally:
            pool.kill()
    for row in by_row.values():     # a slot not read back (refused, or not in time): unreadable
        row["unreadable"] = row["acked"] - row["verified"] - row["lost"]
    return Durability(acked=len(work), verified=counts["verified"], lost=counts["lost"],
                      unreadable=len(work) - counts["verified"] - counts["lost"],
                      untracked=book.untracked, by_row={k: v for k, v in by_row.items() if k})
