"""`SharedInformerFactory`: one informer per resource and selector for every controller of a process.

client-go's SharedInformerFactory: controllers ask the factory for the
informer of a resource instead of building their own, so a process that
runs twelve controllers watching pods lists and watches pods once, decodes
each event once and holds each pod once (at 100K pods, one copy instead of
one per controller). Informers are keyed by resource, namespace and
selectors; indexers asked for by several controllers are merged.

The factory starts every informer it made (a component started before the
controllers, stopped after them); controllers only wait for their
informers to sync. Objects in a shared cache belong to every controller:
handlers and syncs must treat them as read-only (copy before changing, as
client-go requires).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .cache import IndexFunc
from .client import ResourceClient
from .clock import REAL_CLOCK, Clock
from .informer import SharedInformer

__all__ = ["SharedInformerFactory"]

log = logging.getLogger(__name__)

_Key = Tuple[str, str, str, str, str, str]


class SharedInformerFactory:
    """Informers shared by key (resource, namespace, selectors); a `megaplane.runtime.Component`."""

    def __init__(self, *, clock: Clock = REAL_CLOCK, name: str = "informers", transport: Any = None,
                 transform: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None) -> None:
        self.clock = clock
        #: Every informer's transform (informers.WithTransform), e.g. `cache.strip_managed_fields`.
        self.transform = transform
        #: What every informer lists and watches through (client-go's factory is made with one client: in
        #: kube-controller-manager its own identity, while each controller writes as itself); None: the
        #: transport of the resource client that first asks.
        self.transport = transport
        self._name = name
        self._informers: Dict[_Key, SharedInformer] = {}
        self._started: List[SharedInformer] = []

    @property
    def name(self) -> str:
        return self._name

    def informer(self, resource: ResourceClient, *, namespace: Optional[str] = None,
                 label_selector: Optional[str] = None, field_selector: Optional[str] = None,
                 indexers: Optional[Mapping[str, IndexFunc]] = None) -> SharedInformer:
        """The informer of `resource` with these selectors (made on first use); `indexers` are added to it."""
        ref = resource.ref
        key = (ref.group, ref.version, ref.plural, namespace or "", label_selector or "", field_selector or "")
        informer = self._informers.get(key)
        if informer is None:
            if self.transport is not None:
                resource = ResourceClient(self.transport, ref)
            informer = SharedInformer(resource, namespace=namespace, label_selector=label_selector,
                                      field_selector=field_selector, indexers=indexers, clock=self.clock,
                                      transform=self.transform)
            self._informers[key] = informer
        elif indexers:
            fresh = {}
            for index, func in indexers.items():
                known = informer.indexer.index_func(index)
                if known is None:
                    fresh[index] = func
                elif known is not func:
                    # Two controllers meaning different things by one index name would read each other's index.
                    raise ValueError(f"{informer.name}: index {index!r} is already defined by another function")
            informer.indexer.add_indexers(fresh)
        return informer

    def __len__(self) -> int:
        return len(self._informers)

    async def start(self) -> None:
        """Start every informer made so far that is not running (again after more were asked for)."""
        for informer in self._informers.values():
            if not informer.running:
                await informer.start()
                self._started.append(informer)

    async def stop(self) -> None:
        started, self._started = self._started, []
        for informer in reversed(started):
            await informer.stop()

    def ready(self) -> bool:
        return all(inf.has_synced() for inf in self._informers.values())

    def statistics(self) -> Dict[str, Union[int, float, bool, str]]:
        return {"informers": float(len(self._informers)),
                "objects": float(sum(len(inf.indexer) for inf in self._informers.values()))}
