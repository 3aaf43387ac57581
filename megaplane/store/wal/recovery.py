"""Bringing a store back after a restart: the latest checkpoint, then the WAL after it.

Replay applies each logged record through the same write path as a live
write (`ReplayTarget`, which `megaplane.store.writer.Writer` implements),
before the partitions get their WAL streams, so replay logs nothing. WAL
frames are merged across partitions by revision (`megaplane.store.wal.log`).
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Protocol

from ..keyspace import Partition
from ..kv import KeyValue, partition_prefix
from . import snapshot
from .log import OP_COMPACT, OP_DELETE, OP_GRANT, OP_PUT, OP_REVOKE, WriteAheadLog
from .snapshot import RestoreTarget

__all__ = ["recover", "ReplayTarget"]

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
