"""The bootstrap configuration as stored API objects, kept in line with `bootstrap` at every start.

As kube-apiserver's configuration producer does for objects marked
`apf.kubernetes.io/autoupdate-spec: "true"`: each PriorityLevelConfiguration and FlowSchema is created
when missing and its spec put back when it differs. They are real objects (the resource table serves
them with get/list/watch only, so kubectl, informers and watches see them like any other kind), and
read-only: the controller enforces `bootstrap`, not what is stored, so nothing can be edited that
would not take effect.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.flowcontrol.bootstrap import (
    FLOW_SCHEMAS,
    PRIORITY_LEVELS,
    flow_schema_document,
    priority_level_document,
)
from megaplane.apiserver.registry.options import DEFAULT_WRITE
from megaplane.apiserver.registry.registry import Registry

__all__ = ["GROUP", "ensure_objects", "documents"]

GROUP = "flowcontrol.apiserver.k8s.io"


def documents() -> List[Tuple[str, Dict[str, Any]]]:
    """(plural, object) for every bootstrap object, priority levels first (schemas name them)."""
    return [("prioritylevelconfigurations", priority_level_document(pl)) for pl in PRIORITY_LEVELS] + [
        ("flowschemas", flow_schema_document(fs)) for fs in FLOW_SCHEMAS]


async def ensure_objects(registry: Registry) -> int:
    """Create the missing bootstrap objects and restore changed ones; how many were written."""
    written = 0
    for plural, doc in documents():
        resource = lookup(GROUP, plural)
        if resource is None:
            raise LookupError(f"the resource table does not serve {plural}.{GROUP}")
        store = registry.store(resource)
        name = doc["metadata"]["name"]
        try:
            current = orjson.loads((await store.get("", name)).data)
        except errors.StatusError as exc:
            if exc.code != 404:
                raise
            await store.create("", doc, DEFAULT_WRITE)
            written += 1
            continue
        if current.get("spec") != doc["spec"] or current.get("status") != doc["status"]:
            doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await store.update("", name, doc, DEFAULT_WRITE)
            written += 1
    return written
