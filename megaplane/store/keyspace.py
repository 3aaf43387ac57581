"""The keyspace: its partitions, found by key or range, and what each one holds.

`Keyspace` is the set of partitions of one store: it finds the partition of
a key, creates partitions on first use, and lists the partitions a key
range crosses. It only reads and creates; every change to a record goes
through `megaplane.store.writer`.

A partition holds every key under one kind prefix (``/registry/pods/``) or,
for the default partition, every key outside a kind prefix. It owns:

- ``kvs``: key -> current record (O(1) get/put);
- ``index``: the live keys in sorted order, for ranges and pagination;
- ``events``: the history window, every event since the partition's floor,
  in revision order. It serves watches from an old revision and reads at an
  old revision, and it is the only place deleted keys are remembered.

Reading at an old revision, a worked example. Keys a, b; history::

    rev 5  put a=1           events: ((a,..5..), None)
    rev 6  put a=2                   ((a,..6..), (a,..5..))
    rev 7  delete b                  ((b,0,7,0,"",0), (b,..3..))

Range [a, c) at revision 5: walk the events after 5 and keep, per key, the
*first* prev_kv seen - that is the key's state at 5: a -> (a,..5..),
b -> (b,..3..). Keys not in that overlay are unchanged since 5 and are read
from ``kvs``. b is no longer live, so it comes from the overlay, merged into
key order. Cost: O(events since 5 + keys in range).

A paged list reads many pages at the same old revision (the continue token
pins it), so the overlay of that revision is kept (`RevisionOverlay`, a few
revisions per partition) and only caught up with the events appended since
the previous page: a page then costs O(new events + keys created or deleted
since the revision + page), not O(events since the revision). At a million
Nodes patched ~1,700 times a second, rebuilding it per page of 500 made a
full paged LIST of the Nodes take longer than the history window (the
bench's 1M-node run: 78 % of the API server's core rebuilding overlays).

Compaction to revision C drops events below C; the floor rises to C and
reads below it fail with etcd's "required revision has been compacted".
Once its delete event is dropped, a deleted key is gone for good.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from itertools import islice
from typing import Callable, Dict, Iterator, List, Optional, Protocol, Tuple

from sortedcontainers import SortedList

from .kv import KEY, MOD_REVISION, Event, KeyValue, normalize_range, partition_prefix, prefix_end

__all__ = ["KeyIndex", "Partition", "Keyspace", "LogBuffer"]


def _event_revision(event: Event) -> int:
    return event[0][MOD_REVISION]


class LogBuffer(Protocol):
    """A partition's WAL stream as the write path sees it (`megaplane.store.wal.WalStream`)."""

    #: Encoded records not yet handed to the flusher.
    buf: bytearray
    #: True once the stream is on the WAL's dirty list.
    dirty: bool


class KeyIndex:
    """The live keys of a partition in sorted order.

    Additions and removals are queued in two sets and applied when an
    ordered read needs them, so a put of a new key costs a set insert, not a
    sorted insert (~2 us at 1M keys). The store inlines `add`/`discard` on
    its hot path; these methods are the reference for what it does.
    """

    __slots__ = ("_sorted", "added", "removed")

    def __init__(self) -> None:
        self._sorted: SortedList = SortedList()
        self.added: set[bytes] = set()
        self.removed: set[bytes] = set()

    def add(self, key: bytes) -> None:
        """Record that `key` became live."""
        if key in self.removed:
            self.removed.discard(key)
        else:
            self.added.add(key)

    def discard(self, key: bytes) -> None:
        """Record that `key` stopped being live."""
        if key in self.added:
            self.added.discard(key)
        else:
            self.removed.add(key)

    def settle(self) -> SortedList:
        """Apply queued changes and return the sorted list of live keys."""
        s = self._sorted
        if self.removed:
            removed = self.removed
            if len(removed) * 8 > len(s):
                self._sorted = s = SortedList(k for k in s if k not in removed)
            else:
                for k in removed:
                    s.remove(k)
            self.removed = set()
        if self.added:
            s.update(self.added)
            self.added = set()
        return s

    def irange(self, start: bytes, end: Optional[bytes]) -> Iterator[bytes]:
        """Live keys k with start <= k < end, in order."""
        return self.settle().irange(start, end, inclusive=(True, False))  # type: ignore[no-any-return]

    def count(self, start: bytes, end: Optional[bytes]) -> int:
        """How many live keys lie in [start, end)."""
        s = self.settle()
        hi = len(s) if end is None else s.bisect_left(end)
        return max(0, hi - s.bisect_left(start))

    def __len__(self) -> int:
        return len(self._sorted) + len(self.added) - len(self.removed)


class Partition:
    """Records, key order and history of one kind prefix.

    Mutated only by the store's write path (`megaplane.store.writer`), which
    inlines the bookkeeping for speed; the read methods here take the
    revision and range already validated by the store.
    """

    __slots__ = (
        "prefix",
        "kvs",
        "index",
        "events",
        "floor",
        "max_events",
        "wal",
        "wal_mode",
        "watchers",
        "fsync",
        "_overlays",
    )

    def __init__(self, prefix: bytes, max_events: int) -> None:
        self.prefix = prefix
        self.kvs: Dict[bytes, KeyValue] = {}
        self.index = KeyIndex()
        self.events: List[Event] = []
        # Reads and watches below `floor` fail as compacted.
        self.floor = 0
        self.max_events = max_events
        # Set by the store: the partition's WAL stream (None: not logged).
        self.wal: Optional[LogBuffer] = None
        self.wal_mode = "none"
        self.fsync = False
        # Set by the watch hub while any watcher covers this partition.
        self.watchers: object = None
        # Overlays of the last revisions read in the past, oldest first.
        self._overlays: Dict[int, RevisionOverlay] = {}

    def __repr__(self) -> str:
        return (
            f"<Partition {self.prefix!r} keys={len(self.kvs)} "
            f"events={len(self.events)} floor={self.floor} wal={self.wal_mode}>"
        )

    # -- history window ----------------------------------------------------

    def trim(self) -> None:
        """Drop the oldest events beyond max_events, at a revision boundary."""
        events = self.events
        n = len(events) - self.max_events
        if n <= 0:
            return
        boundary = events[n][0][MOD_REVISION]
        # Never split one revision's events: a txn is kept or dropped whole. (A bisection, not a walk back:
        # a DeleteRange of a million keys is one revision, and it calls this once per key.)
        n = bisect_left(events, boundary, 0, n, key=_event_revision)
        if n == 0:
            return
        del events[:n]
        if boundary > self.floor:
            self.floor = boundary

    def compact(self, revision: int) -> None:
        """Drop events below `revision`; reads below it fail from now on."""
        events = self.events
        n = bisect_left(events, revision, key=_event_revision)
        if n:
            del events[:n]
        if revision > self.floor:
            self.floor = revision

    def first_event_at_or_after(self, revision: int) -> int:
        """Index in `events` of the first event with mod_revision >= revision."""
        return bisect_left(self.events, revision, key=_event_revision)

    # -- reads at an old revision -------------------------------------------

    def revision_overlay(self, revision: int) -> "RevisionOverlay":
        """The overlay of `revision` (inside the window), caught up with every event so far."""
        overlays = self._overlays
        overlay = overlays.get(revision)
        if overlay is None:
            for old in [r for r in overlays if r < self.floor]:
                del overlays[old]
            if len(overlays) >= _OVERLAYS_KEPT:
                del overlays[next(iter(overlays))]
            overlay = overlays[revision] = RevisionOverlay(revision)
        overlay.catch_up(self.events, self.kvs)
        return overlay

    def get_at(self, key: bytes, revision: int) -> Optional[KeyValue]:
        """The record of `key` as of `revision` (revision inside the window)."""
        events = self.events
        i = bisect_right(events, revision, key=_event_revision)
        for kv, prev in islice(events, i, None):
            if kv[KEY] == key:
                return prev
        return self.kvs.get(key)

    def iter_range(
        self, start: bytes, end: Optional[bytes], revision: int, current: int
    ) -> Tuple[Iterator[KeyValue], int]:
        """Records in [start, end) as of `revision`, in key order, and their count.

        `current` is the store's revision: at it no overlay is needed.
        """
        kvs = self.kvs
        if revision >= current or not self.events or revision >= self.events[-1][0][MOD_REVISION]:
            count = self.index.count(start, end)
            return (kvs[k] for k in self.index.irange(start, end)), count
        overlay = self.revision_overlay(revision)
        prev = overlay.prev
        count = self.index.count(start, end)
        extra: List[KeyValue] = []
        for k, d in overlay.delta.items():
            if start <= k and (end is None or k < end):
                count += d
                if d > 0:
                    old = prev[k]
                    assert old is not None
                    extra.append(old)
        extra.sort()

        def live_then() -> Iterator[KeyValue]:
            get = prev.get
            for k in self.index.irange(start, end):
                if k in prev:
                    old = get(k)
                    if old is not None:
                        yield old
                else:
                    yield kvs[k]

        if not extra:
            return live_then(), count
        return heapq.merge(live_then(), extra, key=_record_key), count


#: Past revisions whose overlay a partition keeps (concurrent paged lists each pin one).
_OVERLAYS_KEPT = 4


class RevisionOverlay:
    """The state at one past revision of every key changed after it, kept up to date across pages.

    `prev`: key -> its record at `revision` (None: absent then) for every key with an event after it; the
    first event after `revision` of a key carries that state, and later events never change it, so catching
    up only adds keys. `delta`: key -> (existed at `revision`) - (exists now), for the keys where that is
    not 0 (created or deleted since): the count correction, and the deleted records a range merges back."""

    __slots__ = ("revision", "upto", "prev", "delta")

    def __init__(self, revision: int) -> None:
        self.revision = revision
        #: Events up to this revision are in `prev` and `delta`.
        self.upto = revision
        self.prev: Dict[bytes, Optional[KeyValue]] = {}
        self.delta: Dict[bytes, int] = {}

    def catch_up(self, events: List[Event], kvs: Dict[bytes, KeyValue]) -> None:
        if not events or events[-1][0][MOD_REVISION] <= self.upto:
            return
        # A revision's events are appended together (one txn at a time), so whole revisions are taken.
        i = bisect_right(events, self.upto, key=_event_revision)
        setdefault, delta = self.prev.setdefault, self.delta
        for kv, old in islice(events, i, None):
            key = kv[KEY]
            d = (setdefault(key, old) is not None) - (key in kvs)
            if d:
                delta[key] = d
            else:
                delta.pop(key, None)
        self.upto = events[-1][0][MOD_REVISION]


_record_key: Callable[[KeyValue], bytes] = lambda kv: kv[KEY]  # noqa: E731


class Keyspace:
    """Every partition of one store, and the compaction floor they share.

    `on_created` hooks run for each new partition (the writer attaches its
    WAL stream, the watch hub registers spanning watchers), so the keyspace
    knows neither.
    """

    def __init__(self, max_events: int, mode_for: Callable[[bytes], str]) -> None:
        self.max_events = max_events
        self.mode_for = mode_for
        #: prefix -> partition; the store's hot paths read this dict directly.
        self.partitions: Dict[bytes, Partition] = {}
        # Sorted kind prefixes, for finding the partitions a range crosses.
        self.kind_prefixes: List[bytes] = []
        #: The revision of the last Compact; reads and watches below it fail.
        self.compact_revision = 0
        #: The revision the store restarted at: partitions in WAL mode none start empty there, so
        #: reads and watches of them below it fail as compacted (`Writer.resume_at`).
        self.unlogged_floor = 0
        self.on_created: List[Callable[[Partition], None]] = []

    def __len__(self) -> int:
        return len(self.partitions)

    def get(self, key: bytes) -> Optional[KeyValue]:
        """The current record of one key, or None."""
        p = self.partitions.get(partition_prefix(key))
        if p is None:
            return None
        return p.kvs.get(key)

    def partition(self, prefix: bytes) -> Partition:
        """The partition with this prefix, created if needed."""
        p = self.partitions.get(prefix)
        if p is None:
            p = Partition(prefix, self.max_events)
            self.partitions[prefix] = p
            if prefix:
                insort(self.kind_prefixes, prefix)
            p.wal_mode = self.mode_for(prefix)
            p.fsync = p.wal_mode == "fsync"
            p.floor = max(self.compact_revision, self.unlogged_floor) if p.wal_mode == "none" else self.compact_revision
            for hook in self.on_created:
                hook(p)
        return p

    def sorted_partitions(self) -> List[Partition]:
        return [self.partitions[p] for p in sorted(self.partitions)]

    def key_count(self) -> int:
        return sum(len(p.kvs) for p in self.partitions.values())

    def partitions_for(self, start: bytes, end: Optional[bytes]) -> Tuple[List[Partition], bool]:
        """The partitions a key range reaches, and whether it reaches more than one kind."""
        prefix = partition_prefix(start)
        if prefix and end is not None and end <= prefix_end(prefix):
            return [self.partition(prefix)], False
        out = [self.partition(b"")]
        kinds = self.kind_prefixes
        i = bisect_left(kinds, start)
        # A kind prefix sorting before `start` may still contain it.
        if i > 0 and start.startswith(kinds[i - 1]):
            i -= 1
        while i < len(kinds) and (end is None or kinds[i] < end):
            out.append(self.partitions[kinds[i]])
            i += 1
        return out, True

    def live_in_range(self, key: bytes, range_end: bytes) -> List[Tuple[Partition, KeyValue]]:
        """The live records in an etcd (key, range_end) range, in key order, with their partitions."""
        if not range_end:
            p = self.partitions.get(partition_prefix(key))
            if p is None:
                return []
            kv = p.kvs.get(key)
            return [(p, kv)] if kv is not None else []
        start, end = normalize_range(key, range_end)
        if end is not None and end <= start:
            return []
        parts, _ = self.partitions_for(start, end)
        out: List[Tuple[Partition, KeyValue]] = []
        for p in parts:
            if p.kvs:
                kvs = p.kvs
                out.extend((p, kvs[k]) for k in list(p.index.irange(start, end)))
        if len(parts) > 1:
            out.sort(key=lambda pk: pk[1][KEY])
        return out
