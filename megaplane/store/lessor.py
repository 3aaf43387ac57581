"""The lease books: which etcd leases exist, when each expires, which keys are attached.

The lessor only keeps books. Deleting the attached keys of a revoked or
expired lease is the write path's job (`megaplane.store.leases`, one
revision for all of them), so this module never touches records. Time comes from an injected monotonic clock, so tests can
drive expiry with `megaplane.testing.FakeClock`.

Semantics follow etcd's lessor: a TTL below the minimum is raised to it
(etcd derives 2 s from its election timeout), TTLs above 9e9 s are refused,
id 0 means "pick one", and a restarted store gives every lease a full TTL
again, as an etcd leader does when it takes over.
"""

from __future__ import annotations

import heapq
import random
from typing import Callable, Dict, List, Optional, Set, Tuple

from .errors import LeaseExistsError, LeaseNotFoundError, LeaseTTLTooLargeError

__all__ = ["Lease", "Lessor", "MAX_LEASE_TTL"]

MAX_LEASE_TTL = 9_000_000_000


class Lease:
    """One lease: its id, TTL, deadline and attached keys."""

    __slots__ = ("id", "ttl", "expiry", "keys")

    def __init__(self, lease_id: int, ttl: int, expiry: float) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.expiry = expiry
        self.keys: Set[bytes] = set()

    def __repr__(self) -> str:
        return f"<Lease {self.id:x} ttl={self.ttl} keys={len(self.keys)}>"


class Lessor:
    """The leases of one store."""

    def __init__(self, clock: Callable[[], float], min_ttl: int = 2) -> None:
        self.clock = clock
        self.min_ttl = min_ttl
        self.leases: Dict[int, Lease] = {}
        # (expiry, id); stale entries are skipped when popped.
        self._deadlines: List[Tuple[float, int]] = []
        self._rng = random.Random()
        self.granted_total = 0
        self.revoked_total = 0
        self.renewed_total = 0
        self.expired_total = 0

    def __len__(self) -> int:
        return len(self.leases)

    def new_id(self) -> int:
        """A fresh positive 63-bit id, like etcd's request-id generator."""
        while True:
            lease_id = self._rng.getrandbits(63)
            if lease_id and lease_id not in self.leases:
                return lease_id

    def grant(self, lease_id: int, ttl: int) -> Lease:
        """Create a lease; id 0 picks one. Raises LeaseExistsError / LeaseTTLTooLargeError."""
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError()
        if lease_id == 0:
            lease_id = self.new_id()
        elif lease_id in self.leases:
            raise LeaseExistsError()
        ttl = max(ttl, self.min_ttl)
        lease = Lease(lease_id, ttl, self.clock() + ttl)
        self.leases[lease_id] = lease
        heapq.heappush(self._deadlines, (lease.expiry, lease_id))
        self.granted_total += 1
        return lease

    def restore(self, lease_id: int, ttl: int) -> Lease:
        """Re-create a lease from the WAL or a snapshot, with a full TTL from now."""
        lease = self.leases.get(lease_id)
        if lease is None:
            lease = Lease(lease_id, ttl, self.clock() + ttl)
            self.leases[lease_id] = lease
        else:
            lease.ttl = ttl
            lease.expiry = self.clock() + ttl
        heapq.heappush(self._deadlines, (lease.expiry, lease_id))
        return lease

    def get(self, lease_id: int) -> Optional[Lease]:
        return self.leases.get(lease_id)

    def renew(self, lease_id: int) -> int:
        """Keep-alive: push the deadline to now + TTL and return the TTL."""
        lease = self.leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError()
        lease.expiry = self.clock() + lease.ttl
        heapq.heappush(self._deadlines, (lease.expiry, lease_id))
        self.renewed_total += 1
        # The heap only grows with keep-alives; rebuild it when it is mostly stale.
        if len(self._deadlines) > 4 * len(self.leases) + 1024:
            self._deadlines = [(le.expiry, le.id) for le in self.leases.values()]
            heapq.heapify(self._deadlines)
        return lease.ttl

    def remaining(self, lease_id: int) -> int:
        """Whole seconds left before expiry (etcd truncates), or -1 if unknown."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return -1
        return max(0, int(lease.expiry - self.clock()))

    def remove(self, lease_id: int) -> Lease:
        """Forget a lease (the store has deleted or will delete its keys)."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise LeaseNotFoundError()
        self.revoked_total += 1
        return lease

    def expired(self) -> List[int]:
        """Ids of leases whose deadline has passed, oldest first."""
        now = self.clock()
        out: List[int] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            expiry, lease_id = heapq.heappop(heap)
            lease = self.leases.get(lease_id)
            if lease is not None and lease.expiry == expiry:
                out.append(lease_id)
        return out

    def attach(self, lease_id: int, key: bytes) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)
