"""`SharedInformer`: one list-and-watch of a resource feeding a local Indexer and event handlers.

client-go's reflector + DeltaFIFO + sharedIndexInformer, on one event loop:

1. List in pages of `page_size` (500) at one snapshot, then watch from the
   list's resourceVersion with `allowWatchBookmarks=true` and a
   `timeoutSeconds` drawn from [min_watch_timeout, 2x) as the reflector does.
2. A watch that ends (its timeout, a dropped connection) is re-opened from
   the last resourceVersion seen; bookmarks advance it without an object.
3. 410 Gone/Expired, as the watch request's answer or as an ERROR event in
   the stream, means events were missed: relist, and deliver the
   difference between the relist and the local copy: adds, updates (only
   when the resourceVersion changed) and deletes, those wrapped in
   `DeletedFinalStateUnknown` since their final state was never seen.
4. Failures wait an exponential backoff (800 ms doubling, 30 s cap, jitter,
   reset after 2 min of calm: the reflector's backoff manager). Unreachable
   servers, 429 and timeouts retry the watch; other errors relist.
5. `resync_period` > 0 re-delivers `on_update(obj, obj)` for every object
   that often (level-triggered controllers catch up on anything they lost).

Handlers are plain functions called inline in event order; they must not
block (a controller's handler enqueues a key). One raising is logged and
does not stop the others. A handler added after the initial list gets an
`on_add` for every object already known, at once.

A watch whose stream ends within a second without a single event is
treated as a failure (backoff) rather than re-opened at once, as the
reflector's "very short watch" check does, so a server that accepts and
drops watches is not hammered.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import orjson

from .cache import DeletedFinalStateUnknown, Indexer, IndexFunc, Lister, object_key
from .client import ResourceClient
from .clock import REAL_CLOCK, Clock
from .errors import (
    ConnectionFailedError,
    GoneError,
    ServerTimeoutError,
    ServiceUnavailableError,
    StatusError,
    TooManyRequestsError,
    error_from_response,
)

__all__ = ["SharedInformer", "Backoff", "EventHandler"]

log = logging.getLogger(__name__)

Obj = Dict[str, Any]
AddFunc = Callable[[Obj], None]
UpdateFunc = Callable[[Obj, Obj], None]
DeleteFunc = Callable[[Union[Obj, DeletedFinalStateUnknown]], None]


class Backoff:
    """Exponential backoff with jitter that resets after a calm period (wait.ExponentialBackoffManager)."""

    def __init__(
        self, initial: float = 0.8, cap: float = 30.0, factor: float = 2.0, jitter: float = 1.0,
        reset_after: float = 120.0, clock: Optional[Clock] = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial, self.cap, self.factor, self.jitter, self.reset_after = initial, cap, factor, jitter, reset_after
        self._clock = clock or REAL_CLOCK
        self._rng = rng
        self._next = initial
        self._last: Optional[float] = None

    def next(self) -> float:
        """Seconds to wait now; each call without a calm `reset_after` in between waits longer."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last > self.reset_after:
            self._next = self.initial
        self._last = now
        base = self._next
        self._next = min(base * self.factor, self.cap)
        return min(base * (1.0 + self._rng() * self.jitter), self.cap)


@dataclass(frozen=True)
class EventHandler:
    """A registration returned by `add_event_handler` (pass it to `remove_event_handler`)."""

    on_add: Optional[AddFunc]
    on_update: Optional[UpdateFunc]
    on_delete: Optional[DeleteFunc]


class _ShortWatch(Exception):
    pass


# Failures that say nothing about the local copy: retry the watch itself after a backoff.
_TRANSIENT = (ConnectionFailedError, TooManyRequestsError, ServerTimeoutError, ServiceUnavailableError, _ShortWatch)


class SharedInformer:
    """List-and-watch of one resource into an Indexer, with event handlers (see the module docstring).

    It is a `megaplane.runtime.Component`: `await start()`, `await stop()`,
    `ready()` (synced), `statistics()`.
    """

    def __init__(
        self,
        resource: ResourceClient,
        *,
        namespace: Optional[str] = None,
        label_selector: Optional[str] = None,
        field_selector: Optional[str] = None,
        resync_period: float = 0.0,
        indexers: Optional[Mapping[str, IndexFunc]] = None,
        page_size: int = 500,
        min_watch_timeout: float = 300.0,
        clock: Optional[Clock] = None,
        backoff: Optional[Backoff] = None,
        transform: Optional[Callable[[Obj], Obj]] = None,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        #: Applied to every object before it is stored and delivered (client-go's SetTransform), e.g.
        #: `cache.strip_managed_fields`; it may change the freshly decoded object in place.
        self.transform = transform
        self.indexer = Indexer(indexers)
        self.lister = Lister(self.indexer)
        self._clock = clock or REAL_CLOCK
        self._backoff = backoff or Backoff(clock=self._clock)
        self._handlers: List[EventHandler] = []
        # The registered functions per kind, rebuilt on (un)registration: the event path loops over these.
        self._add_funcs: Tuple[AddFunc, ...] = ()
        self._update_funcs: Tuple[UpdateFunc, ...] = ()
        self._delete_funcs: Tuple[DeleteFunc, ...] = ()
        self._synced = asyncio.Event()
        self._rv = ""
        self._task: Optional["asyncio.Task[None]"] = None
        self._resync_task: Optional["asyncio.Task[None]"] = None
        self._stream: Any = None
        self._stats: Dict[str, int] = {"lists": 0, "relists": 0, "watches": 0, "events": 0, "errors": 0}

    def __repr__(self) -> str:
        return f"<SharedInformer {self.name} objects={len(self.indexer)} rv={self._rv or '-'}>"

    @property
    def name(self) -> str:
        ref = self.resource.ref
        return f"informer/{ref.plural}.{ref.group}" if ref.group else f"informer/{ref.plural}"

    @property
    def last_sync_resource_version(self) -> str:
        """The resourceVersion the local copy is at (the last list, event or bookmark)."""
        return self._rv

    # -- handlers -------------------------------------------------------------------------------

    def add_event_handler(
        self, on_add: Optional[AddFunc] = None, on_update: Optional[UpdateFunc] = None,
        on_delete: Optional[DeleteFunc] = None,
    ) -> EventHandler:
        """Register handlers; objects already known are delivered to `on_add` before this returns."""
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        self._rebuild_funcs()
        if on_add is not None:
            for obj in self.indexer.list():
                self._call(on_add, obj)
        return handler

    def remove_event_handler(self, handler: EventHandler) -> None:
        self._handlers.remove(handler)
        self._rebuild_funcs()

    def _rebuild_funcs(self) -> None:
        hs = self._handlers
        self._add_funcs = tuple(h.on_add for h in hs if h.on_add is not None)
        self._update_funcs = tuple(h.on_update for h in hs if h.on_update is not None)
        self._delete_funcs = tuple(h.on_delete for h in hs if h.on_delete is not None)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except Exception:
            self._failed(func)

    def _failed(self, func: Callable[..., None]) -> None:
        log.exception("%s: event handler %r failed", self.name, func)

    # The three below run per event: each handler is called in a try of its own, without a helper call.

    def _added(self, obj: Obj) -> None:
        for func in self._add_funcs:
            try:
                func(obj)
            except Exception:
                self._failed(func)

    def _updated(self, old: Obj, new: Obj) -> None:
        for func in self._update_funcs:
            try:
                func(old, new)
            except Exception:
                self._failed(func)

    def _deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        for func in self._delete_funcs:
            try:
                func(obj)
            except Exception:
                self._failed(func)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin listing and watching in the background; returns at once (see `wait_for_sync`).

        After `stop()`, starting again resumes watching from the last
        resourceVersion (a relist only if the server no longer has it).
        """
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        if self.resync_period > 0:
            self._resync_task = asyncio.get_running_loop().create_task(self._resync_loop(), name=f"{self.name}/resync")

    async def stop(self) -> None:
        """Stop watching; the local copy stays readable. Safe to call twice or before start."""
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        self._task = self._resync_task = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()

    async def __aenter__(self) -> "SharedInformer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._task is not None

    def has_synced(self) -> bool:
        """True once the first list has been delivered to the handlers and the indexer."""
        return self._synced.is_set()

    def ready(self) -> bool:
        return self.has_synced()

    async def wait_for_sync(self, timeout: Optional[float] = None) -> bool:
        """Wait for the first list (True), or until `timeout` seconds pass (False)."""
        if timeout is None:
            await self._synced.wait()
            return True
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def statistics(self) -> Dict[str, Union[int, float, bool, str]]:
        stats: Dict[str, Union[int, float, bool, str]] = dict(self._stats)
        stats["objects"] = len(self.indexer)
        stats["synced"] = self.has_synced()
        stats["resource_version"] = self._rv
        return stats

    # -- the reflector ------------------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = not self.has_synced()
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                continue
            except asyncio.CancelledError:
                raise
            except GoneError as exc:
                log.info("%s: %s; relisting", self.name, exc.message)
                need_list = True
            except _TRANSIENT as exc:
                log.info("%s: %s: %s", self.name, "list" if need_list else "watch", exc)
            except StatusError as exc:
                log.warning("%s: %s (%d %s); relisting", self.name, exc.message, exc.code, exc.reason)
                need_list = True
            except Exception:
                log.exception("%s: unexpected failure; relisting", self.name)
                need_list = True
            self._stats["errors"] += 1
            await self._clock.sleep(self._backoff.next())

    async def _list(self) -> None:
        listing = await self.resource.list_all(
            self.namespace, label_selector=self.label_selector, field_selector=self.field_selector,
            page_size=self.page_size,
        )
        self._stats["lists"] += 1
        if self._synced.is_set():
            self._stats["relists"] += 1
        self._replace(listing.get("items") or [], str((listing.get("metadata") or {}).get("resourceVersion", "")))

    def _replace(self, items: List[Obj], resource_version: str) -> None:
        indexer = self.indexer
        seen = set()
        if self.transform is not None:
            items = [self.transform(obj) for obj in items]
        for obj in items:
            seen.add(object_key(obj))
            old = indexer.upsert(obj)
            if old is None:
                self._added(obj)
            elif _rv(old) != _rv(obj):
                self._updated(old, obj)
        for key in indexer.keys():
            if key not in seen:
                gone = indexer.remove(key)
                assert gone is not None
                self._deleted(DeletedFinalStateUnknown(key, gone))
        self._rv = resource_version
        self._synced.set()

    async def _watch(self) -> None:
        timeout = int(self.min_watch_timeout * (1.0 + random.random()))
        started = self._clock.monotonic()
        stream = await self.resource.watch_raw(
            self.namespace, resource_version=self._rv, label_selector=self.label_selector,
            field_selector=self.field_selector, allow_watch_bookmarks=True, timeout_seconds=timeout,
        )
        self._stream = stream
        self._stats["watches"] += 1
        events = 0
        loads = orjson.loads
        on_event = self._on_event
        try:
            next_batch = getattr(stream, "next_batch", None)
            if next_batch is not None:
                # One wakeup per read of the socket, however many events it brought (see _HTTPWatchStream).
                while True:
                    batch = await next_batch()
                    if not batch:
                        break
                    for line in batch:
                        event = loads(line)
                        on_event(event.get("type", ""), event.get("object") or {})
                    events += len(batch)
            else:
                async for line in stream:
                    event = loads(line)
                    on_event(event.get("type", ""), event.get("object") or {})
                    events += 1
        finally:
            self._stream = None
            await stream.close()
        if events == 0 and self._clock.monotonic() - started < 1.0:
            raise _ShortWatch("the watch ended at once without events")

    def _on_event(self, etype: str, obj: Obj) -> None:
        if self.transform is not None and etype != "ERROR" and etype != "BOOKMARK":
            obj = self.transform(obj)
        meta = obj.get("metadata") or _EMPTY
        rv = meta.get("resourceVersion") or ""
        if rv.__class__ is not str:
            rv = str(rv)
        if etype == "MODIFIED" or etype == "ADDED":
            self._stats["events"] += 1
            name = meta.get("name") or ""
            namespace = meta.get("namespace")
            old = self.indexer.upsert_key(f"{namespace}/{name}" if namespace else name, obj)
            if old is None:
                self._added(obj)
            else:
                self._updated(old, obj)
        elif etype == "BOOKMARK":
            self._stats["events"] += 1
            if rv:
                self._rv = rv
            return
        elif etype == "DELETED":
            self._stats["events"] += 1
            # A delete of an object never seen (it came and went between list and watch) is dropped,
            # as DeltaFIFO drops it.
            if self.indexer.remove(object_key(obj)) is not None:
                self._deleted(obj)
        elif etype == "ERROR":
            code = obj.get("code")
            raise error_from_response(code if isinstance(code, int) else 500, {}, orjson.dumps(obj))
        else:
            self._stats["events"] += 1
            log.warning("%s: unknown watch event type %r ignored", self.name, etype)
            return
        if rv:
            self._rv = rv

    async def _resync_loop(self) -> None:
        while True:
            await self._clock.sleep(self.resync_period)
            if self.has_synced():
                for obj in self.indexer.list():
                    self._updated(obj, obj)


_EMPTY: Dict[str, Any] = {}


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
