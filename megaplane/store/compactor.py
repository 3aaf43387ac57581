"""Automatic compaction with etcd's modes (--auto-compaction-mode, --auto-compaction-retention).

- periodic: keep `retention` of history. Revisions are sampled every tenth
  of the retention (at most hourly); each tick compacts to the newest sample
  that is at least `retention` old.
- revision: every 5 minutes, compact to the current revision - retention.

kube-apiserver compacts on its own every 5 minutes; this is for stores used
by other clients. The per-partition history cap (--history-max-events)
bounds memory either way. Runs as a task on the store's event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Deque, Protocol, Tuple

from ..units import parse_duration
from .errors import StoreError

__all__ = ["start_auto_compaction"]

log = logging.getLogger("megaplane.store.compactor")


class Compactable(Protocol):
    """What the compactor needs from a store (`megaplane.store.Store`)."""

    @property
    def revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    def compact(self, revision: int) -> int:
        """etcd Compact."""


def start_auto_compaction(store: Compactable, mode: str, retention: str) -> "asyncio.Task[None]":
    """Start the compactor on the running loop."""
    loop = asyncio.get_running_loop()
    if mode == "revision":
        return loop.create_task(_revision_loop(store, int(retention)))
    # etcd reads a bare number as hours in periodic mode.
    seconds = parse_duration(retention if any(c.isalpha() for c in retention) else retention + "h")
    return loop.create_task(_periodic_loop(store, seconds))


def _compact(store: Compactable, revision: int) -> None:
    if revision <= store.compact_revision or revision > store.revision:
        return
    try:
        store.compact(revision)
        log.info("auto-compacted to revision %d", revision)
    except StoreError as exc:
        log.debug("auto-compaction to %d skipped: %s", revision, exc.message)


async def _periodic_loop(store: Compactable, retention: float) -> None:
    interval = min(max(retention / 10, 1.0), 3600.0)
    samples: Deque[Tuple[float, int]] = collections.deque()
    while True:
        now = time.monotonic()
        samples.append((now, store.revision))
        target = 0
        while samples and now - samples[0][0] >= retention:
            target = samples.popleft()[1]
        if target:
            _compact(store, target)
        await asyncio.sleep(interval)


async def _revision_loop(store: Compactable, keep: int) -> None:
    while True:
        await asyncio.sleep(300.0)
        _compact(store, store.revision - keep)
