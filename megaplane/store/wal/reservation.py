"""Revision reservations: no revision is handed out twice, whatever a crash loses.

The problem. The store's revision is one global counter, and it lives in
memory. After a kill -9 in WAL mode ``buffered``, replay gives back the
history up to some revision R, while clients may already hold
resourceVersions above R (the writes after R were acknowledged, then
lost). In mode ``fsync`` nothing acknowledged is lost, but writes that were
still waiting for their fsync had revisions too, and a read may have shown
them. Partitions in mode ``none`` are not logged at all, yet their writes
take revisions from the same counter. If the store simply went on from R,
it would give those revisions to new writes, and a client resuming a watch
or comparing resourceVersions would silently miss events.

The remedy: a ceiling persisted ahead of use. The file ``<data-dir>/revision``
states "every revision handed out so far is <= N". It is written
atomically (temp file, fsync, rename, fsync of the directory) *before* any
revision above the previous ceiling is used, so after any crash the file's
N bounds what clients can hold. Reservations come in large blocks, so the
fsync is rare and never on the path of a normal write:

- at open, one synchronous reservation of ``revision + min_step``;
- when half of the current block is used, the next block is reserved in
  the background, on the WAL flusher thread; the block is sized to the
  write rate (``max(min_step, writes/s * lead_seconds)``), so at any rate
  a reservation lands well before it is needed;
- a writer blocks only if it would pass a ceiling that is not yet on
  disk (a burst faster than the block ahead of it);
- at a clean close, after the WAL is written out, the file records the
  exact last revision and marks itself clean.

The store thread checks one integer per commit (`Writer.revision_limit`);
everything else runs only when that limit is passed.

How a restart uses it is `megaplane.store.wal.recovery.resume`: the store
continues at ``N + 2``, and if the last run did not close cleanly every
revision below that is compacted, so a read or watch from a revision in
the lost range fails as compacted (410 Expired at the API) and the client
relists. Why ``N + 2`` and not ``N + 1``: a client holding revision N
resumes its watch at N + 1 (kube-apiserver watches etcd from RV + 1), and
that start must fall below the compaction floor too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from .fileutil import PRIVATE_FILE_MODE

__all__ = [
    "FILE_NAME",
    "ReservationRecord",
    "ReservationError",
    "RevisionReservation",
    "Flusher",
    "read_record",
    "write_record",
]

FILE_NAME = "revision"
_FORMAT = 1


class ReservationError(Exception):
    """The revision reservation file exists but cannot be read or parsed.

    The store refuses to start rather than guess: without the ceiling it
    could hand out revisions clients already hold.
    """


@dataclass(frozen=True)
class ReservationRecord:
    """The content of the reservation file."""

    #: Every revision the store has handed out is <= this.
    revision: int
    #: Written at a clean close: `revision` is exact and the WAL holds every logged write.
    clean: bool = False
    #: Which partitions the store logged (`StoreConfig.logging_rules`); a clean close only counts
    #: when the next run logs the same partitions.
    modes: str = ""


def read_record(data_dir: str) -> Optional[ReservationRecord]:
    """The data dir's reservation, or None if it has none (a new data dir, or a restored snapshot)."""
    path = os.path.join(data_dir, FILE_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReservationError(f"cannot read revision reservation {path}: {exc.strerror}") from None
    try:
        doc = json.loads(raw)
        if doc.get("format") != _FORMAT:
            raise ValueError(f"unknown format {doc.get('format')!r}")
        revision = doc["revision"]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise ValueError(f"revision {revision!r} is not a non-negative integer")
        return ReservationRecord(revision, bool(doc.get("clean", False)), str(doc.get("modes", "")))
    except (ValueError, KeyError, AttributeError) as exc:
        raise ReservationError(f"revision reservation {path} is corrupt: {exc}") from None


def write_record(data_dir: str, record: ReservationRecord) -> None:
    """Replace the reservation file atomically and durably (temp file, fsync, rename, fsync dir)."""
    path = os.path.join(data_dir, FILE_NAME)
    tmp = path + ".part"
    doc = {"format": _FORMAT, "revision": record.revision, "clean": record.clean, "modes": record.modes}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        data = json.dumps(doc).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Flusher(Protocol):
    """The background writer reservations ride on (`megaplane.store.wal.log.WriteAheadLog`)."""

    #: Set once the flusher thread died of an I/O error; it runs nothing after that.
    failed: Optional[BaseException]

    def run_in_flusher(self, job: Callable[[], None]) -> None:
        """Run `job` on the flusher thread, after the work already queued."""


class RevisionReservation:
    """The revision ceiling of one data dir, kept ahead of the store's revision.

    `begin`, `reach` and `close` run on the store's thread; the background
    writes run on the WAL flusher thread, which only raises `reserved`,
    under the condition.
    """

    def __init__(
        self,
        data_dir: str,
        flusher: Flusher,
        *,
        modes: str = "",
        min_step: int = 100_000,
        lead_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_step < 1:
            raise ValueError(f"revision reservation step must be at least 1, not {min_step}")
        self.data_dir = data_dir
        self.modes = modes
        self.min_step = min_step
        self.lead_seconds = lead_seconds
        self._flusher = flusher
        self._clock = clock
        self._cond = threading.Condition()
        #: The ceiling on disk: no revision above it may be handed out yet.
        self.reserved = 0
        # The ceiling of the reservation being written in the background (0: none).
        self._target = 0
        # Request the next block once a commit passes reserved - _headroom.
        self._headroom = min_step // 2
        # (time, revision) of the last request, for the write rate.
        self._mark = (0.0, 0)
        self.failed: Optional[BaseException] = None
        #: Reservations written (figures for /metrics).
        self.reservations_total = 0
        #: Commits that had to wait for a reservation to reach the disk.
        self.waits_total = 0

    def __repr__(self) -> str:
        return f"<RevisionReservation reserved={self.reserved} pending={self._target or None}>"

    # -- store thread ----------------------------------------------------------------

    def begin(self, revision: int) -> int:
        """Reserve the first block above `revision`, synchronously; returns the writer's limit."""
        ceiling = revision + self.min_step
        write_record(self.data_dir, ReservationRecord(ceiling, False, self.modes))
        self.reservations_total += 1
        self.reserved = ceiling
        self._headroom = self.min_step // 2
        self._mark = (self._clock(), revision)
        return self._limit()

    def reach(self, revision: int) -> int:
        """A commit at `revision` passed the writer's limit: reserve ahead, wait only past the ceiling.

        Returns the next limit: the revision past which `reach` must be called again.
        """
        if self._target and self.reserved >= self._target:
            self._target = 0
        if not self._target and revision > self.reserved - self._headroom:
            self._request(revision)
        if revision > self.reserved:
            self._wait(revision)
        return self._limit()

    def _limit(self) -> int:
        # While a block is on its way, look again when the ceiling on disk is passed (to wait, or to
        # see that the block landed); otherwise when half of the current block is used.
        if self._target:
            return self.reserved
        return self.reserved - self._headroom

    def _request(self, revision: int) -> None:
        now = self._clock()
        then, at = self._mark
        rate = (revision - at) / max(now - then, 1e-3)
        step = max(self.min_step, int(rate * self.lead_seconds))
        self._mark = (now, revision)
        target = max(revision, self.reserved) + step
        self._target = target
        self._headroom = step // 2
        self._flusher.run_in_flusher(lambda: self._write_background(target))

    def _wait(self, revision: int) -> None:
        self.waits_total += 1
        with self._cond:
            while self.reserved < revision:
                failed = self.failed or self._flusher.failed
                if failed is not None:
                    raise failed
                # A timeout, because a flusher that died of an earlier job never runs ours.
                self._cond.wait(0.5)
        if self._target and self.reserved >= self._target:
            self._target = 0

    # -- background thread -------------------------------------------------------------

    def _write_background(self, ceiling: int) -> None:
        try:
            write_record(self.data_dir, ReservationRecord(ceiling, False, self.modes))
        except BaseException as exc:
            with self._cond:
                self.failed = exc
                self._cond.notify_all()
            raise
        with self._cond:
            self.reservations_total += 1
            if ceiling > self.reserved:
                self.reserved = ceiling
            self._cond.notify_all()

    # -- clean close ---------------------------------------------------------------------

    def close(self, revision: int) -> None:
        """After the WAL is written out and closed: record the exact last revision, clean."""
        write_record(self.data_dir, ReservationRecord(revision, True, self.modes))
        self.reservations_total += 1
