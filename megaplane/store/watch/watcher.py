"""One watch: its key range, start revision, filters, and the buffer of events it is owed.

The consumer side of the watch layer (`megaplane.store.watch`): `take`,
`has_ready`, `progress_revision`, `cancel`. Which events reach the buffer,
and when a watcher is synced or catching up, is the hub's business
(`megaplane.store.watch.hub`); a watcher sees its hub only through
`WatcherOwner`.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Protocol

from ..keyspace import Partition
from ..kv import MOD_REVISION, VERSION, Event, prefix_end

__all__ = ["Watcher", "WatcherOwner", "CATCH_UP_BATCH"]

# A take() that catches up from history returns at most this many events, so
# one far-behind watcher cannot hold the event loop for long.
CATCH_UP_BATCH = 10_000


class WatcherOwner(Protocol):
    """What a watcher needs from its hub."""

    @property
    def revision(self) -> int:
        """The store's current revision."""

    @property
    def publish_revision(self) -> int:
        """The newest revision whose events may be handed out (see Store.publish_revision)."""

    def catch_up(self, w: "Watcher", frontier: int, limit: int) -> List[Event]:
        """Events of an unsynced watcher from history, up to `frontier`; rejoins when caught up."""

    def cancel(self, w: "Watcher") -> None:
        """Stop the watcher; it gets no further events."""


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
        hub: "WatcherOwner",
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
        frontier = hub.publish_revision
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
            if not self.buffer and self.synced and hub.revision >= self.min_revision:
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
        return bool(buf) and buf[0][0][MOD_REVISION] <= self.hub.publish_revision

    def progress_revision(self) -> Optional[int]:
        """The revision up to which this watcher has been sent everything, if it is caught up.

        None while it still has events to take. A progress notification with
        this revision is a valid bookmark.
        """
        if self.canceled or not self.synced:
            return None
        frontier = self.hub.publish_revision
        buf = self.buffer
        if buf and buf[0][0][MOD_REVISION] <= frontier:
            return None
        return frontier

    def cancel(self) -> None:
        """Stop the watch; it gets no further events."""
        self.hub.cancel(self)
