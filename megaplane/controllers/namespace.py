"""The namespace controller: a terminating namespace's content is deleted, then the namespace.

As kube-controller-manager's namespace controller (pkg/controller/namespace):
when a namespace has a deletionTimestamp, every namespaced resource in it
(the built-in kinds, and the custom resources of the established namespaced
CRDs, which upstream finds through discovery) is deleted (background propagation); objects held by finalizers or in a
pod's grace period are only marked and waited for. Progress is reported
in upstream's five status conditions. Once nothing is left, the
`kubernetes` finalizer is removed through `namespaces/{name}/finalize`,
and the API server deletes the namespace when no finalizer is left.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Hashable, List, Optional, Tuple

from megaplane.apimachinery.meta import now_rfc3339
from megaplane.client import (
    BUILTIN,
    Client,
    ConflictError,
    MethodNotAllowedError,
    NotFoundError,
    ResourceRef,
)
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["NamespaceController", "FINALIZER"]

log = logging.getLogger("megaplane.controllers.namespace")

# spec.finalizers entry this controller owns.
FINALIZER = "kubernetes"
_CRDS = ResourceRef("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
# How soon a namespace whose content is still going away is looked at again.
RECHECK_SECONDS = 0.2

# The conditions, in upstream's order, with what each says when all is well.
_CONDITIONS_OK: List[Tuple[str, str, str]] = [
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    ("NamespaceDeletionContentFailure", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
]


class NamespaceController(QueueController):
    def __init__(self, client: Client, *, workers: int = 1, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("namespace-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.namespaces = client.resource("namespaces")
        self.shared_informer(self.namespaces).add_event_handler(
            self._enqueue, lambda old, new: self._enqueue(new), None)
        # Every namespaced kind, deleted in the table's order (as discovery would list them);
        # events.k8s.io Events are core Events stored once.
        self.contents = [ref for ref in BUILTIN.values() if ref.namespaced and ref.group != "events.k8s.io"]

    async def _custom_resources(self) -> List[ResourceRef]:
        """The namespaced custom resources (what discovery adds to the built-in kinds): one served version of
        each established namespaced CRD."""
        try:
            crds = (await self.client.resource(_CRDS).list_all())["items"]
        except (NotFoundError, MethodNotAllowedError):
            return []
        out = []
        for crd in crds:
            spec, status = crd.get("spec") or {}, crd.get("status") or {}
            names = status.get("acceptedNames") or {}
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in status.get("conditions") or ())
            served = [v.get("name") for v in spec.get("versions") or () if v.get("served")]
            if established and served and spec.get("scope") == "Namespaced" and names.get("plural"):
                out.append(ResourceRef(spec.get("group", ""), served[0], names["plural"], names.get("kind", ""), True))
        return out

    def _enqueue(self, ns: Any) -> None:
        if ns.get("metadata", {}).get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def sync(self, key: Hashable) -> None:
        name = str(key)
        ns = self.informers[0].lister.get(None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining: Dict[str, int] = {}
        finalizers: Dict[str, int] = {}
        for ref in list(self.contents) + await self._custom_resources():
            rc = self.client.resource(ref)
            try:
                items = (await rc.list_all(name))["items"]
            except (NotFoundError, MethodNotAllowedError):
                # Not served by this API server (the client's table is wider): as discovery would, skip it.
                if ref in self.contents:
                    self.contents.remove(ref)
                continue
            for obj in items:
                meta = obj["metadata"]
                if not meta.get("deletionTimestamp"):
                    try:
                        obj = await rc.delete(meta["name"], name, propagation_policy="Background")
                    except NotFoundError:
                        continue
                    if obj.get("kind") == "Status":
                        continue  # gone
                    meta = obj["metadata"]
                group_resource = f"{ref.plural}.{ref.group}" if ref.group else ref.plural
                remaining[group_resource] = remaining.get(group_resource, 0) + 1
                for f in meta.get("finalizers") or ():
                    finalizers[f] = finalizers.get(f, 0) + 1
        try:
            ns = await self.namespaces.get(name)
        except NotFoundError:
            return
        if _set_conditions(ns, remaining, finalizers):
            ns = await self.namespaces.update_status(ns)
        if remaining:
            # Look again soon while content drains (pods in their grace period, finalizers being removed).
            self.queue.add_after(name, RECHECK_SECONDS)
            return
        spec_finalizers = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        if spec_finalizers == (ns.get("spec") or {}).get("finalizers"):
            return  # already finalized by us; other finalizers keep it
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "resourceVersion": ns["metadata"]["resourceVersion"]},
                "spec": {"finalizers": spec_finalizers}}
        try:
            await self.namespaces.update(body, subresource="finalize")
        except (ConflictError, NotFoundError) as exc:  # changed meanwhile: the informer brings it back
            log.debug("finalizing namespace %s: %s", name, exc)


def _set_conditions(obj: Dict[str, Any], remaining: Dict[str, int], finalizers: Dict[str, int]) -> bool:
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
