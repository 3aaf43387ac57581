"""megaplane.apiserver.watchcache: per-kind caches of current objects and recent events (the cacher's role).

`cache` holds one kind's state (hash map, lazily sorted key index, event
window), fed by the storage watch, and hands typed events (`CacheEvent`)
to its listeners; `filter` is what one watcher sees of them (selector
transitions as upstream); `delegator` is the `Storage` that decides, by
resourceVersion semantics, whether a cache or storage answers a read
(upstream's CacheDelegator). Framing events for a protocol is the
listeners' business (HTTP: `apiserver.http.watch`).
"""

from megaplane.apiserver.watchcache.cache import CachedObject, CacheEvent, TooOldError, WatchCache, json_line
from megaplane.apiserver.watchcache.delegator import CacheDelegator, CachesByPrefix
from megaplane.apiserver.watchcache.filter import WatchFilter

__all__ = ["WatchCache", "CachedObject", "CacheEvent", "TooOldError", "WatchFilter", "json_line", "CacheDelegator",
           "CachesByPrefix"]
