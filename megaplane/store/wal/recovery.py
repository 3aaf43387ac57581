"""Bringing a store back after a restart: the latest checkpoint, the WAL after it, then the revision.

Replay applies each logged record through the same write path as a live
write (`ReplayTarget`, which `megaplane.store.writer.Writer` implements),
before the partitions get their WAL streams, so replay logs nothing. WAL
frames are merged across partitions by revision (`megaplane.store.wal.log`).

Then `resume` picks the revision the store goes on from, above every
revision the last run may have handed out (`megaplane.store.wal.reservation`):

    last run's reservation     clean close    the store resumes at      compacted below it
    none (new or restored dir) -              the replayed revision     (nothing new)
    N                          yes*           N + 2                    partitions in mode none only
    N                          no             N + 2                     everything

(*) and this run logs the same partitions (mode none or not) as the last.
A partition in mode none is not logged, so it comes back empty without
delete events; a reader at an older revision must relist it in any case.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Protocol

from ..keyspace import Partition
from ..kv import KeyValue, partition_prefix
from . import snapshot
from .log import OP_COMPACT, OP_DELETE, OP_GRANT, OP_PUT, OP_REVOKE, WriteAheadLog
from .reservation import ReservationRecord
from .snapshot import RestoreTarget

__all__ = ["recover", "resume", "ReplayTarget", "ResumeTarget"]

log = logging.getLogger("megaplane.store.recovery")


class ReplayTarget(RestoreTarget, Protocol):
    """The write path, as replay drives it."""

    revision: int

    @property
    def compact_revision(self) -> int: ...

    def partition(self, prefix: bytes) -> Partition:
        """The partition with this prefix, created if needed."""

    def put_at(self, p: Partition, key: bytes, value: bytes, lease: int, rev: int, old: Optional[KeyValue]) -> None:
        """Write one record at `rev`."""

    def delete_at(self, p: Partition, old: KeyValue, rev: int) -> None:
        """Delete one live record at `rev`."""

    def compact_to(self, revision: int) -> None:
        """Drop history below `revision`."""


def recover(target: ReplayTarget, wal: WriteAheadLog, data_dir: str) -> int:
    """Load the latest checkpoint and replay the WAL after it. Returns records replayed."""
    snap_cycle = 0
    loaded = snapshot.load_latest(os.path.join(data_dir, "snap"))
    if loaded is not None:
        snap_cycle = snapshot.restore_into(target, loaded)
    result = wal.replay(snap_cycle)
    lessor = target.lessor
    n = 0
    for rec in result.records:
        rev, op = rec[0], rec[1]
        if op == OP_PUT:
            key, value, lease = rec[2], rec[3], rec[4]
            p = target.partition(partition_prefix(key))
            if lease and lease not in lessor.leases:
                lease = 0
            target.put_at(p, key, value, lease, rev, p.kvs.get(key))
        elif op == OP_DELETE:
            key = rec[2]
            p = target.partition(partition_prefix(key))
            old = p.kvs.get(key)
            if old is not None:
                target.delete_at(p, old, rev)
        elif op == OP_GRANT:
            lessor.restore(rec[2], rec[3])
        elif op == OP_REVOKE:
            lessor.leases.pop(rec[2], None)
        elif op == OP_COMPACT:
            if rec[2] > target.compact_revision:
                target.compact_to(rec[2])
        if rev > target.revision:
            target.revision = rev
        n += 1
    if result.last_revision > target.revision:
        target.revision = result.last_revision
    if result.torn:
        log.warning("WAL: dropped torn or corrupt tail in %s", ", ".join(result.torn))
    log.info(
        "recovered revision %d: checkpoint %s, %d WAL records from %d frames (cycle %d)",
        target.revision,
        loaded.path if loaded else "none",
        n,
        result.frames,
        result.last_cycle,
    )
    return n


class ResumeTarget(Protocol):
    """The write path, as `resume` sets it going again."""

    revision: int

    def resume_at(self, revision: int, lost: bool) -> None:
        """Continue at `revision`; `lost`: compact everything below it."""


def resume(target: ResumeTarget, record: Optional[ReservationRecord], logs_like: Callable[[str], bool]) -> int:
    """After `recover`: set the revision the store goes on from (see the table above). Returns it.

    `record` is the last run's reservation; `logs_like(record.modes)` says
    whether this run logs the same partitions (`StoreConfig.logs_like`).
    """
    if record is None:
        return target.revision
    replayed = target.revision
    # +2, not +1: a client holding revision N watches from N + 1, which must be compacted too.
    restart = max(record.revision, replayed) + 2
    lost = not (record.clean and logs_like(record.modes))
    if lost:
        log.warning(
            "the last run did not close cleanly: replayed revision %d, revisions up to %d may have been "
            "handed out; resuming at %d with everything below compacted (clients relist)",
            replayed,
            record.revision,
            restart,
        )
    target.resume_at(restart, lost)
    return target.revision
