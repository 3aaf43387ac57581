"""The official `kubernetes` Python client against `megaplane up`: CRUD of every kind, pages, watches.

The client's models are strict (pydantic, required fields, strict types),
so every object the server returns is checked by deserialising it.
"""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "pyc"

POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "x"}}

# (api class, kind, plural, namespaced, body, a patch that changes something, field it changes)
KINDS = [
    ("CoreV1Api", "Namespace", "namespace", False, {}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoreV1Api", "Node", "node", False, {"spec": {"podCIDR": "10.244.1.0/24"}}, {"spec": {"unschedulable": True}}),
    ("CoreV1Api", "Pod", "namespaced_pod", True, {"spec": POD_SPEC}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoreV1Api", "Service", "namespaced_service", True,
     {"spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoreV1Api", "Endpoints", "namespaced_endpoints", True,
     {"subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoreV1Api", "ConfigMap", "namespaced_config_map", True, {"data": {"a": "b"}}, {"data": {"c": "d"}}),
    ("CoreV1Api", "Secret", "namespaced_secret", True, {"stringData": {"a": "b"}, "type": "Opaque"}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoreV1Api", "Event", "namespaced_event", True,
     {"involvedObject": {"kind": "Pod", "name": "x", "namespace": NS}, "reason": "Test", "message": "hello", "type": "Normal"},
     {"message": "changed"}),
    ("CoreV1Api", "ServiceAccount", "namespaced_service_account", True, {}, {"metadata": {"labels": {"p": "1"}}}),
    ("CoordinationV1Api", "Lease", "namespaced_lease", True,
     {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 40}}, {"spec": {"holderIdentity": "you"}}),
    ("AppsV1Api", "Deployment", "namespaced_deployment", True,
     {"spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}, {"spec": {"replicas": 3}}),
    ("AppsV1Api", "ReplicaSet", "namespaced_replica_set", True,
     {"spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}, {"spec": {"replicas": 2}}),
    ("AppsV1Api", "DaemonSet", "namespaced_daemon_set", True,
     {"spec": {"selector": SELECTOR, "template": TEMPLATE}}, {"metadata": {"labels": {"p": "1"}}}),
    ("AppsV1Api", "StatefulSet", "namespaced_stateful_set", True,
     {"spec": {"serviceName": "x", "selector": SELECTOR, "template": TEMPLATE}}, {"spec": {"replicas": 2}}),
    ("BatchV1Api", "Job", "namespaced_job", True,
     {"spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}}, {"metadata": {"labels": {"p": "1"}}}),
    ("EventsV1Api", "Event", "namespaced_event", True,
     {"eventTime": "2026-11-22T10:00:00.000000Z", "reportingController": "test", "reportingInstance": "t1",
      "action": "Testing", "reason": "Test", "regarding": {"kind": "Pod", "name": "x", "namespace": NS}, "note": "hi",
      "type": "Normal"}, {"note": "changed"}),
    ("DiscoveryV1Api", "EndpointSlice", "namespaced_endpoint_slice", True,
     {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}, {"metadata": {"labels": {"p": "1"}}}),
]

API_VERSION = {"CoreV1Api": "v1", "CoordinationV1Api": "coordination.k8s.io/v1", "AppsV1Api": "apps/v1",
               "BatchV1Api": "batch/v1", "EventsV1Api": "events.k8s.io/v1", "DiscoveryV1Api": "discovery.k8s.io/v1"}


@pytest.fixture(scope="module")
def api(cluster):
    c = cluster.api_client()
    core = client.CoreV1Api(c)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return c


@pytest.mark.parametrize("cls,kind,fn,namespaced,body,patch", KINDS, ids=[f"{k[0]}.{k[1]}" for k in KINDS])
def test_crud(api, cls, kind, fn, namespaced, body, patch):
    a = getattr(client, cls)(api)
    name = f"crud-{kind.lower()}"
    obj = {"apiVersion": API_VERSION[cls], "kind": kind, "metadata": {"name": name}, **body}
    ns_args = (NS,) if namespaced else ()
    created = getattr(a, f"create_{fn}")(*ns_args, obj)
    assert created.metadata.name == name and created.metadata.uid and created.metadata.resource_version
    read = getattr(a, f"read_{fn}")(name, *ns_args)
    assert read.metadata.resource_version == created.metadata.resource_version
    listed = getattr(a, f"list_{fn}")(*ns_args) if namespaced else getattr(a, f"list_{fn}")()
    assert name in [i.metadata.name for i in listed.items]
    patched = getattr(a, f"patch_{fn}")(name, *ns_args, patch)
    assert int(patched.metadata.resource_version) > int(read.metadata.resource_version)
    replaced_body = a.api_client.sanitize_for_serialization(patched)
    replaced_body["metadata"].setdefault("annotations", {})["replaced"] = "yes"
    replaced = getattr(a, f"replace_{fn}")(name, *ns_args, replaced_body)
    assert replaced.metadata.annotations["replaced"] == "yes"
    # A stale resourceVersion is a 409 Conflict with upstream's message.
    replaced_body["metadata"]["resourceVersion"] = read.metadata.resource_version
    with pytest.raises(ApiException) as info:
        getattr(a, f"replace_{fn}")(name, *ns_args, replaced_body)
    assert info.value.status == 409 and "the object has been modified" in info.value.body
    # Background, as kubectl sends it: a bare DELETE of a batch/v1 Job orphans its pods, which puts the
    # `orphan` finalizer on it for a garbage collector this cluster does not run.
    getattr(a, f"delete_{fn}")(name, *ns_args, propagation_policy="Background")
    if kind != "Namespace":
        with pytest.raises(ApiException) as info:
            getattr(a, f"read_{fn}")(name, *ns_args)
        assert info.value.status == 404


def test_status_subresource_and_scale(api):
    apps = client.AppsV1Api(api)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scaled"},
            "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}
    d = apps.create_namespaced_deployment(NS, body)
    assert d.metadata.generation == 1
    s = apps.patch_namespaced_deployment_status("scaled", NS, {"status": {"replicas": 1, "readyReplicas": 1}})
    assert s.status.ready_replicas == 1 and s.metadata.generation == 1, "a status write does not move generation"
    scale = apps.read_namespaced_deployment_scale("scaled", NS)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=x"
    apps.patch_namespaced_deployment_scale("scaled", NS, {"spec": {"replicas": 4}})
    d = apps.read_namespaced_deployment("scaled", NS)
    assert d.spec.replicas == 4 and d.metadata.generation == 2 and d.status.ready_replicas == 1
    # A main-resource update cannot change status.
    body = api.sanitize_for_serialization(d)
    body["status"] = {"replicas": 99}
    d2 = apps.replace_namespaced_deployment("scaled", NS, body)
    assert d2.status.replicas == 1


def test_paginated_list_is_consistent_and_expires(api, cluster):
    core = client.CoreV1Api(api)
    for i in range(30):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"page-{i:02d}", "labels": {"page": "yes"}}})
    first = core.list_namespaced_config_map(NS, label_selector="page=yes", limit=10)
    assert len(first.items) == 10 and first.metadata._continue
    # Changes after the first page do not show in later pages: one resourceVersion for the whole list.
    core.create_namespaced_config_map(NS, {"metadata": {"name": "page-00a", "labels": {"page": "yes"}}})
    names = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(NS, label_selector="page=yes", limit=10, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert names == [f"page-{i:02d}" for i in range(30)]
    unfiltered = core.list_namespaced_config_map(NS, limit=5)
    assert unfiltered.metadata.remaining_item_count is not None and unfiltered.metadata.remaining_item_count > 0


def test_watch_resumes_from_a_resource_version_and_reports_410(api, cluster):
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w1"}})
    core.patch_namespaced_config_map("w1", NS, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w1", NS)
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


@pytest.fixture(scope="module")
def short_history():
    """A cluster whose watch caches keep only the last 20 events."""
    import shutil
    import tempfile

    from tests.api.conftest import start_cluster

    root = tempfile.mkdtemp(prefix="megaplane-short-")
    c = start_cluster(root, ["--default-watch-cache-size", "20", "--watch-cache-window", "0s"])
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_too_old_watch_gets_410_expired_and_relist_recovers(short_history):
    import json

    core = client.CoreV1Api(short_history.api_client())
    start = core.list_namespaced_config_map("default").metadata.resource_version
    for i in range(40):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"old-{i}"}})
    resp = core.list_namespaced_config_map(
        "default", watch=True, resource_version=start, _preload_content=False, timeout_seconds=5
    )
    ev = json.loads(resp.readline())
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    assert ev["object"]["message"].startswith(f"too old resource version: {start} (")
    # The informer's answer to 410: relist, then watch from the list's revision.
    relisted = core.list_namespaced_config_map("default")
    assert {f"old-{i}" for i in range(40)} <= {cm.metadata.name for cm in relisted.items}
    rv = relisted.metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    core.delete_namespaced_config_map("old-0", "default")
    # Exactly the changes after the list, in order: nothing the list already held is replayed.
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "after"), ("DELETED", "old-0")]


def test_watch_with_bookmarks_and_initial_events(api, cluster):
    import json
    import urllib.request

    url = (f"{cluster.url}/api/v1/namespaces/{NS}/configmaps?watch=true&sendInitialEvents=true"
           "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=3")
    with urllib.request.urlopen(url, timeout=10) as r:
        events = [json.loads(line) for line in r]
    kinds = [e["type"] for e in events]
    end = kinds.index("BOOKMARK")
    assert end > 0 and set(kinds[:end]) == {"ADDED"}
    assert events[end]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    # What follows is the bookmark the server sends 2 s before the 3 s deadline (nothing changed meanwhile).
    assert kinds[end + 1:] == ["BOOKMARK"]
    assert not events[end + 1]["object"]["metadata"].get("annotations")
    # sendInitialEvents without NotOlderThan is refused, not ignored.
    bad = f"{cluster.url}/api/v1/namespaces/{NS}/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    assert info.value.code == 422


def test_generate_name_and_server_fields(api):
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}})
    assert cm.metadata.name.startswith("gen-") and len(cm.metadata.name) == 9
    assert cm.metadata.creation_timestamp is not None
    svc = core.create_namespaced_service(NS, {"metadata": {"name": "ip"}, "spec": {"ports": [{"port": 80}]}})
    assert ipaddress.ip_address(svc.spec.cluster_ip) in ipaddress.ip_network("fd00:10:96::/108") and svc.spec.ports[0].target_port == 80
    assert svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP"


def test_finalizers_hold_deletion_until_removed(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("fin", NS)
    cm = core.read_namespaced_config_map("fin", NS)
    assert cm.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("fin", NS)
    assert info.value.status == 404
