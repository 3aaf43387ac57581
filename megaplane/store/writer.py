"""The write path: the one place records change, and everything a change sets off.

Every mutation of the keyspace goes through a `Writer`: Put, DeleteRange,
Txn, CompareAndPut/Delete, lease revocation and expiry, compaction, WAL
replay and snapshot restore. For each record it writes, the writer

1. replaces the record in its partition's map and key index,
2. moves the key between the lease books (`megaplane.store.lessor`),
3. appends the event to the partition's history window,
4. appends the WAL record to the partition's stream buffer
   (`megaplane.store.wal`), and
5. pushes the event to the synced watchers of the partition (the watch hub,
   seen through `WatchSink`).

A write transaction is `put_at` / `delete_at` for each record, all at one
new revision, then `commit(rev, ...)`: the revision advances, the
durability policy learns of the logged write, and watchers owed a wake-up
get it. Callers check requests first (`megaplane.store.requests`); the
writer assumes they are valid and never raises halfway through a txn.

No lock is held anywhere here: the store, its writer and its watch hub run
on one thread. `put_at` and `delete_at` are the hottest code in megaplane
(one call per write), so they inline the partition's bookkeeping.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from .keyspace import Keyspace, Partition
from .kv import KEY, MOD_REVISION, Event, KeyValue, partition_prefix
from .lessor import Lessor
from .wal.log import (
    DELETE_HEADER,
    LEASE_GRANT,
    META_STREAM,
    OP_COMPACT,
    OP_DELETE,
    OP_GRANT,
    OP_PUT,
    OP_REVOKE,
    PUT_HEADER,
    REV_ID,
    WalStream,
    WriteAheadLog,
)

__all__ = ["Writer", "WatchSink", "CommitSink", "RevisionCeiling"]

_pack_put = PUT_HEADER.pack
_pack_delete = DELETE_HEADER.pack


class WatchSink(Protocol):
    """What the write path needs from the watch hub (`megaplane.store.watch.WatchHub`)."""

    #: Watchers owed an on_ready call; non-empty means `notify` has work.
    pending: List[Any]

    def dispatch(self, group: Any, event: Event) -> None:
        """Push one committed event to a partition's synced watchers (`Partition.watchers`)."""

    def notify(self) -> None:
        """Fire on_ready for watchers that now have deliverable events."""

    def check_compacted(self) -> None:
        """Cancel watchers whose history was just compacted away."""


class CommitSink(Protocol):
    """What the write path needs from the durability policy (`megaplane.store.wal.Durability`)."""

    def committed(self, rev: int, fsync: bool) -> None:
        """A write transaction that logged records committed at `rev`."""

    def frontier(self, revision: int) -> int:
        """The newest revision whose events may be published."""


class RevisionCeiling(Protocol):
    """What the write path needs from the revision reservation (`megaplane.store.wal.RevisionReservation`)."""

    def reach(self, revision: int) -> int:
        """A commit at `revision` passed the limit: reserve ahead (blocking only past the ceiling
        on disk); returns the next limit."""


# No reservation (a store without a data dir): the limit is never passed.
_NO_LIMIT = (1 << 63) - 1


class _NoWatchers:
    pending: List[Any] = []

    def dispatch(self, group: Any, event: Event) -> None:
        raise AssertionError("a partition has watchers but the writer has no watch hub")

    def notify(self) -> None:
        pass

    def check_compacted(self) -> None:
        pass


class Writer:
    """The mutator of one keyspace: records, lease books, history, WAL buffers, watchers."""

    def __init__(self, keyspace: Keyspace, lessor: Lessor) -> None:
        self.keyspace = keyspace
        self.lessor = lessor
        # The same dict as keyspace.partitions: one attribute load on the hot path.
        self.partition_map = keyspace.partitions
        #: The revision of the last committed write (1 for an empty store, like etcd).
        self.revision = 1
        # Op order of the revisions that wrote to more than one partition: {revision: {key: index}}.
        # Each partition keeps its own events in op order; replaying several partitions needs this to
        # interleave them as the txn ran (etcd keeps a txn's events in op order).
        self.write_order: Dict[int, Dict[bytes, int]] = {}
        self.watch: WatchSink = _NoWatchers()
        self.durability: Optional[CommitSink] = None
        #: Past this revision a commit asks the reservation for more (see RevisionCeiling).
        self.revision_limit = _NO_LIMIT
        self.reservation: Optional[RevisionCeiling] = None
        self.wal: Optional[WriteAheadLog] = None
        self.meta_stream: Optional[WalStream] = None
        # Partitions get their WAL stream only after restart replay is done.
        self._wal_attached = False
        # Counters for /metrics.
        self.puts_total = 0
        self.deletes_total = 0
        self.txns_total = 0
        self.compactions_total = 0
        keyspace.on_created.append(self._attach_stream)

    # -- what readers of the write path see ---------------------------------------

    @property
    def compact_revision(self) -> int:
        return self.keyspace.compact_revision

    @property
    def publish_revision(self) -> int:
        """The newest revision whose events may be handed to watchers (see Store.publish_revision)."""
        d = self.durability
        if d is None:
            return self.revision
        return d.frontier(self.revision)

    def partitions(self) -> List[Partition]:
        """Every partition, in prefix order."""
        return self.keyspace.sorted_partitions()

    def partition(self, prefix: bytes) -> Partition:
        """The partition with this prefix, created if needed."""
        p = self.partition_map.get(prefix)
        if p is None:
            p = self.keyspace.partition(prefix)
        return p

    def notify_watchers(self) -> None:
        """Fire on_ready for watchers whose events just became publishable (an fsync landed)."""
        self.watch.notify()

    # -- the WAL ------------------------------------------------------------------

    def attach_wal(self, wal: WriteAheadLog, meta_mode: str) -> None:
        """Start logging: every partition gets its stream (after replay, which must not log)."""
        self.wal = wal
        self._wal_attached = True
        for p in self.partition_map.values():
            p.wal = wal.stream(p.prefix, p.wal_mode)
        self.meta_stream = wal.stream(META_STREAM, meta_mode)

    def _attach_stream(self, p: Partition) -> None:
        if self._wal_attached and self.wal is not None:
            p.wal = self.wal.stream(p.prefix, p.wal_mode)

    def _log_meta(self, record: bytes) -> Tuple[bool, bool]:
        """Append a lease or compaction record; (fsync, logged) for `commit`."""
        s = self.meta_stream
        if s is None:
            return False, False
        s.buf += record
        if not s.dirty:
            s.dirty = True
            self.wal.dirty.append(s)  # type: ignore[union-attr]
        return s.mode == "fsync", True

    def log_lease_grant(self, lease_id: int, ttl: int) -> Tuple[bool, bool]:
        return self._log_meta(LEASE_GRANT.pack(OP_GRANT, self.revision, lease_id, ttl))

    def log_lease_revoke(self, rev: int, lease_id: int) -> Tuple[bool, bool]:
        return self._log_meta(REV_ID.pack(OP_REVOKE, rev, lease_id))

    def log_compaction(self, revision: int) -> Tuple[bool, bool]:
        return self._log_meta(REV_ID.pack(OP_COMPACT, self.revision, revision))

    # -- records --------------------------------------------------------------------

    def put_at(self, p: Partition, key: bytes, value: bytes, lease: int, rev: int, old: Optional[KeyValue]) -> None:
        """Write one record at `rev`: map, key index, lease books, history, WAL, watchers.

        `old` is the key's current record (None: a new key). The revision
        does not advance until `commit`.
        """
        if old is None:
            kv = (key, rev, rev, 1, value, lease)
            p.kvs[key] = kv
            idx = p.index
            if key in idx.removed:
                idx.removed.discard(key)
            else:
                idx.added.add(key)
            if lease:
                self.lessor.attach(lease, key)
        else:
            key = old[0]  # keep one key object per key
            kv = (key, old[1], rev, old[3] + 1, value, lease)
            p.kvs[key] = kv
            old_lease = old[5]
            if old_lease != lease:
                if old_lease:
                    self.lessor.detach(old_lease, key)
                if lease:
                    self.lessor.attach(lease, key)
        ev = (kv, old)
        events = p.events
        events.append(ev)
        if len(events) > p.max_events + 1024 + (p.max_events >> 3):
            p.trim()
        w = p.wal
        if w is not None:
            buf = w.buf
            buf += _pack_put(OP_PUT, rev, lease, len(key), len(value))
            buf += key
            buf += value
            if not w.dirty:
                w.dirty = True
                self.wal.dirty.append(w)  # type: ignore[union-attr]
        g = p.watchers
        if g is not None:
            self.watch.dispatch(g, ev)

    def delete_at(self, p: Partition, old: KeyValue, rev: int) -> None:
        """Delete one live record at `rev` (see `put_at`)."""
        key = old[0]
        del p.kvs[key]
        idx = p.index
        if key in idx.added:
            idx.added.discard(key)
        else:
            idx.removed.add(key)
        if old[5]:
            self.lessor.detach(old[5], key)
        ev = ((key, 0, rev, 0, b"", 0), old)
        events = p.events
        events.append(ev)
        if len(events) > p.max_events + 1024 + (p.max_events >> 3):
            p.trim()
        w = p.wal
        if w is not None:
            buf = w.buf
            buf += _pack_delete(OP_DELETE, rev, len(key))
            buf += key
            if not w.dirty:
                w.dirty = True
                self.wal.dirty.append(w)  # type: ignore[union-attr]
        g = p.watchers
        if g is not None:
            self.watch.dispatch(g, ev)

    def delete_all(self, victims: Sequence[Tuple[Partition, KeyValue]], rev: int) -> Tuple[bool, bool]:
        """Delete records, in the order given, at one revision; (fsync, logged) for `commit`."""
        fsync = logged = False
        if len({id(p) for p, _ in victims}) > 1:
            self.note_write_order(rev, [kv[KEY] for _, kv in victims])
        for p, kv in victims:
            self.delete_at(p, kv, rev)
            fsync = fsync or p.fsync
            logged = logged or p.wal is not None
        self.deletes_total += len(victims)
        return fsync, logged

    def note_write_order(self, rev: int, keys: Sequence[bytes]) -> None:
        """Remember the op order of a revision that wrote to several partitions (see write_order)."""
        self.write_order[rev] = {k: i for i, k in enumerate(keys)}
        if len(self.write_order) > 4096:
            # Forget revisions no partition's history reaches any more.
            oldest = min(
                (p.events[0][0][MOD_REVISION] for p in self.partition_map.values() if p.events), default=rev
            )
            for r in [r for r in self.write_order if r < oldest]:
                del self.write_order[r]

    def reserve(self, rev: int) -> None:
        """`rev` passed `revision_limit`: make sure it is reserved on disk before it is used.

        Write paths call it (inline: ``if rev > w.revision_limit``) before
        their first change, so a disk that cannot take the reservation fails
        the write while nothing is changed yet. Blocks only when `rev` is
        past the ceiling on disk (`megaplane.store.wal.reservation`).
        """
        self.revision_limit = self.reservation.reach(rev)  # type: ignore[union-attr]

    def commit(self, rev: int, fsync: bool, logged: bool) -> None:
        """End a write transaction at `rev`: advance the revision, then durability, then wake-ups.

        Write paths call `reserve` before they change anything; the check
        here is the backstop: nothing of the write has left the process yet
        (watchers are woken below), so a revision past the reserved ceiling
        still waits here for its reservation to reach the disk.
        """
        if rev > self.revision_limit:
            self.reserve(rev)
        self.revision = rev
        if logged:
            self.durability.committed(rev, fsync)  # type: ignore[union-attr]
        watch = self.watch
        if watch.pending:
            watch.notify()

    def compact_to(self, revision: int) -> None:
        """Drop history below `revision` in every partition (the caller checked it is valid)."""
        self.keyspace.compact_revision = revision
        for p in self.partition_map.values():
            p.compact(revision)
        self.watch.check_compacted()

    # -- restart ------------------------------------------------------------------------

    def resume_at(self, revision: int, lost: bool) -> None:
        """After replay: continue at `revision`, above every revision the last run handed out.

        Partitions in WAL mode none came back empty without delete events,
        so reads and watches of them below `revision` fail as compacted.
        `lost`: the last run may have handed out revisions the WAL does not
        hold, so every partition is compacted to `revision`, and the
        compaction is logged so that a later clean restart remembers it.
        """
        self.revision = max(self.revision, revision)
        ks = self.keyspace
        ks.unlogged_floor = max(ks.unlogged_floor, revision)
        for p in self.partition_map.values():
            if p.wal_mode == "none" and p.floor < revision:
                p.floor = revision
        if lost and revision > ks.compact_revision:
            self.compact_to(revision)
            fsync, logged = self.log_compaction(revision)
            self.compactions_total += 1
            self.commit(self.revision, fsync, logged)

    # -- snapshot restore -------------------------------------------------------------

    def restore_record(self, kv: KeyValue) -> None:
        """Load one record from a snapshot into an empty store (no history, no WAL, no watchers)."""
        key = kv[0]
        p = self.partition(partition_prefix(key))
        p.kvs[key] = kv
        p.index.added.add(key)
        if kv[5]:
            self.lessor.attach(kv[5], key)

    def restore_revision(self, revision: int) -> None:
        """After a snapshot: the store is at `revision`, and history before it is gone."""
        self.revision = max(self.revision, revision)
        self.keyspace.compact_revision = revision
        for p in self.partition_map.values():
            p.floor = max(p.floor, revision)
