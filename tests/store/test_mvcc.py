"""MVCC semantics of the embedded store, one behaviour per test, as etcd defines them."""

from __future__ import annotations

import pytest

from megaplane.store import Store, StoreConfig, errors
from megaplane.store.requests import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
    TxnRequest,
)


@pytest.fixture
def store() -> Store:
    return Store()


def snapshot_state(s: Store):
    """Everything observable: revision, compact revision, all records, leases."""
    return (
        s.revision,
        s.compact_revision,
        s.range(b"\x00", b"\x00").kvs,
        sorted((le.id, le.ttl, sorted(le.keys)) for le in s.lessor.leases.values()),
    )


def test_revision_starts_at_1_and_each_write_takes_the_next(store):
    assert store.revision == 1
    assert store.put(b"a", b"1").revision == 2
    assert store.put(b"b", b"1").revision == 3
    assert store.delete_range(b"a").revision == 4
    assert store.revision == 4


def test_put_tracks_create_mod_version(store):
    store.put(b"k", b"v1")
    store.put(b"k", b"v2")
    (kv,) = store.range(b"k").kvs
    assert kv == (b"k", 2, 3, 2, b"v2", 0)
    store.delete_range(b"k")
    store.put(b"k", b"v3")
    (kv,) = store.range(b"k").kvs
    assert kv == (b"k", 5, 5, 1, b"v3", 0), "a re-created key starts a new generation"


def test_put_prev_kv(store):
    assert store.put(b"k", b"v1", prev_kv=True).prev_kv is None
    assert store.put(b"k", b"v2", prev_kv=True).prev_kv == (b"k", 2, 2, 1, b"v1", 0)


def test_ignore_value_and_ignore_lease(store):
    lease = store.lease_grant(60)
    store.put(b"k", b"v1", lease.id)
    store.put(b"k", b"", ignore_value=True)
    (kv,) = store.range(b"k").kvs
    assert kv[4] == b"v1" and kv[5] == 0, "without ignore_lease the lease is detached"
    store.put(b"k", b"v2", lease.id)
    store.put(b"k", b"v3", ignore_lease=True)
    (kv,) = store.range(b"k").kvs
    assert kv[4] == b"v3" and kv[5] == lease.id


def test_range_prefix_from_key_and_all(store):
    for k in (b"a", b"ab", b"abc", b"b", b"c"):
        store.put(k, k)
    keys = lambda r: [kv[0] for kv in r.kvs]  # noqa: E731
    assert keys(store.range(b"ab", b"ac")) == [b"ab", b"abc"]
    assert keys(store.range(b"b", b"\x00")) == [b"b", b"c"]
    assert keys(store.range(b"\x00", b"\x00")) == [b"a", b"ab", b"abc", b"b", b"c"]
    assert keys(store.range(b"c", b"a")) == [], "an inverted range matches nothing"


def test_range_limit_count_and_more(store):
    for i in range(10):
        store.put(b"/registry/pods/ns/p%d" % i, b"x")
    r = store.range(b"/registry/pods/", b"/registry/pods0", limit=3)
    assert [kv[0] for kv in r.kvs] == [b"/registry/pods/ns/p0", b"/registry/pods/ns/p1", b"/registry/pods/ns/p2"]
    assert r.count == 10 and r.more
    # kube-apiserver pagination: next page from lastKey + "\x00" at the first page's revision.
    r2 = store.range(r.kvs[-1][0] + b"\x00", b"/registry/pods0", limit=3, revision=r.revision)
    assert r2.count == 7 and r2.more
    r3 = store.range(b"/registry/pods/", b"/registry/pods0", limit=10)
    assert not r3.more


def test_range_keys_only_and_count_only(store):
    store.put(b"a", b"value")
    store.put(b"b", b"value")
    r = store.range(b"a", b"c", keys_only=True)
    assert [kv[4] for kv in r.kvs] == [b"", b""]
    r = store.range(b"a", b"c", count_only=True)
    assert r.kvs == [] and r.count == 2 and not r.more


def test_range_at_old_revision_sees_deleted_and_older_values(store):
    store.put(b"/registry/pods/a", b"1")  # 2
    store.put(b"/registry/pods/b", b"1")  # 3
    store.put(b"/registry/pods/a", b"2")  # 4
    store.delete_range(b"/registry/pods/b")  # 5
    store.put(b"/registry/pods/c", b"1")  # 6
    r = store.range(b"/registry/pods/", b"/registry/pods0", revision=3)
    assert [(kv[0], kv[4]) for kv in r.kvs] == [(b"/registry/pods/a", b"1"), (b"/registry/pods/b", b"1")]
    assert r.count == 2
    assert r.revision == 6, "the header carries the current revision"
    r = store.range(b"/registry/pods/", b"/registry/pods0", revision=4, limit=1)
    assert [kv[0] for kv in r.kvs] == [b"/registry/pods/a"] and r.count == 2 and r.more
    assert store.range(b"/registry/pods/b", revision=4).kvs[0][4] == b"1"
    assert store.range(b"/registry/pods/c", revision=5).kvs == []


def test_pages_at_a_pinned_revision_stay_that_revision_while_writes_go_on(store):
    # A paged list pins its first page's revision; between pages keys are created, updated, deleted and
    # re-created. Every page must still be the key space at the pinned revision (the overlay of that revision
    # is kept and caught up across pages, not rebuilt).
    prefix, end = b"/registry/nodes/", b"/registry/nodes0"
    for i in range(40):
        store.put(prefix + b"n%02d" % i, b"v0")
    for i in range(0, 40, 3):
        store.put(prefix + b"n%02d" % i, b"v1")
    pinned = store.revision
    expected = {kv[0]: kv[4] for kv in store.range(prefix, end).kvs}
    got = {}
    start, step = prefix, 0
    while True:
        r = store.range(start, end, revision=pinned, limit=7)
        assert r.count == len(expected) - len(got), "remaining count as of the pinned revision"
        got.update({kv[0]: kv[4] for kv in r.kvs})
        if not r.more:
            break
        start = r.kvs[-1][0] + b"\x00"
        # Writes between pages: an update, a delete, a create, a delete then re-create.
        store.put(prefix + b"n%02d" % (step % 40), b"v%d" % (step + 2))
        store.delete_range(prefix + b"n%02d" % ((step * 7 + 5) % 40))
        store.put(prefix + b"new%02d" % step, b"x")
        store.delete_range(prefix + b"n%02d" % ((step * 11 + 3) % 40))
        store.put(prefix + b"n%02d" % ((step * 11 + 3) % 40), b"again")
        step += 1
    assert step > 3
    assert got == expected
    assert store.range(prefix, end, revision=pinned, count_only=True).count == len(expected)


def test_range_across_partitions_is_in_key_order(store):
    keys = [b"/registry/leases/ns/l", b"/registry/pods/ns/p", b"/registry/podsx", b"/registry/a.b/c/x", b"/z"]
    for k in keys:
        store.put(k, b"v")
    r = store.range(b"/registry/", b"/registry0")
    assert [kv[0] for kv in r.kvs] == sorted(k for k in keys if k.startswith(b"/registry/"))
    assert r.count == 4
    r = store.range(b"\x00", b"\x00", limit=2)
    assert [kv[0] for kv in r.kvs] == sorted(keys)[:2] and r.count == 5


def test_range_sort_and_filters(store):
    store.put(b"a", b"3")
    store.put(b"b", b"1")
    store.put(b"c", b"2")
    store.put(b"a", b"4")
    req = RangeRequest(b"a", b"d", sort_order=SortOrder.DESCEND, sort_target=SortTarget.KEY)
    assert [kv[0] for kv in store.range_request(req).kvs] == [b"c", b"b", b"a"]
    req = RangeRequest(b"a", b"d", sort_order=SortOrder.ASCEND, sort_target=SortTarget.VALUE, limit=2)
    r = store.range_request(req)
    assert [kv[4] for kv in r.kvs] == [b"1", b"2"] and r.more and r.count == 3
    req = RangeRequest(b"a", b"d", min_mod_revision=4)
    assert [kv[0] for kv in store.range_request(req).kvs] == [b"a", b"c"]
    assert store.range_request(req).count == 3, "count is taken before filters, as in etcd"


def test_delete_range_single_prefix_and_prev_kv(store):
    for k in (b"a", b"b1", b"b2", b"c"):
        store.put(k, k)
    r = store.delete_range(b"b", b"c", prev_kv=True)
    assert r.deleted == 2 and [kv[0] for kv in r.prev_kvs] == [b"b1", b"b2"]
    assert r.revision == 6
    assert store.delete_range(b"zz").deleted == 0
    assert store.revision == 6, "deleting nothing does not bump the revision"


def test_txn_compares_and_branches(store):
    store.put(b"k", b"v1")
    ok = store.txn(
        [Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"v1")],
        [PutRequest(b"k", b"v2"), RangeRequest(b"k")],
        [PutRequest(b"other", b"x")],
    )
    assert ok.succeeded and ok.revision == 3
    assert ok.responses[1].kvs[0][4] == b"v2", "ops read the txn's own writes"
    fail = store.txn(
        [Compare(b"k", CompareTarget.MOD, CompareResult.LESS, 3)],
        [PutRequest(b"k", b"v3")],
        [RangeRequest(b"k")],
    )
    assert not fail.succeeded and fail.revision == 3, "a read-only branch takes no revision"
    # Comparing a value of a missing key always fails; version of a missing key is 0.
    assert not store.txn([Compare(b"nope", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"x")]).succeeded
    assert store.txn([Compare(b"nope", CompareTarget.VERSION, CompareResult.EQUAL, 0)]).succeeded


def test_txn_all_ops_share_one_revision(store):
    r = store.txn([], [PutRequest(b"/registry/pods/a", b"1"), PutRequest(b"/registry/nodes/b", b"1"), DeleteRangeRequest(b"x")])
    assert r.revision == 2
    assert {kv[2] for kv in store.range(b"\x00", b"\x00").kvs} == {2}


def test_kube_apiserver_txn_shapes(store):
    key = b"/registry/pods/default/p1"
    create = store.txn([Compare(key, CompareTarget.MOD, CompareResult.EQUAL, 0)], [PutRequest(key, b"v1")], [])
    assert create.succeeded
    again = store.txn([Compare(key, CompareTarget.MOD, CompareResult.EQUAL, 0)], [PutRequest(key, b"v1")], [RangeRequest(key)])
    assert not again.succeeded and again.responses[0].kvs[0][2] == create.revision
    update = store.txn(
        [Compare(key, CompareTarget.MOD, CompareResult.EQUAL, create.revision)], [PutRequest(key, b"v2")], [RangeRequest(key)]
    )
    assert update.succeeded
    stale = store.txn(
        [Compare(key, CompareTarget.MOD, CompareResult.EQUAL, create.revision)], [PutRequest(key, b"v3")], [RangeRequest(key)]
    )
    assert not stale.succeeded and stale.responses[0].kvs[0][4] == b"v2"
    delete = store.txn(
        [Compare(key, CompareTarget.MOD, CompareResult.EQUAL, update.revision)], [DeleteRangeRequest(key)], [RangeRequest(key)]
    )
    assert delete.succeeded and delete.responses[0].deleted == 1


def test_nested_txn_compares_see_the_state_before_the_txn(store):
    store.put(b"k", b"old")
    r = store.txn(
        [],
        [
            PutRequest(b"k2", b"x"),
            TxnRequest([Compare(b"k2", CompareTarget.VERSION, CompareResult.EQUAL, 0)], [PutRequest(b"k3", b"seen-before")], []),
        ],
        [],
    )
    assert r.responses[1].succeeded, "nested compares are evaluated before any op runs"
    assert store.range(b"k3").kvs[0][4] == b"seen-before"


def test_compare_on_a_range(store):
    store.put(b"p/a", b"1")
    store.put(b"p/b", b"1")
    cmp = Compare(b"p/", CompareTarget.VALUE, CompareResult.EQUAL, b"1", range_end=b"p0")
    assert store.txn([cmp]).succeeded
    store.put(b"p/c", b"2")
    assert not store.txn([cmp]).succeeded


def test_compaction(store):
    for i in range(5):
        store.put(b"k", b"%d" % i)  # revisions 2..6
    store.delete_range(b"k")  # 7
    store.compact(4)
    assert store.range(b"k", revision=4).kvs[0][4] == b"2"
    with pytest.raises(errors.CompactedError, match="required revision has been compacted"):
        store.range(b"k", revision=3)
    with pytest.raises(errors.CompactedError):
        store.compact(4)
    with pytest.raises(errors.FutureRevisionError, match="required revision is a future revision"):
        store.compact(100)
    store.put(b"other", b"x")  # 8
    store.compact(8)
    # The deleted key is forgotten: no partition keeps it in its index or history.
    assert all(b"k" not in p.kvs for p in store.partitions())
    assert all(ev[0][0] != b"k" for p in store.partitions() for ev in p.events)


def test_range_future_revision(store):
    store.put(b"a", b"1")
    with pytest.raises(errors.FutureRevisionError):
        store.range(b"a", revision=3)
    assert store.range(b"a", revision=-5).kvs[0][4] == b"1", "a negative revision reads the current one (etcd)"


def test_history_window_trims_at_revision_boundaries():
    s = Store(None, StoreConfig(history_max_events=10))
    for i in range(3000):
        s.put(b"/registry/pods/p%d" % (i % 7), b"v")
    p = s.partition(b"/registry/pods/")
    assert len(p.events) <= 10 + 1024 + 2
    assert p.floor == p.events[0][0][2]
    with pytest.raises(errors.CompactedError):
        s.range(b"/registry/pods/", b"/registry/pods0", revision=p.floor - 1)
    s.range(b"/registry/pods/", b"/registry/pods0", revision=p.floor)


# -- bad input: etcd's error, and nothing changes -----------------------------------------

BAD_CALLS = [
    ("empty key put", lambda s: s.put(b"", b"v"), errors.EmptyKeyError, "key is not provided"),
    ("empty key range", lambda s: s.range(b""), errors.EmptyKeyError, "key is not provided"),
    ("empty key delete", lambda s: s.delete_range(b""), errors.EmptyKeyError, "key is not provided"),
    ("unknown lease", lambda s: s.put(b"k", b"v", 12345), errors.LeaseNotFoundError, "requested lease not found"),
    ("ignore_value with value", lambda s: s.put(b"k", b"v", ignore_value=True), errors.ValueProvidedError, "value is provided"),
    ("ignore_lease with lease", lambda s: s.put(b"k", b"v", 7, ignore_lease=True), errors.LeaseProvidedError, "lease is provided"),
    ("ignore_value on missing key", lambda s: s.put(b"missing", b"", ignore_value=True), errors.KeyNotFoundError, "key not found"),
    ("future revision", lambda s: s.range(b"k", revision=10**9), errors.FutureRevisionError, "future revision"),
    ("revoke unknown lease", lambda s: s.lease_revoke(999), errors.LeaseNotFoundError, "requested lease not found"),
    ("keepalive unknown lease", lambda s: s.lease_keepalive(999), errors.LeaseNotFoundError, "requested lease not found"),
    ("lease ttl too large", lambda s: s.lease_grant(9_000_000_001), errors.LeaseTTLTooLargeError, "too large lease TTL"),
    (
        "duplicate put in txn",
        lambda s: s.txn([], [PutRequest(b"k", b"1"), PutRequest(b"k", b"2")]),
        errors.DuplicateKeyError,
        "duplicate key given in txn request",
    ),
    (
        "put overlapping delete in txn",
        lambda s: s.txn([], [DeleteRangeRequest(b"a", b"z"), PutRequest(b"k", b"2")]),
        errors.DuplicateKeyError,
        "duplicate key",
    ),
    (
        "put in nested txn overlapping outer put",
        lambda s: s.txn([], [PutRequest(b"k", b"1"), TxnRequest([], [PutRequest(b"k", b"2")], [])]),
        errors.DuplicateKeyError,
        "duplicate key",
    ),
    ("empty op in txn", lambda s: s.txn([], [None]), errors.KeyNotFoundError, "key not found"),
    (
        "too many ops",
        lambda s: s.txn([], [PutRequest(b"k%d" % i, b"") for i in range(129)]),
        errors.TooManyOpsError,
        "too many operations in txn request",
    ),
    (
        "txn put with unknown lease",
        lambda s: s.txn([], [PutRequest(b"ok", b"1"), PutRequest(b"k", b"v", 4242)]),
        errors.LeaseNotFoundError,
        "requested lease not found",
    ),
    (
        "txn range at future revision",
        lambda s: s.txn([], [PutRequest(b"ok", b"1"), RangeRequest(b"k", revision=10**9)]),
        errors.FutureRevisionError,
        "future revision",
    ),
    ("value too large", lambda s: s.put(b"k", b"x" * 2_000_000), errors.RequestTooLargeError, "request is too large"),
    ("compact future", lambda s: s.compact(10**9), errors.FutureRevisionError, "future revision"),
]


@pytest.mark.parametrize("name,call,exc,message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_gets_etcds_error_and_changes_nothing(store, name, call, exc, message):
    lease = store.lease_grant(60, 7)
    store.put(b"k", b"v", lease.id)
    store.put(b"/registry/pods/a", b"v")
    before = snapshot_state(store)
    with pytest.raises(exc) as info:
        call(store)
    assert message in str(info.value)
    assert info.value.code in {"INVALID_ARGUMENT", "OUT_OF_RANGE", "NOT_FOUND", "FAILED_PRECONDITION"}
    assert snapshot_state(store) == before


def test_compacted_read_after_compaction_changes_nothing(store):
    for i in range(5):
        store.put(b"k", b"%d" % i)
    store.compact(5)
    before = snapshot_state(store)
    with pytest.raises(errors.CompactedError):
        store.range(b"k", revision=2)
    with pytest.raises(errors.CompactedError):
        store.txn([], [PutRequest(b"x", b"1"), RangeRequest(b"k", revision=2)])
    assert snapshot_state(store) == before


def test_a_delete_range_larger_than_the_history_window_is_kept_whole():
    # One revision is never split: the window drops the older events, keeps every delete of the range,
    # and a watcher that started before the range sees all of them.
    s = Store(None, StoreConfig(history_max_events=50))
    for i in range(3000):
        s.put(b"/registry/pods/ns/p%05d" % i, b"v")
    w = s.watch(b"/registry/pods/", b"/registry/pods0", 0)
    res = s.delete_range(b"/registry/pods/", b"/registry/pods0")
    assert res.deleted == 3000
    p = s._partitions[b"/registry/pods/"]
    assert {ev[0][2] for ev in p.events} == {res.revision} and len(p.events) == 3000
    got = []
    while True:
        batch = w.take()
        if not batch:
            break
        got += batch
    assert [ev[0][0] for ev in got] == [b"/registry/pods/ns/p%05d" % i for i in range(3000)]
    assert all(ev[0][3] == 0 for ev in got)  # deletes
    s.put(b"/registry/pods/ns/after", b"v")
    assert s.range(b"/registry/pods/ns/after").kvs
