"""DaemonSets in `megaplane up --nodes 3 --zones 3` (controllers and scheduler in the process), with kubectl and
the Python client; a second `megaplane fleet` process adds a node later. Every wait polls for a state."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp, start_fleet

NS = "default"
UP_FLAGS = ["--nodes", "3", "--zones", "3", "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10",
            "--controllers", "daemonset", "--scheduler"]
HASH = "controller-revision-hash"


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-daemonset-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def apps(up: Cluster) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(up.api_client())


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def daemon_set(name: str, **spec: Any) -> Dict[str, Any]:
    pod_spec = {"containers": [{"name": "agent", "image": "agent:1"}], **spec.pop("pod", {})}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}, **spec}}


def apply(up: Cluster, obj: Dict[str, Any]) -> None:
    up.ok("apply", "-f", "-", input=json.dumps(obj))


def live_pods(up: Cluster, name: str) -> List[Dict[str, Any]]:
    return [p for p in get(up, "pods", "-n", NS, "-l", f"app={name}")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def rollout(up: Cluster, name: str) -> str:
    r = up.kubectl("rollout", "status", f"ds/{name}", "--timeout=90s", timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def running_on(up: Cluster, name: str) -> Dict[str, Dict[str, Any]]:
    return {p["spec"].get("nodeName", ""): p for p in live_pods(up, name) if p["status"].get("phase") == "Running"}


def test_a_daemon_set_lands_on_every_node_and_on_a_node_added_later(up: Cluster) -> None:
    apply(up, daemon_set("agent"))
    assert "successfully rolled out" in rollout(up, "agent")
    nodes = sorted(n["metadata"]["name"] for n in get(up, "nodes")["items"])
    assert len(nodes) == 3
    pods = eventually(lambda: (lambda r: r if sorted(r) == nodes else None)(running_on(up, "agent")),
                      "one running pod per node")
    ds = get(up, "ds", "agent", "-n", NS)
    (rev,) = get(up, "controllerrevisions", "-n", NS, "-l", "app=agent")["items"]
    assert rev["metadata"]["name"] == f"agent-{rev['metadata']['labels'][HASH]}" and rev["revision"] == 1
    assert rev["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"
    table = up.ok("get", "controllerrevisions", "-n", NS, "-l", "app=agent").splitlines()
    assert table[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert table[1].split()[:3] == [rev["metadata"]["name"], "daemonset.apps/agent", "1"]
    for node, pod in pods.items():
        assert pod["metadata"]["generateName"] == "agent-"
        assert pod["metadata"]["labels"][HASH] == rev["metadata"]["labels"][HASH]
        assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
        # Bound by the scheduler through a required affinity on the node's name, as upstream creates them.
        assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
        keys = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
        assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")
                } <= keys
        assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys  # not hostNetwork
    st = ds["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"], st["numberAvailable"],
            st["updatedNumberScheduled"], st["numberMisscheduled"], st["observedGeneration"]) == (
        3, 3, 3, 3, 3, 0, ds["metadata"]["generation"])

    fleet = start_fleet(up, "late", ["--nodes", "1", "--node-index-start", "3", "--zones", "3",
                                     "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10"])
    try:
        late: List[str] = []
        late = eventually(lambda: (lambda n: n if len(n) == 4 else None)(
            sorted(n["metadata"]["name"] for n in get(up, "nodes")["items"])), "the fourth node")
        eventually(lambda: sorted(running_on(up, "agent")) == late, "a daemon pod on the late node", timeout=60)
        eventually(lambda: get(up, "ds", "agent", "-n", NS)["status"].get("numberAvailable") == 4,
                   "the status counting 4 nodes")
    finally:
        fleet.stop()
        # Gone for good: the later tests count three nodes (no node-lifecycle controller runs here).
        up.kubectl("delete", "node", *[n for n in late if n not in nodes])


def test_node_selector_and_taints_choose_the_nodes(up: Cluster) -> None:
    nodes = sorted(n["metadata"]["name"] for n in get(up, "nodes")["items"])[:3]
    up.ok("label", "node", nodes[0], "tier=edge", "--overwrite")
    up.ok("label", "node", nodes[1], "tier=edge", "--overwrite")
    up.ok("taint", "node", nodes[1], "dedicated=gpu:NoSchedule", "--overwrite")
    try:
        apply(up, daemon_set("edge", pod={"nodeSelector": {"tier": "edge"}}))
        rollout(up, "edge")
        assert sorted(running_on(up, "edge")) == [nodes[0]]
        assert get(up, "ds", "edge", "-n", NS)["status"]["desiredNumberScheduled"] == 1
        # Tolerating the taint makes the second node eligible.
        apply(up, daemon_set("edge", pod={"nodeSelector": {"tier": "edge"},
                                          "tolerations": [{"key": "dedicated", "operator": "Exists"}]}))
        rollout(up, "edge")
        eventually(lambda: sorted(running_on(up, "edge")) == nodes[:2], "pods on both edge nodes")
        # A label removed: the pod on that node is deleted (misscheduled until then).
        up.ok("label", "node", nodes[0], "tier-")
        eventually(lambda: sorted(p["spec"].get("nodeName") for p in live_pods(up, "edge")) == [nodes[1]],
                   "the pod on the unlabelled node deleted")
    finally:
        up.ok("taint", "node", nodes[1], "dedicated-")
        up.ok("label", "node", nodes[1], "tier-")


def test_rolling_update_replaces_pods_within_max_unavailable_and_keeps_revisions(up: Cluster) -> None:
    apply(up, daemon_set("roll", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))
    rollout(up, "roll")
    first = {p["metadata"]["name"] for p in live_pods(up, "roll")}
    up.ok("set", "image", "ds/roll", "agent=agent:2")
    assert "successfully rolled out" in rollout(up, "roll")
    pods = eventually(lambda: (lambda ps: ps if len(ps) == len(first) and all(
        p["spec"]["containers"][0]["image"] == "agent:2" for p in ps) else None)(live_pods(up, "roll")),
        "every pod on the new image")
    assert not first & {p["metadata"]["name"] for p in pods}
    revs = sorted(get(up, "controllerrevisions", "-n", NS, "-l", "app=roll")["items"], key=lambda r: r["revision"])
    assert [r["revision"] for r in revs] == [1, 2]
    assert {p["metadata"]["labels"][HASH] for p in pods} == {revs[1]["metadata"]["labels"][HASH]}
    # The API server counts template changes in an annotation; the pods carry it as a label.
    assert get(up, "ds", "roll", "-n", NS)["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    assert {p["metadata"]["labels"]["pod-template-generation"] for p in pods} == {"2"}
    history = up.ok("rollout", "history", "ds/roll")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    up.ok("rollout", "undo", "ds/roll")
    rollout(up, "roll")
    eventually(lambda: all(p["spec"]["containers"][0]["image"] == "agent:1" for p in live_pods(up, "roll")),
               "the undo back on agent:1")
    revs = get(up, "controllerrevisions", "-n", NS, "-l", "app=roll")["items"]
    assert sorted(r["revision"] for r in revs) == [2, 3]  # revision 1's template renumbered to 3


def test_surge_creates_the_new_pod_before_deleting_the_old(up: Cluster, apps: kubernetes.client.AppsV1Api) -> None:
    apply(up, daemon_set("surge", updateStrategy={"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    rollout(up, "surge")
    nodes = sorted(running_on(up, "surge"))
    seen: List[int] = []
    w = kubernetes.watch.Watch()
    core = kubernetes.client.CoreV1Api(up.api_client())
    up.ok("set", "image", "ds/surge", "agent=agent:2")
    live: Dict[str, str] = {}
    for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=surge", timeout_seconds=90):
        pod = event["object"]
        if event["type"] == "DELETED" or pod.metadata.deletion_timestamp:
            live.pop(pod.metadata.name, None)
        else:
            live[pod.metadata.name] = pod.spec.containers[0].image
        seen.append(len(live))
        if len(live) == len(nodes) and set(live.values()) == {"agent:2"} and seen[-1] == len(nodes):
            w.stop()
    assert set(live.values()) == {"agent:2"}
    assert max(seen) == len(nodes) + 1  # one surge pod at a time, never fewer than one per node
    assert min(seen[len(nodes):]) >= len(nodes)
    rollout(up, "surge")


def test_on_delete_replaces_only_deleted_pods(up: Cluster) -> None:
    apply(up, daemon_set("ondel", updateStrategy={"type": "OnDelete"}))
    # kubectl rollout status refuses OnDelete sets ("only available for RollingUpdate"): read the status.
    eventually(lambda: get(up, "ds", "ondel", "-n", NS).get("status", {}).get("numberAvailable") == 3,
               "3 available pods")
    before = {p["metadata"]["name"] for p in live_pods(up, "ondel")}
    up.ok("set", "image", "ds/ondel", "agent=agent:2")
    eventually(lambda: get(up, "ds", "ondel", "-n", NS)["status"].get("observedGeneration") == 2, "generation 2")
    assert {p["metadata"]["name"] for p in live_pods(up, "ondel")} == before
    victim = sorted(before)[0]
    up.ok("delete", "pod", victim, "-n", NS, "--wait=false")
    fresh = eventually(lambda: [p for p in live_pods(up, "ondel") if p["metadata"]["name"] not in before],
                       "a replacement for the deleted pod")
    assert [p["spec"]["containers"][0]["image"] for p in fresh] == ["agent:2"]
    assert get(up, "ds", "ondel", "-n", NS)["status"].get("updatedNumberScheduled", 0) <= 1


def test_a_revision_keeps_its_data(up: Cluster) -> None:
    (rev,) = get(up, "controllerrevisions", "-n", NS, "-l", "app=agent")["items"]
    name = rev["metadata"]["name"]
    r = up.kubectl("patch", "controllerrevision", name, "-n", NS, "--type=merge", "-p", '{"data": {"extra": 1}}')
    assert r.returncode != 0
    assert f'The ControllerRevision "{name}" is invalid: data: Invalid value' in r.stderr
    assert "field is immutable" in r.stderr
    r = up.kubectl("patch", "controllerrevision", name, "-n", NS, "--type=merge", "-p", '{"revision": -1}')
    assert r.returncode != 0 and "revision: Invalid value: -1: must be greater than or equal to 0" in r.stderr
    after = get(up, "controllerrevision", name, "-n", NS)
    assert (after["data"], after["revision"]) == (rev["data"], rev["revision"])
