"""OpenAPI v3 / v2 documents: structure, what kubectl's field-validation check reads, and a real kubectl.

The structural tests re-implement, in Python, the checks kubectl 1.32 makes on
the documents (cli-runtime queryParamVerifierV3 and the `kubectl explain` v3
template). The end-to-end tests serve the documents from a small stdlib HTTP
server with just enough discovery for kubectl to map resources, then run the
real kubectl: `create/apply/replace` must send fieldValidation=Strict (which
kubectl only does after finding the parameter in our documents) and
`explain` must render fields from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest

from megaplane.apiserver.schema import definitions as schema
from megaplane.apiserver.schema import fieldvalidation
from megaplane.apiserver.schema.openapi import OpenAPI, ResourceInfo, gv_path

R = ResourceInfo
RESOURCES: List[ResourceInfo] = [
    R("", "v1", "namespaces", "Namespace", False, ("status",)),
    R("", "v1", "nodes", "Node", False, ("status",)),
    R("", "v1", "pods", "Pod", True, ("status", "binding")),
    R("", "v1", "services", "Service", True, ("status",)),
    R("", "v1", "endpoints", "Endpoints", True),
    R("", "v1", "configmaps", "ConfigMap", True),
    R("", "v1", "secrets", "Secret", True),
    R("", "v1", "events", "Event", True),
    R("", "v1", "serviceaccounts", "ServiceAccount", True),
    R("coordination.k8s.io", "v1", "leases", "Lease", True),
    R("apps", "v1", "deployments", "Deployment", True, ("status", "scale")),
    R("apps", "v1", "replicasets", "ReplicaSet", True, ("status", "scale")),
    R("apps", "v1", "daemonsets", "DaemonSet", True, ("status", "scale")),
    R("apps", "v1", "statefulsets", "StatefulSet", True, ("status", "scale")),
    R("batch", "v1", "jobs", "Job", True, ("status",)),
    R("events.k8s.io", "v1", "events", "Event", True),
    R("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
]

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def api() -> OpenAPI:
    return OpenAPI(RESOURCES)


def doc(api: OpenAPI, group: str, version: str) -> Dict[str, Any]:
    body = api.v3_document(gv_path(group, version))
    assert body is not None
    return json.loads(body)


def prefix(r: ResourceInfo) -> str:
    return f"/api/{r.version}" if r.group == "" else f"/apis/{r.group}/{r.version}"


def collection(r: ResourceInfo) -> str:
    if r.namespaced:
        return f"{prefix(r)}/namespaces/{{namespace}}/{r.resource}"
    return f"{prefix(r)}/{r.resource}"


def param_names(op: Dict[str, Any]) -> List[str]:
    return [p["name"] for p in op.get("parameters", [])]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for x in node:
            yield from refs(x)


def kubectl_supports_query_param(d: Dict[str, Any], gvk: Dict[str, str], param: str) -> Tuple[bool, int]:
    """cli-runtime's supportsQueryParamV3, made order-independent: Go walks the paths map in
    random order and lets the *first* PATCH operation with the GVK decide, so every such
    operation must agree. Returns (all of them have the param, how many there are)."""
    matching = [
        item["patch"]
        for item in d["paths"].values()
        if "patch" in item and item["patch"].get("x-kubernetes-group-version-kind") == gvk
    ]
    return bool(matching) and all(param in param_names(op) for op in matching), len(matching)


# ---------------------------------------------------------------------------------------- index


def test_index_lists_every_group_version_with_a_content_hash(api: OpenAPI) -> None:
    index = json.loads(api.v3_index())
    expected = {gv_path(r.group, r.version) for r in RESOURCES}
    assert set(index["paths"]) == expected
    for path, entry in index["paths"].items():
        url = entry["serverRelativeURL"]
        m = re.fullmatch(r"/openapi/v3/(.+)\?hash=([0-9A-F]{128})", url)
        assert m, url
        assert m.group(1) == path
        body = api.v3_document(path)
        assert body is not None
        assert m.group(2) == hashlib.sha512(body).hexdigest().upper()
        assert api.v3_hash(path) == m.group(2)


def test_documents_are_cached_and_stable_across_instances(api: OpenAPI) -> None:
    assert api.v3_document("api/v1") is api.v3_document("api/v1")
    assert api.v2_document() is api.v2_document()
    other = OpenAPI(list(reversed(RESOURCES)))
    assert other.v3_index() == api.v3_index()
    assert other.v3_document("apis/apps/v1") == api.v3_document("apis/apps/v1")


def test_document_lookup_forms(api: OpenAPI) -> None:
    assert api.v3_document("/apis/apps/v1") == api.v3_document("apis/apps/v1")
    assert api.v3_document("apis/apps/v1?hash=whatever") == api.v3_document("apis/apps/v1")
    assert api.v3_document("apis/apps/v2") is None
    assert api.v3_document("apis/policy/v1") is None
    assert api.v3_document("") is None


# ------------------------------------------------------------------------------ paths and ops


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.resource}")
def test_every_resource_has_its_paths_and_operations(api: OpenAPI, r: ResourceInfo) -> None:
    d = doc(api, r.group, r.version)
    paths = d["paths"]
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    coll, item = paths[collection(r)], paths[collection(r) + "/{name}"]

    expect = [
        (coll, "get", "list", ("watch", "labelSelector", "limit", "continue", "resourceVersion")),
        (coll, "post", "post", ("dryRun", "fieldManager", "fieldValidation")),
        (coll, "delete", "deletecollection", ("labelSelector", "gracePeriodSeconds")),
        (item, "get", "get", ()),
        (item, "put", "put", ("dryRun", "fieldManager", "fieldValidation")),
        (item, "patch", "patch", ("dryRun", "fieldManager", "fieldValidation", "force")),
        (item, "delete", "delete", ("gracePeriodSeconds", "propagationPolicy", "dryRun")),
    ]
    for entry, method, action, params in expect:
        op = entry[method]
        assert op["x-kubernetes-action"] == action
        assert op["x-kubernetes-group-version-kind"] == gvk
        assert set(params) <= set(param_names(op)), (method, action)
        assert op["operationId"] and op["tags"]

    ns_param = {"name": "namespace", "in": "path", "required": True}
    item_params = item["parameters"]
    assert {"name": "name", "in": "path", "required": True}.items() <= item_params[0].items()
    if r.namespaced:
        assert ns_param.items() <= item_params[1].items()
        assert paths[f"{prefix(r)}/{r.resource}"]["get"]["x-kubernetes-action"] == "list"
    else:
        assert not any(p["name"] == "namespace" for p in item_params)

    # Request and response bodies name the kind's schema.
    schema_ref = coll["post"]["requestBody"]["content"]["*/*"]["schema"]["$ref"]
    target = d["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert gvk in target["x-kubernetes-group-version-kind"]
    patch_body = item["patch"]["requestBody"]["content"]
    assert set(patch_body) >= {
        "application/strategic-merge-patch+json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    }


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.resource}")
def test_subresources(api: OpenAPI, r: ResourceInfo) -> None:
    paths = doc(api, r.group, r.version)["paths"]
    base = collection(r) + "/{name}"
    for sub in r.subresources:
        entry = paths[f"{base}/{sub}"]
        if sub == "binding":
            assert set(entry) - {"parameters"} == {"post"}
            assert entry["post"]["x-kubernetes-group-version-kind"] == {
                "group": "",
                "kind": "Binding",
                "version": "v1",
            }
            assert "fieldValidation" in param_names(entry["post"])
            continue
        assert {"get", "put", "patch"} <= set(entry)
        want = (
            {"group": "autoscaling", "kind": "Scale", "version": "v1"}
            if sub == "scale"
            else {"group": r.group, "kind": r.kind, "version": r.version}
        )
        for method in ("get", "put", "patch"):
            assert entry[method]["x-kubernetes-group-version-kind"] == want
        for method in ("put", "patch"):
            assert "fieldValidation" in param_names(entry[method])
    # no subresource paths that were not asked for
    present = {p[len(base) + 1 :] for p in paths if p.startswith(base + "/")}
    assert present == set(r.subresources)


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: f"{r.group or 'core'}/{r.resource}")
def test_kubectl_field_validation_check_passes(api: OpenAPI, r: ResourceInfo) -> None:
    d = doc(api, r.group, r.version)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    ok, n = kubectl_supports_query_param(d, gvk, "fieldValidation")
    assert ok
    assert n == 1 + ("status" in r.subresources)  # the resource's PATCH and its status PATCH


def test_every_write_operation_has_field_validation(api: OpenAPI) -> None:
    for path in api.group_versions():
        d = json.loads(api.v3_document(path) or b"")
        for p, entry in d["paths"].items():
            for method in ("post", "put", "patch"):
                if method in entry:
                    assert "fieldValidation" in param_names(entry[method]), (p, method)


def test_verbs_limit_operations() -> None:
    ro = OpenAPI([R("", "v1", "configmaps", "ConfigMap", True, (), ("get", "list", "watch"))])
    paths = json.loads(ro.v3_document("api/v1") or b"")["paths"]
    assert set(paths["/api/v1/namespaces/{namespace}/configmaps"]) == {"get", "parameters"}
    assert set(paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]) == {"get", "parameters"}
    assert "/api/v1/watch/namespaces/{namespace}/configmaps" in paths


# --------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("path", sorted({gv_path(r.group, r.version) for r in RESOURCES}))
def test_component_references_resolve(api: OpenAPI, path: str) -> None:
    d = json.loads(api.v3_document(path) or b"")
    schemas = d["components"]["schemas"]
    seen = list(refs(d))
    assert seen
    for ref in seen:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    # Nothing unreferenced is shipped either (the document is the closure of its paths).
    used = {ref.rsplit("/", 1)[1] for ref in seen}
    assert used == set(schemas)


def test_schemas_are_openapi_not_json_schema(api: OpenAPI) -> None:
    """explain compares `type` with "object", so no nullable type lists; no strict-flavour leftovers."""

    def check(node: Dict[str, Any], where: str) -> None:
        # `node` is a schema; walk only into sub-schemas (a property may itself be named "type").
        assert isinstance(node.get("type", ""), str), where
        assert node.get("additionalProperties") is not False, where
        assert "$defs" not in node.get("$ref", ""), where
        for name, sub in node.get("properties", {}).items():
            check(sub, f"{where}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                check(node[key], f"{where}/{key}")
        for key in ("allOf", "oneOf", "anyOf"):
            for i, sub in enumerate(node.get(key, [])):
                check(sub, f"{where}/{key}[{i}]")

    checked = 0
    for path in api.group_versions():
        for name, sch in json.loads(api.v3_document(path) or b"")["components"]["schemas"].items():
            check(sch, name)
            checked += 1
    assert checked > 300
    # ... and the source really had nullable lists and strict `false`s to convert
    pod = schema.definitions()["io.k8s.api.core.v1.Pod"]
    assert pod["type"] == ["object", "null"] and pod["additionalProperties"] is False


def test_kind_schemas_match_upstream_shape(api: OpenAPI) -> None:
    schemas = doc(api, "", "v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["type"] == "object"
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["kind"] == {
        "description": pod["properties"]["kind"]["description"],
        "type": "string",
    }
    assert pod["properties"]["spec"]["$ref"] == "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-type"] == "map"
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert "type" not in ios and ios["format"] == "int-or-string"  # explain prints <IntOrString>
    q = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert "type" not in q and q["oneOf"]
    # v2 has no oneOf: upstream calls both strings there.
    v2 = json.loads(api.v2_document())["definitions"]
    assert v2["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert v2["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"


def test_added_kinds_need_no_code_change() -> None:
    """The resource list is input: a new upstream kind and a custom kind both get documents."""
    extra = RESOURCES + [
        R("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        R("example.com", "v1alpha1", "widgets", "Widget", True, ("status",)),
    ]
    api = OpenAPI(extra)
    index = json.loads(api.v3_index())["paths"]
    assert {"apis/rbac.authorization.k8s.io/v1", "apis/example.com/v1alpha1"} <= set(index)

    rbac = json.loads(api.v3_document("apis/rbac.authorization.k8s.io/v1") or b"")
    op = rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}"]["patch"]
    assert op["operationId"] == "patchRbacAuthorizationV1NamespacedRole"
    assert op["tags"] == ["rbacAuthorization_v1"]
    assert "io.k8s.api.rbac.v1.Role" in rbac["components"]["schemas"]

    crd = json.loads(api.v3_document("apis/example.com/v1alpha1") or b"")
    gvk = {"group": "example.com", "kind": "Widget", "version": "v1alpha1"}
    assert kubectl_supports_query_param(crd, gvk, "fieldValidation") == (True, 2)
    widget = [
        s
        for s in crd["components"]["schemas"].values()
        if gvk in s.get("x-kubernetes-group-version-kind", [])
    ]
    assert widget and widget[0]["x-kubernetes-preserve-unknown-fields"] is True
    for ref in refs(crd):
        assert ref.rsplit("/", 1)[1] in crd["components"]["schemas"]


def test_operation_ids_follow_upstream_naming(api: OpenAPI) -> None:
    core = doc(api, "", "v1")["paths"]
    assert core["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert (
        core["/api/v1/namespaces/{namespace}/pods"]["delete"]["operationId"]
        == "deleteCoreV1CollectionNamespacedPod"
    )
    assert core["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"]["operationId"] == (
        "patchCoreV1NamespacedPodStatus"
    )
    assert core["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["operationId"] == (
        "createCoreV1NamespacedPodBinding"
    )
    assert core["/api/v1/nodes/{name}"]["get"]["operationId"] == "readCoreV1Node"
    assert core["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    apps = doc(api, "apps", "v1")["paths"]
    assert apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"]["operationId"] == (
        "replaceAppsV1NamespacedDeploymentScale"
    )
    coord = doc(api, "coordination.k8s.io", "v1")["paths"]
    assert coord["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["post"]["tags"] == [
        "coordination_v1"
    ]


# ---------------------------------------------------------------------------------------- v2


def test_v2_document(api: OpenAPI) -> None:
    d = json.loads(api.v2_document())
    assert d["swagger"] == "2.0"
    defs = d["definitions"]
    for ref in refs(d):
        assert ref.startswith("#/definitions/") and ref.rsplit("/", 1)[1] in defs, ref
    for r in RESOURCES:
        item = d["paths"][collection(r) + "/{name}"]
        patch = item["patch"]
        assert patch["x-kubernetes-group-version-kind"] == {
            "group": r.group,
            "kind": r.kind,
            "version": r.version,
        }
        assert "fieldValidation" in param_names(patch)
        assert "application/strategic-merge-patch+json" in patch["consumes"]
        body = [p for p in d["paths"][collection(r)]["post"]["parameters"] if p["in"] == "body"]
        assert body and body[0]["schema"]["$ref"].startswith("#/definitions/")
        for p in item["parameters"]:
            assert "schema" not in p and p["type"] == "string"  # v2 parameters are flat


# ----------------------------------------------------------------------- real kubectl, end to end

KUBECTL = shutil.which("kubectl")


def _kubectl_132_available() -> bool:
    if KUBECTL is None:
        return False
    # /usr/bin/kubectl here is a dispatcher that picks kubectl.1.32 for a server saying minor "32".
    real = os.path.realpath(KUBECTL)
    sibling = os.path.join(os.path.dirname(real), "kubectl.1.32")
    return (
        os.path.exists(sibling)
        or "v1.32"
        in subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True, timeout=30).stdout
    )


class FakeAPIServer:
    """Just enough of an API server for kubectl: /version, legacy discovery, our OpenAPI, and
    write endpoints that record the request and apply fieldvalidation to the body."""

    def __init__(self, api: OpenAPI, resources: List[ResourceInfo]) -> None:
        self.api, self.resources = api, resources
        self.requests: List[Tuple[str, str, Dict[str, List[str]]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.handle(self, "GET")

            def do_POST(self) -> None:
                outer.handle(self, "POST")

            def do_PUT(self) -> None:
                outer.handle(self, "PUT")

            def do_PATCH(self) -> None:
                outer.handle(self, "PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeAPIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def status(code: int, reason: str, message: str) -> Dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        }

    def resource_list(self, group: str, version: str) -> Dict[str, Any]:
        out = []
        for r in self.resources:
            if (r.group, r.version) == (group, version):
                out.append(
                    {
                        "name": r.resource,
                        "singularName": r.kind.lower(),
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": list(r.verbs),
                    }
                )
                out += [
                    {
                        "name": f"{r.resource}/{s}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                    for s in r.subresources
                ]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": out,
        }

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path, query = url.path, parse_qs(url.query, keep_blank_values=True)
        self.requests.append((method, path, query))
        if method == "GET":
            return self.get(h, path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        parts = path.strip("/").split("/")
        group, version, rest = (
            ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
        )
        resource = rest[2] if rest[0] == "namespaces" and len(rest) > 2 else rest[0]
        obj = json.loads(body)  # kubectl sends JSON, also for apply patches
        kind = next(
            r.kind for r in self.resources if (r.group, r.version, r.resource) == (group, version, resource)
        )
        options = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}[method]
        try:
            warnings = fieldvalidation.validate(
                group, version, kind, obj, query.get("fieldValidation", [""])[0], options_kind=options
            )
        except fieldvalidation.FieldValidationError as e:
            return self.reply(
                h,
                400,
                self.status(400, "BadRequest", fieldvalidation.decode_error_message(kind, version, str(e))),
            )
        except fieldvalidation.InvalidDirectiveError as e:
            return self.reply(h, 422, e.status())
        assert not warnings
        obj.setdefault("metadata", {}).update(uid="0", resourceVersion="1")
        self.reply(h, 201 if method == "POST" else 200, obj)

    def get(self, h: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/version":
            return self.reply(
                h, 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
            )
        if path == "/api":  # plain JSON: kubectl falls back from aggregated to legacy discovery
            return self.reply(
                h, 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if path == "/apis":
            gvs = sorted({(r.group, r.version) for r in self.resources if r.group})
            groups = [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                }
                for g, v in gvs
            ]
            return self.reply(h, 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            return self.reply(h, 200, self.resource_list("", parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return self.reply(h, 200, self.resource_list(parts[1], parts[2]))
        if path == "/openapi/v3":
            return self.reply(h, 200, self.api.v3_index())
        if path.startswith("/openapi/v3/"):
            body = self.api.v3_document(path[len("/openapi/v3/") :])
            if body is not None:
                return self.reply(h, 200, body)
        if path == "/openapi/v2":
            return self.reply(h, 200, self.api.v2_document())
        # objects: nothing exists (apply then creates)
        return self.reply(h, 404, self.status(404, "NotFound", f"{path} not found"))


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory, api: OpenAPI) -> Iterator[Any]:
    if not _kubectl_132_available():
        pytest.skip("kubectl 1.32 not installed")
    tmp = tmp_path_factory.mktemp("kubectl")
    with FakeAPIServer(api, RESOURCES) as server:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": server.url}}],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [
                        {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}
                    ],
                    "current-context": "x",
                }
            )
        )

        def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
            assert KUBECTL is not None
            env = dict(os.environ, HOME=str(tmp), KUBECONFIG=str(kubeconfig))
            return subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp / "cache"), *args],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )

        run.server = server  # type: ignore[attr-defined]
        yield run


POD = """
apiVersion: v1
kind: Pod
metadata: {name: p1, labels: {app: web}}
spec:
  containers:
  - name: c
    image: nginx
    ports: [{containerPort: 80}]
    resources: {limits: {cpu: 500m, memory: 1Gi}}
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx
        livenessProbe: {httpGet: {path: /, port: http}}
"""


def writes(run: Any) -> List[Tuple[str, str, Dict[str, List[str]]]]:
    return [r for r in run.server.requests if r[0] != "GET"]


def test_kubectl_create_sends_strict_and_shows_server_error(kube: Any) -> None:
    typo = POD.replace("image: nginx", "image: nginx\n    imagePullPolicyy: Always")
    res = kube("create", "-f", "-", "--dry-run=server", stdin=typo)
    assert res.returncode == 1
    assert (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagePullPolicyy"'
    ) in res.stderr
    method, path, query = writes(kube)[-1]
    assert (method, path) == ("POST", "/api/v1/namespaces/default/pods")
    assert query["fieldValidation"] == ["Strict"]
    assert query["dryRun"] == ["All"]
    # kubectl decided from the v3 documents alone; the v2 fallback was never needed
    assert not any(p == "/openapi/v2" for _, p, _ in kube.server.requests)
    assert any(p == "/openapi/v3/api/v1" for _, p, _ in kube.server.requests)


def test_kubectl_create_valid_objects(kube: Any) -> None:
    res = kube("create", "-f", "-", "--dry-run=server", stdin=POD + "---\n" + DEPLOYMENT)
    assert res.returncode == 0, res.stderr
    assert "pod/p1 created (server dry run)" in res.stdout
    assert "deployment.apps/web created (server dry run)" in res.stdout
    posts = [w for w in writes(kube) if w[0] == "POST"][-2:]
    assert [p for _, p, _ in posts] == [
        "/api/v1/namespaces/default/pods",
        "/apis/apps/v1/namespaces/default/deployments",
    ]
    assert all(q["fieldValidation"] == ["Strict"] for _, _, q in posts)


def test_kubectl_apply_and_replace_send_strict(kube: Any) -> None:
    res = kube("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert res.returncode == 0, res.stderr
    method, path, query = writes(kube)[-1]
    assert (method, path) == ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web")
    assert query["fieldValidation"] == ["Strict"]

    res = kube("replace", "-f", "-", stdin=POD)
    assert res.returncode == 0, res.stderr
    method, path, query = writes(kube)[-1]
    assert (method, path) == ("PUT", "/api/v1/namespaces/default/pods/p1")
    assert query["fieldValidation"] == ["Strict"]

    res = kube("apply", "-f", "-", stdin=DEPLOYMENT.replace("replicas: 2", "replica: 2"))
    assert res.returncode == 1
    assert 'unknown field "spec.replica"' in res.stderr


def test_kubectl_validate_ignore_and_warn(kube: Any) -> None:
    res = kube("create", "-f", "-", "--dry-run=server", "--validate=false", stdin=POD)
    assert res.returncode == 0, res.stderr
    assert writes(kube)[-1][2]["fieldValidation"] == ["Ignore"]
    res = kube("create", "-f", "-", "--dry-run=server", "--validate=warn", stdin=POD)
    assert res.returncode == 0, res.stderr
    assert writes(kube)[-1][2]["fieldValidation"] == ["Warn"]


def test_kubectl_explain(kube: Any) -> None:
    res = kube("explain", "pods.spec.containers")
    assert res.returncode == 0, res.stderr
    assert "KIND:       Pod" in res.stdout and "VERSION:    v1" in res.stdout
    assert "FIELD: containers <[]Container>" in res.stdout
    assert re.search(r"^  image\t<string>$", res.stdout, re.M)
    assert re.search(r"^  name\t<string> -required-$", res.stdout, re.M)

    res = kube("explain", "deployments.spec.template.spec.containers.ports.containerPort")
    assert res.returncode == 0, res.stderr
    assert "GROUP:      apps" in res.stdout
    assert "FIELD: containerPort <integer>" in res.stdout

    res = kube("explain", "services.spec.ports.targetPort")
    assert res.returncode == 0, res.stderr
    assert "FIELD: targetPort <IntOrString>" in res.stdout

    res = kube("explain", "pods.spec.containers.resources.limits")
    assert "FIELD: limits <map[string]Quantity>" in res.stdout

    res = kube("explain", "leases.spec", "--recursive")
    assert res.returncode == 0, res.stderr
    assert "GROUP:      coordination.k8s.io" in res.stdout and "holderIdentity\t<string>" in res.stdout

    res = kube("explain", "pods.spec.nosuchfield")
    assert res.returncode != 0 and 'field "nosuchfield" does not exist' in res.stderr
