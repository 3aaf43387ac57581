"""kubectl 1.32 against `megaplane up`: the everyday commands, and what they print."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from tests.api.conftest import KUBECTL

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}, tier: backend}}
spec:
  containers:
  - name: c
    image: busybox:1.36
"""

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": ""}},
    "status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": "2026-11-22T10:00:00Z", "lastTransitionTime": "2026-11-22T10:00:00Z"}
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "node-1"}],
        "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                     "containerRuntimeVersion": "containerd://1.7.0", "operatingSystem": "linux", "architecture": "amd64",
                     "machineID": "m", "systemUUID": "s", "bootID": "b", "kubeProxyVersion": ""},
    },
}


@pytest.fixture(scope="module")
def ns(cluster):
    cluster.ok("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kt\n")
    return "kt"


def test_version_and_api_resources(cluster):
    out = json.loads(cluster.ok("version", "-o", "json"))
    assert out["serverVersion"]["major"] == "1" and out["serverVersion"]["minor"] == "32"
    res = cluster.kubectl("api-resources", fresh_cache=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"pods", "nodes", "deployments", "leases", "endpointslices", "events", "namespaces"} <= names
    assert any(line.startswith("deployments") and "deploy" in line and "apps/v1" in line for line in lines)


def test_create_f_and_get_forms(cluster, ns):
    assert cluster.ok("-n", ns, "create", "-f", "-", input=DEPLOYMENT) == "deployment.apps/web created\n"
    for i, app in enumerate(["web", "web", "db"]):
        cluster.ok("-n", ns, "create", "-f", "-", input=POD.format(name=f"p{i}", app=app))
    out = cluster.ok("-n", ns, "get", "pods")
    assert out.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [
        ["p0", "0/1", "Pending"], ["p1", "0/1", "Pending"], ["p2", "0/1", "Pending"]
    ]
    wide = cluster.ok("-n", ns, "get", "pods", "-o", "wide")
    assert wide.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert [line.split()[0] for line in cluster.ok("-n", ns, "get", "pods", "-l", "app=web").splitlines()[1:]] == ["p0", "p1"]
    assert [line.split()[0] for line in cluster.ok("-n", ns, "get", "pods", "-l", "app in (db),tier").splitlines()[1:]] == ["p2"]
    assert [line.split()[0] for line in cluster.ok("-n", ns, "get", "pods", "-l", "app!=web").splitlines()[1:]] == ["p2"]
    fs = cluster.ok("-n", ns, "get", "pods", "--field-selector", "metadata.name=p1,status.phase=Pending")
    assert [line.split()[0] for line in fs.splitlines()[1:]] == ["p1"]
    doc = json.loads(cluster.ok("-n", ns, "get", "pod", "p0", "-o", "json"))
    assert doc["metadata"]["name"] == "p0" and doc["spec"]["containers"][0]["image"] == "busybox:1.36"
    assert doc["spec"]["restartPolicy"] == "Always" and doc["status"]["phase"] == "Pending"
    y = yaml.safe_load(cluster.ok("-n", ns, "get", "deploy", "web", "-o", "yaml"))
    assert y["spec"]["replicas"] == 2 and y["metadata"]["generation"] == 1
    dep = cluster.ok("-n", ns, "get", "deploy", "-o", "wide").splitlines()
    assert dep[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert dep[1].split()[5:] == ["nginx", "nginx:1.25", "app=web"]


def test_chunked_get_follows_continue(cluster):
    cluster.ok("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: chunks\n")
    manifests = "\n---\n".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03d}\n  namespace: chunks\ndata:\n  k: v{i}" for i in range(25)
    )
    cluster.ok("create", "-f", "-", input=manifests)
    out = cluster.ok("-n", "chunks", "get", "cm", "--chunk-size", "7", "-o", "name")
    names = [line for line in out.splitlines() if line.startswith("configmap/cm-")]
    assert names == [f"configmap/cm-{i:03d}" for i in range(25)]


def test_label_annotate_patch(cluster, ns):
    cluster.ok("-n", ns, "create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  a: b\n")
    assert cluster.ok("-n", ns, "label", "cm", "cm1", "env=prod") == "configmap/cm1 labeled\n"
    assert cluster.ok("-n", ns, "annotate", "cm", "cm1", "note=hello") == "configmap/cm1 annotated\n"
    assert cluster.ok("-n", ns, "patch", "cm", "cm1", "--type", "merge", "-p", '{"data":{"c":"d"}}') == "configmap/cm1 patched\n"
    assert cluster.ok("-n", ns, "patch", "cm", "cm1", "--type", "json", "-p", '[{"op":"add","path":"/data/e","value":"f"}]') == "configmap/cm1 patched\n"
    cm = json.loads(cluster.ok("-n", ns, "get", "cm", "cm1", "-o", "json"))
    assert cm["data"] == {"a": "b", "c": "d", "e": "f"}
    assert cm["metadata"]["labels"] == {"env": "prod"} and cm["metadata"]["annotations"] == {"note": "hello"}
    assert cluster.ok("-n", ns, "label", "cm", "cm1", "env-") == "configmap/cm1 unlabeled\n"
    bad = cluster.kubectl("-n", ns, "patch", "cm", "cm1", "--type", "json", "-p", '[{"op":"test","path":"/data/a","value":"nope"}]')
    assert bad.returncode != 0


def test_typed_create_commands(cluster):
    assert cluster.ok("create", "namespace", "typed") == "namespace/typed created\n"
    assert cluster.ok("-n", "typed", "create", "configmap", "c1", "--from-literal=x=y") == "configmap/c1 created\n"
    assert cluster.ok("-n", "typed", "create", "deployment", "d1", "--image=nginx:1.25") == "deployment.apps/d1 created\n"
    d = json.loads(cluster.ok("-n", "typed", "get", "deploy", "d1", "-o", "json"))
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert json.loads(cluster.ok("-n", "typed", "get", "cm", "c1", "-o", "json"))["data"] == {"x": "y"}


def test_describe_pod_and_node(cluster, ns):
    cluster.ok("create", "-f", "-", input=json.dumps(NODE))
    out = cluster.ok("describe", "node", "node-1")
    assert "Name:               node-1" in out and "Roles:              control-plane" in out
    assert "KubeletReady" in out
    nodes = cluster.ok("get", "nodes").splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["node-1", "Ready", "control-plane"]
    pod = cluster.ok("-n", ns, "describe", "pod", "p0")
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in pod.splitlines() if line and not line[0].isspace() and ":" in line}
    assert fields["Name"] == "p0" and fields["Namespace"] == ns and fields["Status"] == "Pending"
    assert fields["QoS Class"] == "BestEffort"


def test_delete_waits_until_gone(cluster, ns):
    cluster.ok("-n", ns, "create", "-f", "-", input=POD.format(name="gone", app="x"))
    out = cluster.kubectl("-n", ns, "delete", "pod", "gone", "--timeout=20s")
    assert out.returncode == 0 and out.stdout == 'pod "gone" deleted\n', out.stderr
    missing = cluster.kubectl("-n", ns, "get", "pod", "gone")
    assert missing.returncode == 1 and 'pods "gone" not found' in missing.stderr


def test_delete_namespace_removes_its_content(cluster):
    cluster.ok("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: doomed\n")
    cluster.ok("-n", "doomed", "create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    out = cluster.kubectl("delete", "namespace", "doomed", "--timeout=30s")
    assert out.returncode == 0, out.stderr
    assert cluster.kubectl("get", "namespace", "doomed").returncode == 1
    refused = cluster.kubectl("-n", "doomed", "create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n")
    assert 'namespaces "doomed" not found' in refused.stderr


def test_get_watch_prints_changes(cluster, ns):
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir, "-n", ns,
         "get", "configmaps", "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        cluster.ok("-n", ns, "create", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n")
        cluster.ok("-n", ns, "delete", "configmap", "watched")
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.split()[:2] == ["DELETED", "watched"]:
                break
    finally:
        proc.kill()
        proc.wait()
    events = [line.split()[:2] for line in seen]
    assert ["ADDED", "watched"] in events and ["DELETED", "watched"] in events


def test_errors_print_upstream_messages(cluster, ns):
    out = cluster.kubectl("-n", ns, "get", "pod", "nope")
    assert out.returncode == 1 and out.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    dup = cluster.kubectl("-n", ns, "create", "-f", "-", input=POD.format(name="p0", app="web"))
    assert 'Error from server (AlreadyExists): error when creating "STDIN": pods "p0" already exists' in dup.stderr
    bad = cluster.kubectl("-n", ns, "create", "-f", "-", input=POD.format(name="Bad_Name", app="web"))
    assert 'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in bad.stderr
    typo = cluster.kubectl("-n", ns, "create", "-f", "-", input=POD.format(name="typo", app="web").replace("containers:", "containerz:"))
    assert typo.returncode != 0 and 'unknown field "spec.containerz"' in typo.stderr
