"""megaplane.store.watch: etcd watches over the store's partitions.

`hub` (WatchHub: registration, dispatch of committed events, slow-watcher
policy, catch-up from history), `watcher` (Watcher: one watch, as its
consumer sees it) and `groups` (WatcherGroup: the synced watchers of one
partition). The hub sees the store only through `HistorySource`; the write
path sees the hub only through `megaplane.store.writer.WatchSink`.
"""

from .groups import WatcherGroup
from .hub import HistorySource, WatchHub
from .watcher import Watcher, WatcherOwner

__all__ = ["WatchHub", "HistorySource", "Watcher", "WatcherOwner", "WatcherGroup"]
