"""`megaplane up --nodes N`: the in-process fleet seen through kubectl and the kubernetes Python client.

Short leases (4 s: renewed every second) and a 2 s status report period
keep every wait short; each test polls for the state it expects.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import uuid
from typing import Any, Dict, Iterator, Optional

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp

NODES = 3
UP_FLAGS = [
    "--nodes", str(NODES), "--zones", "3", "--node-lease-duration-seconds", "4",
    "--node-status-report-frequency", "2s", "--node-extended-resource", "example.com/nic=4",
    "--node-labels", "team=fleet-test", "--node-cpu", "16", "--node-memory", "64Gi", "--node-pods", "50",
    "--node-taints", "fleet.megaplane.io/test=yes:PreferNoSchedule",
    "--pod-startup-latency", "200ms", "--job-pod-run-time", "1s",
    # The pods here are made by the tests (some with owners that do not exist, which the garbage collector
    # would delete, as upstream's does), and bound by name: no workload controllers, no scheduler.
    "--controllers", "namespace,serviceaccount", "--scheduler=false",
]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-fleet-up-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


@pytest.fixture(scope="module")
def coordination(up: Cluster) -> kubernetes.client.CoordinationV1Api:
    return kubernetes.client.CoordinationV1Api(up.api_client())


def _ready(node: Any) -> Optional[Any]:
    return next((c for c in node.status.conditions or () if c.type == "Ready"), None)


def test_kubectl_get_nodes_shows_every_node_ready_with_what_was_asked(up: Cluster) -> None:
    def all_ready() -> Optional[list]:
        rows = up.ok("get", "nodes", "--no-headers").splitlines()
        return rows if len(rows) == NODES and all(r.split()[1] == "Ready" for r in rows) else None

    rows = eventually(all_ready, "3 Ready nodes")
    assert sorted(r.split()[0] for r in rows) == [f"node-{i}" for i in range(NODES)]
    nodes = json.loads(up.ok("get", "nodes", "-o", "json"))["items"]
    zones = set()
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["team"] == "fleet-test" and labels["node.kubernetes.io/instance-type"]
        assert labels["topology.kubernetes.io/region"] == "region-1"
        zones.add(labels["topology.kubernetes.io/zone"])
        status = node["status"]
        assert status["capacity"]["cpu"] == "16" and status["capacity"]["pods"] == "50"
        assert status["capacity"]["memory"] == f"{64 << 20}Ki"
        assert status["capacity"]["example.com/nic"] == "4" and status["allocatable"]["example.com/nic"] == "4"
        assert {c["type"] for c in status["conditions"]} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
        assert all(c["lastHeartbeatTime"] and c["lastTransitionTime"] for c in status["conditions"])
        assert {a["type"] for a in status["addresses"]} == {"InternalIP", "Hostname"}
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
        assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0"
        assert node["spec"]["taints"] == [{"key": "fleet.megaplane.io/test", "value": "yes", "effect": "PreferNoSchedule"}]
        cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
        assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
        assert cidr.version == 6 and cidr.prefixlen == 64 and cidr.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert len(zones) == 3
    assert len({n["spec"]["podCIDR"] for n in nodes}) == NODES
    selected = up.ok("get", "nodes", "-l", "example.com/none!=x,team=fleet-test", "--no-headers").splitlines()
    assert len(selected) == NODES


def test_leases_advance(coordination: Any) -> None:
    first = coordination.read_namespaced_lease("node-0", "kube-node-lease")
    assert first.spec.holder_identity == "node-0" and first.spec.lease_duration_seconds == 4
    assert first.metadata.owner_references[0].kind == "Node"
    later = eventually(
        lambda: (lease := coordination.read_namespaced_lease("node-0", "kube-node-lease")).spec.renew_time
        > first.spec.renew_time and lease, "the lease to be renewed")
    assert int(later.metadata.resource_version) > int(first.metadata.resource_version)


def test_node_status_heartbeats_advance(core: Any) -> None:
    first = _ready(core.read_node("node-1")).last_heartbeat_time
    eventually(lambda: _ready(core.read_node("node-1")).last_heartbeat_time > first, "a newer node heartbeat")


def _pod(name: str, node: str, annotations: Optional[Dict[str, str]] = None, owner: Optional[Dict[str, Any]] = None,
         init: bool = False) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name, "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [owner]
    spec: Dict[str, Any] = {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.27"}],
                            "restartPolicy": "Never"}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _phase(core: Any, name: str) -> str:
    return core.read_namespaced_pod(name, "default").status.phase


def test_bound_pod_runs_with_an_ip_of_its_node_then_succeeds(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("runs-then-succeeds", "node-2", {"fleet.megaplane.io/run-seconds": "1"},
                                               init=True))
    pod = eventually(lambda: (p := core.read_namespaced_pod("runs-then-succeeds", "default")).status.phase == "Running"
                     and p, "the pod to run")
    node = core.read_node("node-2")
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(node.spec.pod_cidr)
    assert [ip.ip for ip in pod.status.pod_ips] == [pod.status.pod_ip]
    assert pod.status.host_ip == next(a.address for a in node.status.addresses if a.type == "InternalIP")
    assert pod.status.start_time is not None
    conditions = {c.type: c.status for c in pod.status.conditions}
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conditions[kind] == "True", kind
    (container,) = pod.status.container_statuses
    assert container.ready and container.state.running is not None and container.container_id
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    eventually(lambda: _phase(core, "runs-then-succeeds") == "Succeeded", "the pod to succeed")
    done = core.read_namespaced_pod("runs-then-succeeds", "default")
    assert done.status.container_statuses[0].state.terminated.exit_code == 0
    assert {c.type: c.status for c in done.status.conditions}["Ready"] == "False"


def test_exit_code_annotation_fails_the_pod(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("fails", "node-0", {"fleet.megaplane.io/run-seconds": "0.5",
                                                                   "fleet.megaplane.io/exit-code": "3"}))
    eventually(lambda: _phase(core, "fails") == "Failed", "the pod to fail")
    terminated = core.read_namespaced_pod("fails", "default").status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3 and terminated.reason == "Error"


def test_job_pod_succeeds_after_the_job_run_time(core: Any) -> None:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": str(uuid.uuid4()), "controller": True}
    core.create_namespaced_pod("default", _pod("job-pod", "node-1", owner=owner))
    eventually(lambda: _phase(core, "job-pod") == "Succeeded", "the Job's pod to succeed")


def test_pod_without_run_time_keeps_running(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("server", "node-1"))
    eventually(lambda: _phase(core, "server") == "Running", "the pod to run")
    # The Job's pod above, created later, finishes; this one is still Running after it.
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "j2", "uid": str(uuid.uuid4()), "controller": True}
    core.create_namespaced_pod("default", _pod("job-pod-2", "node-1", owner=owner))
    eventually(lambda: _phase(core, "job-pod-2") == "Succeeded", "the Job's pod to succeed")
    assert _phase(core, "server") == "Running"


def test_graceful_delete_completes(up: Cluster, core: Any) -> None:
    core.create_namespaced_pod("default", _pod("to-delete", "node-0"))
    eventually(lambda: _phase(core, "to-delete") == "Running", "the pod to run")
    up.ok("delete", "pod", "to-delete", "--wait=false")  # grace period 30 s: the fleet finishes it at once
    eventually(lambda: "to-delete" not in up.ok("get", "pods", "-o", "name"), "the pod to be gone", timeout=20)


def test_pods_on_other_nodes_are_left_alone(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("elsewhere", "not-a-fleet-node"))
    # The fleet has seen it once a later pod on a fleet node has run (one informer, in order).
    core.create_namespaced_pod("default", _pod("marker", "node-2"))
    eventually(lambda: _phase(core, "marker") == "Running", "the marker pod to run")
    pod = core.read_namespaced_pod("elsewhere", "default")
    assert pod.status.phase == "Pending" and not pod.status.pod_ip


def _annotate(up: Cluster, node: str, value: Optional[str]) -> None:
    up.ok("annotate", "node", node, "--overwrite",
          f"fleet.megaplane.io/fault={value}" if value else "fleet.megaplane.io/fault-")


def _renew_age(coordination: Any, node: str) -> float:
    lease = coordination.read_namespaced_lease(node, "kube-node-lease")
    return (datetime.datetime.now(datetime.timezone.utc) - lease.spec.renew_time).total_seconds()


def test_fault_not_ready_and_recovery(up: Cluster, core: Any, coordination: Any) -> None:
    _annotate(up, "node-1", "not-ready")
    eventually(lambda: (r := _ready(core.read_node("node-1"))).status == "False" and r.reason == "KubeletNotReady",
               "Ready=False with reason KubeletNotReady")
    renewed = coordination.read_namespaced_lease("node-1", "kube-node-lease").spec.renew_time
    eventually(lambda: coordination.read_namespaced_lease("node-1", "kube-node-lease").spec.renew_time > renewed,
               "the lease to keep being renewed while not ready")
    _annotate(up, "node-1", None)
    eventually(lambda: (r := _ready(core.read_node("node-1"))).status == "True" and r.reason == "KubeletReady",
               "Ready=True again")


def test_fault_stop_heartbeat_and_recovery(up: Cluster, core: Any, coordination: Any) -> None:
    up.ok("annotate", "nodes", "-l", "topology.kubernetes.io/zone=region-1c", "fleet.megaplane.io/fault=stop-heartbeat")
    stopped = [n.metadata.name for n in core.list_node(label_selector="topology.kubernetes.io/zone=region-1c").items]
    assert stopped == ["node-2"]
    # Renewed every second until now: a lease 3 s old has stopped being renewed.
    eventually(lambda: _renew_age(coordination, "node-2") > 3.0, "node-2's lease to go stale", timeout=20)
    assert _renew_age(coordination, "node-0") < 3.0
    heartbeat = _ready(core.read_node("node-2")).last_heartbeat_time
    core.create_namespaced_pod("default", _pod("on-dead-node", "node-2"))
    core.create_namespaced_pod("default", _pod("on-live-node", "node-0"))
    eventually(lambda: _phase(core, "on-live-node") == "Running", "the pod on a live node to run")
    assert _phase(core, "on-dead-node") == "Pending"  # its kubelet is stopped
    assert _ready(core.read_node("node-2")).last_heartbeat_time == heartbeat
    _annotate(up, "node-2", None)
    eventually(lambda: _renew_age(coordination, "node-2") < 2.0, "node-2's lease to be renewed again")
    eventually(lambda: _ready(core.read_node("node-2")).last_heartbeat_time > heartbeat, "a new node heartbeat")
    eventually(lambda: _phase(core, "on-dead-node") == "Running", "the waiting pod to run once the kubelet is back")


def test_fault_slow_heartbeat_and_recovery(up: Cluster, coordination: Any) -> None:
    _annotate(up, "node-0", "slow-heartbeat=2.5")
    seen = []

    def renewals() -> bool:
        t = coordination.read_namespaced_lease("node-0", "kube-node-lease").spec.renew_time
        if not seen or t != seen[-1]:
            seen.append(t)
        return len(seen) >= 4

    eventually(renewals, "four slow renewals", timeout=30, every=0.05)
    gaps = [(b - a).total_seconds() for a, b in zip(seen[1:], seen[2:])]  # the first gap may straddle the change
    assert all(gap >= 2.4 for gap in gaps), gaps
    _annotate(up, "node-0", None)
    fast = []

    def quick() -> bool:
        t = coordination.read_namespaced_lease("node-0", "kube-node-lease").spec.renew_time
        if not fast or t != fast[-1]:
            fast.append(t)
        return len(fast) >= 4

    eventually(quick, "renewals at the normal rhythm", timeout=30, every=0.05)
    assert min((b - a).total_seconds() for a, b in zip(fast[1:], fast[2:])) < 2.0
