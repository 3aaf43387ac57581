"""ServiceAccount admission: the default account, a missing one refused, the projected token volume."""

from __future__ import annotations

from tests.auth.conftest import Tenancy, pod

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_default_account_and_token_volume(tenancy: Tenancy) -> None:
    t = tenancy
    # Created at once after its namespace: the plugin waits for the serviceaccount controller's `default`.
    ns = t.namespace("sa")
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("first"))
    assert code == 201, body
    spec = body["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(volume["name"]) == len("kube-api-access-") + 5
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    assert spec["containers"][0]["volumeMounts"] == [{"name": volume["name"], "readOnly": True, "mountPath": MOUNT}]

    # automountServiceAccountToken false on the pod, or on its account: no volume.
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("quiet", automountServiceAccountToken=False))
    assert code == 201 and "volumes" not in body["spec"], body
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"},
        "automountServiceAccountToken": False, "imagePullSecrets": [{"name": "registry"}]})
    assert code == 201, body
    code, body = t.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("robot-pod", serviceAccountName="robot"))
    assert code == 201, body
    assert "volumes" not in body["spec"] and body["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_missing_account_is_refused(tenancy: Tenancy) -> None:
    t = tenancy
    ns = t.namespace("nosa")
    out = t.kubectl("-n", ns, "run", "lost", "--image=nginx", "--restart=Never", "--overrides",
                    '{"spec":{"serviceAccountName":"ghost"}}')
    assert out.returncode != 0
    assert (f'Error from server (Forbidden): pods "lost" is forbidden: error looking up service account {ns}/ghost: '
            'serviceaccount "ghost" not found') in out.stderr
    code, _ = t.request("GET", f"/api/v1/namespaces/{ns}/pods/lost")
    assert code == 404
