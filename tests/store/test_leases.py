"""etcd leases: grant, keep-alive, revoke, time-to-live and expiry on a fake clock."""

from __future__ import annotations

import pytest

from megaplane.store import Store, StoreConfig, errors
from megaplane.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock) -> Store:
    return Store(None, StoreConfig(min_lease_ttl=2), clock=clock)


def test_grant_picks_a_nonzero_id_and_honours_a_chosen_one(store):
    a = store.lease_grant(10)
    assert a.id > 0 and a.ttl == 10
    b = store.lease_grant(10, 0x1234)
    assert b.id == 0x1234
    with pytest.raises(errors.LeaseExistsError, match="lease already exists"):
        store.lease_grant(10, 0x1234)
    assert sorted(store.lease_ids()) == sorted([a.id, b.id])


def test_ttl_below_the_minimum_is_raised(store):
    assert store.lease_grant(1).ttl == 2
    assert store.lease_grant(0).ttl == 2


def test_expiry_deletes_attached_keys_in_one_revision(store, clock):
    lease = store.lease_grant(10)
    store.put(b"a", b"1", lease.id)
    store.put(b"b", b"1", lease.id)
    store.put(b"c", b"1")
    w = store.watch(b"\x00", b"\x00")
    clock.advance(9)
    assert store.expire_leases() == 0
    clock.advance(1.5)
    assert store.expire_leases() == 1
    assert [kv[0] for kv in store.range(b"\x00", b"\x00").kvs] == [b"c"]
    evs = w.take()
    assert [(ev[0][0], ev[0][2], ev[0][3]) for ev in evs] == [(b"a", 5, 0), (b"b", 5, 0)]
    assert store.lease_time_to_live(lease.id) == (-1, 0, [])


def test_keepalive_pushes_the_deadline(store, clock):
    lease = store.lease_grant(10)
    store.put(b"a", b"1", lease.id)
    for _ in range(5):
        clock.advance(8)
        assert store.lease_keepalive(lease.id) == 10
        assert store.expire_leases() == 0
    remaining, granted, keys = store.lease_time_to_live(lease.id, keys=True)
    assert (remaining, granted, keys) == (10, 10, [b"a"])
    clock.advance(3.5)
    assert store.lease_time_to_live(lease.id)[0] == 6, "etcd truncates the remaining seconds"


def test_revoke_deletes_keys_and_unknown_leases_fail(store):
    lease = store.lease_grant(60)
    store.put(b"a", b"1", lease.id)
    rev = store.lease_revoke(lease.id)
    assert rev == 3 and store.range(b"a").kvs == []
    with pytest.raises(errors.LeaseNotFoundError):
        store.lease_revoke(lease.id)
    empty = store.lease_grant(60)
    assert store.lease_revoke(empty.id) == 3, "a lease with no keys revokes without a new revision"


def test_reattaching_a_key_moves_it_between_leases(store, clock):
    l1 = store.lease_grant(10)
    l2 = store.lease_grant(100)
    store.put(b"k", b"1", l1.id)
    store.put(b"k", b"2", l2.id)
    clock.advance(20)
    store.expire_leases()
    assert store.range(b"k").kvs[0][4] == b"2", "the key left l1 when it moved to l2"
    store.put(b"k", b"3")  # no lease: detached from l2
    store.lease_revoke(l2.id)
    assert store.range(b"k").kvs[0][4] == b"3"
    store.delete_range(b"k")
    assert store.lessor.leases == {}


def test_leases_survive_restart_with_a_full_ttl(tmp_path, clock):
    s = Store(str(tmp_path), clock=clock)
    lease = s.lease_grant(30)
    s.put(b"a", b"1", lease.id)
    clock.advance(25)
    s.close()
    s2 = Store(str(tmp_path), clock=clock)
    assert s2.lease_time_to_live(lease.id, keys=True) == (30, 30, [b"a"])
    clock.advance(31)
    assert s2.expire_leases() == 1
    assert s2.range(b"a").kvs == []
    s2.close()
    s3 = Store(str(tmp_path), clock=clock)
    assert s3.range(b"a").kvs == [] and s3.lease_ids() == []
    s3.close()
