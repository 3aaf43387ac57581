"""The namespace lifecycle: admission rules and the built-in namespace and service-account controllers.

What upstream splits between the NamespaceLifecycle admission plugin and
kube-controller-manager's namespace and serviceaccount controllers, kept
to what a cluster needs to behave as kubectl and controllers expect:

* admission: no content in a namespace that is missing (404) or
  terminating (403 with the `NamespaceTerminating` cause controllers look
  for); `default`, `kube-system` and `kube-public` may not be deleted;
* deletion: the first DELETE marks the namespace (deletionTimestamp,
  phase Terminating; see handlers). This loop then deletes its content
  the way the namespace controller does (objects with finalizers, or pods
  in graceful deletion, are only marked and waited for), reports progress
  in upstream's five status conditions, and once nothing is left removes
  the `kubernetes` finalizer, which deletes the namespace;
* every namespace gets its `default` ServiceAccount.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.resources import RESOURCES, Resource, lookup
from megaplane.apiserver.http.transport import Request
from megaplane.apiserver.watchcache import CachedObject

if TYPE_CHECKING:
    from megaplane.apiserver.server import APIServer

__all__ = ["NamespaceLifecycle", "IMMORTAL_NAMESPACES", "FINALIZER"]

log = logging.getLogger("megaplane.apiserver.registry.namespaces")

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
# How soon a terminating namespace whose content is still going away is looked at again.
RECHECK_SECONDS = 0.2
# spec.finalizers entry the namespace controller owns.
FINALIZER = "kubernetes"

# The namespace controller's conditions, in its order, with what each says when all is well.
_CONDITIONS_OK: List[Tuple[str, str, str]] = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
]


class NamespaceLifecycle:
    def __init__(self, server: "APIServer") -> None:
        self.server = server
        self.wakeup = asyncio.Event()
        ns = lookup("", "namespaces")
        sa = lookup("", "serviceaccounts")
        assert ns is not None and sa is not None
        self.ns_resource: Resource = ns
        self.sa_resource: Resource = sa
        # An internal client's request: what DELETE answers is of no interest here.
        self._request = Request("DELETE", "", "", {"accept": "application/json"}, b"", None)

    # -- admission ----------------------------------------------------------------------------

    def admit_content(self, resource: Resource, namespace: str, name: str) -> None:
        """New namespaced content needs a namespace that exists and is not terminating."""
        if not resource.namespaced:
            return
        ns = self.server.namespace(namespace)
        if ns is None:
            raise errors.not_found("", "namespaces", namespace)
        if ns.facts.deleting:
            err = errors.forbidden(
                resource.group,
                resource.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
            assert err.details is not None
            err.details["causes"] = [{
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }]
            raise err

    def admit_delete(self, name: str) -> None:
        if name in IMMORTAL_NAMESPACES:
            raise errors.forbidden("", "namespaces", name, "this namespace may not be deleted")

    # -- the controller loop ------------------------------------------------------------------

    async def run(self) -> None:
        cache = self.server.cache_for(self.ns_resource)
        sa_cache = self.server.cache_for(self.sa_resource)
        while True:
            for ns in list(cache.objects.values()):
                name = ns.facts.name
                try:
                    if ns.facts.deleting:
                        self.finish(ns)
                    elif sa_cache.get(self.sa_resource.key(name, "default")) is None:
                        await self.server.internal_create(
                            self.sa_resource, name,
                            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
                        )
                except errors.StatusError as exc:
                    log.debug("namespace %s: %s", name, exc.message)
                except Exception:
                    log.exception("namespace lifecycle for %s", name)
            try:
                await asyncio.wait_for(self.wakeup.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()

    def finish(self, ns: CachedObject) -> None:
        """One pass over a terminating namespace: delete content, report, finalize when empty."""
        name = ns.facts.name
        handlers = self.server.handlers
        remaining: Dict[str, int] = {}
        finalizers: Dict[str, int] = {}
        for r in RESOURCES:
            if not r.namespaced or r.storage_of is not None:
                continue
            cache = self.server.cache_for(r)
            for obj in list(cache.iter_prefix(r.namespace_prefix(name))):
                current = cache.get(obj.key)
                if current is None:
                    continue
                if not current.facts.deleting:
                    try:
                        answer = handlers.delete_object(self._request, r, current, {"propagationPolicy": "Background"})
                        if asyncio.iscoroutine(answer):
                            answer.close()  # only there to wait for an fsync: nobody is waiting for this answer
                    except errors.StatusError as exc:
                        log.debug("deleting %s in namespace %s: %s", obj.key, name, exc.message)
                current = cache.get(obj.key)
                if current is None:
                    continue
                group_resource = f"{r.plural}.{r.group}" if r.group else r.plural
                remaining[group_resource] = remaining.get(group_resource, 0) + 1
                for f in current.facts.finalizers:
                    finalizers[f] = finalizers.get(f, 0) + 1
        cur = self.server.namespace(name)
        if cur is None:
            return
        obj = orjson.loads(cur.data)
        if remaining:
            if self._set_conditions(obj, remaining, finalizers):
                self._write(cur, obj)
            # Look again soon while content drains (pods in their grace period, finalizers being removed).
            asyncio.get_running_loop().call_later(RECHECK_SECONDS, self.wakeup.set)
            return
        spec = obj.setdefault("spec", {})
        if FINALIZER in (spec.get("finalizers") or []):
            spec["finalizers"] = [f for f in spec["finalizers"] if f != FINALIZER]
        if spec.get("finalizers") or obj["metadata"].get("finalizers"):
            self._set_conditions(obj, remaining, finalizers)
            self._write(cur, obj)  # other finalizers (or metadata finalizers) keep it a while longer
            return
        self.server.backend.delete(cur.key, cur.rv)  # a conflict means it changed: the next pass decides again

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

    def _write(self, cur: CachedObject, obj: Dict[str, Any]) -> None:
        try:
            self.server.handlers.cas_update(self.ns_resource, cur, obj)
        except errors.StatusError as exc:  # written meanwhile: the next pass sees the new state
            log.debug("namespace %s: %s", cur.facts.name, exc.message)
