"""What each etcd servicer needs from the store, as small Protocols built from pieces.

Like etcd's mvcc/kv.go: each servicer is annotated with the smallest view
it uses, so a servicer can be read (and faked) without the whole store.
`megaplane.store.Store` implements all of them.
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Tuple

from megaplane.store.lessor import Lease
from megaplane.store.requests import DeleteResult, PutResult, RangeRequest, RangeResult, TxnRequest, TxnResult
from megaplane.store.wal.snapshot import SnapshotSource
from megaplane.store.watch import Watcher

__all__ = ["Revisions", "Durable", "KVView", "LeaseView", "WatchView", "MaintenanceView"]


class Revisions(Protocol):
    @property
    def revision(self) -> int:
        """The revision of the last committed write."""

    @property
    def compact_revision(self) -> int:
        """Reads and watches below this revision fail as compacted."""


class Durable(Protocol):
    def needs_durability(self, rev: int) -> bool:
        """True when acknowledging `rev` must wait for the disk."""

    async def durable(self, rev: int) -> None:
        """Wait until every fsync-mode write up to `rev` is on disk."""


class KVView(Revisions, Durable, Protocol):
    def range_request(self, r: RangeRequest) -> RangeResult: ...

    def put(
        self,
        key: bytes,
        value: bytes,
        lease: int = 0,
        *,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutResult: ...

    def delete_range(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> DeleteResult: ...

    def txn_request(self, r: TxnRequest) -> TxnResult: ...

    def compact(self, revision: int) -> int: ...


class LeaseView(Revisions, Durable, Protocol):
    def lease_grant(self, ttl: int, lease_id: int = 0) -> Lease: ...

    def lease_revoke(self, lease_id: int) -> int: ...

    def lease_keepalive(self, lease_id: int) -> int: ...

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> Tuple[int, int, List[bytes]]: ...

    def lease_ids(self) -> List[int]: ...


class WatchView(Revisions, Protocol):
    @property
    def publish_revision(self) -> int:
        """The newest revision whose events watchers may be handed."""

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
    ) -> Watcher: ...


class MaintenanceView(SnapshotSource, Protocol):
    #: Where the store keeps its files (None: memory only).
    data_dir: Optional[str]

    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult: ...
