"""Write-ahead log: one stream of segment files per partition, a durability mode per stream.

Modes (``--wal-mode PREFIX=MODE``, ``--wal-default MODE``):

- ``none``: the partition is not logged; it starts empty after a restart.
- ``buffered``: records are acknowledged before they reach the disk and
  written within ``flush_interval``; a crash loses that tail only.
- ``fsync``: the write is acknowledged (`Store.wait_durable`) only after
  fdatasync. Many writers share one fsync (group commit).

How records move. The store's thread appends encoded records to each
stream's ``buf`` (no lock: only that thread touches it). A *handoff* swaps
every dirty buffer out at once - between two write transactions, so the
swapped bytes hold whole transactions up to the store's current revision -
and queues them as one numbered *cycle* for the flusher thread, which writes
one frame per stream, fsyncs if the cycle holds fsync data, and reports the
cycle's revision as durable.

Why cycles. A transaction may write to several partitions, and each
partition has its own file. After a crash, replay must give a state that
existed: a prefix of history. Every frame carries its cycle number and the
number of frames in the cycle; replay applies cycles 1, 2, ... while each is
complete in every file and stops at the first one that is not (a torn
frame, a missing file tail). Frames of later cycles are discarded, so what
is replayed is exactly the history up to the last complete cycle's
revision. When a cycle holds fsync data every file of the cycle is fsynced,
so a completed fsync cycle is complete after power loss too.

Frame layout (little endian)::

    magic "MPW1" | payload_len u32 | crc32 u32 | cycle u64 | revision u64 | frames u32 | payload

crc32 covers cycle, revision, frames and payload. Payload records::

    PUT     op=1 rev i64 lease i64 klen u32 vlen u32 key value
    DELETE  op=2 rev i64 klen u32 key
    GRANT   op=3 rev i64 id i64 ttl i64
    REVOKE  op=4 rev i64 id i64
    COMPACT op=5 rev i64 target i64

A segment starts with a header frame (cycle 0) naming its partition prefix.
Segments rotate at checkpoints: once a checkpoint snapshot covering cycles
<= c is on disk, the segments sealed at c are deleted.
"""

from __future__ import annotations

import bisect
import heapq
import json
import logging
import os
import queue
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .fileutil import PRIVATE_FILE_MODE, private_dir

__all__ = [
    "MODES",
    "WalStream",
    "WriteAheadLog",
    "ReplayResult",
    "OP_PUT",
    "OP_DELETE",
    "OP_GRANT",
    "OP_REVOKE",
    "OP_COMPACT",
    "PUT_HEADER",
    "DELETE_HEADER",
    "stream_dir_name",
]

log = logging.getLogger("megaplane.store.wal")

MODES = ("none", "buffered", "fsync")

OP_PUT = 1
OP_DELETE = 2
OP_GRANT = 3
OP_REVOKE = 4
OP_COMPACT = 5

PUT_HEADER = struct.Struct("<BqqII")
DELETE_HEADER = struct.Struct("<BqI")
LEASE_GRANT = struct.Struct("<Bqqq")
REV_ID = struct.Struct("<Bqq")  # REVOKE and COMPACT

FRAME_MAGIC = b"MPW1"
FRAME = struct.Struct("<4sIIQQI")
FRAME_META = struct.Struct("<QQI")
SEGMENT_SUFFIX = ".wal"
META_STREAM = b"\x00meta"

# A handoff is forced when this much is buffered, whatever the interval.
HANDOFF_BYTES = 4 << 20

# etcd_disk_wal_fsync_duration_seconds buckets, as etcd: 1 ms doubling 14 times.
FSYNC_BUCKETS = [0.001 * 2**i for i in range(14)] + [float("inf")]


def stream_dir_name(prefix: bytes) -> str:
    """A readable, file-safe directory name for a partition prefix."""
    if prefix == META_STREAM:
        return "_meta"
    if not prefix:
        return "_default"
    out = []
    for b in prefix:
        c = chr(b)
        if c == "/":
            out.append("~")
        elif c.isascii() and (c.isalnum() or c in "._-"):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


class WalStream:
    """The log of one partition: the pending buffer (store thread) and file state (flusher)."""

    __slots__ = ("prefix", "mode", "dir", "buf", "dirty", "seq", "fd", "bytes_written")

    def __init__(self, prefix: bytes, mode: str, directory: str, seq: int) -> None:
        self.prefix = prefix
        self.mode = mode
        self.dir = directory
        self.buf = bytearray()
        self.dirty = False
        # Segment number of the next segment the flusher opens.
        self.seq = seq
        self.fd: Optional[int] = None
        self.bytes_written = 0

    def __repr__(self) -> str:
        return f"<WalStream {self.prefix!r} {self.mode} seq={self.seq}>"


@dataclass
class ReplayResult:
    """What replay found: records to apply and where the log ends."""

    records: Iterator[Tuple]
    last_cycle: int
    last_revision: int
    torn: List[str] = field(default_factory=list)
    frames: int = 0


def _encode_frame(cycle: int, revision: int, frames: int, payload: bytes) -> bytes:
    meta = FRAME_META.pack(cycle, revision, frames)
    crc = zlib.crc32(payload, zlib.crc32(meta))
    return FRAME.pack(FRAME_MAGIC, len(payload), crc, cycle, revision, frames) + payload


def _read_frames(data: bytes) -> Iterator[Tuple[int, int, int, int, int, int]]:
    """Yield (offset, end, cycle, revision, frames, payload_offset) of valid frames.

    Stops at the first frame that is torn or fails its checksum; the caller
    compares the last end offset with the file size to see a torn tail.
    """
    off = 0
    n = len(data)
    view = memoryview(data)
    while off + FRAME.size <= n:
        magic, length, crc, cycle, revision, frames = FRAME.unpack_from(data, off)
        start = off + FRAME.size
        end = start + length
        if magic != FRAME_MAGIC or end > n:
            return
        meta = view[off + 12 : start]
        if zlib.crc32(view[start:end], zlib.crc32(meta)) != crc:
            return
        yield off, end, cycle, revision, frames, start
        off = end


def iter_records(payload: memoryview) -> Iterator[Tuple]:
    """Decode a frame payload into (rev, op, ...) tuples."""
    off = 0
    n = len(payload)
    while off < n:
        op = payload[off]
        if op == OP_PUT:
            _, rev, lease, klen, vlen = PUT_HEADER.unpack_from(payload, off)
            off += PUT_HEADER.size
            key = bytes(payload[off : off + klen])
            off += klen
            value = bytes(payload[off : off + vlen])
            off += vlen
            yield (rev, OP_PUT, key, value, lease)
        elif op == OP_DELETE:
            _, rev, klen = DELETE_HEADER.unpack_from(payload, off)
            off += DELETE_HEADER.size
            yield (rev, OP_DELETE, bytes(payload[off : off + klen]))
            off += klen
        elif op == OP_GRANT:
            _, rev, lease_id, ttl = LEASE_GRANT.unpack_from(payload, off)
            off += LEASE_GRANT.size
            yield (rev, OP_GRANT, lease_id, ttl)
        elif op in (OP_REVOKE, OP_COMPACT):
            _, rev, arg = REV_ID.unpack_from(payload, off)
            off += REV_ID.size
            yield (rev, op, arg)
        else:
            raise ValueError(f"unknown WAL record op {op} at offset {off}")


class WriteAheadLog:
    """The WAL of one data dir: streams, cycles, the flusher thread and replay."""

    def __init__(
        self,
        directory: str,
        *,
        flush_interval: float = 0.005,
        on_durable: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.dir = directory
        private_dir(directory)
        self.flush_interval = flush_interval
        self.streams: Dict[bytes, WalStream] = {}
        self.dirty: List[WalStream] = []
        self.pending_bytes = 0
        self.cycle = 0
        # Revision through which every handed-off cycle is durable.
        self.durable_revision = 0
        self.durable_cycle = 0
        self.inflight = 0
        self.failed: Optional[BaseException] = None
        self.on_durable = on_durable
        self._cond = threading.Condition()
        self._queue: "queue.SimpleQueue[Optional[tuple]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        # Figures for /metrics (etcd names in megaplane.store.metrics).
        self.fsync_bucket_counts = [0] * len(FSYNC_BUCKETS)
        self.fsync_total = 0
        self.fsync_seconds_sum = 0.0
        self.bytes_written_total = 0
        self.cycles_total = 0
        self._existing_seq: Dict[str, int] = {}
        # Closed segments whose cycles the next checkpoint will cover.
        self.sealed: List[str] = []

    # -- streams ------------------------------------------------------------------

    def stream(self, prefix: bytes, mode: str) -> Optional[WalStream]:
        """The stream for a partition prefix (None for mode "none")."""
        if mode == "none":
            return None
        s = self.streams.get(prefix)
        if s is None:
            name = stream_dir_name(prefix)
            d = os.path.join(self.dir, name)
            s = WalStream(prefix, mode, d, self._existing_seq.get(name, 0) + 1)
            self.streams[prefix] = s
        return s

    # -- store thread: handoff -------------------------------------------------------

    def handoff(self, revision: int, block: bool = True) -> int:
        """Queue every dirty buffer as one cycle; return the cycle number (0: nothing to do).

        Called between write transactions, so the buffers hold whole
        transactions up to `revision`.
        """
        if self.failed is not None:
            raise self.failed
        dirty = self.dirty
        if not dirty:
            return 0
        if block and self.inflight >= 2:
            self.wait_inflight(1)
        self.dirty = []
        self.pending_bytes = 0
        frames = []
        sync = False
        for s in dirty:
            frames.append((s, s.buf))
            s.buf = bytearray()
            s.dirty = False
            if s.mode == "fsync":
                sync = True
        self.cycle += 1
        with self._cond:
            self.inflight += 1
        self._ensure_thread()
        self._queue.put(("cycle", self.cycle, revision, frames, sync))
        return self.cycle

    def wait_inflight(self, at_most: int) -> None:
        with self._cond:
            while self.inflight > at_most and self.failed is None:
                self._cond.wait(1.0)
        if self.failed is not None:
            raise self.failed

    def wait_durable(self, revision: int, timeout: Optional[float] = None) -> bool:
        """Block until `revision` is durable (the caller handed it off)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.durable_revision < revision and self.failed is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
        if self.failed is not None:
            raise self.failed
        return True

    def wait_progress(self, revision: int) -> None:
        """Block until `revision` is durable or no cycle is in flight (then hand off again)."""
        with self._cond:
            while self.durable_revision < revision and self.inflight > 0 and self.failed is None:
                self._cond.wait(1.0)
        if self.failed is not None:
            raise self.failed

    def run_in_flusher(self, job: Callable[[], None]) -> None:
        """Run `job` on the flusher thread after the cycles already queued (revision reservations).

        An exception from `job` fails the WAL like a failed write: the store stops acknowledging.
        """
        if self.failed is not None:
            raise self.failed
        self._ensure_thread()
        self._queue.put(("call", job))

    def rotate(self) -> "threading.Event":
        """Seal every open segment; later cycles go to new segments.

        Returns an event set once the flusher has sealed them; the sealed
        paths are then in `sealed`.
        """
        done = threading.Event()
        self._ensure_thread()
        self._queue.put(("rotate", done))
        return done

    def delete_sealed(self) -> int:
        """Delete segments sealed by `rotate` (after a checkpoint covers them)."""
        n = 0
        sealed, self.sealed = self.sealed, []
        for path in sealed:
            try:
                os.unlink(path)
                n += 1
            except FileNotFoundError:
                pass
        for name in os.listdir(self.dir):
            d = os.path.join(self.dir, name)
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        return n

    def close(self) -> None:
        """Flush nothing more; stop the flusher after queued cycles are written."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        for s in self.streams.values():
            if s.fd is not None:
                os.close(s.fd)
                s.fd = None

    # -- flusher thread --------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="megaplane-wal", daemon=True)
            self._thread.start()

    def _open_segment(self, s: WalStream) -> int:
        private_dir(s.dir)
        path = os.path.join(s.dir, "%016d%s" % (s.seq, SEGMENT_SUFFIX))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, PRIVATE_FILE_MODE)
        header = json.dumps({"prefix": s.prefix.hex(), "mode": s.mode, "seq": s.seq}).encode()
        os.write(fd, _encode_frame(0, 0, 0, header))
        _fsync_dir(s.dir)
        s.seq += 1
        return fd

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if job[0] == "cycle":
                    self._write_cycle(*job[1:])
                elif job[0] == "call":
                    job[1]()
                elif job[0] == "rotate":
                    for s in self.streams.values():
                        if s.fd is not None:
                            os.close(s.fd)
                            s.fd = None
                            self.sealed.append(os.path.join(s.dir, "%016d%s" % (s.seq - 1, SEGMENT_SUFFIX)))
                    job[1].set()
            except BaseException as exc:  # disk full, I/O error: the store must stop acking
                log.error("WAL write failed: %s", exc)
                with self._cond:
                    self.failed = exc
                    self._cond.notify_all()
                if self.on_durable is not None:
                    self.on_durable(-1)
                if job[0] == "rotate":
                    job[1].set()
                return

    def _write_cycle(
        self, cycle: int, revision: int, frames: List[Tuple[WalStream, bytearray]], sync: bool
    ) -> None:
        n = len(frames)
        written = 0
        for s, payload in frames:
            if s.fd is None:
                s.fd = self._open_segment(s)
            data = _encode_frame(cycle, revision, n, payload)
            view = memoryview(data)
            while view:
                k = os.write(s.fd, view)
                view = view[k:]
            s.bytes_written += len(data)
            written += len(data)
        if sync:
            t0 = time.perf_counter()
            for s, _ in frames:
                os.fdatasync(s.fd)  # type: ignore[arg-type]
            dt = time.perf_counter() - t0
            self.fsync_total += 1
            self.fsync_seconds_sum += dt
            self.fsync_bucket_counts[bisect.bisect_left(FSYNC_BUCKETS, dt)] += 1
        self.bytes_written_total += written
        self.cycles_total += 1
        with self._cond:
            self.durable_revision = max(self.durable_revision, revision)
            self.durable_cycle = cycle
            self.inflight -= 1
            self._cond.notify_all()
        if self.on_durable is not None:
            self.on_durable(revision)

    # -- replay ------------------------------------------------------------------------

    def replay(self, after_cycle: int) -> ReplayResult:
        """Find the complete cycles after `after_cycle` and the records to re-apply.

        Frames of incomplete or later cycles are cut off the files (a torn
        tail is dropped, never replayed). Must run before any write.
        """
        segments: Dict[str, List[str]] = {}
        for name in sorted(os.listdir(self.dir)):
            d = os.path.join(self.dir, name)
            if not os.path.isdir(d):
                continue
            files = sorted(f for f in os.listdir(d) if f.endswith(SEGMENT_SUFFIX))
            segments[name] = [os.path.join(d, f) for f in files]
            if files:
                self._existing_seq[name] = int(files[-1][: -len(SEGMENT_SUFFIX)])

        # Pass 1: every valid frame of every file; where each file stops being valid.
        found: Dict[int, List[Tuple[str, int, int, int, int]]] = {}
        expected: Dict[int, int] = {}
        cycle_revision: Dict[int, int] = {}
        valid_end: Dict[str, int] = {}
        torn: List[str] = []
        data_of: Dict[str, bytes] = {}
        for name, paths in segments.items():
            broken = False
            for path in paths:
                if broken:
                    valid_end[path] = 0
                    continue
                with open(path, "rb") as f:
                    data = f.read()
                data_of[path] = data
                end = 0
                for off, fend, cycle, revision, nframes, pstart in _read_frames(data):
                    end = fend
                    if cycle == 0:
                        continue
                    found.setdefault(cycle, []).append((path, pstart, fend, revision, nframes))
                    expected[cycle] = nframes
                    cycle_revision[cycle] = revision
                valid_end[path] = end
                if end != len(data):
                    torn.append(path)
                    broken = True
        # Pass 2: the complete prefix of cycles.
        last = after_cycle
        while True:
            frames = found.get(last + 1)
            if not frames or len(frames) != expected[last + 1]:
                break
            last += 1
        if found and last == after_cycle and min(found) > after_cycle + 1:
            raise RuntimeError(
                f"WAL in {self.dir} starts at cycle {min(found)} but the snapshot covers "
                f"only up to cycle {after_cycle}: segments are missing"
            )
        # Cut off everything after the last complete cycle: torn tails and
        # frames of cycles that are not complete everywhere.
        for paths in segments.values():
            for path in paths:
                data = data_of.get(path)
                if data is None:  # after a broken segment of the same stream
                    os.unlink(path)
                    continue
                keep = valid_end[path]
                for cycle, frames in found.items():
                    if cycle > last:
                        for fpath, pstart, _, _, _ in frames:
                            if fpath == path:
                                keep = min(keep, pstart - FRAME.size)
                if keep < len(data):
                    with open(path, "r+b") as f:
                        f.truncate(keep)
                        f.flush()
                        os.fsync(f.fileno())
                # Later writes go to new segments; this one is sealed.
                self.sealed.append(path)
        self.cycle = last
        self.durable_cycle = last
        last_revision = cycle_revision.get(last, 0)
        self.durable_revision = last_revision

        per_stream: List[Iterator[Tuple]] = []
        nframes_total = 0
        for name, paths in segments.items():
            chunks = []
            for path in paths:
                data = data_of.get(path)
                if data is None:
                    continue
                for cycle, frames in found.items():
                    if after_cycle < cycle <= last:
                        for fpath, pstart, fend, _, _ in frames:
                            if fpath == path:
                                chunks.append((cycle, memoryview(data)[pstart:fend]))
            chunks.sort(key=lambda c: c[0])
            nframes_total += len(chunks)
            per_stream.append(_chain_records(chunks))
        records = heapq.merge(*per_stream, key=lambda r: r[0])
        return ReplayResult(records, last, last_revision, torn, nframes_total)


def _chain_records(chunks: List[Tuple[int, memoryview]]) -> Iterator[Tuple]:
    for _, payload in chunks:
        yield from iter_records(payload)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
