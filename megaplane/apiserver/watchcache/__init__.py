"""megaplane.apiserver.watchcache: per-kind caches of current objects and recent events, and their watchers.

`cache` holds one kind's state (hash map, lazily sorted key index, event
window) fed by a backend watch; `watcher` is one client's filtered view
of it with coalesced writes and bookmarks.
"""

from megaplane.apiserver.watchcache.cache import CachedObject, CacheEvent, TooOldError, WatchCache
from megaplane.apiserver.watchcache.watcher import CacheWatcher, Sink

__all__ = ["WatchCache", "CachedObject", "CacheEvent", "TooOldError", "CacheWatcher", "Sink"]
