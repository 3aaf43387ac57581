"""Endpoints and EndpointSlices of Services in `megaplane up --nodes 3 --zones 3`, with kubectl and the Python client.

`megaplane up` is IPv6 single-stack (its Services' family is the fleet's
pods'), so endpoints list the pods' IPv6 addresses and slices are of
addressType IPv6. Every wait polls for a state.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Optional, Set

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp

NS = "default"
UP_FLAGS = ["--nodes", "3", "--zones", "3", "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10",
            "--controllers", "replicaset,deployment,endpoint,endpointslice", "--scheduler"]
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-endpoints-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def discovery(up: Cluster) -> kubernetes.client.DiscoveryV1Api:
    return kubernetes.client.DiscoveryV1Api(up.api_client())


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def ready_pod_ips(up: Cluster, app: str) -> Set[str]:
    pods = get(up, "pods", "-n", NS, "-l", f"app={app}")["items"]
    return {p["status"]["podIP"] for p in pods if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or ())}


def endpoint_ips(up: Cluster, name: str) -> Optional[Set[str]]:
    r = up.kubectl("get", "endpoints", name, "-n", NS, "-o", "json")
    if r.returncode != 0:
        return None
    ep = json.loads(r.stdout)
    return {a["ip"] for s in ep.get("subsets") or () for a in s.get("addresses") or ()}


def slices_of(discovery: kubernetes.client.DiscoveryV1Api, name: str) -> List[Any]:
    return discovery.list_namespaced_endpoint_slice(NS, label_selector=f"{SERVICE_NAME}={name}").items


def slice_ips(discovery: kubernetes.client.DiscoveryV1Api, name: str, address_type: str = "IPv6") -> Set[str]:
    return {a for s in slices_of(discovery, name) if s.address_type == address_type
            for e in s.endpoints or () if e.conditions.ready for a in e.addresses}


def apply(up: Cluster, objs: List[Dict[str, Any]]) -> None:
    # A stream of objects, not a v1 List (kubectl validates a List client-side against /openapi/v2).
    up.ok("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objs))


def deployment_with_service(up: Cluster, name: str, replicas: int, *, annotations: Optional[Dict[str, str]] = None,
                            target_port: Any = 80, headless: bool = False) -> None:
    apply(up, [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"containers": [{"name": "web", "image": "nginx",
                                                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": NS, "labels": {"team": "a"}, "annotations": annotations or {}},
         "spec": {**({"clusterIP": "None"} if headless else {}), "selector": {"app": name},
                  "ports": [{"name": "web", "port": 80, "targetPort": target_port}]}},
    ])


def rollout(up: Cluster, name: str) -> None:
    r = up.kubectl("rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout


def test_endpoints_and_slices_list_ready_pods_and_follow_scaling(
        up: Cluster, discovery: kubernetes.client.DiscoveryV1Api) -> None:
    deployment_with_service(up, "web", 3, target_port="http")
    rollout(up, "web")
    ips = ready_pod_ips(up, "web")
    assert len(ips) == 3 and all(":" in ip for ip in ips)  # the fleet's IPv6 pod addresses
    eventually(lambda: endpoint_ips(up, "web") == ips, "the Endpoints listing the 3 ready pods")
    ep = get(up, "endpoints", "web", "-n", NS)
    (subset,) = ep["subsets"]
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]  # targetPort "http" by name
    pods = {p["metadata"]["name"]: p for p in get(up, "pods", "-n", NS, "-l", "app=web")["items"]}
    for a in subset["addresses"]:
        pod = pods[a["targetRef"]["name"]]
        assert a["ip"] == pod["status"]["podIP"] and a["nodeName"] == pod["spec"]["nodeName"]
        assert a["targetRef"] == {"kind": "Pod", "namespace": NS, "name": pod["metadata"]["name"],
                                  "uid": pod["metadata"]["uid"]}
    assert ep["metadata"]["labels"] == {"team": "a"}
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

    eventually(lambda: slice_ips(discovery, "web") == ips, "the IPv6 slice listing the 3 ready pods")
    svc = get(up, "service", "web", "-n", NS)
    slices = slices_of(discovery, "web")
    assert svc["spec"]["ipFamilies"] == ["IPv6"]
    assert [s.address_type for s in slices] == ["IPv6"]
    nodes = {n["metadata"]["name"]: n for n in get(up, "nodes")["items"]}
    for s in slices:
        assert s.metadata.generate_name == "web-" and s.metadata.name.startswith("web-")
        assert s.metadata.labels == {SERVICE_NAME: "web", MANAGED_BY: "endpointslice-controller.k8s.io",
                                     "team": "a"}
        (owner,) = s.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Service", "web", svc["metadata"]["uid"], True)
        assert [(p.name, p.port, p.protocol) for p in s.ports] == [("web", 8080, "TCP")]
        for e in s.endpoints:
            assert (e.conditions.ready, e.conditions.serving, e.conditions.terminating) == (True, True, False)
            assert e.zone == nodes[e.node_name]["metadata"]["labels"]["topology.kubernetes.io/zone"]
            assert e.target_ref.name in pods

    up.ok("scale", "deployment", "web", "--replicas=5")
    rollout(up, "web")
    ips = eventually(lambda: (lambda s: s if len(s) == 5 else None)(ready_pod_ips(up, "web")), "5 ready pods")
    eventually(lambda: endpoint_ips(up, "web") == ips, "the Endpoints following the scale-up")
    eventually(lambda: slice_ips(discovery, "web") == ips, "the slice following the scale-up")
    up.ok("scale", "deployment", "web", "--replicas=1")
    ips = eventually(lambda: (lambda s: s if len(s) == 1 else None)(ready_pod_ips(up, "web")), "1 ready pod")
    eventually(lambda: endpoint_ips(up, "web") == ips, "the Endpoints following the scale-down")
    eventually(lambda: slice_ips(discovery, "web") == ips, "the slice following the scale-down")


def test_not_ready_pods_are_not_ready_addresses_unless_published(
        up: Cluster, discovery: kubernetes.client.DiscoveryV1Api) -> None:
    # A pod on no fleet node, its status written by hand: IP set, not Ready.
    apply(up, [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lonely", "namespace": NS, "labels": {"app": "nr"}},
         "spec": {"nodeName": "not-a-fleet-node", "containers": [{"name": "c", "image": "nginx"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nr", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "nr"}, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nr-published", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "nr"}, "ports": [{"port": 80}],
                  "publishNotReadyAddresses": True}},
    ])
    up.ok("patch", "pod", "lonely", "-n", NS, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "phase": "Running", "podIP": "fd00:99::5", "podIPs": [{"ip": "fd00:99::5"}],
        "conditions": [{"type": "Ready", "status": "False"}]}}))

    def subsets(name: str) -> Any:
        r = up.kubectl("get", "endpoints", name, "-n", NS, "-o", "json")
        return json.loads(r.stdout).get("subsets") if r.returncode == 0 else None

    nr = eventually(lambda: subsets("nr"), "the not-ready address")
    assert [[a["ip"] for a in s.get("notReadyAddresses") or ()] for s in nr] == [["fd00:99::5"]]
    assert not any(s.get("addresses") for s in nr)
    pub = eventually(lambda: subsets("nr-published"), "the published address")
    assert [[a["ip"] for a in s.get("addresses") or ()] for s in pub] == [["fd00:99::5"]]
    assert get(up, "endpoints", "nr", "-n", NS)["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    # Slices skip a pod whose node is unknown, unless the Service publishes not-ready addresses: "nr" keeps
    # only its empty placeholder slice.
    published = eventually(lambda: [e for s in slices_of(discovery, "nr-published") for e in s.endpoints or ()],
                           "the published slice endpoint")
    assert [(e.addresses, e.conditions.ready, e.conditions.serving) for e in published] == [(["fd00:99::5"], True,
                                                                                             False)]
    (placeholder,) = eventually(lambda: slices_of(discovery, "nr"), "the placeholder slice")
    assert not placeholder.endpoints and placeholder.address_type == "IPv6"
    assert placeholder.metadata.labels["service.kubernetes.io/headless"] == ""


def test_services_without_selectors_are_left_alone(up: Cluster) -> None:
    apply(up, [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual", "namespace": NS},
         "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual", "namespace": NS},
         "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]},
    ])
    # A Service with a selector created after it is synced after it: once its Endpoints exist, ours were seen.
    deployment_with_service(up, "after", 1)
    eventually(lambda: endpoint_ips(up, "after") is not None, "the later Service's Endpoints")
    assert endpoint_ips(up, "manual") == {"10.1.2.3"}
    assert not [s for s in get(up, "endpointslices", "-n", NS)["items"]
                if s["metadata"]["labels"].get(SERVICE_NAME) == "manual"
                and s["metadata"]["labels"].get(MANAGED_BY) == "endpointslice-controller.k8s.io"]


def test_topology_hints_per_zone_when_every_zone_can_get_one(
        up: Cluster, discovery: kubernetes.client.DiscoveryV1Api) -> None:
    deployment_with_service(up, "hinted", 6, annotations={"service.kubernetes.io/topology-mode": "Auto"})
    rollout(up, "hinted")

    def hints() -> Optional[Dict[str, List[str]]]:
        eps = [e for s in slices_of(discovery, "hinted") if s.address_type == "IPv6" for e in s.endpoints or ()]
        if len(eps) != 6 or any(e.hints is None for e in eps):
            return None
        return {e.target_ref.name: [z.name for z in e.hints.for_zones] for e in eps}

    by_pod = eventually(hints, "hints on all 6 endpoints")
    zones = [z for zs in by_pod.values() for z in zs]
    # Three zones of equal CPU, 6 endpoints: two hints per zone whatever the scheduler's spread.
    assert sorted(zones) == sorted(["region-1a", "region-1b", "region-1c"] * 2), by_pod
    # Fewer endpoints than zones: no zone can get its share, so every hint goes.
    up.ok("scale", "deployment", "hinted", "--replicas=2")

    def no_hints() -> bool:
        eps = [e for s in slices_of(discovery, "hinted") if s.address_type == "IPv6" for e in s.endpoints or ()]
        return len(eps) == 2 and all(e.hints is None for e in eps)

    eventually(no_hints, "the hints removed at 2 endpoints for 3 zones")


def test_many_endpoints_pack_into_slices_of_at_most_100(
        up: Cluster, discovery: kubernetes.client.DiscoveryV1Api) -> None:
    deployment_with_service(up, "many", 130)
    rollout(up, "many")

    def sizes() -> Optional[List[int]]:
        found = sorted(len(s.endpoints or ()) for s in slices_of(discovery, "many") if s.address_type == "IPv6")
        return found if sum(found) == 130 else None

    assert eventually(sizes, "130 endpoints in slices", timeout=90) == [30, 100]
