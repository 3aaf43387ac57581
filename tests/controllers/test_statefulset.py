"""StatefulSets in `megaplane up --nodes 3 --zones 3` (controllers and scheduler in the process), with kubectl and
the Python client. Order is observed on a watch of the set's pods; every wait polls for a state."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp

NS = "default"
UP_FLAGS = ["--nodes", "3", "--zones", "3", "--pod-startup-latency", "300ms", "--node-lease-duration-seconds", "10",
            "--controllers", "statefulset", "--scheduler"]
HASH = "controller-revision-hash"


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-statefulset-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def stateful_set(name: str, replicas: int, **spec: Any) -> Dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "db", "image": "db:1"}]}}, **spec}}


def apply(up: Cluster, obj: Dict[str, Any]) -> None:
    up.ok("apply", "-f", "-", input=json.dumps(obj))


def rollout(up: Cluster, name: str) -> str:
    r = up.kubectl("rollout", "status", f"sts/{name}", "--timeout=90s", timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def live_pods(up: Cluster, name: str) -> Dict[str, Dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in get(up, "pods", "-n", NS, "-l", f"app={name}")["items"]
            if not p["metadata"].get("deletionTimestamp")}


def ready(pod: Any) -> bool:
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                                 for c in pod.status.conditions or ())


class PodLog:
    """What a watch of the set's pods saw, in order: (event, pod name, ready) and the ready pods at each step."""

    def __init__(self, core: kubernetes.client.CoreV1Api, app: str) -> None:
        self.events: List[Tuple[str, str, bool, List[str]]] = []
        self._ready: Dict[str, bool] = {}
        self._stop = threading.Event()
        self._w = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(core, app), daemon=True)
        self._thread.start()

    def _run(self, core: kubernetes.client.CoreV1Api, app: str) -> None:
        for event in self._w.stream(core.list_namespaced_pod, NS, label_selector=f"app={app}", timeout_seconds=120):
            pod = event["object"]
            name = pod.metadata.name
            if event["type"] == "DELETED":
                self._ready.pop(name, None)
            else:
                self._ready[name] = ready(pod) and not pod.metadata.deletion_timestamp
            self.events.append((event["type"], name, self._ready.get(name, False),
                                sorted(n for n, r in self._ready.items() if r)))
            if self._stop.is_set():
                break

    def stop(self, up: Cluster, app: str) -> None:
        self._stop.set()
        up.ok("label", "pods", "-n", NS, "-l", f"app={app}", "nudge=1", "--overwrite")  # wake the watch
        self._thread.join(30)
        self._w.stop()

    def first(self, etype: str, name: str) -> Optional[int]:
        return next((i for i, e in enumerate(self.events) if e[0] == etype and e[1] == name), None)


def test_ordered_ready_creates_one_at_a_time_in_order(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    seen = PodLog(core, "web")
    apply(up, stateful_set("web", 3))
    out = rollout(up, "web")
    assert "partitioned roll out complete" in out or "rolling update complete" in out
    seen.stop(up, "web")
    pods = live_pods(up, "web")
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    # web-i is created only once web-0 .. web-(i-1) are Running and Ready.
    for i in (1, 2):
        at = seen.first("ADDED", f"web-{i}")
        assert at is not None
        assert [f"web-{j}" for j in range(i)] == [n for n in seen.events[at - 1][3] if n < f"web-{i}"], seen.events
    sts = get(up, "sts", "web", "-n", NS)
    (rev,) = get(up, "controllerrevisions", "-n", NS, "-l", "app=web")["items"]
    for i in range(3):
        p = pods[f"web-{i}"]
        assert p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == str(i)
        assert p["metadata"]["labels"][HASH] == rev["metadata"]["name"]
        assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == (f"web-{i}", "web")
        assert p["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
    st = sts["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"], st["currentReplicas"],
            st["updatedReplicas"]) == (3, 3, 3, 3, 3)
    assert st["currentRevision"] == st["updateRevision"] == rev["metadata"]["name"]
    assert st["observedGeneration"] == sts["metadata"]["generation"]


def test_scale_down_goes_in_reverse_order(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    apply(up, stateful_set("down", 3))
    rollout(up, "down")
    seen = PodLog(core, "down")
    eventually(lambda: len(seen.events) >= 3, "the watch's initial pods")
    up.ok("scale", "sts", "down", "--replicas=1")
    eventually(lambda: sorted(live_pods(up, "down")) == ["down-0"], "scale-down to down-0")
    eventually(lambda: seen.first("DELETED", "down-1") is not None, "down-1 gone")
    seen.stop(up, "down")
    d2, d1 = seen.first("DELETED", "down-2"), seen.first("DELETED", "down-1")
    assert d2 is not None and d1 is not None and d2 < d1  # the highest ordinal leaves first
    up.ok("scale", "sts", "down", "--replicas=2")
    rollout(up, "down")
    assert sorted(live_pods(up, "down")) == ["down-0", "down-1"]


def test_parallel_creates_all_at_once(up: Cluster) -> None:
    apply(up, stateful_set("par", 4, podManagementPolicy="Parallel"))
    # Parallel does not wait for readiness: all four pods exist before any has to be ready.
    eventually(lambda: sorted(live_pods(up, "par")) == ["par-0", "par-1", "par-2", "par-3"], "four pods")
    rollout(up, "par")


def test_rolling_update_with_partition_goes_highest_first(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    apply(up, stateful_set("roll", 3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    rollout(up, "roll")
    old_rev = get(up, "sts", "roll", "-n", NS)["status"]["currentRevision"]
    seen = PodLog(core, "roll")
    eventually(lambda: len(seen.events) >= 3, "the watch's initial pods")
    up.ok("set", "image", "sts/roll", "db=db:2")
    assert "partitioned roll out complete: 2 new pods have been updated" in rollout(up, "roll")
    seen.stop(up, "roll")
    pods = live_pods(up, "roll")
    images = {n: p["spec"]["containers"][0]["image"] for n, p in pods.items()}
    assert images == {"roll-0": "db:1", "roll-1": "db:2", "roll-2": "db:2"}
    d2, d1 = seen.first("DELETED", "roll-2"), seen.first("DELETED", "roll-1")
    assert d2 is not None and d1 is not None and d2 < d1
    assert seen.first("DELETED", "roll-0") is None  # below the partition: untouched
    st = get(up, "sts", "roll", "-n", NS)["status"]
    assert st["currentRevision"] == old_rev != st["updateRevision"]
    assert (st["currentReplicas"], st["updatedReplicas"]) == (1, 2)
    assert pods["roll-0"]["metadata"]["labels"][HASH] == old_rev
    assert pods["roll-2"]["metadata"]["labels"][HASH] == st["updateRevision"]
    # Partition 0 finishes the roll; then the current revision is the update revision.
    up.ok("patch", "sts", "roll", "-n", NS, "-p", json.dumps({"spec": {"updateStrategy": {
        "rollingUpdate": {"partition": 0}}}}))
    # kubectl reports any set with a partition (0 included) as partitioned.
    assert "partitioned roll out complete: 3 new pods have been updated" in rollout(up, "roll")
    st = eventually(lambda: (lambda s: s if s.get("currentRevision") == s.get("updateRevision") else None)(
        get(up, "sts", "roll", "-n", NS)["status"]), "the current revision caught up")
    assert st["currentReplicas"] == 3
    revs = sorted(r["revision"] for r in get(up, "controllerrevisions", "-n", NS, "-l", "app=roll")["items"])
    assert revs == [1, 2]
    history = up.ok("rollout", "history", "sts/roll")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]


def test_on_delete_keeps_pods_until_deleted(up: Cluster) -> None:
    apply(up, stateful_set("od", 2, updateStrategy={"type": "OnDelete"}))
    eventually(lambda: get(up, "sts", "od", "-n", NS).get("status", {}).get("readyReplicas") == 2, "2 ready")
    up.ok("set", "image", "sts/od", "db=db:2")
    st = eventually(lambda: (lambda s: s if s.get("observedGeneration") == 2 else None)(
        get(up, "sts", "od", "-n", NS)["status"]), "generation 2 observed")
    assert st["currentRevision"] != st["updateRevision"]
    assert {p["spec"]["containers"][0]["image"] for p in live_pods(up, "od").values()} == {"db:1"}
    old_uid = live_pods(up, "od")["od-1"]["metadata"]["uid"]
    up.ok("delete", "pod", "od-1", "-n", NS, "--wait=false")
    eventually(lambda: (lambda p: p is not None and p["metadata"]["uid"] != old_uid
                        and p["spec"]["containers"][0]["image"] == "db:2")(live_pods(up, "od").get("od-1")),
               "od-1 made again at the new revision")
    assert live_pods(up, "od")["od-0"]["spec"]["containers"][0]["image"] == "db:1"


def test_volume_claim_templates_are_accepted_without_claims(up: Cluster) -> None:
    apply(up, stateful_set("vol", 1, volumeClaimTemplates=[{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]))
    rollout(up, "vol")
    pod = live_pods(up, "vol")["vol-0"]
    assert not [v for v in pod["spec"].get("volumes") or () if "persistentVolumeClaim" in v]
