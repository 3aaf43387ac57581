"""The store: one global revision over partitioned keyspaces, with etcd v3 semantics.

`Store` is what every other part of megaplane talks to for state: Range,
Put, DeleteRange, Txn and Compact with etcd's semantics and errors, watches
(`megaplane.store.watch`), leases (`megaplane.store.leases`), and
durability through the WAL (`megaplane.store.wal`) and snapshots
(`megaplane.store.snapshot`).

Threading: a Store is used from one thread (in a server, its event loop);
only the WAL flusher and the checkpoint writer run beside it, and they
touch nothing but what the store hands them. `attach_loop` lets the store
schedule WAL handoffs and watcher wake-ups on an asyncio loop; without a
loop, callers drive it (`flush`, `wait_durable`, `Watcher.take`). Lease
expiry is driven by whoever owns the store (`expire_leases`).

Revisions: the store starts at revision 1 like etcd; every transaction that
changes something takes the next revision, and all its changes share it.
Reads, no-op deletes and lease grants do not bump it.

Durability: a write is in memory and visible when `put` returns. If its
partition is in fsync mode, the caller acknowledges it only after
`wait_durable(rev)` / `await durable(rev)`, and watchers are not handed
its event before then either (see `publish_revision`).
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import os
import time
from itertools import islice
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .durability import Durability, recover
from .errors import (
    CompactedError,
    EmptyKeyError,
    FutureRevisionError,
    InvalidArgumentError,
    KeyNotFoundError,
    LeaseNotFoundError,
    RequestTooLargeError,
)
from .keyspace import Partition
from .kv import (
    CREATE_REVISION,
    KEY,
    LEASE,
    MOD_REVISION,
    VALUE,
    VERSION,
    KeyValue,
    normalize_range,
    partition_prefix,
    prefix_end,
)
from .leases import Lease, Lessor
from .txn import (
    Compare,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResult,
    check_put,
    check_txn,
    run_txn,
)
from .wal import (
    DELETE_HEADER,
    LEASE_GRANT,
    META_STREAM,
    MODES,
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
from .watch import Watcher, WatchHub

__all__ = ["Store", "StoreConfig"]

log = logging.getLogger("megaplane.store")

_pack_put = PUT_HEADER.pack
_pack_delete = DELETE_HEADER.pack


def _key_of(kv: KeyValue) -> bytes:
    return kv[KEY]


class StoreConfig:
    """Tunables of a store; flag names in parentheses (etcd's where it has one)."""

    def __init__(
        self,
        *,
        wal_default: str = "buffered",
        wal_modes: Optional[Dict[bytes, str]] = None,
        wal_flush_interval: float = 0.005,
        history_max_events: int = 200_000,
        max_txn_ops: int = 128,
        max_request_bytes: int = 1_572_864,
        min_lease_ttl: int = 2,
        max_watch_buffer: int = 100_000,
        snapshot_count: int = 0,
        checkpoint_bytes: int = 256 << 20,
    ) -> None:
        #: WAL mode of partitions no --wal-mode prefix matches (--wal-default).
        self.wal_default = wal_default
        #: Partition prefix -> WAL mode (--wal-mode PREFIX=MODE, repeatable).
        self.wal_modes = dict(wal_modes or {})
        #: How long buffered-mode records may wait before a write (--wal-flush-interval).
        self.wal_flush_interval = wal_flush_interval
        #: Events kept per partition for watches and old reads (--history-max-events).
        self.history_max_events = history_max_events
        #: Most compares / ops per txn branch (--max-txn-ops).
        self.max_txn_ops = max_txn_ops
        #: Largest key + value accepted (--max-request-bytes).
        self.max_request_bytes = max_request_bytes
        #: Smallest lease TTL; shorter grants are raised to it (etcd: 2 s by default).
        self.min_lease_ttl = min_lease_ttl
        #: Events a watcher may have waiting before it is treated as slow.
        self.max_watch_buffer = max_watch_buffer
        #: Checkpoint after this many logged writes; 0: by size only (--snapshot-count).
        self.snapshot_count = snapshot_count
        #: Checkpoint once this many WAL bytes are written since the last one
        #: (raised to twice the last snapshot's size) (--wal-checkpoint-bytes).
        self.checkpoint_bytes = checkpoint_bytes
        for prefix, mode in self.wal_modes.items():
            _check_mode(mode)
            inner = partition_prefix(prefix)
            if inner and inner != prefix:
                raise ValueError(
                    f"--wal-mode prefix {prefix.decode(errors='replace')!r} lies inside partition "
                    f"{inner.decode(errors='replace')!r}; a mode applies to whole partitions"
                )
        _check_mode(wal_default)

    def mode_for(self, prefix: bytes) -> str:
        """The WAL mode of a partition: the longest matching --wal-mode prefix, else the default."""
        if prefix == META_STREAM:
            # Lease and compaction records are as durable as the most durable partition.
            modes = [self.wal_default, *self.wal_modes.values()]
            return max(modes, key=MODES.index)
        best = -1
        mode = self.wal_default
        if prefix:
            for p, m in self.wal_modes.items():
                if prefix.startswith(p) and len(p) > best:
                    best, mode = len(p), m
        return mode


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown WAL mode {mode!r} (want one of {', '.join(MODES)})")


class Store:
    """An in-memory MVCC key-value store with etcd v3 semantics, partitioned by kind."""

    def __init__(
        self,
        data_dir: Optional[str] = None,
        config: Optional[StoreConfig] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or StoreConfig()
        self.data_dir = data_dir
        self._revision = 1
        #: The revision of the last Compact; reads and watches below it fail.
        self.compact_revision = 0
        self._compacted_zero = False
        # Op order of the revisions that wrote to more than one partition: {revision: {key: index}}.
        # Each partition keeps its own events in op order; replaying several partitions needs this to
        # interleave them as the txn ran (etcd keeps a txn's events in op order).
        self.write_order: Dict[int, Dict[bytes, int]] = {}
        self._partitions: Dict[bytes, Partition] = {}
        # Sorted kind prefixes, for finding the partitions a range crosses.
        self._kind_prefixes: List[bytes] = []
        self.lessor = Lessor(clock, self.config.min_lease_ttl)
        self.hub = WatchHub(self, self.config.max_watch_buffer)
        self._closed = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # Counters for /metrics.
        self.puts_total = 0
        self.deletes_total = 0
        self.ranges_total = 0
        self.txns_total = 0
        self.compactions_total = 0
        self.replayed_records = 0
        self.wal: Optional[WriteAheadLog] = None
        self.durability: Optional[Durability] = None
        self._meta_stream: Optional[WalStream] = None
        # Partitions get their WAL stream only after restart replay is done.
        self._wal_attached = False
        if data_dir is not None:
            os.makedirs(data_dir, exist_ok=True)
            self.wal = WriteAheadLog(
                os.path.join(data_dir, "wal"), flush_interval=self.config.wal_flush_interval
            )
            self.durability = Durability(self, self.wal)
            self.replayed_records = recover(self, self.wal)
            self._wal_attached = True
            for p in self._partitions.values():
                self._attach_wal(p)
            self._meta_stream = self.wal.stream(META_STREAM, self.config.mode_for(META_STREAM))

    def __repr__(self) -> str:
        return (
            f"<Store rev={self._revision} compact={self.compact_revision} "
            f"partitions={len(self._partitions)} keys={self.key_count()} "
            f"watchers={len(self.hub)} leases={len(self.lessor)}>"
        )

    # -- introspection -------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the last committed write (1 for an empty store)."""
        return self._revision

    @property
    def publish_revision(self) -> int:
        """The newest revision whose events may be handed to watchers.

        Equal to `revision` unless fsync-mode writes are still on their way
        to disk; then it stops just below the oldest of them.
        """
        if self.durability is None:
            return self._revision
        return self.durability.frontier(self._revision)

    def partitions(self) -> List[Partition]:
        return [self._partitions[p] for p in sorted(self._partitions)]

    def partition(self, prefix: bytes) -> Partition:
        """The partition with this prefix, created if needed."""
        p = self._partitions.get(prefix)
        if p is None:
            p = self._new_partition(prefix)
        return p

    def key_count(self) -> int:
        return sum(len(p.kvs) for p in self._partitions.values())

    def _new_partition(self, prefix: bytes) -> Partition:
        p = Partition(prefix, self.config.history_max_events)
        p.floor = self.compact_revision
        self._partitions[prefix] = p
        if prefix:
            bisect.insort(self._kind_prefixes, prefix)
        p.wal_mode = self.config.mode_for(prefix)
        p.fsync = p.wal_mode == "fsync"
        if self._wal_attached:
            self._attach_wal(p)
        self.hub.partition_created(p)
        return p

    def _attach_wal(self, p: Partition) -> None:
        if self.wal is not None:
            p.wal = self.wal.stream(p.prefix, p.wal_mode)

    def _partitions_for(self, start: bytes, end: Optional[bytes]) -> Tuple[List[Partition], bool]:
        """The partitions a key range reaches, and whether it reaches more than one kind."""
        prefix = partition_prefix(start)
        if prefix and end is not None and end <= prefix_end(prefix):
            return [self.partition(prefix)], False
        out = [self.partition(b"")]
        kinds = self._kind_prefixes
        i = bisect.bisect_left(kinds, start)
        # A kind prefix sorting before `start` may still contain it.
        if i > 0 and start.startswith(kinds[i - 1]):
            i -= 1
        while i < len(kinds) and (end is None or kinds[i] < end):
            out.append(self._partitions[kinds[i]])
            i += 1
        return out, True

    # -- reads ------------------------------------------------------------------------

    def get(self, key: bytes) -> Optional[KeyValue]:
        """The current record of one key, or None. The fastest read."""
        p = self._partitions.get(partition_prefix(key))
        if p is None:
            return None
        return p.kvs.get(key)

    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult:
        """etcd Range for the common options; see `range_request` for all of them."""
        return self.range_request(
            RangeRequest(
                key,
                range_end,
                limit=limit,
                revision=revision,
                keys_only=keys_only,
                count_only=count_only,
            )
        )

    def range_request(self, r: RangeRequest) -> RangeResult:
        """etcd Range: keys in [key, range_end) at a revision, with limit, sort and filters."""
        if not r.key:
            raise EmptyKeyError()
        self.ranges_total += 1
        return self._range(r, self._revision)

    def _check_read_revision(self, revision: int, current: int) -> int:
        if revision > current:
            raise FutureRevisionError()
        if revision <= 0:
            return current
        if revision < self.compact_revision:
            raise CompactedError()
        return revision

    def _range(self, r: RangeRequest, current: int, header_revision: int = 0) -> RangeResult:
        rev = self._check_read_revision(r.revision, current)
        header = header_revision or current
        if not r.range_end:
            p = self._partitions.get(partition_prefix(r.key))
            if p is None:
                return RangeResult([], 0, False, header)
            if rev < p.floor:
                raise CompactedError()
            kv = p.kvs.get(r.key) if rev >= current else p.get_at(r.key, rev)
            if kv is None:
                return RangeResult([], 0, False, header)
            if r.count_only:
                return RangeResult([], 1, False, header)
            kvs = [kv]
            kvs = self._filter_kvs(kvs, r)
            if r.keys_only:
                kvs = [(k[0], k[1], k[2], k[3], b"", k[5]) for k in kvs]
            more = r.limit > 0 and len(kvs) > r.limit  # etcd: a negative limit is no limit
            return RangeResult(kvs[: r.limit] if more else kvs, 1, more, header)

        start, end = normalize_range(r.key, r.range_end)
        if end is not None and end <= start:
            return RangeResult([], 0, False, header)
        parts, _ = self._partitions_for(start, end)
        iters: List[Iterator[KeyValue]] = []
        count = 0
        for p in parts:
            if rev < p.floor:
                raise CompactedError()
            if not p.kvs and not p.events:
                continue
            it, n = p.iter_range(start, end, rev, current)
            if n:
                iters.append(it)
                count += n
        if r.count_only:
            return RangeResult([], count, False, header)
        merged: Iterator[KeyValue]
        if not iters:
            merged = iter(())
        elif len(iters) == 1:
            merged = iters[0]
        else:
            merged = heapq.merge(*iters, key=_key_of)
        default_order = r.sort_order == SortOrder.NONE or (
            r.sort_target == SortTarget.KEY and r.sort_order == SortOrder.ASCEND
        )
        filtered = bool(
            r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision
        )
        if r.limit > 0 and default_order and not filtered:
            kvs = list(islice(merged, r.limit + 1))
        else:
            kvs = list(merged)
        if filtered:
            kvs = self._filter_kvs(kvs, r)
        if not default_order or (r.sort_target != SortTarget.KEY and r.sort_order == SortOrder.NONE):
            kvs = _sort_kvs(kvs, r.sort_target, r.sort_order)
        more = r.limit > 0 and len(kvs) > r.limit
        if more:
            del kvs[r.limit :]
        if r.keys_only:
            kvs = [(k[0], k[1], k[2], k[3], b"", k[5]) for k in kvs]
        return RangeResult(kvs, count, more, header)

    @staticmethod
    def _filter_kvs(kvs: List[KeyValue], r: RangeRequest) -> List[KeyValue]:
        if r.max_mod_revision:
            kvs = [kv for kv in kvs if kv[MOD_REVISION] <= r.max_mod_revision]
        if r.min_mod_revision:
            kvs = [kv for kv in kvs if kv[MOD_REVISION] >= r.min_mod_revision]
        if r.max_create_revision:
            kvs = [kv for kv in kvs if kv[CREATE_REVISION] <= r.max_create_revision]
        if r.min_create_revision:
            kvs = [kv for kv in kvs if kv[CREATE_REVISION] >= r.min_create_revision]
        return kvs

    # -- writes ---------------------------------------------------------------------------

    def put(
        self,
        key: bytes,
        value: bytes,
        lease: int = 0,
        *,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutResult:
        """etcd Put. Returns the new revision (and the previous record if asked)."""
        if not key:
            raise EmptyKeyError()
        prefix = partition_prefix(key)
        p = self._partitions.get(prefix)
        if p is None:
            p = self._new_partition(prefix)
        old = p.kvs.get(key)
        if ignore_value or ignore_lease:
            check_put(PutRequest(key, value, lease, prev_kv, ignore_value, ignore_lease))
        # etcd checks the lease of a top-level put before it looks for the key.
        if lease and lease not in self.lessor.leases:
            raise LeaseNotFoundError()
        if ignore_value or ignore_lease:
            if old is None:
                raise KeyNotFoundError()
            if ignore_value:
                value = old[VALUE]
            if ignore_lease:
                lease = old[LEASE]
        if len(key) + len(value) > self.config.max_request_bytes:
            raise RequestTooLargeError()
        rev = self._revision + 1
        self._put_locked(p, key, value, lease, rev, old)
        self._revision = rev
        self.puts_total += 1
        self._committed(rev, p.fsync, p.wal is not None)
        return PutResult(rev, old if prev_kv else None)

    def _put_locked(
        self, p: Partition, key: bytes, value: bytes, lease: int, rev: int, old: Optional[KeyValue]
    ) -> None:
        """Apply one put at `rev`: record, key index, lease books, history, WAL, watchers."""
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
            self.hub.dispatch(g, ev)  # type: ignore[arg-type]

    def _delete_locked(self, p: Partition, old: KeyValue, rev: int) -> None:
        """Apply one delete at `rev`."""
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
            self.hub.dispatch(g, ev)  # type: ignore[arg-type]

    def compare_and_put(
        self, key: bytes, mod_revision: int, value: Union[bytes, Callable[[int], bytes]], lease: int = 0
    ) -> Tuple[bool, Optional[KeyValue]]:
        """Put if the key's mod_revision is `mod_revision` (0: the key must not exist; -1: any).

        The kube-apiserver's create and update txns in one call, without the
        generic txn machinery. `value` may be a function of the revision the
        write will get, so callers can embed it (the API server stores
        objects with their resourceVersion). Returns (True, new record) or
        (False, current record or None).
        """
        prefix = partition_prefix(key)
        p = self._partitions.get(prefix)
        if p is None:
            p = self._new_partition(prefix)
        old = p.kvs.get(key)
        current = old[MOD_REVISION] if old is not None else 0
        if mod_revision >= 0 and current != mod_revision:
            return False, old
        if lease and lease not in self.lessor.leases:
            raise LeaseNotFoundError()
        rev = self._revision + 1
        data = value(rev) if callable(value) else value
        if len(key) + len(data) > self.config.max_request_bytes:
            raise RequestTooLargeError()
        self._put_locked(p, key, data, lease, rev, old)
        self._revision = rev
        self.puts_total += 1
        self.txns_total += 1
        self._committed(rev, p.fsync, p.wal is not None)
        return True, p.kvs[old[KEY] if old is not None else key]

    def compare_and_delete(self, key: bytes, mod_revision: int) -> Tuple[bool, Optional[KeyValue]]:
        """Delete if the key's mod_revision is `mod_revision` (-1: any). Returns (deleted, previous record)."""
        p = self._partitions.get(partition_prefix(key))
        old = p.kvs.get(key) if p is not None else None
        if old is None or (mod_revision >= 0 and old[MOD_REVISION] != mod_revision):
            return False, old
        rev = self._revision + 1
        self._delete_locked(p, old, rev)  # type: ignore[arg-type]
        self._revision = rev
        self.deletes_total += 1
        self.txns_total += 1
        self._committed(rev, p.fsync, p.wal is not None)  # type: ignore[union-attr]
        return True, old

    def delete_range(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> DeleteResult:
        """etcd DeleteRange: delete every key in range in one revision."""
        if not key:
            raise EmptyKeyError()
        victims = self._live_in_range(key, range_end)
        if not victims:
            return DeleteResult(self._revision, 0, [])
        rev = self._revision + 1
        fsync = logged = False
        if len({id(p) for p, _ in victims}) > 1:
            self.note_write_order(rev, [kv[KEY] for _, kv in victims])
        for p, kv in victims:
            self._delete_locked(p, kv, rev)
            fsync = fsync or p.fsync
            logged = logged or p.wal is not None
        self._revision = rev
        self.deletes_total += len(victims)
        self._committed(rev, fsync, logged)
        return DeleteResult(rev, len(victims), [kv for _, kv in victims] if prev_kv else [])

    def _live_in_range(self, key: bytes, range_end: bytes) -> List[Tuple[Partition, KeyValue]]:
        if not range_end:
            p = self._partitions.get(partition_prefix(key))
            if p is None:
                return []
            kv = p.kvs.get(key)
            return [(p, kv)] if kv is not None else []
        start, end = normalize_range(key, range_end)
        if end is not None and end <= start:
            return []
        parts, _ = self._partitions_for(start, end)
        out: List[Tuple[Partition, KeyValue]] = []
        for p in parts:
            if p.kvs:
                kvs = p.kvs
                out.extend((p, kvs[k]) for k in list(p.index.irange(start, end)))
        if len(parts) > 1:
            out.sort(key=lambda pk: pk[1][KEY])
        return out

    def compact(self, revision: int) -> int:
        """etcd Compact: forget history below `revision`. Returns the current revision."""
        if revision == 0 == self.compact_revision and not self._compacted_zero:
            # etcd's compaction floor starts at -1, so one compact(0) succeeds on a fresh store.
            self._compacted_zero = True
            return self._revision
        if revision <= self.compact_revision:
            raise CompactedError()
        if revision > self._revision:
            raise FutureRevisionError()
        self._compact_locked(revision)
        s = self._meta_stream
        if s is not None:
            s.buf += REV_ID.pack(OP_COMPACT, self._revision, revision)
            self._mark_meta_dirty()
        self.compactions_total += 1
        self._committed(self._revision, s is not None and s.mode == "fsync", s is not None)
        return self._revision

    def note_write_order(self, rev: int, keys: Sequence[bytes]) -> None:
        """Remember the op order of a revision that wrote to several partitions (see write_order)."""
        self.write_order[rev] = {k: i for i, k in enumerate(keys)}
        if len(self.write_order) > 4096:
            # Forget revisions no partition's history reaches any more.
            oldest = min((p.events[0][0][MOD_REVISION] for p in self._partitions.values() if p.events), default=rev)
            for r in [r for r in self.write_order if r < oldest]:
                del self.write_order[r]

    def _compact_locked(self, revision: int) -> None:
        self.compact_revision = revision
        for p in self._partitions.values():
            p.compact(revision)
        self.hub.check_compacted()

    # -- transactions -------------------------------------------------------------------

    def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[RequestOp] = (),
        failure: Sequence[RequestOp] = (),
    ) -> TxnResult:
        """etcd Txn: if every compare holds run `success`, else `failure`; one revision."""
        return self.txn_request(TxnRequest(compare, success, failure))

    def txn_request(self, r: TxnRequest) -> TxnResult:
        check_txn(r, self.config.max_txn_ops)
        return run_txn(self, r)

    # -- leases ------------------------------------------------------------------------

    def lease_grant(self, ttl: int, lease_id: int = 0) -> Lease:
        """etcd LeaseGrant. `lease_id` 0 lets the store pick one."""
        if lease_id < 0:
            raise InvalidArgumentError("etcdserver: lease id must not be negative")
        lease = self.lessor.grant(lease_id, ttl)
        s = self._meta_stream
        if s is not None:
            s.buf += LEASE_GRANT.pack(OP_GRANT, self._revision, lease.id, lease.ttl)
            self._mark_meta_dirty()
            self._committed(self._revision, s.mode == "fsync", True)
        return lease

    def lease_revoke(self, lease_id: int) -> int:
        """etcd LeaseRevoke: delete the lease and, in one revision, its keys."""
        lease = self.lessor.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        victims: List[Tuple[Partition, KeyValue]] = []
        for key in sorted(lease.keys):
            p = self._partitions.get(partition_prefix(key))
            kv = p.kvs.get(key) if p is not None else None
            if kv is not None:
                victims.append((p, kv))  # type: ignore[arg-type]
        rev = self._revision + 1 if victims else self._revision
        fsync = logged = False
        if len({id(p) for p, _ in victims}) > 1:
            self.note_write_order(rev, [kv[KEY] for _, kv in victims])
        for p, kv in victims:
            self._delete_locked(p, kv, rev)
            fsync = fsync or p.fsync
            logged = logged or p.wal is not None
        self.lessor.remove(lease_id)
        self._revision = rev
        self.deletes_total += len(victims)
        s = self._meta_stream
        if s is not None:
            s.buf += REV_ID.pack(OP_REVOKE, rev, lease_id)
            self._mark_meta_dirty()
            fsync = fsync or s.mode == "fsync"
            logged = True
        self._committed(rev, fsync, logged)
        return rev

    def lease_keepalive(self, lease_id: int) -> int:
        """etcd LeaseKeepAlive: renew and return the TTL. Raises LeaseNotFoundError."""
        return self.lessor.renew(lease_id)

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> Tuple[int, int, List[bytes]]:
        """(remaining TTL, granted TTL, attached keys); remaining -1 when unknown, like etcd."""
        lease = self.lessor.get(lease_id)
        if lease is None:
            return -1, 0, []
        return self.lessor.remaining(lease_id), lease.ttl, sorted(lease.keys) if keys else []

    def lease_ids(self) -> List[int]:
        return list(self.lessor.leases)

    def expire_leases(self) -> int:
        """Revoke every lease whose TTL ran out; returns how many. Call periodically."""
        n = 0
        for lease_id in self.lessor.expired():
            if lease_id in self.lessor.leases:
                self.lease_revoke(lease_id)
                self.lessor.expired_total += 1
                n += 1
        return n

    # -- watches ---------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        *,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
        watch_id: int = 0,
    ) -> Watcher:
        """Watch [key, range_end) from `start_revision` (0: from now on).

        A start below the compaction floor yields a watcher that is cancelled
        with `compact_revision` set on its first `take()`.
        """
        start, end = normalize_range(key, range_end)
        parts, spanning = self._partitions_for(start, end)
        w = self.hub.create(
            parts,
            spanning,
            key,
            range_end,
            start,
            end,
            start_revision,
            watch_id=watch_id,
            prev_kv=prev_kv,
            no_put=no_put,
            no_delete=no_delete,
            progress_notify=progress_notify,
            fragment=fragment,
        )
        if not w.synced:
            self.hub._wake(w)
            self._notify_soon()
        return w

    # -- durability ---------------------------------------------------------------------

    def _mark_meta_dirty(self) -> None:
        s = self._meta_stream
        if s is not None and not s.dirty:
            s.dirty = True
            self.wal.dirty.append(s)  # type: ignore[union-attr]

    def _committed(self, rev: int, fsync: bool, logged: bool) -> None:
        """Bookkeeping after a write transaction: durability, then watcher wake-ups."""
        if logged:
            self.durability.committed(rev, fsync)  # type: ignore[union-attr]
        if self.hub.pending:
            self.hub.notify()

    def flush(self) -> None:
        """Hand every buffered WAL record to the disk writer now (does not wait)."""
        if self.durability is not None:
            self.durability.flush()

    def sync(self) -> None:
        """Write every buffered WAL record to disk and wait for it."""
        if self.durability is not None:
            self.durability.sync()

    def needs_durability(self, rev: int) -> bool:
        """True when an fsync-mode write at or below `rev` is not yet on disk."""
        return self.durability is not None and self.durability.needs(rev)

    def wait_durable(self, rev: int) -> None:
        """Block until every fsync-mode write up to `rev` is on disk (synchronous callers)."""
        if self.durability is not None:
            self.durability.wait(rev)

    async def durable(self, rev: int) -> None:
        """Wait until every fsync-mode write up to `rev` is on disk (event loop callers).

        Returns at once when `rev` touched no fsync partition.
        """
        if self.durability is not None:
            await self.durability.wait_async(rev)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let the store schedule WAL handoffs and watcher wake-ups on `loop`."""
        self._loop = loop
        if self.durability is not None:
            self.durability.attach_loop(loop)

    def _notify_soon(self) -> None:
        if self._loop is not None:
            self._loop.call_soon(self.hub.notify)

    def checkpoint(self, wait: bool = True) -> None:
        """Write a snapshot of the logged partitions and drop the WAL segments it covers."""
        if self.durability is None:
            raise RuntimeError("a store without a data dir has nothing to checkpoint")
        self.durability.checkpoint(wait=False)
        if wait and self.durability._checkpoint_thread is not None:
            self.durability._checkpoint_thread.join()

    def close(self) -> None:
        """Flush and close the WAL; the store must not be used afterwards."""
        if self._closed:
            return
        self._closed = True
        if self.durability is not None:
            self.durability.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SORT_FIELD = {
    SortTarget.KEY: KEY,
    SortTarget.VERSION: VERSION,
    SortTarget.CREATE: CREATE_REVISION,
    SortTarget.MOD: MOD_REVISION,
    SortTarget.VALUE: VALUE,
}


def _sort_kvs(kvs: List[KeyValue], target: int, order: int) -> List[KeyValue]:
    if order == SortOrder.NONE:
        order = SortOrder.ASCEND
    field = _SORT_FIELD.get(target)
    if field is None:
        raise InvalidArgumentError(f"etcdserver: unknown sort target {target}")
    if target == SortTarget.KEY:
        return kvs[::-1] if order == SortOrder.DESCEND else kvs
    # Go's sort.Sort is not stable; a stable sort is one of its valid outcomes.
    return sorted(kvs, key=lambda kv: kv[field], reverse=order == SortOrder.DESCEND)
