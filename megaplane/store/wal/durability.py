"""When logged writes reach the disk, who waits for them, and when checkpoints are taken.

The store's write path appends WAL records to per-partition buffers and
tells `Durability.committed`; this module decides when buffers are handed
to the WAL flusher (`megaplane.store.wal`), holds watch events of fsync
writes back until they are on disk, wakes whoever waits for an fsync, and
takes checkpoints. Bringing a store back after a restart is
`megaplane.store.wal.recovery`.

Two ways to drive it, one per kind of caller:

- **event loop** (`attach_loop`, servers): handoffs are scheduled on the
  loop (the next iteration for fsync writes, `wal_flush_interval` later for
  buffered ones) and `await store.durable(rev)` resolves from the loop;
- **synchronous** (no loop: tools, tests, benchmarks): buffers are handed
  off when they pass HANDOFF_BYTES, on `flush()` / `sync()`, and by
  `wait_durable(rev)`, which blocks.

Group commit is the same in both: while one cycle is being fsynced, the
next grows, and it is handed off the moment the disk is free.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import os
import threading
from typing import Deque, List, Optional, Protocol, Tuple

from . import snapshot
from .log import HANDOFF_BYTES, WriteAheadLog
from .reservation import RevisionReservation
from .snapshot import SnapshotSource

__all__ = ["Durability", "DurabilityView", "DurabilitySettings"]

log = logging.getLogger("megaplane.store.durability")


class DurabilitySettings(Protocol):
    """The tunables the policy reads (`megaplane.store.StoreConfig` has them)."""

    wal_flush_interval: float
    snapshot_count: int
    checkpoint_bytes: int


class DurabilityView(SnapshotSource, Protocol):
    """What the policy needs from the store's write path (`megaplane.store.writer.Writer`)."""

    def notify_watchers(self) -> None:
        """Hand watchers the events that an fsync just made publishable."""


class Durability:
    """The durability policy of one store with a data dir."""

    def __init__(
        self,
        view: DurabilityView,
        wal: WriteAheadLog,
        config: DurabilitySettings,
        data_dir: str,
        reservation: Optional[RevisionReservation] = None,
    ) -> None:
        self.view = view
        # Marked clean at close, once the WAL holds every logged write.
        self.reservation = reservation
        self.wal = wal
        self.config = config
        self.data_dir = data_dir
        # Revisions with fsync-mode writes not yet on disk, oldest first.
        self.fsync_revs: Deque[int] = collections.deque()
        self._waiters: List[Tuple[int, int, "asyncio.Future[None]"]] = []
        self._waiter_seq = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._flush_handle: Optional[asyncio.Handle] = None
        self._flush_soon = False
        self.logged_writes = 0
        self._wal_bytes_at_checkpoint = 0
        self._checkpoint_thread: Optional[threading.Thread] = None
        self.last_snapshot_size = 0
        self.checkpoints_total = 0
        wal.on_durable = self._on_durable_thread

    # -- the fsync frontier --------------------------------------------------------

    def frontier(self, revision: int) -> int:
        """The newest revision whose events may be published (see Store.publish_revision)."""
        d = self.fsync_revs
        if d:
            durable = self.wal.durable_revision
            while d and d[0] <= durable:
                d.popleft()
            if d:
                return d[0] - 1
        return revision

    def needs(self, rev: int) -> bool:
        """True when an fsync-mode write at or below `rev` is not yet on disk."""
        d = self.fsync_revs
        return bool(d) and self.frontier(self.view.revision) < rev and d[0] <= rev

    # -- store thread: after each write ------------------------------------------------

    def committed(self, rev: int, fsync: bool) -> None:
        if fsync:
            d = self.fsync_revs
            if not d or d[-1] != rev:
                d.append(rev)
        self.logged_writes += 1
        wal = self.wal
        if wal.dirty and sum(len(s.buf) for s in wal.dirty) > HANDOFF_BYTES:
            self.handoff()
            return
        loop = self.loop
        if loop is None:
            return
        if fsync:
            if not self._flush_soon:
                if self._flush_handle is not None:
                    self._flush_handle.cancel()
                self._flush_soon = True
                self._flush_handle = loop.call_soon(self._flush_callback)
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(self.config.wal_flush_interval, self._flush_callback)

    def _flush_callback(self) -> None:
        self._flush_handle = None
        self._flush_soon = False
        wal = self.wal
        if not wal.dirty:
            return
        # Group commit: while a cycle is being fsynced, let the next one grow;
        # `_durable_advanced` hands it off as soon as the disk is free.
        if wal.inflight >= 1 and self._fsync_dirty():
            return
        if wal.inflight >= 2:
            assert self.loop is not None
            self._flush_handle = self.loop.call_later(self.config.wal_flush_interval, self._flush_callback)
            return
        self.handoff()

    def _fsync_dirty(self) -> bool:
        return any(s.mode == "fsync" for s in self.wal.dirty)

    def handoff(self) -> None:
        """Queue all buffered records as one cycle (on the store's thread, between writes)."""
        self.wal.handoff(self.view.revision)
        self._maybe_checkpoint()

    def flush(self) -> None:
        if self.wal.dirty:
            self.handoff()

    def sync(self) -> None:
        """Write every buffered record and wait for it."""
        self.flush()
        self.wal.wait_inflight(0)

    # -- waiting for fsync ------------------------------------------------------------

    def wait(self, rev: int) -> None:
        """Block until fsync writes up to `rev` are on disk (synchronous callers).

        Hands off what is buffered if the disk is idle, waits for the cycle
        in flight otherwise, and repeats until `rev` is durable.
        """
        wal = self.wal
        while self.needs(rev):
            if wal.inflight == 0 and wal.dirty:
                self.handoff()
            wal.wait_progress(rev)
            self._durable_advanced(wal.durable_revision)

    async def wait_async(self, rev: int) -> None:
        if not self.needs(rev):
            return
        loop = self.loop or asyncio.get_running_loop()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._waiter_seq += 1
        heapq.heappush(self._waiters, (rev, self._waiter_seq, fut))
        await fut

    def _on_durable_thread(self, revision: int) -> None:
        """Called by the WAL flusher thread after each cycle."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._durable_advanced, revision)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _durable_advanced(self, revision: int) -> None:
        wal = self.wal
        if wal.failed is not None:
            waiters, self._waiters = self._waiters, []
            for _, _, fut in waiters:
                if not fut.done():
                    fut.set_exception(wal.failed)
            return
        frontier = self.frontier(self.view.revision)
        waiters = self._waiters
        while waiters and waiters[0][0] <= frontier:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)
        # Watchers held back behind this fsync are still in hub.pending.
        self.view.notify_watchers()
        if self.loop is not None and wal.dirty and wal.inflight == 0 and self._fsync_dirty():
            self.handoff()

    # -- drivers ------------------------------------------------------------------

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def wait_checkpoint(self) -> None:
        """Block until the checkpoint being written (if any) is on disk."""
        t = self._checkpoint_thread
        if t is not None:
            t.join()

    # -- checkpoints -------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        t = self._checkpoint_thread
        if t is not None:
            if t.is_alive():
                return
            self._checkpoint_thread = None
        cfg = self.config
        written = self.wal.bytes_written_total - self._wal_bytes_at_checkpoint
        due = cfg.snapshot_count and self.logged_writes >= cfg.snapshot_count
        if due or written >= max(cfg.checkpoint_bytes, 2 * self.last_snapshot_size):
            self.checkpoint(wait=False)

    def checkpoint(self, wait: bool = True) -> None:
        """Snapshot the logged partitions; then delete the WAL segments it covers."""
        wal = self.wal
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join()
        if wal.dirty:
            wal.handoff(self.view.revision)
        cycle = wal.cycle
        sealed = wal.rotate()
        view = snapshot.capture(self.view, logged_only=True, wal_cycle=cycle)
        self.logged_writes = 0
        self._wal_bytes_at_checkpoint = wal.bytes_written_total
        snap_dir = os.path.join(self.data_dir, "snap")

        def write() -> None:
            try:
                # The flusher writes every cycle <= `cycle` before it seals.
                sealed.wait()
                path = snapshot.write_checkpoint(snap_dir, view)
                self.last_snapshot_size = os.path.getsize(path)
                wal.delete_sealed()
                self.checkpoints_total += 1
            except Exception:  # the WAL still holds everything; try again next time
                log.exception("checkpoint failed; WAL segments kept")

        t = threading.Thread(target=write, name="megaplane-checkpoint", daemon=True)
        self._checkpoint_thread = t
        t.start()
        if wait:
            t.join()

    def close(self) -> None:
        if self._checkpoint_thread is not None:
            self._checkpoint_thread.join()
        wal = self.wal
        if wal.failed is None:
            self.flush()
            wal.wait_inflight(0)
        wal.close()
        # Only a log written out to the end makes the exact last revision a safe ceiling.
        if wal.failed is None and self.reservation is not None:
            self.reservation.close(self.view.revision)
