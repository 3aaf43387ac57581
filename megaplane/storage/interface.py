"""The contract every storage backend keeps: `Storage` and the values it trades in.

The role of k8s.io/apiserver's storage.Interface (pkg/storage/interfaces.go),
shaped by megaplane's principle that bytes are the currency:

- **Keys** are etcd keys (``/registry/pods/ns/name``), prefixes end in
  ``/``. **Revisions** are the backend's global int64 revision (etcd's),
  which are the resourceVersions clients see.
- **Values** are an object's JSON bytes exactly as served, with
  ``metadata.resourceVersion`` inside. A write takes a `Value`: bytes, or
  ``encode(revision) -> bytes`` ("the object's bytes given the revision it
  will be stored at"). A backend that knows the revision in advance (the
  embedded store) calls ``encode(rev)`` and stores the result as served; one
  that cannot (etcd assigns it) calls ``encode(0)`` (the encoder then omits
  resourceVersion) and sets it on everything it returns, reads or watches
  with `megaplane.storage.versioner`. Either way every `StoredObject.data`
  and `WatchEvent.value` carries ``resourceVersion == str(revision)``.
- **Errors** are `megaplane.storage.errors.StorageError`s, nothing else.
- **Acknowledged means durable**: a write returns only once it is as
  durable as its key's durability mode asks; a backend waits itself and
  suspends only then (the embedded store without fsync never suspends).
- **Watches push**: ``on_events`` is called with each batch of events, in
  revision order, a revision never split across batches; for the embedded
  store inside the writer's commit (so a cache is current when the write
  returns), for a network backend from its reader task. Callbacks must not
  write to the storage synchronously.

The interface comes in halves (`Reader`, `Writer`, `Watchable`) so each
consumer can ask for the smallest one it uses.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from .errors import StorageError
from .objects import (
    ADDED,
    DELETED,
    MODIFIED,
    EventType,
    ListResult,
    Preconditions,
    StoredObject,
    Value,
    WatchEvent,
)

__all__ = [
    "Value",
    "StoredObject",
    "ListResult",
    "WatchEvent",
    "EventType",
    "ADDED",
    "MODIFIED",
    "DELETED",
    "Preconditions",
    "UpdateFunc",
    "ValidateDeletion",
    "OnEvents",
    "OnError",
    "OnProgress",
    "WatchHandle",
    "Reader",
    "Writer",
    "Watchable",
    "Storage",
]

UpdateFunc = Callable[[Optional[StoredObject]], Optional[Value]]
"""`guaranteed_update`'s function: the new value from the current object (None when absent and
ignore_not_found). Returning None means "no change". Raising stops the update (re-raised as is)."""

ValidateDeletion = Callable[[StoredObject], None]
"""Called with the object about to be deleted; raising refuses the delete (re-raised as is)."""

OnEvents = Callable[[list[WatchEvent]], None]
OnError = Callable[[StorageError], None]
OnProgress = Callable[[int], None]


class WatchHandle(Protocol):
    """A running watch. Callbacks stop once it is cancelled or ended by an error."""

    @property
    def revision(self) -> int:
        """A revision R such that every event up to R has been delivered (rises with events and progress)."""

    @property
    def done(self) -> bool:
        """True once cancelled or ended by an error."""

    def request_progress(self) -> None:
        """Ask for a progress notification (etcd's RequestProgress).

        `on_progress(R)` follows once every event up to R is delivered, R at
        least the revision current when asked; the embedded store answers
        before this returns when it is caught up.
        """

    def cancel(self) -> None:
        """Stop the watch; no callback runs afterwards. Idempotent."""


class Reader(Protocol):
    async def current_revision(self, key: bytes = b"") -> int:
        """The newest revision whose writes are acknowledged and whose events are delivered to watches.

        `key` (a key or a prefix) names whose revision: a storage split across
        clusters (--etcd-servers-overrides) answers the revision of the
        cluster holding it, the only one comparable with its objects'
        resourceVersions; b"" asks the default cluster.
        """

    async def get(self, key: bytes, *, revision: int = 0) -> StoredObject:
        """The object at `key`, now (revision 0) or exactly at `revision`.

        Raises KeyNotFoundError (also when it did not exist at `revision`),
        ExpiredError below the compaction floor, TooLargeResourceVersionError
        above the current revision.
        """

    async def list(
        self, prefix: bytes, *, revision: int = 0, limit: int = 0, start_key: bytes = b""
    ) -> ListResult:
        """Keys under `prefix` in key order from `start_key`, at most `limit` (0: all), at one revision.

        `revision` 0 reads now; the result's `revision` is the one read. To
        page, pass the first page's `revision` and `next_key`. Errors as `get`.
        """

    async def count(self, prefix: bytes) -> int:
        """How many keys are under `prefix` now."""


class Writer(Protocol):
    async def create(self, key: bytes, value: Value, *, ttl: int = 0) -> StoredObject:
        """Write `key` only if it does not exist. Raises KeyExistsError.

        `ttl` > 0 attaches a storage lease so the key disappears after about
        `ttl` seconds (kube-apiserver's Events); leases are shared as
        upstream's lease manager shares them.
        """

    async def update(
        self, key: bytes, value: Value, *, expected_revision: int, ttl: int = 0
    ) -> StoredObject:
        """Write `key` only if its mod revision is `expected_revision` (compare-and-swap).

        Raises ConflictError (carrying the current object) or KeyNotFoundError.
        `ttl` as in create; 0 detaches any lease, as etcd's Put does.
        """

    async def guaranteed_update(
        self,
        key: bytes,
        try_update: UpdateFunc,
        *,
        preconditions: Optional[Preconditions] = None,
        ignore_not_found: bool = False,
        cached_existing: Optional[StoredObject] = None,
        ttl: int = 0,
    ) -> StoredObject:
        """Upstream's GuaranteedUpdate: apply `try_update` to the current object until the write wins.

        Each conflict retries with the fresh state. `cached_existing` is a
        guess of the current object tried first; a failure on it (a
        precondition, `try_update` raising or returning None) is retried on
        a fresh read, and re-raised only if that read finds the same
        revision. `try_update` returning None, or the current bytes, writes
        nothing and returns the current object. A missing key raises
        KeyNotFoundError, or with `ignore_not_found` calls `try_update(None)`
        and creates it. Raises PreconditionFailedError.
        """

    async def delete(
        self,
        key: bytes,
        *,
        preconditions: Optional[Preconditions] = None,
        expected_revision: Optional[int] = None,
        validate_deletion: Optional[ValidateDeletion] = None,
        cached_existing: Optional[StoredObject] = None,
    ) -> StoredObject:
        """Delete `key` and return its last state (see StoredObject) at the delete's revision.

        Retries on conflict like `guaranteed_update`, unless
        `expected_revision` is given: then it deletes only that revision
        and raises ConflictError otherwise. Raises KeyNotFoundError,
        PreconditionFailedError, or what `validate_deletion` raises.
        """

    async def compact(self, revision: int) -> None:
        """Forget history below `revision`. Raises ExpiredError if already compacted past it."""


class Watchable(Protocol):
    async def watch(
        self,
        prefix: bytes,
        *,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> WatchHandle:
        """Push every change under `prefix` with revision >= `from_revision` (0: from now on).

        `from_revision` is etcd's start revision: after a list at revision
        R, watch from R + 1. History is replayed first, then live events.
        A start below the compaction floor, or history dropped under a
        slow watch, ends the watch with `on_error(ExpiredError)` (carrying
        the compact revision): the consumer relists. `on_progress`
        receives progress notifications (see WatchHandle.request_progress).
        """


class Storage(Reader, Writer, Watchable, Protocol):
    """The API server's only door to state: reads, writes and watches of one backend."""

