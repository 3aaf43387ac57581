"""Protobuf responses (`Accept: application/vnd.kubernetes.protobuf`) from a real megaplane server.

Every protobuf body is checked against the JSON answer to the same request:
the JSON marshalled by the reference encoder (upstream's descriptors read
from kubectl, the `protobuf` package; tests/api/test_protobuf.py checks it
against kubectl's own bodies) must give the same bytes. So bytes equal to
what gogo would write for the object the JSON describes, for gets, creates,
lists, watch frames (live and replayed, broadcast and namespaced) and Status
errors. Besides: custom resources stay JSON, a Table request stays JSON,
an Accept nothing matches is 406 as upstream, the `kubernetes` package
(which asks for JSON) still gets JSON, and kubectl's typed clients (which
ask for protobuf) read the answers.
"""

from __future__ import annotations

import http.client
import json
import struct
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from megaplane.apiserver.schema import protobuf_encode
from megaplane.apiserver.schema.protobuf import decode
from tests.api.conftest import Cluster
from tests.api.test_protobuf import KINDS, KUBECTL, META_V1, RICH_POD, ReferenceEncoder, _descriptor_source

PB = "application/vnd.kubernetes.protobuf"
CLIENT_GO = "application/vnd.kubernetes.protobuf, application/json"  # what client-go's typed clients send
Obj = Dict[str, Any]


@pytest.fixture(scope="module")
def ref() -> ReferenceEncoder:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    return ReferenceEncoder(_descriptor_source())


def ref_encode(ref: ReferenceEncoder, obj: Obj) -> bytes:
    """The reference encoding of a JSON answer (its own apiVersion and kind)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    if kind in ("Status", "WatchEvent"):
        msg = ref.new(META_V1 + kind)
        ref._fill_message(msg, {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
        unknown = ref.new("k8s.io.apimachinery.pkg.runtime.Unknown")
        unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
        unknown.raw = msg.SerializeToString(deterministic=True)
        unknown.contentEncoding = unknown.contentType = ""
        return b"k8s\x00" + unknown.SerializeToString(deterministic=True)
    return ref.encode(api_version, kind, obj)


# --- the encoder alone, on the decoder's test objects ------------------------------------------

ALL_KINDS = KINDS + [("v1", "Pod", RICH_POD)]


@pytest.mark.parametrize("api_version,kind,obj", ALL_KINDS, ids=[f"{gv}/{k}" for gv, k, _ in ALL_KINDS])
def test_encoder_bytes_equal_the_reference(ref: ReferenceEncoder, api_version: str, kind: str, obj: Obj) -> None:
    body = protobuf_encode.encode(api_version, kind, obj)
    assert body == ref.encode(api_version, kind, obj)
    assert decode(body) == {"kind": kind, "apiVersion": api_version, **obj}


def test_encoder_writes_gogo_zero_values_for_what_json_omits(ref: ReferenceEncoder) -> None:
    # a stored object lacks the zero fields Go's JSON omits; gogo writes them all the same
    sparse = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    body = protobuf_encode.encode("v1", "Pod", sparse)
    assert body == ref.encode("v1", "Pod", sparse)
    full = decode(body)
    assert full["status"] == {} and full["spec"]["containers"][0]["resources"] == {}
    assert protobuf_encode.encode("v1", "Pod", full) == body


def test_an_object_protobuf_cannot_carry_is_answered_in_json() -> None:
    from megaplane.apimachinery.resources import lookup
    from megaplane.apiserver.http.encoding import pb_body, pb_list_body

    bad = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","creationTimestamp":"yesterday"}}'
    assert pb_body(bad) is None
    good = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"}}'
    configmaps = lookup("", "configmaps")
    assert configmaps is not None
    assert pb_list_body(configmaps, [good, bad], None, 7) is None
    assert decode(pb_list_body(configmaps, [good], None, 7) or b"")["items"][0]["metadata"]["name"] == "y"


def call(c: Cluster, method: str, path: str, accept: str, body: Optional[Obj] = None
         ) -> Tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=60)
    try:
        headers = {"Accept": accept, "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def ok(c: Cluster, method: str, path: str, body: Optional[Obj] = None) -> Obj:
    status, _, data = call(c, method, path, "application/json", body)
    assert status < 300, data
    return json.loads(data)  # type: ignore[no-any-return]


NS = "pb"
OBJECTS: List[Tuple[str, Obj]] = [
    ("/api/v1/namespaces/pb/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "annotations": {"a": "1"}},
        "spec": {
            "containers": [{
                "name": "c", "image": "nginx:1.25", "args": ["-g", "daemon off;"],
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "A", "value": "b"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 80}},
            }],
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }),
    ("/api/v1/namespaces/pb/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
        "data": {"b": "2", "a": "1", "empty": ""}, "binaryData": {"bin": "AAEC"},
    }),
    ("/api/v1/namespaces/pb/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "admin"},
    }),
    ("/api/v1/namespaces/pb/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                       {"name": "alt", "port": 8080, "targetPort": 8080}]},
    }),
    ("/apis/apps/v1/namespaces/pb/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "dep"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "dep"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]}}},
    }),
    ("/apis/coordination.k8s.io/v1/namespaces/pb/leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lease"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 40, "leaseTransitions": 0,
                 "acquireTime": "2024-05-01T10:00:00.123456Z", "renewTime": "2024-05-01T10:00:05.000001Z"},
    }),
    ("/api/v1/namespaces/pb/events", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
        "involvedObject": {"kind": "Pod", "namespace": "pb", "name": "web"}, "reason": "Started",
        "message": "started", "type": "Normal", "count": 2, "source": {"component": "kubelet"},
        "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:01:00Z",
    }),
    ("/apis/scheduling.k8s.io/v1/priorityclasses", {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "pb-high"},
        "value": 1000, "description": "high",
    }),
    ("/apis/batch/v1/namespaces/pb/cronjobs", {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "*/5 * * * *", "suspend": True, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}},
    }),
]


def _name_path(collection: str, obj: Obj) -> str:
    return f"{collection}/{obj['metadata']['name']}"


@pytest.fixture(scope="module")
def created(cluster: Cluster) -> List[Tuple[str, bytes, Obj]]:
    """Each object created with a protobuf Accept: (item path, the protobuf answer, the JSON get of it)."""
    ok(cluster, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    out = []
    for collection, obj in OBJECTS:
        status, ctype, body = call(cluster, "POST", collection, CLIENT_GO, obj)
        assert status == 201 and ctype == PB, body
        out.append((_name_path(collection, obj), body, ok(cluster, "GET", _name_path(collection, obj))))
    return out


def test_create_answers_are_the_reference_encoding_of_the_object(ref: ReferenceEncoder, created: Any) -> None:
    for path, body, as_json in created:
        assert body == ref_encode(ref, as_json), path
        assert decode(body)["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]


def test_get_in_protobuf_equals_the_json_get(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    for path, _, _ in created + [("/api/v1/namespaces/pb", b"", None)]:
        as_json = ok(cluster, "GET", path)
        for accept in (PB, CLIENT_GO, "application/vnd.kubernetes.protobuf;q=1, */*"):
            status, ctype, body = call(cluster, "GET", path, accept)
            assert (status, ctype) == (200, PB), body
            assert body == ref_encode(ref, as_json), path


def test_lists_in_protobuf_equal_the_json_lists(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    for collection, obj in OBJECTS:
        for query in ("", "?labelSelector=app%3Dweb", "?limit=1"):
            as_json = ok(cluster, "GET", collection + query)
            for item in as_json["items"]:  # (megaplane's JSON items carry their kind; the List message cannot)
                item.pop("kind", None), item.pop("apiVersion", None)
            status, ctype, body = call(cluster, "GET", collection + query, CLIENT_GO)
            assert (status, ctype) == (200, PB)
            assert body == ref_encode(ref, as_json), collection + query
    # a second list answers from the memoised messages: the same bytes
    as_json = ok(cluster, "GET", "/api/v1/pods")
    for item in as_json["items"]:
        item.pop("kind", None), item.pop("apiVersion", None)
    assert call(cluster, "GET", "/api/v1/pods", PB)[2] == call(cluster, "GET", "/api/v1/pods", PB)[2] == ref_encode(
        ref, as_json)


def test_subresources_and_converted_kinds_in_protobuf(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    # the scale subresource (autoscaling/v1 Scale) and events.k8s.io/v1 Events (a view of the core Events)
    for path in ("/apis/apps/v1/namespaces/pb/deployments/dep/scale", "/apis/events.k8s.io/v1/namespaces/pb/events/ev",
                 "/apis/events.k8s.io/v1/namespaces/pb/events"):
        as_json = ok(cluster, "GET", path)
        for item in as_json.get("items", []):
            item.pop("kind", None), item.pop("apiVersion", None)
        status, ctype, body = call(cluster, "GET", path, CLIENT_GO)
        assert (status, ctype) == (200, PB) and body == ref_encode(ref, as_json), path
    rv = ok(cluster, "GET", "/api/v1/namespaces/pb/events")["metadata"]["resourceVersion"]
    watch = Stream(cluster, f"/apis/events.k8s.io/v1/namespaces/pb/events?watch=1&resourceVersion={rv}", CLIENT_GO)
    try:
        ok(cluster, "POST", "/api/v1/namespaces/pb/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev2"}, "reason": "R", "message": "m",
            "involvedObject": {"kind": "Pod", "namespace": "pb", "name": "web"}, "type": "Normal"})
        ((etype, obj),) = watch.frames(ref, 1)
    finally:
        watch.close()
    assert etype == "ADDED" and obj == ref_encode(ref, ok(cluster, "GET", "/apis/events.k8s.io/v1/namespaces/pb/events/ev2"))


def test_update_patch_delete_answer_in_protobuf(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    path = "/api/v1/namespaces/pb/configmaps/cm"
    cm = ok(cluster, "GET", path)
    cm["data"]["c"] = "3"
    status, ctype, body = call(cluster, "PUT", path, CLIENT_GO, cm)
    assert (status, ctype) == (200, PB) and body == ref_encode(ref, ok(cluster, "GET", path))
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=60)
    conn.request("PATCH", path, b'{"data":{"d":"4"}}',
                 {"Accept": CLIENT_GO, "Content-Type": "application/merge-patch+json"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert (resp.status, resp.getheader("Content-Type")) == (200, PB)
    assert body == ref_encode(ref, ok(cluster, "GET", path))
    ok(cluster, "POST", "/api/v1/namespaces/pb/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                              "metadata": {"name": "gone"}})
    status, ctype, body = call(cluster, "DELETE", "/api/v1/namespaces/pb/configmaps/gone", CLIENT_GO)
    assert (status, ctype) == (200, PB)
    answer = decode(body)
    assert answer["kind"] == "Status" and answer["details"]["name"] == "gone", answer


# --- watch -----------------------------------------------------------------------------------


class Stream:
    """A watch response read frame by frame (protobuf) or line by line (JSON)."""

    def __init__(self, c: Cluster, path: str, accept: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=60)
        self.conn.request("GET", path, headers={"Accept": accept})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()

    def frames(self, ref: ReferenceEncoder, n: int) -> List[Tuple[str, bytes]]:
        out = []
        for _ in range(n):
            (size,) = struct.unpack(">I", self.resp.read(4))
            event = ref.new(META_V1 + "WatchEvent")
            event.ParseFromString(self.resp.read(size))
            out.append((event.type, event.object.raw))
        return out

    def lines(self, n: int) -> List[Obj]:
        return [json.loads(self._line()) for _ in range(n)]

    def _line(self) -> bytes:
        buf = b""
        while not buf.endswith(b"\n"):
            buf += self.resp.read(1)
        return buf

    def close(self) -> None:
        self.conn.close()


def test_watch_frames_equal_the_json_events(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    base = "/api/v1/namespaces/pb/configmaps"
    rv = ok(cluster, "GET", base)["metadata"]["resourceVersion"]
    # live: one watcher of every namespace (the broadcast group), one of the namespace (filtered)
    everywhere = Stream(cluster, f"/api/v1/configmaps?watch=1&resourceVersion={rv}", CLIENT_GO)
    one_ns = Stream(cluster, f"{base}?watch=1&resourceVersion={rv}", PB)
    assert everywhere.resp.getheader("Content-Type") == "application/vnd.kubernetes.protobuf;stream=watch"
    try:
        ok(cluster, "POST", base, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"},
                                   "data": {"k": "v"}})
        ok(cluster, "PUT", f"{base}/w",
           {**ok(cluster, "GET", f"{base}/w"), "data": {"k": "v2"}})
        ok(cluster, "DELETE", f"{base}/w")
        live = [everywhere.frames(ref, 3), one_ns.frames(ref, 3)]
    finally:
        everywhere.close()
        one_ns.close()
    # replayed from the cache's window, in JSON and in protobuf
    as_json = Stream(cluster, f"{base}?watch=1&resourceVersion={rv}", "application/json")
    replay = Stream(cluster, f"{base}?watch=1&resourceVersion={rv}", CLIENT_GO)
    try:
        events = as_json.lines(3)
        frames = replay.frames(ref, 3)
    finally:
        as_json.close()
        replay.close()
    expected = [(e["type"], ref_encode(ref, e["object"])) for e in events]
    assert [t for t, _ in expected] == ["ADDED", "MODIFIED", "DELETED"]
    assert frames == expected
    assert live == [expected, expected]


def test_watch_bookmark_and_initial_events_in_protobuf(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    s = Stream(cluster, "/api/v1/namespaces/pb/secrets?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                        "&resourceVersionMatch=NotOlderThan", CLIENT_GO)
    try:
        (added, obj), (bookmark, mark) = s.frames(ref, 2)
    finally:
        s.close()
    assert added == "ADDED" and obj == ref_encode(ref, ok(cluster, "GET", "/api/v1/namespaces/pb/secrets/s"))
    assert bookmark == "BOOKMARK"
    meta = decode(mark)["metadata"]
    assert meta["annotations"] == {"k8s.io/initial-events-end": "true"} and meta["resourceVersion"].isdigit()


# --- errors, fallbacks, other clients --------------------------------------------------------


def test_status_errors_in_protobuf(cluster: Cluster, ref: ReferenceEncoder, created: Any) -> None:
    cases = [
        ("GET", "/api/v1/namespaces/pb/pods/missing", None),
        ("POST", "/api/v1/namespaces/pb/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "cm"}}),  # exists: 409
        ("POST", "/api/v1/namespaces/pb/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
                                                 "spec": {"containers": []}}),  # 422 with causes
        ("GET", "/api/v1/namespaces/pb/pods?labelSelector=a%20in", None),  # 400
        ("POST", "/api/v1/namespaces/pb/pods/web/status", {}),  # 405, refused before any handler
    ]
    for method, path, body in cases:
        code, ctype, as_json = call(cluster, method, path, "application/json", body)
        status, ctype, data = call(cluster, method, path, CLIENT_GO, body)
        assert status == code >= 400 and ctype == PB, (path, data)
        assert data == ref_encode(ref, json.loads(as_json)), path
    assert decode(data)["kind"] == "Status"


def test_not_acceptable(cluster: Cluster) -> None:
    status, ctype, body = call(cluster, "GET", "/api/v1/namespaces/pb/pods", "text/html")
    assert (status, ctype) == (406, "application/json")
    assert json.loads(body)["message"] == (
        "only the following media types are accepted: application/json, application/yaml, "
        "application/vnd.kubernetes.protobuf")
    assert json.loads(body)["reason"] == "NotAcceptable"


def test_tables_stay_json(cluster: Cluster, created: Any) -> None:
    status, ctype, body = call(cluster, "GET", "/api/v1/namespaces/pb/pods",
                               "application/json;as=Table;v=v1;g=meta.k8s.io, " + CLIENT_GO)
    assert (status, ctype) == (200, "application/json") and json.loads(body)["kind"] == "Table"


def test_the_kubernetes_package_still_gets_json(cluster: Cluster, created: Any) -> None:
    import kubernetes

    api = kubernetes.client.CoreV1Api(cluster.api_client())
    resp = api.read_namespaced_pod("web", NS, _preload_content=False)
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.data)["metadata"]["name"] == "web"
    assert [p.metadata.name for p in api.list_namespaced_pod(NS).items] == ["web"]


def test_kubectl_typed_clients_read_protobuf(cluster: Cluster, created: Any) -> None:
    # `create token` and `auth whoami` use client-go's typed clients: protobuf both ways
    out = cluster.kubectl("create", "token", "default", "-n", NS, "-v=8")
    assert out.returncode == 0 and out.stdout.count(".") == 2, out.stderr[-2000:]
    assert "Content-Type: application/vnd.kubernetes.protobuf" in out.stderr
    out = cluster.kubectl("auth", "whoami", "-o", "json")
    assert out.returncode == 0 and json.loads(out.stdout)["kind"] == "SelfSubjectReview", out.stderr


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.pb.example.com"},
    "spec": {"group": "pb.example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture(scope="module")
def widgets(cluster: Cluster) -> Iterator[str]:
    status, _, body = call(cluster, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                           "application/json", CRD)
    if status == 404:
        pytest.skip("CustomResourceDefinitions are not served")
    assert status == 201, body
    path = f"/apis/pb.example.com/v1/namespaces/{NS}/widgets"
    deadline = time.monotonic() + 60
    while call(cluster, "GET", path, "application/json")[0] != 200:  # until the CRD is established
        assert time.monotonic() < deadline
        time.sleep(0.1)
    yield path


def test_custom_resources_fall_back_to_json(cluster: Cluster, created: Any, widgets: str) -> None:
    status, ctype, body = call(cluster, "POST", widgets, CLIENT_GO,
                               {"apiVersion": "pb.example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}})
    assert (status, ctype) == (201, "application/json"), body
    for path in (widgets, widgets + "/w1", widgets + "/missing"):
        status, ctype, body = call(cluster, "GET", path, CLIENT_GO)
        assert ctype == "application/json" and json.loads(body)["kind"] in ("WidgetList", "Widget", "Status")
    status, ctype, body = call(cluster, "GET", widgets, PB)  # protobuf only: nothing acceptable
    assert status == 406 and json.loads(body)["message"] == (
        "only the following media types are accepted: application/json, application/yaml")
