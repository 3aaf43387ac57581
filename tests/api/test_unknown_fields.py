"""Unknown fields and integers of built-in kinds against a real `megaplane up` (issue 8, finding 8).

Upstream decodes a built-in kind into its Go struct, so a field the struct
has no place for is dropped before anything is stored: with
fieldValidation=Warn (and by default) the answer carries `Warning: 299 -
"unknown field \\"x\\""`, with Strict the write is refused (400 for create and
update, 422 on the field "patch" for a patch), with Ignore it is dropped
silently. Integers must fit their Go type: a fraction or a number past
int32/int64 is the decoder's 400. Every request goes over a raw socket (so
the Warning headers are seen as sent) or through the kubernetes Python client;
what was stored is read back with GET.
"""

from __future__ import annotations

import json
import socket
import zlib
from typing import Any, Dict, List, Optional, Tuple

import kubernetes
import pytest

from tests.api.conftest import Cluster

NS = "unknown-fields"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
JSON, MERGE, STRATEGIC, JSONPATCH = (
    "application/json", "application/merge-patch+json", "application/strategic-merge-patch+json",
    "application/json-patch+json",
)


class Answer:
    def __init__(self, code: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.raw = body
        self.obj: Any = json.loads(body) if body else None

    @property
    def warnings(self) -> List[str]:
        """The Warning headers' texts, unquoted as client-go's ParseWarningHeaders does."""
        out = []
        for name, value in self.headers:
            if name.lower() == "warning":
                code, agent, text = value.split(" ", 2)
                assert (code, agent) == ("299", "-") and text[0] == text[-1] == '"', value
                out.append(text[1:-1].replace('\\"', '"').replace("\\\\", "\\"))
        return out


def call(cluster: Cluster, method: str, path: str, body: Any = None, ctype: str = JSON) -> Answer:
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=30) as s:
        s.sendall(head.encode() + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"closed before a response: {buf!r}"
            buf += chunk
        head_bytes, _, rest = buf.partition(b"\r\n\r\n")
        lines = head_bytes.decode("utf-8").split("\r\n")
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        length = int(next(v for k, v in headers if k.lower() == "content-length"))
        while len(rest) < length:
            chunk = s.recv(65536)
            assert chunk
            rest += chunk
    return Answer(int(lines[0].split()[1]), headers, rest)


@pytest.fixture(scope="module", autouse=True)
def namespace(cluster: Cluster) -> None:
    a = call(cluster, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert a.code == 201, a.obj


def lease(name: str, **spec: Any) -> Dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, **spec}}


def create_lease(cluster: Cluster, name: str) -> Dict[str, Any]:
    a = call(cluster, "POST", LEASES, lease(name))
    assert a.code == 201 and not a.warnings, (a.code, a.obj, a.warnings)
    return a.obj  # type: ignore[no-any-return]


def stored(cluster: Cluster, path: str) -> Dict[str, Any]:
    a = call(cluster, "GET", path)
    assert a.code == 200, a.obj
    return a.obj  # type: ignore[no-any-return]


def with_unknowns(obj: Dict[str, Any]) -> Dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj["x"] = "hello"
    obj["metadata"]["y"] = {"deep": [1, 2, 3]}
    obj["spec"]["z"] = 7
    return obj


UNKNOWN_WARNINGS = ['unknown field "metadata.y"', 'unknown field "spec.z"', 'unknown field "x"']


def assert_clean_lease(obj: Dict[str, Any]) -> None:
    assert "x" not in obj and "y" not in obj["metadata"] and "z" not in obj["spec"], obj
    assert obj["spec"]["holderIdentity"] == "node-1"


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?fieldValidation=Warn"])
def test_create_drops_unknown_fields_with_warnings(cluster: Cluster, query: str) -> None:
    name = "create-warn" + ("-explicit" if query else "")
    a = call(cluster, "POST", LEASES + query, with_unknowns(lease(name)))
    assert a.code == 201, a.obj
    assert sorted(a.warnings) == UNKNOWN_WARNINGS
    assert_clean_lease(a.obj)
    got = call(cluster, "GET", f"{LEASES}/{name}")
    assert b'"x"' not in got.raw and b"hello" not in got.raw and b"deep" not in got.raw
    assert_clean_lease(got.obj)


def test_create_ignore_drops_silently(cluster: Cluster) -> None:
    a = call(cluster, "POST", LEASES + "?fieldValidation=Ignore", with_unknowns(lease("create-ignore")))
    assert a.code == 201 and a.warnings == [], (a.obj, a.warnings)
    assert_clean_lease(stored(cluster, f"{LEASES}/create-ignore"))


def test_create_strict_is_400_and_stores_nothing(cluster: Cluster) -> None:
    a = call(cluster, "POST", LEASES + "?fieldValidation=Strict", with_unknowns(lease("create-strict")))
    assert a.code == 400 and a.obj["reason"] == "BadRequest", a.obj
    assert a.obj["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: strict decoding error: '
        'unknown field "metadata.y", unknown field "spec.z", unknown field "x"'
    )
    assert call(cluster, "GET", f"{LEASES}/create-strict").code == 404


def test_nested_unknown_fields_in_lists_and_maps(cluster: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nested"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolicyy": "Always",
                                    "ports": [{"containerPort": 80, "bogus": True}]}]}}
    a = call(cluster, "POST", PODS, pod)
    assert a.code == 201, a.obj
    assert a.warnings == ['unknown field "spec.containers[0].imagePullPolicyy"',
                          'unknown field "spec.containers[0].ports[0].bogus"']
    c = stored(cluster, f"{PODS}/nested")["spec"]["containers"][0]
    assert "imagePullPolicyy" not in c and c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_free_form_places_are_kept(cluster: Cluster) -> None:
    managed = [{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:anything": {}, "x": {"y": [1]}}}}]
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "free", "labels": {"x": "1"}, "annotations": {"spec.z": "kept", "x": "y"},
                       "managedFields": managed},
          "data": {"x": "hello", "metadata": "not a field"}, "binaryData": {"y": "aGk="}}
    a = call(cluster, "POST", CONFIGMAPS, cm)
    assert a.code == 201 and a.warnings == [], (a.obj, a.warnings)
    got = stored(cluster, f"{CONFIGMAPS}/free")
    assert got["data"] == cm["data"] and got["binaryData"] == cm["binaryData"]
    assert got["metadata"]["labels"] == {"x": "1"} and got["metadata"]["annotations"] == cm["metadata"]["annotations"]
    assert got["metadata"]["managedFields"][0]["fieldsV1"] == managed[0]["fieldsV1"]


def test_yaml_body_is_pruned_too(cluster: Cluster) -> None:
    body = (b"apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: from-yaml, extra: 1}\n"
            b"spec: {holderIdentity: node-1, alias: &a {k: v}, other: *a}\n")
    a = call(cluster, "POST", LEASES, body, "application/yaml")
    assert a.code == 201, a.obj
    assert a.warnings == ['unknown field "metadata.extra"', 'unknown field "spec.alias"', 'unknown field "spec.other"']
    assert stored(cluster, f"{LEASES}/from-yaml")["spec"] == {"holderIdentity": "node-1"}


# -- update --------------------------------------------------------------------------------------


@pytest.mark.parametrize("directive", ["", "Warn", "Ignore", "Strict"])
def test_update(cluster: Cluster, directive: str) -> None:
    name = f"update-{directive.lower() or 'default'}"
    cur = create_lease(cluster, name)
    body = with_unknowns(cur)
    body["spec"]["holderIdentity"] = "node-2"
    query = f"?fieldValidation={directive}" if directive else ""
    a = call(cluster, "PUT", f"{LEASES}/{name}{query}", body)
    after = stored(cluster, f"{LEASES}/{name}")
    if directive == "Strict":
        assert a.code == 400 and a.obj["message"].startswith(
            'Lease in version "v1" cannot be handled as a Lease: strict decoding error: unknown field "metadata.y"'
        ), a.obj
        assert after == cur
        return
    assert a.code == 200, a.obj
    assert sorted(a.warnings) == ([] if directive == "Ignore" else UNKNOWN_WARNINGS)
    assert after["spec"]["holderIdentity"] == "node-2"
    assert "x" not in after and "y" not in after["metadata"] and "z" not in after["spec"]


def test_update_with_only_unknown_changes_is_a_no_op(cluster: Cluster) -> None:
    cur = create_lease(cluster, "update-noop")
    a = call(cluster, "PUT", f"{LEASES}/update-noop", with_unknowns(cur))
    assert a.code == 200 and sorted(a.warnings) == UNKNOWN_WARNINGS
    assert a.obj["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"]  # nothing written


# -- patch ---------------------------------------------------------------------------------------

PATCHES = {
    MERGE: {"x": "hello", "spec": {"z": 7, "holderIdentity": "node-2"}},
    STRATEGIC: {"x": "hello", "spec": {"z": 7, "holderIdentity": "node-2"}},
    JSONPATCH: [{"op": "add", "path": "/x", "value": "hello"}, {"op": "add", "path": "/spec/z", "value": 7},
                {"op": "replace", "path": "/spec/holderIdentity", "value": "node-2"}],
}


@pytest.mark.parametrize("ctype", list(PATCHES), ids=["merge", "strategic", "json"])
@pytest.mark.parametrize("directive", ["", "Ignore", "Strict"])
def test_patch_result_is_pruned(cluster: Cluster, ctype: str, directive: str) -> None:
    name = f"patch-{ctype.split('/')[1].split('-')[0]}-{directive.lower() or 'default'}"
    cur = create_lease(cluster, name)
    query = f"?fieldValidation={directive}" if directive else ""
    a = call(cluster, "PATCH", f"{LEASES}/{name}{query}", PATCHES[ctype], ctype)
    after = stored(cluster, f"{LEASES}/{name}")
    if directive == "Strict":
        # handlers/patch.go: the patched object fails the strict decoding -> 422 on the field "patch".
        assert a.code == 422 and a.obj["reason"] == "Invalid", a.obj
        assert a.obj["message"].startswith(' "" is invalid: patch: Invalid value: "{')
        assert a.obj["message"].endswith(': strict decoding error: unknown field "spec.z", unknown field "x"')
        assert a.obj["details"]["causes"][0]["field"] == "patch"
        assert after == cur
        return
    assert a.code == 200, a.obj
    assert a.warnings == ([] if directive == "Ignore" else ['unknown field "spec.z"', 'unknown field "x"'])
    assert after["spec"]["holderIdentity"] == "node-2"
    assert "x" not in after and "z" not in after["spec"]


def test_json_patch_of_a_huge_unknown_field_stores_nothing_of_it(cluster: Cluster) -> None:
    create_lease(cluster, "patch-huge")
    ops = [{"op": "add", "path": "/x", "value": list(range(2**16))}]
    a = call(cluster, "PATCH", f"{LEASES}/patch-huge", ops, JSONPATCH)
    assert a.code == 200 and a.warnings == ['unknown field "x"'], a.obj
    got = call(cluster, "GET", f"{LEASES}/patch-huge")
    assert len(got.raw) < 1024 and "x" not in got.obj


def test_many_and_long_unknown_fields_keep_the_warning_headers_small(cluster: Cluster) -> None:
    body = lease("many-unknowns")
    body["spec"].update({f"k{i}" + "w" * 500: i for i in range(150)})
    a = call(cluster, "POST", LEASES, body)
    assert a.code == 201, a.obj
    assert len(a.warnings) == 100  # the strict decoder stops collecting at 100
    assert all(len(w) <= 256 for w in a.warnings)  # past 4096 runes, every text is cut to 256 as upstream
    assert set(stored(cluster, f"{LEASES}/many-unknowns")["spec"]) == {"holderIdentity", "leaseDurationSeconds"}


def test_warning_text_with_quotes_and_backslashes_is_escaped(cluster: Cluster) -> None:
    body = lease("quoted")
    body["spec"]['a"b\\c'] = 1
    a = call(cluster, "POST", LEASES, body)
    assert a.code == 201, a.obj
    raw = [v for k, v in a.headers if k.lower() == "warning"]
    assert raw == ['299 - "unknown field \\"spec.a\\\\\\"b\\\\\\\\c\\""']
    assert a.warnings == ['unknown field "spec.a\\"b\\\\c"']


# -- status subresource ------------------------------------------------------------------------


def test_status_update_and_patch_are_pruned(cluster: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "status-pod"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    cur = call(cluster, "POST", PODS, pod).obj
    cur["status"] = {"phase": "Running", "bogusStatus": {"a": 1}}
    a = call(cluster, "PUT", f"{PODS}/status-pod/status", cur)
    assert a.code == 200 and a.warnings == ['unknown field "status.bogusStatus"'], a.obj
    got = stored(cluster, f"{PODS}/status-pod")
    assert got["status"]["phase"] == "Running" and "bogusStatus" not in got["status"]

    a = call(cluster, "PATCH", f"{PODS}/status-pod/status", {"status": {"podIP": "10.0.0.9", "zz": 1}}, MERGE)
    assert a.code == 200 and a.warnings == ['unknown field "status.zz"'], a.obj
    got = stored(cluster, f"{PODS}/status-pod")
    assert got["status"]["podIP"] == "10.0.0.9" and "zz" not in got["status"]

    a = call(cluster, "PATCH", f"{PODS}/status-pod/status?fieldValidation=Strict", {"status": {"zz": 1}}, MERGE)
    assert a.code == 422 and a.obj["message"].endswith('strict decoding error: unknown field "status.zz"'), a.obj


# -- integers --------------------------------------------------------------------------------------

BIG = b"1" + b"0" * 30


@pytest.mark.parametrize("literal,shown,go_type,field", [
    (BIG, "1e+30", "int32", "LeaseSpec.spec.leaseDurationSeconds"),
    (b"1.5", "1.5", "int32", "LeaseSpec.spec.leaseDurationSeconds"),
    (b"2147483648", "2147483648", "int32", "LeaseSpec.spec.leaseDurationSeconds"),
    (b"-2147483649", "-2147483649", "int32", "LeaseSpec.spec.leaseDurationSeconds"),
    (b"4e1", "40.0", "int32", "LeaseSpec.spec.leaseDurationSeconds"),
])
def test_integer_field_refuses_what_int32_cannot_hold(
    cluster: Cluster, literal: bytes, shown: str, go_type: str, field: str
) -> None:
    name = "int-" + literal.decode().replace(".", "p").replace("-", "m")[:20]
    body = (b'{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"' + name.encode() +
            b'"},"spec":{"leaseDurationSeconds":' + literal + b"}}")
    for directive in ("", "?fieldValidation=Ignore", "?fieldValidation=Strict"):
        a = call(cluster, "POST", LEASES + directive, body)
        assert a.code == 400 and a.obj["reason"] == "BadRequest", a.obj
        assert a.obj["message"] == (
            f'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number {shown} '
            f"into Go struct field {field} of type {go_type}"
        )
        assert call(cluster, "GET", f"{LEASES}/{name}").code == 404


def test_int64_field_bounds(cluster: Cluster) -> None:
    def body(gen: bytes, name: str) -> bytes:
        return (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"' + name.encode() +
                b'","generation":' + gen + b"}}")

    a = call(cluster, "POST", CONFIGMAPS, body(b"9223372036854775808", "gen-over"))
    assert a.code == 400 and a.obj["message"].endswith(
        "json: cannot unmarshal number 9223372036854775808 into Go struct field ObjectMeta.metadata.generation "
        "of type int64"), a.obj
    a = call(cluster, "POST", CONFIGMAPS, body(b"9223372036854775807", "gen-max"))
    assert a.code == 201, a.obj


def test_wrong_json_type_in_an_integer_field(cluster: Cluster) -> None:
    a = call(cluster, "POST", LEASES, lease("int-string", leaseDurationSeconds="40"))
    assert a.code == 400 and a.obj["message"].endswith(
        "json: cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32"), a.obj


WRONG_TYPES = [
    # Found by tests/api/test_fuzz.py: these two were 500s ('str' object has no attribute 'get') in defaulting.
    (PODS, {"containers": "x"}, "string", "PodSpec.spec.containers", "[]v1.Container"),
    (PODS, {"containers": [1]}, "number", "PodSpec.spec.containers", "v1.Container"),
    # ... and these were stored as sent, for every later reader to trip on.
    (PODS, {"containers": [{"name": "c", "image": "i", "ports": "x"}]}, "string",
     "Container.spec.containers.ports", "[]v1.ContainerPort"),
    (PODS, {"containers": [{"name": "c", "image": "i"}], "tolerations": "x"}, "string", "PodSpec.spec.tolerations",
     "[]v1.Toleration"),
    (PODS, {"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "emptyDir": []}]}, "array",
     "Volume.spec.volumes.emptyDir", "v1.EmptyDirVolumeSource"),
    (DEPLOYMENTS, {"template": "x", "selector": {}}, "string", "DeploymentSpec.spec.template", "v1.PodTemplateSpec"),
]


@pytest.mark.parametrize("path,spec,what,field,go_type", WRONG_TYPES)
def test_wrong_json_types_are_the_decoders_400(
    cluster: Cluster, path: str, spec: Any, what: str, field: str, go_type: str
) -> None:
    kind = "Pod" if path == PODS else "Deployment"
    name = f"wrong-type-{zlib.crc32(json.dumps(spec).encode())}"
    body = {"metadata": {"name": name}, "spec": spec}
    a = call(cluster, "POST", path, body)
    assert a.code == 400 and a.obj["reason"] == "BadRequest", a.obj
    assert a.obj["message"] == (
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal {what} into Go struct field '
        f"{field} of type {go_type}")
    assert call(cluster, "GET", f"{path}/{name}").code == 404


def test_wrong_types_in_metadata(cluster: Cluster) -> None:
    for meta, message in [
        ({"labels": {"a": 1}}, "cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
        ({"annotations": {"a": {"b": 1}}},
         "cannot unmarshal object into Go struct field ObjectMeta.metadata.annotations of type string"),
        ({"ownerReferences": [1]},
         "cannot unmarshal number into Go struct field ObjectMeta.metadata.ownerReferences of type v1.OwnerReference"),
        ({"creationTimestamp": {"a": 1}}, "cannot unmarshal object into Go value of type string"),
    ]:
        a = call(cluster, "POST", CONFIGMAPS, {"metadata": {"name": "wrong-meta", **meta}})
        assert a.code == 400 and a.obj["message"].endswith("json: " + message), a.obj
    assert call(cluster, "GET", f"{CONFIGMAPS}/wrong-meta").code == 404


def test_nulls_decode_as_go_zero_values(cluster: Cluster) -> None:
    services = f"/api/v1/namespaces/{NS}/services"
    # Found by tests/api/test_fuzz.py: "spec": null was a 500 ('NoneType' object has no attribute 'get'). A null
    # struct field decodes to its zero value, so the answer is the one for a Service without a spec.
    with_null = call(cluster, "POST", services, {"metadata": {"name": "null-spec"}, "spec": None})
    without = call(cluster, "POST", services, {"metadata": {"name": "no-spec"}})
    assert with_null.code == without.code < 500, (with_null.obj, without.obj)
    if with_null.code == 201:
        assert with_null.obj["spec"].keys() == without.obj["spec"].keys()
    # A null map value or list element is the element's zero value; null lists and maps are left out.
    a = call(cluster, "POST", CONFIGMAPS, {"metadata": {"name": "nulls", "labels": {"a": None}, "finalizers": None},
                                            "data": None})
    assert a.code == 201, a.obj
    got = stored(cluster, f"{CONFIGMAPS}/nulls")
    assert got["metadata"]["labels"] == {"a": ""} and "finalizers" not in got["metadata"] and "data" not in got
    a = call(cluster, "POST", PODS, {"metadata": {"name": "null-container"}, "spec": {"containers": [None]}})
    assert a.code < 500, a.obj  # upstream: 422, the zero Container has no name (megaplane does not validate it)
    if a.code == 201:
        assert isinstance(a.obj["spec"]["containers"][0], dict)


def test_patch_to_a_wrong_type_is_422_and_changes_nothing(cluster: Cluster) -> None:
    cur = create_lease(cluster, "patch-wrong-type")
    a = call(cluster, "PATCH", f"{LEASES}/patch-wrong-type", {"spec": {"holderIdentity": ["a"]}}, MERGE)
    assert a.code == 422 and a.obj["message"].endswith(
        "json: cannot unmarshal array into Go struct field LeaseSpec.spec.holderIdentity of type string"), a.obj
    assert stored(cluster, f"{LEASES}/patch-wrong-type") == cur


def test_big_integer_in_an_unknown_field_is_dropped(cluster: Cluster) -> None:
    body = b'{"metadata":{"name":"big-unknown"},"x":' + BIG + b',"data":{"k":"v"}}'
    a = call(cluster, "POST", CONFIGMAPS, body)
    assert a.code == 201 and a.warnings == ['unknown field "x"'], a.obj
    assert b"e+30" not in call(cluster, "GET", f"{CONFIGMAPS}/big-unknown").raw


def test_exact_integers_are_stored_exactly(cluster: Cluster) -> None:
    body = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"exact"},"spec":{"activeDeadlineSeconds":'
            b'9223372036854775807,"containers":[{"name":"c","image":"busybox"}]}}')
    a = call(cluster, "POST", PODS, body)
    assert a.code == 201, a.obj
    assert b'"activeDeadlineSeconds":9223372036854775807' in call(cluster, "GET", f"{PODS}/exact").raw


@pytest.mark.parametrize("ctype", [MERGE, STRATEGIC], ids=["merge", "strategic"])
def test_patch_with_a_fraction_is_422_on_patch(cluster: Cluster, ctype: str) -> None:
    name = "patch-frac-" + ctype.split("/")[1].split("-")[0]
    cur = create_lease(cluster, name)
    a = call(cluster, "PATCH", f"{LEASES}/{name}", b'{"spec":{"leaseDurationSeconds":1.5}}', ctype)
    assert a.code == 422 and a.obj["reason"] == "Invalid", a.obj
    assert a.obj["message"].endswith(
        "json: cannot unmarshal number 1.5 into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32")
    assert stored(cluster, f"{LEASES}/{name}") == cur


def test_json_patch_with_a_big_integer_is_422(cluster: Cluster) -> None:
    cur = create_lease(cluster, "patch-big-json")
    ops = b'[{"op":"replace","path":"/spec/leaseDurationSeconds","value":' + BIG + b"}]"
    a = call(cluster, "PATCH", f"{LEASES}/patch-big-json", ops, JSONPATCH)
    assert a.code == 422 and "cannot unmarshal number 1e+30" in a.obj["message"], a.obj
    assert stored(cluster, f"{LEASES}/patch-big-json") == cur


# -- the kubernetes Python client ----------------------------------------------------------------


def _client_call(client: Any, method: str, path: str, body: Any, query: Optional[List[Tuple[str, str]]] = None,
                 ctype: str = JSON) -> Any:
    """A request through the client's own serializer and REST layer (its typed methods refuse unknown fields
    before sending, pydantic models forbidding extras, so the generic call is what sends one)."""
    method_, url, headers, data, _ = client.param_serialize(method, path, query_params=query or [],
                                                            header_params={"Content-Type": ctype}, body=body)
    resp = client.call_api(method_, url, headers, data)
    resp.read()
    return resp


def test_python_client(cluster: Cluster) -> None:
    client = cluster.api_client()
    body = with_unknowns(lease("py-client"))
    strict = _client_call(client, "POST", LEASES, body, [("fieldValidation", "Strict")])
    assert strict.status == 400 and 'unknown field "spec.z"' in json.loads(strict.data)["message"]
    created = _client_call(client, "POST", LEASES, body)
    assert created.status == 201 and b"hello" not in created.data
    assert created.getheader("Warning").count("unknown field") == 3  # urllib3 joins repeated headers
    patched = _client_call(client, "PATCH", f"{LEASES}/py-client", {"spec": {"z": 1, "holderIdentity": "node-3"}},
                           ctype=MERGE)
    assert patched.status == 200 and 'unknown field \\"spec.z\\"' in patched.getheader("Warning")
    # The typed API reads the pruned object back.
    got = kubernetes.client.CoordinationV1Api(client).read_namespaced_lease("py-client", NS)
    assert got.spec.holder_identity == "node-3" and got.spec.lease_duration_seconds == 40
    raw = kubernetes.client.CoordinationV1Api(client).read_namespaced_lease("py-client", NS, _preload_content=False)
    assert b'"z"' not in raw.data
