"""An informer's local copy of a resource: the Indexer (store + indexes) and a Lister over it.

client-go's cache.Indexer: objects keyed `namespace/name` (`name` for
cluster-scoped ones), plus named indexes, each an `IndexFunc(obj) -> list
of values` kept as value -> set of keys and updated on every write. The
namespace index is always there; `node_name_index` (pods by
`spec.nodeName`) and `label_index(key)` are provided, any other function
can be added. Single event loop, no locks: the informer is the only
writer, readers never see a half-applied write because nothing awaits
inside one.

Objects are the dicts the informer decoded; readers must treat them as
read-only (client-go's rule too: copy before changing, with `deep_copy`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Union

import orjson

from megaplane.apimachinery.selectors import LabelSelector, matches_labels, parse_label_selector

__all__ = [
    "Indexer",
    "Lister",
    "IndexFunc",
    "DeletedFinalStateUnknown",
    "object_key",
    "split_key",
    "NAMESPACE_INDEX",
    "NODE_NAME_INDEX",
    "final_state",
    "namespace_index",
    "node_name_index",
    "label_index",
    "deep_copy",
    "strip_managed_fields",
]

Obj = Dict[str, Any]
IndexFunc = Callable[[Obj], List[str]]

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "spec.nodeName"


@dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """A delete the informer inferred from a relist: the object was gone, its last state unknown.

    `obj` is the last state this informer saw; the real final state (and
    when it was deleted) were missed while the watch was down.
    """

    key: str
    obj: Obj


def object_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object (MetaNamespaceKeyFunc)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> "tuple[str, str]":
    """(namespace, name) of a key; namespace "" for cluster-scoped objects."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def deep_copy(obj: Any) -> Any:
    """A copy of a decoded object to change (DeepCopy): an orjson round trip, ~10x copy.deepcopy's speed.

    Cached objects are JSON by construction; anything orjson cannot encode
    (an int beyond 64 bits, a non-str key) is copied by copy.deepcopy.
    """
    try:
        return orjson.loads(orjson.dumps(obj))
    except TypeError:
        return copy.deepcopy(obj)


def strip_managed_fields(obj: Obj) -> Obj:
    """An informer transform dropping metadata.managedFields (client-go's TransformStripManagedFields).

    For components that never read managedFields: each cached pod then holds
    about half the containers, which is half the cyclic garbage collector's
    work per event (benchmarks/informer_events.py). A PUT of a stripped
    object keeps the stored managedFields (absent means unchanged).
    """
    meta = obj.get("metadata")
    if meta is not None and "managedFields" in meta:
        del meta["managedFields"]
    return obj


def final_state(obj: Union[Obj, "DeletedFinalStateUnknown"]) -> Obj:
    """What a delete handler was given, as an object: itself, or the last state a relist-inferred delete knew."""
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


def namespace_index(obj: Obj) -> List[str]:
    """MetaNamespaceIndexFunc: the object's namespace ("" for cluster-scoped objects)."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def node_name_index(obj: Obj) -> List[str]:
    """Pods by `spec.nodeName` (unscheduled pods under "")."""
    return [(obj.get("spec") or {}).get("nodeName") or ""]


def label_index(key: str) -> IndexFunc:
    """Objects by the value of label `key` (objects without it are not indexed)."""

    def index(obj: Obj) -> List[str]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        value = labels.get(key)
        return [value] if value is not None else []

    index.__name__ = f"label_index({key!r})"
    return index


class Indexer:
    """Objects by key, plus named indexes (see the module docstring)."""

    def __init__(self, indexers: Optional[Mapping[str, IndexFunc]] = None) -> None:
        self._items: Dict[str, Obj] = {}
        self._indexers: Dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        self._indices: Dict[str, Dict[str, Set[str]]] = {NAMESPACE_INDEX: {}}
        # (function, its index) per index, and per key the values each function gave for the object stored
        # (same order): an update calls each function once, on the new object, and compares.
        self._funcs: List["tuple[IndexFunc, Dict[str, Set[str]]]"] = [(namespace_index, self._indices[NAMESPACE_INDEX])]
        self._values: Dict[str, List[List[str]]] = {}
        if indexers:
            self.add_indexers(indexers)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __repr__(self) -> str:
        return f"<Indexer {len(self._items)} objects, indexes {sorted(self._indexers)}>"

    def index_func(self, name: str) -> Optional[IndexFunc]:
        """The function of index `name`, None if there is no such index."""
        return self._indexers.get(name)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indexes (also after objects are in: they are indexed at once). A taken name is refused."""
        for name, func in indexers.items():
            if name in self._indexers:
                raise ValueError(f"index {name!r} already exists")
            self._indexers[name] = func
            index: Dict[str, Set[str]] = {}
            self._indices[name] = index
            self._funcs.append((func, index))
            values = self._values
            for key, obj in self._items.items():
                vals = func(obj)
                values[key].append(vals)
                self._add_to_index(index, vals, key)

    # -- writes (the informer's) ------------------------------------------------------------

    def upsert(self, obj: Obj) -> Optional[Obj]:
        """Add or replace the object under its key; returns the previous one (None: it is new)."""
        return self.upsert_key(object_key(obj), obj)

    def upsert_key(self, key: str, obj: Obj) -> Optional[Obj]:
        """`upsert` for a caller that has the object's key (`object_key(obj)`) at hand already."""
        items = self._items
        old = items.get(key)
        items[key] = obj
        if old is None:
            new_values = []
            for func, index in self._funcs:
                vals = func(obj)
                new_values.append(vals)
                self._add_to_index(index, vals, key)
            self._values[key] = new_values
            return old
        old_values = self._values[key]
        for i, (func, index) in enumerate(self._funcs):
            vals = func(obj)
            was = old_values[i]
            if vals == was:
                continue
            old_values[i] = vals
            for value in was:
                self._unindex(index, value, key)
            self._add_to_index(index, vals, key)
        return old

    def remove(self, key: str) -> Optional[Obj]:
        """Drop the object with this key; returns it (None: there was none)."""
        old = self._items.pop(key, None)
        if old is not None:
            for (_, index), vals in zip(self._funcs, self._values.pop(key)):
                for value in vals:
                    self._unindex(index, value, key)
        return old

    @staticmethod
    def _add_to_index(index: Dict[str, Set[str]], values: List[str], key: str) -> None:
        for value in values:
            keys = index.get(value)
            if keys is None:
                index[value] = {key}
            else:
                keys.add(key)

    @staticmethod
    def _unindex(index: Dict[str, Set[str]], value: str, key: str) -> None:
        keys = index.get(value)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del index[value]

    # -- reads --------------------------------------------------------------------------------

    def get_by_key(self, key: str) -> Optional[Obj]:
        return self._items.get(key)

    def keys(self) -> List[str]:
        return list(self._items)

    def list(self) -> List[Obj]:
        return list(self._items.values())

    def items(self) -> Iterator["tuple[str, Obj]"]:
        return iter(list(self._items.items()))

    def index_keys(self, index_name: str, value: str) -> List[str]:
        """Keys of the objects whose index function gave `value`."""
        return sorted(self._index(index_name).get(value, ()))

    def by_index(self, index_name: str, value: str) -> List[Obj]:
        """The objects whose index function gave `value` (ByIndex)."""
        items = self._items
        return [items[k] for k in self._index(index_name).get(value, ())]

    def index_values(self, index_name: str) -> List[str]:
        """Every value the index holds (ListIndexFuncValues)."""
        return list(self._index(index_name))

    def _index(self, index_name: str) -> Dict[str, Set[str]]:
        try:
            return self._indices[index_name]
        except KeyError:
            raise KeyError(f"no index {index_name!r}; have {sorted(self._indices)}") from None


class Lister:
    """Reads over an Indexer the way generated listers read (`get`, `list` with a label selector)."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer

    def get(self, namespace: Optional[str], name: str) -> Optional[Obj]:
        """The object, or None (listers answer from the cache: no NotFoundError, no request)."""
        return self.indexer.get_by_key(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: Optional[str] = None, label_selector: Optional[str] = None) -> List[Obj]:
        """Objects in `namespace` (None: all) whose labels match `label_selector` (upstream syntax)."""
        # by_index and list() build a fresh list each: that one is returned, not copied again.
        objs = self.indexer.by_index(NAMESPACE_INDEX, namespace) if namespace is not None else self.indexer.list()
        selector = parse_label_selector(label_selector) if label_selector else None
        if selector is None:
            return objs
        return [o for o in objs if _matches(selector, o)]

    def by_index(self, index_name: str, value: str) -> List[Obj]:
        return self.indexer.by_index(index_name, value)


def _matches(selector: LabelSelector, obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return matches_labels(selector, labels)
