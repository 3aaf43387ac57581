"""The control plane's own outage is never the nodes' fault: SIGSTOP the API server or the controller-manager for 60 s.

Three real processes: `megaplane apiserver`, `megaplane controller-manager`
(node lifecycle and taint eviction, upstream's default grace periods: a
50 s grace, a 5 s monitor period) and `megaplane fleet` (kubelet's 40 s
Leases renewed every 10 s). One of the first two is stopped for 60 s,
longer than the grace period, and continued. Upstream's controller would
mark every node NotReady on the first pass after the stall (its probe times
are a minute old) and, once the pods' tolerations ran out, evict them.
Here: zero NotReady transitions (every Ready condition keeps its
lastTransitionTime), no taint, no NodeNotReady or TaintManagerEviction
event, every pod still there. The pods tolerate unreachable for only 5 s,
so a wrong taint would evict them within the observation.

The controller-manager runs with --leader-elect=false: with an election,
a controller-manager stopped past its lease exits on resume as upstream's
does ('leaderelection lost') and comes back fresh; this test is about the
controller judging its own blindness, which it has to get right either way.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Tuple

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.conftest import SCALE
from tests.fleet.conftest import Fleet, eventually, start_fleet, start_server

NODES = 20 if SCALE == "ci" else 100
PODS = 10
STALL = 60.0
CANARY = ("kube-system", "node-lifecycle-controller")


class Manager:
    def __init__(self, proc: subprocess.Popen, log_path: str) -> None:
        self.proc = proc
        self.log_path = log_path

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_manager(cluster: Cluster) -> Manager:
    log_path = os.path.join(cluster.root, "controller-manager.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", "-v", "1", "controller-manager", "--kubeconfig", cluster.kubeconfig,
         "--controllers", "nodelifecycle,tainteviction", "--leader-elect=false"],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child holds its own descriptor
    manager = Manager(proc, log_path)
    try:
        eventually(lambda: proc.poll() is not None or "controllers" in manager.output(),
                   "the controller-manager to start", timeout=60)
    except AssertionError:
        manager.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"controller-manager exited with {proc.returncode}:\n{manager.output()}")
    return manager


@pytest.fixture
def plane() -> Iterator[Tuple[Cluster, Fleet, Manager]]:
    root = tempfile.mkdtemp(prefix="megaplane-stall-")
    api = start_server(root, "apiserver", ["--default-unreachable-toleration-seconds", "5",
                                           "--default-not-ready-toleration-seconds", "5"])
    fleet = manager = None
    try:
        fleet = start_fleet(api, "stall", ["--nodes", str(NODES), "--zones", "2", "--pod-startup-latency", "100ms"])
        manager = start_manager(api)
        yield api, fleet, manager
    finally:
        for part in (manager, fleet):
            if part is not None:
                part.stop()
        api.proc.send_signal(signal.SIGCONT)
        api.stop()
        shutil.rmtree(root, ignore_errors=True)


def _micro(value: object) -> datetime.datetime:
    assert isinstance(value, datetime.datetime)
    return value


def _canary_renewals(coord: kubernetes.client.CoordinationV1Api) -> str:
    lease = coord.read_namespaced_lease(CANARY[1], CANARY[0])
    return str(lease.spec.holder_identity)


def _ready_transitions(core: kubernetes.client.CoreV1Api) -> Dict[str, Tuple[str, datetime.datetime]]:
    out = {}
    for node in core.list_node().items:
        cond = next(c for c in node.status.conditions if c.type == "Ready")
        out[node.metadata.name] = (cond.status, cond.last_transition_time)
    return out


def _settled(api: Cluster) -> Tuple[kubernetes.client.CoreV1Api, kubernetes.client.CoordinationV1Api,
                                    Dict[str, Tuple[str, datetime.datetime]]]:
    core = kubernetes.client.CoreV1Api(api.api_client())
    coord = kubernetes.client.CoordinationV1Api(api.api_client())
    eventually(lambda: len(core.list_node().items) == NODES, f"{NODES} nodes", timeout=60)
    names = sorted(n.metadata.name for n in core.list_node().items)
    for i in range(PODS):
        core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                                               "spec": {"nodeName": names[i % len(names)],
                                                        "containers": [{"name": "c", "image": "nginx"}]}})
    eventually(lambda: len([p for p in core.list_namespaced_pod("default").items if p.status.phase == "Running"])
               == PODS, "the pods running", timeout=60)
    # The controller sees: its canary Lease comes back renewed (a new holder token each time).
    first = eventually(lambda: _canary_renewals(coord), "the node lifecycle controller's canary Lease", timeout=60)
    eventually(lambda: _canary_renewals(coord) != first, "the canary renewed", timeout=30)
    before = _ready_transitions(core)
    assert all(status == "True" for status, _ in before.values()), before
    return core, coord, before


def _renewed_since(coord: kubernetes.client.CoordinationV1Api, since: datetime.datetime) -> bool:
    leases = coord.list_namespaced_lease("kube-node-lease").items
    return len(leases) == NODES and all(_micro(x.spec.renew_time) > since for x in leases)


def _assert_nothing_happened(core: kubernetes.client.CoreV1Api, coord: kubernetes.client.CoordinationV1Api,
                             before: Dict[str, Tuple[str, datetime.datetime]], resumed: datetime.datetime,
                             manager: Manager) -> None:
    # Positive signals first: every node renewed after the stall, and the controller is back and seeing
    # (its canary renewed twice more).
    eventually(lambda: _renewed_since(coord, resumed), "every Lease renewed after the stall", timeout=60)
    token = _canary_renewals(coord)
    eventually(lambda: _canary_renewals(coord) != token, "the canary renewed after the stall", timeout=60)
    token = _canary_renewals(coord)
    eventually(lambda: _canary_renewals(coord) != token, "the canary renewed again", timeout=30)
    # Then four monitor periods (5 s each) and a 5 s toleration: a controller that held the stall against the
    # nodes marks them Unknown on its first pass, taints them and evicts their pods within this window.
    deadline = time.monotonic() + 25
    while True:
        after = _ready_transitions(core)
        assert after == before, {n: (before[n], after.get(n)) for n in before if after.get(n) != before[n]}
        tainted = [n.metadata.name for n in core.list_node().items if n.spec.taints]
        assert not tainted, tainted
        pods = [p for p in core.list_namespaced_pod("default").items if not p.metadata.deletion_timestamp]
        assert len(pods) == PODS, [p.metadata.name for p in pods]
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    reasons: List[str] = [e.reason for e in core.list_event_for_all_namespaces().items]
    assert "NodeNotReady" not in reasons and "TaintManagerEviction" not in reasons, reasons
    assert "could not observe the cluster" in manager.output()  # the controller saw its blindness and said so


@pytest.mark.slow
def test_api_server_stopped_60s_marks_no_node_not_ready_and_evicts_nothing(
        plane: Tuple[Cluster, Fleet, Manager]) -> None:
    api, fleet, manager = plane
    core, coord, before = _settled(api)
    api.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(STALL)  # the fault itself: the API server does not run for a minute
    finally:
        api.proc.send_signal(signal.SIGCONT)
    resumed = datetime.datetime.now(datetime.timezone.utc)
    _assert_nothing_happened(core, coord, before, resumed, manager)
    assert fleet.proc.poll() is None and manager.proc.poll() is None


@pytest.mark.slow
def test_controller_manager_stopped_60s_marks_no_node_not_ready_and_evicts_nothing(
        plane: Tuple[Cluster, Fleet, Manager]) -> None:
    api, fleet, manager = plane
    core, coord, before = _settled(api)
    manager.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(STALL)  # the fault itself: the controller-manager does not run for a minute
    finally:
        manager.proc.send_signal(signal.SIGCONT)
    resumed = datetime.datetime.now(datetime.timezone.utc)
    _assert_nothing_happened(core, coord, before, resumed, manager)
    assert fleet.proc.poll() is None and manager.proc.poll() is None
