"""Swagger 2.0 rendering: the single document of every group-version that GET /openapi/v2 serves.
"""

from __future__ import annotations

from typing import Any, Dict, List

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema.openapi.common import _PARAMS, Schema
from megaplane.apiserver.schema.openapi.paths import _Op, _op_common, _PathItem
from megaplane.apiserver.schema.openapi.schemas import _REF_V2, _closure


def _param_v2(name: str, description: str, where: str, typ: str, required: bool) -> Dict[str, Any]:
    p: Dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "type": typ,
        "uniqueItems": True,
    }
    if required:
        p["required"] = True
    return p


def _query_param_v2(name: str) -> Dict[str, Any]:
    where, typ, description = _PARAMS[name]
    return _param_v2(name, description, where, typ, False)


def _render_op_v2(op: _Op, ref: str, roots: set) -> Dict[str, Any]:
    out = _op_common(op)
    params = [_query_param_v2(p) for p in op.params]
    if op.body:
        roots.add(op.body)
        params.insert(0, {"name": "body", "in": "body", "required": True, "schema": {"$ref": ref + op.body}})
        out["consumes"] = list(op.body_types)
    else:
        out["consumes"] = ["*/*"]
    if params:
        out["parameters"] = params
    out["produces"] = list(op.produces)
    out["schemes"] = ["https"]
    responses: Dict[str, Any] = {}
    for code, desc, definition in op.responses:
        resp: Dict[str, Any] = {"description": desc}
        if definition:
            roots.add(definition)
            resp["schema"] = {"$ref": ref + definition}
        responses[code] = resp
    out["responses"] = responses
    return out


def _build_v2(groups: List[List[_PathItem]], synth: Dict[str, Schema]) -> Dict[str, Any]:
    """The Swagger 2.0 document of every group-version, from each one's path items."""
    ref = _REF_V2
    paths: Dict[str, Any] = {}
    roots: set = set()
    for path_items in groups:
        for pi in path_items:
            entry: Dict[str, Any] = {}
            for op in pi.ops:
                entry[op.method] = _render_op_v2(op, ref, roots)
            params = [_param_v2(n, d, "path", "string", True) for n, d in pi.path_params]
            params += [_query_param_v2(p) for p in pi.shared_params]
            if params:
                entry["parameters"] = params
            paths[pi.path] = entry
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
        "paths": paths,
        "definitions": _closure(roots, ref, synth),
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "in": "header",
                "name": "authorization",
                "description": "Bearer Token authentication",
            }
        },
        "security": [{"BearerToken": []}],
    }
