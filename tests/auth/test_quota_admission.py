"""ResourceQuota end to end: kubectl create quota, the controller's status, admission's refusals and charges.

The shared tenancy server runs the resourcequota-controller: a new quota gets
status.hard and status.used from it, creates beyond it are refused with
upstream's messages, each admitted create raises status.used at once, and a
deletion is given back by the controller.
"""

from __future__ import annotations

from typing import Any, Dict

from tests.auth.conftest import Tenancy, pod


def _quota(t: Tenancy, ns: str, name: str) -> Dict[str, Any]:
    return t.get(f"/api/v1/namespaces/{ns}/resourcequotas/{name}")


def _counted(t: Tenancy, ns: str, name: str) -> Dict[str, Any]:
    """The quota once the controller has filled its status."""
    return t.wait(f"quota {name} status", lambda: (lambda q: q if (q.get("status") or {}).get("used") else None)(
        _quota(t, ns, name)))


def test_pods_beyond_quota_are_refused_and_describe_shows_used(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("quota")
    t.ok("-n", ns, "create", "quota", "compute", "--hard=pods=2,requests.cpu=1,limits.memory=1Gi")
    q = _counted(t, ns, "compute")
    assert q["status"]["hard"] == {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"}
    assert q["status"]["used"] == {"pods": "0", "requests.cpu": "0", "limits.memory": "0"}

    # cpu and memory quota'd: every container must state them.
    out = t.kubectl("-n", ns, "run", "bare", "--image=nginx", "--restart=Never")
    assert out.returncode != 0
    assert ('Error from server (Forbidden): pods "bare" is forbidden: failed quota: compute: must specify '
            "limits.memory for: bare; requests.cpu for: bare") in out.stderr

    sized = pod("a", requests={"cpu": "400m"}, limits={"memory": "512Mi"})
    for name in ("a", "b"):
        sized["metadata"]["name"] = name
        code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", sized)
        assert code == 201, body
    # Admission charged both at once (no waiting for the controller).
    assert _quota(t, ns, "compute")["status"]["used"] == {"pods": "2", "requests.cpu": "800m", "limits.memory": "1Gi"}

    sized["metadata"]["name"] = "c"
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", sized)
    assert code == 403 and body["reason"] == "Forbidden", body
    assert body["message"] == (
        'pods "c" is forbidden: exceeded quota: compute, requested: limits.memory=512Mi,pods=1,requests.cpu=400m, '
        "used: limits.memory=1Gi,pods=2,requests.cpu=800m, limited: limits.memory=1Gi,pods=2,requests.cpu=1")
    assert body["details"] == {"name": "c", "kind": "pods"}
    code, _ = t.request("GET", f"/api/v1/namespaces/{ns}/pods/c")
    assert code == 404  # nothing was stored

    described = t.ok("-n", ns, "describe", "quota", "compute")
    rows = {line.split()[0]: line.split()[1:] for line in described.splitlines() if line[:1].islower()}
    assert rows["pods"] == ["2", "2"]
    assert rows["requests.cpu"] == ["800m", "1"]
    assert rows["limits.memory"] == ["1Gi", "1Gi"]
    table = t.ok("-n", ns, "get", "quota", "compute").splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 2/2, requests.cpu: 800m/1" in table[1] and table[1].rstrip().endswith("limits.memory: 1Gi/1Gi")

    # A deletion is given back by the controller; then there is room again.
    t.ok("-n", ns, "delete", "pod", "a", "--wait=false")
    t.wait("usage given back", lambda: _quota(t, ns, "compute")["status"]["used"]["pods"] == "1")
    sized["metadata"]["name"] = "d"
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", sized)
    assert code == 201, body

    # A spec change: the controller moves status.hard (admission enforces status.hard, as upstream).
    t.ok("-n", ns, "patch", "quota", "compute", "--type=merge", "-p", '{"spec":{"hard":{"pods":"3"}}}')
    q = t.wait("status.hard to follow spec.hard",
               lambda: (lambda q: q if q["status"]["hard"]["pods"] == "3" else None)(_quota(t, ns, "compute")))
    assert q["status"]["used"] == {"pods": "2", "requests.cpu": "800m", "limits.memory": "1Gi"}


def test_object_counts_and_services(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("counts")
    t.ok("-n", ns, "create", "quota", "objects",
         "--hard=count/configmaps=2,services=2,services.nodeports=1,count/deployments.apps=0")
    _counted(t, ns, "objects")
    t.ok("-n", ns, "create", "configmap", "one")
    out = t.kubectl("-n", ns, "create", "configmap", "two")
    # The namespace's kube-root-ca.crt would count too where a controller publishes it; here only ours do.
    assert out.returncode == 0, out.stderr
    out = t.kubectl("-n", ns, "create", "configmap", "three")
    assert out.returncode != 0
    assert ('configmaps "three" is forbidden: exceeded quota: objects, requested: count/configmaps=1, '
            "used: count/configmaps=2, limited: count/configmaps=2") in out.stderr

    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
           "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/services", svc)
    assert code == 403, body
    assert body["message"] == ('services "np" is forbidden: exceeded quota: objects, requested: services.nodeports=2, '
                               "used: services.nodeports=0, limited: services.nodeports=1")
    svc["spec"] = {"ports": [{"port": 80}]}
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/services", svc)
    assert code == 201, body
    # An update that makes it a NodePort service is charged too.
    current = t.get(f"/api/v1/namespaces/{ns}/services/np")
    current["spec"]["type"] = "NodePort"
    code, body = t.request("PUT", f"/api/v1/namespaces/{ns}/services/np", current)
    assert code == 200, body
    assert _quota(t, ns, "objects")["status"]["used"]["services.nodeports"] == "1"

    out = t.kubectl("-n", ns, "create", "deployment", "web", "--image=nginx")
    assert out.returncode != 0
    assert ('deployments.apps "web" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, '
            "used: count/deployments.apps=0, limited: count/deployments.apps=0") in out.stderr


def test_scopes_and_dry_run(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("scopes")
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/resourcequotas", {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "besteffort"},
        "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}})
    assert code == 201, body
    _counted(t, ns, "besteffort")
    # A pod with requests is not BestEffort: not counted by this quota, however many.
    for name in ("sized-1", "sized-2"):
        code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod(name, requests={"cpu": "10m"}))
        assert code == 201, body
    # dryRun checks but charges nothing.
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", pod("be-0"))
    assert code == 201, body
    assert _quota(t, ns, "besteffort")["status"]["used"] == {"pods": "0"}
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("be-1"))
    assert code == 201, body
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("be-2"))
    assert code == 403 and "exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1" in \
        body["message"], body


def test_invalid_quotas(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("invalid")
    for hard, scopes, message in (
        ({"pods": "-1"}, None, 'spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0'),
        ({"pods": "1.5"}, None, 'spec.hard[pods]: Invalid value: "1.5": must be an integer'),
        ({"widgets": "1"}, None, 'spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota'),
        ({"pods": "1"}, ["Sometimes"], 'spec.scopes[0]: Invalid value: "Sometimes": unsupported scope'),
    ):
        spec: Dict[str, Any] = {"hard": hard}
        if scopes:
            spec["scopes"] = scopes
        code, body = t.request("POST", f"/api/v1/namespaces/{ns}/resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": spec})
        assert code == 422 and body["reason"] == "Invalid", body
        assert body["message"] == f'ResourceQuota "q" is invalid: {message}', body
    assert t.get(f"/api/v1/namespaces/{ns}/resourcequotas")["items"] == []
