"""What every work-queue controller shares: informers, a rate-limited queue, N workers, start and stop.

The shape of a client-go controller: informers feed keys into a
`RateLimitingQueue`; workers take a key, `sync` it, and on an error requeue
it with per-item backoff (`forget` on success). `start` returns once the
informers have synced, so a controller is ready when it has seen the state.
"""

from __future__ import annotations

import abc
from typing import Hashable, List

from megaplane.client import SharedInformer
from megaplane.client.workers import Workers
from megaplane.client.workqueue import RateLimitingQueue, default_controller_rate_limiter
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

__all__ = ["QueueController"]

# How long start() waits for the informers' first list before it gives up.
SYNC_TIMEOUT = 60.0


class QueueController(abc.ABC):
    """A controller: informers, a rate-limited queue of keys, `workers` tasks calling `sync(key)`."""

    def __init__(self, name: str, *, workers: int = 1, clock: Clock = REAL_CLOCK) -> None:
        self._name = name
        self.workers = workers
        self.clock = clock
        self.queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name=name, clock=clock)
        self.informers: List[SharedInformer] = []
        self._workers: Workers[Hashable] = Workers(name, self.queue, self.sync, workers)

    @property
    def name(self) -> str:
        return self._name

    def informer(self, informer: SharedInformer) -> SharedInformer:
        self.informers.append(informer)
        return informer

    @abc.abstractmethod
    async def sync(self, key: Hashable) -> None:
        """Bring the world in line for `key`; raise to be retried with backoff."""

    async def start(self) -> None:
        for inf in self.informers:
            await inf.start()
        for inf in self.informers:
            if not await inf.wait_for_sync(SYNC_TIMEOUT):
                raise RuntimeError(f"{self._name}: {inf.name} did not sync within {SYNC_TIMEOUT:.0f} s")
        self._workers.start()

    async def stop(self) -> None:
        await self._workers.stop()
        for inf in reversed(self.informers):
            await inf.stop()

    def ready(self) -> bool:
        return self._workers.running and all(inf.has_synced() for inf in self.informers)

    def statistics(self) -> Statistics:
        w = self._workers
        return {"queue_depth": float(len(self.queue)), "synced": float(w.synced), "errors": float(w.errors)}
