"""What one watcher sees of a kind's events: upstream's cacheWatcher.convertToWatchEvent.

With a selector, an object that starts matching arrives as ADDED, one that
stops matching as DELETED (its previous state at the event's revision),
and one that matches before and after as MODIFIED. Without one, every
event of the namespace as it is.
"""

from __future__ import annotations

from typing import Optional, Tuple

from megaplane.apimachinery.meta import set_resource_version
from megaplane.apimachinery.selectors import FieldSelector, LabelSelector, matches_fields, matches_labels
from megaplane.apiserver.watchcache.cache import CachedObject, CacheEvent

__all__ = ["WatchFilter"]


class WatchFilter:
    __slots__ = ("namespace", "name", "labels", "fields", "selective")

    def __init__(
        self,
        namespace: str = "",
        name: str = "",
        labels: Optional[LabelSelector] = None,
        fields: Optional[FieldSelector] = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.fields = fields
        #: A name or selector: events need converting (a namespace alone only drops events).
        self.selective = bool(name or labels or fields)

    def passes(self, obj: Optional[CachedObject]) -> bool:
        if obj is None:
            return False
        f = obj.facts
        if self.namespace and f.namespace != self.namespace:
            return False
        if self.name and f.name != self.name:
            return False
        if self.labels and not matches_labels(self.labels, f.labels):
            return False
        if self.fields and not matches_fields(self.fields, f.fields):
            return False
        return True

    def convert(self, ev: CacheEvent) -> Optional[Tuple[str, CachedObject]]:
        """(type, object) as this watcher sees `ev`, or None when it does not see it.

        The object is `ev.obj` itself whenever the type is the event's own
        (so its shared encoding can be used); a converted DELETED carries the
        previous state at the event's revision.
        """
        cur = ev.type != "DELETED" and self.passes(ev.obj)
        old = ev.prev is not None and self.passes(ev.prev)
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if old else None
        if cur and old:
            return ("MODIFIED", ev.obj)
        if cur:
            return ("ADDED", ev.obj)
        if old:
            prev = ev.prev
            assert prev is not None
            return ("DELETED", CachedObject(prev.key, set_resource_version(prev.data, ev.rv), ev.rv, prev.facts,
                                           prev.create_revision))
        return None
