"""OpenAPI 3.0 rendering: one document per group-version, as GET /openapi/v3/<api/v1 | apis/g/v> serves it.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema.openapi.common import _PARAMS, Schema
from megaplane.apiserver.schema.openapi.paths import _Op, _op_common, _PathItem
from megaplane.apiserver.schema.openapi.schemas import _REF_V3, _closure


def _param_v3(name: str, description: str, where: str, typ: str, required: bool) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": typ, "uniqueItems": True},
    }
    if required:
        p["required"] = True
    return p


def _query_param_v3(name: str) -> Dict[str, Any]:
    where, typ, description = _PARAMS[name]
    return _param_v3(name, description, where, typ, False)


def _render_op_v3(op: _Op, ref: str, roots: set) -> Dict[str, Any]:
    out = _op_common(op)
    if op.params:
        out["parameters"] = [_query_param_v3(p) for p in op.params]
    if op.body:
        roots.add(op.body)
        out["requestBody"] = {
            "content": {t: {"schema": {"$ref": ref + op.body}} for t in op.body_types},
            "required": True,
        }
    responses: Dict[str, Any] = {}
    for code, desc, definition in op.responses:
        resp: Dict[str, Any] = {"description": desc}
        if definition:
            roots.add(definition)
            resp["content"] = {t: {"schema": {"$ref": ref + definition}} for t in op.produces}
        responses[code] = resp
    out["responses"] = responses
    return out


def _build_v3(path_items: List[_PathItem], synth: Dict[str, Schema]) -> Dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version, from its path items."""
    ref = _REF_V3
    paths: Dict[str, Any] = {}
    roots: set = set()
    for pi in path_items:
        entry: Dict[str, Any] = {}
        for op in pi.ops:
            entry[op.method] = _render_op_v3(op, ref, roots)
        params = [_param_v3(n, d, "path", "string", True) for n, d in pi.path_params]
        params += [_query_param_v3(p) for p in pi.shared_params]
        if params:
            entry["parameters"] = params
        paths[pi.path] = entry
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
        "paths": paths,
        "components": {
            "schemas": _closure(roots, ref, synth),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "Bearer Token authentication",
                }
            },
        },
        "security": [{"BearerToken": []}],
    }
