"""NamespaceLifecycle admission: content needs a namespace that exists and is not terminating.

As upstream's admission plugin: no new content in a namespace that is
missing (404) or terminating (403 with the `NamespaceTerminating` cause
controllers look for); `default`, `kube-system` and `kube-public` may not
be deleted.
"""

from __future__ import annotations

from typing import Callable, Optional

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["NamespaceAdmission", "IMMORTAL_NAMESPACES"]

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


class NamespaceAdmission:
    def __init__(self, namespace: Callable[[str], Optional[CachedObject]]) -> None:
        self._namespace = namespace

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
