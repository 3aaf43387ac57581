"""One kind's watch cache: current objects, their key order, recent events, and the watchers.

Fed by a backend watch on the kind's key prefix. Each store event becomes
one `CacheEvent` holding the object's stored bytes (which already carry
their resourceVersion) and its `ObjectFacts`; the event's wire line
`{"type":...,"object":...}` is built once, lazily, and shared by every
watcher that gets it.

Why a hash map and not a B-tree: k8s-1m measured kube-apiserver's
B-tree-under-one-lock cache stalling near 40K updates/s. Here an update is
a dict assignment; the ordered index (megaplane.store.keyspace.KeyIndex)
is touched only when a key appears or disappears, and sorted lazily for
LIST.

The history window keeps the events of the last `window_seconds`
(upstream: 75 s), at least `min_events` and at most `max_events`, so a
watch can resume from a recent resourceVersion; older ones get 410
Expired ("too old resource version").

With the embedded backend, the store calls `on_ready` inside the write, so
the cache is current when the write returns: a GET right after a PUT from
the same client sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from typing import Callable, Iterator, List, Optional, Tuple

import msgspec

from megaplane.apimachinery.meta import ObjectFacts, facts_decoder
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.watchevent import event_line
from megaplane.storage import DELETED, Storage, StorageError, WatchEvent, WatchHandle
from megaplane.storage.keys import prefix_end
from megaplane.store.keyspace import KeyIndex

__all__ = ["WatchCache", "CachedObject", "CacheEvent", "TooOldError", "json_line"]

# While readers wait for a revision, how often progress made through other kinds' writes is looked at.
FRESHNESS_CHECK = 0.05

log = logging.getLogger("megaplane.apiserver.watchcache")


class TooOldError(Exception):
    """A watch or list asked for a revision older than the cache's window."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class CachedObject(msgspec.Struct, gc=False):
    """One object as stored: key, bytes, revision, and its decoded facts.

    Not tracked by the cyclic GC (gc=False): caches hold millions and they
    reference only bytes, ints and untracked facts.
    """

    key: bytes
    data: bytes
    rv: int
    facts: ObjectFacts
    #: The revision that created this incarnation of the key (storage's create_revision), so the
    #: cache can answer in storage's own shapes (`delegator`).
    create_revision: int
    #: The object's bare protobuf message, filled by the first protobuf list or watch that needs it
    #: (`apiserver.http.encoding`): once per revision for every protobuf client.
    pb: Optional[bytes] = None


class CacheEvent(msgspec.Struct, gc=False):
    """One change: its type, the object after it (for DELETED: the last state at the delete's revision).

    Untracked by the cyclic GC like CachedObject: the history window holds
    every event of the last 75 s.
    """

    type: str
    obj: CachedObject
    prev: Optional[CachedObject]
    rv: int
    time: float
    #: The event's JSON watch line, memoised by whoever encodes it first (`json_line`): once for all watchers.
    wire: Optional[bytes] = None
    #: Its protobuf watch frame, memoised the same way (`apiserver.http.encoding.pb_event_frame`).
    pb_wire: Optional[bytes] = None


def json_line(ev: CacheEvent) -> bytes:
    """The `{"type":...,"object":...}` line of an event, encoded once and shared by every consumer."""
    line = ev.wire
    if line is None:
        line = ev.wire = event_line(ev.type, ev.obj.data)
    return line


class WatchCache:
    """The cache of one storage prefix (one kind)."""

    def __init__(
        self,
        resource: Resource,
        storage: Storage,
        *,
        window_seconds: float = 75.0,
        min_events: int = 1000,
        max_events: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resource = resource
        self.storage = storage
        self.prefix = resource.prefix
        self.end = prefix_end(resource.prefix)
        self.decode_facts = facts_decoder(resource)
        self.objects: dict = {}
        self.index = KeyIndex()
        self.history: List[CacheEvent] = []
        self.window_seconds = window_seconds
        self.min_events = min_events
        self.max_events = max_events
        self.trim_batch = max(1, min(1024, min_events // 4))
        self.clock = clock
        # Every event after `oldest` is in history: watches from it or later can resume.
        self.oldest = 0
        self._revision = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._feed: Optional[WatchHandle] = None
        self._relisting: Optional["asyncio.Task[None]"] = None
        # (key, facts) of the write the API server is making right now: its
        # event then needs no decoding (`expect`).
        self._expected: Optional[tuple] = None
        # Readers waiting for a revision: (revision, future), checked as the cache moves.
        self._fresh_waiters: List[Tuple[int, "asyncio.Future[bool]"]] = []
        self._fresh_timer: Optional[asyncio.TimerHandle] = None
        # Consumers of typed events, called with each applied batch in revision order: the HTTP
        # watch fan-out, in-process watchers, built-in controllers.
        self.listeners: List[Callable[[List[CacheEvent]], None]] = []
        # Called when the cache starts over (relist after it fell behind): every watcher must end.
        self.on_reset: List[Callable[[], None]] = []

    def __repr__(self) -> str:
        return (
            f"<WatchCache {self.resource.group_version} {self.resource.plural} objects={len(self.objects)} "
            f"history={len(self.history)} listeners={len(self.listeners)} rev={self.revision}>"
        )

    # -- intake ---------------------------------------------------------------------

    async def start(self) -> None:
        """List the prefix, then follow it with a storage watch from the list's revision."""
        self._loop = asyncio.get_running_loop()
        res = await self.storage.list(self.prefix)
        decode = self.decode_facts
        for item in res.items:
            key = item.key
            self.objects[key] = CachedObject(key, item.data, item.revision, decode(item.data), item.create_revision)
            self.index.add(key)
        self._revision = self.oldest = res.revision
        self._feed = await self.storage.watch(
            self.prefix, from_revision=res.revision + 1, on_events=self._apply, on_error=self._fell_behind)

    def stop(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            self._feed = None
        if self._relisting is not None:
            self._relisting.cancel()
        for reset in list(self.on_reset):
            reset()

    @property
    def ready(self) -> bool:
        """True while the cache follows its storage watch (upstream's Cacher.Ready): not before start, not relisting."""
        feed = self._feed
        return feed is not None and not feed.done

    @property
    def revision(self) -> int:
        """The revision the cache is current at (all events up to it are applied)."""
        feed = self._feed
        if feed is not None:
            rev = feed.revision
            if rev > self._revision:
                return rev
        return self._revision

    def _fell_behind(self, err: StorageError) -> None:
        # The storage dropped history we had not read (or the watch failed): start over from a fresh list.
        log.warning("watch cache for %s lost its storage watch (%s); relisting", self.resource.plural, err)
        self._feed = None
        if self._relisting is None:
            self._relisting = asyncio.get_running_loop().create_task(self._relist())

    async def wait_until_fresh(self, revision: int, timeout: float) -> bool:
        """Wait until the cache is current at `revision`; False if `timeout` passed first.

        Events of this kind wake waiters at once; revisions moved by writes to
        other kinds reach the cache as watch progress, looked at every
        FRESHNESS_CHECK seconds while anyone waits (upstream's cacher waits
        on progress notifications the same way).
        """
        if self.revision >= revision:
            return True
        loop = self._loop or asyncio.get_running_loop()
        fut: "asyncio.Future[bool]" = loop.create_future()
        self._fresh_waiters.append((revision, fut))
        self._ask_progress()
        if self._fresh_timer is None:
            self._fresh_timer = loop.call_later(FRESHNESS_CHECK, self._fresh_tick)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._fresh_waiters = [(r, f) for r, f in self._fresh_waiters if f is not fut]

    def _ask_progress(self) -> None:
        # A network backend's watch moves only with events and progress notifications: ask for one
        # (etcd's RequestProgress, as upstream's cacher does for consistent reads). The embedded watch
        # already reports the store's progress, and ignores this.
        if self._feed is not None:
            self._feed.request_progress()

    def _fresh_tick(self) -> None:
        self._fresh_timer = None
        self._check_fresh()
        if self._fresh_waiters:
            self._ask_progress()
            self._fresh_timer = (self._loop or asyncio.get_event_loop()).call_later(FRESHNESS_CHECK, self._fresh_tick)

    def _check_fresh(self) -> None:
        waiters = self._fresh_waiters
        rev = self.revision
        still = []
        for want, fut in waiters:
            if fut.done():
                continue
            if want <= rev:
                fut.set_result(True)
            else:
                still.append((want, fut))
        self._fresh_waiters = still

    def _apply(self, events: List[WatchEvent]) -> None:
        objects = self.objects
        decode = self.decode_facts
        history = self.history
        now = self.clock()
        fresh: List[CacheEvent] = []
        for change in events:
            key = change.key
            rev = change.revision
            old = objects.get(key)
            if change.type == DELETED:
                if old is None:
                    continue
                del objects[key]
                self.index.discard(key)
                # The storage serves a deleted object as its last state at the delete's revision.
                gone = CachedObject(key, change.value, rev, old.facts, change.create_revision)
                ev = CacheEvent("DELETED", gone, old, rev, now)
            else:
                data = change.value
                expected = self._expected
                self._expected = None
                # The writer's facts, if they are for this very write (a write that failed leaves stale ones).
                if expected is not None and expected[0] == key and expected[1].resource_version == str(rev):
                    facts = expected[1]
                else:
                    facts = decode(data)
                obj = CachedObject(key, data, rev, facts, change.create_revision)
                objects[key] = obj
                if old is None:
                    self.index.add(key)
                    ev = CacheEvent("ADDED", obj, None, rev, now)
                else:
                    ev = CacheEvent("MODIFIED", obj, old, rev, now)
            history.append(ev)
            fresh.append(ev)
            self._revision = rev
        self._trim(now)
        if self._fresh_waiters:
            self._check_fresh()
        if fresh:
            for listen in self.listeners:
                listen(fresh)

    def _trim(self, now: float) -> None:
        # Trimming a list's head moves the whole list, so it is done in batches
        # of `trim_batch`: history holds up to that many events more than the
        # bounds ask for, which only lets a watch resume from slightly further back.
        history = self.history
        n = len(history)
        batch = self.trim_batch
        if n <= self.min_events + batch:
            return
        over = n - self.max_events
        if over < batch and history[batch].time >= now - self.window_seconds:
            return
        drop = max(over, 0)
        cutoff = now - self.window_seconds
        while drop < n - self.min_events and history[drop].time < cutoff:
            drop += 1
        if drop:
            # Never split one revision's events.
            while drop < n and history[drop].rv == history[drop - 1].rv:
                drop += 1
            self.oldest = history[drop - 1].rv
            del history[:drop]

    async def _relist(self) -> None:
        try:
            for reset in list(self.on_reset):
                reset()
            backoff = 0.1
            while True:
                self.objects.clear()
                self.index = KeyIndex()
                self.history.clear()
                try:
                    await self.start()
                    break
                except StorageError as err:  # the backend is unreachable right now (etcd down): keep trying
                    log.warning("watch cache for %s could not relist (%s); retrying in %.1fs",
                                self.resource.plural, err, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self._relisting = None

    def expect(self, key: bytes, facts: ObjectFacts) -> None:
        """The facts of the object about to be written at `key` (set by the writer, used once)."""
        self._expected = (key, facts)

    # -- reads -------------------------------------------------------------------------

    def get(self, key: bytes) -> Optional[CachedObject]:
        return self.objects.get(key)

    def iter_prefix(self, prefix: bytes, start: bytes = b"") -> Iterator[CachedObject]:
        """Current objects under `prefix` in key order, from `start` on."""
        objects = self.objects
        end = prefix_end(prefix)
        for key in self.index.irange(max(prefix, start), end):
            yield objects[key]

    def count_prefix(self, prefix: bytes) -> int:
        if not self.objects:
            return 0  # an empty kind (no quota, no LimitRange: what admission asks on every create)
        return self.index.count(prefix, prefix_end(prefix))

    def events_since(self, revision: int) -> List[CacheEvent]:
        """Events after `revision` (raises TooOldError if some are no longer kept)."""
        if revision < self.oldest:
            raise TooOldError(revision, self.oldest + 1)
        history = self.history
        i = bisect_right(history, revision, key=lambda e: e.rv)
        return history[i:]
