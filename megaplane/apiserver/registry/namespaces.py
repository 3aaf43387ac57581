"""The built-in namespace and service-account controllers.

What kube-controller-manager's namespace and serviceaccount controllers do,
kept to what a cluster needs to behave as kubectl and controllers expect:

* deletion: the first DELETE marks the namespace (deletionTimestamp, phase
  Terminating; see the store). This loop then deletes its content the way
  the namespace controller does (objects with finalizers, or pods in
  graceful deletion, are only marked and waited for), reports progress in
  upstream's five status conditions, and once nothing is left removes the
  `kubernetes` finalizer, which deletes the namespace;
* every namespace gets its `default` ServiceAccount.

It writes through the registry's stores, with the same admission and
strategies as any client. (Admission of namespaced content is
`admission.NamespaceAdmission`.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.resources import RESOURCES, Resource, lookup
from megaplane.apiserver.registry.kinds.namespaces import FINALIZER
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.registry import Registry
from megaplane.apiserver.watchcache import CachedObject, CacheEvent

__all__ = ["NamespaceController"]

log = logging.getLogger("megaplane.apiserver.registry.namespaces")

# How soon a terminating namespace whose content is still going away is looked at again.
RECHECK_SECONDS = 0.2
# How often every namespace is looked at without a wakeup (a new namespace needs its ServiceAccount).
RESYNC_SECONDS = 1.0
_BACKGROUND = {"propagationPolicy": "Background"}

# The namespace controller's conditions, in its order, with what each says when all is well.
_CONDITIONS_OK: List[Tuple[str, str, str]] = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
]


class NamespaceController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.wakeup = asyncio.Event()
        ns = lookup("", "namespaces")
        sa = lookup("", "serviceaccounts")
        assert ns is not None and sa is not None
        self.ns_resource: Resource = ns
        self.sa_resource: Resource = sa

    async def run(self) -> None:
        registry = self.registry
        cache = registry.cache_for(self.ns_resource)
        sa_cache = registry.cache_for(self.sa_resource)
        sa_store = registry.store(self.sa_resource)
        cache.listeners.append(self._namespace_events)
        while True:
            for ns in list(cache.objects.values()):
                name = ns.facts.name
                try:
                    if ns.facts.deleting:
                        await self.finish(ns)
                    elif sa_cache.get(self.sa_resource.key(name, "default")) is None:
                        await sa_store.create(
                            name, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
                            WriteOptions(),
                        )
                except errors.StatusError as exc:
                    log.debug("namespace %s: %s", name, exc.message)
                except Exception:
                    log.exception("namespace lifecycle for %s", name)
            await self._wait(cache)

    async def _wait(self, cache: Any) -> None:
        """Until a namespace starts terminating or the resync period passes."""
        try:
            await asyncio.wait_for(self.wakeup.wait(), RESYNC_SECONDS)
        except asyncio.TimeoutError:
            pass
        self.wakeup.clear()

    def _namespace_events(self, events: List[CacheEvent]) -> None:
        # Only a namespace that starts terminating: the controller's own writes to one do not wake it again.
        if any(ev.obj.facts.deleting and (ev.prev is None or not ev.prev.facts.deleting) for ev in events):
            self.wakeup.set()

    async def finish(self, ns: CachedObject) -> None:
        """One pass over a terminating namespace: delete content, report, finalize when empty."""
        registry = self.registry
        name = ns.facts.name
        remaining: Dict[str, int] = {}
        finalizers: Dict[str, int] = {}
        for r in RESOURCES:
            if not r.namespaced or r.storage_of is not None:
                continue
            store = registry.store(r)
            cache = store.cache
            for obj in list(cache.iter_prefix(r.namespace_prefix(name))):
                current = cache.get(obj.key)
                if current is None:
                    continue
                if not current.facts.deleting:
                    try:
                        await store.delete(name, current.facts.name, dict(_BACKGROUND))
                    except errors.StatusError as exc:
                        log.debug("deleting %s in namespace %s: %s", obj.key, name, exc.message)
                current = cache.get(obj.key)
                if current is None:
                    continue
                group_resource = f"{r.plural}.{r.group}" if r.group else r.plural
                remaining[group_resource] = remaining.get(group_resource, 0) + 1
                for f in current.facts.finalizers:
                    finalizers[f] = finalizers.get(f, 0) + 1
        cur = registry.namespace(name)
        if cur is None:
            return
        obj = orjson.loads(cur.data)
        if remaining:
            if self._set_conditions(obj, remaining, finalizers):
                await self._write_status(cur, obj)
            # Look again soon while content drains (pods in their grace period, finalizers being removed).
            asyncio.get_running_loop().call_later(RECHECK_SECONDS, self.wakeup.set)
            return
        spec = obj.setdefault("spec", {})
        if FINALIZER in (spec.get("finalizers") or []):
            spec["finalizers"] = [f for f in spec["finalizers"] if f != FINALIZER]
        if spec.get("finalizers") or obj["metadata"].get("finalizers"):
            self._set_conditions(obj, remaining, finalizers)
            await self._write_status(cur, obj)  # other finalizers (or metadata finalizers) keep it a while longer
        # PUT /finalize without our finalizer: the store deletes a namespace left with none.
        await self._finalize(cur, obj)

    def _set_conditions(self, obj: Dict[str, Any], remaining: Dict[str, int], finalizers: Dict[str, int]) -> bool:
        """Upstream's five conditions for `obj`; True when they changed."""
        status = obj.setdefault("status", {})
        old = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        now = now_rfc3339()
        conditions = []
        for ctype, ok_reason, ok_message in _CONDITIONS_OK:
            state, reason, message = "False", ok_reason, ok_message
            if ctype == "NamespaceContentRemaining" and remaining:
                state, reason = "True", "SomeResourcesRemain"
                message = "Some resources are remaining: " + ", ".join(
                    f"{gr} has {n} resource instances" for gr, n in sorted(remaining.items()))
            elif ctype == "NamespaceFinalizersRemaining" and finalizers:
                state, reason = "True", "SomeFinalizersRemain"
                message = "Some content in the namespace has finalizers remaining: " + ", ".join(
                    f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
            before = old.get(ctype) or {}
            same = before.get("status") == state and before.get("reason") == reason
            conditions.append({
                "type": ctype,
                "status": state,
                "lastTransitionTime": before.get("lastTransitionTime", now) if same else now,
                "reason": reason,
                "message": message,
            })
        changed = [
            {k: c.get(k) for k in ("type", "status", "reason", "message")} for c in status.get("conditions") or []
        ] != [{k: c[k] for k in ("type", "status", "reason", "message")} for c in conditions]
        status["conditions"] = conditions
        return changed

    async def _write_status(self, cur: CachedObject, obj: Dict[str, Any]) -> None:
        store = self.registry.store(self.ns_resource)
        obj["metadata"]["resourceVersion"] = str(cur.rv)
        try:
            await store.update("", cur.facts.name, obj, WriteOptions(), "status")
        except errors.StatusError as exc:  # written meanwhile: the next pass sees the new state
            log.debug("namespace %s: %s", cur.facts.name, exc.message)

    async def _finalize(self, cur: CachedObject, obj: Dict[str, Any]) -> None:
        store = self.registry.store(self.ns_resource)
        fresh = store.cache.get(cur.key)
        if fresh is None:
            return
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": cur.facts.name, "resourceVersion": str(fresh.rv)}, "spec": obj.get("spec") or {}}
        try:
            await store.update("", cur.facts.name, body, WriteOptions(), "finalize")
        except errors.StatusError as exc:  # changed meanwhile: the next pass decides again
            log.debug("namespace %s: %s", cur.facts.name, exc.message)
