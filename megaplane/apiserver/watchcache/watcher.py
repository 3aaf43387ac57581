"""One client's watch on a watch cache: its filters, what it is owed, and bookmarks.

Filtering follows upstream's cacheWatcher.convertToWatchEvent: with a
selector, an object that starts matching arrives as ADDED, one that stops
matching as DELETED (its previous state at the event's revision), and one
that matches before and after as MODIFIED. Watchers without selectors
share each event's line bytes; lines are queued and written once per loop
iteration (`WatchCache.mark_dirty`), so a burst of writes is one syscall per
watcher.

A watcher whose connection cannot keep up (the sink refuses more) is
closed, as upstream terminates a blocked watcher: the client rewatches
from its last resourceVersion, from history if it is still there, else it
relists after 410.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, List, Optional, Protocol

import orjson

from megaplane.apimachinery.meta import set_resource_version
from megaplane.apimachinery.selectors import FieldSelector, LabelSelector, matches_fields, matches_labels
from megaplane.apiserver.http.encoding import event_line
from megaplane.apiserver.watchcache.cache import CachedObject, CacheEvent

if TYPE_CHECKING:
    from megaplane.apiserver.watchcache.cache import WatchCache

__all__ = ["CacheWatcher", "Sink", "Render"]


class Sink(Protocol):
    def write(self, data: bytes) -> bool:
        """Send bytes; False when the client is gone or too far behind (the watcher then closes)."""

    def write_chunk(self, chunk: bytes) -> bool:
        """Send bytes already framed for the wire (shared between watchers)."""

    def close(self) -> None:
        """End the response."""


# Renders (event type, object) to one wire line, for non-JSON formats (Table).
Render = Callable[[str, CachedObject], bytes]


class CacheWatcher:
    __slots__ = (
        "cache",
        "sink",
        "namespace",
        "name",
        "labels",
        "fields",
        "bookmarks",
        "render",
        "pending",
        "closed",
        "plain",
        "on_close",
    )

    def __init__(
        self,
        cache: "WatchCache",
        sink: Sink,
        *,
        namespace: str = "",
        name: str = "",
        labels: Optional[LabelSelector] = None,
        fields: Optional[FieldSelector] = None,
        bookmarks: bool = False,
        render: Optional[Render] = None,
    ) -> None:
        self.cache = cache
        self.sink = sink
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.fields = fields
        self.bookmarks = bookmarks
        self.render = render
        self.pending: List[bytes] = []
        self.closed = False
        # No selector and no renderer: every event's shared line as is.
        self.plain = not (name or labels or fields) and render is None
        self.on_close: Optional[Callable[[], None]] = None

    def __repr__(self) -> str:
        return f"<CacheWatcher {self.cache.resource.plural} ns={self.namespace!r} pending={len(self.pending)}>"

    def _passes(self, obj: Optional[CachedObject]) -> bool:
        if obj is None:
            return False
        f = obj.facts
        if self.namespace and f.namespace != self.namespace:
            return False
        if self.name and f.name != self.name:
            return False
        if self.labels and not matches_labels(self.labels, f.labels):
            return False
        if self.fields and not matches_fields(self.fields, f.fields):
            return False
        return True

    def _line(self, etype: str, ev: CacheEvent) -> bytes:
        if self.render is not None:
            return self.render(etype, ev.obj)
        return ev.line()

    def offer(self, events: List[CacheEvent]) -> None:
        """Take the events of one batch that this watcher should see."""
        if self.closed:
            return
        pending = self.pending
        before = len(pending)
        ns = self.namespace
        if self.plain:
            if ns:
                for ev in events:
                    if ev.obj.facts.namespace == ns:
                        pending.append(ev.line())
            else:
                for ev in events:
                    pending.append(ev.line())
        else:
            for ev in events:
                line = self._convert(ev)
                if line is not None:
                    pending.append(line)
        if len(pending) > before:
            self.cache.sent_total += len(pending) - before
            if not before:
                self.cache.mark_dirty(self)

    def _convert(self, ev: CacheEvent) -> Optional[bytes]:
        cur = ev.type != "DELETED" and self._passes(ev.obj)
        old = ev.prev is not None and self._passes(ev.prev)
        if ev.type == "DELETED":
            return self._line("DELETED", ev) if old else None
        if cur and old:
            return self._line("MODIFIED", ev)
        if cur:
            return self._line("ADDED", ev) if ev.type == "ADDED" else self._added(ev)
        if old:
            # Stopped matching: DELETED with the previous state at this revision.
            prev = ev.prev
            assert prev is not None
            gone = CachedObject(prev.key, set_resource_version(prev.data, ev.rv), ev.rv, prev.facts)
            if self.render is not None:
                return self.render("DELETED", gone)
            return event_line("DELETED", gone.data)
        return None

    def _added(self, ev: CacheEvent) -> bytes:
        if self.render is not None:
            return self.render("ADDED", ev.obj)
        return event_line("ADDED", ev.obj.data)

    def send_initial(self, objects: List[CachedObject], revision: int) -> None:
        """Synthetic ADDED events for the state at `revision` (watch without a start resourceVersion)."""
        pending = self.pending
        for obj in objects:
            if self._passes(obj):
                pending.append(
                    self.render("ADDED", obj) if self.render else event_line("ADDED", obj.data)
                )
        if pending:
            self.cache.mark_dirty(self)

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
        self.pending.append(event_line("BOOKMARK", orjson.dumps(obj)))
        if was_empty:
            self.cache.mark_dirty(self)

    def error(self, status_body: bytes) -> None:
        """An ERROR event (e.g. 410 Expired) and the end of the watch."""
        self.pending.append(event_line("ERROR", status_body))
        self.flush()
        self.close()

    def write_chunk(self, chunk: bytes, rv: int) -> None:
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
        self.cache.remove_watcher(self)
        self.sink.close()
        if self.on_close is not None:
            self.on_close()
