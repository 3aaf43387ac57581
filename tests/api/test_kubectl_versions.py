"""Every kubectl from 1.27 to 1.33 (the SDK's `kubectl.1.NN` builds beside /usr/bin/kubectl) against one server.

One scenario per version, each in its own namespace of a shared `megaplane
up`: the commands of tests/api/test_kubectl.py that differ most between
versions in what they ask the server for: apply with client-side
validation (1.27 reads the protobuf /openapi/v2, later ones /openapi/v3),
the three patch types, edit through KUBE_EDITOR, scale, rollout status,
diff (a server-side dry run), wait, explain, api-resources, label and
annotate, typed creates (protobuf bodies), delete, and the errors of
logs/exec and a missing object.
"""

from __future__ import annotations

import glob
import json
import os
import stat
import subprocess
from typing import Optional

import pytest
import yaml

from tests.api.conftest import KUBECTL, Cluster

BIN = os.path.dirname(os.path.realpath(KUBECTL))
VERSIONS = sorted(
    (os.path.basename(p).split(".", 1)[1] for p in glob.glob(os.path.join(BIN, "kubectl.1.*"))),
    key=lambda v: tuple(int(x) for x in v.split(".")),
)
WANTED = [f"1.{m}" for m in range(27, 34)]

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 0
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
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  a: b
"""


class Kubectl:
    def __init__(self, cluster: Cluster, version: str, ns: str, root: str) -> None:
        self.binary = os.path.join(BIN, f"kubectl.{version}")
        self.cluster = cluster
        self.ns = ns
        self.cache = os.path.join(root, f"cache-{version}")
        self.env = dict(os.environ)

    def run(self, *args: str, input: Optional[str] = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, "--kubeconfig", self.cluster.kubeconfig, "--cache-dir", self.cache, "-n", self.ns, *args],
            input=input, capture_output=True, text=True, timeout=60, env=self.env,
        )

    def ok(self, *args: str, input: Optional[str] = None) -> str:
        out = self.run(*args, input=input)
        assert out.returncode == 0, f"kubectl {' '.join(args)} failed:\n{out.stderr}"
        return out.stdout


def test_every_wanted_version_is_here() -> None:
    missing = [v for v in WANTED if v not in VERSIONS]
    if missing:
        pytest.skip(f"kubectl builds not installed: {missing}")


@pytest.mark.parametrize("version", [v for v in WANTED if v in VERSIONS])
def test_kubectl_version_scenario(cluster: Cluster, version: str, tmp_path: "os.PathLike[str]") -> None:
    ns = "k" + version.replace(".", "")
    k = Kubectl(cluster, version, ns, str(tmp_path))
    info = json.loads(k.ok("version", "-o", "json"))
    assert info["clientVersion"]["minor"] == version.split(".")[1] and info["serverVersion"]["minor"] == "32"
    resources = k.ok("api-resources").splitlines()
    assert any(line.startswith("deployments") and "apps/v1" in line for line in resources)
    k.ok("create", "namespace", ns)

    # apply with client-side validation, twice
    assert k.ok("apply", "-f", "-", input=MANIFEST).splitlines() == ["deployment.apps/web created",
                                                                      "configmap/cfg created"]
    assert k.ok("apply", "-f", "-", input=MANIFEST).splitlines() == ["deployment.apps/web unchanged",
                                                                      "configmap/cfg unchanged"]
    typo = k.run("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatax:\n  a: b\n")
    assert typo.returncode != 0 and 'unknown field "datax"' in typo.stderr, typo.stderr

    # get forms
    wide = k.ok("get", "deploy", "-o", "wide").splitlines()
    assert wide[0].split()[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert wide[1].split()[0] == "web" and wide[1].split()[-3:] == ["nginx", "nginx:1.25", "app=web"]
    doc = yaml.safe_load(k.ok("get", "deploy", "web", "-o", "yaml"))
    assert doc["spec"]["replicas"] == 0 and doc["metadata"]["generation"] == 1

    # typed create (a protobuf body), scale
    assert k.ok("create", "deployment", "d1", "--image=nginx:1.25") == "deployment.apps/d1 created\n"
    assert k.ok("scale", "deployment", "d1", "--replicas=3") == "deployment.apps/d1 scaled\n"
    assert json.loads(k.ok("get", "deploy", "d1", "-o", "json"))["spec"]["replicas"] == 3

    # rollout status once the status says the generation is observed (no deployment controller here)
    k.ok("patch", "deployment", "web", "--subresource=status", "--type=merge",
         "-p", '{"status":{"observedGeneration":1}}')
    assert k.ok("rollout", "status", "deployment/web", "--timeout=30s") == (
        'deployment "web" successfully rolled out\n')

    # the three patch types, label, annotate
    assert k.ok("patch", "cm", "cfg", "-p", '{"metadata":{"labels":{"s":"1"}}}') == "configmap/cfg patched\n"
    assert k.ok("patch", "cm", "cfg", "--type=merge", "-p", '{"data":{"m":"2"}}') == "configmap/cfg patched\n"
    assert k.ok("patch", "cm", "cfg", "--type=json", "-p", '[{"op":"add","path":"/data/j","value":"3"}]') == (
        "configmap/cfg patched\n")
    assert k.ok("label", "cm", "cfg", "env=prod") == "configmap/cfg labeled\n"
    # (kubectl 1.27 prints "annotate": the message is the client's own, not the server's)
    assert k.ok("annotate", "cm", "cfg", "note=hi") in ("configmap/cfg annotated\n", "configmap/cfg annotate\n")

    # edit through KUBE_EDITOR
    editor = os.path.join(str(tmp_path), "editor.sh")
    with open(editor, "w") as f:
        f.write("#!/bin/sh\nsed -i 's/^  a: b$/  a: edited/' \"$1\"\n")
    os.chmod(editor, stat.S_IRWXU)
    k.env["KUBE_EDITOR"] = editor
    assert k.ok("edit", "cm", "cfg") == "configmap/cfg edited\n"
    cm = json.loads(k.ok("get", "cm", "cfg", "-o", "json"))
    assert cm["data"] == {"a": "edited", "m": "2", "j": "3"}
    assert cm["metadata"]["labels"] == {"s": "1", "env": "prod"} and cm["metadata"]["annotations"]["note"] == "hi"

    # wait, diff, explain
    assert k.ok("wait", "--for=jsonpath={.data.a}=edited", "configmap/cfg", "--timeout=30s") == (
        "configmap/cfg condition met\n")
    changed = MANIFEST.split("---")[1].replace("a: b", "a: changed")
    diff = k.run("diff", "-f", "-", input=changed)
    assert diff.returncode == 1 and "+  a: changed" in diff.stdout and "-  a: edited" in diff.stdout, diff.stderr
    assert json.loads(k.ok("get", "cm", "cfg", "-o", "json"))["data"]["a"] == "edited"  # a dry run only
    explained = k.ok("explain", "deployment.spec.replicas")
    assert "replicas" in explained and "integer" in explained

    # errors
    k.ok("run", "p", "--image=busybox")
    for args in (["logs", "p"], ["exec", "p", "--", "true"]):
        out = k.run(*args)
        assert out.returncode == 1 and out.stderr.startswith("Error from server"), out.stderr
    missing = k.run("get", "deploy", "nope")
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'

    # delete
    out = k.ok("delete", "deployment", "d1")
    assert out == 'deployment.apps "d1" deleted\n' or out.startswith('deployment.apps "d1" deleted from')
    assert k.run("get", "deploy", "d1").returncode == 1

