"""A watch cache's objects of one kind as decoded dicts, decoded once per stored revision.

What upstream's admission plugins read through an informer's lister: the
LimitRanges, ResourceQuotas of a namespace. A namespace without any costs
one empty range scan of the cache's index; the dicts are shared, callers
must not change them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import orjson

from megaplane.apiserver.watchcache import CachedObject, WatchCache

__all__ = ["DecodedObjects"]

_EMPTY: List[Tuple[CachedObject, Dict[str, Any]]] = []


class DecodedObjects:
    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self.resource = cache.resource
        self._decoded: Dict[bytes, Tuple[int, Dict[str, Any]]] = {}

    def decode(self, cur: CachedObject) -> Dict[str, Any]:
        hit = self._decoded.get(cur.key)
        if hit is not None and hit[0] == cur.rv:
            return hit[1]
        obj: Dict[str, Any] = orjson.loads(cur.data)
        if len(self._decoded) > 4 * max(len(self.cache.objects), 16):
            self._decoded.clear()  # forget deleted objects now and then
        self._decoded[cur.key] = (cur.rv, obj)
        return obj

    def in_namespace(self, namespace: str) -> List[Tuple[CachedObject, Dict[str, Any]]]:
        prefix = self.resource.namespace_prefix(namespace)
        if not self.cache.count_prefix(prefix):
            return _EMPTY  # the common case (no LimitRange, no quota): no list, no iterator
        return [(cur, self.decode(cur)) for cur in self.cache.iter_prefix(prefix)]
