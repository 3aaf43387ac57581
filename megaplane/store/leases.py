"""etcd's Lease API over the store: grant, revoke, keep-alive, time-to-live, listing and expiry.

The books live in `megaplane.store.lessor`; this module adds what changes
the keyspace or the log: a grant and a revoke are WAL records, and a
revoke (or an expiry) deletes every attached key in one revision through
the writer. Lease grants do not bump the revision, as in etcd.

Expiry is driven by whoever owns the store (`Leases.expire`, called
periodically), so tests drive it with a fake clock.
"""

from __future__ import annotations

from typing import List, Tuple

from .errors import InvalidArgumentError, LeaseNotFoundError
from .keyspace import Partition
from .kv import KeyValue, partition_prefix
from .lessor import Lease, Lessor
from .writer import Writer

__all__ = ["Leases"]


class Leases:
    """The lease operations of one store."""

    def __init__(self, lessor: Lessor, writer: Writer) -> None:
        self.lessor = lessor
        self.writer = writer

    def grant(self, ttl: int, lease_id: int = 0) -> Lease:
        """etcd LeaseGrant. `lease_id` 0 lets the store pick one."""
        if lease_id < 0:
            raise InvalidArgumentError("etcdserver: lease id must not be negative")
        lease = self.lessor.grant(lease_id, ttl)
        w = self.writer
        fsync, logged = w.log_lease_grant(lease.id, lease.ttl)
        if logged:
            w.commit(w.revision, fsync, True)
        return lease

    def revoke(self, lease_id: int) -> int:
        """etcd LeaseRevoke: delete the lease and, in one revision, its keys. Returns that revision."""
        lease = self.lessor.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        w = self.writer
        parts = w.partition_map
        victims: List[Tuple[Partition, KeyValue]] = []
        for key in sorted(lease.keys):
            p = parts.get(partition_prefix(key))
            kv = p.kvs.get(key) if p is not None else None
            if kv is not None:
                victims.append((p, kv))  # type: ignore[arg-type]
        rev = w.revision + 1 if victims else w.revision
        if rev > w.revision_limit:
            w.reserve(rev)
        fsync, logged = w.delete_all(victims, rev)
        self.lessor.remove(lease_id)
        meta_fsync, meta_logged = w.log_lease_revoke(rev, lease_id)
        w.commit(rev, fsync or meta_fsync, logged or meta_logged)
        return rev

    def keepalive(self, lease_id: int) -> int:
        """etcd LeaseKeepAlive: renew and return the TTL. Raises LeaseNotFoundError."""
        return self.lessor.renew(lease_id)

    def time_to_live(self, lease_id: int, keys: bool = False) -> Tuple[int, int, List[bytes]]:
        """(remaining TTL, granted TTL, attached keys); remaining -1 when unknown, like etcd."""
        lease = self.lessor.get(lease_id)
        if lease is None:
            return -1, 0, []
        return self.lessor.remaining(lease_id), lease.ttl, sorted(lease.keys) if keys else []

    def ids(self) -> List[int]:
        return list(self.lessor.leases)

    def expire(self) -> int:
        """Revoke every lease whose TTL ran out; returns how many."""
        n = 0
        lessor = self.lessor
        for lease_id in lessor.expired():
            if lease_id in lessor.leases:
                self.revoke(lease_id)
                lessor.expired_total += 1
                n += 1
        return n
