"""GET /openapi/v2 as protobuf (gnostic's openapi_v2.Document): what kubectl's client-side validation reads.

kubectl (client-go discovery ``OpenAPISchema``) asks for
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and unmarshals the body as gnostic's
Document; validating a ``kind: List`` (which the field-validation query-param check never vouches
for) always goes through it. The tests decode the served bytes with the generated module and hold
them against the JSON document, check kube-openapi's negotiation / ETag / conditional behaviour over
a real socket, check gnostic's compiler rules on small documents, and run the real kubectl.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import yaml

from megaplane.apimachinery.resources import RESOURCES
from megaplane.apiserver.schema.openapi import OpenAPI, ResourceInfo, handler
from megaplane.apiserver.schema.openapi.handler import JSON, PROTOBUF, PROTOBUF_DEPRECATED, negotiate
from megaplane.apiserver.schema.openapi.pb import OpenAPIv2_pb2 as pb
from megaplane.apiserver.schema.openapi.v2proto import InvalidDocument, to_document, to_protobuf

# ---- the document kube-apiserver would serve, decoded the way kubectl decodes it


@pytest.fixture(scope="module")
def local() -> Tuple[Dict[str, Any], Any]:
    infos = [ResourceInfo(r.group, r.version, r.plural, r.kind, r.namespaced, r.subresources, r.verbs)
             for r in RESOURCES]
    o = OpenAPI(infos)
    body = o.v2_document()
    doc = pb.Document()
    doc.ParseFromString(o.v2_protobuf())
    assert o.v2_protobuf() is o.v2_protobuf(), "the protobuf is built once and cached"
    return json.loads(body), doc


def _named(items: Any) -> Dict[str, Any]:
    return {p.name: p.value for p in items}


def _back(msg: Any) -> Any:
    """A decoded message back in Swagger JSON form (proto3 drops zero scalars; the comparison allows that)."""
    name = msg.DESCRIPTOR.name
    if name == "Any":
        return yaml.safe_load(msg.yaml)
    if name == "TypeItem":
        return list(msg.value)
    if name == "ItemsItem":
        assert len(msg.schema) == 1
        return _back(msg.schema[0])
    if msg.DESCRIPTOR.oneofs and msg.DESCRIPTOR.oneofs[0].name == "oneof":
        which = msg.WhichOneof("oneof")
        value = getattr(msg, which)
        return value if isinstance(value, bool) else _back(value)
    fields = [f.name for f in msg.DESCRIPTOR.fields]
    if fields == ["additional_properties"]:
        return {p.name: p.value if isinstance(p.value, str) else _back(p.value) for p in msg.additional_properties}
    out: Dict[str, Any] = {}
    for field, value in msg.ListFields():
        if field.name == "vendor_extension":
            out.update({e.name: yaml.safe_load(e.value.yaml) for e in value})
        elif field.name in ("path", "response_code"):
            out.update({e.name: _back(e.value) for e in value})
        else:
            key = "$ref" if field.name == "_ref" else field.camelcase_name
            if field.type == field.TYPE_MESSAGE:
                value = [_back(v) for v in value] if field.is_repeated else _back(value)
            elif field.is_repeated:
                value = list(value)
            out[key] = value
    return out


def _same(js: Any, back: Any, where: str = "$") -> None:
    if isinstance(js, dict):
        assert isinstance(back, dict), where
        for k, v in js.items():
            if k not in back:
                assert v in (False, "", 0, []) and not isinstance(v, dict), f"{where}/{k} lost: {v!r}"
                continue
            if k == "type" and isinstance(v, str) and isinstance(back[k], list):  # a Schema's TypeItem
                v = [v]
            _same(v, back[k], f"{where}/{k}")
        extra = set(back) - set(js)
        assert not extra, f"{where}: keys not in the JSON: {extra}"
    elif isinstance(js, list):
        assert isinstance(back, list) and len(js) == len(back), where
        for i, (a, b) in enumerate(zip(js, back)):
            _same(a, b, f"{where}/{i}")
    else:
        assert js == back and type(js) is type(back) or (isinstance(js, int) and float(js) == back), \
            f"{where}: {js!r} != {back!r}"


def test_definitions_and_paths_match_the_json_in_document_order(local: Tuple[Dict[str, Any], Any]) -> None:
    js, doc = local
    assert doc.swagger == "2.0"
    assert (doc.info.title, doc.info.version) == (js["info"]["title"], js["info"]["version"])
    assert [d.name for d in doc.definitions.additional_properties] == list(js["definitions"])
    assert [p.name for p in doc.paths.path] == list(js["paths"])
    assert len(js["definitions"]) > 100 and len(js["paths"]) > 100
    sec = _named(doc.security_definitions.additional_properties)["BearerToken"]
    assert sec.WhichOneof("oneof") == "api_key_security"
    assert sec.api_key_security.name == "authorization"
    assert getattr(sec.api_key_security, "in") == "header"
    assert [list(r.additional_properties[0].value.value) for r in doc.security] == [[]]
    assert doc.security[0].additional_properties[0].name == "BearerToken"


def test_every_schema_and_operation_survives_the_round_trip(local: Tuple[Dict[str, Any], Any]) -> None:
    js, doc = local
    _same(js["definitions"], _back(doc.definitions), "$/definitions")
    _same(js["paths"], _back(doc.paths), "$/paths")
    _same(js["securityDefinitions"], _back(doc.security_definitions), "$/securityDefinitions")


def test_schema_facts_kubectl_validation_reads(local: Tuple[Dict[str, Any], Any]) -> None:
    _, doc = local
    defs = _named(doc.definitions.additional_properties)
    cm = defs["io.k8s.api.core.v1.ConfigMap"]
    props = _named(cm.properties.additional_properties)
    assert list(props) == ["apiVersion", "binaryData", "data", "immutable", "kind", "metadata"]
    assert list(cm.type.value) == ["object"]
    assert props["metadata"]._ref == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    data = props["data"]
    assert list(data.type.value) == ["object"]
    assert data.additional_properties.WhichOneof("oneof") == "schema"
    assert list(data.additional_properties.schema.type.value) == ["string"]
    assert list(props["immutable"].type.value) == ["boolean"]
    ext = _named(cm.vendor_extension)
    assert yaml.safe_load(ext["x-kubernetes-group-version-kind"].yaml) == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}]
    dep = defs["io.k8s.api.apps.v1.Deployment"]
    assert yaml.safe_load(_named(dep.vendor_extension)["x-kubernetes-group-version-kind"].yaml) == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    containers = _named(defs["io.k8s.api.core.v1.PodSpec"].properties.additional_properties)["containers"]
    assert list(containers.type.value) == ["array"]
    assert containers.items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.Container"
    # kube-openapi's proto models refuse a definition of several types and an array of other than one item.
    for name, schema in defs.items():
        _walk_types(schema, name)


def _walk_types(s: Any, where: str) -> None:
    assert len(s.type.value) <= 1, where
    if "array" in s.type.value:
        assert len(s.items.schema) == 1, where
    for p in s.properties.additional_properties:
        _walk_types(p.value, f"{where}.{p.name}")
    for item in s.items.schema:
        _walk_types(item, f"{where}[]")
    if s.additional_properties.WhichOneof("oneof") == "schema":
        _walk_types(s.additional_properties.schema, f"{where}{{}}")


def test_operations_parameters_and_responses(local: Tuple[Dict[str, Any], Any]) -> None:
    _, doc = local
    paths = _named(doc.paths.path)
    item = paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]
    ext = _named(item.patch.vendor_extension)
    assert yaml.safe_load(ext["x-kubernetes-action"].yaml) == "patch"
    assert yaml.safe_load(ext["x-kubernetes-group-version-kind"].yaml) == {
        "group": "", "kind": "ConfigMap", "version": "v1"}
    assert item.patch.operation_id == "patchCoreV1NamespacedConfigMap"
    body = item.patch.parameters[0].parameter
    assert body.WhichOneof("oneof") == "body_parameter"
    assert body.body_parameter.required and body.body_parameter.schema._ref == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch")
    queries = {p.parameter.non_body_parameter.query_parameter_sub_schema.name
               for p in item.patch.parameters[1:]}
    assert "fieldValidation" in queries and "dryRun" in queries
    for p in item.patch.parameters[1:]:
        assert p.parameter.non_body_parameter.WhichOneof("oneof") == "query_parameter_sub_schema"
    path_params = [p.parameter.non_body_parameter for p in item.parameters]
    named = [p.path_parameter_sub_schema for p in path_params if p.WhichOneof("oneof") == "path_parameter_sub_schema"]
    assert {(p.name, p.required, p.type) for p in named} == {("name", True, "string"), ("namespace", True, "string")}
    codes = _named(item.get.responses.response_code)
    assert codes["200"].response.schema.schema._ref == "#/definitions/io.k8s.api.core.v1.ConfigMap"
    assert codes["401"].response.description == "Unauthorized"


# ---- gnostic's compiler rules, on small documents


def _doc(**extra: Any) -> Dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}, **extra}


def _compile(d: Dict[str, Any]) -> Any:
    return to_document(json.dumps(d).encode())


def test_gnostic_variants_and_values() -> None:
    doc = _compile(_doc(
        paths={
            "/x": {
                "x-top": {"a": [1, "b"]},
                "get": {
                    "parameters": [
                        {"$ref": "#/parameters/p"},
                        {"name": "h", "in": "header", "type": "string"},
                        {"name": "f", "in": "formData", "type": "file"},
                        {"name": "q", "in": "query", "type": "integer", "default": 5, "enum": [5, 10]},
                    ],
                    "responses": {
                        "200": {"description": "ok", "schema": {"type": "file"}},
                        "201": {"description": "made", "schema": {"type": "object", "additionalProperties": False}},
                        "404": {"$ref": "#/responses/nf", "description": "also a Response"},
                        "default": {"description": "d", "examples": {"application/json": {"k": "v"}}},
                    },
                },
            },
        },
        definitions={"D": {"type": ["string", "null"], "example": "true", "items": {"type": "integer"},
                           "maximum": 3, "maxLength": 4}},
        securityDefinitions={"o": {"type": "oauth2", "flow": "password", "tokenUrl": "u",
                                   "scopes": {"read": "r"}}},
    ))
    path = doc.paths.path[0]
    assert path.name == "/x"
    assert yaml.safe_load(path.value.vendor_extension[0].value.yaml) == {"a": [1, "b"]}
    params = path.value.get.parameters
    assert params[0].WhichOneof("oneof") == "json_reference" and params[0].json_reference._ref == "#/parameters/p"
    kinds = [p.parameter.non_body_parameter.WhichOneof("oneof") for p in params[1:]]
    assert kinds == ["header_parameter_sub_schema", "form_data_parameter_sub_schema", "query_parameter_sub_schema"]
    q = params[3].parameter.non_body_parameter.query_parameter_sub_schema
    assert yaml.safe_load(q.default.yaml) == 5 and [yaml.safe_load(e.yaml) for e in q.enum] == [5, 10]
    codes = _named(path.value.get.responses.response_code)
    # Schema and FileSchema both parse `type: file`; gnostic keeps the last variant that parses.
    assert codes["200"].response.schema.WhichOneof("oneof") == "file_schema"
    obj = codes["201"].response.schema
    assert obj.WhichOneof("oneof") == "schema"
    assert obj.schema.additional_properties.WhichOneof("oneof") == "boolean"
    assert obj.schema.additional_properties.boolean is False
    # A Response and a JsonReference both parse: the reference (later in the oneof) wins.
    assert codes["404"].WhichOneof("oneof") == "json_reference"
    ex = codes["default"].response.examples.additional_properties[0]
    assert ex.name == "application/json" and yaml.safe_load(ex.value.yaml) == {"k": "v"}
    d = doc.definitions.additional_properties[0].value
    assert list(d.type.value) == ["string", "null"]
    assert yaml.safe_load(d.example.yaml) == "true", "a string that reads as a bool stays a string"
    assert list(d.items.schema[0].type.value) == ["integer"]
    assert (d.maximum, d.max_length) == (3.0, 4)
    o = doc.security_definitions.additional_properties[0].value
    assert o.WhichOneof("oneof") == "oauth2_password_security"
    assert [(s.name, s.value) for s in o.oauth2_password_security.scopes.additional_properties] == [("read", "r")]


@pytest.mark.parametrize("bad", [
    _doc(extra=1),                                               # unknown key
    {"swagger": "3.0", "info": {"title": "t", "version": "1"}, "paths": {}},  # swagger enum
    {"swagger": "2.0", "paths": {}},                            # required info
    _doc(paths={"x": {}}),                                       # a path must start with /
    _doc(definitions={"D": {"items": [{"type": "string"}]}}),    # gnostic takes one items schema only
    _doc(definitions={"D": {"maxLength": 1.5}}),                 # int64 from a float
    _doc(paths={"/x": {"get": {"responses": {"600x": {"description": "d"}}}}}),
    _doc(paths={"/x": {"get": {"responses": {}, "parameters": [{"name": "a", "in": "cookie", "type": "string"}]}}}),
    _doc(paths={"/x": {"get": {}}}),                             # an operation needs responses
])
def test_documents_gnostic_refuses(bad: Dict[str, Any]) -> None:
    with pytest.raises(InvalidDocument):
        _compile(bad)


def test_protobuf_is_deterministic_bytes(local: Tuple[Dict[str, Any], Any]) -> None:
    js, doc = local
    assert to_protobuf(json.dumps(js, sort_keys=True, separators=(",", ":")).encode()) == doc.SerializeToString()


# ---- negotiation, over a real socket


def test_negotiation_table() -> None:
    assert negotiate("") == JSON
    assert negotiate("*/*") == JSON
    assert negotiate("application/*") == JSON
    assert negotiate(PROTOBUF_DEPRECATED) == PROTOBUF
    assert negotiate(PROTOBUF) == PROTOBUF
    assert negotiate(f"application/json;q=0.5, {PROTOBUF_DEPRECATED}") == PROTOBUF
    assert negotiate(f"*/*;q=0.1, {PROTOBUF_DEPRECATED};q=0.9") == PROTOBUF
    assert negotiate(f"{PROTOBUF};q=0.9, application/json") == JSON
    assert negotiate("text/html, application/yaml") is None
    # goautoneg's Less puts a concrete type before */* whatever their q (Go sorts a header by insertion).
    assert negotiate(f"*/*, {PROTOBUF_DEPRECATED};q=0.5") == PROTOBUF
    assert negotiate("application/json;q=0, text/html") == JSON, "q=0 is not a refusal to goautoneg"
    assert negotiate("application/json;q= 0.5, */*") == JSON


class _Refused:
    """A served document gnostic's compiler refuses (`items` as a list)."""

    def v2_document(self) -> bytes:
        return json.dumps(_doc(definitions={"D": {"items": [{"type": "string"}]}})).encode()

    def v2_protobuf(self) -> bytes:
        return to_protobuf(self.v2_document())

    def v2_etag(self) -> str:
        return "E"

    def v2_last_modified(self) -> float:
        return 1.0


def test_a_document_gnostic_refuses_is_503_in_protobuf_only() -> None:
    reply = handler.serve_v2(_Refused(), "GET", {"accept": PROTOBUF_DEPRECATED})
    assert (reply.status, reply.body, reply.headers) == (503, b"", [("Vary", "Accept")])
    assert handler.serve_v2(_Refused(), "GET", {"accept": "application/json"}).status == 200


def _get(cluster: Any, headers: Dict[str, str], method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=60)
    try:
        conn.request(method, "/openapi/v2", headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(cluster: Any) -> Iterator[Tuple[Dict[str, str], bytes, Dict[str, str], bytes]]:
    status, jh, jbody = _get(cluster, {"Accept": "application/json"})
    assert status == 200
    status, ph, pbody = _get(cluster, {"Accept": PROTOBUF_DEPRECATED})
    assert status == 200
    yield jh, jbody, ph, pbody


def test_served_protobuf_is_the_served_json(served: Any) -> None:
    jh, jbody, ph, pbody = served
    assert jh["content-type"] == JSON
    assert ph["content-type"] == PROTOBUF
    js = json.loads(jbody)
    doc = pb.Document()
    doc.ParseFromString(pbody)
    assert [d.name for d in doc.definitions.additional_properties] == list(js["definitions"])
    assert [p.name for p in doc.paths.path] == list(js["paths"])
    _same(js["paths"], _back(doc.paths), "$/paths")
    etag = '"' + hashlib.sha512(jbody).hexdigest().upper() + '"'
    assert jh["etag"] == ph["etag"] == etag, "both forms carry the JSON's ETag"
    assert jh["vary"] == ph["vary"] == "Accept"
    assert "last-modified" in jh


def test_served_variants_and_conditionals(cluster: Any, served: Any) -> None:
    jh, jbody, ph, pbody = served
    etag = jh["etag"]
    status, h, body = _get(cluster, {"Accept": PROTOBUF})
    assert (status, h["content-type"], body) == (200, PROTOBUF, pbody)
    status, h, body = _get(cluster, {})
    assert (status, h["content-type"], body) == (200, JSON, jbody)
    status, h, body = _get(cluster, {"Accept": "text/html"})
    assert (status, body, h["vary"]) == (406, b"", "Accept")
    for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
        status, h, body = _get(cluster, {"Accept": PROTOBUF_DEPRECATED, "If-None-Match": inm})
        assert (status, body, h["etag"]) == (304, b"", etag), inm
        assert "last-modified" not in h
    status, _, body = _get(cluster, {"Accept": PROTOBUF_DEPRECATED, "If-None-Match": '"other"'})
    assert (status, body) == (200, pbody)
    status, _, body = _get(cluster, {"If-Modified-Since": jh["last-modified"]})
    assert (status, body) == (304, b"")
    status, _, _ = _get(cluster, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert status == 200
    status, _, _ = _get(cluster, {"If-Match": '"other"'})
    assert status == 412
    status, _, body = _get(cluster, {"If-Match": etag})
    assert (status, body) == (200, jbody)


# ---- the real kubectl


def _configmap(name: str, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"k": "v"}, **(extra or {})}


def _deployment(name: str) -> Dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx",
                                                           "ports": [{"containerPort": 80}]}]}}}}


def _list_file(cluster: Any, name: str, items: List[Dict[str, Any]]) -> str:
    path = os.path.join(cluster.root, name)
    with open(path, "w") as f:
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    return path


def test_kubectl_apply_of_a_list_validates_against_the_protobuf(cluster: Any) -> None:
    path = _list_file(cluster, "list.yaml", [_configmap("pb-a"), _configmap("pb-b"), _deployment("pb-web")])
    out = cluster.kubectl("apply", "-f", path, "-v=6", fresh_cache=True)
    assert out.returncode == 0, out.stderr
    assert "configmap/pb-a created" in out.stdout and "deployment.apps/pb-web created" in out.stdout
    assert "/openapi/v2?timeout=32s 200 OK" in out.stderr, "kubectl's client-side validation read /openapi/v2"
    got = cluster.ok("get", "configmaps,deployments", "-n", "default", "-o", "name")
    assert {"configmap/pb-a", "configmap/pb-b", "deployment.apps/pb-web"} <= set(got.split())


def test_kubectl_strict_validation_refuses_an_unknown_field_in_a_list(cluster: Any) -> None:
    path = _list_file(cluster, "bad.yaml", [_configmap("pb-ok"), _configmap("pb-bad", {"bogus": 1})])
    out = cluster.kubectl("apply", "--validate=strict", "-f", path, fresh_cache=True)
    assert out.returncode == 1
    assert (f'error: error validating "{path}": error validating data: ValidationError(ConfigMap): '
            'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap; if you choose to ignore these errors, '
            "turn validation off with --validate=false") in out.stderr
    got = cluster.kubectl("get", "configmap", "pb-ok", "pb-bad", "-n", "default")
    assert "NotFound" in got.stderr and "pb-ok " not in got.stdout, "client-side validation sends nothing"


def test_kubectl_validation_follows_refs_and_types_through_the_protobuf(cluster: Any) -> None:
    dep = _deployment("pb-typed")
    dep["spec"]["replicas"] = "x"
    dep["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    path = _list_file(cluster, "typed.yaml", [dep])
    out = cluster.kubectl("apply", "-f", path, fresh_cache=True)  # --validate=strict is kubectl's default
    assert out.returncode == 1
    assert (f'error: error validating "{path}": error validating data: ['
            'ValidationError(Deployment.spec.replicas): invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: '
            'got "string", expected "integer", '
            'ValidationError(Deployment.spec.template.spec.containers[0]): unknown field "bogus" in '
            "io.k8s.api.core.v1.Container]; if you choose to ignore these errors, turn validation off with "
            "--validate=false") in out.stderr


def test_kubectl_create_of_a_list(cluster: Any) -> None:
    path = _list_file(cluster, "create.yaml", [_configmap("pb-c1"), _deployment("pb-c2")])
    out = cluster.kubectl("create", "-f", path, fresh_cache=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["configmap/pb-c1", "created", "deployment.apps/pb-c2", "created"]
