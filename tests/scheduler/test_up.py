"""The scheduler in real processes: `megaplane up --nodes 3` (in-process scheduler and fleet), and
`megaplane scheduler --kubeconfig` as its own process against `megaplane apiserver` + `megaplane fleet`.

Pods are created with kubectl; every wait polls for the state it expects until a deadline.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

import pytest

from tests.api.conftest import Cluster
from tests.etcd.conftest import free_port
from tests.fleet.conftest import Fleet, eventually, start_fleet, start_server

FLEET_FLAGS = ["--node-cpu", "4", "--node-memory", "8Gi", "--node-pods", "20", "--zones", "3",
               "--pod-startup-latency", "100ms"]


def pod_manifest(name: str, cpu: str = "100m", **spec: Any) -> str:
    body: Dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}], **spec},
    }
    return json.dumps(body)


def get_pod(c: Cluster, name: str) -> Dict[str, Any]:
    out: Dict[str, Any] = json.loads(c.ok("get", "pod", name, "-o", "json"))
    return out


def running_on(c: Cluster, name: str) -> Optional[str]:
    p = get_pod(c, name)
    if p["status"].get("phase") == "Running" and p["spec"].get("nodeName"):
        return str(p["spec"]["nodeName"])
    return None


def unschedulable_message(c: Cluster, name: str) -> Optional[str]:
    p = get_pod(c, name)
    for cond in p["status"].get("conditions") or ():
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return str(cond["message"])
    return None


def events_for(c: Cluster, name: str, reason: str) -> List[Dict[str, Any]]:
    items = json.loads(c.ok("get", "events", "-o", "json", "--field-selector",
                            f"involvedObject.name={name},reason={reason}"))["items"]
    return list(items)


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-scheduler-up-")
    c = start_server(root, "up", ["--nodes", "3", *FLEET_FLAGS])
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 3, "3 nodes")
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_pods_are_scheduled_to_nodes_and_run(up: Cluster) -> None:
    for i in range(6):
        up.ok("apply", "-f", "-", input=pod_manifest(f"web-{i}", cpu="500m"))
    nodes = [eventually(lambda i=i: running_on(up, f"web-{i}"), f"web-{i} Running") for i in range(6)]
    assert set(nodes) <= {"node-0", "node-1", "node-2"}
    # LeastAllocated spreads equal pods over equal nodes: two each.
    assert sorted(nodes.count(n) for n in set(nodes)) == [2, 2, 2]
    scheduled = eventually(lambda: events_for(up, "web-0", "Scheduled"), "a Scheduled event")
    assert scheduled[0]["message"] == f"Successfully assigned default/web-0 to {nodes[0]}"
    assert scheduled[0]["type"] == "Normal"
    assert scheduled[0]["reportingComponent"] == "default-scheduler"
    for i in range(6):
        up.ok("delete", "pod", f"web-{i}", "--wait=false")


def test_a_deployment_runs(up: Cluster) -> None:
    up.ok("create", "deployment", "dep", "--image=nginx", "--replicas=4")

    def all_running() -> Optional[List[str]]:
        items = json.loads(up.ok("get", "pods", "-l", "app=dep", "-o", "json"))["items"]
        phases = [p["status"].get("phase") for p in items]
        return phases if len(items) == 4 and all(ph == "Running" for ph in phases) else None

    eventually(all_running, "the deployment's 4 pods Running", timeout=60)
    up.ok("delete", "deployment", "dep")


def test_too_big_pod_stays_pending_then_fits_when_capacity_frees(up: Cluster) -> None:
    # Each node has 4 CPUs; three 3-CPU pods fill one node each, so a fourth cannot fit.
    for i in range(3):
        up.ok("apply", "-f", "-", input=pod_manifest(f"big-{i}", cpu="3"))
    for i in range(3):
        eventually(lambda i=i: running_on(up, f"big-{i}"), f"big-{i} Running")
    up.ok("apply", "-f", "-", input=pod_manifest("waiting", cpu="3"))
    message = eventually(lambda: unschedulable_message(up, "waiting"), "the Unschedulable condition")
    assert message == "0/3 nodes are available: 3 Insufficient cpu. " \
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    assert get_pod(up, "waiting")["spec"].get("nodeName") is None
    failed = eventually(lambda: events_for(up, "waiting", "FailedScheduling"), "a FailedScheduling event")
    assert failed[0]["type"] == "Warning" and failed[0]["message"] == message
    up.ok("delete", "pod", "big-1")
    eventually(lambda: running_on(up, "waiting"), "the waiting pod Running once capacity freed", timeout=40)
    # Still one FailedScheduling Event object (repeats are a series, not new events).
    assert len(events_for(up, "waiting", "FailedScheduling")) == 1
    for name in ("big-0", "big-2", "waiting"):
        up.ok("delete", "pod", name, "--wait=false")


def test_node_selector_and_taints_are_respected(up: Cluster) -> None:
    up.ok("label", "node", "node-2", "disk=ssd")
    up.ok("taint", "node", "node-0", "dedicated=infra:NoSchedule")
    try:
        up.ok("apply", "-f", "-", input=pod_manifest("ssd", nodeSelector={"disk": "ssd"}))
        assert eventually(lambda: running_on(up, "ssd"), "ssd Running") == "node-2"
        up.ok("apply", "-f", "-", input=pod_manifest("nowhere", nodeSelector={"disk": "nvme"}))
        assert eventually(lambda: unschedulable_message(up, "nowhere"), "nowhere Unschedulable") == \
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, " \
            "2 node(s) didn't match Pod's node affinity/selector. " \
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        for i in range(4):
            up.ok("apply", "-f", "-", input=pod_manifest(f"avoid-{i}"))
        placed = [eventually(lambda i=i: running_on(up, f"avoid-{i}"), f"avoid-{i} Running") for i in range(4)]
        assert "node-0" not in placed
        up.ok("apply", "-f", "-", input=pod_manifest("tolerant", nodeName=None, tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
            nodeSelector={"kubernetes.io/hostname": "node-0"}))
        assert eventually(lambda: running_on(up, "tolerant"), "tolerant Running") == "node-0"
        # The label appearing makes the waiting pod schedulable (a node update moves it back).
        up.ok("label", "node", "node-1", "disk=nvme")
        assert eventually(lambda: running_on(up, "nowhere"), "nowhere Running", timeout=40) == "node-1"
    finally:
        up.ok("taint", "node", "node-0", "dedicated-")
        up.ok("label", "node", "node-2", "disk-")
        up.ok("label", "node", "node-1", "disk-")
        up.ok("delete", "pods", "--all", "--wait=false")


def test_pods_of_other_schedulers_are_left_alone(up: Cluster) -> None:
    up.ok("apply", "-f", "-", input=pod_manifest("other", schedulerName="my-scheduler"))
    up.ok("apply", "-f", "-", input=pod_manifest("mine"))
    eventually(lambda: running_on(up, "mine"), "mine Running")
    p = get_pod(up, "other")
    assert p["spec"].get("nodeName") is None and not p["status"].get("conditions")
    up.ok("delete", "pod", "other", "mine", "--wait=false")


def test_scheduler_as_its_own_process() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-scheduler-proc-")
    server = start_server(root, "apiserver")
    fleet: Optional[Fleet] = None
    sched: Optional[Fleet] = None
    try:
        fleet = start_fleet(server, "f", ["--nodes", "2", *FLEET_FLAGS])
        port = free_port()
        sched = _start_scheduler(server, root, ["--port", str(port), "--bind-address", "127.0.0.1",
                                                "--kube-api-qps", "100", "--kube-api-burst", "200"])
        for i in range(3):
            server.ok("apply", "-f", "-", input=pod_manifest(f"p{i}", cpu="1"))
        placed = [eventually(lambda i=i: running_on(server, f"p{i}"), f"p{i} Running") for i in range(3)]
        assert set(placed) <= {"node-0", "node-1"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'scheduler_schedule_attempts_total{profile="default-scheduler",result="scheduled"} 3.0' in text
        assert 'scheduler_pending_pods{queue="active"} 0.0' in text
        assert "scheduler_scheduling_attempt_duration_seconds_bucket" in text
    finally:
        for proc in (sched, fleet):
            if proc is not None:
                proc.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _start_scheduler(cluster: Cluster, root: str, args: List[str]) -> Fleet:
    import os
    import subprocess
    import sys

    log_path = os.path.join(root, "scheduler.log")
    proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", cluster.kubeconfig,
                             *args], stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    handle = Fleet(proc, log_path)
    eventually(lambda: "megaplane scheduler:" in handle.output() or proc.poll() is not None, "the scheduler to start",
               timeout=60)
    if proc.poll() is not None:
        raise RuntimeError(f"megaplane scheduler exited with {proc.returncode}:\n{handle.output()}")
    return handle


def test_bad_flags_are_refused() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", "/nonexistent",
                        "--percentage-of-nodes-to-score", "101"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--percentage-of-nodes-to-score" in r.stderr
