"""Authorization end to end: `megaplane up` with its default Node,RBAC, kubectl as the admin and as others.

One server for the module (`--controllers clusterrole-aggregation-controller`,
no nodes): the admin's client certificate (system:masters), static tokens
for a restricted user, a node identity and a user allowed to write RBAC
objects, and anonymous HTTPS. Forbidden requests get upstream's messages
and change nothing; a Role and RoleBinding grant exactly their rules;
escalation is refused; a node touches only its own Node and Lease.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import pytest
import yaml

from tests.api.conftest import KUBECTL, Cluster, start_megaplane

TOKENS_CSV = ('alice-token,alice,uid-alice\n'
              'rbac-token,rbac-writer,uid-rw\n'
              'node1-token,system:node:n1,uid-n1,system:nodes\n')
GROUPS_OF_ALICE = '["system:authenticated"]'


class Server:
    def __init__(self, cluster: Cluster, root: str) -> None:
        self.cluster = cluster
        self.root = root
        with open(cluster.kubeconfig) as f:
            self.https = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
        self.ca = os.path.join(root, "data", "pki", "ca.crt")
        self.bare = os.path.join(root, "bare.kubeconfig")
        with open(self.bare, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                            "clusters": [{"name": "c", "cluster": {"server": self.https,
                                                                   "certificate-authority": self.ca}}],
                            "users": [{"name": "u", "user": {}}],
                            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}, f)

    def admin(self, *args: str, input: Optional[str] = None) -> Any:
        return self.cluster.kubectl(*args, input=input)

    def ok(self, *args: str, input: Optional[str] = None) -> str:
        return self.cluster.ok(*args, input=input)

    def as_token(self, token: str, *args: str, input: Optional[str] = None) -> Any:
        import subprocess

        return subprocess.run([KUBECTL, "--kubeconfig", self.bare, "--cache-dir", self.cluster.cache_dir,
                               "--token", token, *args], input=input, capture_output=True, text=True, timeout=60)

    def https_request(self, method: str, path: str, token: str = "", body: Optional[Dict[str, Any]] = None,
                      content_type: str = "application/json") -> Tuple[int, Any]:
        ctx = ssl.create_default_context(cafile=self.ca)
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.https + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                raw = r.read()
                code = r.status
        except urllib.error.HTTPError as e:
            raw, code = e.read(), e.code
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode()


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = tempfile.mkdtemp(prefix="megaplane-authz-")
    tokens = os.path.join(root, "tokens.csv")
    with open(tokens, "w") as f:
        f.write(TOKENS_CSV)
    cluster = start_megaplane(root, "up", ["--data-dir", os.path.join(root, "data"), "--token-auth-file", tokens,
                                           "--controllers", "clusterrole-aggregation-controller"], timeout=90)
    try:
        yield Server(cluster, root)
    finally:
        cluster.proc.terminate()
        cluster.proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def test_admin_sees_the_bootstrap_policy_and_may_do_anything(server: Server) -> None:
    roles = server.ok("get", "clusterroles", "-o", "name").split()
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                 "system:public-info-viewer", "system:kube-scheduler", "system:kube-controller-manager",
                 "system:node", "system:node-proxier", "system:monitoring",
                 "system:controller:replicaset-controller"):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in roles
    binding = json.loads(server.ok("get", "clusterrolebinding", "cluster-admin", "-o", "json"))
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:masters"}]
    assert binding["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert server.ok("auth", "can-i", "*", "*").strip() == "yes"
    # view is aggregated from system:aggregate-to-view by the controller
    view = wait_for(lambda: json.loads(server.ok("get", "clusterrole", "view", "-o", "json")).get("rules"),
                    "view's aggregated rules")
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]} in view


def test_a_restricted_user_is_forbidden_with_upstreams_messages_and_nothing_changes(server: Server) -> None:
    out = server.as_token("alice-token", "get", "secrets", "-n", "default")
    assert out.returncode != 0
    assert ('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" in '
            'API group "" in the namespace "default"') in out.stderr
    out = server.as_token("alice-token", "get", "nodes")
    assert ('nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster '
            'scope') in out.stderr
    out = server.as_token("alice-token", "create", "configmap", "nope", "-n", "default")
    assert out.returncode != 0 and 'cannot create resource "configmaps"' in out.stderr
    assert "NotFound" in server.admin("get", "configmap", "nope", "-n", "default").stderr
    code, status = server.https_request("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                        token="alice-token")
    assert code == 403
    assert status == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" in '
                   'API group "apps" in the namespace "default"',
        "details": {"name": "web", "group": "apps", "kind": "deployments"}}
    code, status = server.https_request("GET", "/metrics", token="alice-token")
    assert code == 403 and status["message"] == 'forbidden: User "alice" cannot get path "/metrics"'
    # what every authenticated user may: discovery, self reviews
    assert server.as_token("alice-token", "auth", "whoami", "-o", "json").returncode == 0
    assert server.as_token("alice-token", "api-versions").returncode == 0


def test_a_role_and_binding_grant_exactly_their_rules(server: Server) -> None:
    server.ok("create", "namespace", "team-a")
    server.ok("create", "namespace", "team-b")
    assert server.as_token("alice-token", "auth", "can-i", "list", "secrets", "-n", "team-a").stdout.strip() == "no"
    server.ok("create", "role", "secret-reader", "-n", "team-a", "--verb=get,list", "--resource=secrets")
    server.ok("create", "rolebinding", "alice-reads", "-n", "team-a", "--role=secret-reader", "--user=alice")
    server.ok("create", "secret", "generic", "s1", "-n", "team-a", "--from-literal=k=v")

    def can(verb: str, what: str, ns: str) -> str:
        return str(server.as_token("alice-token", "auth", "can-i", verb, what, "-n", ns).stdout.strip())

    assert wait_for(lambda: can("list", "secrets", "team-a") == "yes", "alice's binding")
    assert can("get", "secrets", "team-a") == "yes"
    assert can("delete", "secrets", "team-a") == "no"
    assert can("list", "secrets", "team-b") == "no"
    assert can("list", "pods", "team-a") == "no"
    assert "s1" in server.as_token("alice-token", "get", "secrets", "-n", "team-a").stdout
    assert server.as_token("alice-token", "delete", "secret", "s1", "-n", "team-a").returncode != 0
    assert "s1" in server.ok("get", "secrets", "-n", "team-a")
    listed = server.as_token("alice-token", "auth", "can-i", "--list", "-n", "team-a").stdout
    assert any(line.split()[:1] == ["secrets"] and "[get list]" in line for line in listed.splitlines()), listed
    # SubjectAccessReview as the admin asks about alice
    code, review = server.https_request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                        token="rbac-token", body={
                                            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                            "spec": {"user": "alice", "resourceAttributes": {
                                                "namespace": "team-a", "verb": "get", "resource": "secrets"}}})
    assert code == 403  # rbac-writer may not create SubjectAccessReviews
    sar = json.loads(server.ok("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "alice", "groups": ["system:authenticated"],
                 "resourceAttributes": {"namespace": "team-a", "verb": "get", "resource": "secrets"}}})))
    assert sar["status"]["allowed"] is True
    wide = server.ok("get", "rolebinding", "alice-reads", "-n", "team-a", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert wide[1].split()[:2] == ["alice-reads", "Role/secret-reader"] and wide[1].split()[3] == "alice"
    assert server.ok("get", "role", "secret-reader", "-n", "team-a").splitlines()[0].split() == [
        "NAME", "CREATED", "AT"]
    # roleRef may not change
    out = server.admin("patch", "rolebinding", "alice-reads", "-n", "team-a", "--type=merge",
                       "-p", '{"roleRef":{"kind":"ClusterRole","name":"view"}}')
    assert "cannot change roleRef" in out.stderr


def test_escalation_is_refused(server: Server) -> None:
    server.ok("create", "namespace", "esc")
    server.ok("create", "role", "rbac-editor", "-n", "esc", "--verb=create,get,list",
              "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,configmaps")
    server.ok("create", "rolebinding", "rw", "-n", "esc", "--role=rbac-editor", "--user=rbac-writer")
    wait_for(lambda: server.as_token("rbac-token", "auth", "can-i", "create", "roles", "-n", "esc").stdout.strip()
             == "yes", "rbac-writer's binding")
    out = server.as_token("rbac-token", "create", "role", "too-much", "-n", "esc", "--verb=delete",
                          "--resource=secrets")
    assert out.returncode != 0
    assert ('roles.rbac.authorization.k8s.io "too-much" is forbidden: user "rbac-writer" '
            '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
            '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}') in out.stderr
    assert "NotFound" in server.admin("get", "role", "too-much", "-n", "esc").stderr
    # rules it holds may be granted
    server.as_token("rbac-token", "create", "role", "cm-reader", "-n", "esc", "--verb=get", "--resource=configmaps")
    assert "cm-reader" in server.ok("get", "roles", "-n", "esc")
    out = server.as_token("rbac-token", "create", "rolebinding", "to-admin", "-n", "esc", "--clusterrole=admin",
                          "--user=rbac-writer")
    assert out.returncode != 0 and "is attempting to grant RBAC permissions not currently held" in out.stderr
    assert server.as_token("rbac-token", "create", "rolebinding", "ok", "-n", "esc", "--role=cm-reader",
                           "--user=alice").returncode == 0


def test_a_node_touches_only_its_own_node_and_lease(server: Server) -> None:
    for name in ("n1", "n2"):
        server.ok("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                           "metadata": {"name": name}}))
        server.ok("create", "-f", "-", input=json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": name}}))

    def lease_patch(name: str) -> Tuple[int, Any]:
        return server.https_request("PATCH", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}",
                                    token="node1-token", body={"spec": {"leaseDurationSeconds": 40}},
                                    content_type="application/merge-patch+json")

    code, status = lease_patch("n2")
    assert code == 403, status
    assert status["message"] == (
        'leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot patch resource "leases" in API '
        'group "coordination.k8s.io" in the namespace "kube-node-lease": can only access node lease with the same '
        "name as the requesting node")
    assert "leaseDurationSeconds" not in server.ok("get", "lease", "n2", "-n", "kube-node-lease", "-o", "json")
    code, _ = lease_patch("n1")
    assert code == 200
    out = server.as_token("node1-token", "label", "node", "n2", "x=y")
    assert out.returncode != 0 and 'node "n1" is not allowed to modify node "n2"' in out.stderr
    assert server.as_token("node1-token", "label", "node", "n1", "x=y").returncode == 0
    out = server.as_token("node1-token", "label", "node", "n1", "node-restriction.kubernetes.io/pool=a")
    assert out.returncode != 0
    assert ('nodes "n1" is forbidden: node "n1" is not allowed to modify labels: '
            'node-restriction.kubernetes.io/pool') in out.stderr
    out = server.as_token("node1-token", "get", "secrets", "-n", "default")
    assert out.returncode != 0 and "Forbidden" in out.stderr


def test_anonymous_gets_403_on_resources_and_200_on_health_and_version(server: Server) -> None:
    code, status = server.https_request("GET", "/api/v1/namespaces/default/secrets")
    assert code == 403
    assert status["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in '
                                 'API group "" in the namespace "default"')
    assert status["details"] == {"kind": "secrets"}
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        code, _ = server.https_request("GET", path)
        assert code == 200, path
    code, status = server.https_request("GET", "/api")
    assert code == 403 and status["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'


def test_invalid_rbac_objects_are_422(server: Server) -> None:
    out = server.admin("create", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bad", "namespace": "default"},
        "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, {"apiGroups": [""], "verbs": ["get"]}]}))
    assert out.returncode != 0
    assert ('The Role "bad" is invalid: \n* rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: '
            'namespaced rules cannot apply to non-resource URLs\n* rules[1].resources: Required value: resource '
            'rules must supply at least one resource') in out.stderr
    out = server.admin("create", "-f", "-", input=json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "bad"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "view"},
        "subjects": [{"kind": "User", "name": "x"}]}))
    assert ('The ClusterRoleBinding "bad" is invalid: roleRef.kind: Unsupported value: "Role": supported values: '
            '"ClusterRole"') in out.stderr


def test_impersonation_is_authorized_by_the_impersonate_verb(server: Server) -> None:
    server.ok("create", "namespace", "imp")
    server.ok("create", "role", "pod-reader", "-n", "imp", "--verb=list", "--resource=pods")
    server.ok("create", "rolebinding", "alice-pods", "-n", "imp", "--role=pod-reader", "--user=alice")
    assert wait_for(lambda: server.admin("auth", "can-i", "list", "pods", "-n", "imp", "--as=alice").stdout.strip()
                    == "yes", "alice's binding seen through impersonation")
    assert server.admin("auth", "can-i", "list", "pods", "-n", "default", "--as=alice").stdout.strip() == "no"
    out = server.admin("get", "secrets", "-n", "imp", "--as=alice")
    assert 'User "alice" cannot list resource "secrets" in API group "" in the namespace "imp"' in out.stderr
    whoami = json.loads(server.ok("auth", "whoami", "-o", "json", "--as=alice", "--as-group=devs"))
    assert whoami["status"]["userInfo"]["username"] == "alice"
    assert whoami["status"]["userInfo"]["groups"] == ["devs", "system:authenticated"]
    out = server.as_token("alice-token", "get", "pods", "-n", "imp", "--as=bob")
    assert ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the '
            'cluster scope') in out.stderr


def test_components_in_up_work_under_their_own_roles(server: Server) -> None:
    """The scheduler (system:kube-scheduler) binds and the fleet (system:megaplane:fleet) runs a pod."""
    server.ok("create", "namespace", "work")
    server.ok("run", "p", "-n", "work", "--image=nginx", "--restart=Never")

    def running() -> bool:
        pod = json.loads(server.ok("get", "pod", "p", "-n", "work", "-o", "json"))
        return bool(pod["spec"].get("nodeName")) and pod["status"].get("phase") == "Running"

    wait_for(running, "pod p to be scheduled and running")
    out = server.as_token("node1-token", "create", "--validate=false", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": "kube-node-lease"}}))
    assert out.returncode == 0, out.stderr
    rules = json.loads(out.stdout)
    assert {"verbs": ["create", "delete", "get", "patch", "update"], "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"]} in rules["status"]["resourceRules"]


def test_a_controller_manager_process_writes_as_each_controllers_service_account(server: Server) -> None:
    """--use-service-account-credentials with the controller-manager.kubeconfig identity under RBAC."""
    import subprocess
    import sys

    server.ok("create", "namespace", "cm")
    log = open(os.path.join(server.root, "controller-manager.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "controller-manager", "--kubeconfig",
                             os.path.join(server.root, "data", "controller-manager.kubeconfig"),
                             "--use-service-account-credentials", "--leader-elect=false",
                             "--controllers", "replicaset"], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        server.ok("create", "-n", "cm", "-f", "-", input=json.dumps({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                     "template": {"metadata": {"labels": {"app": "rs"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
        wait_for(lambda: len(json.loads(server.ok("get", "pods", "-n", "cm", "-l", "app=rs", "-o", "json"))["items"])
                 == 2, "the replicaset controller's pods")
        assert "replicaset-controller" in server.ok("get", "serviceaccounts", "-n", "kube-system", "-o", "name")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
