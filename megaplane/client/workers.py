"""Workers over a rate-limited queue: the loop every client-go controller runs (processNextWorkItem).

`Workers(queue, sync, n)` runs `n` tasks that take a key, call `sync(key)`,
and on success `forget` it (its backoff resets) or on an error requeue it
with per-item backoff (`add_rate_limited`); `done` always follows, so a key
re-added while it was being processed is handed out again. Errors a caller
treats as "nothing to retry" (e.g. a conflict the informer will resolve)
are named in `forget_on`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Generic, Hashable, List, Tuple, Type, TypeVar

from megaplane.client.workqueue import QueueShutDown, RateLimitingQueue
from megaplane.runtime import cancel_tasks

__all__ = ["Workers"]

K = TypeVar("K", bound=Hashable)

log = logging.getLogger("megaplane.client.workers")


class Workers(Generic[K]):
    def __init__(
        self,
        name: str,
        queue: RateLimitingQueue[K],
        sync: Callable[[K], Awaitable[None]],
        workers: int = 1,
        *,
        forget_on: Tuple[Type[BaseException], ...] = (),
    ) -> None:
        self.name = name
        self.queue = queue
        self.sync = sync
        self.workers = workers
        self.forget_on = forget_on
        self.synced = 0
        self.errors = 0
        self._tasks: List["asyncio.Task[None]"] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(), name=f"{self.name}-worker-{i}") for i in range(self.workers)]

    async def _work(self) -> None:
        queue = self.queue
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            try:
                await self.sync(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except self.forget_on:
                queue.forget(key)
            except Exception as exc:
                self.errors += 1
                log.info("%s: syncing %r failed (retrying): %s", self.name, key, exc)
                queue.add_rate_limited(key)
            else:
                self.synced += 1
                queue.forget(key)
            queue.done(key)

    async def stop(self) -> None:
        """Shut the queue down and end the workers (a sync in progress is cancelled)."""
        self.queue.shutdown()
        await cancel_tasks(self._tasks)
        self._tasks = []
