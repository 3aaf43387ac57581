"""Watch guarantees: ordered, unique, reliable, atomic, resumable, bookmarkable; slow watchers."""

from __future__ import annotations

from megaplane.store import Store, StoreConfig
from megaplane.store.requests import PutRequest


def revs(events):
    return [ev[0][2] for ev in events]


def keys(events):
    return [ev[0][0] for ev in events]


def test_watch_from_now_gets_new_events_with_prev_kv():
    s = Store()
    s.put(b"k", b"v1")
    w = s.watch(b"k")
    assert w.take() == []
    s.put(b"k", b"v2")
    s.delete_range(b"k")
    evs = w.take()
    assert evs[0] == ((b"k", 2, 3, 2, b"v2", 0), (b"k", 2, 2, 1, b"v1", 0))
    assert evs[1] == ((b"k", 0, 4, 0, b"", 0), (b"k", 2, 3, 2, b"v2", 0))


def test_watch_from_old_revision_replays_then_goes_live():
    s = Store()
    for i in range(5):
        s.put(b"/registry/pods/p%d" % i, b"v")  # revisions 2..6
    w = s.watch(b"/registry/pods/", b"/registry/pods0", start_revision=4)
    assert revs(w.take()) == [4, 5, 6]
    # Caught up: nothing more to take, and the head revision is a valid bookmark.
    assert not w.has_ready()
    assert w.progress_revision() == 6
    # Live: the next write is ready at once, and after it is taken the watcher is caught up again.
    s.put(b"/registry/pods/p9", b"v")
    assert w.has_ready()
    assert w.progress_revision() is None
    assert revs(w.take()) == [7]
    assert w.progress_revision() == 7


def test_watch_across_partitions_is_in_revision_order_and_txns_are_atomic():
    s = Store()
    w = s.watch(b"/registry/", b"/registry0")
    s.put(b"/registry/pods/a", b"1")
    s.txn([], [PutRequest(b"/registry/nodes/n", b"1"), PutRequest(b"/registry/pods/b", b"1")])
    s.put(b"/registry/leases/l", b"1")  # a partition created after the watch
    s.put(b"/elsewhere", b"1")
    evs = w.take()
    assert revs(evs) == [2, 3, 3, 4]
    assert keys(evs) == [b"/registry/pods/a", b"/registry/nodes/n", b"/registry/pods/b", b"/registry/leases/l"]
    # The same from history.
    w2 = s.watch(b"/registry/", b"/registry0", start_revision=1)
    assert w2.take() == evs


def test_take_with_a_limit_never_splits_a_revision():
    s = Store()
    w = s.watch(b"a", b"z")
    s.put(b"a1", b"1")
    s.txn([], [PutRequest(b"b%d" % i, b"1") for i in range(5)])
    s.put(b"c", b"1")
    first = w.take(max_events=2)
    assert revs(first) == [2, 3, 3, 3, 3, 3]
    assert w.has_ready()
    assert revs(w.take(max_events=2)) == [4]


def test_filters_noput_nodelete():
    s = Store()
    no_put = s.watch(b"k", no_put=True)
    no_delete = s.watch(b"k", no_delete=True)
    s.put(b"k", b"1")
    s.delete_range(b"k")
    assert [ev[0][3] for ev in no_put.take()] == [0]
    assert [ev[0][3] for ev in no_delete.take()] == [1]


def test_watch_from_a_future_revision_skips_earlier_events():
    s = Store()
    w = s.watch(b"k", start_revision=4)
    s.put(b"k", b"1")  # 2
    s.put(b"k", b"2")  # 3
    s.put(b"k", b"3")  # 4
    s.put(b"k", b"4")  # 5
    assert revs(w.take()) == [4, 5]


def test_watch_below_the_compaction_floor_is_cancelled_with_compact_revision():
    s = Store()
    for i in range(5):
        s.put(b"k", b"%d" % i)
    s.compact(4)
    w = s.watch(b"k", start_revision=2)
    assert w.take() == []
    assert w.canceled and w.compact_revision == 4
    ok = s.watch(b"k", start_revision=4)
    assert revs(ok.take()) == [4, 5, 6]


def test_slow_watcher_is_demoted_and_catches_up_without_gaps():
    s = Store(None, StoreConfig(max_watch_buffer=10, history_max_events=10_000))
    w = s.watch(b"/registry/pods/", b"/registry/pods0")
    fast = s.watch(b"/registry/pods/", b"/registry/pods0")
    got_fast = []
    for i in range(100):
        s.put(b"/registry/pods/p%d" % (i % 3), b"%d" % i)
        got_fast += fast.take()
    assert not w.synced, "a watcher that stopped reading is moved off the write path"
    assert s.hub.slow_watchers_total == 1
    got = []
    while True:
        evs = w.take(max_events=7)
        if not evs:
            break
        got += evs
    assert revs(got) == list(range(2, 102)) == revs(got_fast)
    s.put(b"/registry/pods/p0", b"again")
    assert revs(w.take()) == [102], "back in sync after catching up"


def test_slow_watcher_whose_history_is_gone_is_cancelled_not_given_gaps():
    s = Store(None, StoreConfig(max_watch_buffer=10, history_max_events=20))
    w = s.watch(b"/registry/pods/", b"/registry/pods0")
    for i in range(3000):
        s.put(b"/registry/pods/p%d" % (i % 3), b"%d" % i)
    assert w.take() == []
    assert w.canceled
    floor = s.partition(b"/registry/pods/").floor
    assert w.compact_revision == floor > 2
    # It can resume from the compact revision without gaps.
    resumed = s.watch(b"/registry/pods/", b"/registry/pods0", start_revision=w.compact_revision)
    evs = resumed.take(max_events=100_000)
    assert revs(evs) == list(range(floor, s.revision + 1))


def test_cancel_stops_delivery():
    s = Store()
    w = s.watch(b"k")
    s.put(b"k", b"1")
    w.cancel()
    s.put(b"k", b"2")
    assert w.take() == [] and w.canceled and w.compact_revision == 0
    assert len(s.hub) == 0


def test_on_ready_fires_once_per_batch():
    s = Store()
    fired = []
    w = s.watch(b"k")
    w.on_ready = lambda: fired.append(s.revision)
    s.put(b"k", b"1")
    s.put(b"k", b"2")
    assert fired == [2]
    w.take()
    s.put(b"k", b"3")
    assert fired == [2, 4]


def test_progress_revision_is_a_valid_bookmark():
    s = Store()
    w = s.watch(b"k")
    s.put(b"other", b"1")
    assert w.progress_revision() == 2
    s.put(b"k", b"1")
    assert w.progress_revision() is None, "not caught up until the event is taken"
    w.take()
    assert w.progress_revision() == 3


def test_fsync_mode_events_are_not_published_before_they_are_durable(tmp_path):
    s = Store(str(tmp_path), StoreConfig(wal_modes={b"/registry/pods/": "fsync"}))
    w = s.watch(b"/registry/", b"/registry0")
    rev = s.put(b"/registry/pods/a", b"1").revision
    s.put(b"/registry/nodes/n", b"1")  # buffered: ordered behind the fsync write
    assert s.needs_durability(rev)
    assert w.take() == [], "the pod event waits for its fsync, and the node event waits behind it"
    s.wait_durable(rev)
    assert revs(w.take()) == [rev, rev + 1]
    s.close()


def test_watch_single_key_in_default_partition_and_prefix_spanning_future_kinds():
    s = Store()
    single = s.watch(b"/registry/pods")  # no trailing slash: default partition
    prefix = s.watch(b"/registry/pod", b"/registry/poe")  # reaches kinds created later
    s.put(b"/registry/pods", b"1")
    s.put(b"/registry/pods/ns/p", b"1")
    s.put(b"/registry/poddisruptionbudgets/ns/x", b"1")
    assert keys(single.take()) == [b"/registry/pods"]
    assert keys(prefix.take()) == [b"/registry/pods", b"/registry/pods/ns/p", b"/registry/poddisruptionbudgets/ns/x"]
