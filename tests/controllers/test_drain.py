"""`kubectl drain` within a PodDisruptionBudget, and the disruption controller's status, on `megaplane up --nodes 3`.

The real kubectl drives the real control plane (scheduler, ReplicaSet,
Deployment and disruption controllers, the simulated fleet): drain cordons
the node, evicts through pods/eviction, retries each 429 after 5 s and
waits for the pods to be gone; the PDB's budget holds throughout (a watch
records the fewest ready pods seen). The disruption controller's own rules
(percentages over the owners' scale, fail-safe, disruptedPods expiry, stale
DisruptionTarget conditions) are checked through the PDB status it writes;
the timeouts (2 minutes upstream) are shortened by running a second
controller in the test process against the same API server. Every wait
polls for a state.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from typing import Any, Dict, Iterator, List, Optional

import kubernetes
import pytest

from megaplane.client import Client, HTTPTransport
from megaplane.controllers.disruption import DisruptionController
from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp

NS = "default"
# The controllers drain needs (named, so the test does not depend on the rest of the catalog).
# Pods start 2 s after binding: a replacement cannot be Ready before the racing evictions were refused.
UP_FLAGS = ["--nodes", "3", "--pod-startup-latency", "2s", "--node-lease-duration-seconds", "10",
            "--controllers", "namespace,serviceaccount,replicaset,deployment,disruption", "--scheduler"]

Obj = Dict[str, Any]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-drain-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def is_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or ())


def ready_pods(up: Cluster, app: str) -> List[Obj]:
    pods = get(up, "pods", "-n", NS, "-l", f"app={app}")["items"]
    return [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]


def pdb_status(up: Cluster, name: str) -> Obj:
    status: Obj = get(up, "pdb", name, "-n", NS).get("status") or {}
    return status


def deployment(up: Cluster, name: str, replicas: int, template_spec: Optional[Obj] = None) -> None:
    spec = template_spec or {"containers": [{"name": "c", "image": "nginx"}]}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}
    up.ok("apply", "-f", "-", input=json.dumps(body))


class ReadyWatcher:
    """Follows the app's pods by watch and records the fewest ready, not-deleting pods seen after start."""

    def __init__(self, up: Cluster, app: str) -> None:
        self.core = kubernetes.client.CoreV1Api(up.api_client())
        self.app = app
        self.ready: Dict[str, bool] = {}
        self.fewest: Optional[int] = None
        self._stop = threading.Event()
        listing = self.core.list_namespaced_pod(NS, label_selector=f"app={app}")
        for p in listing.items:
            self.ready[p.metadata.name] = self._healthy(p)
        self.fewest = sum(self.ready.values())
        self._rv = listing.metadata.resource_version
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _healthy(p: Any) -> bool:
        if p.metadata.deletion_timestamp:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or ()))

    def _run(self) -> None:
        w = kubernetes.watch.Watch()
        while not self._stop.is_set():
            for ev in w.stream(self.core.list_namespaced_pod, NS, label_selector=f"app={self.app}",
                               resource_version=self._rv, timeout_seconds=2):
                pod = ev["object"]
                self._rv = pod.metadata.resource_version
                if ev["type"] == "DELETED":
                    self.ready.pop(pod.metadata.name, None)
                else:
                    self.ready[pod.metadata.name] = self._healthy(pod)
                count = sum(self.ready.values())
                self.fewest = count if self.fewest is None else min(self.fewest, count)
                if self._stop.is_set():
                    break

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_drain_evicts_within_the_budget_and_uncordon(up: Cluster) -> None:
    app = "drained"
    # All three replicas on node-0: the other nodes are cordoned while they are placed.
    up.ok("cordon", "node-1")
    up.ok("cordon", "node-2")
    deployment(up, app, 3, {"containers": [{"name": "c", "image": "nginx", "volumeMounts": [
        {"name": "scratch", "mountPath": "/scratch"}]}], "volumes": [{"name": "scratch", "emptyDir": {}}]})
    up.ok("create", "pdb", app, f"--selector=app={app}", "--min-available=2")
    pods = eventually(lambda: (lambda ps: ps if len(ps) == 3 else None)(ready_pods(up, app)), "3 ready pods", 60)
    assert {p["spec"]["nodeName"] for p in pods} == {"node-0"}
    status = eventually(lambda: (lambda s: s if s.get("disruptionsAllowed") == 1 else None)(pdb_status(up, app)),
                        "the budget to allow one disruption")
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (3, 2, 3)
    cond = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")
    # A DaemonSet's pod on the node (its controller may or may not run here: the pod is made by hand).
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
              "metadata": {"labels": {"app": "agent"}},
              "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-0"},
                       "containers": [{"name": "a", "image": "agent"}]}}}}
    up.ok("apply", "-f", "-", input=json.dumps(ds))
    ds_uid = get(up, "daemonset", "agent", "-n", NS)["metadata"]["uid"]
    agent = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "agent-node-0", "namespace": NS, "labels": {"app": "agent"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": ds_uid,
                             "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"nodeName": "node-0", "containers": [{"name": "a", "image": "agent"}]}}
    up.ok("apply", "-f", "-", input=json.dumps(agent))
    up.ok("uncordon", "node-1")
    up.ok("uncordon", "node-2")

    # Without the flags drain refuses (after cordoning), and evicts nothing.
    refused = up.kubectl("drain", "node-0", "--timeout=60s", timeout=90)
    assert refused.returncode != 0
    assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in refused.stderr
    assert "cannot delete Pods with local storage (use --delete-emptydir-data to override)" in refused.stderr
    assert get(up, "node", "node-0")["spec"].get("unschedulable") is True
    assert {p["metadata"]["name"] for p in ready_pods(up, app)} == {p["metadata"]["name"] for p in pods}

    watcher = ReadyWatcher(up, app)
    try:
        out = up.kubectl("drain", "node-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s",
                         timeout=180)
    finally:
        watcher.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "node/node-0 drained" in out.stdout
    for p in pods:
        assert f"pod/{p['metadata']['name']} evicted" in out.stdout
    # One disruption at a time: the others were told to wait, and retried.
    assert ("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."
            in out.stderr), out.stderr
    assert "Warning: ignoring DaemonSet-managed Pods: default/agent-node-0" in out.stderr
    assert watcher.fewest is not None and watcher.fewest >= 2, watcher.fewest

    # The replacements run elsewhere, the DaemonSet's pod stays, and the budget recovers.
    now = eventually(lambda: (lambda ps: ps if len(ps) == 3 else None)(ready_pods(up, app)), "3 ready again", 60)
    assert all(p["spec"]["nodeName"] in ("node-1", "node-2") for p in now)
    assert not {p["metadata"]["name"] for p in now} & {p["metadata"]["name"] for p in pods}
    assert get(up, "pod", "agent-node-0", "-n", NS)["spec"]["nodeName"] == "node-0"
    eventually(lambda: (lambda s: s.get("disruptionsAllowed") == 1 and not s.get("disruptedPods"))(
        pdb_status(up, app)), "the budget back at one, no disruptions pending")

    up.ok("uncordon", "node-0")
    assert not get(up, "node", "node-0")["spec"].get("unschedulable")
    up.ok("delete", "deployment", app)
    up.ok("delete", "pod", "agent-node-0", "--grace-period=0")


def test_percentages_count_the_controllers_scale(up: Cluster) -> None:
    app = "scaled"
    deployment(up, app, 4)
    up.ok("create", "pdb", f"{app}-max", f"--selector=app={app}", "--max-unavailable=50%")
    up.ok("create", "pdb", f"{app}-min", f"--selector=app={app}", "--min-available=75%")
    eventually(lambda: len(ready_pods(up, app)) == 4, "4 ready pods", 60)

    def counts(name: str) -> Any:
        s = pdb_status(up, name)
        return (s.get("expectedPods"), s.get("desiredHealthy"), s.get("currentHealthy"), s.get("disruptionsAllowed"))

    eventually(lambda: counts(f"{app}-max") == (4, 2, 4, 2), "maxUnavailable 50% of 4")
    eventually(lambda: counts(f"{app}-min") == (4, 3, 4, 1), "minAvailable 75% of 4")
    # The scale is the Deployment's spec: it counts before the pods exist.
    up.ok("scale", "deployment", app, "--replicas=6")
    max_now = eventually(lambda: (lambda c: c if c[0] == 6 else None)(counts(f"{app}-max")), "expected 6")
    assert max_now[1] == 3  # 6 - ceil(50% of 6)
    eventually(lambda: counts(f"{app}-max") == (6, 3, 6, 3), "six healthy of six", 60)
    eventually(lambda: counts(f"{app}-min") == (6, 5, 6, 1), "minAvailable 75% of 6 rounds up to 5")
    up.ok("delete", "deployment", app)


def test_a_statefulsets_scale_counts_for_percentages(up: Cluster) -> None:
    """The StatefulSet controller is not running here: its pods are made by hand, its scale is its spec."""
    app = "ordinal"
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": app, "namespace": NS},
           "spec": {"replicas": 4, "serviceName": app, "selector": {"matchLabels": {"app": app}},
                    "template": {"metadata": {"labels": {"app": app}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    up.ok("apply", "-f", "-", input=json.dumps(sts))
    uid = get(up, "statefulset", app, "-n", NS)["metadata"]["uid"]
    for i in range(2):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{app}-{i}", "namespace": NS, "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": app, "uid": uid,
                                 "controller": True}]},
            "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "nginx"}]}}
        up.ok("apply", "-f", "-", input=json.dumps(pod))
    up.ok("create", "pdb", app, f"--selector=app={app}", "--max-unavailable=25%")
    eventually(lambda: len(ready_pods(up, app)) == 2, "the 2 pods running")

    def counts() -> Any:
        s = pdb_status(up, app)
        return (s.get("expectedPods"), s.get("desiredHealthy"), s.get("currentHealthy"), s.get("disruptionsAllowed"))

    eventually(lambda: counts() == (4, 3, 2, 0), "expected 4 from the StatefulSet's scale, 2 healthy: none allowed")
    cond = next(c for c in pdb_status(up, app)["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")
    for i in range(2):
        up.ok("delete", "pod", f"{app}-{i}", "--grace-period=0")


def test_a_pod_whose_controller_cannot_be_found_fails_safe(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    app = "orphaned"
    up.ok("create", "pdb", app, f"--selector=app={app}", "--max-unavailable=1")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{app}-0", "namespace": NS, "labels": {"app": app},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone",
                             "uid": "00000000-0000-0000-0000-000000000000", "controller": True}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]}}
    up.ok("apply", "-f", "-", input=json.dumps(pod))

    def failed() -> Optional[Obj]:
        s = pdb_status(up, app)
        cond = next((c for c in s.get("conditions") or () if c["type"] == "DisruptionAllowed"), None)
        return cond if cond and cond["reason"] == "SyncFailed" else None

    cond = eventually(failed, "the SyncFailed condition")
    assert cond["status"] == "False" and cond["message"] == f'found no controllers for pod "{app}-0"'
    assert pdb_status(up, app)["disruptionsAllowed"] == 0
    events = eventually(lambda: [e for e in get(up, "events", "-n", NS, "--field-selector",
                                                 f"involvedObject.name={app},involvedObject.kind=PodDisruptionBudget")[
        "items"] if e["reason"] == "CalculateExpectedPodCountFailed"], "the controller's Warning event")
    assert events[0]["type"] == "Warning" and events[0]["source"]["component"] == "controllermanager"
    assert events[0]["message"] == f'Failed to calculate the number of expected pods: found no controllers for pod "{app}-0"'
    up.ok("delete", "pod", f"{app}-0", "--grace-period=0")
    up.ok("delete", "pdb", app)


# -- the timeouts, with a second controller in the test process ------------------------------------


def _stamp(seconds_ago: float) -> str:
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _with_short_timeouts(up: Cluster, check: Any) -> None:
    async with Client(HTTPTransport(up.url, qps=0)) as client:
        controller = DisruptionController(client, deletion_timeout=6.0, stale_pod_disruption_timeout=3.0)
        await controller.start()
        try:
            await check(client)
        finally:
            await controller.stop()


async def _poll(probe: Any, what: str, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_disrupted_pods_expire_and_stale_disruption_targets_are_reset(up: Cluster) -> None:
    app = "expiring"
    deployment(up, app, 2)
    up.ok("create", "pdb", app, f"--selector=app={app}", "--min-available=1")
    pods = eventually(lambda: (lambda ps: ps if len(ps) == 2 else None)(ready_pods(up, app)), "2 ready pods", 60)
    eventually(lambda: pdb_status(up, app).get("disruptionsAllowed") == 1, "one disruption allowed")
    # A lone pod (no node: nothing else writes its status) that an eviction marked but never deleted.
    lone = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "marked", "namespace": NS},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    up.ok("apply", "-f", "-", input=json.dumps(lone))

    async def check(client: Client) -> None:
        pdbs = client.resource("policy/v1", "poddisruptionbudgets")
        podsapi = client.resource("pods")
        # An eviction approved just now whose pod is still there: not healthy until the entry expires (6 s here).
        pdb = await pdbs.get(app, NS)
        victim = pods[0]["metadata"]["name"]
        pdb["status"]["disruptedPods"] = {victim: _stamp(0)}
        await pdbs.update_status(pdb)

        async def counted_out() -> bool:
            s = (await pdbs.get(app, NS))["status"]
            return s.get("currentHealthy") == 1 and s.get("disruptionsAllowed") == 0 and victim in (
                s.get("disruptedPods") or {})

        async def expired() -> bool:
            s = (await pdbs.get(app, NS))["status"]
            return s.get("currentHealthy") == 2 and s.get("disruptionsAllowed") == 1 and not s.get("disruptedPods")

        await _poll(counted_out, "the disrupted pod counted out")
        await _poll(expired, "the entry to expire")
        marked = await podsapi.get("marked", NS)
        marked["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                           "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                                           "lastTransitionTime": _stamp(0)}]
        await podsapi.update_status(marked)

        async def reset() -> Optional[Obj]:
            p = await podsapi.get("marked", NS)
            c = next((c for c in p["status"].get("conditions") or () if c["type"] == "DisruptionTarget"), None)
            return c if c is not None and c["status"] == "False" else None

        await _poll(reset, "the stale DisruptionTarget reset")

    asyncio.run(_with_short_timeouts(up, check))
    up.ok("delete", "pod", "marked", "--grace-period=0")
    up.ok("delete", "deployment", app)
