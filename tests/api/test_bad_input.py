"""Bad input to the API server: the Status kube-apiserver 1.32 answers, and nothing stored.

Every case sends a malformed or refused request over a real socket to a real
`megaplane up` (raw HTTP through http.client, or the `kubernetes` client where a
client would hit the case) and checks two things:

- the answer is the `Status` upstream returns: HTTP code, `reason`, `message`
  and `details` as kube-apiserver 1.32 builds them;
- nothing was written: the object is absent (or unchanged) on a follow-up GET,
  and the LIST resourceVersion of the collection did not move.

Where an expected value comes from is named next to it. The upstream sources:
  create.go / update.go / patch.go / rest.go   k8s.io/apiserver/pkg/endpoints/handlers
  transformDecodeError, summarizeData           handlers/rest.go: `the object provided is unrecognized
                                                (must be of type K): <err> (<summary>)`, the summary being
                                                the body if it starts with '{' (30 bytes + " ..."), else hex
  SimpleMetaFactory.Interpret                   runtime/serializer/json/meta.go (encoding/json errors)
  protobuf Serializer.Decode                    runtime/serializer/protobuf (`expected prefix [107 56 115 0]`)
  NewGenericServerResponse                      apimachinery/pkg/api/errors (go-restful 404/405/415/422
                                                errors carry `details: {}`)
  go-restful RouterJSR311.detectRoute           405 before 415; 415 "415: Unsupported Media Type" for a
                                                PATCH whose Content-Type no route consumes
  notfoundhandler + http.NotFound               an unknown API group is the plain-text "404 page not found"
  NamespaceLifecycle admission                  plugin/pkg/admission/namespace/lifecycle
  ValidateListOptions                           apimachinery/pkg/apis/meta/internalversion/validation
  labels.Parse, fields.ParseSelector            apimachinery/pkg/labels, pkg/fields
  DefaultMetaV1FieldSelectorConversion          apimachinery/pkg/runtime/conversion.go
  etcd3 store GetList, storage.DecodeContinue   apiserver/pkg/storage
  rest.BeforeDelete                             apiserver/pkg/registry/rest/delete.go
"""

from __future__ import annotations

import copy
import http.client
import json
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

NS = "bad-input"
MISSING_NS = "bad-input-nowhere"
DOOMED_NS = "bad-input-doomed"
NODE = "bad-input-node"

POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
DEPLOY_SPEC = {
    "replicas": 1,
    "selector": {"matchLabels": {"app": "x"}},
    "template": {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC},
}

# name -> (collection path template, apiVersion, kind, group, extra body, namespaced)
RESOURCES: Dict[str, Tuple[str, str, str, str, Dict[str, Any], bool]] = {
    "configmaps": ("/api/v1/namespaces/{ns}/configmaps", "v1", "ConfigMap", "", {"data": {"k": "v"}}, True),
    "pods": ("/api/v1/namespaces/{ns}/pods", "v1", "Pod", "", {"spec": POD_SPEC}, True),
    "services": ("/api/v1/namespaces/{ns}/services", "v1", "Service", "", {"spec": {"ports": [{"port": 80}]}}, True),
    "leases": ("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", "coordination.k8s.io/v1", "Lease",
               "coordination.k8s.io", {"spec": {"holderIdentity": "me"}}, True),
    "deployments": ("/apis/apps/v1/namespaces/{ns}/deployments", "apps/v1", "Deployment", "apps",
                    {"spec": DEPLOY_SPEC}, True),
    "nodes": ("/api/v1/nodes", "v1", "Node", "", {}, False),
    "namespaces": ("/api/v1/namespaces", "v1", "Namespace", "", {}, False),
}

# The name each resource's pre-existing object has (created by the `env` fixture).
EXISTING = {"configmaps": "existing", "pods": "existing", "services": "existing", "leases": "existing",
            "deployments": "existing", "nodes": NODE, "namespaces": NS}

# --- upstream validation wording (k8s.io/apimachinery/pkg/util/validation) -----------------------
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
             "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
             r"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
           "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
           "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
             "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
             "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
               "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
               "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

# encoding/json's name for SimpleMetaFactory.Interpret's anonymous findKind struct.
FIND_KIND = r'struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }'

ACCEPTED_BODY_TYPES = "application/json, application/yaml, application/vnd.kubernetes.protobuf"
NOT_FOUND_GENERIC = "the server could not find the requested resource"
NOT_ALLOWED_GENERIC = "the server does not allow this method on the requested resource"
REJECTED_GENERIC = "the server rejected our request due to an error in our request"
MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"

ANY = object()  # "do not check" marker for details


# ==================================================================================================
# Plumbing


class Resp:
    def __init__(self, code: int, headers: Dict[str, str], raw: bytes) -> None:
        self.code = code
        self.headers = headers
        self.raw = raw

    def json(self) -> Any:
        return json.loads(self.raw)

    def __repr__(self) -> str:
        return f"<Resp {self.code} {self.raw[:400]!r}>"


class Raw:
    """Plain HTTP/1.1 to the server: any method, any bytes, any Content-Type."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80

    def request(self, method: str, path: str, body: Optional[bytes] = None, ctype: Optional[str] = "application/json",
                headers: Optional[Dict[str, str]] = None) -> Resp:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            hdrs = {"Accept": "application/json"}
            if body is not None and ctype is not None:
                hdrs["Content-Type"] = ctype
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path: str) -> Resp:
        return self.request("GET", path)

    def send_json(self, method: str, path: str, obj: Any) -> Resp:
        return self.request(method, path, json.dumps(obj).encode())


def coll(resource: str, ns: str = NS) -> str:
    return RESOURCES[resource][0].format(ns=ns)


def item(resource: str, name: str, ns: str = NS) -> str:
    return f"{coll(resource, ns)}/{urllib.parse.quote(name, safe='')}"


def obj(resource: str, name: Optional[str] = None, **meta: Any) -> Dict[str, Any]:
    _, api_version, kind, _, extra, _ = RESOURCES[resource]
    metadata: Dict[str, Any] = dict(meta)
    if name is not None:
        metadata["name"] = name
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **copy.deepcopy(extra)}


def qualified(resource: str) -> str:
    """`plural.group` as NewNotFound / NewAlreadyExists / NewConflict print it."""
    group = RESOURCES[resource][3]
    return f"{resource}.{group}" if group else resource


def kind_qualified(resource: str) -> str:
    """`Kind.group` as NewInvalid prints it."""
    _, _, kind, group, _, _ = RESOURCES[resource]
    return f"{kind}.{group}" if group else kind


def details(name: Optional[str], group: str, kind: str, **extra: Any) -> Dict[str, Any]:
    d: Dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    d.update(extra)
    return d


def assert_status(resp: Resp, code: int, reason: Optional[str], message: Optional[str] = None, *,
                  prefix: Optional[str] = None, suffix: Optional[str] = None, det: Any = ANY) -> Dict[str, Any]:
    """The response is a JSON metav1.Status: kind Status, apiVersion v1, status Failure, code == HTTP code."""
    assert resp.code == code, f"expected HTTP {code}, got {resp!r}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("metadata") == {}, body
    assert body.get("status") == "Failure", body
    assert body.get("code") == code, body
    if reason is None:  # StatusReasonUnknown is "" and omitted on the wire
        assert body.get("reason", "") == "", body
    else:
        assert body.get("reason") == reason, body
    if message is not None:
        assert body.get("message") == message, body
    if prefix is not None:
        assert body.get("message", "").startswith(prefix), body
    if suffix is not None:
        assert body.get("message", "").endswith(suffix), body
    if det is None:
        assert "details" not in body, body
    elif det is not ANY:
        assert body.get("details") == det, body
    return body


def snapshot(raw: Raw, path: str) -> Tuple[str, Dict[str, Any]]:
    """(list resourceVersion, {name: object}) of a collection."""
    r = raw.get(path)
    assert r.code == 200, r
    body = r.json()
    return body["metadata"]["resourceVersion"], {i["metadata"]["name"]: i for i in body["items"]}


class Unchanged:
    """Context manager: nothing was stored by the request(s) in the block.

    - each collection's list resourceVersion and items are the same after the block as before;
    - each path in `items` answers a GET exactly as before (same code, same bytes);
    - each path in `absent` answers 404 afterwards.
    The store is checked even when an assertion in the block failed, so a report says both what the
    server answered and whether it wrote anything.
    """

    def __init__(self, raw: Raw, *paths: str, items: Tuple[str, ...] = (), absent: Tuple[str, ...] = ()) -> None:
        self.raw = raw
        self.paths = paths
        self.items = items
        self.absent = absent
        self.before: List[Tuple[str, Dict[str, Any]]] = []
        self.items_before: List[Tuple[int, bytes]] = []

    def __enter__(self) -> "Unchanged":
        self.before = [snapshot(self.raw, p) for p in self.paths]
        self.items_before = [self._get(p) for p in self.items]
        for path in self.items:
            assert self._get(path)[0] == 200, f"{path} must exist before the request"
        return self

    def _get(self, path: str) -> Tuple[int, bytes]:
        r = self.raw.get(path)
        return r.code, r.raw

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc_type is not None and not issubclass(exc_type, AssertionError):
            return False
        problems = []
        for path, before in zip(self.paths, self.before):
            after = snapshot(self.raw, path)
            if after[0] != before[0]:
                problems.append(f"{path}: list resourceVersion moved {before[0]} -> {after[0]}")
            if after[1] != before[1]:
                changed = sorted(set(after[1]) ^ set(before[1])) or sorted(
                    n for n in after[1] if after[1][n] != before[1].get(n))
                problems.append(f"{path}: items changed: {changed}")
        for path, before_item in zip(self.items, self.items_before):
            after_item = self._get(path)
            if after_item != before_item:
                problems.append(f"{path} changed: {before_item[1][:300]!r} -> {after_item[1][:300]!r}")
        for path in self.absent:
            code, body = self._get(path)
            if code != 404:
                problems.append(f"{path} exists after a rejected request: {code} {body[:300]!r}")
        if problems:
            stored = "the rejected request stored something: " + "; ".join(problems)
            if exc is not None:
                raise AssertionError(f"{exc}\n... and {stored}") from exc
            raise AssertionError(stored)
        return False


def summary(body: bytes) -> str:
    """handlers.summarizeData(body, 30)."""
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        return body[:30].decode() + (" ..." if len(body) > 30 else "")
    return body[:30].hex() + (" ..." if len(body) > 30 else "")


def unrecognized(kind: str, err: str, body: bytes) -> str:
    return f"the object provided is unrecognized (must be of type {kind}): {err} ({summary(body)})"


# ==================================================================================================
# Fixtures


@pytest.fixture(scope="module")
def raw(cluster) -> Raw:  # type: ignore[no-untyped-def]
    return Raw(cluster.url)


@pytest.fixture(scope="module")
def env(raw: Raw) -> Raw:
    """The test namespace and one existing object of every resource."""
    for resource in ("namespaces", "nodes", "configmaps", "pods", "services", "leases", "deployments"):
        r = raw.send_json("POST", coll(resource), obj(resource, EXISTING[resource]))
        assert r.code == 201, r
    return raw


def current(raw: Raw, path: str) -> Dict[str, Any]:
    r = raw.get(path)
    assert r.code == 200, r
    return r.json()


# ==================================================================================================
# Bodies that do not decode


CREATE_TARGETS = ["configmaps", "pods", "leases", "deployments", "nodes", "namespaces"]


@pytest.mark.parametrize("resource", CREATE_TARGETS)
def test_truncated_json_on_create(env: Raw, resource: str) -> None:
    body = b'{"apiVersion":"v1",'
    with Unchanged(env, coll(resource)):
        r = env.request("POST", coll(resource), body)
        assert_status(r, 400, "BadRequest", unrecognized(
            RESOURCES[resource][2], "couldn't get version/kind; json parse error: unexpected end of JSON input", body),
            det=None)


@pytest.mark.parametrize("resource", ["configmaps", "nodes"])
def test_json_syntax_error_on_create(env: Raw, resource: str) -> None:
    body = b'{"apiVersion": v1, "metadata": {"name": "syntax"}}'
    with Unchanged(env, coll(resource), absent=(item(resource, "syntax"),)):
        r = env.request("POST", coll(resource), body)
        assert_status(r, 400, "BadRequest", unrecognized(
            RESOURCES[resource][2],
            "couldn't get version/kind; json parse error: invalid character 'v' looking for beginning of value", body),
            det=None)


NOT_OBJECTS = [(b"[1,2]", "array"), (b'"configmap"', "string"), (b"42", "number"), (b"true", "bool")]


@pytest.mark.parametrize("resource", ["configmaps", "leases", "nodes"])
@pytest.mark.parametrize("body,go_type", NOT_OBJECTS, ids=[t for _, t in NOT_OBJECTS])
def test_json_that_is_not_an_object(env: Raw, resource: str, body: bytes, go_type: str) -> None:
    err = f"couldn't get version/kind; json parse error: json: cannot unmarshal {go_type} into Go value of type {FIND_KIND}"
    with Unchanged(env, coll(resource)):
        r = env.request("POST", coll(resource), body)
        assert_status(r, 400, "BadRequest", unrecognized(RESOURCES[resource][2], err, body), det=None)


@pytest.mark.parametrize("body,go_type", NOT_OBJECTS[:2], ids=[t for _, t in NOT_OBJECTS[:2]])
def test_json_that_is_not_an_object_on_update(env: Raw, body: bytes, go_type: str) -> None:
    path = item("configmaps", "existing")
    err = f"couldn't get version/kind; json parse error: json: cannot unmarshal {go_type} into Go value of type {FIND_KIND}"
    with Unchanged(env, coll("configmaps"), items=(path,)):
        r = env.request("PUT", path, body)
        assert_status(r, 400, "BadRequest", unrecognized("ConfigMap", err, body), det=None)


@pytest.mark.parametrize("method,resource", [("POST", "configmaps"), ("POST", "nodes"), ("POST", "namespaces"),
                                             ("PUT", "configmaps"), ("PUT", "leases"), ("PUT", "nodes")])
def test_empty_body(env: Raw, method: str, resource: str) -> None:
    path = coll(resource) if method == "POST" else item(resource, EXISTING[resource])
    with Unchanged(env, coll(resource), items=(item(resource, EXISTING[resource]),)):
        r = env.request(method, path, b"")
        assert_status(r, 400, "BadRequest", unrecognized(
            RESOURCES[resource][2], "couldn't get version/kind; json parse error: unexpected end of JSON input", b""),
            det=None)


# ==================================================================================================
# Content types


def test_yaml_body_is_accepted(env: Raw) -> None:
    body = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  namespace: {NS}\ndata:\n  k: v\n"
    r = env.request("POST", coll("configmaps"), body.encode(), ctype="application/yaml")
    assert r.code == 201, r
    stored = current(env, item("configmaps", "from-yaml"))
    assert stored["data"] == {"k": "v"}
    body = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: from-yaml\nspec:\n  holderIdentity: y\n"
    r = env.request("POST", coll("leases"), body.encode(), ctype="application/yaml")
    assert r.code == 201, r
    assert current(env, item("leases", "from-yaml"))["spec"]["holderIdentity"] == "y"


def test_invalid_yaml_is_rejected(env: Raw) -> None:
    # goyaml.v2 (sigs.k8s.io/yaml) wording for a mapping value after a multi-line plain scalar.
    body = b"apiVersion: v1\nkind: ConfigMap\n  metadata: x\n"
    with Unchanged(env, coll("configmaps")):
        r = env.request("POST", coll("configmaps"), body, ctype="application/yaml")
        assert_status(r, 400, "BadRequest", unrecognized(
            "ConfigMap", "yaml: line 3: mapping values are not allowed in this context", body), det=None)


def test_yaml_that_is_not_a_mapping(env: Raw) -> None:
    body = b"- a\n- b\n"
    err = f"couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type {FIND_KIND}"
    with Unchanged(env, coll("configmaps")):
        r = env.request("POST", coll("configmaps"), body, ctype="application/yaml")
        assert_status(r, 400, "BadRequest", unrecognized("ConfigMap", err, body), det=None)


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("method,resource", [("POST", "configmaps"), ("POST", "nodes"), ("PUT", "leases")])
def test_unsupported_content_type(env: Raw, ctype: str, method: str, resource: str) -> None:
    path = coll(resource) if method == "POST" else item(resource, EXISTING[resource])
    name = "plain-text" if method == "POST" else EXISTING[resource]
    absent = (item(resource, name),) if method == "POST" else ()
    with Unchanged(env, coll(resource), items=(item(resource, EXISTING[resource]),), absent=absent):
        r = env.request(method, path, json.dumps(obj(resource, name)).encode(), ctype=ctype)
        assert_status(r, 415, "UnsupportedMediaType",
                      f"the body of the request was in an unknown format - accepted media types include: "
                      f"{ACCEPTED_BODY_TYPES}", det=None)


PROTOBUF = "application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize("resource", ["configmaps", "nodes", "deployments"])
def test_protobuf_garbage_without_magic(env: Raw, resource: str) -> None:
    body = b"garbage"
    with Unchanged(env, coll(resource)):
        r = env.request("POST", coll(resource), body, ctype=PROTOBUF)
        assert_status(r, 400, "BadRequest", unrecognized(
            RESOURCES[resource][2],
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]", body), det=None)


@pytest.mark.parametrize("body,err", [(b"", "empty data"), (b"k8s\x00", "empty body")], ids=["empty", "magic-only"])
def test_protobuf_empty(env: Raw, body: bytes, err: str) -> None:
    with Unchanged(env, coll("configmaps")):
        r = env.request("POST", coll("configmaps"), body, ctype=PROTOBUF)
        assert_status(r, 400, "BadRequest", unrecognized("ConfigMap", err, body), det=None)


def test_protobuf_garbage_after_magic(env: Raw) -> None:
    body = b"k8s\x00\xff\xff\xff\xff\xff\xff"
    with Unchanged(env, coll("configmaps")):
        r = env.request("POST", coll("configmaps"), body, ctype=PROTOBUF)
        # The gogo-protobuf error text itself is not pinned; the envelope and summary are.
        assert_status(r, 400, "BadRequest", prefix="the object provided is unrecognized (must be of type ConfigMap): ",
                      suffix=f" ({summary(body)})", det=None)


# ==================================================================================================
# Bodies that decode but disagree with the URL


KIND_MISMATCH = [
    # rest.go transformDecodeError with the body's kind; the converter's "unknown conversion" (k8s.io/apimachinery
    # conversion.Converter.Convert prints the Go types of the external source and the internal target).
    ("configmaps", {"apiVersion": "v1", "kind": "Secret"},
     'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): '
     "unknown conversion", None),
    ("nodes", {"apiVersion": "v1", "kind": "Pod"},
     'Pod in version "v1" cannot be handled as a Node: converting (v1.Pod) to (core.Node): unknown conversion', None),
    ("deployments", {"apiVersion": "apps/v1", "kind": "StatefulSet"},
     'StatefulSet in version "v1" cannot be handled as a Deployment: converting (v1.StatefulSet) to '
     "(apps.Deployment): unknown conversion", None),
    # A version the scheme does not know: Scheme.New's notRegisteredErr (scheme name not pinned).
    ("configmaps", {"apiVersion": "v2", "kind": "ConfigMap"}, None,
     'ConfigMap in version "v2" cannot be handled as a ConfigMap: no kind "ConfigMap" is registered for version "v2" '
     'in scheme "'),
    ("configmaps", {"apiVersion": "v1", "kind": "Frobnicator"}, None,
     'Frobnicator in version "v1" cannot be handled as a ConfigMap: no kind "Frobnicator" is registered for '
     'version "v1" in scheme "'),
    # Registered but not served versions decode, then fail AcceptsGroupVersion (create.go).
    ("leases", {"apiVersion": "coordination.k8s.io/v1beta1", "kind": "Lease"},
     "the API version in the data (coordination.k8s.io/v1beta1) does not match the expected API version "
     "(coordination.k8s.io/v1)", None),
    ("deployments", {"apiVersion": "apps/v1beta2", "kind": "Deployment"},
     "the API version in the data (apps/v1beta2) does not match the expected API version (apps/v1)", None),
]


@pytest.mark.parametrize("resource,typemeta,message,prefix", KIND_MISMATCH,
                         ids=[f"{c[0]}-{c[1]['apiVersion']}-{c[1]['kind']}" for c in KIND_MISMATCH])
def test_apiversion_or_kind_disagrees_with_url(env: Raw, resource: str, typemeta: Dict[str, str],
                                               message: Optional[str], prefix: Optional[str]) -> None:
    body = {**obj(resource, "mismatched"), **typemeta}
    with Unchanged(env, coll(resource), absent=(item(resource, "mismatched"),)):
        r = env.send_json("POST", coll(resource), body)
        assert_status(r, 400, "BadRequest", message, prefix=prefix, det=None)


def test_kind_disagrees_with_url_on_update(env: Raw) -> None:
    path = item("configmaps", "existing")
    with Unchanged(env, coll("configmaps"), items=(path,)):
        r = env.send_json("PUT", path, {**obj("configmaps", "existing"), "kind": "Secret"})
        assert_status(r, 400, "BadRequest", 'Secret in version "v1" cannot be handled as a ConfigMap: converting '
                      "(v1.Secret) to (core.ConfigMap): unknown conversion", det=None)


NS_MISMATCH = "the namespace of the provided object does not match the namespace sent on the request"


@pytest.mark.parametrize("resource", ["configmaps", "pods", "leases", "deployments"])
def test_namespace_in_body_disagrees_with_url_on_create(env: Raw, resource: str) -> None:
    with Unchanged(env, coll(resource), coll(resource, "default"),
                   absent=(item(resource, "elsewhere"), item(resource, "elsewhere", "default"))):
        r = env.send_json("POST", coll(resource), obj(resource, "elsewhere", namespace="default"))
        assert_status(r, 400, "BadRequest", NS_MISMATCH, det=None)


@pytest.mark.parametrize("resource", ["configmaps", "leases"])
def test_namespace_in_body_disagrees_with_url_on_update(env: Raw, resource: str) -> None:
    path = item(resource, "existing")
    with Unchanged(env, coll(resource), items=(path,)):
        r = env.send_json("PUT", path, obj(resource, "existing", namespace="default"))
        assert_status(r, 400, "BadRequest", NS_MISMATCH, det=None)


def test_namespace_on_cluster_scoped_object_is_cleared(env: Raw) -> None:
    # EnsureObjectNamespaceMatchesRequestNamespace: a cluster-scoped request clears metadata.namespace.
    r = env.send_json("POST", coll("nodes"), obj("nodes", "bad-input-node-ns", namespace="default"))
    assert r.code == 201, r
    assert "namespace" not in current(env, item("nodes", "bad-input-node-ns"))["metadata"]


@pytest.mark.parametrize("resource", ["configmaps", "leases", "deployments", "nodes", "namespaces"])
def test_update_name_disagrees_with_url(env: Raw, resource: str) -> None:
    path = item(resource, EXISTING[resource])
    with Unchanged(env, coll(resource), items=(path,), absent=(item(resource, "bad-input-other"),)):
        r = env.send_json("PUT", path, obj(resource, "bad-input-other"))
        assert_status(r, 400, "BadRequest", f"the name of the object (bad-input-other) does not match the name on "
                      f"the URL ({EXISTING[resource]})", det=None)


# ==================================================================================================
# Validation: names, labels, annotations


LONG_254 = "a" * 254
LONG_64 = "a" * 64

INVALID_NAMES = [
    ("configmaps", "Bad", SUBDOMAIN),
    ("configmaps", "-abc", SUBDOMAIN),
    ("configmaps", "abc-", SUBDOMAIN),
    ("configmaps", "a_b", SUBDOMAIN),
    ("configmaps", LONG_254, "must be no more than 253 characters"),
    ("pods", "Pod.Upper", SUBDOMAIN),
    ("leases", "Bad", SUBDOMAIN),
    ("deployments", "Bad_Deploy", SUBDOMAIN),
    ("nodes", "Bad_Node", SUBDOMAIN),
    ("nodes", LONG_254, "must be no more than 253 characters"),
    ("namespaces", "Bad-NS", DNS_LABEL),
    ("namespaces", LONG_64, "must be no more than 63 characters"),
    ("services", "1svc", DNS1035),
    ("services", "Svc", DNS1035),
]


@pytest.mark.parametrize("resource,name,why", INVALID_NAMES,
                         ids=[f"{c[0]}-{c[1][:12]}" for c in INVALID_NAMES])
def test_invalid_name(env: Raw, resource: str, name: str, why: str) -> None:
    _, _, kind, group, _, _ = RESOURCES[resource]
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "{name}": {why}', "field": "metadata.name"}
    with Unchanged(env, coll(resource)):
        r = env.send_json("POST", coll(resource), obj(resource, name))
        assert_status(r, 422, "Invalid",
                      f'{kind_qualified(resource)} "{name}" is invalid: metadata.name: {cause["message"]}',
                      det=details(name, group, kind, causes=[cause]))


@pytest.mark.parametrize("resource", ["configmaps", "nodes", "leases", "namespaces"])
def test_missing_name_without_generate_name(env: Raw, resource: str) -> None:
    _, _, kind, group, _, _ = RESOURCES[resource]
    cause = {"reason": "FieldValueRequired", "message": "Required value: name or generateName is required",
             "field": "metadata.name"}
    with Unchanged(env, coll(resource)):
        r = env.send_json("POST", coll(resource), obj(resource))
        assert_status(r, 422, "Invalid", f'{kind_qualified(resource)} "" is invalid: metadata.name: {cause["message"]}',
                      det=details(None, group, kind, causes=[cause]))


def test_invalid_generate_name(env: Raw) -> None:
    # ValidateObjectMetaAccessor checks generateName (as a prefix) and then the generated name.
    with Unchanged(env, coll("configmaps")):
        r = env.send_json("POST", coll("configmaps"), obj("configmaps", generateName="Bad"))
        st = assert_status(r, 422, "Invalid", prefix='ConfigMap "Bad')
    causes = st["details"]["causes"]
    assert [c["field"] for c in causes] == ["metadata.generateName", "metadata.name"], causes
    assert causes[0] == {"reason": "FieldValueInvalid", "message": f'Invalid value: "Bad": {SUBDOMAIN}',
                         "field": "metadata.generateName"}


META_CASES = [
    ("labels", {"bad key": "v"}, "bad key", NAME_PART),
    ("labels", {"Example.com/x": "v"}, "Example.com/x", f"prefix part {SUBDOMAIN}"),
    ("labels", {LONG_64: "v"}, LONG_64, "name part must be no more than 63 characters"),
    ("labels", {"/x": "v"}, "/x", "prefix part must be non-empty"),
    ("labels", {"k": "bad value!"}, "bad value!", LABEL_VALUE),
    ("labels", {"k": "v" * 64}, "v" * 64, "must be no more than 63 characters"),
    ("annotations", {"bad key": "v"}, "bad key", NAME_PART),
    ("annotations", {"a/b/c": "v"}, "a/b/c",
     "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
     "(e.g. 'example.com/MyName')"),
]


@pytest.mark.parametrize("resource", ["configmaps", "nodes", "leases"])
@pytest.mark.parametrize("where,value,bad,why", META_CASES, ids=[f"{c[0]}-{c[2][:14]}" for c in META_CASES])
def test_invalid_labels_and_annotations(env: Raw, resource: str, where: str, value: Dict[str, str], bad: str,
                                        why: str) -> None:
    _, _, kind, group, _, _ = RESOURCES[resource]
    name = "bad-meta"
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "{bad}": {why}', "field": f"metadata.{where}"}
    with Unchanged(env, coll(resource), absent=(item(resource, name),)):
        r = env.send_json("POST", coll(resource), obj(resource, name, **{where: value}))
        assert_status(r, 422, "Invalid", f'{kind_qualified(resource)} "{name}" is invalid: metadata.{where}: '
                      f'{cause["message"]}', det=details(name, group, kind, causes=[cause]))


def test_annotation_keys_are_case_insensitive(env: Raw) -> None:
    # ValidateAnnotations lower-cases the key before IsQualifiedName: an uppercase prefix is fine there.
    r = env.send_json("POST", coll("configmaps"), obj("configmaps", "upper-annotation",
                                                       annotations={"Example.com/Key": "v"}))
    assert r.code == 201, r
    assert current(env, item("configmaps", "upper-annotation"))["metadata"]["annotations"] == {"Example.com/Key": "v"}


def test_annotations_too_large(env: Raw) -> None:
    name = "big-annotations"
    with Unchanged(env, coll("configmaps")):
        r = env.send_json("POST", coll("configmaps"), obj("configmaps", name, annotations={"a": "x" * (256 * 1024)}))
        st = assert_status(r, 422, "Invalid", prefix=f'ConfigMap "{name}" is invalid: metadata.annotations: Too long')
    causes = st["details"]["causes"]
    assert len(causes) == 1 and causes[0]["field"] == "metadata.annotations", causes
    assert causes[0]["reason"] == "FieldValueTooLong" and "262144" in causes[0]["message"], causes
    assert "x" * 100 not in st["message"], "the too-long value must not be echoed"


def test_invalid_labels_in_update(env: Raw) -> None:
    path = item("configmaps", "existing")
    body = current(env, path)
    body["metadata"]["labels"] = {"bad key": "v"}
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "bad key": {NAME_PART}',
             "field": "metadata.labels"}
    with Unchanged(env, coll("configmaps"), items=(path,)):
        r = env.send_json("PUT", path, body)
        assert_status(r, 422, "Invalid", f'ConfigMap "existing" is invalid: metadata.labels: {cause["message"]}',
                      det=details("existing", "", "ConfigMap", causes=[cause]))


# ==================================================================================================
# Namespaces that do not take new content


@pytest.mark.parametrize("resource", ["configmaps", "pods", "leases", "deployments"])
def test_create_in_missing_namespace(env: Raw, resource: str) -> None:
    with Unchanged(env, coll(resource, MISSING_NS), coll("namespaces"),
                   absent=(item(resource, "orphan", MISSING_NS), item("namespaces", MISSING_NS))):
        r = env.send_json("POST", coll(resource, MISSING_NS), obj(resource, "orphan"))
        assert_status(r, 404, "NotFound", f'namespaces "{MISSING_NS}" not found',
                      det=details(MISSING_NS, "", "namespaces"))


@pytest.fixture(scope="module")
def doomed(env: Raw):  # type: ignore[no-untyped-def]
    """A namespace held in Terminating by a finalizer nobody removes."""
    r = env.send_json("POST", coll("namespaces"), obj("namespaces", DOOMED_NS, finalizers=["example.com/hold"]))
    assert r.code == 201, r
    r = env.request("DELETE", item("namespaces", DOOMED_NS))
    assert r.code in (200, 202), r  # 200 upstream: see test_delete_of_a_namespace_that_is_finalizing
    ns = current(env, item("namespaces", DOOMED_NS))
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"].get("deletionTimestamp"), ns
    yield DOOMED_NS
    env.request("PATCH", item("namespaces", DOOMED_NS), b'{"metadata":{"finalizers":null}}',
                ctype="application/merge-patch+json")


def test_delete_of_a_namespace_that_is_finalizing(env: Raw) -> None:
    # The namespace is not gone when DELETE returns (it is Terminating); upstream's delete handler still answers
    # 200 with the object: 202 only when the client asked for orphanDependents=false (handlers/delete.go).
    name = f"{DOOMED_NS}-2"
    r = env.send_json("POST", coll("namespaces"), obj("namespaces", name, finalizers=["example.com/hold"]))
    assert r.code == 201, r
    try:
        r = env.request("DELETE", item("namespaces", name))
        assert r.code == 200, r
        body = r.json()
        assert body["kind"] == "Namespace" and body["status"]["phase"] == "Terminating", body
    finally:
        env.request("PATCH", item("namespaces", name), b'{"metadata":{"finalizers":null}}',
                    ctype="application/merge-patch+json")


@pytest.mark.parametrize("resource", ["configmaps", "pods", "leases", "deployments"])
def test_create_in_terminating_namespace(env: Raw, doomed: str, resource: str) -> None:
    name = "late"
    group = RESOURCES[resource][3]
    cause = {"reason": "NamespaceTerminating", "message": f"namespace {doomed} is being terminated",
             "field": "metadata.namespace"}
    with Unchanged(env, coll(resource, doomed), absent=(item(resource, name, doomed),)):
        r = env.send_json("POST", coll(resource, doomed), obj(resource, name))
        assert_status(r, 403, "Forbidden", f'{qualified(resource)} "{name}" is forbidden: unable to create new '
                      f"content in namespace {doomed} because it is being terminated",
                      det=details(name, group, resource, causes=[cause]))


# ==================================================================================================
# Paths and methods the API does not have


UNKNOWN_JSON_404 = [
    ("GET", f"/api/v1/namespaces/{NS}/frobs"),
    ("POST", f"/api/v1/namespaces/{NS}/frobs"),
    ("GET", "/api/v1/frobs"),
    ("GET", f"/api/v1/namespaces/{NS}/frobs/x"),
    ("GET", f"/apis/apps/v1/namespaces/{NS}/frobs"),
    ("GET", "/apis/apps/v2/deployments"),
    ("GET", f"/apis/apps/v1beta77/namespaces/{NS}/deployments"),
    ("GET", "/api/v2/pods"),
    ("GET", f"/api/v1/namespaces/{NS}/configmaps/existing/frob"),
    ("GET", f"/api/v1/namespaces/{NS}/nodes"),
]


@pytest.mark.parametrize("method,path", UNKNOWN_JSON_404, ids=[f"{m} {p}" for m, p in UNKNOWN_JSON_404])
def test_unknown_resource_or_version_is_404(env: Raw, method: str, path: str) -> None:
    # go-restful finds the group's web service but no route: serviceErrorHandler -> NewGenericServerResponse(404).
    body = b"{}" if method == "POST" else None
    with Unchanged(env, coll("configmaps")):
        r = env.request(method, path, body)
        assert_status(r, 404, "NotFound", NOT_FOUND_GENERIC, det={})


@pytest.mark.parametrize("path", ["/apis/frob.example.com/v1/frobs",
                                  f"/apis/frob.example.com/v1/namespaces/{NS}/frobs/x"])
def test_unknown_group_is_plain_404(env: Raw, path: str) -> None:
    # No web service claims the path: kube-aggregator -> kube-apiserver -> apiextensions' CRD handler
    # (no such CRD) -> the delegation chain's notfoundhandler -> net/http's http.NotFound.
    r = env.get(path)
    assert r.code == 404, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    assert r.raw == b"404 page not found\n", r


METHOD_NOT_ALLOWED = [
    ("POST", "configmaps", True),
    ("POST", "leases", True),
    ("POST", "nodes", True),
    ("POST", "namespaces", True),
    ("PATCH", "configmaps", False),
    ("PUT", "configmaps", False),
    ("PATCH", "deployments", False),
    ("PATCH", "nodes", False),
    ("PUT", "nodes", False),
    ("PUT", "namespaces", False),
]


@pytest.mark.parametrize("method,resource,named", METHOD_NOT_ALLOWED,
                         ids=[f"{m}-{r}-{'item' if n else 'collection'}" for m, r, n in METHOD_NOT_ALLOWED])
def test_method_not_allowed(env: Raw, method: str, resource: str, named: bool) -> None:
    # go-restful matched the path but no route has the method: 405 through NewGenericServerResponse.
    path = item(resource, EXISTING[resource]) if named else coll(resource)
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    with Unchanged(env, coll(resource), absent=(item(resource, "x"),)):
        r = env.request(method, path, json.dumps(obj(resource, "x")).encode(), ctype=ctype)
        assert_status(r, 405, "MethodNotAllowed", NOT_ALLOWED_GENERIC, det={})


def test_namespaces_have_no_deletecollection(env: Raw) -> None:
    # The namespace REST storage has no DeleteCollection, so there is no DELETE route on /api/v1/namespaces
    # (discovery lists namespaces' verbs without deletecollection). The selector matches nothing, so a server
    # that wrongly serves the verb deletes nothing here.
    with Unchanged(env, coll("namespaces")):
        r = env.request("DELETE", "/api/v1/namespaces?labelSelector=bad-input%3Dnothing-has-this")
        assert_status(r, 405, "MethodNotAllowed", NOT_ALLOWED_GENERIC, det={})


def test_discovery_does_not_offer_deletecollection_on_namespaces(env: Raw) -> None:
    resources = {r["name"]: r for r in current(env, "/api/v1")["resources"]}
    assert sorted(resources["namespaces"]["verbs"]) == ["create", "delete", "get", "list", "patch", "update", "watch"]


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespaces_cannot_be_deleted(env: Raw, name: str) -> None:
    # NamespaceLifecycle refuses DELETE of default/kube-system/kube-public (admission runs for dry runs too).
    with Unchanged(env, coll("namespaces"), items=(item("namespaces", name),)):
        r = env.request("DELETE", item("namespaces", name) + "?dryRun=All")
        assert_status(r, 403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                      det=details(name, "", "namespaces"))


# ==================================================================================================
# Oversized bodies


LIMIT = 3 * 1024 * 1024
TOO_LARGE = f"Request entity too large: limit is {LIMIT}"


def send_big(raw: Raw, method: str, path: str, chunks: List[bytes], ctype: str, chunked: bool) -> Resp:
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=30)
    try:
        headers = {"Content-Type": ctype, "Accept": "application/json"}
        if not chunked:
            headers["Content-Length"] = str(sum(len(c) for c in chunks))
        try:
            conn.putrequest(method, path)
            for k, v in headers.items():
                conn.putheader(k, v)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for c in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(c), c) if chunked else c)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before it has read everything; the answer must still arrive
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def big_configmap(name: str, size: int) -> List[bytes]:
    """A ConfigMap whose data holds `size` bytes, in 1 MiB chunks."""
    head = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s"},"data":{"blob":"' % name.encode()
    mib = 1024 * 1024
    return [head] + [b"A" * mib] * (size // mib) + [b"A" * (size % mib), b'"}}']


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_create(env: Raw, chunked: bool) -> None:
    name = f"too-big-{'chunked' if chunked else 'sized'}"
    with Unchanged(env, coll("configmaps"), absent=(item("configmaps", name),)):
        r = send_big(env, "POST", coll("configmaps"), big_configmap(name, LIMIT + 1024), "application/json", chunked)
        assert_status(r, 413, "RequestEntityTooLarge", TOO_LARGE, det=None)
    assert env.get("/readyz").code == 200


def test_oversized_update_and_patch(env: Raw) -> None:
    path = item("configmaps", "existing")
    with Unchanged(env, coll("configmaps"), items=(path,)):
        r = send_big(env, "PUT", path, big_configmap("existing", LIMIT + 1024), "application/json", False)
        assert_status(r, 413, "RequestEntityTooLarge", TOO_LARGE, det=None)
        patch = [b'{"data": {"blob": "', b"A" * (LIMIT + 1024), b'"}}']
        r = send_big(env, "PATCH", path, patch, "application/merge-patch+json", False)
        assert_status(r, 413, "RequestEntityTooLarge", TOO_LARGE, det=None)
    assert env.get("/readyz").code == 200


def test_body_at_the_limit_is_decoded_and_validated(env: Raw) -> None:
    # limitedReadBody reads limit+1 bytes and refuses only beyond the limit: a body of exactly 3 MiB is decoded,
    # and this one is then refused by ValidateConfigMap (data may not exceed 1 MiB, core.MaxSecretSize), a 422.
    name = "at-limit"
    chunks = big_configmap(name, 0)
    chunks.insert(1, b"A" * (LIMIT - sum(len(c) for c in chunks)))
    assert sum(len(c) for c in chunks) == LIMIT
    with Unchanged(env, coll("configmaps"), absent=(item("configmaps", name),)):
        r = send_big(env, "POST", coll("configmaps"), chunks, "application/json", False)
        assert r.code != 413, r
        assert_status(r, 422, "Invalid", prefix=f'ConfigMap "{name}" is invalid: ')


# ==================================================================================================
# Conflicts and missing objects


@pytest.mark.parametrize("resource", ["configmaps", "leases", "deployments", "nodes", "namespaces"])
def test_update_with_stale_resource_version(env: Raw, resource: str) -> None:
    name = EXISTING[resource]
    path = item(resource, name)
    stale = current(env, path)
    stale["metadata"]["resourceVersion"] = "1"
    stale["metadata"].setdefault("labels", {})["changed"] = "yes"
    with Unchanged(env, coll(resource), items=(path,)):
        r = env.send_json("PUT", path, stale)
        assert_status(r, 409, "Conflict", f'Operation cannot be fulfilled on {qualified(resource)} "{name}": {MODIFIED}',
                      det=details(name, RESOURCES[resource][3], resource))


@pytest.mark.parametrize("resource", ["configmaps", "deployments"])
def test_delete_with_failing_preconditions(env: Raw, resource: str) -> None:
    _, _, kind, group, _, _ = RESOURCES[resource]
    path = item(resource, "existing")
    before = current(env, path)
    target = f"{kind}.{group}" if group else kind  # rest.BeforeDelete builds the GroupResource from the Kind
    with Unchanged(env, coll(resource), items=(path,)):
        r = env.send_json("DELETE", path, {"preconditions": {"resourceVersion": "1"}})
        assert_status(r, 409, "Conflict", f'Operation cannot be fulfilled on {target} "existing": the ResourceVersion '
                      f"in the precondition (1) does not match the ResourceVersion in record "
                      f"({before['metadata']['resourceVersion']}). The object might have been modified",
                      det=details("existing", group, kind))
        uid = "00000000-0000-0000-0000-000000000000"
        r = env.send_json("DELETE", path, {"preconditions": {"uid": uid}})
        assert_status(r, 409, "Conflict", f'Operation cannot be fulfilled on {target} "existing": the UID in the '
                      f"precondition ({uid}) does not match the UID in record ({before['metadata']['uid']}). "
                      "The object might have been deleted and then recreated",
                      det=details("existing", group, kind))


@pytest.mark.parametrize("resource", ["configmaps", "pods", "leases", "deployments", "nodes", "namespaces"])
def test_create_existing_name(env: Raw, resource: str) -> None:
    name = EXISTING[resource]
    with Unchanged(env, coll(resource), items=(item(resource, name),)):
        r = env.send_json("POST", coll(resource), obj(resource, name))
        assert_status(r, 409, "AlreadyExists", f'{qualified(resource)} "{name}" already exists',
                      det=details(name, RESOURCES[resource][3], resource))


MISSING = [("pods", "p1"), ("configmaps", "cm-missing"), ("leases", "l-missing"), ("deployments", "d-missing"),
           ("nodes", "n-missing"), ("namespaces", "ns-missing")]


# A PUT of a missing Lease creates it (the Lease strategy allows create on update), so no PUT case for leases.
MISSING_CASES = [(m, r, n) for m in ("GET", "DELETE", "PATCH", "PUT") for r, n in MISSING
                 if not (m == "PUT" and r == "leases")]


@pytest.mark.parametrize("method,resource,name", MISSING_CASES, ids=[f"{m}-{r}" for m, r, _ in MISSING_CASES])
def test_missing_object(env: Raw, method: str, resource: str, name: str) -> None:
    body: Optional[bytes] = None
    ctype = "application/json"
    if method == "PATCH":
        body, ctype = b'{"metadata":{"labels":{"a":"b"}}}', "application/merge-patch+json"
    elif method == "PUT":
        body = json.dumps(obj(resource, name)).encode()
    with Unchanged(env, coll(resource), absent=(item(resource, name),)):
        r = env.request(method, item(resource, name), body, ctype=ctype)
        assert_status(r, 404, "NotFound", f'{qualified(resource)} "{name}" not found',
                      det=details(name, RESOURCES[resource][3], resource))


# ==================================================================================================
# List and get query parameters


def list_query(resource: str, **params: str) -> str:
    return coll(resource) + "?" + urllib.parse.urlencode(params)


LABEL_SELECTORS = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a,", "found '', expected: identifier after ','"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
]


@pytest.mark.parametrize("resource", ["configmaps", "nodes"])
@pytest.mark.parametrize("selector,message", LABEL_SELECTORS, ids=[s for s, _ in LABEL_SELECTORS])
def test_invalid_label_selector(env: Raw, resource: str, selector: str, message: str) -> None:
    r = env.get(list_query(resource, labelSelector=selector))
    assert_status(r, 400, "BadRequest", message, det=None)


@pytest.mark.parametrize("selector", ["a", "metadata.name", "a!x"])
def test_unparseable_field_selector(env: Raw, selector: str) -> None:
    r = env.get(list_query("configmaps", fieldSelector=selector))
    assert_status(r, 400, "BadRequest", f"invalid selector: '{selector}'; can't understand '{selector}'", det=None)


UNSUPPORTED_FIELDS = [
    # Kinds with a registered field-label conversion function (pkg/apis/core/v1/conversion.go).
    ("pods", "spec.foo", "field label not supported: spec.foo"),
    ("nodes", "spec.podCIDR", "field label not supported: spec.podCIDR"),
    ("namespaces", "spec.finalizers", "field label not supported: spec.finalizers"),
    # Kinds without one fall back to runtime.DefaultMetaV1FieldSelectorConversion.
    ("configmaps", "data.k",
     '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("leases", "spec.holderIdentity",
     '"spec.holderIdentity" is not a known field selector: only "metadata.name", "metadata.namespace"'),
]


@pytest.mark.parametrize("resource,field,message", UNSUPPORTED_FIELDS, ids=[c[0] for c in UNSUPPORTED_FIELDS])
def test_unsupported_field_selector(env: Raw, resource: str, field: str, message: str) -> None:
    r = env.get(list_query(resource, fieldSelector=f"{field}=x"))
    assert_status(r, 400, "BadRequest", message, det=None)


@pytest.mark.parametrize("value", ["abc", "1.5", "10x"])
def test_invalid_limit(env: Raw, value: str) -> None:
    # url.Values -> v1.ListOptions conversion: runtime.Convert_Slice_string_To_int64 -> strconv.ParseInt.
    r = env.get(list_query("configmaps", limit=value))
    assert_status(r, 400, "BadRequest", f'strconv.ParseInt: parsing "{value}": invalid syntax', det=None)


def test_invalid_continue_token(env: Raw) -> None:
    r = env.get(list_query("configmaps", limit="1", **{"continue": "!!!"}))
    assert_status(r, 400, "BadRequest",
                  "invalid continue token: continue key is not valid: illegal base64 data at input byte 0", det=None)


def test_continue_token_with_resource_version(env: Raw) -> None:
    first = current(env, list_query("configmaps", limit="1"))
    token = first["metadata"].get("continue")
    assert token, first
    r = env.get(list_query("configmaps", limit="1", resourceVersion=first["metadata"]["resourceVersion"],
                           **{"continue": token}))
    assert_status(r, 400, "BadRequest", "specifying resource version is not allowed when using continue", det=None)


def test_unparseable_resource_version_on_paginated_list(env: Raw) -> None:
    # limit > 0 sends the list to etcd3's GetList, which answers BadRequest for an unparseable RV.
    r = env.get(list_query("configmaps", limit="500", resourceVersion="abc"))
    assert_status(r, 400, "BadRequest", 'invalid resource version: resourceVersion: Invalid value: "abc": '
                  'strconv.ParseUint: parsing "abc": invalid syntax', det=None)


@pytest.mark.parametrize("path", [list_query("configmaps", resourceVersion="abc"),
                                  item("configmaps", "existing") + "?resourceVersion=abc"],
                         ids=["list", "get"])
def test_unparseable_resource_version_from_watch_cache(env: Raw, path: str) -> None:
    # Upstream 1.32 answers these (served by the watch cache) with a 500 and reason "", a known bug
    # (kubernetes/kubernetes#101350, #131180, #139485). megaplane answers as the paginated path does: a 400 with the
    # same wording. The point is that the request is refused, never answered with data.
    r = env.get(path)
    assert_status(r, 400, "BadRequest", 'invalid resource version: resourceVersion: Invalid value: "abc": '
                  'strconv.ParseUint: parsing "abc": invalid syntax', det=None)


def list_options_invalid(cause: Dict[str, str]) -> Tuple[str, Dict[str, Any]]:
    return (f'ListOptions.meta.k8s.io "" is invalid: {cause["field"]}: {cause["message"]}',
            details(None, "meta.k8s.io", "ListOptions", causes=[cause]))


@pytest.mark.parametrize("resource", ["configmaps", "nodes"])
@pytest.mark.parametrize("match", ["Exact", "NotOlderThan"])
def test_resource_version_match_without_resource_version(env: Raw, resource: str, match: str) -> None:
    message, det = list_options_invalid({
        "reason": "FieldValueForbidden", "field": "resourceVersionMatch",
        "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"})
    r = env.get(list_query(resource, resourceVersionMatch=match))
    assert_status(r, 422, "Invalid", message, det=det)


def test_resource_version_match_unsupported_value(env: Raw) -> None:
    r = env.get(list_query("configmaps", resourceVersionMatch="Sometime", resourceVersion="1"))
    st = assert_status(r, 422, "Invalid", prefix='ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: '
                       "Unsupported value: ")
    (cause,) = st["details"]["causes"]
    assert cause["reason"] == "FieldValueNotSupported" and cause["field"] == "resourceVersionMatch", cause
    assert cause["message"].endswith('supported values: "Exact", "NotOlderThan", ""'), cause


def test_resource_version_match_exact_zero(env: Raw) -> None:
    message, det = list_options_invalid({
        "reason": "FieldValueForbidden", "field": "resourceVersionMatch",
        "message": 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'})
    r = env.get(list_query("configmaps", resourceVersionMatch="Exact", resourceVersion="0"))
    assert_status(r, 422, "Invalid", message, det=det)


# ==================================================================================================
# Patches


PATCH_CASES = [
    # (content type, body, code, reason, message); handlers/patch.go with fieldValidation defaulting to Warn.
    ("application/json-patch+json", b'[{"op": "add"', 400, "BadRequest",
     "error decoding patch: unexpected end of JSON input"),
    ("application/json-patch+json", b'{"op": "add", "path": "/data/x", "value": "y"}', 400, "BadRequest",
     "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"),
    ("application/json-patch+json", b"", 400, "BadRequest", "error decoding patch: unexpected end of JSON input"),
    # evanphx/json-patch errors become NewGenericServerResponse(422): the detail is not in the Status.
    ("application/json-patch+json", b'[{"op": "test", "path": "/data/k", "value": "not-v"}]', 422, "Invalid",
     REJECTED_GENERIC),
    ("application/json-patch+json", b'[{"op": "remove", "path": "/data/nope"}]', 422, "Invalid", REJECTED_GENERIC),
    ("application/json-patch+json", b'[{"op": "frob", "path": "/data/k", "value": "x"}]', 422, "Invalid",
     REJECTED_GENERIC),
    ("application/json-patch+json", b'[{"op": "replace", "path": "/no/such/parent", "value": 1}]', 422, "Invalid",
     REJECTED_GENERIC),
    ("application/merge-patch+json", b"[1, 2]", 400, "BadRequest",
     "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("application/merge-patch+json", b'"str"', 400, "BadRequest",
     "error decoding patch: json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ("application/merge-patch+json", b'{"data":', 400, "BadRequest",
     "error decoding patch: unexpected end of JSON input"),
    ("application/strategic-merge-patch+json", b"[1]", 400, "BadRequest",
     "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("application/strategic-merge-patch+json", b"{oops}", 400, "BadRequest",
     "invalid character 'o' looking for beginning of object key string"),
]


@pytest.mark.parametrize("resource", ["configmaps", "nodes"])
@pytest.mark.parametrize("ctype,body,code,reason,message", PATCH_CASES,
                         ids=[f"{c[0].split('/')[1].split('+')[0]}-{c[1][:14]!r}" for c in PATCH_CASES])
def test_invalid_patch_body(env: Raw, resource: str, ctype: str, body: bytes, code: int, reason: str,
                            message: str) -> None:
    path = item(resource, EXISTING[resource])
    if resource == "nodes":  # a path that exists on a Node for the json-patch cases
        body = body.replace(b"/data/k", b"/metadata/name").replace(b"/data/", b"/metadata/labels/")
    with Unchanged(env, coll(resource), items=(path,)):
        r = env.request("PATCH", path, body, ctype=ctype)
        assert_status(r, code, reason, message, det={} if code == 422 else None)


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/yaml"])
@pytest.mark.parametrize("resource", ["configmaps", "nodes"])
def test_patch_with_unsupported_content_type(env: Raw, ctype: str, resource: str) -> None:
    # The PATCH route Consumes() only the patch types, so go-restful refuses the request before the handler:
    # 415 "415: Unsupported Media Type" through NewGenericServerResponse (message = server message, details {}).
    path = item(resource, EXISTING[resource])
    with Unchanged(env, coll(resource), items=(path,)):
        r = env.request("PATCH", path, b'{"metadata":{"labels":{"a":"b"}}}', ctype=ctype)
        assert_status(r, 415, "UnsupportedMediaType", "415: Unsupported Media Type", det={})


def test_patch_that_renames_the_object(env: Raw) -> None:
    path = item("configmaps", "existing")
    with Unchanged(env, coll("configmaps"), items=(path,), absent=(item("configmaps", "renamed"),)):
        r = env.request("PATCH", path, b'{"metadata":{"name":"renamed"}}', ctype="application/merge-patch+json")
        assert_status(r, 400, "BadRequest", "the name of the object (renamed) does not match the name on the URL "
                      "(existing)", det=None)


@pytest.mark.parametrize("ctype", ["application/merge-patch+json", "application/strategic-merge-patch+json"])
def test_patch_that_fails_validation(env: Raw, ctype: str) -> None:
    path = item("leases", "existing")
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "bad key": {NAME_PART}',
             "field": "metadata.labels"}
    with Unchanged(env, coll("leases"), items=(path,)):
        r = env.request("PATCH", path, b'{"metadata":{"labels":{"bad key":"v"}}}', ctype=ctype)
        assert_status(r, 422, "Invalid", f'Lease.coordination.k8s.io "existing" is invalid: metadata.labels: '
                      f'{cause["message"]}', det=details("existing", "coordination.k8s.io", "Lease", causes=[cause]))


def test_force_on_a_non_apply_patch(env: Raw) -> None:
    path = item("configmaps", "existing")
    cause = {"reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
             "field": "force"}
    with Unchanged(env, coll("configmaps"), items=(path,)):
        r = env.request("PATCH", path + "?force=true", b'{"data":{"k":"forced"}}', ctype="application/merge-patch+json")
        assert_status(r, 422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: force: {cause["message"]}',
                      det=details(None, "meta.k8s.io", "PatchOptions", causes=[cause]))


# ==================================================================================================
# The same cases through the official Python client


@pytest.fixture(scope="module")
def api(cluster, env):  # type: ignore[no-untyped-def]
    return cluster.api_client()


def api_error(call, *args, **kwargs) -> Tuple[int, Dict[str, Any]]:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiException) as e:
        call(*args, **kwargs)
    body = json.loads(e.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == e.value.status, body
    return e.value.status, body


def test_client_create_invalid_name(api, env: Raw) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    with Unchanged(env, coll("configmaps")):
        code, st = api_error(core.create_namespaced_config_map, NS, obj("configmaps", "Not_Valid"))
    assert code == 422 and st["reason"] == "Invalid", st
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                        "message": f'Invalid value: "Not_Valid": {SUBDOMAIN}'}]


def test_client_read_missing_pod(api) -> None:  # type: ignore[no-untyped-def]
    code, st = api_error(client.CoreV1Api(api).read_namespaced_pod, "p1", NS)
    assert code == 404 and st["reason"] == "NotFound", st
    assert st["message"] == 'pods "p1" not found' and st["details"] == {"name": "p1", "kind": "pods"}, st


def test_client_delete_missing_lease(api) -> None:  # type: ignore[no-untyped-def]
    code, st = api_error(client.CoordinationV1Api(api).delete_namespaced_lease, "l1", NS)
    assert code == 404 and st["message"] == 'leases.coordination.k8s.io "l1" not found', st
    assert st["details"] == {"name": "l1", "group": "coordination.k8s.io", "kind": "leases"}, st


def test_client_bad_label_selector(api) -> None:  # type: ignore[no-untyped-def]
    code, st = api_error(client.CoreV1Api(api).list_namespaced_config_map, NS, label_selector="a b")
    assert code == 400 and st["reason"] == "BadRequest", st
    assert st["message"] == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt", st


def test_client_replace_stale(api, env: Raw) -> None:  # type: ignore[no-untyped-def]
    apps = client.AppsV1Api(api)
    live = apps.read_namespaced_deployment("existing", NS)
    body = api.sanitize_for_serialization(live)
    body["metadata"]["resourceVersion"] = "1"
    body["spec"]["replicas"] = 5
    code, st = api_error(apps.replace_namespaced_deployment, "existing", NS, body)
    assert code == 409 and st["reason"] == "Conflict", st
    assert st["message"] == f'Operation cannot be fulfilled on deployments.apps "existing": {MODIFIED}', st
    assert apps.read_namespaced_deployment("existing", NS).spec.replicas == 1


def test_client_create_existing_node(api) -> None:  # type: ignore[no-untyped-def]
    code, st = api_error(client.CoreV1Api(api).create_node, obj("nodes", NODE))
    assert code == 409 and st["reason"] == "AlreadyExists", st
    assert st["message"] == f'nodes "{NODE}" already exists' and st["details"] == {"name": NODE, "kind": "nodes"}, st


def test_client_create_in_missing_namespace(api, env: Raw) -> None:  # type: ignore[no-untyped-def]
    with Unchanged(env, coll("leases", MISSING_NS), absent=(item("leases", "orphan", MISSING_NS),)):
        code, st = api_error(client.CoordinationV1Api(api).create_namespaced_lease, MISSING_NS,
                             obj("leases", "orphan"))
        assert code == 404 and st["message"] == f'namespaces "{MISSING_NS}" not found', st


def test_client_strategic_patch_invalid_label(api, env: Raw) -> None:  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    with Unchanged(env, coll("nodes"), items=(item("nodes", NODE),)):
        code, st = api_error(core.patch_node, NODE, {"metadata": {"labels": {"k": "bad value!"}}})
        assert code == 422 and st["reason"] == "Invalid", st
        assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.labels",
                                            "message": f'Invalid value: "bad value!": {LABEL_VALUE}'}]


# ==================================================================================================
# Still serving


def test_server_is_still_healthy(env: Raw) -> None:
    for path in ("/readyz", "/healthz", "/livez"):
        r = env.get(path)
        assert r.code == 200, (path, r)
    assert env.get(item("configmaps", "existing")).code == 200
