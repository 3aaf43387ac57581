"""The garbage collector in `megaplane up --nodes 3`, driven with kubectl and the Python client.

Deleting a Deployment in each of kubectl's cascade modes, ownerReferences
whose uid does not match the live owner, foreground deletion held by a
dependent that blocks it, orphaning through deletecollection and the
deprecated orphanDependents, upstream's DeleteOptions checks, and owners
deleted while the collector was not running (collected after the restart).
Every wait polls for a state.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import kubernetes
import pytest

from megaplane.controllers.garbagecollector import Graph, Node, ObjectMeta, ObjectReference, OwnerRef
from tests.api.conftest import Cluster, start_megaplane
from tests.fleet.conftest import eventually, server_in_tmp

NS = "default"
UP_FLAGS = ["--nodes", "3", "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10",
            "--controllers", "*", "--scheduler"]


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-gc-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def core(up: Cluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with up.api_client() as api:  # closed here, not by a finalizer at some later garbage collection
        yield kubernetes.client.CoreV1Api(api)


def get(up: Cluster, *args: str) -> Any:
    return json.loads(up.ok("get", *args, "-o", "json"))


def exists(up: Cluster, kind: str, name: str) -> Optional[Dict[str, Any]]:
    r = up.kubectl("get", kind, name, "-n", NS, "-o", "json")
    if r.returncode != 0:
        assert "NotFound" in r.stderr, r.stderr
        return None
    obj: Dict[str, Any] = json.loads(r.stdout)
    return obj


def owned(items: List[Dict[str, Any]], uid: str) -> List[Dict[str, Any]]:
    return [o for o in items if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())]


def deployment_with_pods(up: Cluster, name: str, replicas: int = 2) -> Dict[str, Any]:
    """A Deployment whose ReplicaSet has `replicas` pods; returns {"d": uid, "rs": uid, "pods": [names]}."""
    up.ok("create", "deployment", name, "--image=nginx", f"--replicas={replicas}")
    d = get(up, "deployment", name)
    rs = eventually(lambda: owned(get(up, "rs", "-n", NS)["items"], d["metadata"]["uid"]), f"{name}'s ReplicaSet")[0]
    pods = eventually(lambda: len(owned(get(up, "pods", "-n", NS)["items"], rs["metadata"]["uid"])) == replicas
                      and owned(get(up, "pods", "-n", NS)["items"], rs["metadata"]["uid"]), f"{name}'s pods")
    return {"d": d["metadata"]["uid"], "rs": rs["metadata"]["uid"], "rs_name": rs["metadata"]["name"],
            "pods": [p["metadata"]["name"] for p in pods]}


def test_delete_deployment_deletes_its_replica_sets_and_pods(up: Cluster) -> None:
    made = deployment_with_pods(up, "gc-bg")
    up.ok("delete", "deployment", "gc-bg")  # kubectl's default: --cascade=background
    eventually(lambda: not owned(get(up, "rs", "-n", NS)["items"], made["d"]), "the ReplicaSet to be collected")
    eventually(lambda: not owned(get(up, "pods", "-n", NS)["items"], made["rs"]), "the pods to be collected")


def test_cascade_orphan_keeps_replica_sets_and_pods_without_the_owner_reference(up: Cluster) -> None:
    made = deployment_with_pods(up, "gc-orphan")
    up.ok("delete", "deployment", "gc-orphan", "--cascade=orphan")
    eventually(lambda: exists(up, "deployment", "gc-orphan") is None, "the Deployment to go")
    rs = eventually(lambda: exists(up, "rs", made["rs_name"]), "the ReplicaSet to stay")
    assert rs["metadata"]["uid"] == made["rs"]
    assert not rs["metadata"].get("ownerReferences"), rs["metadata"]
    pods = owned(get(up, "pods", "-n", NS)["items"], made["rs"])
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(made["pods"])
    assert not any(p["metadata"].get("deletionTimestamp") for p in pods)
    up.ok("delete", "rs", made["rs_name"])
    eventually(lambda: not owned(get(up, "pods", "-n", NS)["items"], made["rs"]), "the pods to follow their set")


def test_cascade_foreground_deletes_dependents_before_the_owner(up: Cluster) -> None:
    made = deployment_with_pods(up, "gc-fg")
    out = up.ok("delete", "deployment", "gc-fg", "--cascade=foreground", "--wait=false")
    assert "deleted" in out
    eventually(lambda: exists(up, "deployment", "gc-fg") is None, "the Deployment to go after its dependents")
    assert not owned(get(up, "rs", "-n", NS)["items"], made["d"])
    assert not owned(get(up, "pods", "-n", NS)["items"], made["rs"])


def configmap(core: kubernetes.client.CoreV1Api, name: str, owners: Optional[List[Dict[str, Any]]] = None,
              finalizers: Optional[List[str]] = None, labels: Optional[Dict[str, str]] = None) -> Any:
    meta: Dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    if labels:
        meta["labels"] = labels
    return core.create_namespaced_config_map(NS, {"metadata": meta, "data": {"k": "v"}})


def ref(obj: Any, block: bool = False) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj.metadata.name, "uid": obj.metadata.uid,
            "blockOwnerDeletion": block}


def cm_or_none(core: kubernetes.client.CoreV1Api, name: str) -> Any:
    try:
        return core.read_namespaced_config_map(name, NS)
    except kubernetes.client.ApiException as exc:
        assert exc.status == 404, exc
        return None


def test_foreground_deletion_waits_for_a_blocking_dependent(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    owner = configmap(core, "fg-owner")
    held = configmap(core, "fg-held", [ref(owner, block=True)], finalizers=["example.com/hold"])
    loose = configmap(core, "fg-loose", [ref(owner, block=False)])
    core.delete_namespaced_config_map("fg-owner", NS, propagation_policy="Foreground")
    marked = core.read_namespaced_config_map("fg-owner", NS)
    assert marked.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in marked.metadata.finalizers
    # The collector deletes both dependents; the held one stays (its own finalizer) and blocks the owner.
    eventually(lambda: cm_or_none(core, "fg-loose") is None, "the non-blocking dependent to be deleted")
    held_now = eventually(lambda: (c := core.read_namespaced_config_map("fg-held", NS)).metadata.deletion_timestamp
                          and c, "the blocking dependent to be deleted")
    assert held_now.metadata.uid == held.metadata.uid and loose.metadata.uid
    still = core.read_namespaced_config_map("fg-owner", NS)
    assert "foregroundDeletion" in still.metadata.finalizers
    core.patch_namespaced_config_map("fg-held", NS, {"metadata": {"finalizers": None}})
    eventually(lambda: cm_or_none(core, "fg-owner") is None, "the owner to go once its blocking dependent went")


def test_an_owner_reference_with_another_uid_is_dangling(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    live = configmap(core, "uid-owner")
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "uid-owner", "uid": "00000000-0000-0000-0000-000000000001"}
    configmap(core, "uid-orphan", [ghost])
    kept = configmap(core, "uid-kept", [ref(live)])
    eventually(lambda: cm_or_none(core, "uid-orphan") is None, "the dependent of a same-name, other-uid owner to go")
    assert core.read_namespaced_config_map("uid-kept", NS).metadata.uid == kept.metadata.uid
    assert core.read_namespaced_config_map("uid-owner", NS).metadata.uid == live.metadata.uid


def test_deletecollection_orphan_and_orphan_dependents(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    a = configmap(core, "dc-a", labels={"gc": "dc"})
    b = configmap(core, "dc-b", labels={"gc": "dc"})
    dep_a = configmap(core, "dc-dep-a", [ref(a)])
    dep_b = configmap(core, "dc-dep-b", [ref(b)])
    core.delete_collection_namespaced_config_map(NS, label_selector="gc=dc", propagation_policy="Orphan")
    eventually(lambda: cm_or_none(core, "dc-a") is None and cm_or_none(core, "dc-b") is None, "the owners to go")
    for dep in (dep_a, dep_b):
        now = core.read_namespaced_config_map(dep.metadata.name, NS)
        assert now.metadata.uid == dep.metadata.uid and not now.metadata.owner_references
    # The deprecated orphanDependents=true is the same as propagationPolicy=Orphan.
    c = configmap(core, "od-owner")
    dep_c = configmap(core, "od-dep", [ref(c)])
    core.delete_namespaced_config_map("od-owner", NS, body=kubernetes.client.V1DeleteOptions(orphan_dependents=True))
    eventually(lambda: cm_or_none(core, "od-owner") is None, "the owner to go")
    assert not core.read_namespaced_config_map("od-dep", NS).metadata.owner_references
    assert dep_c.metadata.uid == core.read_namespaced_config_map("od-dep", NS).metadata.uid
    # And deletecollection in the background collects the dependents.
    d = configmap(core, "dc-d", labels={"gc": "dc2"})
    configmap(core, "dc-dep-d", [ref(d)])
    core.delete_collection_namespaced_config_map(NS, label_selector="gc=dc2", propagation_policy="Background")
    eventually(lambda: cm_or_none(core, "dc-dep-d") is None, "the dependent of a deletecollection to go")


def test_delete_options_are_checked(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    configmap(core, "opts")
    with pytest.raises(kubernetes.client.ApiException) as exc:
        core.delete_namespaced_config_map("opts", NS, body=kubernetes.client.V1DeleteOptions(
            orphan_dependents=True, propagation_policy="Orphan"))
    assert exc.value.status == 422
    body = json.loads(exc.value.body)
    assert body["reason"] == "Invalid"
    assert body["message"] == ('DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Orphan": '
                               "orphanDependents and deletionPropagation cannot be both set")
    with pytest.raises(kubernetes.client.ApiException) as exc:
        core.delete_namespaced_config_map("opts", NS, propagation_policy="Sideways")
    assert exc.value.status == 422
    assert 'Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan", "nil"' in \
        json.loads(exc.value.body)["message"]
    assert core.read_namespaced_config_map("opts", NS).metadata.deletion_timestamp is None


def test_owners_deleted_while_the_collector_was_down_are_collected_after_a_restart() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-gc-restart-")
    data = ["--data-dir", os.path.join(root, "data"), "--nodes", "0", "--scheduler=false"]
    c = start_megaplane(root, "up", data + ["--controllers", "namespace,serviceaccount"], timeout=60)
    try:
        with c.api_client() as api:
            core = kubernetes.client.CoreV1Api(api)
            owner = configmap(core, "down-owner")
            dep = configmap(core, "down-dep", [ref(owner)])
            grand = configmap(core, "down-grand", [{"apiVersion": "v1", "kind": "ConfigMap", "name": "down-dep",
                                                    "uid": dep.metadata.uid}])
            core.delete_namespaced_config_map("down-owner", NS)
            assert core.read_namespaced_config_map("down-dep", NS).metadata.uid == dep.metadata.uid  # nobody collects
        c.stop()
        c = start_megaplane(root, "up", data + ["--controllers", "*"], timeout=60)
        with c.api_client() as api:
            core = kubernetes.client.CoreV1Api(api)
            eventually(lambda: cm_or_none(core, "down-dep") is None, "the orphaned dependent to be collected")
            eventually(lambda: cm_or_none(core, "down-grand") is None, "its own dependent to follow")
        assert grand.metadata.uid
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- the graph alone (no server): what each event queues ------------------------------------------------------

def _meta(kind: str, name: str, uid: str, owners: Tuple[OwnerRef, ...] = (), ns: str = NS, *,
          deleting: bool = False, finalizers: Tuple[str, ...] = ()) -> ObjectMeta:
    api = "apps/v1" if kind in ("Deployment", "ReplicaSet") else "v1"
    return ObjectMeta(ObjectReference(api, kind, name, uid, ns), owners, deleting, finalizers)


def _owner(kind: str, name: str, uid: str, block: bool = True) -> OwnerRef:
    return OwnerRef("apps/v1" if kind in ("Deployment", "ReplicaSet") else "v1", kind, name, uid, True, block)


class _Queues:
    def __init__(self) -> None:
        self.delete: List[Node] = []
        self.orphan: List[Node] = []

    def graph(self) -> Graph:
        return Graph(self.delete.append, self.orphan.append)


def test_graph_an_unseen_owner_is_a_virtual_node_looked_up_and_removed_when_absent() -> None:
    q = _Queues()
    g = q.graph()
    g.observe("add", _meta("ReplicaSet", "rs", "rs-1", (_owner("Deployment", "d", "d-1"),)))
    virtual = g.get("d-1")
    assert virtual is not None and virtual.virtual and not virtual.observed
    assert q.delete == [virtual]  # the collector asks the API server whether it exists
    rs = g.get("rs-1")
    assert rs is not None and virtual.dependents == {rs}
    q.delete.clear()
    g.virtual_delete(virtual.identity)
    assert g.get("d-1") is None and q.delete == [rs]
    assert g.known_absent(virtual.identity)


def test_graph_a_virtual_delete_for_other_coordinates_keeps_a_real_node() -> None:
    q = _Queues()
    g = q.graph()
    g.observe("add", _meta("Deployment", "d", "d-1"))
    g.observe("add", _meta("ReplicaSet", "rs", "rs-1", (_owner("Deployment", "d", "d-1"),)))
    q.delete.clear()
    # A dependent names uid d-1 as a ConfigMap "d": that object is absent, the Deployment stays.
    g.virtual_delete(ObjectReference("v1", "ConfigMap", "d", "d-1", NS))
    assert g.get("d-1") is not None and q.delete == []


def test_graph_observing_a_virtual_node_with_other_coordinates_requeues_dependents_that_disagree() -> None:
    q = _Queues()
    g = q.graph()
    g.observe("add", _meta("ConfigMap", "dep", "c-1", (OwnerRef("v1", "Secret", "s", "x-1", False, False),)))
    q.delete.clear()
    g.observe("add", _meta("ConfigMap", "s", "x-1"))  # uid x-1 turns out to be a ConfigMap, not a Secret
    node = g.get("x-1")
    assert node is not None and node.observed and node.identity.kind == "ConfigMap"
    assert [n.identity.name for n in q.delete] == ["dep"]


def test_graph_foreground_and_orphan_transitions() -> None:
    q = _Queues()
    g = q.graph()
    g.observe("add", _meta("Deployment", "d", "d-1"))
    g.observe("add", _meta("ReplicaSet", "a", "rs-a", (_owner("Deployment", "d", "d-1", block=True),)))
    g.observe("add", _meta("ReplicaSet", "b", "rs-b", (_owner("Deployment", "d", "d-1", block=False),)))
    d = g.get("d-1")
    assert d is not None
    assert [n.identity.name for n in d.blocking_dependents()] == ["a"]
    q.delete.clear()
    old = _meta("Deployment", "d", "d-1")
    g.observe("update", _meta("Deployment", "d", "d-1", deleting=True, finalizers=("foregroundDeletion",)), old)
    assert d.deleting_dependents and d.being_deleted
    assert sorted(n.identity.name for n in q.delete) == ["a", "b", "d"]
    # The blocking dependent's deletion queues the owner again (it may be done waiting).
    q.delete.clear()
    g.observe("delete", _meta("ReplicaSet", "a", "rs-a", (_owner("Deployment", "d", "d-1"),)))
    assert q.delete == [d] and d.blocking_dependents() == []
    g.observe("add", _meta("Deployment", "o", "o-1"))
    g.observe("update", _meta("Deployment", "o", "o-1", deleting=True, finalizers=("orphan",)),
              _meta("Deployment", "o", "o-1"))
    assert [n.identity.name for n in q.orphan] == ["o"]


def test_graph_dropping_a_blocking_reference_requeues_an_owner_deleting_in_the_foreground() -> None:
    q = _Queues()
    g = q.graph()
    g.observe("add", _meta("Deployment", "d", "d-1", deleting=True, finalizers=("foregroundDeletion",)))
    g.observe("add", _meta("ReplicaSet", "a", "rs-a", (_owner("Deployment", "d", "d-1", block=True),)))
    q.delete.clear()
    g.observe("update", _meta("ReplicaSet", "a", "rs-a", (_owner("Deployment", "d", "d-1", block=False),)),
              _meta("ReplicaSet", "a", "rs-a", (_owner("Deployment", "d", "d-1", block=True),)))
    d = g.get("d-1")
    assert q.delete == [d]
    assert d is not None and d.blocking_dependents() == []


@pytest.mark.slow
def test_graph_memory_per_object(scale: str) -> None:
    """What the collector keeps per pod (graph node + the informer's slim copy), measured, not asserted tight."""
    import tracemalloc
    import uuid

    from megaplane.controllers.garbagecollector.collector import _slim

    pods = 100_000 if scale == "full" else 20_000
    q = _Queues()
    g = q.graph()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    store = {}
    for i in range(pods // 100):
        rs_uid = str(uuid.uuid4())
        g.observe("add", _meta("ReplicaSet", f"rs-{i}", rs_uid))
        for j in range(100):
            uid = str(uuid.uuid4())
            name = f"rs-{i}-{j:05d}"
            obj = {"metadata": {"name": name, "namespace": NS, "uid": uid, "resourceVersion": str(i * 100 + j),
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                     "name": f"rs-{i}", "uid": rs_uid, "controller": True,
                                                     "blockOwnerDeletion": True}]}}
            store[name] = _slim(obj)
            g.observe("add", _meta("Pod", name, uid, (_owner("ReplicaSet", f"rs-{i}", rs_uid),)))
    used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    per_pod = used / pods
    print(f"garbage collector: {per_pod:.0f} B per pod ({pods} pods, graph + slim informer copy)")
    assert len(g) == pods + pods // 100
    assert per_pod < 2000  # a whole pod object is 2-5 KB decoded; this keeps a fraction of it


def test_a_later_delete_can_switch_foreground_to_orphan(up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    owner = configmap(core, "switch-owner")
    held = configmap(core, "switch-held", [ref(owner, block=True)], finalizers=["example.com/hold"])
    core.delete_namespaced_config_map("switch-owner", NS, propagation_policy="Foreground")
    eventually(lambda: core.read_namespaced_config_map("switch-held", NS).metadata.deletion_timestamp,
               "the blocking dependent to be deleted in the foreground")
    # While finalizers hold it (no grace period pending), a DELETE may change the policy: orphan instead.
    req = urllib.request.Request(
        f"{up.url}/api/v1/namespaces/{NS}/configmaps/switch-owner", method="DELETE",
        data=json.dumps({"kind": "DeleteOptions", "apiVersion": "v1", "orphanDependents": True}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read())["metadata"]["finalizers"] == ["orphan"]
    eventually(lambda: cm_or_none(core, "switch-owner") is None, "the owner to go once its dependent is orphaned")
    now = core.read_namespaced_config_map("switch-held", NS)
    assert now.metadata.uid == held.metadata.uid and not now.metadata.owner_references
    core.patch_namespaced_config_map("switch-held", NS, {"metadata": {"finalizers": None}})


def test_orphan_dependents_false_answers_202_while_the_collector_works(
        up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    owner = configmap(core, "accepted-owner")
    configmap(core, "accepted-held", [ref(owner, block=True)], finalizers=["example.com/hold"])
    req = urllib.request.Request(
        f"{up.url}/api/v1/namespaces/{NS}/configmaps/accepted-owner?orphanDependents=false", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as resp:
        # orphanDependents=false is the old spelling of Background: the owner goes at once, 200 (nothing held it).
        assert resp.status == 200
    eventually(lambda: core.read_namespaced_config_map("accepted-held", NS).metadata.deletion_timestamp,
               "the dependent to be collected")
    core.patch_namespaced_config_map("accepted-held", NS, {"metadata": {"finalizers": None}})
    held = configmap(core, "accepted-self", finalizers=["example.com/hold"])
    req = urllib.request.Request(
        f"{up.url}/api/v1/namespaces/{NS}/configmaps/accepted-self?orphanDependents=false", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202  # kept by a finalizer, and the client asked for cascading deletion
    assert held.metadata.uid
    core.patch_namespaced_config_map("accepted-self", NS, {"metadata": {"finalizers": None}})
    eventually(lambda: cm_or_none(core, "accepted-self") is None, "the object to go with its last finalizer")
