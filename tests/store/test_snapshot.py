"""Snapshots: save, restore into a new data dir, status, and refusing damaged files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from megaplane.store import Store, StoreConfig, snapshot
from megaplane.store.errors import CompactedError


def populated(data_dir=None) -> Store:
    s = Store(data_dir, StoreConfig(wal_modes={b"/registry/leases/": "none"}))
    lease = s.lease_grant(300, 0x42)
    for i in range(300):
        s.put(b"/registry/pods/ns/p%03d" % i, b"pod" * (i % 17))
        s.put(b"/registry/leases/ns/l%03d" % (i % 30), b"lease-%d" % i)
    s.put(b"/events/e1", b"ev", lease.id)
    s.delete_range(b"/registry/pods/ns/p1", b"/registry/pods/ns/p2")
    return s


def test_round_trip_through_a_new_data_dir(tmp_path):
    s = populated()
    path = str(tmp_path / "backup.snap")
    info = snapshot.write(path, snapshot.capture(s))
    assert info["revision"] == s.revision and info["totalKey"] == s.key_count()
    restored = snapshot.restore_data_dir(path, str(tmp_path / "restored"))
    assert restored["revision"] == s.revision
    s2 = Store(str(tmp_path / "restored"))
    assert s2.range(b"\x00", b"\x00").kvs == s.range(b"\x00", b"\x00").kvs, "none-mode partitions are in backups too"
    assert s2.revision == s.revision
    assert s2.lease_time_to_live(0x42, keys=True)[2] == [b"/events/e1"]
    with pytest.raises(CompactedError):
        s2.range(b"/registry/pods/ns/p000", revision=s.revision - 1)
    # The restored store takes writes and keeps them across restarts.
    s2.put(b"/after", b"restore")
    s2.close()
    s3 = Store(str(tmp_path / "restored"))
    assert s3.get(b"/after")[2] == s.revision + 1
    s3.close()


def test_status_reports_revision_keys_size_and_a_stable_hash(tmp_path):
    s = populated()
    path = str(tmp_path / "a.snap")
    written = snapshot.write(path, snapshot.capture(s))
    st = snapshot.status(path)
    assert st == written
    assert st["totalSize"] == os.path.getsize(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic"])
def test_damaged_snapshots_are_refused(tmp_path, damage):
    s = populated()
    path = str(tmp_path / "a.snap")
    snapshot.write(path, snapshot.capture(s))
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data[:4] = b"XXXX"
    open(path, "wb").write(bytes(data))
    with pytest.raises(snapshot.SnapshotError):
        snapshot.status(path)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.restore_data_dir(path, str(tmp_path / "r"))
    assert not os.path.exists(tmp_path / "r" / "snap") or not os.listdir(tmp_path / "r" / "snap")


def test_restore_refuses_a_data_dir_in_use(tmp_path):
    s = populated()
    path = str(tmp_path / "a.snap")
    snapshot.write(path, snapshot.capture(s))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("x")
    with pytest.raises(snapshot.SnapshotError, match="exists"):
        snapshot.restore_data_dir(path, str(tmp_path / "busy"))


def test_snapshot_cli_save_status_restore(tmp_path):
    data = str(tmp_path / "data")
    s = populated(data)
    expected = s.range(b"\x00", b"\x00").kvs
    expected_logged = [kv for kv in expected if not kv[0].startswith(b"/registry/leases/")]
    s.close()
    cli = [sys.executable, "-m", "megaplane.cli"]
    path = str(tmp_path / "backup.snap")
    out = subprocess.run(cli + ["snapshot", "save", path, "--data-dir", data], capture_output=True, text=True, check=True)
    assert "Snapshot saved at" in out.stdout
    out = subprocess.run(cli + ["snapshot", "status", path], capture_output=True, text=True, check=True)
    assert "HASH" in out.stdout and "REVISION" in out.stdout and "TOTAL KEYS" in out.stdout
    st = json.loads(subprocess.run(cli + ["snapshot", "status", path, "-w", "json"], capture_output=True, text=True, check=True).stdout)
    assert st["totalKey"] == len(expected_logged)
    target = str(tmp_path / "new")
    subprocess.run(cli + ["snapshot", "restore", path, "--data-dir", target], capture_output=True, text=True, check=True)
    again = subprocess.run(cli + ["snapshot", "restore", path, "--data-dir", target], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    s2 = Store(target)
    assert s2.range(b"\x00", b"\x00").kvs == expected_logged
    s2.close()
    bumped = str(tmp_path / "bumped")
    refused = subprocess.run(cli + ["snapshot", "restore", path, "--data-dir", bumped, "--bump-revision", "1000"], capture_output=True, text=True)
    assert refused.returncode != 0 and "--mark-compacted is required" in refused.stderr
    out = subprocess.run(
        cli + ["snapshot", "restore", path, "--data-dir", bumped, "--bump-revision", "1000", "--mark-compacted"],
        capture_output=True, text=True, check=True,
    )
    assert f"revision {st['revision'] + 1000}" in out.stdout


def test_restore_with_a_bumped_revision_never_reuses_revisions(tmp_path):
    s = populated()
    path = str(tmp_path / "backup.snap")
    taken = snapshot.write(path, snapshot.capture(s))["revision"]
    expected = s.range(b"\x00", b"\x00").kvs
    # The original goes on serving revisions after the snapshot.
    served = [s.put(b"/registry/pods/ns/late%d" % i, b"x").revision for i in range(50)]
    info = snapshot.restore_data_dir(path, str(tmp_path / "restored"), bump_revision=1000, mark_compacted=True)
    assert info["revision"] == taken + 1000
    s2 = Store(str(tmp_path / "restored"))
    try:
        assert s2.range(b"\x00", b"\x00").kvs == expected
        assert s2.revision == s2.compact_revision == taken + 1000
        assert s2.lease_time_to_live(0x42, keys=True)[2] == [b"/events/e1"]
        for rev in (taken, served[-1]):
            with pytest.raises(CompactedError):
                s2.range(b"/registry/pods/", b"/registry/pods0", revision=rev)
        assert s2.put(b"/after", b"restore").revision > max(served)
    finally:
        s2.close()


@pytest.mark.parametrize(
    "bump,mark,message",
    [(10, False, "--mark-compacted is required"), (0, True, "only allowed with --bump-revision"), (-1, True, "negative")],
)
def test_restore_refuses_bump_and_mark_compacted_as_etcdutl(tmp_path, bump, mark, message):
    path = str(tmp_path / "a.snap")
    snapshot.write(path, snapshot.capture(populated()))
    with pytest.raises(snapshot.RestoreOptionsError, match=message):
        snapshot.restore_data_dir(path, str(tmp_path / "new"), bump_revision=bump, mark_compacted=mark)
    assert not os.path.exists(tmp_path / "new")
