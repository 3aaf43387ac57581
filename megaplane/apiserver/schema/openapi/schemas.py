"""Schema conversion: kubernetes-validate's JSON schemas back into upstream's OpenAPI form.

Nullable type lists collapse to one type, the "strict" flavour's `additionalProperties: false`
and the `enum` on `apiVersion` / `kind` are dropped, IntOrString / Quantity get upstream's
string forms (v2) or oneOf forms (v3); `_closure` collects every definition a set of roots
references, for `components.schemas` (v3) or `definitions` (v2).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterable, Tuple

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema.openapi.common import Schema

# Types that are a string or a number on the wire. OpenAPI 2 has no oneOf, so upstream's v2
# document calls them strings; its v3 documents keep the oneOf and no top-level type (which
# is what makes `kubectl explain` print <IntOrString> / <map[string]Quantity>).
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_SPECIAL_DEFS: Dict[Tuple[str, str], Schema] = {
    (_INT_OR_STRING, "v2"): {
        "description": "IntOrString holds either an int32 or a string. Encoded as a JSON number or string.",
        "type": "string",
        "format": "int-or-string",
    },
    (_INT_OR_STRING, "v3"): {
        "description": "IntOrString holds either an int32 or a string. Encoded as a JSON number or string.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    (_QUANTITY, "v2"): {
        "description": "Quantity is a fixed-point number with an optional suffix (e.g. 100m, 1Gi, 2.5e3). "
        "Encoded as a string; plain JSON numbers are accepted on input.",
        "type": "string",
    },
    (_QUANTITY, "v3"): {
        "description": "Quantity is a fixed-point number with an optional suffix (e.g. 100m, 1Gi, 2.5e3). "
        "Encoded as a string; plain JSON numbers are accepted on input.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}
_REF_V3 = "#/components/schemas/"
_REF_V2 = "#/definitions/"


def _convert(node: Any, ref_prefix: str, drop_type_enums: bool = False) -> Any:
    """Convert one JSON-schema node (recursively) to OpenAPI form; see the module docstring."""
    if isinstance(node, list):
        return [_convert(x, ref_prefix) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type":
            if isinstance(value, list):
                types = [t for t in value if t != "null"]
                if types:
                    out[key] = types[0]
            else:
                out[key] = value
        elif key == "additionalProperties":
            # `false` comes from the "strict" flavour; upstream leaves structs open in the
            # document (unknown fields are the decoder's business, see fieldvalidation.py).
            if isinstance(value, dict):
                out[key] = _convert(value, ref_prefix)
            elif value is True:
                out[key] = True
        elif key == "properties":
            props = {}
            for name, sub in value.items():
                conv = _convert(sub, ref_prefix)
                if drop_type_enums and name in ("apiVersion", "kind") and isinstance(conv, dict):
                    conv.pop("enum", None)
                props[name] = conv
            out[key] = props
        elif key.startswith("x-kubernetes-") or key in ("enum", "required", "description", "format", "default",
                                                         "example"):
            out[key] = value  # data, not schemas: copy as is
        else:
            out[key] = _convert(value, ref_prefix)
    return out


@functools.lru_cache(maxsize=None)
def _converted_definition(name: str, ref_prefix: str) -> Schema:
    special = _SPECIAL_DEFS.get((name, "v3" if ref_prefix == _REF_V3 else "v2"))
    if special is not None:
        return dict(special)
    d = schema.definitions()[name]
    return _convert(d, ref_prefix, drop_type_enums="x-kubernetes-group-version-kind" in d)  # type: ignore[no-any-return]


def _v2_form(node: Any) -> Any:
    """A given v3 schema as upstream publishes it in v2 (ToStructuralOpenAPIV2): no nullable, oneOf, anyOf,
    allOf or not, and no type on an int-or-string (OpenAPI 2 cannot say it)."""
    if isinstance(node, list):
        return [_v2_form(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in ("nullable", "oneOf", "anyOf", "allOf", "not"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _v2_form(v) for k, v in value.items()} if isinstance(value, dict) else value
        elif key in ("items", "additionalProperties"):
            out[key] = _v2_form(value)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    return out


def _refs(node: Any, acc: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            acc.add(ref.rsplit("/", 1)[-1])
        for key, value in node.items():
            if key not in ("enum", "x-kubernetes-group-version-kind"):
                _refs(value, acc)
    elif isinstance(node, list):
        for x in node:
            _refs(x, acc)


def _closure(roots: Iterable[str], ref_prefix: str, extra: Dict[str, Schema]) -> Dict[str, Schema]:
    """Every definition reachable from `roots`, converted (`extra` holds synthesized ones)."""
    out: Dict[str, Schema] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name in extra:
            # Given schemas (custom resources) name their $refs in either form; v2 has no nullable nor *Of.
            d = _convert(extra[name], ref_prefix)
            if ref_prefix == _REF_V2:
                d = _v2_form(d)
        elif name in schema.definitions():
            d = _converted_definition(name, ref_prefix)
        else:
            continue
        out[name] = d
        found: set = set()
        _refs(d, found)
        todo.extend(sorted(found - out.keys()))
    return {k: out[k] for k in sorted(out)}
