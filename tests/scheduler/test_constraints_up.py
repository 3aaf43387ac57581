"""PodTopologySpread and InterPodAffinity end to end: Deployments applied with kubectl to `megaplane up --nodes 6
--zones 3` (in-process scheduler and fleet; nodes node-0..node-5 round-robin over zone-0..zone-2).

Every wait polls for the state it expects until a deadline.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

FLEET_FLAGS = ["--node-cpu", "4", "--node-memory", "8Gi", "--node-pods", "20", "--zones", "3",
               "--pod-startup-latency", "100ms"]
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-scheduler-constraints-")
    c = start_server(root, "up", ["--nodes", "6", *FLEET_FLAGS])
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 6, "6 nodes")
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def deployment(name: str, replicas: int, cpu: str = "100m", **spec: Any) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx",
                                                       "resources": {"requests": {"cpu": cpu}}}], **spec}}}})


def pods_of(c: Cluster, app: str) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = json.loads(c.ok("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
    return items


def node_zones(c: Cluster) -> Dict[str, str]:
    nodes = json.loads(c.ok("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n["metadata"]["labels"][ZONE] for n in nodes}


def running_nodes(c: Cluster, app: str, count: int) -> Optional[List[str]]:
    items = pods_of(c, app)
    placed = [p["spec"]["nodeName"] for p in items if p["status"].get("phase") == "Running"]
    return placed if len(items) == count and len(placed) == count else None


def test_zone_spread_max_skew_1_lands_evenly(up: Cluster) -> None:
    up.ok("apply", "-f", "-", input=deployment("zonal", 6, topologySpreadConstraints=[{
        "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "zonal"}}}]))
    placed = eventually(lambda: running_nodes(up, "zonal", 6), "6 zonal pods Running", timeout=60)
    zones = node_zones(up)
    assert sorted(Counter(zones[n] for n in placed).values()) == [2, 2, 2]
    # Scaling to 9 keeps the zones within one of each other at every step, 3 each at the end.
    up.ok("scale", "deployment", "zonal", "--replicas=9")
    placed = eventually(lambda: running_nodes(up, "zonal", 9), "9 zonal pods Running", timeout=60)
    assert sorted(Counter(zones[n] for n in placed).values()) == [3, 3, 3]
    up.ok("delete", "deployment", "zonal")


def pending_messages(c: Cluster, app: str) -> List[str]:
    out = []
    for p in pods_of(c, app):
        for cond in p["status"].get("conditions") or ():
            if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
                out.append(str(cond["message"]))
    return out


def test_one_per_node_anti_affinity_leaves_the_extra_replicas_pending(up: Cluster) -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": HOSTNAME}]}}
    up.ok("apply", "-f", "-", input=deployment("solo", 8, affinity=anti))

    def settled() -> Optional[List[str]]:
        items = pods_of(up, "solo")
        running = [p["spec"]["nodeName"] for p in items if p["status"].get("phase") == "Running"]
        return running if len(items) == 8 and len(running) == 6 and len(pending_messages(up, "solo")) == 2 else None

    running = eventually(settled, "6 solo pods Running, one per node, and 2 Unschedulable", timeout=60)
    assert sorted(running) == [f"node-{i}" for i in range(6)]
    assert pending_messages(up, "solo") == [
        "0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/6 nodes are available: 6 No preemption victims found for incoming pod."] * 2
    up.ok("delete", "deployment", "solo")


def test_plain_deployment_spreads_by_default_constraints(up: Cluster) -> None:
    # Three of the nodes (one per zone) are the candidates. node-1 and node-2 already run 1 CPU each, so
    # LeastAllocated alone would put all six replicas on node-0; the system default constraints (hostname
    # maxSkew 3, zone maxSkew 5, selector from the Deployment's ReplicaSet) spread them.
    for n in ("node-1", "node-2"):
        up.ok("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"filler-{n}", "labels": {"app": "filler"}},
            "spec": {"nodeName": n, "containers": [{"name": "c", "image": "nginx",
                                                    "resources": {"requests": {"cpu": "1"}}}]}}))
    three = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
        "matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": ["node-0", "node-1", "node-2"]}]}]}}}
    up.ok("apply", "-f", "-", input=deployment("plain", 6, affinity=three))
    placed = eventually(lambda: running_nodes(up, "plain", 6), "6 plain pods Running", timeout=60)
    per_node = Counter(placed)
    assert set(per_node) == {"node-0", "node-1", "node-2"}, per_node
    assert max(per_node.values()) <= 3, per_node
    up.ok("delete", "deployment", "plain")
    up.ok("delete", "pods", "-l", "app=filler", "--wait=false")


def test_required_pod_affinity_colocates_in_one_zone(up: Cluster) -> None:
    # The first replica matches its own term and may land anywhere; the rest must join its zone.
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app": "together"}}, "topologyKey": ZONE}]}}
    up.ok("apply", "-f", "-", input=deployment("together", 4, affinity=affinity))
    placed = eventually(lambda: running_nodes(up, "together", 4), "4 together pods Running", timeout=60)
    zones = node_zones(up)
    assert len({zones[n] for n in placed}) == 1, placed
    up.ok("delete", "deployment", "together")


def test_a_higher_priority_pod_preempts_a_lower_priority_one(up: Cluster) -> None:
    # Every node runs a 3-CPU pod of priority 0; a 3-CPU pod of priority 1000 fits only by preempting one.
    for i in range(6):
        up.ok("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"low-{i}", "labels": {"app": "low"}},
            "spec": {"priority": 0, "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "3"}}}]}}))
    eventually(lambda: running_nodes(up, "low", 6), "6 low pods Running", timeout=60)
    # spec.priority comes from a PriorityClass (the Priority admission plugin refuses a pod that sets its own).
    up.ok("create", "priorityclass", "preemptor", "--value=1000")
    up.ok("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "high", "labels": {"app": "high"}},
        "spec": {"priorityClassName": "preemptor", "containers": [
            {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "3"}}}]}}))
    placed = eventually(lambda: running_nodes(up, "high", 1), "the high-priority pod Running", timeout=90)
    high = pods_of(up, "high")[0]
    assert high["status"].get("nominatedNodeName") in (None, placed[0])
    # Exactly one low pod was preempted, from the node the high one runs on, with upstream's event.
    remaining = eventually(lambda: (lambda ps: ps if len(ps) == 5 else None)(pods_of(up, "low")),
                           "5 low pods left", timeout=60)
    assert placed[0] not in {p["spec"]["nodeName"] for p in remaining}
    events = json.loads(up.ok("get", "events", "-o", "json", "--field-selector", "reason=Preempted"))["items"]
    assert len(events) == 1
    assert events[0]["message"] == f"Preempted by pod {high['metadata']['uid']} on node {placed[0]}"
    assert events[0]["involvedObject"]["name"].startswith("low-")
    up.ok("delete", "pods", "-l", "app in (low,high)", "--wait=false")
