"""Pruning: fields a structural schema does not specify are dropped from a custom resource, as upstream's
structural/pruning does on decode; the dropped paths are what fieldValidation Warn/Strict report.

Kept whatever the schema says: apiVersion, kind and metadata at the root and in
x-kubernetes-embedded-resource objects (metadata pruned to ObjectMeta's
fields); everything under x-kubernetes-preserve-unknown-fields (still walked
where properties are specified).
"""

from __future__ import annotations

from typing import Any, Dict, List

__all__ = ["prune", "OBJECT_META_FIELDS"]

Schema = Dict[str, Any]

OBJECT_META_FIELDS = frozenset((
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
))
_TYPE_META = ("apiVersion", "kind")


def prune(obj: Dict[str, Any], schema: Schema) -> List[str]:
    """Drop what `schema` does not specify from `obj` (a whole custom resource), in place; the dropped
    fields' paths ("spec.foo", "metadata.bar"), sorted as upstream reports them."""
    dropped: List[str] = []
    _embedded(obj, schema, "", dropped)
    return sorted(dropped)


def _embedded(obj: Dict[str, Any], s: Schema, path: str, dropped: List[str]) -> None:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for k in [k for k in meta if k not in OBJECT_META_FIELDS]:
            del meta[k]
            dropped.append(f"{path}metadata.{k}")
    rest = {k: v for k, v in obj.items() if k not in _TYPE_META and k != "metadata"}
    _object(rest, s, path, dropped)
    for k in [k for k in obj if k not in _TYPE_META and k != "metadata" and k not in rest]:
        del obj[k]


def _object(obj: Dict[str, Any], s: Schema, path: str, dropped: List[str]) -> None:
    props = s.get("properties")
    extra = s.get("additionalProperties")
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    for k in list(obj):
        sub = props.get(k) if isinstance(props, dict) else None
        if sub is None and isinstance(extra, dict):
            sub = extra
        if sub is None:
            if not preserve and extra is not True:
                del obj[k]
                dropped.append(f"{path}{k}")
            continue
        _value(obj[k], sub, f"{path}{k}", dropped)


def _value(value: Any, s: Schema, path: str, dropped: List[str]) -> None:
    if isinstance(value, dict):
        if s.get("x-kubernetes-embedded-resource"):
            _embedded(value, s, path + ".", dropped)
        elif s.get("properties") is not None or isinstance(s.get("additionalProperties"), dict) or \
                not s.get("x-kubernetes-preserve-unknown-fields"):
            _object(value, s, path + ".", dropped)
    elif isinstance(value, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _value(item, items, f"{path}[{i}]", dropped)
