"""What every work-queue controller shares: informers, a rate-limited queue, N workers, start and stop.

The shape of a client-go controller: informers feed keys into a
`RateLimitingQueue`; workers take a key, `sync` it, and on an error requeue
it with per-item backoff (`forget` on success). `start` returns once the
informers have synced, so a controller is ready when it has seen the state.
"""

from __future__ import annotations

import abc
from typing import Hashable, List, Mapping, Optional

from megaplane.client import ResourceClient, SharedInformer
from megaplane.client.cache import IndexFunc
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.client.workers import Workers
from megaplane.client.workqueue import RateLimitingQueue, default_controller_rate_limiter
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

__all__ = ["QueueController"]

# How long start() waits for the informers' first list before it gives up.
SYNC_TIMEOUT = 60.0


class QueueController(abc.ABC):
    """A controller: informers, a rate-limited queue of keys, `workers` tasks calling `sync(key)`."""

    def __init__(self, name: str, *, workers: int = 1, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        self._name = name
        self.workers = workers
        self.clock = clock
        self.queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name=name, clock=clock)
        self.informers: List[SharedInformer] = []
        #: Where shared informers come from: the process's factory (megaplane.controllers.catalog), or one of
        #: this controller's own when it is built alone.
        self.informer_factory = informers if informers is not None else SharedInformerFactory(clock=clock)
        # The informers this controller started (those nobody had started yet); it stops only these.
        self._started: List[SharedInformer] = []
        self._workers: Workers[Hashable] = Workers(name, self.queue, self.sync, workers)

    @property
    def name(self) -> str:
        return self._name

    def informer(self, informer: SharedInformer) -> SharedInformer:
        self.informers.append(informer)
        return informer

    def shared_informer(self, resource: ResourceClient, *, namespace: Optional[str] = None,
                        label_selector: Optional[str] = None, field_selector: Optional[str] = None,
                        indexers: Optional[Mapping[str, IndexFunc]] = None) -> SharedInformer:
        """The factory's informer of `resource` (shared with the process's other controllers: read-only
        objects), waited for by `start`."""
        return self.informer(self.informer_factory.informer(
            resource, namespace=namespace, label_selector=label_selector, field_selector=field_selector,
            indexers=indexers))

    @abc.abstractmethod
    async def sync(self, key: Hashable) -> None:
        """Bring the world in line for `key`; raise to be retried with backoff."""

    async def start(self) -> None:
        for inf in self.informers:
            if not inf.running:
                await inf.start()
                self._started.append(inf)
        for inf in self.informers:
            if not await inf.wait_for_sync(SYNC_TIMEOUT):
                raise RuntimeError(f"{self._name}: {inf.name} did not sync within {SYNC_TIMEOUT:.0f} s")
        self._workers.start()

    async def stop(self) -> None:
        await self._workers.stop()
        started, self._started = self._started, []
        for inf in reversed(started):
            await inf.stop()

    def ready(self) -> bool:
        return self._workers.running and all(inf.has_synced() for inf in self.informers)

    def statistics(self) -> Statistics:
        w = self._workers
        return {"queue_depth": float(len(self.queue)), "synced": float(w.synced), "errors": float(w.errors)}
