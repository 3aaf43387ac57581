"""Revision reservations: the ceiling on disk stays ahead of every revision handed out.

The kill -9 runs are in test_crash.py; these drive one store in process and
read the reservation file it writes.
"""

from __future__ import annotations

import os
import time

import pytest

from megaplane.store import Store, StoreConfig
from megaplane.store.errors import CompactedError
from megaplane.store.wal.reservation import FILE_NAME, ReservationError, read_record


def small_blocks(**kw) -> StoreConfig:
    return StoreConfig(revision_reserve_step=100, revision_reserve_seconds=0.0, **kw)


def test_the_ceiling_on_disk_is_never_below_a_revision_handed_out(tmp_path):
    s = Store(str(tmp_path), small_blocks())
    try:
        for i in range(2000):
            rev = s.put(b"/registry/pods/p%d" % (i % 17), b"v").revision
            assert read_record(str(tmp_path)).revision >= rev
        assert s.reservation.reservations_total > 10, "blocks of 100 revisions: many reservations"
    finally:
        s.close()


def test_the_next_block_is_reserved_ahead_without_stopping_the_writer(tmp_path):
    s = Store(str(tmp_path), small_blocks())
    try:
        first = s.reservation.reserved
        # Past half of the first block: the next one is requested in the background.
        while s.revision <= first - 50:
            s.put(b"/k", b"v")
        deadline = time.monotonic() + 30
        while s.reservation.reserved == first:
            assert time.monotonic() < deadline, "the background reservation never landed"
            time.sleep(0.01)
        while s.revision <= first + 10:
            s.put(b"/k", b"v")
        assert s.reservation.waits_total == 0
    finally:
        s.close()


def test_a_clean_close_records_the_exact_revision_and_keeps_history(tmp_path):
    s = Store(str(tmp_path))
    for i in range(10):
        s.put(b"/registry/pods/p", b"%d" % i)
    last = s.revision
    s.close()
    record = read_record(str(tmp_path))
    assert record.clean and record.revision == last
    s2 = Store(str(tmp_path))
    try:
        assert s2.revision == last + 2 and s2.compact_revision == 0
        assert s2.range(b"/registry/pods/p", revision=5).kvs[0][4] == b"3"
        assert not read_record(str(tmp_path)).clean, "an open store's reservation is never clean"
    finally:
        s2.close()


def test_a_store_that_did_not_close_compacts_everything_below_where_it_resumes(tmp_path):
    s = Store(str(tmp_path))
    for i in range(10):
        s.put(b"/registry/pods/p", b"%d" % i)
    s.sync()  # on disk, but never closed: as a kill would leave it
    s.wal.close()
    s2 = Store(str(tmp_path))
    try:
        assert s2.recovered_revision == 11
        assert s2.revision == s2.compact_revision == s.reservation.reserved + 2
        assert s2.get(b"/registry/pods/p")[4] == b"9"
        with pytest.raises(CompactedError):
            s2.range(b"/registry/pods/p", revision=11)
    finally:
        s2.close()


def test_a_clean_close_counts_as_lost_when_the_next_run_logs_other_partitions(tmp_path):
    s = Store(str(tmp_path), StoreConfig(wal_modes={b"/registry/leases/": "none"}))
    s.put(b"/registry/pods/p", b"1")
    s.close()
    # buffered -> fsync logs the same partitions: nothing is compacted.
    s2 = Store(
        str(tmp_path), StoreConfig(wal_modes={b"/registry/leases/": "none", b"/registry/pods/": "fsync"})
    )
    assert s2.revision == 4 and s2.compact_revision == 0
    s2.close()
    # The leases are logged now, but the last run kept them in memory only: their past is unknown.
    s3 = Store(str(tmp_path))
    try:
        assert s3.compact_revision == s3.revision == 6
    finally:
        s3.close()


def test_a_partition_in_mode_none_is_compacted_below_the_restart(tmp_path):
    cfg = StoreConfig(wal_modes={b"/registry/leases/": "none"})
    s = Store(str(tmp_path), cfg)
    s.put(b"/registry/leases/ns/a", b"1")
    s.put(b"/registry/pods/ns/a", b"1")
    last = s.revision
    s.close()
    s2 = Store(str(tmp_path), cfg)
    try:
        # The leases partition did not exist until now; it is created with the restart as its floor.
        with pytest.raises(CompactedError):
            s2.range(b"/registry/leases/", b"/registry/leases0", revision=last)
        assert s2.range(b"/registry/pods/", b"/registry/pods0", revision=last).count == 1
        w = s2.watch(b"/registry/leases/ns/a", start_revision=last + 1)
        assert w.take() == [] and w.compact_revision == s2.revision
        assert s2.range(b"/registry/leases/", b"/registry/leases0").count == 0
    finally:
        s2.close()


def test_a_corrupt_reservation_stops_the_store_from_opening(tmp_path):
    Store(str(tmp_path)).close()
    with open(os.path.join(tmp_path, FILE_NAME), "wb") as f:
        f.write(b'{"format": 1, "revision": "many"}')
    with pytest.raises(ReservationError, match="is not a non-negative integer"):
        Store(str(tmp_path))


def test_a_reservation_that_cannot_be_written_stops_writes_past_the_ceiling(tmp_path):
    s = Store(str(tmp_path), small_blocks())
    # The temp file the next reservation is written through cannot be created.
    os.mkdir(os.path.join(tmp_path, FILE_NAME + ".part"))
    ceiling = s.reservation.reserved
    with pytest.raises(IsADirectoryError):
        while True:
            rev = s.put(b"/k", b"v").revision
            assert rev <= ceiling
    # The failed write changed nothing: the last record is the last write that got its revision.
    assert s.revision == s.get(b"/k")[2] == ceiling
    assert isinstance(s.wal.failed, IsADirectoryError)
    with pytest.raises(IsADirectoryError):
        s.put(b"/k", b"v")
    s.close()
    assert not read_record(str(tmp_path)).clean


def test_reservations_are_exported_as_metrics(tmp_path):
    from prometheus_client import CollectorRegistry

    from megaplane.store.metrics import StoreCollector

    s = Store(str(tmp_path), small_blocks())
    try:
        for _ in range(500):
            s.put(b"/k", b"v")
        registry = CollectorRegistry()
        registry.register(StoreCollector(s))
        assert (
            registry.get_sample_value("megaplane_store_revision_reserved")
            == s.reservation.reserved
            >= s.revision
        )
        assert (
            registry.get_sample_value("megaplane_store_revision_reservations_total")
            == s.reservation.reservations_total
            > 1
        )
        assert (
            registry.get_sample_value("megaplane_store_revision_reservation_waits_total")
            == s.reservation.waits_total
        )
    finally:
        s.close()
