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
loop, callers drive it (`flush`, `wait_durable`, `Watcher.take`).

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
import collections
import heapq
import logging
import os
import threading
import time
from itertools import islice
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

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
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResult,
    check_put,
    check_txn,
)
from .watch import Watcher, WatchHub
from .wal import (
    DELETE_HEADER,
    HANDOFF_BYTES,
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
    WriteAheadLog,
)

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
        self._partitions: Dict[bytes, Partition] = {}
        # Sorted kind prefixes, for finding the partitions a range crosses.
        self._kind_prefixes: List[bytes] = []
        self.lessor = Lessor(clock, self.config.min_lease_ttl)
        self.hub = WatchHub(self, self.config.max_watch_buffer)
        # Revisions with fsync-mode writes not yet on disk, oldest first.
        self._fsync_revs: Deque[int] = collections.deque()
        self._durable_waiters: List[Tuple[int, int, "asyncio.Future[None]"]] = []
        self._waiter_seq = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._flush_handle: Optional[asyncio.Handle] = None
        self._flush_soon = False
        self._closed = False
        self._logged_writes = 0
        self._wal_bytes_at_checkpoint = 0
        self._checkpoint_thread: Optional[threading.Thread] = None
        self.last_snapshot_size = 0
        # Counters for /metrics.
        self.puts_total = 0
        self.deletes_total = 0
        self.ranges_total = 0
        self.txns_total = 0
        self.compactions_total = 0
        self.checkpoints_total = 0
        self.wal: Optional[WriteAheadLog] = None
        self._meta_stream = None
        # Partitions get their WAL stream only after restart replay is done.
        self._wal_attached = False
        self.replayed_records = 0
        if data_dir is not None:
            from . import snapshot

            os.makedirs(data_dir, exist_ok=True)
            self.wal = WriteAheadLog(
                os.path.join(data_dir, "wal"),
                flush_interval=self.config.wal_flush_interval,
                on_durable=self._on_durable_thread,
            )
            snap_cycle = 0
            loaded = snapshot.load_latest(os.path.join(data_dir, "snap"))
            if loaded is not None:
                snap_cycle = snapshot.restore_into(self, loaded)
                self.last_snapshot_size = loaded.size
            self._replay(snap_cycle)
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
        d = self._fsync_revs
        if d:
            wal = self.wal
            durable = wal.durable_revision if wal is not None else self._revision
            while d and d[0] <= durable:
                d.popleft()
            if d:
                return d[0] - 1
        return self._revision

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
            more = bool(r.limit) and len(kvs) > r.limit
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
            if old is None:
                raise KeyNotFoundError()
            if ignore_value:
                value = old[VALUE]
            if ignore_lease:
                lease = old[LEASE]
        if lease and lease not in self.lessor.leases:
            raise LeaseNotFoundError()
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

    def delete_range(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> DeleteResult:
        """etcd DeleteRange: delete every key in range in one revision."""
        if not key:
            raise EmptyKeyError()
        victims = self._live_in_range(key, range_end)
        if not victims:
            return DeleteResult(self._revision, 0, [])
        rev = self._revision + 1
        fsync = logged = False
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
        # Every compare, nested ones too, sees the state before the txn (etcd's compareToPath).
        path: List[bool] = []
        self._compare_path(r, path)
        self._check_path(r, path, [0])
        rev = self._revision + 1
        state = _TxnState(rev)
        result = self._execute(r, path, [0], state)
        self.txns_total += 1
        if state.changed:
            self._revision = rev
            self._committed(rev, state.fsync, state.logged)
            return result._replace(revision=rev)
        return result

    def _compare_path(self, r: TxnRequest, path: List[bool]) -> None:
        ok = all(self._compare(c) for c in r.compare)
        path.append(ok)
        for op in r.success if ok else r.failure:
            if isinstance(op, TxnRequest):
                self._compare_path(op, path)

    def _compare(self, c: Compare) -> bool:
        if c.range_end:
            start, end = normalize_range(c.key, c.range_end)
            kvs = [kv for _, kv in self._live_in_range(c.key, c.range_end)] if end is None or start < end else []
        else:
            kv = self.get(c.key)
            kvs = [kv] if kv is not None else []
        if not kvs:
            if c.target == CompareTarget.VALUE:
                return False
            return _compare_kv(c, None)
        return all(_compare_kv(c, kv) for kv in kvs)

    def _check_path(self, r: TxnRequest, path: List[bool], pos: List[int]) -> None:
        ok = path[pos[0]]
        pos[0] += 1
        for op in r.success if ok else r.failure:
            if isinstance(op, RangeRequest):
                if op.revision > self._revision:
                    raise FutureRevisionError()
                if op.revision and op.revision < (self.compact_revision if self.compact_revision else -1):
                    raise CompactedError()
            elif isinstance(op, PutRequest):
                if op.ignore_value or op.ignore_lease:
                    if self.get(op.key) is None:
                        raise KeyNotFoundError()
                if op.lease and op.lease not in self.lessor.leases:
                    raise LeaseNotFoundError()
                if len(op.key) + len(op.value) > self.config.max_request_bytes:
                    raise RequestTooLargeError()
            elif isinstance(op, TxnRequest):
                self._check_path(op, path, pos)

    def _execute(self, r: TxnRequest, path: List[bool], pos: List[int], st: "_TxnState") -> TxnResult:
        ok = path[pos[0]]
        pos[0] += 1
        responses: List[ResponseOp] = []
        rev = st.rev
        for op in r.success if ok else r.failure:
            if isinstance(op, RangeRequest):
                current = rev if st.changed else rev - 1
                responses.append(self._range(op, current, current))
            elif isinstance(op, PutRequest):
                prefix = partition_prefix(op.key)
                p = self._partitions.get(prefix) or self._new_partition(prefix)
                old = p.kvs.get(op.key)
                value, lease = op.value, op.lease
                if op.ignore_value:
                    value = old[VALUE]  # type: ignore[index]
                if op.ignore_lease:
                    lease = old[LEASE]  # type: ignore[index]
                self._put_locked(p, op.key, value, lease, rev, old)
                st.touch(p)
                self.puts_total += 1
                responses.append(PutResult(rev, old if op.prev_kv else None))
            elif isinstance(op, DeleteRangeRequest):
                victims = self._live_in_range(op.key, op.range_end)
                for p, kv in victims:
                    self._delete_locked(p, kv, rev)
                    st.touch(p)
                self.deletes_total += len(victims)
                responses.append(
                    DeleteResult(
                        rev if st.changed else rev - 1,
                        len(victims),
                        [kv for _, kv in victims] if op.prev_kv else [],
                    )
                )
            elif isinstance(op, TxnRequest):
                responses.append(self._execute(op, path, pos, st))
        return TxnResult(ok, rev if st.changed else rev - 1, responses)

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
        """Bookkeeping after a write transaction: fsync hold-back, WAL scheduling, wake-ups."""
        if logged:
            if fsync:
                d = self._fsync_revs
                if not d or d[-1] != rev:
                    d.append(rev)
            self._logged_writes += 1
            self._schedule_flush(fsync)
        if self.hub.pending:
            self.hub.notify()

    def _schedule_flush(self, fsync: bool) -> None:
        wal = self.wal
        assert wal is not None
        if sum(len(s.buf) for s in wal.dirty) > HANDOFF_BYTES:
            self._handoff()
            return
        loop = self._loop
        if loop is None:
            return
        if fsync:
            if not self._flush_soon:
                if self._flush_handle is not None:
                    self._flush_handle.cancel()
                self._flush_soon = True
                self._flush_handle = loop.call_soon(self._flush_callback)
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(self.config.wal_flush_interval, self._flush_callback)

    def _flush_callback(self) -> None:
        self._flush_handle = None
        self._flush_soon = False
        wal = self.wal
        if wal is None or not wal.dirty:
            return
        # Group commit: while a cycle is being fsynced, let the next one grow;
        # _durable_advanced hands it off as soon as the disk is free.
        if wal.inflight >= 1 and any(s.mode == "fsync" for s in wal.dirty):
            return
        if wal.inflight >= 2:
            self._flush_handle = self._loop.call_later(self.config.wal_flush_interval, self._flush_callback)  # type: ignore[union-attr]
            return
        self._handoff()

    def _handoff(self) -> None:
        wal = self.wal
        assert wal is not None
        wal.handoff(self._revision)
        self._maybe_checkpoint()

    def flush(self) -> None:
        """Hand every buffered WAL record to the disk writer now (does not wait)."""
        if self.wal is not None and self.wal.dirty:
            self._handoff()

    def sync(self) -> None:
        """Write every buffered WAL record to disk and wait for it."""
        if self.wal is not None:
            self.flush()
            self.wal.wait_inflight(0)

    def needs_durability(self, rev: int) -> bool:
        """True when an fsync-mode write at or below `rev` is not yet on disk."""
        return self.publish_revision < rev and bool(self._fsync_revs) and self._fsync_revs[0] <= rev

    def wait_durable(self, rev: int) -> None:
        """Block until every fsync-mode write up to `rev` is on disk (sync callers)."""
        if not self.needs_durability(rev):
            return
        assert self.wal is not None
        if any(s.mode == "fsync" for s in self.wal.dirty):
            self._handoff()
        self.wal.wait_durable(rev)
        self._durable_advanced(self.wal.durable_revision)

    async def durable(self, rev: int) -> None:
        """Wait until every fsync-mode write up to `rev` is on disk (async callers).

        Returns at once when `rev` touched no fsync partition.
        """
        if not self.needs_durability(rev):
            return
        loop = self._loop or asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._waiter_seq += 1
        heapq.heappush(self._durable_waiters, (rev, self._waiter_seq, fut))
        await fut

    def _on_durable_thread(self, revision: int) -> None:
        """Called by the WAL flusher thread after each cycle."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._durable_advanced, revision)
            except RuntimeError:
                pass

    def _durable_advanced(self, revision: int) -> None:
        wal = self.wal
        if wal is not None and wal.failed is not None:
            waiters, self._durable_waiters = self._durable_waiters, []
            for _, _, fut in waiters:
                if not fut.done():
                    fut.set_exception(wal.failed)
            return
        frontier = self.publish_revision
        waiters = self._durable_waiters
        while waiters and waiters[0][0] <= frontier:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)
        # Watchers held back behind this fsync are still in hub.pending.
        self.hub.notify()
        if wal is not None and wal.dirty and wal.inflight == 0 and any(s.mode == "fsync" for s in wal.dirty):
            self._handoff()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let the store schedule WAL handoffs and watcher wake-ups on `loop`."""
        self._loop = loop

    def _notify_soon(self) -> None:
        if self._loop is not None:
            self._loop.call_soon(self.hub.notify)

    # -- checkpoints ------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        wal = self.wal
        if wal is None:
            return
        t = self._checkpoint_thread
        if t is not None:
            if t.is_alive():
                return
            self._checkpoint_thread = None
        cfg = self.config
        written = wal.bytes_written_total - self._wal_bytes_at_checkpoint
        due = cfg.snapshot_count and self._logged_writes >= cfg.snapshot_count
        limit = max(cfg.checkpoint_bytes, 2 * self.last_snapshot_size)
        if due or written >= limit:
            self.checkpoint(wait=False)

    def checkpoint(self, wait: bool = True) -> None:
        """Write a snapshot of the logged partitions and drop the WAL segments it covers."""
        from . import snapshot

        wal = self.wal
        assert wal is not None and self.data_dir is not None
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join()
        if wal.dirty:
            wal.handoff(self._revision)
        cycle = wal.cycle
        sealed = wal.rotate()
        view = snapshot.capture(self, logged_only=True, wal_cycle=cycle)
        self._logged_writes = 0
        self._wal_bytes_at_checkpoint = wal.bytes_written_total

        def write() -> None:
            try:
                sealed.wait()
                path = snapshot.write_checkpoint(os.path.join(self.data_dir, "snap"), view)  # type: ignore[arg-type]
                self.last_snapshot_size = os.path.getsize(path)
                # The flusher has written every cycle <= `cycle` before sealing.
                wal.delete_sealed()
                self.checkpoints_total += 1
            except Exception:  # pragma: no cover - logged, the WAL still holds everything
                log.exception("checkpoint failed; WAL segments kept")

        t = threading.Thread(target=write, name="megaplane-checkpoint", daemon=True)
        self._checkpoint_thread = t
        t.start()
        if wait:
            t.join()

    # -- restart ----------------------------------------------------------------------

    def _replay(self, snap_cycle: int) -> None:
        wal = self.wal
        assert wal is not None
        result = wal.replay(snap_cycle)
        n = 0
        for rec in result.records:
            rev, op = rec[0], rec[1]
            if op == OP_PUT:
                key, value, lease = rec[2], rec[3], rec[4]
                p = self.partition(partition_prefix(key))
                if lease and lease not in self.lessor.leases:
                    lease = 0
                self._put_locked(p, key, value, lease, rev, p.kvs.get(key))
            elif op == OP_DELETE:
                key = rec[2]
                p = self.partition(partition_prefix(key))
                old = p.kvs.get(key)
                if old is not None:
                    self._delete_locked(p, old, rev)
            elif op == OP_GRANT:
                self.lessor.restore(rec[2], rec[3])
            elif op == OP_REVOKE:
                self.lessor.leases.pop(rec[2], None)
            elif op == OP_COMPACT:
                if rec[2] > self.compact_revision:
                    self._compact_locked(rec[2])
            if rev > self._revision:
                self._revision = rev
            n += 1
        if result.last_revision > self._revision:
            self._revision = result.last_revision
        if result.torn:
            log.warning("WAL: dropped torn or corrupt tail in %s", ", ".join(result.torn))
        log.info(
            "WAL replay: %d records from %d frames, revision %d (cycle %d)",
            n,
            result.frames,
            self._revision,
            result.last_cycle,
        )
        self.replayed_records = n

    def close(self) -> None:
        """Flush and close the WAL; the store must not be used afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join()
        if self.wal is not None:
            if self.wal.failed is None:
                self.flush()
                self.wal.wait_inflight(0)
            self.wal.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TxnState:
    __slots__ = ("rev", "changed", "fsync", "logged")

    def __init__(self, rev: int) -> None:
        self.rev = rev
        self.changed = False
        self.fsync = False
        self.logged = False

    def touch(self, p: Partition) -> None:
        self.changed = True
        if p.fsync:
            self.fsync = True
        if p.wal is not None:
            self.logged = True


def _compare_kv(c: Compare, kv: Optional[KeyValue]) -> bool:
    t = c.target
    if t == CompareTarget.VALUE:
        a: object = kv[VALUE] if kv is not None else b""
        b: object = c.value if isinstance(c.value, bytes) else b""
    else:
        field = {
            CompareTarget.VERSION: VERSION,
            CompareTarget.CREATE: CREATE_REVISION,
            CompareTarget.MOD: MOD_REVISION,
            CompareTarget.LEASE: LEASE,
        }[t]
        a = kv[field] if kv is not None else 0
        b = c.value if isinstance(c.value, int) else 0
    res = c.result
    if res == CompareResult.EQUAL:
        return a == b
    if res == CompareResult.NOT_EQUAL:
        return a != b
    if res == CompareResult.GREATER:
        return a > b  # type: ignore[operator]
    if res == CompareResult.LESS:
        return a < b  # type: ignore[operator]
    raise InvalidArgumentError(f"etcdserver: unknown compare result {res}")


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
