"""ReplicaSets and Deployments in `megaplane up --nodes 3`, driven with kubectl and the Python client.

Pods that must run name a fleet node in their template (`spec.nodeName`),
which is legal and needs no scheduler; the other tests check only what the
controllers own (sets, pods, owner references, labels, counts), so they
pass with or without a scheduler in `up`. Every wait polls for a state.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from typing import Any, Dict, Iterator, List, Optional

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

NS = "default"
NODE = "node-0"
# The whole control plane (tests/api's clusters run only the API server's own controllers).
UP_FLAGS = ["--nodes", "3", "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10",
            "--controllers", "*", "--scheduler"]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-workloads-")
    # `megaplane up` with its defaults (every controller), not tests/api's bare API server.
    c = start_server(root, "up", UP_FLAGS)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


@pytest.fixture(scope="module")
def apps(up: Cluster) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(up.api_client())


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def owned_pods(up: Cluster, rs_uid: str, *, active: bool = True) -> List[Dict[str, Any]]:
    pods = get(up, "pods", "-n", NS)["items"]
    out = [p for p in pods if any(r.get("uid") == rs_uid and r.get("controller")
                                  for r in p["metadata"].get("ownerReferences") or ())]
    return [p for p in out if not p["metadata"].get("deletionTimestamp")] if active else out


def replica_sets(up: Cluster, app: str) -> List[Dict[str, Any]]:
    return sorted(get(up, "rs", "-n", NS, "-l", f"app={app}")["items"], key=lambda rs: rs["metadata"]["name"])


def on_node(up: Cluster, name: str, replicas: int) -> None:
    up.ok("create", "deployment", name, "--image=nginx", f"--replicas={replicas}")
    up.ok("patch", "deployment", name, "-p", json.dumps({"spec": {"template": {"spec": {"nodeName": NODE}}}}))


def rollout_done(up: Cluster, name: str) -> None:
    r = up.kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s", timeout=90)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "successfully rolled out" in r.stdout


def test_create_deployment_makes_a_hashed_replica_set_and_owned_pods(up: Cluster) -> None:
    up.ok("create", "deployment", "web", "--image=nginx", "--replicas=2")
    d = get(up, "deployment", "web")
    rss = eventually(lambda: replica_sets(up, "web"), "the ReplicaSet")
    assert len(rss) == 1
    rs = rss[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}" and set(h) <= set("456789bcdf")
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": d["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]
    annotations = rs["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "1"
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "3"  # 2 + 25% rounded up
    pods = eventually(lambda: (lambda ps: ps if len(ps) == 2 else None)(owned_pods(up, rs["metadata"]["uid"])),
                      "two pods of the set")
    for p in pods:
        assert p["metadata"]["name"].startswith(f"web-{h}-")
        assert p["metadata"]["generateName"] == f"web-{h}-"
        assert p["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
        assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                     "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                                                     "controller": True, "blockOwnerDeletion": True}]
    eventually(lambda: get(up, "rs", rs["metadata"]["name"]).get("status", {}).get("replicas") == 2,
               "the set's status counting its pods")
    d = eventually(lambda: (lambda d: d if d["metadata"].get("annotations", {}).get(
        "deployment.kubernetes.io/revision") == "1" and d["status"].get("observedGeneration") else None)(
        get(up, "deployment", "web")), "the Deployment's revision")
    assert d["status"]["updatedReplicas"] == 2 and d["status"]["replicas"] == 2


def test_rollout_status_succeeds_once_pods_run(up: Cluster) -> None:
    on_node(up, "run", 2)
    rollout_done(up, "run")
    d = get(up, "deployment", "run")
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (2, 2, 2, 2)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    new = [rs for rs in replica_sets(up, "run") if rs["spec"]["replicas"]]
    assert len(new) == 1
    pods = owned_pods(up, new[0]["metadata"]["uid"])
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"  # the nodeName patch rolled


def test_scale_up_and_down(up: Cluster) -> None:
    on_node(up, "scaled", 1)
    rollout_done(up, "scaled")
    (rs,) = [rs for rs in replica_sets(up, "scaled") if rs["spec"]["replicas"]]
    up.ok("scale", "deployment", "scaled", "--replicas=5")
    rollout_done(up, "scaled")
    assert len(owned_pods(up, rs["metadata"]["uid"])) == 5
    up.ok("scale", "deployment", "scaled", "--replicas=2")
    rollout_done(up, "scaled")
    eventually(lambda: len(owned_pods(up, rs["metadata"]["uid"])) == 2, "scale-down to 2 pods")
    assert get(up, "rs", rs["metadata"]["name"])["metadata"]["annotations"][
        "deployment.kubernetes.io/desired-replicas"] == "2"


def test_set_image_rolls_a_new_revision_and_undo_goes_back(up: Cluster) -> None:
    on_node(up, "img", 3)
    rollout_done(up, "img")
    (first,) = [rs for rs in replica_sets(up, "img") if rs["spec"]["replicas"]]
    up.ok("set", "image", "deployment/img", "nginx=nginx:1.27")
    rollout_done(up, "img")
    rss = {rs["metadata"]["name"]: rs for rs in replica_sets(up, "img")}
    (second,) = [rs for rs in rss.values() if rs["spec"]["replicas"]]
    assert second["metadata"]["name"] != first["metadata"]["name"]
    assert second["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert rss[first["metadata"]["name"]]["spec"]["replicas"] == 0
    assert second["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert get(up, "deployment", "img")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    history = up.ok("rollout", "history", "deployment/img")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2", "3"]
    up.ok("rollout", "undo", "deployment/img")
    rollout_done(up, "img")
    back = get(up, "rs", first["metadata"]["name"])
    assert back["spec"]["replicas"] == 3
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert get(up, "rs", second["metadata"]["name"])["spec"]["replicas"] == 0


def test_rolling_update_stays_within_surge(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    up.ok("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "surge", "namespace": NS},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "surge"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "surge"}},
                              "spec": {"nodeName": NODE, "containers": [{"name": "nginx", "image": "nginx"}]}}}}))
    rollout_done(up, "surge")
    most: List[int] = []
    stop = threading.Event()

    def watch_counts() -> None:
        w = kubernetes.watch.Watch()
        live: Dict[str, bool] = {}
        for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=surge", timeout_seconds=60):
            pod = event["object"]
            if event["type"] == "DELETED" or pod.metadata.deletion_timestamp:
                live.pop(pod.metadata.name, None)
            else:
                live[pod.metadata.name] = True
            most.append(len(live))
            if stop.is_set():
                w.stop()

    t = threading.Thread(target=watch_counts, daemon=True)
    t.start()
    eventually(lambda: most, "the watch's initial pods")
    up.ok("set", "image", "deployment/surge", "nginx=nginx:1.27")
    rollout_done(up, "surge")
    stop.set()
    up.ok("label", "pods", "-l", "app=surge", "nudge=1")  # one more pod event so the watch thread sees stop
    t.join(30)
    assert not t.is_alive()
    assert max(most) <= 5, f"more than replicas + maxSurge pods at once: {most}"


def test_deleted_pods_are_replaced(up: Cluster) -> None:
    on_node(up, "heal", 3)
    rollout_done(up, "heal")
    (rs,) = [rs for rs in replica_sets(up, "heal") if rs["spec"]["replicas"]]
    before = {p["metadata"]["name"] for p in owned_pods(up, rs["metadata"]["uid"])}
    victims = sorted(before)[:2]
    up.ok("delete", "pod", *victims, "--wait=false")

    def replaced() -> Optional[set]:
        now = {p["metadata"]["name"] for p in owned_pods(up, rs["metadata"]["uid"])}
        return now if len(now) == 3 and not now & set(victims) else None

    eventually(replaced, "two new pods for the two deleted")
    rollout_done(up, "heal")


def test_replica_set_adopts_matching_orphans_and_releases_relabelled_pods(up: Cluster) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    up.ok("apply", "-f", "-", input=json.dumps(orphan))
    up.ok("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "adopt"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "adopt"}},
                 "template": {"metadata": {"labels": {"app": "adopt"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
    rs = get(up, "rs", "adopt")
    pods = eventually(lambda: (lambda ps: ps if len(ps) == 2 else None)(owned_pods(up, rs["metadata"]["uid"])),
                      "the orphan adopted and one pod created")
    assert "orphan" in {p["metadata"]["name"] for p in pods}
    up.ok("label", "pod", "orphan", "app=elsewhere", "--overwrite")

    def released() -> Optional[List[Dict[str, Any]]]:
        ps = owned_pods(up, rs["metadata"]["uid"])
        mine = {p["metadata"]["name"] for p in ps}
        return ps if len(ps) == 2 and "orphan" not in mine else None

    eventually(released, "the relabelled pod released and replaced")
    assert not get(up, "pod", "orphan")["metadata"].get("ownerReferences")


def test_a_burst_creates_each_pod_once(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod(NS, limit=1).metadata.resource_version
    up.ok("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "burst"},
        "spec": {"replicas": 40, "selector": {"matchLabels": {"app": "burst"}},
                 "template": {"metadata": {"labels": {"app": "burst"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
    # Nudge the set while it creates: every update is a sync on a view that lags its own creates.
    for i in range(5):
        up.ok("annotate", "rs", "burst", f"nudge={i}", "--overwrite")
    eventually(lambda: get(up, "rs", "burst").get("status", {}).get("replicas") == 40, "40 pods counted")
    added = set()
    deleted = 0
    w = kubernetes.watch.Watch()
    for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=burst", resource_version=rv,
                          timeout_seconds=2):
        if event["type"] == "ADDED":
            added.add(event["object"].metadata.name)
        elif event["type"] == "DELETED":
            deleted += 1
    assert (len(added), deleted) == (40, 0)


def test_recreate_scales_the_old_set_to_zero_before_the_new_one(up: Cluster) -> None:
    up.ok("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "recreate", "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "recreate"}}, "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": {"app": "recreate"}},
                              "spec": {"nodeName": NODE, "containers": [{"name": "nginx", "image": "nginx"}]}}}}))
    rollout_done(up, "recreate")
    up.ok("set", "image", "deployment/recreate", "nginx=nginx:1.27")
    rollout_done(up, "recreate")
    rss = replica_sets(up, "recreate")
    assert sorted(rs["spec"]["replicas"] for rs in rss) == [0, 2]
    new = next(rs for rs in rss if rs["spec"]["replicas"])
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"


def test_paused_deployments_are_not_rolled_and_history_is_limited(up: Cluster) -> None:
    on_node(up, "paused", 1)
    up.ok("patch", "deployment", "paused", "-p", '{"spec":{"revisionHistoryLimit":1}}')
    rollout_done(up, "paused")
    up.ok("rollout", "pause", "deployment/paused")
    up.ok("set", "image", "deployment/paused", "nginx=nginx:1.27")
    eventually(lambda: any(c["reason"] == "DeploymentPaused" for c in get(up, "deployment", "paused")["status"][
        "conditions"]), "the DeploymentPaused condition")
    assert all(rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx" for rs in replica_sets(up, "paused"))
    up.ok("rollout", "resume", "deployment/paused")
    rollout_done(up, "paused")
    up.ok("set", "image", "deployment/paused", "nginx=nginx:1.28")
    rollout_done(up, "paused")
    # revisionHistoryLimit 1: one old set kept besides the new one
    eventually(lambda: len(replica_sets(up, "paused")) == 2, "old sets beyond the history limit deleted")
