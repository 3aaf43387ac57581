"""The seam between the API server and storage: `Backend`, and the embedded store behind it.

The API server calls storage only through this protocol (the role of
k8s.io/apiserver's storage.Interface), so a real-etcd backend and per
resource overrides (--etcd-servers-overrides) plug in without touching
handlers. Everything is keyed by etcd keys (/registry/pods/ns/name) and
versioned by store revisions, which are the resourceVersions clients see.

Contract, per method:
- `revision()`: the newest revision whose events the backend has
  published; reads at or below it are consistent.
- `get(key)` / `range(...)`: current state, or at `revision` (0: now).
  Compacted revisions raise CompactedError (the API answers 410 Expired).
- `create` / `update` / `delete`: one compare-and-swap each, as the
  kube-apiserver's etcd3 store issues them: create only if absent, update
  and delete only if the key's mod revision is the one given (-1: any).
  Failure returns (False, current record) and changes nothing. `value` may
  be a function of the write's revision, for backends that can know it in
  advance (the embedded store); others call it with 0.
- `watch(start, end, start_revision)`: events in revision order, as the
  store's `Watcher` delivers them (take / on_ready / progress_revision).
- `needs_durability(rev)` / `durable(rev)`: whether an acknowledgement must
  wait for the write to reach disk, and the wait.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Protocol, Tuple, Union

from .kv import Event, KeyValue
from .mvcc import Store
from .requests import RangeResult

__all__ = ["Backend", "BackendWatch", "EmbeddedBackend", "Value"]

Value = Union[bytes, Callable[[int], bytes]]


class BackendWatch(Protocol):
    """A stream of events from a backend (megaplane.store.watch.Watcher implements it)."""

    on_ready: Optional[Callable[[], None]]
    canceled: bool
    compact_revision: int

    def take(self, max_events: int = 0) -> List[Event]:
        """Events ready for delivery, in revision order, never splitting a revision."""

    def progress_revision(self) -> Optional[int]:
        """The revision up to which everything was delivered, when caught up."""

    def cancel(self) -> None:
        """Stop the stream."""


class Backend(Protocol):
    def revision(self) -> int:
        """The newest published revision."""

    def compact_revision(self) -> int:
        """Reads and watches below this revision fail as compacted."""

    def get(self, key: bytes, revision: int = 0) -> Optional[KeyValue]:
        """One key, now or at `revision`."""

    def range(self, start: bytes, end: bytes, *, revision: int = 0, limit: int = 0) -> RangeResult:
        """Keys in [start, end) in key order, now or at `revision`, with the total count."""

    def create(self, key: bytes, value: Value, lease: int = 0) -> Tuple[bool, Optional[KeyValue]]:
        """Write `key` only if it does not exist."""

    def update(self, key: bytes, mod_revision: int, value: Value, lease: int = 0) -> Tuple[bool, Optional[KeyValue]]:
        """Write `key` only if its mod revision is `mod_revision` (-1: any, but it must exist).

        `lease` is the storage lease the new value carries (0: none), as etcd's Put does."""

    def delete(self, key: bytes, mod_revision: int) -> Tuple[bool, Optional[KeyValue], int]:
        """Delete `key` only if its mod revision is `mod_revision` (-1: any).

        Returns (deleted, the record before, the revision of the delete or 0)."""

    def watch(self, start: bytes, end: bytes, start_revision: int) -> BackendWatch:
        """Watch [start, end) from `start_revision` (0: from now on)."""

    def lease_grant(self, ttl: int) -> int:
        """A storage lease that deletes attached keys after `ttl` seconds (Events' TTL)."""

    def needs_durability(self, rev: int) -> bool:
        """True when acknowledging `rev` must wait for the disk."""

    async def durable(self, rev: int) -> None:
        """Wait until `rev` is on disk (no-op when it need not wait)."""


class EmbeddedBackend:
    """The in-process store on the API server's own event loop: every call is synchronous."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def revision(self) -> int:
        return self.store.publish_revision

    def compact_revision(self) -> int:
        return self.store.compact_revision

    def get(self, key: bytes, revision: int = 0) -> Optional[KeyValue]:
        if revision <= 0:
            return self.store.get(key)
        kvs = self.store.range(key, revision=revision).kvs
        return kvs[0] if kvs else None

    def range(self, start: bytes, end: bytes, *, revision: int = 0, limit: int = 0) -> RangeResult:
        return self.store.range(start, end, revision=revision, limit=limit)

    def create(self, key: bytes, value: Value, lease: int = 0) -> Tuple[bool, Optional[KeyValue]]:
        return self.store.compare_and_put(key, 0, value, lease)

    def update(self, key: bytes, mod_revision: int, value: Value, lease: int = 0) -> Tuple[bool, Optional[KeyValue]]:
        if mod_revision < 0:
            current = self.store.get(key)
            if current is None:
                return False, None
            mod_revision = current[2]
        return self.store.compare_and_put(key, mod_revision, value, lease)

    def delete(self, key: bytes, mod_revision: int) -> Tuple[bool, Optional[KeyValue], int]:
        ok, old = self.store.compare_and_delete(key, mod_revision)
        return ok, old, self.store.revision if ok else 0

    def watch(self, start: bytes, end: bytes, start_revision: int) -> BackendWatch:
        return self.store.watch(start, end, start_revision, prev_kv=True)

    def lease_grant(self, ttl: int) -> int:
        return self.store.lease_grant(ttl).id

    def needs_durability(self, rev: int) -> bool:
        return self.store.needs_durability(rev)

    async def durable(self, rev: int) -> None:
        await self.store.durable(rev)
