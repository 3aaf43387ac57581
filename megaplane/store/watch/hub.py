"""The watch hub: delivering each revision's events to every watcher whose range covers them.

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
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Protocol, Tuple

from ..keyspace import Partition
from ..kv import KEY, MOD_REVISION, Event, prefix_end
from .groups import WatcherGroup
from .watcher import Watcher

__all__ = ["WatchHub", "HistorySource"]


class HistorySource(Protocol):
    """What the hub needs from the store: its revisions, and how one revision's writes interleave.

    The history itself is in the partitions each watcher covers.
    """

    @property
    def revision(self) -> int:
        """The revision of the last committed write."""

    @property
    def publish_revision(self) -> int:
        """The newest revision whose events may be handed to watchers."""

    @property
    def write_order(self) -> Mapping[int, Mapping[bytes, int]]:
        """For revisions that wrote to several partitions: key -> op index in the txn."""


class WatchHub:
    """All watchers of one store, their groups, and the slow-watcher policy."""

    def __init__(self, source: HistorySource, max_buffer: int = 100_000) -> None:
        self.source = source
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

    @property
    def revision(self) -> int:
        return self.source.revision

    @property
    def publish_revision(self) -> int:
        return self.source.publish_revision

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
        current = self.source.revision
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
        self.wake(w)

    def partition_created(self, p: Partition) -> None:
        """Register spanning watchers whose range reaches a new partition."""
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
        frontier = self.source.publish_revision
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

    def wake(self, w: Watcher) -> None:
        """Owe `w` an on_ready call at the next `notify`."""
        if not w.notified:
            w.notified = True
            self.pending.append(w)

    def wake_unsynced(self) -> None:
        """Owe on_ready to every unsynced watcher (they have history to read)."""
        for w in self.unsynced.values():
            self.wake(w)

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
            order = self.source.write_order
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
                self.wake(w)
        return out
