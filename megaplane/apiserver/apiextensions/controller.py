"""The CRD lifecycle on one API server: names and conditions, serving the custom resources, and deletion.

Follows the CRD watch cache (every API server on the same storage does the
same, so each serves what the others accept). Per CRD, one at a time:

* its status gets acceptedNames and the NamesAccepted / Established conditions (names.py);
* once Established, each served version becomes a `Resource` in the resource table
  (discovery, OpenAPI, routing and the loopback client see it at once) with a
  `CustomResourceStore` over one watch cache of the CRD's storage prefix
  /registry/<group>/<plural>/; a changed spec or accepted names re-serves it;
* a CRD marked for deletion (CRDStore put the cleanup finalizer on it) gets the
  Terminating condition, refuses creates, has its custom resources deleted, then
  loses the finalizer, which deletes it; a deleted CRD's endpoints go.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery import resources as table
from megaplane.apimachinery.listoptions import ListOptions
from megaplane.apimachinery.resources import ALL_VERBS, Resource, lookup
from megaplane.apiserver.apiextensions.crd import (
    FINALIZER,
    CRDStore,
    CRDStrategy,
    served_versions,
    storage_version,
)
from megaplane.apiserver.apiextensions.customresource import (
    CRDState,
    CustomResourceStore,
    CustomResourceStrategy,
    CustomResourceVersion,
)
from megaplane.apiserver.apiextensions.names import desired_status, set_condition
from megaplane.apiserver.apiextensions.openapi import published_schema
from megaplane.apiserver.apiextensions.printers import table_for
from megaplane.apiserver.printers.base import _DESC_AGE, _col, _name_col
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.registry import Registry
from megaplane.apiserver.watchcache import CacheEvent

__all__ = ["CustomResourceDefinitions"]

log = logging.getLogger("megaplane.apiserver.apiextensions")


def _created_at(obj: Dict[str, Any], now: datetime.datetime) -> List[Any]:
    meta = _d(obj.get("metadata"))
    return [meta.get("name", ""), meta.get("creationTimestamp")]


# The CRD's Table is the default table convertor's: Name and "Created At" (RFC 3339).
_CRD_TABLE = ([_name_col(), _col("Created At", "date", _DESC_AGE)], _created_at)


@dataclass
class _Served:
    state: CRDState
    fingerprint: bytes = b""
    resources: List[Resource] = field(default_factory=list)


def _d(v: Any) -> Dict[str, Any]:
    return v if isinstance(v, dict) else {}


class CustomResourceDefinitions:
    """The CRD controllers of one API server (module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        crd = lookup("apiextensions.k8s.io", "customresourcedefinitions")
        assert crd is not None
        self.resource = crd
        default = registry.stores[crd]
        registry.stores[crd] = CRDStore(crd, CRDStrategy(crd), default.cache, default.storage, default.namespaces,
                                        default._schema)
        crd.extra["table"] = _CRD_TABLE
        self.served: Dict[str, _Served] = {}
        self._queue: "Optional[asyncio.Queue[str]]" = None
        self._pending: Set[str] = set()
        self._task: "Optional[asyncio.Task[None]]" = None

    @property
    def store(self) -> CRDStore:
        return self.registry.stores[self.resource]  # type: ignore[return-value]

    async def start(self) -> None:
        """Serve the established CRDs found in storage before returning (a restarted server answers for its
        custom resources as soon as it is ready), then follow the CRD cache."""
        self._queue = asyncio.Queue()
        cache = self.registry.cache_for(self.resource)
        for obj in list(cache.objects.values()):
            try:
                await self._reconcile(obj.facts.name)
            except Exception:
                log.exception("custom resource definition %s", obj.facts.name)
                self._enqueue(obj.facts.name)
        cache.listeners.append(self._on_events)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        cache = self.registry.cache_for(self.resource)
        if self._on_events in cache.listeners:
            cache.listeners.remove(self._on_events)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for name in list(self.served):
            self._unserve(name)

    def _on_events(self, events: List[CacheEvent]) -> None:
        for ev in events:
            self._enqueue(ev.obj.facts.name)

    def _enqueue(self, name: str) -> None:
        if self._queue is not None and name not in self._pending:
            self._pending.add(name)
            self._queue.put_nowait(name)

    def _later(self, name: str, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self._enqueue, name)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            name = await self._queue.get()
            self._pending.discard(name)
            try:
                await self._reconcile(name)
            except errors.StatusError as exc:
                if exc.reason not in ("Conflict", "NotFound"):
                    log.warning("custom resource definition %s: %s", name, exc)
                self._later(name, 0.2)
            except Exception:
                log.exception("custom resource definition %s", name)
                self._later(name, 1.0)

    # -- one CRD -------------------------------------------------------------------------------

    async def _reconcile(self, name: str) -> None:
        cache = self.registry.cache_for(self.resource)
        cur = cache.get(self.resource.key("", name))
        if cur is None:
            self._unserve(name)
            return
        crd = orjson.loads(cur.data)
        if crd["metadata"].get("deletionTimestamp"):
            await self._finalize(name, crd)
            return
        others = [orjson.loads(o.data) for o in cache.objects.values() if o.facts.name != name]
        status = desired_status(crd, others)
        if status != crd.get("status"):
            crd["status"] = status
            await self.store.update("", name, orjson.loads(orjson.dumps(crd)), WriteOptions(), "status")
        established = any(c.get("type") == "Established" and c.get("status") == "True"
                          for c in status.get("conditions") or ())
        if established:
            await self._serve(name, crd)

    async def _serve(self, name: str, crd: Dict[str, Any]) -> None:
        spec = _d(crd.get("spec"))
        names = _d(_d(crd.get("status")).get("acceptedNames"))
        fingerprint = orjson.dumps([spec, names], option=orjson.OPT_SORT_KEYS)
        entry = self.served.get(name)
        if entry is not None and entry.fingerprint == fingerprint:
            return
        if entry is None:
            entry = self.served[name] = _Served(CRDState(name))
        group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
        storage = storage_version(crd) or ""
        prefix = f"/registry/{group}/{plural}/".encode()
        versions = served_versions(crd)
        fresh: List[Resource] = []
        for v in versions:
            subs = _d(v.get("subresources"))
            schema = _d(_d(v.get("schema")).get("openAPIV3Schema"))
            # selectableFields: field selectors beyond metadata.name/namespace (upstream's wording changes with them).
            selectable = tuple(str(f["jsonPath"]).lstrip(".") for f in v.get("selectableFields") or ()
                               if isinstance(f, dict) and isinstance(f.get("jsonPath"), str))
            r = Resource(
                group, str(v["name"]), plural, names.get("singular") or kind.lower(), kind,
                spec.get("scope") == "Namespaced", prefix,
                short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subs), generation=True, verbs=ALL_VERBS,
                field_selectors=("metadata.name", "metadata.namespace") + selectable,
                field_label_conversion="core" if selectable else "default",
                extra={"openapi": published_schema(group, str(v["name"]), kind, schema),
                       "table": table_for(v.get("additionalPrinterColumns")), "crd": name},
            )
            version = CustomResourceVersion(group, r.version, kind, plural, storage, schema, entry.state,
                                            "status" in subs, _d(subs.get("scale")) if "scale" in subs else None,
                                            _d(spec.get("conversion")).get("strategy") == "Webhook")
            if (version.version != storage or version.defaults) and not version.webhook:
                r.extra["watch_view"] = version.view
            await self.registry.serve(r, CustomResourceStrategy(r, version), CustomResourceStore)
            fresh.append(r)
        paths = {(r.group, r.version, r.plural) for r in fresh}
        for old in entry.resources:
            if (old.group, old.version, old.plural) not in paths:
                table.remove_resource(old)
                self.registry.unserve(old)
        for i, r in enumerate(fresh):
            table.add_resource(r, before_version=fresh[i + 1].version if i + 1 < len(fresh) else None)
        entry.resources = fresh
        entry.fingerprint = fingerprint

    def _unserve(self, name: str) -> None:
        entry = self.served.pop(name, None)
        if entry is None:
            return
        for r in entry.resources:
            table.remove_resource(r)
            self.registry.unserve(r)

    async def _finalize(self, name: str, crd: Dict[str, Any]) -> None:
        """customresourcecleanup: Terminating, delete every custom resource, then drop the finalizer."""
        entry = self.served.get(name)
        if entry is None and _d(_d(crd.get("status")).get("acceptedNames")).get("plural"):
            # Not served here yet (this server started while the CRD was terminating): its objects are still
            # in storage, and the finalizer must delete them before it goes.
            await self._serve(name, crd)
            entry = self.served.get(name)
        if entry is not None:
            entry.state.terminating = True
        status = dict(_d(crd.get("status")))
        set_condition(status, "Terminating", "True", "InstanceDeletionInProgress", "CustomResource deletion is in progress")
        if status != crd.get("status"):
            crd["status"] = status
            await self.store.update("", name, orjson.loads(orjson.dumps(crd)), WriteOptions(), "status")
            return  # the status write's event brings the CRD back here
        if FINALIZER not in (crd["metadata"].get("finalizers") or ()):
            return
        if entry is not None and entry.resources:
            store = self.registry.stores.get(entry.resources[0])
            if store is not None and store.cache.objects:
                await store.delete_collection("", ListOptions(), {})
                if store.cache.objects:  # held by finalizers, or the deletes' events are still on their way
                    self._later(name, 0.5)
                    return
        crd["metadata"]["finalizers"] = [f for f in crd["metadata"]["finalizers"] if f != FINALIZER]
        await self.store.update("", name, crd, WriteOptions())
