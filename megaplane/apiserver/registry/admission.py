"""Admission: NamespaceLifecycle, the mutating plugins run on every create (DefaultTolerationSeconds, Priority),
and the validating plugins run on creates and updates (Priority).

As upstream's NamespaceLifecycle plugin: no new content in a namespace that
is missing (404) or terminating (403 with the `NamespaceTerminating` cause
controllers look for); `default`, `kube-system` and `kube-public` may not
be deleted. `NamespaceAdmission.mutating` holds the mutating plugins the
server enables (`admit_create` runs them on a new object before defaulting
and validation of its strategy); `NamespaceAdmission.validating` the
validating ones (`validate_create` / `validate_update` run after the
strategy's validation, before storage, as upstream's validating admission).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["DefaultTolerationSeconds", "IMMORTAL_NAMESPACES", "MutatingPlugin", "NamespaceAdmission",
           "QuotaPlugin", "ValidatingPlugin", "WaitingPlugin", "WriteGuard"]

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


class MutatingPlugin(Protocol):
    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        """Change `obj` (a new object of `resource`) in place."""


class ValidatingPlugin(Protocol):
    def validate_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        """Refuse (raise a StatusError) a new object of `resource`, defaulted and validated by its strategy."""

    def validate_update(self, resource: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """Refuse an update of the main resource (not a subresource) from `old` to `obj`.

        It may also complete `obj` from `old` where upstream's mutating half would have (Priority puts back a
        pod priority the body left out, which validation would otherwise see as a change)."""


class WaitingPlugin(Protocol):
    async def wait_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        """Wait (briefly) for what the plugin's synchronous admission of `obj` will look up."""


class QuotaPlugin(Protocol):
    def evaluates_updates(self, resource: Resource) -> bool:
        """Whether an update of `resource` can change what it counts for (Lease renewals skip `admit`)."""

    async def admit(self, resource: Resource, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
                    dry_run: bool) -> None:
        """Refuse a create (old None) or update beyond quota, else charge it (last step before storage)."""


class WriteGuard(Protocol):
    def check_write(self, resource: Resource, subresource: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
                    opts: Any) -> None:
        """Refuse a create (old None) or an update (of the main resource or a subresource) for the requesting
        user (`opts.user`, a WriteOptions'): RBAC escalation checks, NodeRestriction."""


class DefaultTolerationSeconds:
    """Upstream's DefaultTolerationSeconds plugin: pods tolerate not-ready / unreachable NoExecute for a while.

    A pod with no toleration of `node.kubernetes.io/not-ready` (or of
    `unreachable`) with effect NoExecute (a toleration with an empty key or
    effect counts) gets `{key, operator: Exists, effect: NoExecute,
    tolerationSeconds}` from --default-not-ready-toleration-seconds /
    --default-unreachable-toleration-seconds (300). Upstream also runs it on
    updates; pod updates may only add tolerations, so a pod created here
    already has them and an update could not take them away.
    """

    NOT_READY, UNREACHABLE = "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"

    def __init__(self, not_ready_seconds: int = 300, unreachable_seconds: int = 300) -> None:
        self.not_ready_seconds = not_ready_seconds
        self.unreachable_seconds = unreachable_seconds

    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if resource.group or resource.plural != "pods":
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        tolerations = spec.get("tolerations")
        if not isinstance(tolerations, list):
            tolerations = []
        not_ready = unreachable = False
        for t in tolerations:
            if not isinstance(t, dict):
                continue
            key, effect = t.get("key") or "", t.get("effect") or ""
            if effect in ("", "NoExecute"):
                not_ready = not_ready or key in ("", self.NOT_READY)
                unreachable = unreachable or key in ("", self.UNREACHABLE)
        added = []
        if not not_ready:
            added.append({"key": self.NOT_READY, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": self.not_ready_seconds})
        if not unreachable:
            added.append({"key": self.UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": self.unreachable_seconds})
        if added:
            spec["tolerations"] = tolerations + added


class NamespaceAdmission:
    def __init__(self, namespace: Callable[[str], Optional[CachedObject]]) -> None:
        self._namespace = namespace
        #: Mutating plugins run on every create, in order (the server adds DefaultTolerationSeconds).
        self.mutating: List[MutatingPlugin] = []
        #: Validating plugins run on every create and update of a main resource, in order (the server adds Priority).
        self.validating: List[ValidatingPlugin] = []
        #: Checks of who writes (apiserver.authz: escalation, NodeRestriction), after validation, before storage.
        self.guards: List[WriteGuard] = []
        #: Awaited before the mutating plugins of a create (ServiceAccount waits for a new namespace's `default`).
        self.waiting: List[WaitingPlugin] = []
        #: ResourceQuota: awaited last, before storage (it writes the quotas' status.used); None when disabled.
        self.quota: Optional[QuotaPlugin] = None

    async def wait_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        for plugin in self.waiting:
            await plugin.wait_create(resource, obj)

    def guard(self, resource: Resource, subresource: str, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
              opts: Any) -> None:
        for g in self.guards:
            g.check_write(resource, subresource, obj, old, opts)

    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        for plugin in self.mutating:
            plugin.admit_create(resource, obj)

    def validate_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        for plugin in self.validating:
            plugin.validate_create(resource, obj)

    def validate_update(self, resource: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        for plugin in self.validating:
            plugin.validate_update(resource, obj, old)

    def admit_content(self, resource: Resource, namespace: str, name: str) -> None:
        if not resource.namespaced:
            return
        ns = self._namespace(namespace)
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
