"""The Kubernetes 1.32 object schemas, for field validation, strategic merge patch and OpenAPI.

Source: the JSON schemas shipped by PyPI's `kubernetes-validate` (generated
from upstream's OpenAPI, `-local-strict` flavour, with the
`x-kubernetes-group-version-kind`, `x-kubernetes-patch-merge-key`,
`x-kubernetes-patch-strategy`, `x-kubernetes-list-type` and
`x-kubernetes-list-map-keys` annotations upstream puts on every
definition). Loaded once, lazily; lookups are cached.

A schema here is the plain dict of one definition or property; `resolve`
follows `$ref`s. Types are JSON-schema types and may be lists such as
["string", "null"] (nullable in the source).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "KUBERNETES_VERSION",
    "definitions",
    "definition_for",
    "resolve",
    "property_schema",
    "list_merge_key",
    "list_strategy",
    "schema_types",
]

KUBERNETES_VERSION = "1.32.0"

Schema = Dict[str, Any]


@functools.lru_cache(maxsize=1)
def definitions() -> Dict[str, Schema]:
    """Every definition by its upstream name (io.k8s.api.core.v1.Pod, ...)."""
    import kubernetes_validate

    path = os.path.join(
        os.path.dirname(kubernetes_validate.__file__),
        "kubernetes-json-schema",
        f"v{KUBERNETES_VERSION}-local-strict",
        "_definitions.json",
    )
    with open(path, "rb") as f:
        return json.load(f)["$defs"]  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=None)
def _gvk_index() -> Dict[Tuple[str, str, str], str]:
    out: Dict[Tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def definition_for(group: str, version: str, kind: str) -> Optional[str]:
    """The definition name of a kind (None if upstream has no such kind)."""
    return _gvk_index().get((group, version, kind))


def resolve(schema: Schema) -> Schema:
    """Follow `$ref` (and a single-element allOf wrapper) to the real schema."""
    while True:
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", ())) == 1:
            ref = schema["allOf"][0].get("$ref")
        if ref is None:
            return schema
        schema = definitions()[ref.rsplit("/", 1)[-1]]


def schema_types(schema: Schema) -> List[str]:
    """The JSON types a schema allows, without "null"."""
    t = resolve(schema).get("type")
    if t is None:
        return []
    if isinstance(t, str):
        return [t]
    return [x for x in t if x != "null"]


def property_schema(schema: Optional[Schema], name: str) -> Optional[Schema]:
    """The schema of property `name` of an object schema (None: unknown field)."""
    if schema is None:
        return None
    s = resolve(schema)
    props = s.get("properties")
    if props is not None and name in props:
        return props[name]  # type: ignore[no-any-return]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None


def list_merge_key(schema: Optional[Schema]) -> Optional[str]:
    """x-kubernetes-patch-merge-key of a list property, if it has one."""
    if schema is None:
        return None
    return schema.get("x-kubernetes-patch-merge-key")


def list_strategy(schema: Optional[Schema]) -> str:
    """x-kubernetes-patch-strategy of a property ("" when absent, i.e. replace)."""
    if schema is None:
        return ""
    return schema.get("x-kubernetes-patch-strategy", "")  # type: ignore[no-any-return]
