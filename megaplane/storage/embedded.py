"""`EmbeddedStorage`: the `Storage` contract over the in-process store (megaplane.store.Store).

Every method is `async def` but suspends only to wait for an fsync: the
store is in memory on the caller's own event loop, so a get or an update
in a buffered or memory-only partition completes on the first `send(None)`
(the API server drives such coroutines inline). Writes call the value's
encoder with the revision the store is about to assign, so stored bytes
are served bytes and nothing is re-encoded on the way out.

Watches are pushed from inside the store's commit: the store fires the
watcher's `on_ready` while committing, `_EmbeddedWatch` takes the events
and calls `on_events` before the write returns. Replays of history run one
batch per loop iteration, so a far-behind watch cannot hold the loop.
Events of fsync partitions are held back by the store until durable; they
arrive from the loop once the disk has them.

Store errors become storage errors in exactly one place, `_translate`.

With --encryption-provider-config (`use_transformers`) the values of the
resources it names are transformed on their way into the store (so the
WAL and snapshots hold ciphertext) and back on every way out (reads,
conflicts, watch events); without it no path pays more than one check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

from ..store import Store, Watcher
from ..store import errors as store_errors
from .errors import (
    ConflictError,
    CorruptObjError,
    ExpiredError,
    InternalError,
    InvalidKeyError,
    KeyExistsError,
    KeyNotFoundError,
    RequestTooLargeError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
)
from .interface import (
    ADDED,
    DELETED,
    MODIFIED,
    ListResult,
    OnError,
    OnEvents,
    OnProgress,
    Preconditions,
    StoredObject,
    UpdateFunc,
    ValidateDeletion,
    Value,
    WatchEvent,
)
from .keys import prefix_end
from .leases import LeaseManager
from .preconditions import check_preconditions
from .value import ResourceTransformers, TransformError
from .versioner import set_resource_version

if TYPE_CHECKING:
    from .interface import Storage

__all__ = ["EmbeddedStorage"]

log = logging.getLogger("megaplane.storage.embedded")

# A store record: (key, create_revision, mod_revision, version, value, lease).
_Record = Tuple[bytes, int, int, int, bytes, int]


def _translate(err: store_errors.StoreError, store: Store, key: bytes, revision: int = 0) -> StorageError:
    """The storage error for a store error: the one place they are translated."""
    if isinstance(err, store_errors.CompactedError):
        return ExpiredError(key, revision, store.compact_revision)
    if isinstance(err, store_errors.FutureRevisionError):
        return TooLargeResourceVersionError(key, revision, store.revision)
    if isinstance(err, store_errors.RequestTooLargeError):
        return RequestTooLargeError(key)
    if isinstance(err, store_errors.EmptyKeyError):
        return InvalidKeyError(key, 0, err.message)
    return InternalError(key, 0, err.message)


def _versioned(data: bytes, key: bytes) -> Callable[[int], bytes]:
    """The encoder of plain bytes: the same object with the write's resourceVersion."""

    def encode(revision: int) -> bytes:
        try:
            return set_resource_version(data, revision)
        except ValueError as e:
            raise CorruptObjError(key, 0, f"the value is not a JSON object: {e}") from None

    return encode


def _from_storage(tf: ResourceTransformers, key: bytes, data: bytes) -> bytes:
    try:
        return tf.from_storage(key, data)
    except TransformError as e:
        raise InternalError(key, 0, f"unable to transform key {key.decode(errors='replace')!r}: {e}") from None


def _to_storage(tf: ResourceTransformers, key: bytes, value: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """The encoder of `value`'s bytes as stored (itself when `key`'s resource is stored as is)."""
    t = tf.for_key(key)
    if t is None or t.identity_writes:
        return value

    def encode(revision: int) -> bytes:
        return t.to_storage(value(revision), key)

    return encode


def _with_value(kv: _Record, value: bytes) -> _Record:
    return (kv[0], kv[1], kv[2], kv[3], value, kv[5])


class EmbeddedStorage:
    """`Storage` over one in-process `Store`, on the store's own event loop."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        #: Shares TTL leases between writes (Events), on the same clock as the store's lessor.
        self.leases = LeaseManager(clock=clock)
        # The last DELETED value built (key, revision, bytes): a delete's result and its watch
        # events are the same bytes, spliced once.
        self._tombstone: Tuple[bytes, int, bytes] = (b"", 0, b"")
        # Bound once: the hot paths call them per request.
        self._compare_and_put = store.compare_and_put
        self._needs_durability = store.needs_durability
        self._store_get = store.get
        #: --encryption-provider-config's transformers (None: values stored as served).
        self.transformers: Optional[ResourceTransformers] = None

    def use_transformers(self, transformers: Optional[ResourceTransformers]) -> None:
        """Store the values of the resources `transformers` names transformed (encrypted at rest)."""
        self.transformers = transformers

    def _object(self, kv: _Record) -> StoredObject:
        tf = self.transformers
        if tf is None:
            return StoredObject(kv[0], kv[4], kv[2], kv[1], kv[5])
        return StoredObject(kv[0], _from_storage(tf, kv[0], kv[4]), kv[2], kv[1], kv[5])

    def _plain(self, key: bytes, data: bytes) -> bytes:
        tf = self.transformers
        return data if tf is None else _from_storage(tf, key, data)

    def __repr__(self) -> str:
        return f"<EmbeddedStorage {self.store!r}>"

    # -- reads ----------------------------------------------------------------------------

    async def current_revision(self, key: bytes = b"") -> int:
        return self.store.publish_revision

    async def get(self, key: bytes, *, revision: int = 0) -> StoredObject:
        if revision <= 0:
            kv = self._store_get(key)
        else:
            try:
                kvs = self.store.range(key, revision=revision).kvs
            except store_errors.StoreError as e:
                raise _translate(e, self.store, key, revision) from None
            kv = kvs[0] if kvs else None
        if kv is None:
            raise KeyNotFoundError(key)
        if self.transformers is not None:
            return self._object(kv)
        return StoredObject(kv[0], kv[4], kv[2], kv[1], kv[5])

    async def list(
        self, prefix: bytes, *, revision: int = 0, limit: int = 0, start_key: bytes = b""
    ) -> ListResult:
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        try:
            res = self.store.range(
                start_key if start_key > prefix else prefix, prefix_end(prefix), revision=revision, limit=limit
            )
        except store_errors.StoreError as e:
            raise _translate(e, self.store, prefix, revision) from None
        if self.transformers is not None:
            items = [self._object(kv) for kv in res.kvs]
        else:
            items = [StoredObject(kv[0], kv[4], kv[2], kv[1], kv[5]) for kv in res.kvs]
        if res.more:
            return ListResult(items, revision or res.revision, True, res.count - len(items), items[-1].key + b"\0")
        return ListResult(items, revision or res.revision, False, 0, b"")

    async def count(self, prefix: bytes) -> int:
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        return self.store.range(prefix, prefix_end(prefix), count_only=True).count

    # -- writes ---------------------------------------------------------------------------

    def _lease(self, ttl: int) -> int:
        lease = self.leases.reusable(ttl)
        if not lease:
            granted = self.leases.grant_ttl(ttl)
            lease = self.store.lease_grant(granted).id
            self.leases.granted(lease, granted)
        return lease

    def _put(self, key: bytes, expected: int, value: Value, ttl: int) -> Tuple[bool, Optional[_Record]]:
        """One compare-and-put (expected 0: absent); a shared lease that vanished is replaced once."""
        if not key:
            raise InvalidKeyError(key, 0, "an empty key")
        if not callable(value):
            value = _versioned(value, key)
        if self.transformers is not None:
            value = _to_storage(self.transformers, key, value)
        lease = self._lease(ttl) if ttl > 0 else 0
        try:
            try:
                return self.store.compare_and_put(key, expected, value, lease)
            except store_errors.LeaseNotFoundError:
                if not lease:
                    raise
                self.leases.forget(lease)
                return self.store.compare_and_put(key, expected, value, self._lease(ttl))
        except store_errors.StoreError as e:
            raise _translate(e, self.store, key) from None

    async def _durable(self, key: bytes, revision: int) -> None:
        try:
            await self.store.durable(revision)
        except OSError as e:
            raise UnavailableError(key, revision, f"the write-ahead log failed: {e}") from e

    async def create(self, key: bytes, value: Value, *, ttl: int = 0) -> StoredObject:
        ok, kv = self._put(key, 0, value, ttl)
        if not ok or kv is None:
            raise KeyExistsError(key)
        rev = kv[2]
        if self.store.needs_durability(rev):
            await self._durable(key, rev)
        return self._object(kv)

    async def update(
        self, key: bytes, value: Value, *, expected_revision: int, ttl: int = 0
    ) -> StoredObject:
        if expected_revision <= 0:
            raise ValueError(f"update needs the expected mod revision, got {expected_revision}")
        if ttl or not key or not callable(value) or self.transformers is not None:
            ok, kv = self._put(key, expected_revision, value, ttl)
        else:  # the hot path (the registry's update): the store's compare-and-put, nothing else
            try:
                ok, kv = self._compare_and_put(key, expected_revision, value, 0)
            except store_errors.StoreError as e:
                raise _translate(e, self.store, key) from None
        if kv is None:
            raise KeyNotFoundError(key)
        if self.transformers is not None:
            obj = self._object(kv)
            if not ok:
                raise ConflictError(key, expected_revision, obj)
            if self._needs_durability(obj.revision):
                await self._durable(key, obj.revision)
            return obj
        if not ok:
            raise ConflictError(key, expected_revision, StoredObject(kv[0], kv[4], kv[2], kv[1], kv[5]))
        rev = kv[2]
        if self._needs_durability(rev):
            await self._durable(key, rev)
        return StoredObject(kv[0], kv[4], rev, kv[1], kv[5])

    def _current(self, key: bytes, cached: Optional[StoredObject]) -> Optional[StoredObject]:
        """The current object; `cached` itself when it is current (reading here costs a dict lookup,
        so the suggestion is never worth trusting blindly)."""
        kv = self.store.get(key)
        if kv is None:
            return None
        if cached is not None and cached.revision == kv[2] and cached.key == key:
            return cached
        return self._object(kv)

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
        current = self._current(key, cached_existing)
        while True:
            if current is None:
                if not ignore_not_found:
                    raise KeyNotFoundError(key)
            else:
                check_preconditions(preconditions, current)
            value = try_update(current)
            if value is None or (current is not None and value == current.data):
                if current is None:
                    raise KeyNotFoundError(key)
                return current
            ok, kv = self._put(key, current.revision if current is not None else 0, value, ttl)
            if not ok:
                # Lost the race (the update function wrote, or a txn did): retry on what won.
                current = None if kv is None else self._object(kv)
                continue
            assert kv is not None
            rev = kv[2]
            if self.store.needs_durability(rev):
                await self._durable(key, rev)
            return self._object(kv)

    async def delete(
        self,
        key: bytes,
        *,
        preconditions: Optional[Preconditions] = None,
        expected_revision: Optional[int] = None,
        validate_deletion: Optional[ValidateDeletion] = None,
        cached_existing: Optional[StoredObject] = None,
    ) -> StoredObject:
        if not key:
            raise InvalidKeyError(key, 0, "an empty key")
        store = self.store
        current = self._current(key, cached_existing)
        while True:
            if current is None:
                raise KeyNotFoundError(key)
            if expected_revision is not None and current.revision != expected_revision:
                raise ConflictError(key, expected_revision, current)
            check_preconditions(preconditions, current)
            if validate_deletion is not None:
                validate_deletion(current)
            ok, old = store.compare_and_delete(key, current.revision)
            if not ok:
                current = None if old is None else self._object(old)
                continue
            rev = store.revision
            gone = StoredObject(key, self.tombstone_value(key, current.data, rev), rev, current.create_revision)
            if store.needs_durability(rev):
                await self._durable(key, rev)
            return gone

    def tombstone_value(self, key: bytes, data: bytes, revision: int) -> bytes:
        """The last state of a deleted object as served: its bytes with the delete's resourceVersion."""
        memo = self._tombstone
        if memo[1] == revision and memo[0] == key:
            return memo[2]
        try:
            value = set_resource_version(data, revision)
        except ValueError:
            value = data  # not an object (a foreign writer's key): served as stored
        self._tombstone = (key, revision, value)
        return value

    async def compact(self, revision: int) -> None:
        try:
            self.store.compact(revision)
        except store_errors.StoreError as e:
            raise _translate(e, self.store, b"", revision) from None
        rev = self.store.revision
        if self.store.needs_durability(rev):
            await self._durable(b"", rev)

    # -- watches --------------------------------------------------------------------------

    async def watch(
        self,
        prefix: bytes,
        *,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> "_EmbeddedWatch":
        if not prefix:
            raise InvalidKeyError(prefix, 0, "an empty prefix")
        watcher = self.store.watch(prefix, prefix_end(prefix), max(from_revision, 0), prev_kv=True)
        handle = _EmbeddedWatch(self, watcher, from_revision, on_events, on_error, on_progress)
        watcher.on_ready = handle.pull
        # A replay (or a start below the floor) is read from the loop, after the caller has the handle.
        if not watcher.synced or watcher.canceled:
            handle.schedule()
        return handle


class _EmbeddedWatch:
    """One storage watch over one store `Watcher`: takes its events and pushes them as WatchEvents."""

    def __init__(
        self,
        storage: EmbeddedStorage,
        watcher: Watcher,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress],
    ) -> None:
        self._storage = storage
        self._watcher = watcher
        self._from = from_revision
        self._on_events = on_events
        self._on_error = on_error
        self._on_progress = on_progress
        self._loop = asyncio.get_running_loop()
        self._delivered = max(from_revision - 1, 0)
        self._progress_wanted = False
        self._scheduled = False
        self._done = False

    def __repr__(self) -> str:
        return f"<EmbeddedWatch rev={self.revision} done={self._done} {self._watcher!r}>"

    @property
    def revision(self) -> int:
        rev = self._watcher.progress_revision() if not self._done else None
        return rev if rev is not None and rev > self._delivered else self._delivered

    @property
    def done(self) -> bool:
        return self._done

    def request_progress(self) -> None:
        if self._done or self._on_progress is None:
            return
        self._progress_wanted = True
        self._answer_progress()

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._watcher.on_ready = None
            self._watcher.cancel()

    def schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._scheduled_pull)

    def _scheduled_pull(self) -> None:
        self._scheduled = False
        self.pull()

    def pull(self) -> None:
        """Deliver what the store has ready (the store calls this inside its commit)."""
        if self._done:
            return
        w = self._watcher
        events = w.take()
        if events:
            try:
                batch = self._convert(events)
            except StorageError as err:  # a value that does not decrypt (a wrong key)
                self._end(err)
                return
            self._delivered = batch[-1].revision
            try:
                self._on_events(batch)
            except Exception:  # never let a consumer's bug fail the writer whose commit fired this
                log.exception("watch consumer failed; ending its watch")
                self._end(InternalError(b"", 0, "the watch consumer raised"))
                return
        if w.canceled:
            if not self._done:
                self._end(ExpiredError(self._watcher.key, self._from, w.compact_revision))
            return
        if not w.synced:
            self.schedule()  # more history to replay: next loop iteration
        elif self._progress_wanted:
            self._answer_progress()

    def _answer_progress(self) -> None:
        rev = self._watcher.progress_revision()
        if rev is None or self._on_progress is None:
            if not self._watcher.synced:
                self.schedule()
            return
        self._progress_wanted = False
        if rev > self._delivered:
            self._delivered = rev
        try:
            self._on_progress(rev)
        except Exception:
            log.exception("watch consumer failed on progress; ending its watch")
            self._end(InternalError(b"", 0, "the watch consumer raised"))

    def _end(self, err: StorageError) -> None:
        self.cancel()
        try:
            self._on_error(err)
        except Exception:
            log.exception("watch consumer failed on its error")

    def _convert(self, events: List[Tuple[_Record, Optional[_Record]]]) -> List[WatchEvent]:
        out: List[WatchEvent] = []
        append = out.append
        tombstone = self._storage.tombstone_value
        if self._storage.transformers is not None:
            plain = self._storage._plain
            events = [(_with_value(kv, plain(kv[0], kv[4])) if kv[3] else kv,
                       _with_value(prev, plain(prev[0], prev[4])) if prev is not None else None)
                      for kv, prev in events]
        for kv, prev in events:
            rev = kv[2]
            if kv[3] == 0:  # a tombstone: the store always hands the record it deleted
                assert prev is not None
                key = kv[0]
                append(WatchEvent(DELETED, key, tombstone(key, prev[4], rev), prev[4], rev, prev[1]))
            elif kv[1] == rev:
                append(WatchEvent(ADDED, kv[0], kv[4], None, rev, rev))
            else:
                append(WatchEvent(MODIFIED, kv[0], kv[4], prev[4] if prev is not None else None, rev, kv[1]))
        return out


if TYPE_CHECKING:

    def _conforms(s: EmbeddedStorage) -> Storage:  # the explicit interface check
        return s
