"""Storage leases for kinds stored with a TTL (Events), shared as upstream's lease manager shares them.

One lease serves the writes made within its reuse period (5% of the TTL,
at most a minute, at most 1000 objects); it is granted for the TTL plus
that period, so each object lives at least its TTL.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Tuple

__all__ = ["StorageLeases"]

MAX_OBJECTS_PER_LEASE = 1000


class StorageLeases:
    def __init__(self, grant: Callable[[int], int], clock: Callable[[], float] = time.monotonic) -> None:
        self._grant = grant
        self._clock = clock
        # ttl -> (lease id, granted at, objects attached)
        self._current: Dict[int, Tuple[int, float, int]] = {}

    def lease_for(self, ttl: int) -> int:
        reuse = min(60.0, 0.05 * ttl)
        lease, granted, used = self._current.get(ttl, (0, 0.0, 0))
        now = self._clock()
        if not lease or now - granted >= reuse or used >= MAX_OBJECTS_PER_LEASE:
            lease = self._grant(ttl + max(int(reuse), 1))
            granted, used = now, 0
        self._current[ttl] = (lease, granted, used + 1)
        return lease
