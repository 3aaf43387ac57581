"""Server-side apply and managedFields against a real `megaplane up`, driven by kubectl, the `kubernetes`
package and raw HTTP (for the exact Status bodies)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.api.conftest import Cluster

DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
APPLY = "application/apply-patch+yaml"


def call(c: Cluster, method: str, path: str, body: Any = None, ctype: str = "application/json",
         ua: str = "ssa-test/1.0") -> Tuple[int, Dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.url + path, data=data, method=method,
                                 headers={"Content-Type": ctype, "User-Agent": ua})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def apply(c: Cluster, name: str, cfg: Dict[str, Any], manager: Optional[str], force: bool = False,
          extra: str = "", sub: str = "") -> Tuple[int, Dict[str, Any]]:
    q = [f"fieldManager={manager}"] if manager else []
    if force:
        q.append("force=true")
    if extra:
        q.append(extra)
    return call(c, "PATCH", f"{DEPLOY}/{name}{'/' + sub if sub else ''}?{'&'.join(q)}", cfg, APPLY)


def deployment(name: str, replicas: Optional[int] = 1, containers: Optional[List[Dict[str, Any]]] = None,
               **spec_extra: Any) -> Dict[str, Any]:
    spec: Dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": containers or [{"name": "main", "image": "nginx"}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def managers(obj: Dict[str, Any]) -> Dict[Tuple[str, str, str], Dict[str, Any]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_then_reapply_changes_nothing(cluster: Cluster) -> None:
    code, obj = apply(cluster, "create-me", deployment("create-me", 2), "alice")
    assert code == 201, obj
    [(key, fields)] = managers(obj).items()
    assert key == ("alice", "Apply", "")
    assert fields["f:spec"]["f:replicas"] == {}
    assert "f:name" not in fields.get("f:metadata", {})  # stripped as upstream
    code, again = apply(cluster, "create-me", deployment("create-me", 2), "alice")
    assert code == 200
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_conflicts_force_and_messages(cluster: Cluster) -> None:
    assert apply(cluster, "contested", deployment("contested", 1, revisionHistoryLimit=5), "alice")[0] == 201
    code, st = apply(cluster, "contested", deployment("contested", 3), "bob")
    assert code == 409, st
    assert st["reason"] == "Conflict"
    assert st["message"] == 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas'
    assert st["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".spec.replicas"}]
    code, st = apply(cluster, "contested", deployment("contested", 3, revisionHistoryLimit=9), "bob")
    assert st["message"] == ('Apply failed with 2 conflicts: conflicts with "alice":\n'
                             "- .spec.replicas\n- .spec.revisionHistoryLimit")
    # An Update manager is named with the version it used.
    code, _ = call(cluster, "PATCH", f"{DEPLOY}/contested?fieldManager=scaler", {"spec": {"replicas": 4}},
                   "application/merge-patch+json")
    assert code == 200
    code, st = apply(cluster, "contested", deployment("contested", 3), "bob")
    assert st["message"] == 'Apply failed with 1 conflict: conflict with "scaler" using apps/v1: .spec.replicas'
    code, obj = apply(cluster, "contested", deployment("contested", 3), "bob", force=True)
    assert code == 200 and obj["spec"]["replicas"] == 3
    owners = managers(obj)
    assert owners[("bob", "Apply", "")]["f:spec"]["f:replicas"] == {}
    assert ("scaler", "Update", "") not in owners  # its only field was taken
    assert "f:replicas" not in owners[("alice", "Apply", "")]["f:spec"]


def test_field_manager_required_and_dry_run(cluster: Cluster) -> None:
    code, st = apply(cluster, "nobody", deployment("nobody"), None)
    assert code == 422
    assert st["message"] == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    code, obj = apply(cluster, "dry", deployment("dry"), "alice", extra="dryRun=All")
    assert code == 201 and obj["metadata"]["managedFields"][0]["manager"] == "alice"
    assert call(cluster, "GET", f"{DEPLOY}/dry")[0] == 404


def test_removal_by_sole_owner_and_shared_ownership(cluster: Cluster) -> None:
    cfg = deployment("prune", 1)
    cfg["metadata"]["labels"] = {"mine": "1", "shared": "x"}
    assert apply(cluster, "prune", cfg, "alice")[0] == 201
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prune", "labels": {"shared": "x"}}}
    assert apply(cluster, "prune", other, "bob")[0] == 200  # same value: co-owned, no conflict
    del cfg["metadata"]["labels"]
    del cfg["spec"]["replicas"]
    code, obj = apply(cluster, "prune", cfg, "alice")
    assert code == 200
    assert obj["metadata"]["labels"] == {"shared": "x"}  # "mine" went with its only owner; bob still owns "shared"
    assert "replicas" not in obj["spec"] or obj["spec"]["replicas"] == 1  # removed, then defaulted again


def test_list_maps_merge_by_key(cluster: Cluster) -> None:
    a = deployment("lists", 1, [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]}])
    assert apply(cluster, "lists", a, "alice")[0] == 201
    b = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "lists"}, "spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "busybox"},
                       {"name": "a", "ports": [{"containerPort": 80, "protocol": "UDP"}]}]}}}}
    code, obj = apply(cluster, "lists", b, "bob")
    assert code == 200, obj
    containers = {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"a", "b"}
    assert [(p["containerPort"], p["protocol"]) for p in containers["a"]["ports"]] == [(80, "TCP"), (80, "UDP")]
    bob = managers(obj)[("bob", "Apply", "")]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert 'k:{"name":"b"}' in bob
    assert 'k:{"containerPort":80,"protocol":"UDP"}' in bob['k:{"name":"a"}']["f:ports"]
    # Alice drops her port: bob's stays, and so does the container both name.
    a["spec"]["template"]["spec"]["containers"][0].pop("ports")
    code, obj = apply(cluster, "lists", a, "alice")
    containers = {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}
    assert [(p["containerPort"], p["protocol"]) for p in containers["a"]["ports"]] == [(80, "UDP")]


def test_set_lists_and_atomic_fields(cluster: Cluster) -> None:
    cfg = deployment("sets", 1)
    cfg["metadata"]["finalizers"] = ["example.com/a"]
    cfg["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert apply(cluster, "sets", cfg, "alice")[0] == 201
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "sets", "finalizers": ["example.com/b"]}}
    code, obj = apply(cluster, "sets", other, "bob")
    assert code == 200 and obj["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    # nodeSelector is atomic: a different map conflicts on the map itself, not on its keys.
    other["spec"] = {"template": {"spec": {"nodeSelector": {"zone": "a"}}}}
    code, st = apply(cluster, "sets", other, "bob")
    assert code == 409
    assert st["details"]["causes"][0]["field"] == ".spec.template.spec.nodeSelector"
    code, obj = apply(cluster, "sets", other, "bob", force=True)
    assert obj["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}
    cfg["metadata"]["finalizers"] = []
    del cfg["spec"]["template"]["spec"]["nodeSelector"]  # bob's now (force took it from alice)
    code, obj = apply(cluster, "sets", cfg, "alice")
    assert obj["metadata"]["finalizers"] == ["example.com/b"]
    call(cluster, "PATCH", f"{DEPLOY}/sets", {"metadata": {"finalizers": None}}, "application/merge-patch+json")


def test_status_subresource_apply(cluster: Cluster) -> None:
    assert apply(cluster, "stat", deployment("stat"), "alice")[0] == 201
    st = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stat"},
          "status": {"observedGeneration": 1, "replicas": 0}}
    code, obj = apply(cluster, "stat", st, "controller", sub="status")
    assert code == 200, obj
    assert obj["status"]["observedGeneration"] == 1
    owners = managers(obj)
    assert owners[("controller", "Apply", "status")] == {"f:status": {"f:observedGeneration": {}, "f:replicas": {}}}
    # Status through the main resource is not the applier's (the status subresource owns it).
    code, obj = apply(cluster, "stat", {**deployment("stat"), "status": {"replicas": 7}}, "alice")
    assert obj["status"].get("replicas") == 0
    assert "f:status" not in managers(obj)[("alice", "Apply", "")]
    # A status update is recorded with its subresource.
    code, obj = call(cluster, "PATCH", f"{DEPLOY}/stat/status?fieldManager=kcm", {"status": {"replicas": 1}},
                     "application/merge-patch+json")
    assert code == 200
    assert managers(obj)[("kcm", "Update", "status")] == {"f:status": {"f:replicas": {}}}


def test_managed_fields_of_update_writes(cluster: Cluster) -> None:
    manifest = json.dumps({**deployment("writes"), "metadata": {"name": "writes", "namespace": "default"}})
    cluster.ok("create", "-f", "-", input=manifest)
    cluster.ok("label", "deployment", "writes", "tier=web")
    cluster.ok("patch", "deployment", "writes", "-p", '{"spec":{"replicas":2}}')
    cluster.ok("annotate", "deployment", "writes", "note=x")
    obj = json.loads(cluster.ok("get", "deployment", "writes", "-o", "json", "--show-managed-fields"))
    owners = managers(obj)
    assert set(owners) == {("kubectl-create", "Update", ""), ("kubectl-label", "Update", ""),
                           ("kubectl-patch", "Update", ""), ("kubectl-annotate", "Update", "")}
    assert owners[("kubectl-label", "Update", "")] == {"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}}
    assert owners[("kubectl-patch", "Update", "")] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners[("kubectl-create", "Update", "")]["f:spec"]
    assert "managedFields" not in cluster.ok("get", "deployment", "writes", "-o", "yaml")  # stripped by kubectl
    # The python client's default manager is its User-Agent's prefix.
    import kubernetes

    with cluster.api_client() as api:
        apps = kubernetes.client.AppsV1Api(api)
        apps.patch_namespaced_deployment("writes", "default", {"spec": {"replicas": 3}})
        dep = apps.read_namespaced_deployment("writes", "default")
        names = {e.manager for e in dep.metadata.managed_fields}
    assert "OpenAPI-Generator" in names and "kubectl-patch" not in names
    # The server's own writes (bootstrap over the loopback) are kube-apiserver's, as upstream's UA names them.
    code, ns = call(cluster, "GET", "/api/v1/namespaces/kube-system")
    assert "kube-apiserver" in {e["manager"] for e in ns["metadata"]["managedFields"]}


def test_first_apply_of_an_untracked_object(cluster: Cluster) -> None:
    code, obj = call(cluster, "POST", DEPLOY, {**deployment("untracked", 2),
                                              "metadata": {"name": "untracked", "managedFields": []}})
    assert code == 201
    code, obj = call(cluster, "PATCH", f"{DEPLOY}/untracked", [
        {"op": "replace", "path": "/metadata/managedFields", "value": []}], "application/json-patch+json")
    assert code == 200 and "managedFields" not in obj["metadata"]
    code, st = apply(cluster, "untracked", deployment("untracked", 5), "alice")
    assert code == 409
    assert st["message"] == ('Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
                             ".spec.replicas")


def test_kubectl_server_side_apply_migrates_client_side_apply(cluster: Cluster) -> None:
    manifest = deployment("migrate", 2)
    manifest["metadata"]["namespace"] = "default"
    cluster.ok("apply", "-f", "-", input=json.dumps(manifest))
    before = json.loads(cluster.ok("get", "deployment", "migrate", "-o", "json", "--show-managed-fields"))
    assert set(managers(before)) == {("kubectl-client-side-apply", "Update", "")}
    manifest["spec"]["replicas"] = 4  # a field kubectl-client-side-apply owns: no conflict for kubectl
    out = cluster.ok("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    assert "serverside-applied" in out
    after = json.loads(cluster.ok("get", "deployment", "migrate", "-o", "json", "--show-managed-fields"))
    assert after["spec"]["replicas"] == 4
    owners = managers(after)
    assert ("kubectl-client-side-apply", "Update", "") not in owners
    assert owners[("kubectl", "Apply", "")]["f:spec"]["f:replicas"] == {}
    last = json.loads(after["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 4
    # Another manager now conflicts with kubectl; client-side apply keeps working on the same object.
    res = cluster.kubectl("apply", "--server-side", "--field-manager", "other", "-f", "-",
                          input=json.dumps({**manifest, "spec": {**manifest["spec"], "replicas": 1}}))
    assert res.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in res.stderr
    manifest["spec"]["replicas"] = 5
    cluster.ok("apply", "-f", "-", input=json.dumps(manifest))
    assert json.loads(cluster.ok("get", "deployment", "migrate", "-o", "json"))["spec"]["replicas"] == 5


@pytest.mark.parametrize("body", [b"- a\n- b\n", b"{not yaml: [", b"null"])
def test_bad_apply_bodies(cluster: Cluster, body: bytes) -> None:
    code, st = apply(cluster, "bad", body, "alice")  # type: ignore[arg-type]
    assert code == 400 and st["message"].startswith("error decoding YAML"), st


def test_scale_subresource_apply(cluster: Cluster) -> None:
    assert apply(cluster, "scaled", deployment("scaled", 2), "alice")[0] == 201
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "scaled"}, "spec": {"replicas": 4}}
    code, st = apply(cluster, "scaled", scale, "hpa", sub="scale")
    assert code == 409 and st["message"] == 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas'
    code, out = apply(cluster, "scaled", scale, "hpa", force=True, sub="scale")
    assert code == 200 and out["kind"] == "Scale" and out["spec"]["replicas"] == 4
    code, obj = call(cluster, "GET", f"{DEPLOY}/scaled")
    assert managers(obj)[("hpa", "Apply", "scale")] == {"f:spec": {"f:replicas": {}}}


def test_kubectl_edit_takes_the_fields_it_changes(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = json.dumps({**deployment("edited", 1), "metadata": {"name": "edited", "namespace": "default",
                                                                  "labels": {"tier": "web"}}})
    cluster.ok("create", "-f", "-", input=manifest)
    monkeypatch.setenv("KUBE_EDITOR", "sed -i s/tier:.web/tier:\\ api/")
    cluster.ok("edit", "deployment", "edited")
    obj = json.loads(cluster.ok("get", "deployment", "edited", "-o", "json", "--show-managed-fields"))
    assert obj["metadata"]["labels"] == {"tier": "api"}
    owners = managers(obj)
    assert owners[("kubectl-edit", "Update", "")] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert "f:tier" not in owners[("kubectl-create", "Update", "")]["f:metadata"]["f:labels"]
