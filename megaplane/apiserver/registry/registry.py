"""The registry: one `ResourceStore` per served resource, over the kinds' watch caches and storage.

Built once per API server. It owns what the stores share: the watch cache
of each storage prefix (events.k8s.io Events share the core Events cache),
each kind's strategy instance (allocators are state) and namespace
admission. Callers reach a verb as
`registry.store(resource).create(...)` — the HTTP endpoints, the
in-process client transport and the server's own bootstrap alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional, Tuple, Type, TypeVar

import orjson

from megaplane.apimachinery.resources import RESOURCES, Resource, lookup
from megaplane.apiserver.registry.admission import NamespaceAdmission
from megaplane.apiserver.registry.eviction import PodEviction
from megaplane.apiserver.registry.kinds import StrategyConfig, strategy_for
from megaplane.apiserver.registry.store import ResourceStore
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.registry.virtual import CreateHandler
from megaplane.apiserver.watchcache import CachedObject, WatchCache
from megaplane.storage import Storage
from megaplane.storage.etcd3.split import SplitStorage

__all__ = ["Registry", "RegistryConfig"]

V = TypeVar("V")


class ByResource(Dict[Resource, V]):
    """A dict keyed by Resource (values never None) that also answers by the Resource object itself.

    A Resource hashes every one of its fields (a frozen dataclass: some microseconds), and every request
    looks its store up: `fast` and `fast_get` remember the answer, found or not, per Resource object
    (holding it, so its id stays its own), forgotten on any change of the dict."""

    def __init__(self) -> None:
        super().__init__()
        self._by_id: Dict[int, Tuple[Resource, Optional[V]]] = {}

    def fast_get(self, r: Resource) -> Optional[V]:
        """self.get(r)."""
        hit = self._by_id.get(id(r))
        if hit is not None and hit[0] is r:
            return hit[1]
        value = self.get(r)
        if len(self._by_id) >= 4096:  # custom resources come and go: a stale Resource is not kept for ever
            self._by_id.clear()
        self._by_id[id(r)] = (r, value)
        return value

    def fast(self, r: Resource) -> V:
        """self[r]."""
        value = self.fast_get(r)
        if value is None:
            raise KeyError(r)
        return value

    def __setitem__(self, key: Resource, value: V) -> None:
        self._by_id.clear()
        super().__setitem__(key, value)

    def __delitem__(self, key: Resource) -> None:
        self._by_id.clear()
        super().__delitem__(key)

    def pop(self, *args: Any) -> Any:
        self._by_id.clear()
        return super().pop(*args)

    def popitem(self) -> Tuple[Resource, V]:
        self._by_id.clear()
        return super().popitem()

    def setdefault(self, key: Resource, default: Any = None) -> Any:
        self._by_id.clear()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._by_id.clear()
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self._by_id.clear()
        super().clear()

    # dict's own `|` (a plain dict), declared so that mypy checks `|=` against a matching `|`.
    def __or__(self, other: Any) -> Any:
        return super().__or__(other)

    def __ior__(self, other: Any) -> Any:
        self._by_id.clear()
        super().__ior__(other)
        return self


@dataclass
class RegistryConfig:
    strategies: StrategyConfig = field(default_factory=StrategyConfig)
    #: Watch cache history window (seconds; upstream keeps 75 s).
    watch_cache_window: float = 75.0
    #: Events every watch cache keeps whatever their age (--default-watch-cache-size).
    watch_cache_min_events: int = 1000
    #: Most events a watch cache keeps.
    watch_cache_max_events: int = 100_000


class Registry:
    def __init__(self, storage: Storage, config: Optional[RegistryConfig] = None) -> None:
        self.storage = storage
        self.config = cfg = config or RegistryConfig()
        self.caches: Dict[bytes, WatchCache] = {}
        for r in RESOURCES:
            if r.stored and r.storage_of is None and r.prefix not in self.caches:
                self.caches[r.prefix] = WatchCache(
                    r,
                    self.backend_for(r),
                    window_seconds=cfg.watch_cache_window,
                    min_events=cfg.watch_cache_min_events,
                    max_events=max(cfg.watch_cache_max_events, cfg.watch_cache_min_events),
                )
        ns = lookup("", "namespaces")
        assert ns is not None
        self._namespaces = self.caches[ns.prefix]
        self._ns_resource = ns
        self.admission = NamespaceAdmission(self.namespace)
        self._schemas: Dict[Resource, Optional[Dict[str, Any]]] = {}
        self.stores: ByResource[ResourceStore] = ByResource()
        for r in RESOURCES:
            if not r.stored:
                continue
            self.stores[r] = ResourceStore(
                r,
                strategy_for(r, cfg.strategies),
                self.cache_for(r),
                self.backend_for(r),
                self.admission,
                functools.partial(self.schema_for, r),
            )
        pods, pdbs = lookup("", "pods"), lookup("policy", "poddisruptionbudgets")
        assert pods is not None and pdbs is not None
        #: POST pods/{name}/eviction (over the pods' and the PDBs' stores).
        self.eviction = PodEviction(self.stores[pods], self.stores[pdbs])
        #: Create-only endpoints by subresource, then resource: reviews and serviceaccounts/token (registry.virtual).
        self.creators: Dict[str, ByResource[CreateHandler]] = {}

    async def serve(self, r: Resource, strategy: Strategy, store_class: Type[ResourceStore] = ResourceStore) -> ResourceStore:
        """Serve a resource added at runtime (custom resources): a store over the watch cache of its prefix,
        made and filled on first use (a custom resource's versions share one), replacing any store of `r`."""
        cfg = self.config
        cache = self.caches.get(r.prefix)
        if cache is None:
            cache = WatchCache(r, self.backend_for(r), window_seconds=cfg.watch_cache_window,
                               min_events=cfg.watch_cache_min_events,
                               max_events=max(cfg.watch_cache_max_events, cfg.watch_cache_min_events))
            await cache.start()
            if r.prefix in self.caches:  # another serve() of the prefix won the race while this one listed
                cache.stop()
            else:
                self.caches[r.prefix] = cache
        store = store_class(r, strategy, self.caches[r.prefix], self.backend_for(r), self.admission,
                            functools.partial(self.schema_for, r))
        self.stores[r] = store
        return store

    def unserve(self, r: Resource) -> None:
        """Stop serving a runtime resource; its watch cache goes with the last store over its prefix."""
        self.stores.pop(r, None)
        if not any(s.resource.prefix == r.prefix for s in self.stores.values()):
            cache = self.caches.pop(r.prefix, None)
            if cache is not None:
                cache.stop()

    def serve_create(self, resource: Resource, subresource: str, handler: CreateHandler) -> None:
        """POST to resource (subresource "": a `stored=False` kind) or to its subresource is answered by handler."""
        self.creators.setdefault(subresource, ByResource())[resource] = handler

    def creator(self, resource: Resource, subresource: str) -> Optional[CreateHandler]:
        """What answers a POST to resource (subresource "") or its subresource, if it is not stored."""
        by = self.creators.get(subresource)
        return by.fast_get(resource) if by is not None else None

    async def start(self) -> None:
        """Fill the caches from storage; strategies re-learn what stored objects hold (allocations)."""
        for cache in self.caches.values():
            await cache.start()
        for r, store in self.stores.items():
            if r.storage_of is None and store.strategy.restores:
                for obj in store.cache.objects.values():
                    store.strategy.restore(orjson.loads(obj.data))

    def stop(self) -> None:
        for cache in self.caches.values():
            cache.stop()

    def backend_for(self, r: Resource) -> Storage:
        """The storage holding `r` (--etcd-servers-overrides puts resources in their own clusters)."""
        if isinstance(self.storage, SplitStorage):
            return self.storage.backend_for(r.prefix)
        return self.storage

    def store(self, resource: Resource) -> ResourceStore:
        return self.stores.fast(resource)

    def cache_for(self, r: Resource) -> WatchCache:
        if r.storage_of is not None:
            base = lookup("", r.storage_of)
            assert base is not None
            return self.caches[base.prefix]
        return self.caches[r.prefix]

    def caches_by_resource(self) -> Iterator[Tuple[Resource, WatchCache]]:
        for cache in self.caches.values():
            yield cache.resource, cache

    def namespace(self, name: str) -> Optional[CachedObject]:
        return self._namespaces.get(self._ns_resource.key("", name))

    def schema_for(self, r: Resource) -> Optional[Dict[str, Any]]:
        if r not in self._schemas:
            from megaplane.apiserver.schema import definitions

            name = definitions.definition_for(r.group, r.version, r.kind)
            self._schemas[r] = definitions.definitions()[name] if name else None
        return self._schemas[r]
