"""`CacheDelegator`: which reads the watch caches answer and which go to storage (upstream's cacher/delegator.go).

The delegator is itself a `Storage`, so whoever holds one does not know
whether a read came from a cache. The whole routing policy, decided from
the revision semantics of the call alone (and the cache's readiness)::

    call                                   answered by
    create, update, guaranteed_update,     storage, as they are
      delete, compact, current_revision
    get(key)             (revision 0)      the cache, once fresh (a consistent read)
    get(key, revision=R)                   storage (an exact read)
    list(prefix)         (revision 0)      the cache, once fresh (a consistent read)
    list(..., revision=R) / start_key      storage (exact, or a continuation: this is how
                                           a paginated list stays at its first page's revision)
    count(prefix)                          the cache, once fresh
    watch(prefix, from_revision=R)         the cache when R - 1 is inside its window,
                                           else storage (which ends it Expired when compacted)
    any read whose cache is not ready      storage (KEP-4568: before the first list, or relisting)
    a key no cache covers                  storage

"Once fresh" is upstream's consistent read from cache (KEP-2340): ask
storage for its current revision, wait until the cache has seen it, then
read the cache. The wait is bounded by `block_timeout` (upstream's
watch_cache.go blockTimeout, 3 s); past it the read falls back to storage,
as upstream's delegator does by default (GetList: on TooLargeResourceVersion
it lists etcd; the alpha gate ConsistentListFromCacheSkipTimeoutFallback,
off by default, would answer 429 instead). With the embedded store the
cache is current when a write returns, so the wait never happens.

Where this differs from upstream, on purpose:

- `get` at revision 0 reads the cache. Upstream serves Get with RV "" from
  etcd "for backward compatibility" and only RV > 0 ("not older than")
  from the cache; the Storage contract has no "not older than", and a
  consistent read from the cache (wait for storage's current revision)
  answers what a quorum read would.
- guaranteed_update / delete keep the caller's `cached_existing`. Upstream
  replaces it by the cache's object because its registry's suggestion may
  be older; megaplane's registry already suggests the cache's object.
- A not-ready cache sends unpaginated lists to storage too; upstream
  answers them 429 to shield etcd from a relisting herd
  (shouldDelegateListOnNotReadyCache).
- When a cache starts over under a running watch, upstream terminates its
  watchers and each client re-watches from its last resourceVersion; here
  the watch does that itself, continuing on storage from the revision after
  the last one it delivered, so the consumer sees no gap.
- As upstream, a watch's start inside the cache's window is served even if
  storage has compacted it: the window does not follow compaction.

Answers have storage's shapes exactly (`StoredObject`, `ListResult`,
`WatchEvent`), built from the cache's objects and events; the cache keeps
no leases, so cache-served objects carry `lease` 0.
"""

from __future__ import annotations

import asyncio
import logging
from itertools import islice
from typing import TYPE_CHECKING, List, Optional, Protocol, cast

from megaplane.apiserver.watchcache.cache import CachedObject, CacheEvent, TooOldError, WatchCache
from megaplane.storage import (
    EventType,
    InternalError,
    KeyNotFoundError,
    ListResult,
    OnError,
    OnEvents,
    OnProgress,
    Preconditions,
    StorageError,
    StoredObject,
    UpdateFunc,
    ValidateDeletion,
    Value,
    WatchEvent,
    WatchHandle,
)

if TYPE_CHECKING:
    from megaplane.storage import Storage

__all__ = ["CacheDelegator", "CachesByPrefix", "BLOCK_TIMEOUT", "REPLAY_BATCH", "MEMO_LIMIT"]

log = logging.getLogger("megaplane.apiserver.watchcache.delegator")

#: How long a consistent read waits for the cache to reach storage's revision (upstream's blockTimeout).
BLOCK_TIMEOUT = 3.0
#: Events of a cache-served watch's replay delivered per loop iteration (a revision is never split).
REPLAY_BATCH = 1000
#: Parent prefixes `cache_for` remembers before it starts over.
MEMO_LIMIT = 65536


class CachesByPrefix(Protocol):
    """The watch caches by key prefix (each ending in "/"), as the registry keeps them (`Registry.caches`)."""

    def get(self, prefix: bytes, /) -> Optional[WatchCache]:
        """The cache of exactly `prefix`, None when there is none."""


def _stored(obj: CachedObject) -> StoredObject:
    return StoredObject(obj.key, obj.data, obj.rv, obj.create_revision)


def _page(cache: WatchCache, prefix: bytes, limit: int) -> ListResult:
    """The first page under `prefix` as storage pages it, read synchronously: the cache's state at one revision."""
    read_at = cache.revision
    objects = cache.iter_prefix(prefix)
    if limit <= 0:
        return ListResult([_stored(o) for o in objects], read_at, False, 0, b"")
    items = [_stored(o) for o in islice(objects, limit)]
    if len(items) < limit or next(objects, None) is None:
        return ListResult(items, read_at, False, 0, b"")
    remaining = cache.count_prefix(prefix) - len(items)
    return ListResult(items, read_at, True, remaining, items[-1].key + b"\0")


class CacheDelegator:
    """`Storage` that answers reads from the watch caches where resourceVersion semantics allow.

    Writes and everything the caches cannot answer go to `storage`, which
    must be the storage the caches are fed from.
    """

    def __init__(self, storage: Storage, caches: CachesByPrefix, *, block_timeout: float = BLOCK_TIMEOUT) -> None:
        self.storage = storage
        self.caches = caches
        self.block_timeout = block_timeout
        #: Consistent reads that gave up waiting for the cache and read storage (upstream:
        #: apiserver_watch_cache_consistent_read_total{fallback="true"}).
        self.consistent_read_fallbacks = 0
        self._by_parent: dict[bytes, Optional[WatchCache]] = {}

    def __repr__(self) -> str:
        return f"<CacheDelegator {self.storage!r} fallbacks={self.consistent_read_fallbacks}>"

    # -- routing --------------------------------------------------------------------------

    def cache_for(self, key: bytes) -> Optional[WatchCache]:
        """The cache covering `key` (a key or a prefix): the longest "/"-ended prefix of it that has one.

        Memoised by the key's parent (up to its last "/"), so a read costs one
        dict lookup; the mapping must not change once the delegator is built.
        """
        parent = key[: key.rfind(b"/") + 1]
        memo = self._by_parent
        try:
            return memo[parent]
        except KeyError:
            pass
        caches = self.caches
        found = None
        end = len(parent) - 1
        while end >= 0:
            found = caches.get(parent[: end + 1])
            if found is not None:
                break
            end = parent.rfind(b"/", 0, end)
        if len(memo) >= MEMO_LIMIT:
            memo.clear()  # arbitrary prefixes must not grow it without bound
        memo[parent] = found
        return found

    async def _caught_up(self, cache: WatchCache, revision: int) -> bool:
        """Wait (bounded) until `cache` has seen `revision`; False: read storage instead."""
        if not await cache.wait_until_fresh(revision, self.block_timeout):
            self.consistent_read_fallbacks += 1
            return False
        return cache.ready  # it may have started over while we waited

    # -- reads ----------------------------------------------------------------------------
    #
    # A consistent read asks storage for its current revision and reads the cache once the cache has
    # seen it; the wait is a coroutine of its own only when the cache is behind (the hot path is one frame).

    async def current_revision(self, key: bytes = b"") -> int:
        return await self.storage.current_revision(key)

    async def get(self, key: bytes, *, revision: int = 0) -> StoredObject:
        if revision <= 0:
            cache = self.cache_for(key)
            if cache is not None and cache.ready:
                want = await self.storage.current_revision(key)
                if cache.revision >= want or await self._caught_up(cache, want):
                    obj: Optional[CachedObject] = cache.objects.get(key)
                    if obj is None:
                        raise KeyNotFoundError(key)
                    return StoredObject(obj.key, obj.data, obj.rv, obj.create_revision)
        return await self.storage.get(key, revision=revision)

    async def list(
        self, prefix: bytes, *, revision: int = 0, limit: int = 0, start_key: bytes = b""
    ) -> ListResult:
        if revision <= 0 and start_key <= prefix:
            cache = self.cache_for(prefix)
            if cache is not None and cache.ready:
                want = await self.storage.current_revision(prefix)
                if cache.revision >= want or await self._caught_up(cache, want):
                    return _page(cache, prefix, limit)
        return await self.storage.list(prefix, revision=revision, limit=limit, start_key=start_key)

    async def count(self, prefix: bytes) -> int:
        cache = self.cache_for(prefix)
        if cache is not None and cache.ready:
            want = await self.storage.current_revision(prefix)
            if cache.revision >= want or await self._caught_up(cache, want):
                return cache.count_prefix(prefix)
        return await self.storage.count(prefix)

    # -- writes ---------------------------------------------------------------------------

    async def create(self, key: bytes, value: Value, *, ttl: int = 0) -> StoredObject:
        return await self.storage.create(key, value, ttl=ttl)

    async def update(
        self, key: bytes, value: Value, *, expected_revision: int, ttl: int = 0
    ) -> StoredObject:
        return await self.storage.update(key, value, expected_revision=expected_revision, ttl=ttl)

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
        return await self.storage.guaranteed_update(
            key, try_update, preconditions=preconditions, ignore_not_found=ignore_not_found,
            cached_existing=cached_existing, ttl=ttl)

    async def delete(
        self,
        key: bytes,
        *,
        preconditions: Optional[Preconditions] = None,
        expected_revision: Optional[int] = None,
        validate_deletion: Optional[ValidateDeletion] = None,
        cached_existing: Optional[StoredObject] = None,
    ) -> StoredObject:
        return await self.storage.delete(
            key, preconditions=preconditions, expected_revision=expected_revision,
            validate_deletion=validate_deletion, cached_existing=cached_existing)

    async def compact(self, revision: int) -> None:
        await self.storage.compact(revision)

    # -- watches --------------------------------------------------------------------------

    async def watch(
        self,
        prefix: bytes,
        *,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> WatchHandle:
        cache = self.cache_for(prefix)
        if cache is not None and cache.ready:
            # From now on (0) is from the cache's current revision, as upstream's legacy watch.
            after = from_revision - 1 if from_revision > 0 else cache.revision
            try:
                replay = cache.events_since(after)
            except TooOldError:
                pass  # older than the window: storage's history may still hold it
            else:
                # No await between taking the replay and following the cache: no event falls between.
                handle = _CacheWatch(self, cache, prefix, after + 1, on_events, on_error, on_progress)
                handle.follow(replay)
                return handle
        return await self.storage.watch(
            prefix, from_revision=from_revision, on_events=on_events, on_error=on_error, on_progress=on_progress)


class _CacheWatch:
    """One watch served by a watch cache: its history from `start` on, then its live batches.

    Replay is delivered from the loop, after the caller has the handle, in
    batches of REPLAY_BATCH; live batches arriving meanwhile queue behind
    it. If the cache starts over, the watch continues as a storage watch
    from the revision after the last one delivered.
    """

    def __init__(
        self,
        delegator: CacheDelegator,
        cache: WatchCache,
        prefix: bytes,
        start: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress],
    ) -> None:
        self._delegator = delegator
        self._cache = cache
        self._prefix = prefix
        #: Every event of the cache is under the prefix: no key test per event.
        self._whole = prefix == cache.prefix
        self._start = start
        self._on_events = on_events
        self._on_error = on_error
        self._on_progress = on_progress
        self._loop = asyncio.get_running_loop()
        self._delivered = start - 1
        # Events not delivered yet, from `_pending_at` on: the replay, then what arrived during it.
        self._pending: List[CacheEvent] = []
        self._pending_at = 0
        self._replaying = False
        self._progress_wanted = False
        self._progress_task: Optional["asyncio.Task[None]"] = None
        # Set once the cache started over: the storage watch this one continues as.
        self._resume_task: Optional["asyncio.Task[None]"] = None
        self._storage_watch: Optional[WatchHandle] = None
        self._done = False

    def __repr__(self) -> str:
        source = self._storage_watch if self._storage_watch is not None else self._cache
        return f"<CacheWatch {self._prefix!r} rev={self.revision} done={self.done} from={source!r}>"

    # -- WatchHandle ------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        if self._storage_watch is not None:
            return self._storage_watch.revision
        if self._done or self._replaying or self._resume_task is not None:
            return self._delivered
        # Every cache batch reaches this watch as it is applied: it is current with the cache.
        return max(self._delivered, self._cache.revision)

    @property
    def done(self) -> bool:
        if self._storage_watch is not None:
            return self._storage_watch.done
        return self._done

    def request_progress(self) -> None:
        if self._done or self._on_progress is None:
            return
        if self._storage_watch is not None:
            self._storage_watch.request_progress()
            return
        self._progress_wanted = True  # answered after the replay, or by the storage watch this one becomes
        if not self._replaying and self._resume_task is None and self._progress_task is None:
            self._progress_task = self._loop.create_task(self._answer_progress())

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._unfollow()
        self._pending = []
        running = asyncio.current_task()
        for task in (self._progress_task, self._resume_task):
            if task is not None and task is not running:
                task.cancel()
        if self._storage_watch is not None:
            self._storage_watch.cancel()

    # -- following the cache ----------------------------------------------------------------

    def follow(self, replay: List[CacheEvent]) -> None:
        cache = self._cache
        cache.listeners.append(self._offer)
        cache.on_reset.append(self._cache_reset)
        if replay:
            self._pending = list(replay)
            self._replaying = True
            self._loop.call_soon(self._flush)

    def _unfollow(self) -> None:
        cache = self._cache
        offer = self._offer
        # Rebuilt, not removed from: this may run inside the cache's loop over its listeners
        # (a consumer cancelling from on_events), which must not skip the next listener.
        cache.listeners = [f for f in cache.listeners if f != offer]
        reset = self._cache_reset
        cache.on_reset = [f for f in cache.on_reset if f != reset]

    def _offer(self, batch: List[CacheEvent]) -> None:
        if self._done:
            return
        if self._replaying:
            self._pending.extend(batch)
        else:
            self._deliver(batch)

    def _flush(self) -> None:
        if self._done or not self._replaying:
            return
        pending = self._pending
        at = self._pending_at
        end = min(at + REPLAY_BATCH, len(pending))
        while end < len(pending) and pending[end].rv == pending[end - 1].rv:
            end += 1
        batch = pending[at:end]
        if end < len(pending):
            self._pending_at = end
            self._loop.call_soon(self._flush)
        else:
            self._pending = []
            self._pending_at = 0
            self._replaying = False
        self._deliver(batch)
        if not self._replaying and self._progress_wanted and self._progress_task is None and not self._done:
            self._progress_task = self._loop.create_task(self._answer_progress())

    def _deliver(self, batch: List[CacheEvent]) -> None:
        start = self._start
        prefix = self._prefix
        whole = self._whole
        out: List[WatchEvent] = []
        append = out.append
        for ev in batch:
            rev = ev.rv
            obj = ev.obj
            if rev < start or not (whole or obj.key.startswith(prefix)):
                continue
            prev = ev.prev
            append(WatchEvent(cast(EventType, ev.type), obj.key, obj.data, prev.data if prev is not None else None,
                              rev, obj.create_revision))
        if batch and batch[-1].rv > self._delivered:
            self._delivered = batch[-1].rv
        if out:
            try:
                self._on_events(out)
            except Exception:  # never let a consumer's bug fail the cache (and the write feeding it)
                log.exception("watch consumer failed; ending its watch")
                self._end(InternalError(self._prefix, 0, "the watch consumer raised"))

    async def _answer_progress(self) -> None:
        """Answer progress once the cache has reached the revision storage was at when asked."""
        cache = self._cache
        try:
            while self._progress_wanted:
                self._progress_wanted = False
                target = await self._delegator.storage.current_revision(self._prefix)
                while cache.revision < target and self._resume_task is None and not self._done:
                    await cache.wait_until_fresh(target, self._delegator.block_timeout)
                if self._done:
                    return
                if self._resume_task is not None:  # continuing on storage: it answers instead
                    if self._storage_watch is not None:
                        self._storage_watch.request_progress()
                    else:
                        self._progress_wanted = True
                    return
                rev = max(self._delivered, cache.revision)
                self._delivered = rev
                on_progress = self._on_progress
                assert on_progress is not None
                try:
                    on_progress(rev)
                except Exception:
                    log.exception("watch consumer failed on progress; ending its watch")
                    self._end(InternalError(self._prefix, 0, "the watch consumer raised"))
                    return
        except StorageError as err:
            self._end(err)
        finally:
            self._progress_task = None

    # -- continuing on storage ----------------------------------------------------------------

    def _cache_reset(self) -> None:
        if self._done or self._resume_task is not None:
            return
        self._unfollow()
        # Undelivered events are dropped: the storage watch replays everything after `_delivered`.
        self._pending = []
        self._pending_at = 0
        self._replaying = False
        self._resume_task = self._loop.create_task(self._resume_on_storage())

    async def _resume_on_storage(self) -> None:
        try:
            handle = await self._delegator.storage.watch(
                self._prefix, from_revision=max(self._start, self._delivered + 1), on_events=self._on_events,
                on_error=self._on_error, on_progress=self._on_progress)
        except StorageError as err:
            self._end(err)
            return
        if self._done:
            handle.cancel()
            return
        self._storage_watch = handle
        if self._progress_wanted:
            self._progress_wanted = False
            handle.request_progress()

    def _end(self, err: StorageError) -> None:
        self.cancel()
        try:
            self._on_error(err)
        except Exception:
            log.exception("watch consumer failed on its error")


if TYPE_CHECKING:

    def _conforms(d: CacheDelegator, w: _CacheWatch) -> tuple[Storage, WatchHandle]:  # the explicit interface check
        return d, w
