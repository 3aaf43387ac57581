"""The store: one global revision over partitioned keyspaces, with etcd v3 semantics.

`Store` is what every other part of megaplane talks to for state: Range,
Put, DeleteRange, Txn and Compact with etcd's semantics and errors, watches
(`megaplane.store.watch`), leases (`megaplane.store.leases`), and
durability through the WAL and snapshots (`megaplane.store.wal`).

It is a facade: it checks requests and wires the parts together, and owns
no state of its own. Records live in the keyspace (`keyspace`), every
change goes through the writer (`writer`), reads through `ranges`, txns
through `txn`. Each part sees the others through a small Protocol, never
through the Store.

Threading: a Store is used from one thread (in a server, its event loop);
only the WAL flusher and the checkpoint writer run beside it, and they
touch nothing but what the store hands them. `attach_loop` lets the store
schedule WAL handoffs and watcher wake-ups on an asyncio loop; without a
loop, callers drive it (`flush`, `wait_durable`, `Watcher.take`). Lease
expiry is driven by whoever owns the store (`expire_leases`).

Revisions: the store starts at revision 1 like etcd; every transaction that
changes something takes the next revision, and all its changes share it.
Reads, no-op deletes and lease grants do not bump it.

Revisions are never reused, even after a crash: with a data dir, a
ceiling is kept on disk ahead of the revision (`megaplane.store.wal.reservation`),
and a restart resumes above it (`megaplane.store.wal.recovery.resume`),
with the lost range compacted.

Durability: a write is in memory and visible when `put` returns. If its
partition is in fsync mode, the caller acknowledges it only after
`wait_durable(rev)` / `await durable(rev)`, and watchers are not handed
its event before then either (see `publish_revision`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .config import StoreConfig
from .errors import (
    CompactedError,
    EmptyKeyError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseNotFoundError,
    RequestTooLargeError,
)
from .keyspace import Keyspace, Partition
from .kv import KEY, LEASE, MOD_REVISION, VALUE, KeyValue, normalize_range, partition_prefix
from .leases import Leases
from .lessor import Lease, Lessor
from .ranges import read_range
from .requests import (
    Compare,
    DeleteResult,
    PutRequest,
    PutResult,
    RangeRequest,
    RangeResult,
    RequestOp,
    TxnRequest,
    TxnResult,
    check_put,
    check_txn,
)
from .txn import run_txn
from .wal import Durability, RevisionReservation, WriteAheadLog, recover, resume
from .wal.fileutil import private_dir, tighten_data_dir
from .wal.log import META_STREAM
from .wal.reservation import read_record
from .watch import Watcher, WatchHub
from .writer import Writer

__all__ = ["Store", "StoreConfig"]

log = logging.getLogger("megaplane.store")


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
        self._compacted_zero = False
        self._keyspace = Keyspace(self.config.history_max_events, self.config.mode_for)
        # The keyspace's own dict: the hot paths look partitions up here.
        self._partitions: Dict[bytes, Partition] = self._keyspace.partitions
        self.lessor = Lessor(clock, self.config.min_lease_ttl)
        # Hooks on partition creation run in this order: WAL stream first, then spanning watchers.
        self._writer = Writer(self._keyspace, self.lessor)
        self.hub = WatchHub(self._writer, self.config.max_watch_buffer)
        self._writer.watch = self.hub
        self._keyspace.on_created.append(self.hub.partition_created)
        self.leases = Leases(self.lessor, self._writer)
        self._closed = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.ranges_total = 0
        self.replayed_records = 0
        #: The revision the checkpoint and WAL brought back at open (the store resumes above it).
        self.recovered_revision = 1
        self.wal: Optional[WriteAheadLog] = None
        self.durability: Optional[Durability] = None
        self.reservation: Optional[RevisionReservation] = None
        if data_dir is not None:
            private_dir(data_dir)
            tighten_data_dir(data_dir)
            last_run = read_record(data_dir)
            self.wal = WriteAheadLog(
                os.path.join(data_dir, "wal"), flush_interval=self.config.wal_flush_interval
            )
            self.reservation = RevisionReservation(
                data_dir,
                self.wal,
                modes=self.config.logging_rules(),
                min_step=self.config.revision_reserve_step,
                lead_seconds=self.config.revision_reserve_seconds,
            )
            self.durability = Durability(self._writer, self.wal, self.config, data_dir, self.reservation)
            self._writer.durability = self.durability
            self.replayed_records = recover(self._writer, self.wal, data_dir)
            self.recovered_revision = self._writer.revision
            self._writer.attach_wal(self.wal, self.config.mode_for(META_STREAM))
            # Above every revision the last run handed out, reserved on disk before the first write.
            resume(self._writer, last_run, self.config.logs_like)
            self._writer.revision_limit = self.reservation.begin(self._writer.revision)
            self._writer.reservation = self.reservation

    def __repr__(self) -> str:
        return (
            f"<Store rev={self.revision} compact={self.compact_revision} "
            f"partitions={len(self._partitions)} keys={self.key_count()} "
            f"watchers={len(self.hub)} leases={len(self.lessor)}>"
        )

    # -- introspection -------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision of the last committed write (1 for an empty store)."""
        return self._writer.revision

    @property
    def compact_revision(self) -> int:
        """The revision of the last Compact; reads and watches below it fail."""
        return self._keyspace.compact_revision

    @property
    def publish_revision(self) -> int:
        """The newest revision whose events may be handed to watchers.

        Equal to `revision` unless fsync-mode writes are still on their way
        to disk; then it stops just below the oldest of them.
        """
        return self._writer.publish_revision

    @property
    def write_order(self) -> Dict[int, Dict[bytes, int]]:
        """Op order of the revisions that wrote to more than one partition (see Writer.write_order)."""
        return self._writer.write_order

    # Write counters for /metrics (etcd_mvcc_*_total); the writer counts.
    @property
    def puts_total(self) -> int:
        return self._writer.puts_total

    @property
    def deletes_total(self) -> int:
        return self._writer.deletes_total

    @property
    def txns_total(self) -> int:
        return self._writer.txns_total

    @property
    def compactions_total(self) -> int:
        return self._writer.compactions_total

    def partitions(self) -> List[Partition]:
        return self._keyspace.sorted_partitions()

    def partition(self, prefix: bytes) -> Partition:
        """The partition with this prefix, created if needed."""
        return self._keyspace.partition(prefix)

    def key_count(self) -> int:
        return self._keyspace.key_count()

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
        return read_range(self._keyspace, r, self._writer.revision)

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
            p = self._keyspace.partition(prefix)
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
        w = self._writer
        rev = w.revision + 1
        if rev > w.revision_limit:
            w.reserve(rev)
        w.put_at(p, key, value, lease, rev, old)
        w.puts_total += 1
        w.commit(rev, p.fsync, p.wal is not None)
        return PutResult(rev, old if prev_kv else None)

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
            p = self._keyspace.partition(prefix)
        old = p.kvs.get(key)
        current = old[MOD_REVISION] if old is not None else 0
        if mod_revision >= 0 and current != mod_revision:
            return False, old
        if lease and lease not in self.lessor.leases:
            raise LeaseNotFoundError()
        w = self._writer
        rev = w.revision + 1
        if rev > w.revision_limit:
            w.reserve(rev)
        data = value(rev) if callable(value) else value
        if len(key) + len(data) > self.config.max_request_bytes:
            raise RequestTooLargeError()
        w.put_at(p, key, data, lease, rev, old)
        w.puts_total += 1
        w.txns_total += 1
        w.commit(rev, p.fsync, p.wal is not None)
        return True, p.kvs[old[KEY] if old is not None else key]

    def compare_and_delete(self, key: bytes, mod_revision: int) -> Tuple[bool, Optional[KeyValue]]:
        """Delete if the key's mod_revision is `mod_revision` (-1: any). Returns (deleted, previous record)."""
        p = self._partitions.get(partition_prefix(key))
        old = p.kvs.get(key) if p is not None else None
        if old is None or (mod_revision >= 0 and old[MOD_REVISION] != mod_revision):
            return False, old
        w = self._writer
        rev = w.revision + 1
        if rev > w.revision_limit:
            w.reserve(rev)
        w.delete_at(p, old, rev)  # type: ignore[arg-type]
        w.deletes_total += 1
        w.txns_total += 1
        w.commit(rev, p.fsync, p.wal is not None)  # type: ignore[union-attr]
        return True, old

    def delete_range(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> DeleteResult:
        """etcd DeleteRange: delete every key in range in one revision."""
        if not key:
            raise EmptyKeyError()
        w = self._writer
        victims = self._keyspace.live_in_range(key, range_end)
        if not victims:
            return DeleteResult(w.revision, 0, [])
        rev = w.revision + 1
        if rev > w.revision_limit:
            w.reserve(rev)
        fsync, logged = w.delete_all(victims, rev)
        w.commit(rev, fsync, logged)
        return DeleteResult(rev, len(victims), [kv for _, kv in victims] if prev_kv else [])

    def compact(self, revision: int) -> int:
        """etcd Compact: forget history below `revision`. Returns the current revision."""
        w = self._writer
        if revision == 0 == self.compact_revision and not self._compacted_zero:
            # etcd's compaction floor starts at -1, so one compact(0) succeeds on a fresh store.
            self._compacted_zero = True
            return w.revision
        if revision <= self.compact_revision:
            raise CompactedError()
        if revision > w.revision:
            raise FutureRevisionError()
        w.compact_to(revision)
        fsync, logged = w.log_compaction(revision)
        w.compactions_total += 1
        w.commit(w.revision, fsync, logged)
        return w.revision

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
        return run_txn(self._writer, r, self.config.max_request_bytes)

    # -- leases (megaplane.store.leases) ---------------------------------------------------

    def lease_grant(self, ttl: int, lease_id: int = 0) -> Lease:
        """etcd LeaseGrant. `lease_id` 0 lets the store pick one."""
        return self.leases.grant(ttl, lease_id)

    def lease_revoke(self, lease_id: int) -> int:
        """etcd LeaseRevoke: delete the lease and, in one revision, its keys."""
        return self.leases.revoke(lease_id)

    def lease_keepalive(self, lease_id: int) -> int:
        """etcd LeaseKeepAlive: renew and return the TTL. Raises LeaseNotFoundError."""
        return self.leases.keepalive(lease_id)

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> Tuple[int, int, List[bytes]]:
        """(remaining TTL, granted TTL, attached keys); remaining -1 when unknown, like etcd."""
        return self.leases.time_to_live(lease_id, keys)

    def lease_ids(self) -> List[int]:
        return self.leases.ids()

    def expire_leases(self) -> int:
        """Revoke every lease whose TTL ran out; returns how many. Call periodically."""
        return self.leases.expire()

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
        parts, spanning = self._keyspace.partitions_for(start, end)
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
            self.hub.wake(w)
            self._notify_soon()
        return w

    # -- durability ---------------------------------------------------------------------

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
        if wait:
            self.durability.wait_checkpoint()

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


