"""kube-apiserver's compaction of an etcd cluster (pkg/storage/etcd3/compact.go): one compaction per interval
however many API servers share the cluster.

Each interval every API server runs the election txn on ``compact_rev_key``
(Txn(VERSION(key) == t; Put(key, rev); else Range(key))): the one whose
`t` still matches the key's version wins, and compacts to the revision it
saw in the previous interval (so history of at least one interval is kept).
A loser learns the key's version as its next `t`. The first win only
records the revision (there is nothing from the last interval yet).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from ...etcd.client import EtcdClient, EtcdCompacted, EtcdError

__all__ = ["Compactor", "DEFAULT_COMPACTION_INTERVAL"]

log = logging.getLogger("megaplane.storage.etcd3.compactor")

#: --etcd-compaction-interval (kube-apiserver: 5m; 0 disables).
DEFAULT_COMPACTION_INTERVAL = 300.0


class Compactor:
    """The compaction loop of one etcd cluster."""

    def __init__(self, client: EtcdClient, interval: float = DEFAULT_COMPACTION_INTERVAL) -> None:
        self.client = client
        self.interval = interval
        #: The election slot this server tries next (the key's version it expects).
        self.compact_time = 0
        #: The revision seen at the last election: what the next win compacts to.
        self.revision = 0
        #: Compactions this server made (for tests and metrics).
        self.compactions = 0
        self._task: Optional["asyncio.Task[None]"] = None

    def __repr__(self) -> str:
        return f"<Compactor every {self.interval}s t={self.compact_time} rev={self.revision} made={self.compactions}>"

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def compact_once(self) -> None:
        """One election and, if won, one compaction (upstream's compact())."""
        won, t, current = await self.client.compact_rev_key(self.compact_time, self.revision)
        if won:
            if self.revision:
                try:
                    await self.client.compact(self.revision)
                    self.compactions += 1
                    log.info("compacted etcd to revision %d", self.revision)
                except EtcdCompacted:
                    pass  # someone compacted past it already
        self.compact_time = t
        self.revision = current

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.compact_once()
            except EtcdError as e:
                log.warning("etcd compaction failed: %s", e.message)
