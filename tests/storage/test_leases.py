"""LeaseManager: upstream's lease reuse rules (etcd3/lease_manager_test.go)."""

from __future__ import annotations

from megaplane.storage import LeaseManager


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reuse_within_window_then_new_lease() -> None:
    clock = _Clock()
    m = LeaseManager(clock=clock)
    assert m.reusable(3600) == 0
    assert m.grant_ttl(3600) == 3660  # ttl + min(60, 5% of ttl)
    m.granted(7, 3660)
    clock.now += 30
    assert m.reusable(3600) == 7
    clock.now += 31  # the lease would now die before a new object's TTL is over
    assert m.reusable(3600) == 0


def test_reuse_is_capped_by_object_count() -> None:
    clock = _Clock()
    m = LeaseManager(clock=clock, max_objects=3)
    m.reusable(100)
    m.granted(1, m.grant_ttl(100))
    clock.now += 1
    assert [m.reusable(100) for _ in range(3)] == [1, 1, 0]


def test_forgotten_lease_is_not_handed_out() -> None:
    m = LeaseManager(clock=_Clock())
    m.granted(5, m.grant_ttl(100))
    m.forget(5)
    assert m.reusable(100) == 0
