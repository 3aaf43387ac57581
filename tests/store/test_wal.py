"""Write-ahead log: modes per prefix, replay in revision order, torn tails, checkpoints."""

from __future__ import annotations

import os

import pytest

from megaplane.store import Store, StoreConfig
from megaplane.store.requests import DeleteRangeRequest, PutRequest

MODES = {b"/registry/leases/": "none", b"/registry/pods/": "fsync", b"/registry/events/": "none"}


def state(s: Store):
    return s.range(b"\x00", b"\x00").kvs


def crash(s: Store) -> None:
    """Leave a store as a kill would: what was handed to the disk is there, nothing else."""
    s.flush()
    s.wal.wait_inflight(0)


def segments(data_dir, stream):
    d = os.path.join(data_dir, "wal", stream)
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def fill(s: Store, n: int = 50) -> None:
    for i in range(n):
        s.put(b"/registry/pods/ns/p%d" % (i % 7), b"pod-%d" % i)
        s.put(b"/registry/leases/ns/l%d" % (i % 5), b"lease-%d" % i)
        s.put(b"/registry/nodes/n%d" % (i % 3), b"node-%d" % i)
        if i % 10 == 9:
            s.txn([], [PutRequest(b"/registry/pods/ns/t", b"%d" % i), PutRequest(b"/registry/nodes/t", b"%d" % i)])
            s.delete_range(b"/registry/pods/ns/p%d" % (i % 7))


def test_restart_restores_logged_partitions_and_drops_none_mode(tmp_path):
    s = Store(str(tmp_path), StoreConfig(wal_modes=MODES))
    fill(s)
    expected = [kv for kv in state(s) if not kv[0].startswith(b"/registry/leases/")]
    rev = s.revision
    s.close()
    s2 = Store(str(tmp_path), StoreConfig(wal_modes=MODES))
    assert state(s2) == expected
    assert s2.recovered_revision == rev
    # A clean close: the store goes on just above the last revision, nothing logged is compacted.
    assert s2.revision == rev + 2 and s2.compact_revision == 0
    # History came back too: a watch from an old revision replays the logged writes.
    w = s2.watch(b"/registry/nodes/", b"/registry/nodes0", start_revision=2)
    assert [ev[0][0] for ev in w.take()][:2] == [b"/registry/nodes/n0", b"/registry/nodes/n1"]
    # The leases (mode none) came back empty without delete events: their past is compacted.
    w = s2.watch(b"/registry/leases/", b"/registry/leases0", start_revision=rev + 1)
    assert w.take() == [] and w.compact_revision == rev + 2
    assert s2.range(b"/registry/leases/", b"/registry/leases0").count == 0
    s2.close()


def test_wal_files_are_per_partition(tmp_path):
    s = Store(str(tmp_path), StoreConfig(wal_modes=MODES))
    fill(s, 10)
    s.close()
    streams = sorted(os.listdir(tmp_path / "wal"))
    assert streams == ["_meta", "~registry~nodes~", "~registry~pods~"] or streams == ["~registry~nodes~", "~registry~pods~"]


def test_torn_tail_is_dropped_never_replayed(tmp_path):
    s = Store(str(tmp_path))
    for i in range(20):
        s.put(b"k%d" % i, b"v")
        crash(s)  # one frame per put
    before_last = None
    (seg,) = segments(tmp_path, "_default")
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size - 3)  # the last frame is torn
    s2 = Store(str(tmp_path))
    assert [kv[0] for kv in state(s2)] == sorted(b"k%d" % i for i in range(19))
    assert s2.recovered_revision == 20
    before_last = state(s2)
    after = s2.put(b"after", b"x").revision
    assert after > 21, "revision 21 was handed out before the crash"
    s2.close()
    s3 = Store(str(tmp_path))
    assert state(s3) == sorted(before_last + [(b"after", after, after, 1, b"x", 0)])
    s3.close()


def test_corrupt_tail_is_detected_by_checksum(tmp_path):
    s = Store(str(tmp_path))
    for i in range(5):
        s.put(b"k%d" % i, b"value-%d" % i)
        crash(s)
    (seg,) = segments(tmp_path, "_default")
    with open(seg, "r+b") as f:
        f.seek(-2, os.SEEK_END)
        f.write(b"XX")  # flip the last value's bytes, length intact
    s2 = Store(str(tmp_path))
    assert [kv[0] for kv in state(s2)] == [b"k0", b"k1", b"k2", b"k3"]
    s2.close()


def test_a_cycle_missing_in_one_partition_is_dropped_in_all(tmp_path):
    s = Store(str(tmp_path))
    s.put(b"/registry/pods/a", b"1")
    s.put(b"/registry/nodes/a", b"1")
    crash(s)
    # One transaction across two partitions: one cycle, two frames in two files.
    s.txn([], [PutRequest(b"/registry/pods/a", b"2"), DeleteRangeRequest(b"/registry/nodes/a")])
    crash(s)
    (pods,) = segments(tmp_path, "~registry~pods~")
    with open(pods, "r+b") as f:
        f.truncate(os.path.getsize(pods) - 1)
    s2 = Store(str(tmp_path))
    assert state(s2) == [(b"/registry/nodes/a", 3, 3, 1, b"1", 0), (b"/registry/pods/a", 2, 2, 1, b"1", 0)]
    assert s2.recovered_revision == 3
    s2.close()


def test_checkpoint_drops_covered_segments_and_restart_matches(tmp_path):
    cfg = StoreConfig(wal_modes=MODES)
    s = Store(str(tmp_path), cfg)
    fill(s, 40)
    s.checkpoint()
    assert os.listdir(tmp_path / "snap")
    assert not any(os.listdir(tmp_path / "wal" / d) for d in os.listdir(tmp_path / "wal")), "covered segments are gone"
    fill(s, 10)
    expected = [kv for kv in state(s) if not kv[0].startswith(b"/registry/leases/")]
    rev = s.revision
    s.close()
    s2 = Store(str(tmp_path), cfg)
    assert state(s2) == expected and s2.recovered_revision == rev
    # A second checkpoint after restart also removes the segments replayed at start.
    s2.checkpoint()
    x = s2.put(b"/x", b"1").revision
    s2.close()
    s3 = Store(str(tmp_path), cfg)
    assert state(s3) == sorted(expected + [(b"/x", x, x, 1, b"1", 0)])
    assert len(os.listdir(tmp_path / "snap")) == 1
    s3.close()


def test_automatic_checkpoint_by_size(tmp_path):
    cfg = StoreConfig(checkpoint_bytes=64 << 10)
    s = Store(str(tmp_path), cfg)
    for i in range(2000):
        s.put(b"/registry/pods/p%d" % (i % 50), b"x" * 200)
        if i % 100 == 0:
            s.sync()
    s.sync()
    s.close()
    assert s.durability.checkpoints_total >= 1
    s2 = Store(str(tmp_path), cfg)
    assert s2.range(b"/registry/pods/", b"/registry/pods0", count_only=True).count == 50
    assert s2.recovered_revision == 2001
    s2.close()


def test_compaction_and_leases_are_logged(tmp_path):
    s = Store(str(tmp_path))
    lease = s.lease_grant(100)
    s.put(b"a", b"1", lease.id)
    s.put(b"a", b"2", lease.id)
    s.compact(3)
    s.close()
    s2 = Store(str(tmp_path))
    assert s2.compact_revision == 3
    assert s2.lease_time_to_live(lease.id, keys=True)[2] == [b"a"]
    s2.close()


def test_wal_mode_prefix_must_name_whole_partitions():
    with pytest.raises(ValueError, match="lies inside partition"):
        StoreConfig(wal_modes={b"/registry/pods/kube-system/": "fsync"})
    with pytest.raises(ValueError, match="unknown WAL mode"):
        StoreConfig(wal_default="sometimes")
