"""Audit: the policy's rules (unit), lumberjack rotation (unit), and a real server's log line per request stage.

The server runs with an audit.k8s.io/v1 Policy: secrets and the health
endpoints at None, configmaps at RequestResponse, pods/log and pods'
subresources at Request, everything else at Metadata, RequestReceived
omitted except by the rule for one namespace. Requests carry their own
Audit-ID so the test finds their lines; the log is read as it grows.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from megaplane.apiserver.audit.backend import RotatingFile
from megaplane.apiserver.audit.policy import Attributes, PolicyError, parse_policy
from tests.api.conftest import Cluster, start_megaplane

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz", "/livez"]
- level: None
  resources: [{group: "", resources: ["secrets"]}]
- level: RequestResponse
  resources: [{group: "", resources: ["configmaps"]}]
  omitManagedFields: true
  omitStages: ["RequestReceived"]
- level: Request
  verbs: ["create"]
  resources: [{group: "", resources: ["pods/*"]}]
  omitStages: ["RequestReceived"]
- level: Metadata
  users: ["system:unsecured"]
  verbs: ["get"]
  resources: [{group: "", resources: ["namespaces"], resourceNames: ["kube-system"]}]
- level: Metadata
  omitStages: ["RequestReceived"]
"""


def _attrs(verb: str = "get", resource: str = "pods", sub: str = "", name: str = "", ns: str = "default",
           group: str = "", user: str = "jane", groups: Tuple[str, ...] = ("dev",), path: str = "") -> Attributes:
    return Attributes(user, groups, verb, path or "/api/v1/x", not path, ns, group, resource, sub, name)


def test_policy_rules_in_order() -> None:
    policy = parse_policy({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "users": ["system:kube-proxy"]},
            {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get"]},
            {"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods/log", "*/status"]}]},
            {"level": "Request", "resources": [{"group": "apps", "resources": ["deployments/*"]}],
             "omitStages": ["ResponseStarted"]},
            {"level": "Metadata", "resources": [{"group": "", "resources": ["configmaps"],
                                                 "resourceNames": ["controller-leader"]}]},
            {"level": "None", "namespaces": ["kube-system"]},
            {"level": "Request", "nonResourceURLs": ["/api*"]},
            {"level": "Metadata", "resources": [{"group": ""}]},
        ]})
    assert policy.decide(_attrs(user="system:kube-proxy")).level == "None"
    assert policy.decide(_attrs(groups=("system:nodes",))).level == "None"
    assert policy.decide(_attrs("list", groups=("system:nodes",))).level == "Metadata"
    assert policy.decide(_attrs(sub="log")).level == "RequestResponse"
    assert policy.decide(_attrs(resource="nodes", sub="status", ns="")).level == "RequestResponse"
    assert policy.decide(_attrs(sub="exec")).level == "Metadata"
    d = policy.decide(_attrs(resource="deployments", group="apps", sub="scale"))
    assert d.level == "Request" and d.omit_stages == {"RequestReceived", "ResponseStarted"}
    # "deployments/*" matches the resource itself too (upstream's TrimRight comparison).
    assert policy.decide(_attrs(resource="deployments", group="apps", ns="kube-system")).level == "Request"
    assert policy.decide(_attrs(resource="replicasets", group="apps", ns="kube-system")).level == "None"
    assert policy.decide(_attrs(resource="configmaps", name="controller-leader", ns="kube-system")).level == "Metadata"
    assert policy.decide(_attrs(resource="configmaps", name="other", ns="kube-system")).level == "None"
    assert policy.decide(_attrs(path="/apis")).level == "Request"
    assert policy.decide(_attrs(path="/version")).level == "None"  # no rule: not audited
    assert policy.decide(_attrs(resource="leases", group="coordination.k8s.io")).level == "None"
    with pytest.raises(PolicyError, match='rules\\[0\\].level: Unsupported value: "Everything"'):
        parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]})
    with pytest.raises(PolicyError, match='omitStages: Unsupported value: "Later"'):
        parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["Later"], "rules": []})


def test_rotation_keeps_max_backups(tmp_path: Any) -> None:
    path = str(tmp_path / "audit.log")
    f = RotatingFile(path, max_size_mb=1, max_backups=2)
    line = b"x" * 1023 + b"\n"
    for _ in range(5 * 1024 + 10):  # five megabytes and a bit: four rotations
        f.write(line)
    f.close()
    backups = f.backups()
    assert len(backups) == 2, backups
    for b in backups:
        name = os.path.basename(b)
        assert name.startswith("audit-") and name.endswith(".log") and len(name) == len("audit-2006-01-02T15-04-05.000.log")
        assert os.path.getsize(b) == 1024 * 1024
    assert 0 < os.path.getsize(path) <= 1024 * 1024
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_panic_stage_for_a_handler_that_fails(tmp_path: Any) -> None:
    from megaplane.apiserver.audit.backend import LogBackend
    from megaplane.apiserver.audit.filter import Auditor, encode_event
    from megaplane.apiserver.http.messages import Request

    log = str(tmp_path / "audit.log")
    auditor = Auditor(parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                    "rules": [{"level": "Metadata"}]}), LogBackend(log, encode=encode_event))
    auditor.start()

    def broken(req: Request) -> Any:
        raise RuntimeError("boom")

    req = Request("GET", "/api/v1/namespaces/default/pods", "", {"audit-id": "id-panic"}, b"", ("10.0.0.7", 1))
    with pytest.raises(RuntimeError):
        auditor.wrap(broken)(req)
    auditor.stop()
    with open(log, "rb") as f:
        events = [json.loads(line) for line in f]
    assert [e["stage"] for e in events] == ["RequestReceived", "Panic"]
    assert events[1]["responseStatus"]["code"] == 500 and events[1]["sourceIPs"] == ["10.0.0.7"]
    assert events[1]["user"] == {"username": ""} and events[1]["objectRef"] == {"resource": "pods",
                                                                                "namespace": "default",
                                                                                "apiVersion": "v1"}


class Audited:
    def __init__(self, cluster: Cluster, log: str) -> None:
        self.cluster = cluster
        self.log = log

    def request(self, method: str, path: str, audit_id: str, body: Optional[Dict[str, Any]] = None
                ) -> Tuple[int, Dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.cluster.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Audit-ID": audit_id,
                                              "User-Agent": "audit-test/1.0"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
                return r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            e.read()
            return e.code, dict(e.headers)

    def lines(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        directory = os.path.dirname(self.log)
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as f:
                out += [json.loads(line) for line in f]
        return out

    def events_where(self, match: Any) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + 30
        while True:
            found = [e for e in self.lines() if match(e)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def events(self, audit_id: str, want: int) -> List[Dict[str, Any]]:
        """The events of one request, once `want` of them are in the log (the writer is asynchronous)."""
        deadline = time.monotonic() + 30
        while True:
            found = []
            for name in sorted(os.listdir(os.path.dirname(self.log))):
                with open(os.path.join(os.path.dirname(self.log), name), "rb") as f:
                    found += [json.loads(line) for line in f if audit_id.encode() in line]
            found = [e for e in found if e["auditID"] == audit_id]
            if len(found) >= want or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def audited() -> Iterator[Audited]:
    root = tempfile.mkdtemp(prefix="megaplane-audit-")
    policy = os.path.join(root, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    log = os.path.join(root, "audit", "audit.log")
    cluster = start_megaplane(root, "up", [
        "--data-dir", f"{root}/data", "--nodes", "0", "--scheduler=false", "--controllers", "",
        "--audit-policy-file", policy, "--audit-log-path", log, "--audit-log-maxsize", "1",
        "--audit-log-maxbackup", "1"])
    try:
        yield Audited(cluster, log)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_line_per_request_at_the_policy_level(audited: Audited) -> None:
    a = audited
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}, "data": {"k": "v"}}
    code, headers = a.request("POST", "/api/v1/namespaces/default/configmaps", "id-cm-create", cm)
    assert code == 201 and headers["Audit-Id"] == "id-cm-create"
    (event,) = a.events("id-cm-create", 1)
    assert event["level"] == "RequestResponse" and event["stage"] == "ResponseComplete"
    assert event["verb"] == "create" and event["requestURI"] == "/api/v1/namespaces/default/configmaps"
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "default", "apiVersion": "v1"}
    assert event["responseStatus"] == {"metadata": {}, "code": 201}
    assert event["user"]["username"] == "system:unsecured" and event["userAgent"] == "audit-test/1.0"
    assert event["sourceIPs"] == ["127.0.0.1"]
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert event["requestObject"] == cm
    assert event["responseObject"]["metadata"]["name"] == "audited" and event["responseObject"]["data"] == {"k": "v"}
    assert "managedFields" not in event["responseObject"]["metadata"]  # the rule's omitManagedFields
    assert event["requestReceivedTimestamp"] <= event["stageTimestamp"]

    # kubectl's typed create sends (and is answered in) protobuf: logged as the objects' JSON all the same.
    out = a.cluster.kubectl("create", "configmap", "typed", "--from-literal=a=b")
    assert out.returncode == 0, out.stderr
    events = a.events_where(lambda e: e["verb"] == "create" and e["objectRef"].get("resource") == "configmaps"
                            and (e.get("requestObject") or {}).get("metadata", {}).get("name") == "typed")
    assert events[0]["requestObject"]["data"] == {"a": "b"}
    assert events[0]["responseObject"]["metadata"]["name"] == "typed"

    # Metadata: no bodies; an error's Status is the responseStatus.
    code, headers = a.request("GET", "/api/v1/namespaces/default/services/missing", "id-svc-get")
    assert code == 404 and headers["Audit-Id"] == "id-svc-get"
    (event,) = a.events("id-svc-get", 1)
    assert event["level"] == "Metadata" and "requestObject" not in event and "responseObject" not in event
    assert event["objectRef"]["name"] == "missing"
    assert event["responseStatus"]["code"] == 404 and event["responseStatus"]["reason"] == "NotFound"
    assert event["responseStatus"]["message"] == 'services "missing" not found'

    # None: nothing logged, though the request is answered and identified.
    code, headers = a.request("GET", "/api/v1/namespaces/default/secrets", "id-secrets")
    assert code == 200 and headers["Audit-Id"] == "id-secrets"
    # Request: the body, not the response; a rule without omitStages keeps RequestReceived.
    code, _ = a.request("POST", "/api/v1/namespaces/default/pods/nosuch/eviction", "id-evict",
                        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "nosuch"}})
    assert code == 404
    (event,) = a.events("id-evict", 1)
    assert event["level"] == "Request" and event["objectRef"]["subresource"] == "eviction"
    assert event["requestObject"]["kind"] == "Eviction" and "responseObject" not in event
    code, _ = a.request("GET", "/api/v1/namespaces/kube-system", "id-ns")
    assert code == 200
    stages = [e["stage"] for e in a.events("id-ns", 2)]
    assert stages == ["RequestReceived", "ResponseComplete"]
    # A watch: ResponseStarted when the stream starts, ResponseComplete when it ends.
    code, _ = a.request("GET", "/api/v1/namespaces/default/services?watch=1&timeoutSeconds=1", "id-watch")
    assert code == 200
    stages = [e["stage"] for e in a.events("id-watch", 2)]
    assert stages == ["ResponseStarted", "ResponseComplete"]
    assert a.events("id-secrets", 0) == []

    # The in-process components' loopback requests are audited too (here: the server's own bootstrap).
    own = a.events_where(lambda e: e["user"]["username"] == "system:apiserver")
    assert own and all(e["sourceIPs"] == ["127.0.0.1"] and e["requestURI"].startswith("/api") for e in own)
    assert {e["stage"] for e in own} == {"ResponseComplete"}  # RequestReceived omitted by the rules as over HTTP

    metrics = urllib.request.urlopen(a.cluster.url + "/metrics", timeout=30).read().decode()
    assert 'apiserver_audit_error_total{plugin="log"} 0.0' in metrics
    assert 'apiserver_audit_level_total{level="RequestResponse"}' in metrics
    assert 'apiserver_audit_level_total{level="None"}' in metrics
    assert any(line.startswith("apiserver_audit_event_total ") and float(line.split()[1]) >= 6
               for line in metrics.splitlines())


def test_log_rotates_at_maxsize(audited: Audited) -> None:
    a = audited
    big = "y" * 60_000
    for i in range(40):  # ~2 x 60 KB per line (request and response object): ~5 MB of log, several rotations
        code, _ = a.request("POST", "/api/v1/namespaces/default/configmaps", f"id-big-{i}",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big-{i}"},
                             "data": {"k": big}})
        assert code == 201
    assert len(a.events("id-big-39", 1)) == 1
    directory = os.path.dirname(a.log)
    names = sorted(os.listdir(directory))
    backups = [n for n in names if n != "audit.log"]
    assert len(backups) == 1, names  # --audit-log-maxbackup 1
    assert os.path.getsize(a.log) <= 1024 * 1024 and os.path.getsize(os.path.join(directory, backups[0])) <= 1024 * 1024
