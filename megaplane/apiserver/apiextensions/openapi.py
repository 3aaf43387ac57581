"""The OpenAPI schema published for a custom resource version (apiextensions-apiserver's openapi builder).

The version's openAPIV3Schema with apiVersion, kind and metadata (ObjectMeta)
added as upstream's builder adds them, and the kind's
x-kubernetes-group-version-kind; the OpenAPI documents (schema.openapi) turn it
into v3 and v2 form (v2 without nullable and *Of, as ToStructuralOpenAPIV2).
"""

from __future__ import annotations

import copy
from typing import Any, Dict

__all__ = ["published_schema"]

_OBJECT_META = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_API_VERSION = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                "convert recognized schemas to the latest internal value, and may reject unrecognized values. More "
                "info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources")
_KIND = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
         "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
         "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")
_METADATA = ("Standard object's metadata. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")


def published_schema(group: str, version: str, kind: str, schema: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    props["apiVersion"] = {"description": _API_VERSION, "type": "string"}
    props["kind"] = {"description": _KIND, "type": "string"}
    props["metadata"] = {"$ref": _OBJECT_META, "description": _METADATA}
    out.setdefault("type", "object")
    out["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return out
