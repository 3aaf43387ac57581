"""Watches: delivering each revision's events to every watcher whose range covers them.

The design follows etcd's watchable_store. A watcher is either

- **synced**: registered in the watcher groups of the partitions its range
  covers. The write path pushes each event onto its buffer as the event is
  committed, so buffers fill in global revision order even for watchers
  that span partitions; or
- **unsynced**: behind. It is in no group; `take()` reads the partitions'
  history windows from its cursor and, once it reaches the head, rejoins
  the groups. New watchers with an old start revision begin here, and a
  synced watcher whose buffer passes `max_buffer` (a slow consumer) is
  demoted here, so a slow reader costs writers nothing. An unsynced watcher
  whose cursor falls below a partition's floor is cancelled with that floor
  as its compact revision, so the client can resume or relist.

Events are shared tuples (`megaplane.store.kv.Event`); a watcher's buffer
holds references, never copies. Events are handed out only up to the
store's *publish revision*: writes to fsync-mode partitions are held back
until they are on disk, so a watcher never sees a write a crash could undo.
Holding back is in revision order for every watcher, so the guarantees hold:
ordered, unique, reliable (no gaps), atomic (a revision is never split by
`take`), resumable (start revision), bookmarkable (`progress_revision`).

Lock-free by construction: the store, its watch hub and every `take()` run
on one thread (the store's event loop).
"""

from __future__ import annotations

import heapq
from itertools import islice
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .keyspace import Partition
from .kv import KEY, MOD_REVISION, VERSION, Event

if TYPE_CHECKING:
    from .mvcc import Store

__all__ = ["Watcher", "WatchHub", "WatcherGroup"]

# A take() that catches up from history returns at most this many events, so
# one far-behind watcher cannot hold the event loop for long.
CATCH_UP_BATCH = 10_000


class WatcherGroup:
    """The synced watchers of one partition, sorted by how they match keys."""

    __slots__ = ("whole", "ranges", "keys")

    def __init__(self) -> None:
        self.whole: List[Watcher] = []
        self.ranges: List[Watcher] = []
        self.keys: Dict[bytes, List[Watcher]] = {}

    def __bool__(self) -> bool:
        return bool(self.whole or self.ranges or self.keys)

    def add(self, w: "Watcher", partition: Partition) -> None:
        if w.single_key is not None:
            self.keys.setdefault(w.single_key, []).append(w)
        elif w.covers_partition(partition):
            self.whole.append(w)
        else:
            self.ranges.append(w)

    def remove(self, w: "Watcher") -> None:
        if w.single_key is not None:
            ws = self.keys.get(w.single_key)
            if ws is not None and w in ws:
                ws.remove(w)
                if not ws:
                    del self.keys[w.single_key]
            return
        if w in self.whole:
            self.whole.remove(w)
        elif w in self.ranges:
            self.ranges.remove(w)


class Watcher:
    """One watch: a key range, a start revision, filters and a buffer of events.

    Consumers call `take()` when `on_ready` fires (it fires once per batch
    of new events and on cancellation; `take()` re-arms it).
    """

    __slots__ = (
        "id",
        "key",
        "range_end",
        "start",
        "end",
        "single_key",
        "prev_kv",
        "no_put",
        "no_delete",
        "progress_notify",
        "fragment",
        "min_revision",
        "buffer",
        "cursor",
        "synced",
        "canceled",
        "compact_revision",
        "cancel_reason",
        "on_ready",
        "notified",
        "partitions",
        "spanning",
        "hub",
    )

    def __init__(
        self,
        hub: "WatchHub",
        watch_id: int,
        key: bytes,
        range_end: bytes,
        start: bytes,
        end: Optional[bytes],
        *,
        prev_kv: bool,
        no_put: bool,
        no_delete: bool,
        progress_notify: bool,
        fragment: bool,
    ) -> None:
        self.hub = hub
        self.id = watch_id
        self.key = key
        self.range_end = range_end
        self.start = start
        self.end = end
        self.single_key: Optional[bytes] = key if not range_end else None
        self.prev_kv = prev_kv
        self.no_put = no_put
        self.no_delete = no_delete
        self.progress_notify = progress_notify
        self.fragment = fragment
        self.min_revision = 0
        self.buffer: List[Event] = []
        self.cursor = 0
        self.synced = False
        self.canceled = False
        self.compact_revision = 0
        self.cancel_reason = ""
        self.on_ready: Optional[Callable[[], None]] = None
        self.notified = False
        self.partitions: List[Partition] = []
        self.spanning = False

    def __repr__(self) -> str:
        state = "canceled" if self.canceled else ("synced" if self.synced else "unsynced")
        return (
            f"<Watcher id={self.id} [{self.start!r}, {self.end!r}) {state} "
            f"buffered={len(self.buffer)} cursor={self.cursor}>"
        )

    def covers_partition(self, p: Partition) -> bool:
        """True when every key the partition can hold is inside this watcher's range."""
        if self.end is not None:
            if not p.prefix:
                return False
            from .kv import prefix_end

            return self.start <= p.prefix and prefix_end(p.prefix) <= self.end
        return self.start <= (p.prefix or b"\x00")

    def matches(self, key: bytes) -> bool:
        return self.start <= key and (self.end is None or key < self.end)

    # -- consumer side -------------------------------------------------------

    def take(self, max_events: int = 0) -> List[Event]:
        """Events ready for delivery, oldest first, never splitting a revision.

        Applies the NOPUT/NODELETE filters. `max_events` (0: no limit) bounds
        the batch at a revision boundary; call again while `has_ready()`.
        """
        self.notified = False
        if self.canceled:
            return []
        hub = self.hub
        frontier = hub.store.publish_revision
        if not self.synced:
            out = hub.catch_up(self, frontier, max_events or CATCH_UP_BATCH)
        else:
            buf = self.buffer
            if not buf:
                return []
            n = len(buf)
            if buf[-1][0][MOD_REVISION] > frontier:
                n = 0
                while n < len(buf) and buf[n][0][MOD_REVISION] <= frontier:
                    n += 1
            if max_events and n > max_events:
                last = buf[max_events - 1][0][MOD_REVISION]
                n = max_events
                while n < len(buf) and buf[n][0][MOD_REVISION] == last:
                    n += 1
            if n == len(buf):
                out = buf
                self.buffer = []
            else:
                out = buf[:n]
                del buf[:n]
        if self.min_revision:
            out = [ev for ev in out if ev[0][MOD_REVISION] >= self.min_revision]
            if not self.buffer and self.synced and hub.store.revision >= self.min_revision:
                self.min_revision = 0
        if self.no_put:
            out = [ev for ev in out if ev[0][VERSION] == 0]
        if self.no_delete:
            out = [ev for ev in out if ev[0][VERSION] != 0]
        return out

    def has_ready(self) -> bool:
        """True when `take()` would return events now (or the watcher was cancelled)."""
        if self.canceled:
            return True
        if not self.synced:
            return True
        buf = self.buffer
        return bool(buf) and buf[0][0][MOD_REVISION] <= self.hub.store.publish_revision

    def progress_revision(self) -> Optional[int]:
        """The revision up to which this watcher has been sent everything, if it is caught up.

        None while it still has events to take. A progress notification with
        this revision is a valid bookmark.
        """
        if self.canceled or not self.synced:
            return None
        frontier = self.hub.store.publish_revision
        buf = self.buffer
        if buf and buf[0][0][MOD_REVISION] <= frontier:
            return None
        return frontier

    def cancel(self) -> None:
        """Stop the watch; it gets no further events."""
        self.hub.cancel(self)


class WatchHub:
    """All watchers of one store, their groups, and the slow-watcher policy."""

    def __init__(self, store: "Store", max_buffer: int = 100_000) -> None:
        self.store = store
        self.max_buffer = max_buffer
        self.watchers: Dict[int, Watcher] = {}
        self.unsynced: Dict[int, Watcher] = {}
        self.spanning: List[Watcher] = []
        # Watchers whose on_ready is owed once events become publishable.
        self.pending: List[Watcher] = []
        # Watchers whose buffer overflowed during the current dispatch.
        self.slow: List[Watcher] = []
        self.next_id = 1
        self.slow_watchers_total = 0
        self.events_total = 0

    def __len__(self) -> int:
        return len(self.watchers)

    # -- registration -----------------------------------------------------------

    def create(
        self,
        partitions: List[Partition],
        spanning: bool,
        key: bytes,
        range_end: bytes,
        start: bytes,
        end: Optional[bytes],
        start_revision: int,
        *,
        watch_id: int = 0,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> Watcher:
        if watch_id <= 0:
            while self.next_id in self.watchers:
                self.next_id += 1
            watch_id = self.next_id
            self.next_id += 1
        w = Watcher(
            self,
            watch_id,
            key,
            range_end,
            start,
            end,
            prev_kv=prev_kv,
            no_put=no_put,
            no_delete=no_delete,
            progress_notify=progress_notify,
            fragment=fragment,
        )
        w.partitions = partitions
        w.spanning = spanning
        self.watchers[watch_id] = w
        if spanning:
            self.spanning.append(w)
        current = self.store.revision
        if start_revision <= 0 or start_revision > current:
            # etcd: a watch from now or from the future starts synced and
            # skips events below its start revision.
            if start_revision > current:
                w.min_revision = start_revision
            self._join_groups(w)
        else:
            w.cursor = start_revision
            self.unsynced[w.id] = w
        return w

    def cancel(self, w: Watcher) -> None:
        if w.canceled:
            return
        w.canceled = True
        self.watchers.pop(w.id, None)
        self.unsynced.pop(w.id, None)
        if w.synced:
            self._leave_groups(w)
        if w.spanning and w in self.spanning:
            self.spanning.remove(w)
        w.buffer = []

    def _cancel_compacted(self, w: Watcher, floor: int) -> None:
        self.cancel(w)
        w.compact_revision = floor
        w.cancel_reason = "etcdserver: mvcc: required revision has been compacted"
        self._wake(w)

    def partition_created(self, p: Partition) -> None:
        """Register spanning watchers whose range reaches a new partition."""
        from .kv import prefix_end

        pe = prefix_end(p.prefix)
        for w in self.spanning:
            if w.start < pe and (w.end is None or p.prefix < w.end):
                w.partitions.append(p)
                if w.synced:
                    self._group(p).add(w, p)

    def _group(self, p: Partition) -> WatcherGroup:
        g = p.watchers
        if g is None:
            g = p.watchers = WatcherGroup()
        return g  # type: ignore[return-value]

    def _join_groups(self, w: Watcher) -> None:
        for p in w.partitions:
            self._group(p).add(w, p)
        w.synced = True
        self.unsynced.pop(w.id, None)

    def _leave_groups(self, w: Watcher) -> None:
        for p in w.partitions:
            g = p.watchers
            if g is not None:
                g.remove(w)  # type: ignore[attr-defined]
                if not g:
                    p.watchers = None
        w.synced = False

    # -- write side ---------------------------------------------------------------

    def dispatch(self, group: WatcherGroup, event: Event) -> None:
        """Push one committed event to the synced watchers of its partition."""
        self.events_total += 1
        for w in group.whole:
            self._push(w, event)
        if group.ranges:
            key = event[0][KEY]
            for w in group.ranges:
                if w.start <= key and (w.end is None or key < w.end):
                    self._push(w, event)
        if group.keys:
            ws = group.keys.get(event[0][KEY])
            if ws:
                for w in ws:
                    self._push(w, event)
        if self.slow:
            # Demote after the loops: leaving a group mid-iteration would skip a watcher.
            slow, self.slow = self.slow, []
            for w in slow:
                if w.synced:
                    self._demote(w)

    def _push(self, w: Watcher, event: Event) -> None:
        buf = w.buffer
        buf.append(event)
        if len(buf) > self.max_buffer:
            self.slow.append(w)
        elif not w.notified:
            w.notified = True
            self.pending.append(w)

    def _demote(self, w: Watcher) -> None:
        """A slow consumer: drop its buffer and let it catch up from history."""
        self.slow_watchers_total += 1
        w.cursor = w.buffer[0][0][MOD_REVISION]
        w.buffer = []
        self._leave_groups(w)
        self.unsynced[w.id] = w
        if not w.notified:
            w.notified = True
            self.pending.append(w)

    def notify(self) -> None:
        """Fire on_ready for watchers that now have deliverable events."""
        if not self.pending:
            return
        frontier = self.store.publish_revision
        pending = self.pending
        self.pending = []
        for w in pending:
            if w.canceled and not w.compact_revision:
                continue
            if w.synced and w.buffer and w.buffer[0][0][MOD_REVISION] > frontier:
                self.pending.append(w)  # held back until the fsync lands
                continue
            cb = w.on_ready
            if cb is not None:
                cb()

    def _wake(self, w: Watcher) -> None:
        if not w.notified:
            w.notified = True
            self.pending.append(w)

    def wake_unsynced(self) -> None:
        """Owe on_ready to every unsynced watcher (they have history to read)."""
        for w in self.unsynced.values():
            self._wake(w)

    def check_compacted(self) -> None:
        """Cancel unsynced watchers whose cursor fell below their partitions' floors."""
        for w in list(self.unsynced.values()):
            floor = max((p.floor for p in w.partitions), default=0)
            if w.cursor < floor:
                self._cancel_compacted(w, floor)

    # -- catch-up -------------------------------------------------------------------

    def catch_up(self, w: Watcher, frontier: int, limit: int) -> List[Event]:
        """Read an unsynced watcher's events from history; rejoin when caught up."""
        floor = max((p.floor for p in w.partitions), default=0)
        if w.cursor < floor:
            self._cancel_compacted(w, floor)
            return []
        streams: List[Iterable[Event]] = []
        for p in w.partitions:
            i = p.first_event_at_or_after(w.cursor)
            if i < len(p.events):
                streams.append(islice(p.events, i, None))
        merged: Iterator[Event]
        if not streams:
            merged = iter(())
        elif len(streams) == 1:
            merged = iter(streams[0])
        else:
            # Events of one revision in several partitions interleave in the op order the txn wrote them.
            order = self.store.write_order
            empty: Dict[bytes, int] = {}

            def position(ev: Event) -> Tuple[int, int]:
                rev = ev[0][MOD_REVISION]
                return rev, order.get(rev, empty).get(ev[0][KEY], 0)

            merged = heapq.merge(*streams, key=position)
        out: List[Event] = []
        held: List[Event] = []
        single = w.single_key
        start, end = w.start, w.end
        last_rev = 0
        exhausted = True
        for ev in merged:
            rev = ev[0][MOD_REVISION]
            if len(out) >= limit and rev != last_rev and not held:
                w.cursor = rev
                exhausted = False
                break
            key = ev[0][KEY]
            if single is not None:
                if key != single:
                    continue
            elif not (start <= key and (end is None or key < end)):
                continue
            if rev > frontier:
                held.append(ev)
            else:
                out.append(ev)
                last_rev = rev
        if exhausted:
            # Nothing is written between this read and the join: one thread.
            self._join_groups(w)
            w.buffer = held
            if held:
                self._wake(w)
        return out
