"""The bootstrap RBAC policy kept in place at API server start (kube-apiserver's storage_rbac post-start hook).

Missing ClusterRoles and ClusterRoleBindings of `policy` are created. An
existing one annotated `rbac.authorization.kubernetes.io/autoupdate: "true"`
is reconciled as upstream's `reconcile` does in its additive mode: missing
rules, labels, annotations and aggregationRule selectors put back (an
aggregated role's rules are the aggregation controller's), missing subjects
added to bindings; what an administrator added is kept. An object whose
annotation is "false" is left alone.
"""

from __future__ import annotations

from typing import Any, Dict, List

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.authz.policy import AUTOUPDATE, cluster_role_bindings, cluster_roles
from megaplane.apiserver.registry.options import DEFAULT_WRITE

__all__ = ["ensure_policy"]

GROUP = "rbac.authorization.k8s.io"


def _merged(current: Dict[str, Any], want: Dict[str, Any]) -> bool:
    """Fold what `want` has and `current` lacks into `current`; whether anything changed."""
    changed = False
    meta, wmeta = current.setdefault("metadata", {}), want["metadata"]
    for key in ("labels", "annotations"):
        have = meta.setdefault(key, {})
        for k, v in wmeta.get(key, {}).items():
            if k not in have:
                have[k] = v
                changed = True
    if "aggregationRule" in want:
        if current.get("aggregationRule") != want["aggregationRule"]:
            agg = current.setdefault("aggregationRule", {})
            sels = agg.setdefault("clusterRoleSelectors", [])
            for sel in want["aggregationRule"]["clusterRoleSelectors"]:
                if sel not in sels:
                    sels.append(sel)
                    changed = True
    elif "rules" in want:
        rules: List[Any] = current.get("rules") or []
        for rule in want["rules"]:
            if rule not in rules:
                rules.append(rule)
                changed = True
        current["rules"] = rules
    if "subjects" in want:
        subjects: List[Any] = current.get("subjects") or []
        for s in want["subjects"]:
            if s not in subjects:
                subjects.append(s)
                changed = True
        current["subjects"] = subjects
    return changed


async def ensure_policy(registry: Any) -> int:
    """Create or reconcile the bootstrap ClusterRoles, then their bindings; how many objects were written."""
    written = 0
    for plural, docs in (("clusterroles", cluster_roles()), ("clusterrolebindings", cluster_role_bindings())):
        resource = lookup(GROUP, plural)
        assert resource is not None
        store = registry.store(resource)
        for doc in docs:
            name = doc["metadata"]["name"]
            try:
                current = orjson.loads((await store.get("", name)).data)
            except errors.StatusError as exc:
                if exc.code != 404:
                    raise
                try:
                    await store.create("", doc, DEFAULT_WRITE)
                except errors.StatusError as exc2:
                    if exc2.code != 409:  # another API server on the same storage made it first
                        raise
                written += 1
                continue
            if ((current.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
                continue
            if _merged(current, doc):
                try:
                    await store.update("", name, current, DEFAULT_WRITE)
                except errors.StatusError as exc:
                    if exc.code != 409:
                        raise
                written += 1
    return written
