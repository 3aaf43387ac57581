"""Snapshots: a consistent point-in-time copy of the store in one file.

Used two ways: as a backup (`megaplane snapshot save|restore|status`, the
etcd backup/restore drill) and as the store's own checkpoint, after which
the WAL segments it covers are deleted.

Capturing is cheap because records are immutable tuples: copying each
partition's dict (C speed, ~20 ms per million keys) freezes a consistent
view at one revision, and a thread writes it out while the store goes on.

File layout::

    "MPSNAP\\0\\1"                       magic and format version
    frame*                               length u32 | crc32 u32 | payload
      payload "M" + JSON                 meta: revision, compact_revision, leases, ...
      payload "K" + record*              create i64 mod i64 version i64 lease i64
                                         klen u32 vlen u32 key value
      payload "E" + JSON                 end: key count and sha256 of every byte before it

Sent over the etcd API (Maintenance.Snapshot) the file gets etcd's own
trailer: zero padding to a multiple of 512 bytes, then the sha256 of
everything before it, which etcdctl 3.4 checks when it saves a snapshot.
`read` accepts files with or without it (and verifies it when present).

A snapshot holds current state only, not history: after a restore, reads
below its revision fail as compacted. Checkpoint files are named
``snap/<revision>-<wal cycle>.snap``; the cycle says which WAL frames the
snapshot already contains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Protocol, Tuple

from ..keyspace import Partition
from ..kv import KeyValue, partition_prefix
from ..lessor import Lessor
from .fileutil import PRIVATE_FILE_MODE, private_dir, private_file

__all__ = [
    "SnapshotView",
    "LoadedSnapshot",
    "SnapshotError",
    "RestoreOptionsError",
    "SnapshotSource",
    "RestoreTarget",
    "capture",
    "write",
    "write_checkpoint",
    "load_latest",
    "read",
    "status",
    "restore_into",
    "restore_data_dir",
]

MAGIC = b"MPSNAP\x00\x01"
FRAME = struct.Struct("<II")
RECORD = struct.Struct("<qqqqII")
CHUNK_BYTES = 1 << 20
# etcd snapshots are bbolt pages plus a sha256; etcdctl checks (size - 32) % 512 == 0.
ETCD_PAGE = 512


class SnapshotError(Exception):
    """The file is not a megaplane snapshot, or it is truncated or corrupt, or a restore cannot go ahead."""


class RestoreOptionsError(SnapshotError):
    """`restore_data_dir` was given --bump-revision / --mark-compacted in a combination etcdutl refuses."""


class SnapshotSource(Protocol):
    """What capturing needs from a store (the Store facade and its writer both qualify)."""

    @property
    def revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    @property
    def lessor(self) -> Lessor: ...

    def partitions(self) -> List[Partition]:
        """Every partition, in prefix order."""


class RestoreTarget(Protocol):
    """What loading a snapshot into an empty store needs (`megaplane.store.writer.Writer`)."""

    @property
    def lessor(self) -> Lessor: ...

    def restore_record(self, kv: KeyValue) -> None:
        """Load one live record."""

    def restore_revision(self, revision: int) -> None:
        """The store is at `revision`; history before it is gone."""


@dataclass
class SnapshotView:
    """A frozen copy of a store's state, ready to be written by any thread."""

    revision: int
    compact_revision: int
    wal_cycle: int
    partitions: List[Tuple[bytes, Dict[bytes, KeyValue]]]
    leases: List[Tuple[int, int]]

    @property
    def key_count(self) -> int:
        return sum(len(d) for _, d in self.partitions)


@dataclass
class LoadedSnapshot:
    path: str
    meta: dict
    records: List[KeyValue]
    size: int
    wal_cycle: int


def capture(source: SnapshotSource, *, logged_only: bool = False, wal_cycle: int = 0) -> SnapshotView:
    """Freeze the store's state now. `logged_only` leaves out partitions in WAL mode none."""
    parts = [
        (p.prefix, dict(p.kvs))
        for p in source.partitions()
        if p.kvs and not (logged_only and p.wal_mode == "none")
    ]
    leases = [(le.id, le.ttl) for le in source.lessor.leases.values()]
    return SnapshotView(source.revision, source.compact_revision, wal_cycle, parts, leases)


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _encode_chunks(view: SnapshotView) -> Iterator[bytes]:
    pack = RECORD.pack
    chunk: List[bytes] = [b"K"]
    size = 0
    for _, kvs in view.partitions:
        for kv in kvs.values():
            key, create, mod, version, value, lease = kv
            chunk.append(pack(create, mod, version, lease, len(key), len(value)))
            chunk.append(key)
            chunk.append(value)
            size += RECORD.size + len(key) + len(value)
            if size >= CHUNK_BYTES:
                yield b"".join(chunk)
                chunk = [b"K"]
                size = 0
    if len(chunk) > 1:
        yield b"".join(chunk)


def write(path: str, view: SnapshotView, *, etcd_trailer: bool = False) -> Dict[str, object]:
    """Write `view` to `path` (atomically: temp file, fsync, rename). Returns its status.

    `etcd_trailer` appends etcd's padding and sha256 (for Maintenance.Snapshot).
    """
    tmp = path + ".part"
    digest = hashlib.sha256()
    crc = 0
    size = 0
    meta = {
        "format": 1,
        "revision": view.revision,
        "compact_revision": view.compact_revision,
        "keys": view.key_count,
        "leases": view.leases,
        "partitions": [p.hex() for p, _ in view.partitions],
        "created": time.time(),
    }
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE), "wb") as f:

        def emit(data: bytes) -> None:
            nonlocal crc, size
            f.write(data)
            digest.update(data)
            crc = zlib.crc32(data, crc)
            size += len(data)

        emit(MAGIC)
        emit(_frame(b"M" + json.dumps(meta).encode()))
        for chunk in _encode_chunks(view):
            emit(_frame(chunk))
        end = {"keys": view.key_count, "sha256": digest.hexdigest()}
        tail = _frame(b"E" + json.dumps(end).encode())
        f.write(tail)
        if etcd_trailer:
            whole = hashlib.sha256()
            f.flush()
            with open(tmp, "rb") as r:
                for block in iter(lambda: r.read(1 << 20), b""):
                    whole.update(block)
            pad = (-(size + len(tail))) % ETCD_PAGE
            f.write(b"\0" * pad)
            whole.update(b"\0" * pad)
            f.write(whole.digest())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return {"hash": crc, "revision": view.revision, "totalKey": view.key_count, "totalSize": os.path.getsize(path)}


def write_checkpoint(snap_dir: str, view: SnapshotView) -> str:
    """Write a checkpoint snapshot and delete older ones. Returns its path."""
    private_dir(snap_dir)
    path = os.path.join(snap_dir, "%016d-%016d.snap" % (view.revision, view.wal_cycle))
    write(path, view)
    for name in os.listdir(snap_dir):
        other = os.path.join(snap_dir, name)
        if other != path and (name.endswith(".snap") or name.endswith(".part")):
            os.unlink(other)
    return path


def read(path: str) -> Tuple[dict, List[KeyValue], int]:
    """Read and verify a snapshot file: (meta, records, file size). Raises SnapshotError.

    meta["_hash"] is the crc32 of the file up to its end frame.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from None
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path} is not a megaplane snapshot (bad magic)")
    off = len(MAGIC)
    meta: Optional[dict] = None
    records: List[KeyValue] = []
    digest = hashlib.sha256(data[:off])
    end: Optional[dict] = None
    n = len(data)
    unpack = RECORD.unpack_from
    while off < n:
        if off + FRAME.size > n:
            raise SnapshotError(f"{path} is truncated")
        length, crc = FRAME.unpack_from(data, off)
        start = off + FRAME.size
        stop = start + length
        if stop > n:
            raise SnapshotError(f"{path} is truncated")
        payload = data[start:stop]
        if zlib.crc32(payload) != crc:
            raise SnapshotError(f"{path} is corrupt (checksum mismatch at offset {off})")
        kind = payload[:1]
        if kind == b"E":
            end = json.loads(payload[1:])
            if stop != n:
                _check_etcd_trailer(path, data, stop)
            # etcdctl shows a 32-bit hash; ours covers every byte before the end frame.
            end_offset = off
            break
        digest.update(data[off:stop])
        if kind == b"M":
            meta = json.loads(payload[1:])
        elif kind == b"K":
            p = 1
            m = len(payload)
            while p < m:
                create, mod, version, lease, klen, vlen = unpack(payload, p)
                p += RECORD.size
                key = payload[p : p + klen]
                p += klen
                value = payload[p : p + vlen]
                p += vlen
                records.append((key, create, mod, version, value, lease))
        else:
            raise SnapshotError(f"{path} has an unknown frame kind {kind!r}")
        off = stop
    if meta is None or end is None:
        raise SnapshotError(f"{path} is truncated (no {'meta' if meta is None else 'end'} frame)")
    if end.get("sha256") != digest.hexdigest() or end.get("keys") != len(records):
        raise SnapshotError(f"{path} is corrupt (content hash mismatch)")
    meta["_hash"] = zlib.crc32(memoryview(data)[:end_offset])
    return meta, records, n


def _check_etcd_trailer(path: str, data: bytes, end: int) -> None:
    """Bytes after the end frame must be etcd's trailer: zero padding to 512, then sha256."""
    n = len(data)
    if (n - 32) % ETCD_PAGE or n - 32 < end or data[end : n - 32].strip(b"\0"):
        raise SnapshotError(f"{path} has unexpected data after its end frame")
    if hashlib.sha256(memoryview(data)[: n - 32]).digest() != data[n - 32 :]:
        raise SnapshotError(f"{path} is corrupt (sha256 trailer mismatch)")


def status(path: str) -> Dict[str, object]:
    """etcdctl-style status of a snapshot file: hash, revision, total keys, total size."""
    meta, records, size = read(path)
    return {
        "hash": meta["_hash"],
        "revision": meta["revision"],
        "totalKey": len(records),
        "totalSize": size,
    }


def load_latest(snap_dir: str) -> Optional[LoadedSnapshot]:
    """The newest checkpoint in `snap_dir`, verified, or None if there is none."""
    if not os.path.isdir(snap_dir):
        return None
    names = sorted(n for n in os.listdir(snap_dir) if n.endswith(".snap"))
    if not names:
        return None
    path = os.path.join(snap_dir, names[-1])
    meta, records, size = read(path)
    cycle = int(names[-1][:-5].split("-")[1])
    return LoadedSnapshot(path, meta, records, size, cycle)


def restore_into(target: RestoreTarget, loaded: LoadedSnapshot) -> int:
    """Fill an empty store from a loaded snapshot. Returns the WAL cycle it covers."""
    lessor = target.lessor
    for lease_id, ttl in loaded.meta.get("leases", []):
        lessor.restore(int(lease_id), int(ttl))
    for kv in loaded.records:
        target.restore_record(kv)
    # History before the snapshot is not in it: reads below it are compacted.
    target.restore_revision(int(loaded.meta["revision"]))
    return loaded.wal_cycle


def restore_data_dir(
    snapshot_path: str, data_dir: str, *, bump_revision: int = 0, mark_compacted: bool = False
) -> Dict[str, object]:
    """`megaplane snapshot restore`: make a new data dir that starts from a snapshot.

    What it promises, as etcdutl's restore: the new store starts at the
    snapshot's revision S (plus `bump_revision`), and reads and watches
    below that fail as compacted (a snapshot holds no history). Without a
    bump it hands out S + 1, S + 2, ... again, which the original store may
    already have served after the snapshot was taken; clients holding such
    revisions would silently miss events. Revisions are never reused when
    `bump_revision` exceeds the number of revisions the original served
    after the snapshot (etcd suggests 1,000,000,000): the store starts at
    S + bump_revision, compacted there (`mark_compacted`, which etcdutl
    requires with a bump and refuses without one; here a snapshot's
    revision is always a compaction floor, so it only confirms the intent).
    """
    if bump_revision < 0:
        raise RestoreOptionsError(f"--bump-revision must not be negative, not {bump_revision}")
    if bump_revision and not mark_compacted:
        raise RestoreOptionsError("--mark-compacted is required when --bump-revision > 0")
    if mark_compacted and not bump_revision:
        raise RestoreOptionsError("--mark-compacted is only allowed with --bump-revision > 0")
    if os.path.exists(data_dir) and os.listdir(data_dir):
        raise SnapshotError(f"data-dir {data_dir!r} exists and is not empty")
    meta, records, _ = read(snapshot_path)
    revision = int(meta["revision"]) + bump_revision
    snap_dir = os.path.join(data_dir, "snap")
    private_dir(data_dir)
    private_dir(snap_dir)
    private_dir(os.path.join(data_dir, "wal"))
    target = os.path.join(snap_dir, "%016d-%016d.snap" % (revision, 0))
    if bump_revision:
        # The same records and leases at the bumped revision, which restore makes the compaction floor.
        parts: Dict[bytes, Dict[bytes, KeyValue]] = {}
        for kv in records:
            parts.setdefault(partition_prefix(kv[0]), {})[kv[0]] = kv
        leases = [(int(i), int(t)) for i, t in meta.get("leases", [])]
        write(target, SnapshotView(revision, revision, 0, sorted(parts.items()), leases))
    else:
        shutil.copyfile(snapshot_path, target + ".part")
        private_file(target + ".part")
        with open(target + ".part", "rb+") as f:
            os.fsync(f.fileno())
        os.replace(target + ".part", target)
        _fsync_dir(snap_dir)
    return {"revision": revision, "totalKey": len(records), "dataDir": data_dir}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
