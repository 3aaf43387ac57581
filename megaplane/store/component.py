"""The embedded store as a `megaplane.runtime.Component`: loop attachment, the one lease-expiry loop, close.

Whoever serves the store (the etcd front end, the API server, or both in
`megaplane up`) runs beside this component; none of them owns the store's
lifecycle, so it is opened once, leases are expired by exactly one loop
(etcd's lessor: every 500 ms), and it is closed once, after everything
that uses it has stopped.
"""

from __future__ import annotations

import asyncio
from typing import Dict

from megaplane.runtime import REAL_CLOCK, Clock, PeriodicTask
from megaplane.store.mvcc import Store

__all__ = ["StoreComponent", "LEASE_EXPIRY_INTERVAL"]

# etcd's lessor revokes expired leases every 500 ms.
LEASE_EXPIRY_INTERVAL = 0.5


class StoreComponent:
    def __init__(self, store: Store, *, clock: Clock = REAL_CLOCK) -> None:
        self.store = store
        self._expiry = PeriodicTask("lease-expiry", LEASE_EXPIRY_INTERVAL, store.expire_leases, clock=clock)
        self._started = False

    @property
    def name(self) -> str:
        return "store"

    async def start(self) -> None:
        self.store.attach_loop(asyncio.get_running_loop())
        await self._expiry.start()
        self._started = True

    async def stop(self) -> None:
        await self._expiry.stop()
        if self._started:
            self.store.close()
            self._started = False

    def ready(self) -> bool:
        return self._started

    def statistics(self) -> Dict[str, float]:
        stats: Dict[str, float] = {"revision": float(self.store.revision), "keys": float(self.store.key_count())}
        for k, v in self._expiry.statistics().items():
            stats[f"lease_expiry_{k}"] = float(v)
        return stats


