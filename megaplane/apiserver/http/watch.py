"""Watch streams over HTTP: one fan-out per kind's cache, and each client's watcher on it.

The cache hands its typed events (`CacheEvent`) to `WatchFanout`, a cache
listener; this module frames them. Watchers of a whole kind without
selectors ("broadcast") share each event's JSON line and, per event-loop
turn, one pre-framed chunk: a burst of writes is one `write()` per
watcher. Other watchers filter (`WatchFilter`: selector transitions as
upstream's cacheWatcher), queue their lines and are flushed in the same
turn. Table and events.k8s.io watchers render their own lines. Protobuf
watchers (`;stream=watch` frames) are the same with each event's frame
(`encoding.pb_event_frame`) in place of its JSON line: encoded once per
event for all of them, in their own broadcast group.

A watcher whose connection cannot keep up (the sink refuses more) is
closed, as upstream terminates a blocked watcher: the client rewatches
from its last resourceVersion, from history if it is still there, else it
relists after 410.
"""

from __future__ import annotations

import asyncio
from typing import Callable, List, Optional, Protocol

import orjson

from megaplane.apimachinery.watchevent import event_line
from megaplane.apiserver.http.encoding import pb_event_frame, pb_frame, pb_json_frame
from megaplane.apiserver.watchcache import CachedObject, CacheEvent, WatchCache
from megaplane.apiserver.watchcache.cache import json_line
from megaplane.apiserver.watchcache.filter import WatchFilter

__all__ = ["WatchFanout", "HTTPWatcher", "Sink", "Render"]


class Sink(Protocol):
    def write(self, data: bytes) -> bool:
        """Send bytes; False when the client is gone or too far behind (the watcher then closes)."""

    def write_chunk(self, chunk: bytes) -> bool:
        """Send bytes already framed for the wire (shared between watchers)."""

    def close(self) -> None:
        """End the response."""


# Renders (event type, object) to one wire line, for non-JSON formats (Table) and other versions.
Render = Callable[[str, CachedObject], bytes]


class WatchFanout:
    """Every HTTP watcher of one cache, and the per-turn batching of their writes."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self.watchers: List["HTTPWatcher"] = []
        # Watchers of every object of the kind, unfiltered: they share one
        # pre-framed chunk per loop iteration instead of per-event work.
        self.broadcast: List["HTTPWatcher"] = []
        self._batch: List[bytes] = []
        # The same for protobuf watchers, with each event's protobuf frame.
        self.pb_broadcast: List["HTTPWatcher"] = []
        self._pb_batch: List[bytes] = []
        self._dirty: List["HTTPWatcher"] = []
        self._flush_scheduled = False
        # Watch event lines queued for clients, all watchers together (apiserver_watch_events_total).
        self.sent_total = 0
        cache.listeners.append(self.offer)
        cache.on_reset.append(self.close_all)

    def __len__(self) -> int:
        return len(self.watchers) + len(self.broadcast) + len(self.pb_broadcast)

    def offer(self, events: List[CacheEvent]) -> None:
        if self.broadcast:
            self._batch.extend([json_line(ev) for ev in events])
            self._schedule_flush()
        if self.pb_broadcast:
            r = self.cache.resource
            self._pb_batch.extend([pb_event_frame(r, ev) for ev in events])
            self._schedule_flush()
        for w in self.watchers:
            w.offer(events)

    def add(self, w: "HTTPWatcher") -> None:
        if w.plain and not w.filter.namespace:
            # Events already batched predate this watcher: send them to the others first.
            self.flush_now()
            (self.pb_broadcast if w.protobuf else self.broadcast).append(w)
        else:
            self.watchers.append(w)

    def remove(self, w: "HTTPWatcher") -> None:
        for group in (self.broadcast, self.watchers, self.pb_broadcast):
            try:
                group.remove(w)
                return
            except ValueError:
                pass

    def close_all(self) -> None:
        for w in list(self.watchers) + list(self.broadcast) + list(self.pb_broadcast):
            w.close()

    def bookmark_all(self) -> None:
        """A BOOKMARK to every watcher that asked for them and has nothing queued."""
        self.flush_now()  # events queued for broadcast go out before a bookmark that covers them
        rev = self.cache.revision
        for w in list(self.watchers) + list(self.broadcast) + list(self.pb_broadcast):
            if w.bookmarks and not w.pending:
                w.bookmark(rev)

    def mark_dirty(self, w: "HTTPWatcher") -> None:
        """Queue a watcher's flush; all flushes run once per loop iteration (coalescing writes)."""
        self._dirty.append(w)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_event_loop().call_soon(self._flush)

    def flush_now(self) -> None:
        """Write everything queued now (before a new watcher joins, or a bookmark)."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        # Each watcher's own lines first: a broadcast watcher's initial events precede the batch.
        dirty, self._dirty = self._dirty, []
        for w in dirty:
            w.flush()
        for batch, group in ((self._batch, self.broadcast), (self._pb_batch, self.pb_broadcast)):
            if batch:
                data = b"".join(batch)
                self.sent_total += len(batch) * len(group)
                batch.clear()
                chunk = b"%x\r\n%s\r\n" % (len(data), data)
                for w in list(group):
                    w.write_chunk(chunk)


class HTTPWatcher:
    __slots__ = ("fanout", "cache", "sink", "filter", "bookmarks", "render", "pending", "closed", "plain", "on_close",
                 "protobuf", "wire")

    def __init__(
        self,
        fanout: WatchFanout,
        sink: Sink,
        watch_filter: WatchFilter,
        *,
        bookmarks: bool = False,
        render: Optional[Render] = None,
        protobuf: bool = False,
    ) -> None:
        self.fanout = fanout
        self.cache = fanout.cache
        self.sink = sink
        self.filter = watch_filter
        self.bookmarks = bookmarks
        self.render = render
        self.pending: List[bytes] = []
        self.closed = False
        # No selector and no renderer: every event's shared line as is.
        self.plain = not watch_filter.selective and render is None
        self.on_close: Optional[Callable[[], None]] = None
        #: `;stream=watch` protobuf frames instead of JSON lines (a renderer, if any, makes its own frames).
        self.protobuf = protobuf
        r = self.cache.resource
        # An event's shared wire form: its JSON line, or its protobuf frame.
        self.wire: Callable[[CacheEvent], bytes] = (lambda ev: pb_event_frame(r, ev)) if protobuf else json_line

    def __repr__(self) -> str:
        return f"<HTTPWatcher {self.cache.resource.plural} ns={self.filter.namespace!r} pending={len(self.pending)}>"

    def _line(self, etype: str, obj: CachedObject, ev: Optional[CacheEvent]) -> bytes:
        if self.render is not None:
            return self.render(etype, obj)
        if ev is not None and etype == ev.type and obj is ev.obj:
            return self.wire(ev)
        if self.protobuf:
            return pb_frame(self.cache.resource, etype, obj)
        return event_line(etype, obj.data)

    def offer(self, events: List[CacheEvent]) -> None:
        """Take the events of one batch that this watcher should see."""
        if self.closed:
            return
        pending = self.pending
        before = len(pending)
        ns = self.filter.namespace
        if self.plain:
            wire = self.wire
            if ns:
                for ev in events:
                    if ev.obj.facts.namespace == ns:
                        pending.append(wire(ev))
            else:
                for ev in events:
                    pending.append(wire(ev))
        else:
            convert = self.filter.convert
            for ev in events:
                seen = convert(ev)
                if seen is not None:
                    pending.append(self._line(seen[0], seen[1], ev))
        if len(pending) > before:
            self.fanout.sent_total += len(pending) - before
            if not before:
                self.fanout.mark_dirty(self)

    def send_initial(self, objects: List[CachedObject]) -> None:
        """Synthetic ADDED events for the current state (watch without a start resourceVersion)."""
        pending = self.pending
        passes = self.filter.passes
        for obj in objects:
            if passes(obj):
                pending.append(self._line("ADDED", obj, None))
        if pending:
            self.fanout.mark_dirty(self)

    def bookmark(self, revision: int, initial_events_end: bool = False) -> None:
        """A BOOKMARK event: everything up to `revision` has been sent."""
        if self.closed or not self.bookmarks:
            return
        r = self.cache.resource
        meta: dict = {"resourceVersion": str(revision), "creationTimestamp": None}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": r.kind, "apiVersion": r.group_version, "metadata": meta}
        was_empty = not self.pending
        self.pending.append(pb_json_frame("BOOKMARK", obj) if self.protobuf else event_line("BOOKMARK", orjson.dumps(obj)))
        if was_empty:
            self.fanout.mark_dirty(self)

    def error(self, status_body: bytes) -> None:
        """An ERROR event (e.g. 410 Expired) and the end of the watch."""
        if self.protobuf:
            self.pending.append(pb_json_frame("ERROR", orjson.loads(status_body)))
        else:
            self.pending.append(event_line("ERROR", status_body))
        self.flush()
        self.close()

    def write_chunk(self, chunk: bytes) -> None:
        """A pre-framed chunk shared by every broadcast watcher."""
        if self.closed:
            return
        if not self.sink.write_chunk(chunk):
            self.close()

    def flush(self) -> None:
        if self.closed or not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        if not self.sink.write(data):
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending.clear()
        self.fanout.remove(self)
        self.sink.close()
        if self.on_close is not None:
            self.on_close()
