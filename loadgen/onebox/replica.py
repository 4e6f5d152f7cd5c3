"""One partition replica: its role, its log and the PacificA two-phase commit (both sides).

Primary: a write gets the next decree under the current ballot, is logged, then prepared on
every member (secondaries and learners) in pipelined batches; it commits once every *counting*
member (the secondaries, plus learners that caught up) has acknowledged it, then it is
applied and acknowledged to the client. A failed prepare asks the meta to remove that member;
commits wait for the new config rather than silently dropping a member the meta still lists.

Member: accepts prepares whose ballot is not older than its own; ``verified`` is the last
decree it holds consistently with the current primary. A batch starting beyond it gets "gap"
and the primary resends from there (from its log, or its checkpoint first if the log no
longer reaches back). Entries that conflict by (ballot, decree) are replaced: the primary of
the newer ballot is authoritative, and a committed entry is on every member, so only
unacknowledged tails are ever dropped. Learning is this same stream; the checkpoint travels
in pieces (see learning.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import gevent

from ..pegasus import codec
from .gen.onebox import ttypes as ob
from .internal_rpc import RPC_PREPARE
from .kv_store import KVStore
from .learning import Assembly, fill_piece, piece_pending
from .peer import PeerPool
from .storage import (
    ENTRY,
    Entry,
    PartitionLog,
    commit_record,
    entry_record,
    parse_records,
)

log = logging.getLogger(__name__)

PRIMARY, SECONDARY, LEARNER, INACTIVE = "primary", "secondary", "learner", "inactive"
#: Prepare batches in flight per member: enough to keep the pipe full, bounded for memory.
MAX_INFLIGHT = 4
#: Log bytes per prepare: a far-behind learner gets its catch-up in pieces, well under the
#: codec's 64 MiB frame limit (one oversized frame would be refused every time, forever).
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: Reply to a pending write: (error name, decree, live cells its deletes removed).
WriteReply = Callable[[str, int, int], None]


class ReplicaHost(Protocol):
    """What a partition replica needs from its replica server."""

    me: str
    app_id: int
    peers: PeerPool
    min_replicas: int
    prepare_timeout_s: float
    checkpoint_every: int
    learn_chunk_bytes: int

    def request_member_change(self, pidx: int, ballot: int, node: str, action: str) -> None: ...


@dataclass
class Member:
    """The primary's view of one member's replication stream."""

    counting: bool      # its ack is needed to commit
    next: int           # next decree to send
    acked: int = 0      # last decree it holds consistently with us
    inflight: int = 0
    stream: int = 0     # bumped on every rewind so stale gap replies are ignored
    sent_committed: int = -1
    failed: bool = False
    ckpt_decree: int = 0   # checkpoint transfer (learning.py): which one, next byte to send
    ckpt_offset: int = 0

    def rewind(self, next_decree: int, ckpt_offset: int = 0) -> None:
        """Send again from ``next_decree`` on a new stream (replies of the old one are void)."""
        self.stream, self.next, self.ckpt_offset = self.stream + 1, next_decree, ckpt_offset


class PartitionReplica:
    """State and 2PC of one partition on one replica server."""

    def __init__(self, host: ReplicaHost, pidx: int, plog: PartitionLog):
        self.host = host
        self.pidx = pidx
        self.log = plog
        state = plog.replay()
        self.store = KVStore.from_snapshot(state.snapshot)
        self.ckpt_decree = state.checkpoint_decree
        self._ckpt_snapshot: bytes | None = state.snapshot
        self.entries: list[Entry] = state.entries
        self.committed = state.checkpoint_decree
        self._apply_upto(state.committed)
        self.ballot = max((e[0] for e in self.entries), default=0)
        self.role = INACTIVE
        self.members: dict[str, Member] = {}
        self.pending: dict[int, WriteReply] = {}
        self.reads_from = 0          # a new primary serves reads once its inherited tail commits
        self.verified = self.committed
        self.verified_ballot = -1
        self._logged_commit = self.committed
        self._logged = self.last_prepared
        self._flush_scheduled = False
        self._learning = Assembly()

    @property
    def last_prepared(self) -> int:
        return self.ckpt_decree + len(self.entries)

    def report(self) -> ob.replica_report:
        return ob.replica_report(pidx=self.pidx, ballot=self.ballot,
                                 last_committed=self.committed, last_prepared=self.last_prepared)

    # ------------------------------------------------------------------ roles
    def apply_config(self, cfg: ob.partition_membership) -> None:
        """Adopt the meta's membership if it is newer than what this replica knows."""
        if cfg.ballot < self.ballot:
            return
        me = self.host.me
        if cfg.primary == me:
            role = PRIMARY
        elif me in cfg.secondaries:
            role = SECONDARY
        elif me in cfg.learners:
            role = LEARNER
        else:
            role = INACTIVE
        if cfg.ballot == self.ballot:
            # Only a label fix: a prepare of this very config made us a member before the
            # config arrived, without saying whether as a secondary or a learner.
            if {role, self.role} <= {SECONDARY, LEARNER}:
                self.role = role
            return
        self._set_role(role, cfg.ballot)
        if role == PRIMARY:
            self._set_members(cfg.secondaries, cfg.learners)

    def _set_role(self, role: str, ballot: int) -> None:
        was = self.role
        if was == PRIMARY:
            self._write_log()  # entries we prepared may sit on members: never lose our own copy
        if was == PRIMARY and role != PRIMARY:
            # The outcome of these writes is unknown: a member may commit them later.
            pending, self.pending = self.pending, {}
            for reply in pending.values():
                reply("ERR_TIMEOUT", 0, 0)
            self.members = {}
        if role == PRIMARY and was != PRIMARY:
            self.reads_from = self.last_prepared
            self.members = {}
        if ballot != self.ballot:
            self._learning.clear()  # pieces are only ever combined within one ballot
        if role != was or ballot != self.ballot:
            log.info("gpid %d.%d: %s -> %s at ballot %d", self.host.app_id, self.pidx, was, role, ballot)
        self.role, self.ballot = role, ballot

    def _set_members(self, secondaries: list[str], learners: list[str]) -> None:
        old, self.members = self.members, {}
        for addr in list(secondaries) + list(learners):
            m = old.get(addr)
            if m is None or (m.counting and addr in learners):
                # A member re-added as a learner is a new life: its old stream state is void.
                m = Member(counting=False, next=self.last_prepared + 1)
            m.counting = m.counting or addr in secondaries
            if m.failed:
                # Prepare it again: if it is still down, the remove is asked at this ballot
                # (the meta refuses one for an older ballot).
                m.failed = False
                m.rewind(m.acked + 1)
            self.members[addr] = m
        self._schedule_flush()
        self._advance_commit()

    # ------------------------------------------------------------------ primary: writes
    def _enough_members(self) -> bool:
        """The primary plus its counting members reach ``min_replicas``: below that nothing
        may start *or commit* (a write pending when members drop stays pending)."""
        counting = sum(1 for m in self.members.values() if m.counting)
        return 1 + counting >= self.host.min_replicas

    def can_write(self) -> str | None:
        """None if a new write may start, else the error name to answer."""
        if self.role != PRIMARY:
            return "ERR_INVALID_STATE"
        if not self._enough_members():
            return "ERR_NOT_ENOUGH_MEMBER"
        return None

    def can_read(self) -> bool:
        return self.role == PRIMARY and self.committed >= self.reads_from

    def write(self, mutation: bytes, reply: WriteReply) -> None:
        """Start a write (the caller checked :meth:`can_write`); ``reply`` fires once."""
        decree = self.last_prepared + 1
        self.entries.append((self.ballot, decree, mutation, entry_record(self.ballot, decree, mutation)))
        self.pending[decree] = reply
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs after the current greenlet yields: every write of this recv batch joins it.
            gevent.spawn(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_log()
        if self.role != PRIMARY:
            return
        for addr, m in self.members.items():
            self._send(addr, m)
        self._advance_commit()

    def _write_log(self) -> None:
        """Log the entries not yet logged (all of ours sit after ``_logged``) and the commit point."""
        start = max(self._logged, self.ckpt_decree)
        chunks = [e[3] for e in self.entries[start - self.ckpt_decree:]]
        if self.committed > self._logged_commit:
            chunks.append(commit_record(self.committed))
            self._logged_commit = self.committed
        if chunks:
            self.log.write(b"".join(chunks))
        self._logged = self.last_prepared

    def _send(self, addr: str, m: Member) -> None:
        last = self._logged  # never prepare what is not in our own log yet
        if m.failed or m.inflight >= MAX_INFLIGHT:
            return
        if m.next > last and m.sent_committed >= self.committed:
            return
        req = ob.prepare_request(pidx=self.pidx, ballot=self.ballot, primary=self.host.me,
                                 last_committed=self.committed, checkpoint_decree=0,
                                 checkpoint=b"", entries=b"", checkpoint_offset=0,
                                 checkpoint_total=0)
        first = m.next
        piece_end = None
        if first <= self.ckpt_decree:
            # The checkpoint travels alone, a piece per prepare: one frame could not carry it.
            last = self.ckpt_decree
            piece_end = fill_piece(req, m, last, self._snapshot(), self.host.learn_chunk_bytes)
        else:
            chunks, size = [], 0
            for e in self.entries[first - self.ckpt_decree - 1:last - self.ckpt_decree]:
                if chunks and size + len(e[3]) > MAX_BATCH_BYTES:
                    last = e[1] - 1
                    break
                chunks.append(e[3])
                size += len(e[3])
            req.entries = b"".join(chunks)
        if piece_end is None or piece_end == req.checkpoint_total:
            m.next = last + 1  # after a checkpoint's last piece: the log that follows it
        m.sent_committed = self.committed
        m.inflight += 1
        stream, ballot = m.stream, self.ballot
        self.host.peers.get(addr).call_async(
            RPC_PREPARE, req,
            lambda r, e: self._on_prepared(addr, m, stream, ballot, last, piece_end, r, e),
            self.host.prepare_timeout_s, app_id=self.host.app_id, partition_index=self.pidx)

    def _on_prepared(self, addr: str, m: Member, stream: int, ballot: int, batch_last: int,
                     piece_end: int | None, reply: codec.ResponseFrame | None, err) -> None:
        m.inflight -= 1
        if self.role != PRIMARY or self.members.get(addr) is not m:
            return
        if err is None and reply.error == "ERR_OK" and reply.result.err != "stale":
            pos = reply.result.position
            if piece_end is not None and piece_pending(m, stream, batch_last, piece_end, reply.result):
                self._send(addr, m)  # the next piece
                return
            m.acked = max(m.acked, min(pos, batch_last))
            if stream == m.stream and (pos < batch_last or (piece_end is not None and m.next <= pos)):
                m.rewind(pos + 1)  # a gap, or the member held that checkpoint already
            if not m.counting and m.acked >= self.last_prepared:
                m.counting = True  # caught up: from now on commits wait for it
                self.host.request_member_change(self.pidx, self.ballot, addr, "upgrade")
            self._advance_commit()
            self._send(addr, m)
            return
        if reply is not None and reply.error == "ERR_OK":
            log.info("gpid %d.%d: %s refused our prepare at ballot %d (its ballot %d)",
                     self.host.app_id, self.pidx, addr, ballot, reply.result.ballot)
            return
        if not m.failed:
            m.failed = True
            log.warning("gpid %d.%d: prepare to %s failed (%s); asking the meta to remove it",
                        self.host.app_id, self.pidx, addr, err or reply.error)
            self.host.request_member_change(self.pidx, self.ballot, addr, "remove")

    def _advance_commit(self) -> None:
        if self.role != PRIMARY or not self._enough_members():
            # Too few copies: the write waits for a learner to catch up, or its outcome
            # becomes unknown (ERR_TIMEOUT) when this primary is demoted. Never a false ack.
            return
        target = self.last_prepared
        for m in self.members.values():
            if m.counting and m.acked < target:
                target = m.acked
        if target <= self.committed:
            return
        if self._logged < target:
            self._write_log()  # never acknowledge what is not in our own log yet
        pending = self.pending
        for decree in range(self.committed + 1, target + 1):
            removed = self._apply(decree)
            reply = pending.pop(decree, None)
            if reply is not None:
                reply("ERR_OK", decree, removed)
        self._maybe_checkpoint()
        self._schedule_flush()  # log the commit point and tell idle members

    # ------------------------------------------------------------------ member: prepares
    def on_prepare(self, req: ob.prepare_request) -> ob.prepare_response:
        if req.ballot < self.ballot or (req.ballot == self.ballot and self.role not in (SECONDARY, LEARNER)):
            return self._response("stale")
        if req.ballot > self.ballot:
            # A learner until the config says otherwise (apply_config fixes the label).
            self._set_role(self.role if self.role in (SECONDARY, LEARNER) else LEARNER, req.ballot)
        if req.ballot != self.verified_ballot:
            self.verified, self.verified_ballot = self.committed, req.ballot
        if req.checkpoint_total and req.checkpoint_decree > self.verified:
            snapshot = self._learning.take(req)
            if snapshot is None:  # more pieces to come: our position stays before it
                return self._response("ok", self._learning.received(req))
            self._install_checkpoint(req.checkpoint_decree, snapshot)
        records, _ = parse_records(req.entries)
        if records and records[0][2] > self.verified + 1:
            return self._response("gap")
        chunks = []
        entries, base = self.entries, self.ckpt_decree
        for kind, ballot, decree, mutation, raw in records:
            if kind != ENTRY or decree <= self.verified:
                continue
            idx = decree - base - 1
            if idx < len(entries):
                if entries[idx][0] == ballot:
                    self.verified = decree
                    continue
                del entries[idx:]  # an unacknowledged tail of an older primary
            entries.append((ballot, decree, mutation, raw))
            chunks.append(raw)
            self.verified = decree
        target = min(req.last_committed, self.verified)
        if target > self.committed:
            self._apply_upto(target)
            chunks.append(commit_record(target))
            self._logged_commit = target
        if chunks:
            self.log.write(b"".join(chunks))
        self._logged = self.last_prepared
        self._maybe_checkpoint()
        return self._response("ok")

    def _response(self, err: str, checkpoint_received: int = 0) -> ob.prepare_response:
        return ob.prepare_response(err=err, position=self.verified, ballot=self.ballot,
                                   checkpoint_received=checkpoint_received)

    def _install_checkpoint(self, decree: int, snapshot: bytes) -> None:
        log.info("gpid %d.%d: installing the primary's checkpoint at decree %d",
                 self.host.app_id, self.pidx, decree)
        self.store = KVStore.from_snapshot(snapshot)
        self.entries = []
        self.ckpt_decree = self.committed = self.verified = self._logged_commit = decree
        self._logged = decree
        self._ckpt_snapshot = snapshot
        self.log.checkpoint(decree, snapshot, [])

    # ------------------------------------------------------------------ applying
    def _apply(self, decree: int) -> int:
        """Apply one committed decree; the live cells it removed (multi_remove's count)."""
        removed = self.store.apply(self.entries[decree - self.ckpt_decree - 1][2])
        self.committed = decree
        return removed

    def _apply_upto(self, decree: int) -> None:
        for d in range(self.committed + 1, decree + 1):
            self._apply(d)

    def _maybe_checkpoint(self) -> None:
        if self.committed - self.ckpt_decree < self.host.checkpoint_every:
            return
        tail = self.entries[self.committed - self.ckpt_decree:]
        self.log.checkpoint(self.committed, self.store.snapshot(), tail)
        self.entries = tail
        self.ckpt_decree = self._logged_commit = self.committed
        self._logged = self.last_prepared  # the tail is in the new segment now
        self._ckpt_snapshot = None  # read back on the first catch-up that needs it

    def _snapshot(self) -> bytes:
        """The bytes of the current checkpoint, read from disk at most once per checkpoint."""
        if self._ckpt_snapshot is None:
            decree, self._ckpt_snapshot = self.log.read_checkpoint()
            assert decree == self.ckpt_decree, (decree, self.ckpt_decree)
        return self._ckpt_snapshot
