"""The structural schema rules a CRD version's openAPIV3Schema must follow (apiextensions-apiserver's
schema/validation.go and the CRD validation of its schema), with upstream's messages.

Checked: a type on every specified field (unless x-kubernetes-int-or-string or
x-kubernetes-preserve-unknown-fields says the value is free), `object` at the
root, `properties` and `additionalProperties` not both, `items` for arrays,
x-kubernetes-embedded-resource only on objects, int-or-string without a type,
known formats; only name and generateName may be specified under metadata.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apimachinery.errors import field_error

__all__ = ["structural_errors"]

Cause = Dict[str, Any]
# The formats upstream's CRD validation accepts (apiextensions' supportedFormats).
SUPPORTED_FORMATS = frozenset((
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4", "uuid5",
    "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password", "date", "duration",
    "datetime", "date-time", "int32", "int64", "float", "double",
))
_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def structural_errors(schema: Any, path: str) -> List[Cause]:
    """The causes a version's openAPIV3Schema at `path` fails with; [] for a structural schema."""
    out: List[Cause] = []
    if not isinstance(schema, dict):
        return [field_error("", path, None, "", "FieldValueRequired")]
    if schema.get("type") != "object":
        if not schema.get("type"):
            out.append(field_error("", f"{path}.type", None, "must not be empty at the root", "FieldValueRequired"))
        else:
            out.append(field_error("", f"{path}.type", schema.get("type"), "must be object at the root"))
    meta = (schema.get("properties") or {}).get("metadata") if isinstance(schema.get("properties"), dict) else None
    if isinstance(meta, dict):
        for k in (meta.get("properties") or {}):
            if k not in ("name", "generateName"):
                out.append(field_error("", f"{path}.properties[metadata].properties[{k}]", None, "", "FieldValueForbidden"))
    _node(schema, path, out, root=True)
    return out


def _node(s: Dict[str, Any], path: str, out: List[Cause], root: bool = False) -> None:
    typ = s.get("type", "")
    if typ and typ not in _TYPES:
        out.append(field_error("", f"{path}.type", typ, "supported values: " + ", ".join(f'"{t}"' for t in _TYPES),
                               "FieldValueNotSupported"))
    if s.get("x-kubernetes-int-or-string") and typ:
        out.append(field_error("", f"{path}.type", typ, "must be empty if x-kubernetes-int-or-string is true"))
    if s.get("x-kubernetes-embedded-resource") and typ != "object":
        out.append(field_error("", f"{path}.type", typ, "must be object if x-kubernetes-embedded-resource is true"))
    fmt = s.get("format")
    if fmt and fmt not in SUPPORTED_FORMATS:
        out.append(field_error("", f"{path}.format", fmt, "supported values: " + ", ".join(
            f'"{f}"' for f in sorted(SUPPORTED_FORMATS)), "FieldValueNotSupported"))
    if s.get("additionalProperties") is False:
        out.append(field_error("", f"{path}.additionalProperties", None, "additionalProperties cannot be set to false",
                               "FieldValueForbidden"))
    elif "properties" in s and isinstance(s.get("additionalProperties"), dict):
        out.append(field_error("", f"{path}.additionalProperties", None,
                               "additionalProperties and properties are mutual exclusive", "FieldValueForbidden"))
    if typ == "array" and not isinstance(s.get("items"), dict):
        out.append(field_error("", f"{path}.items", None, "must be specified", "FieldValueRequired"))
    for name, sub in (s.get("properties") or {}).items() if isinstance(s.get("properties"), dict) else ():
        where = f"{path}.properties[{name}]"
        if not isinstance(sub, dict):
            continue
        if not sub.get("type") and not (sub.get("x-kubernetes-int-or-string") or
                                        sub.get("x-kubernetes-preserve-unknown-fields")):
            out.append(field_error("", f"{where}.type", None, "must not be empty for specified object fields",
                                   "FieldValueRequired"))
        _node(sub, where, out)
    items = s.get("items")
    if isinstance(items, dict):
        if not items.get("type") and not (items.get("x-kubernetes-int-or-string") or
                                          items.get("x-kubernetes-preserve-unknown-fields")):
            out.append(field_error("", f"{path}.items.type", None, "must not be empty for specified array items",
                                   "FieldValueRequired"))
        _node(items, f"{path}.items", out)
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        if not extra.get("type") and not (extra.get("x-kubernetes-int-or-string") or
                                          extra.get("x-kubernetes-preserve-unknown-fields")):
            out.append(field_error("", f"{path}.additionalProperties.type", None,
                                   "must not be empty for specified object fields", "FieldValueRequired"))
        _node(extra, f"{path}.additionalProperties", out)
