"""Authorization decisions in process: one API server with Node,RBAC and loopback clients as various users.

The rule matching corners (groups, ServiceAccount subjects, resourceNames,
`*/scale`, non-resource prefixes), the escalation exceptions (`escalate`,
`bind`, aggregationRule), review validation, and the index following RBAC
changes. Real registry, real stores; no HTTP (test_authz_rbac.py has that).
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterator, Tuple

import orjson
import pytest

from megaplane.apimachinery.user import UserInfo
from megaplane.apiserver.authz.config import AuthorizationConfig
from megaplane.apiserver.loopback import LoopbackTransport
from megaplane.apiserver.server import APIServer, APIServerConfig
from megaplane.client import Client, ForbiddenError, InvalidError
from megaplane.storage import EmbeddedStorage
from megaplane.store import Store

RBAC = "rbac.authorization.k8s.io/v1"
AUTHENTICATED = "system:authenticated"


class Env:
    def __init__(self, loop: asyncio.AbstractEventLoop, api: APIServer) -> None:
        self.loop = loop
        self.api = api
        self.admin = Client(LoopbackTransport(api.registry))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def client(self, name: str, *groups: str) -> Client:
        return Client(LoopbackTransport(self.api.registry, UserInfo(name, groups=(*groups, AUTHENTICATED)),
                                        self.api.authz))

    def allowed(self, user: Tuple[str, Tuple[str, ...]], verb: str, group: str, resource: str, sub: str = "",
                ns: str = "", name: str = "") -> bool:
        who = UserInfo(user[0], groups=(*user[1], AUTHENTICATED))
        return self.api.authz.decide(who, verb, group, resource, sub, ns, name)[0] == 1

    def create(self, plural: str, obj: Dict[str, Any], namespace: str = "") -> Any:
        return self.run(self.admin.resource(RBAC, plural).create(obj, namespace or None))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    api = APIServer(EmbeddedStorage(Store(None)), APIServerConfig(authorization=AuthorizationConfig(["Node", "RBAC"])))
    loop.run_until_complete(api.start())
    e = Env(loop, api)
    for ns in ("default", "kube-system", "kube-node-lease", "a", "b"):
        e.run(e.admin.resource("namespaces").create({"metadata": {"name": ns}}))
    try:
        yield e
    finally:
        loop.run_until_complete(api.stop())
        loop.close()


def _role(name: str, rules: Any, ns: str = "", **extra: Any) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "rules": rules, **extra}


def _binding(name: str, kind: str, role: str, subjects: Any, ns: str = "") -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects}


def test_rules_match_groups_service_accounts_names_and_wildcards(env: Env) -> None:
    env.create("clusterroles", _role("t-scale", [
        {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["only-this"], "verbs": ["get"]},
        {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]}]))
    env.create("clusterrolebindings", _binding("t-scale", "ClusterRole", "t-scale", [
        {"kind": "Group", "name": "scalers"}]))
    env.create("rolebindings", _binding("t-sa", "ClusterRole", "t-scale", [
        {"kind": "ServiceAccount", "name": "robot"}], ns="a"), "a")
    scaler = ("u1", ("scalers",))
    assert env.allowed(scaler, "get", "apps", "deployments", "scale", "a", "web")
    assert not env.allowed(scaler, "update", "apps", "deployments", "scale", "a", "web")
    assert not env.allowed(scaler, "get", "apps", "deployments", "", "a", "web")
    assert env.allowed(scaler, "get", "", "configmaps", "", "b", "only-this")
    assert not env.allowed(scaler, "get", "", "configmaps", "", "b", "other")
    assert not env.allowed(scaler, "list", "", "configmaps", "", "b", "")
    who = UserInfo("u1", groups=("scalers", AUTHENTICATED))
    assert env.api.authz.decide_path(who, "get", "/logs/x/y")[0] == 1
    assert env.api.authz.decide_path(who, "get", "/logsx")[0] != 1
    robot = ("system:serviceaccount:a:robot", ("system:serviceaccounts", "system:serviceaccounts:a"))
    assert env.allowed(robot, "get", "apps", "statefulsets", "scale", "a", "db")
    assert not env.allowed(robot, "get", "apps", "statefulsets", "scale", "b", "db")
    # the index follows deletes
    env.run(env.admin.resource(RBAC, "clusterrolebindings").delete("t-scale"))
    assert not env.allowed(scaler, "get", "apps", "deployments", "scale", "a", "web")


def test_forbidden_messages_name_the_scope(env: Env) -> None:
    carol = env.client("carol")
    with pytest.raises(ForbiddenError) as err:
        env.run(carol.resource("nodes").get("n1"))
    assert err.value.message == (
        'nodes "n1" is forbidden: User "carol" cannot get resource "nodes" in API group "" at the cluster scope')
    assert err.value.details == {"name": "n1", "kind": "nodes"}
    with pytest.raises(ForbiddenError) as err:
        env.run(carol.resource("pods").update_status({"metadata": {"name": "p", "namespace": "a"}}, "a"))
    assert 'cannot update resource "pods/status" in API group "" in the namespace "a"' in err.value.message


def test_escalate_and_bind_verbs_allow_granting_what_one_does_not_hold(env: Env) -> None:
    env.create("roles", _role("rbac-admin", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["create", "update", "get"]}], ns="b"), "b")
    env.create("rolebindings", _binding("dave", "Role", "rbac-admin", [{"kind": "User", "name": "dave"}], ns="b"), "b")
    dave = env.client("dave")
    secrets_role = _role("secrets", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], ns="b")
    with pytest.raises(ForbiddenError) as err:
        env.run(dave.resource(RBAC, "roles").create(secrets_role, "b"))
    assert "is attempting to grant RBAC permissions not currently held" in err.value.message
    env.create("roles", _role("escalator", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                                             "verbs": ["escalate"]}], ns="b"), "b")
    env.create("rolebindings", _binding("dave-esc", "Role", "escalator", [{"kind": "User", "name": "dave"}], ns="b"),
               "b")
    env.run(dave.resource(RBAC, "roles").create(secrets_role, "b"))
    binding = _binding("to-secrets", "Role", "secrets", [{"kind": "User", "name": "erin"}], ns="b")
    with pytest.raises(ForbiddenError):
        env.run(dave.resource(RBAC, "rolebindings").create(binding, "b"))
    env.create("roles", _role("binder", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                                          "verbs": ["bind"], "resourceNames": ["secrets"]}], ns="b"), "b")
    env.create("rolebindings", _binding("dave-bind", "Role", "binder", [{"kind": "User", "name": "dave"}], ns="b"),
               "b")
    env.run(dave.resource(RBAC, "rolebindings").create(binding, "b"))
    assert env.allowed(("erin", ()), "get", "", "secrets", "", "b", "x")


def test_an_aggregation_rule_needs_full_authority(env: Env) -> None:
    env.create("clusterroles", _role("cr-writer", [{"apiGroups": ["rbac.authorization.k8s.io"],
                                                    "resources": ["clusterroles"], "verbs": ["create"]}]))
    env.create("clusterrolebindings", _binding("frank", "ClusterRole", "cr-writer", [{"kind": "User", "name": "frank"}]))
    frank = env.client("frank")
    with pytest.raises(ForbiddenError) as err:
        env.run(frank.resource(RBAC, "clusterroles").create(_role("agg", None, aggregationRule={
            "clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]})))
    assert err.value.message.endswith(
        "must have cluster-admin privileges to use the aggregationRule")


def test_reviews(env: Env) -> None:
    reviews = env.admin.transport

    async def post(plural: str, body: Dict[str, Any], ns: str = "") -> Dict[str, Any]:
        from megaplane.client.resources import ResourceRef

        ref = ResourceRef("authorization.k8s.io", "v1", plural, body["kind"], plural.startswith("local"))
        raw = await reviews.create(ref, ns or None, orjson.dumps(body))
        return orjson.loads(raw)  # type: ignore[no-any-return]

    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"}
    with pytest.raises(InvalidError) as err:
        env.run(post("subjectaccessreviews", dict(sar, spec={})))
    assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in err.value.message
    out = env.run(post("subjectaccessreviews", dict(sar, spec={
        "user": "system:kube-scheduler", "resourceAttributes": {"verb": "create", "resource": "pods",
                                                                "subresource": "binding", "namespace": "a"}})))
    assert out["status"] == {"allowed": True}
    lsar = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "a"},
            "spec": {"user": "nobody", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "b"}}}
    with pytest.raises(Exception) as bad:
        env.run(post("localsubjectaccessreviews", lsar, "a"))
    assert "spec.resourceAttributes.namespace must match namespace: a" in str(bad.value)


def test_the_fleet_identity_gets_node_restrictions_for_any_node(env: Env) -> None:
    from megaplane.apimachinery.user import FLEET_GROUP, FLEET_USER, NODES_GROUP

    fleet = env.client(FLEET_USER, FLEET_GROUP, NODES_GROUP)
    env.run(fleet.resource("nodes").create({"metadata": {"name": "sim-1"}}))
    with pytest.raises(ForbiddenError) as err:
        env.run(fleet.resource("nodes").create({"metadata": {
            "name": "sim-2", "labels": {"node-restriction.kubernetes.io/pool": "x"}}}))
    assert "is not allowed to set the following labels: node-restriction.kubernetes.io/pool" in err.value.message
    with pytest.raises(ForbiddenError) as err:
        env.run(fleet.resource("nodes").create({"metadata": {
            "name": "sim-3", "labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux",
                                        "node.kubernetes.io/instance-type": "m"}}}))
    assert err.value.message.endswith("is not allowed to set the following labels: node-role.kubernetes.io/worker")
    env.run(fleet.resource("leases").create({"metadata": {"name": "sim-1", "namespace": "kube-node-lease"}},
                                            "kube-node-lease"))
    with pytest.raises(ForbiddenError) as err:
        env.run(fleet.resource("leases").create({"metadata": {"name": "sim-1", "namespace": "a"}}, "a"))
    assert 'can only access leases in the "kube-node-lease" namespace' in err.value.message
    env.run(env.admin.resource("pods").create({"metadata": {"name": "unbound", "namespace": "a"},
                                               "spec": {"containers": [{"name": "c", "image": "i"}]}}, "a"))
    with pytest.raises(ForbiddenError) as err:
        env.run(fleet.resource("pods").update_status({"metadata": {"name": "unbound", "namespace": "a"},
                                                      "status": {"phase": "Running"}}, "a"))
    assert "can only update pod status for pods with their own node as spec.nodeName" in err.value.message
    with pytest.raises(ForbiddenError):
        env.run(fleet.resource("secrets").list("a"))
