"""The synced watchers of one partition, sorted by how they match keys.

The write path dispatches each event to the group of its partition
(`Partition.watchers`): whole-partition watchers get every event, range
watchers are checked, single-key watchers are found by key. Like etcd's
watcher_group.go, minus the interval tree (ranges within one kind are few).
"""

from __future__ import annotations

from typing import Dict, List

from ..keyspace import Partition
from .watcher import Watcher

__all__ = ["WatcherGroup"]


class WatcherGroup:
    """The synced watchers of one partition, sorted by how they match keys."""

    __slots__ = ("whole", "ranges", "keys")

    def __init__(self) -> None:
        self.whole: List[Watcher] = []
        self.ranges: List[Watcher] = []
        self.keys: Dict[bytes, List[Watcher]] = {}

    def __bool__(self) -> bool:
        return bool(self.whole or self.ranges or self.keys)

    def add(self, w: Watcher, partition: Partition) -> None:
        if w.single_key is not None:
            self.keys.setdefault(w.single_key, []).append(w)
        elif w.covers_partition(partition):
            self.whole.append(w)
        else:
            self.ranges.append(w)

    def remove(self, w: Watcher) -> None:
        if w.single_key is not None:
            ws = self.keys.get(w.single_key)
            if ws is not None and w in ws:
                ws.remove(w)
                if not ws:
                    del self.keys[w.single_key]
            return
        if w in self.whole:
            self.whole.remove(w)
        elif w in self.ranges:
            self.ranges.remove(w)
