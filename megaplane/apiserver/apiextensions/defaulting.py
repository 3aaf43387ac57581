"""Defaulting: the `default` values of a structural schema filled into a custom resource, as upstream's
structural/defaulting does on decode (create, update) and on read from storage.

A missing property with a default gets a copy of it; a null one too unless
the property is nullable. Defaults apply inside existing objects, array
items and additionalProperties values, outside in (a default object is then
itself defaulted).
"""

from __future__ import annotations

import copy
from typing import Any, Dict

__all__ = ["apply_defaults", "has_defaults"]

Schema = Dict[str, Any]


def has_defaults(schema: Any) -> bool:
    """Whether any node of the schema carries a default (reads skip defaulting otherwise)."""
    if not isinstance(schema, dict):
        return False
    if "default" in schema:
        return True
    props = schema.get("properties")
    if isinstance(props, dict) and any(has_defaults(v) for v in props.values()):
        return True
    return has_defaults(schema.get("items")) or has_defaults(schema.get("additionalProperties"))


def apply_defaults(value: Any, s: Schema) -> None:
    """Fill defaults into `value` (a custom resource, or any node under `s`), in place."""
    if isinstance(value, dict):
        props = s.get("properties")
        if isinstance(props, dict):
            for k, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if "default" in sub and (k not in value or (value[k] is None and not sub.get("nullable"))):
                    value[k] = copy.deepcopy(sub["default"])
                if k in value:
                    apply_defaults(value[k], sub)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            for k, v in value.items():
                if not isinstance(props, dict) or k not in props:
                    apply_defaults(v, extra)
    elif isinstance(value, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if item is None and "default" in items and not items.get("nullable"):
                    value[i] = copy.deepcopy(items["default"])
                apply_defaults(value[i], items)
