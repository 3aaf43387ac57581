"""Edge cases a code review found: each test is a request that once changed state it should not have, or
answered 500 where upstream answers the client's mistake.

Subresource routes serve only their own verbs; a status write during a pod's grace period does not
delete the pod; an updated Event keeps its TTL; dry runs and failed writes give service allocations
back; a bad dryRun or DeleteOptions is refused before anything is deleted; sendInitialEvents=false
starts a watch from now.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.api.conftest import Cluster, start_cluster

NS = "edges"
POD = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def request(cluster: Cluster, method: str, path: str, body: Any = None,
            ctype: str = "application/json") -> Tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=20)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    conn.request(method, path, body=data, headers={"Content-Type": ctype} if data is not None else {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


@pytest.fixture(scope="module")
def ttl_cluster() -> Iterator[Cluster]:
    """Events live 2 s here, so their expiry can be watched."""
    root = tempfile.mkdtemp(prefix="megaplane-edges-")
    c = start_cluster(root, ["--event-ttl", "2s"])
    try:
        status, _ = request(c, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        assert status == 201
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def make_pod(c: Cluster, name: str, node: str = "", finalizers: Optional[list] = None) -> Dict[str, Any]:
    body = json.loads(json.dumps(POD))
    body["metadata"] = {"name": name, "finalizers": finalizers or []}
    if node:
        body["spec"]["nodeName"] = node
    status, obj = request(c, "POST", f"/api/v1/namespaces/{NS}/pods", body)
    assert status == 201, obj
    return obj


@pytest.mark.parametrize("method,sub", [("DELETE", "status"), ("POST", "status"), ("PUT", "binding"),
                                        ("PATCH", "binding"), ("GET", "binding"), ("DELETE", "binding")])
def test_subresource_routes_serve_only_their_verbs(ttl_cluster: Cluster, method: str, sub: str) -> None:
    name = f"sub-{method.lower()}-{sub}"
    make_pod(ttl_cluster, name)
    body = {"metadata": {"name": name}} if method in ("POST", "PUT") else ({} if method == "PATCH" else None)
    ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
    status, answer = request(ttl_cluster, method, f"/api/v1/namespaces/{NS}/pods/{name}/{sub}", body, ctype)
    assert status == 405 and answer["reason"] == "MethodNotAllowed", answer
    status, pod = request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    assert status == 200 and not pod["metadata"].get("deletionTimestamp") and not pod["spec"].get("nodeName")


def test_scale_cannot_delete_its_workload(ttl_cluster: Cluster) -> None:
    dep = {"metadata": {"name": "scaled"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": POD["spec"]}}}
    assert request(ttl_cluster, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", dep)[0] == 201
    status, _ = request(ttl_cluster, "DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/scaled/scale")
    assert status == 405
    assert request(ttl_cluster, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/scaled")[0] == 200


def test_status_write_during_grace_period_keeps_the_pod(ttl_cluster: Cluster) -> None:
    make_pod(ttl_cluster, "graceful", node="node-1")
    status, marked = request(ttl_cluster, "DELETE", f"/api/v1/namespaces/{NS}/pods/graceful")
    assert status == 200 and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    # The kubelet reports the containers stopping: a status patch while the pod is in its grace period.
    status, patched = request(ttl_cluster, "PATCH", f"/api/v1/namespaces/{NS}/pods/graceful/status",
                              {"status": {"phase": "Running"}}, "application/merge-patch+json")
    assert status == 200, patched
    status, pod = request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/graceful")
    assert status == 200 and pod["status"]["phase"] == "Running" and pod["metadata"]["deletionTimestamp"]
    # The kubelet's final delete (grace period 0) removes it.
    status, _ = request(ttl_cluster, "DELETE", f"/api/v1/namespaces/{NS}/pods/graceful",
                        {"gracePeriodSeconds": 0})
    assert status == 200
    assert request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/graceful")[0] == 404


def test_an_updated_event_still_expires(ttl_cluster: Cluster) -> None:
    event = {"metadata": {"name": "ttl"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
             "reason": "Test", "message": "once", "count": 1, "type": "Normal"}
    status, made = request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/events", event)
    assert status == 201, made
    # client-go's recorder bumps count with a patch; the event must keep a TTL.
    status, _ = request(ttl_cluster, "PATCH", f"/api/v1/namespaces/{NS}/events/ttl", {"count": 2, "message": "twice"},
                        "application/merge-patch+json")
    assert status == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/events/ttl")[0] == 404:
            return
        time.sleep(0.2)
    pytest.fail("the updated event outlived its 2 s TTL by 13 s")


def test_dry_run_and_refused_creates_give_node_ports_back(ttl_cluster: Cluster) -> None:
    svc = {"metadata": {"name": "np-dry"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30123}]}}
    for _ in range(2):
        status, answer = request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/services?dryRun=All", svc)
        assert status == 201 and answer["spec"]["ports"][0]["nodePort"] == 30123, answer
    status, answer = request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/services", svc)
    assert status == 201 and answer["spec"]["ports"][0]["nodePort"] == 30123, answer
    # A second service with the same name is refused: its allocation must not stick either.
    clash = {"metadata": {"name": "np-dry"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30124}]}}
    assert request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/services", clash)[0] == 409
    other = {"metadata": {"name": "np-other"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30124}]}}
    status, answer = request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/services", other)
    assert status == 201, answer


def test_changing_a_cluster_ip_is_refused(ttl_cluster: Cluster) -> None:
    status, svc = request(ttl_cluster, "POST", f"/api/v1/namespaces/{NS}/services",
                          {"metadata": {"name": "fixed-ip"}, "spec": {"ports": [{"port": 80}]}})
    assert status == 201
    svc["spec"]["clusterIP"] = svc["spec"]["clusterIPs"][0] = "fd00:10:96::7777"
    status, answer = request(ttl_cluster, "PUT", f"/api/v1/namespaces/{NS}/services/fixed-ip", svc)
    assert status == 422 and answer["reason"] == "Invalid", answer


@pytest.mark.parametrize("query,body", [("?dryRun=Foo", None), ("", {"dryRun": ["Foo"]})])
def test_a_bad_dry_run_value_deletes_nothing(ttl_cluster: Cluster, query: str, body: Any) -> None:
    name = f"dry{len(query)}"
    make_pod(ttl_cluster, name)
    status, answer = request(ttl_cluster, "DELETE", f"/api/v1/namespaces/{NS}/pods/{name}{query}", body)
    assert status == 422 and answer["reason"] == "Invalid", answer
    assert answer["message"].startswith('DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value')
    assert request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/{name}")[0] == 200


@pytest.mark.parametrize("body", [{"gracePeriodSeconds": "soon"}, {"preconditions": "yes"}, [1, 2]])
def test_malformed_delete_options_are_a_400(ttl_cluster: Cluster, body: Any) -> None:
    name = f"opts-{abs(hash(json.dumps(body))) % 10000}"
    make_pod(ttl_cluster, name)
    status, answer = request(ttl_cluster, "DELETE", f"/api/v1/namespaces/{NS}/pods/{name}", body)
    assert status == 400 and answer["reason"] == "BadRequest", answer
    assert request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/{name}")[0] == 200


@pytest.mark.parametrize("path,body", [
    ("pods/binder/binding", {"target": "node-1"}),
    ("pods/binder", {"metadata": "x"}),
])
def test_malformed_bodies_are_a_400(ttl_cluster: Cluster, path: str, body: Any) -> None:
    make_pod(ttl_cluster, "binder") if request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/binder")[0] == 404 else None
    method = "POST" if path.endswith("binding") else "PUT"
    status, answer = request(ttl_cluster, method, f"/api/v1/namespaces/{NS}/{path}", body)
    assert status in (400, 422) and answer["kind"] == "Status", answer
    status, pod = request(ttl_cluster, "GET", f"/api/v1/namespaces/{NS}/pods/binder")
    assert status == 200 and not pod["spec"].get("nodeName")


def test_watch_without_initial_events_starts_now(ttl_cluster: Cluster) -> None:
    make_pod(ttl_cluster, "before-watch")
    conn = http.client.HTTPConnection("127.0.0.1", ttl_cluster.port, timeout=20)
    conn.request("GET", f"/api/v1/namespaces/{NS}/pods?watch=true&sendInitialEvents=false"
                        "&resourceVersionMatch=NotOlderThan&resourceVersion=0&timeoutSeconds=2")
    resp = conn.getresponse()
    assert resp.status == 200
    make_pod(ttl_cluster, "after-watch")
    events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    conn.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "after-watch")]


def test_a_thousand_pipelined_requests_are_answered_in_order(ttl_cluster: Cluster) -> None:
    # The first request waits (a resourceVersion the store has not reached: 3 s, then 504), so the
    # thousand behind it queue up on the connection; they are then served by a loop, in order, not by
    # one nested call each (which ran out of stack).
    import re
    import socket

    first = f"/api/v1/namespaces/{NS}/pods/missing?resourceVersion=999999999"
    names = [f"/api/v1/namespaces/{NS}/pods/missing-{i}" for i in range(1000)]
    payload = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % n.encode() for n in [first] + names)
    with socket.create_connection(("127.0.0.1", ttl_cluster.port), timeout=30) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 404") < 1000:
            chunk = s.recv(1 << 20)
            assert chunk, f"connection closed after {data.count(b'HTTP/1.1 404')} responses"
            data += chunk
    assert data.startswith(b"HTTP/1.1 504")
    order = [int(m) for m in re.findall(rb'pods \\"missing-(\d+)\\" not found', data)]
    assert order == list(range(1000))
