"""POST pods/{name}/eviction and policy/v1 PodDisruptionBudgets on a real `megaplane up`, over sockets.

The cluster runs no disruption controller (tests/api clusters run only the
API server's own controllers), so each test writes the PDB status the
controller would have written, through the status subresource, and then
checks what the eviction answers and what it changed. Expected Status
bodies are upstream's (pkg/registry/core/pod/storage/eviction.go,
pkg/apis/policy/validation); nothing sleeps, nothing asserts a time.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import itertools
import json
from typing import Any, Dict, List, Optional, Tuple

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.api.conftest import Cluster

NS = "default"
POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
_names = itertools.count()

Obj = Dict[str, Any]


def request(cluster: Cluster, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None,
            content_type: str = "application/json") -> Tuple[int, Obj, Dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": content_type} if data is not None else {})
    resp = conn.getresponse()
    payload = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, (json.loads(payload) if payload else {}), headers


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def pod_path(name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{NS}/pods/{name}" + (f"/{sub}" if sub else "")


def pdb_path(name: str = "", sub: str = "") -> str:
    base = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"
    return base + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def make_pod(cluster: Cluster, labels: Dict[str, str], *, phase: str = "Running", ready: bool = True,
             node: str = "") -> Obj:
    """A pod with the status a kubelet would have written (nodeName set: its deletion is graceful)."""
    name = unique("pod")
    spec = dict(POD_SPEC, nodeName=node) if node else POD_SPEC
    code, pod, _ = request(cluster, "POST", f"/api/v1/namespaces/{NS}/pods",
                           {"metadata": {"name": name, "labels": labels}, "spec": spec})
    assert code == 201, pod
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    code, pod, _ = request(cluster, "PUT", pod_path(name, "status"), pod)
    assert code == 200, pod
    return pod


def make_pdb(cluster: Cluster, labels: Dict[str, str], *, allowed: int, current: int = 2, desired: int = 2,
             observed: bool = True, **spec: Any) -> Obj:
    """A PDB whose status says what the disruption controller would have computed."""
    name = unique("pdb")
    spec = spec or {"minAvailable": desired}
    code, pdb, _ = request(cluster, "POST", pdb_path(),
                           {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                            "spec": dict(spec, selector={"matchLabels": labels})})
    assert code == 201, pdb
    pdb["status"] = {"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
                     "expectedPods": current, "observedGeneration": 1 if observed else 0}
    code, pdb, _ = request(cluster, "PUT", pdb_path(name, "status"), pdb)
    assert code == 200, pdb
    return pdb


def evict(cluster: Cluster, name: str, delete_options: Optional[Obj] = None, query: str = "",
          api_version: str = "policy/v1") -> Tuple[int, Obj, Dict[str, str]]:
    body: Obj = {"apiVersion": api_version, "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}
    if delete_options is not None:
        body["deleteOptions"] = delete_options
    return request(cluster, "POST", pod_path(name, "eviction") + query, body)


def get(cluster: Cluster, path: str) -> Tuple[int, Obj]:
    code, obj, _ = request(cluster, "GET", path)
    return code, obj


def condition(pod: Obj, ctype: str) -> Optional[Obj]:
    return next((c for c in pod["status"].get("conditions") or () if c["type"] == ctype), None)


SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# -- the budget -----------------------------------------------------------------------------------


def test_eviction_within_the_budget_spends_it_and_marks_the_pod(cluster: Cluster) -> None:
    labels = {"app": unique("spend")}
    pod = make_pod(cluster, labels, node="somewhere")
    pdb = make_pdb(cluster, labels, allowed=1, current=3, desired=2)
    code, body, _ = evict(cluster, pod["metadata"]["name"])
    assert (code, body) == (201, SUCCESS)
    code, after = get(cluster, pdb_path(pdb["metadata"]["name"]))
    status = after["status"]
    assert status["disruptionsAllowed"] == 0
    assert list(status["disruptedPods"]) == [pod["metadata"]["name"]]
    cond = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")
    assert int(after["metadata"]["resourceVersion"]) > int(pdb["metadata"]["resourceVersion"])
    # On a node: graceful deletion, so the pod is still there, marked, with the eviction's condition.
    code, marked = get(cluster, pod_path(pod["metadata"]["name"]))
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    target = condition(marked, "DisruptionTarget")
    assert target is not None
    assert (target["status"], target["reason"], target["message"]) == ("True", "EvictionByEvictionAPI",
                                                                       "Eviction API: evicting")


def test_no_disruption_allowed_is_429_with_the_budget_cause(cluster: Cluster) -> None:
    labels = {"app": unique("full")}
    pod = make_pod(cluster, labels)
    pdb = make_pdb(cluster, labels, allowed=0, current=1, desired=2)
    code, body, headers = evict(cluster, pod["metadata"]["name"])
    name = pdb["metadata"]["name"]
    assert code == 429
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": VIOLATION,
                    "reason": "TooManyRequests", "details": {"causes": [
                        {"reason": "DisruptionBudget",
                         "message": f"The disruption budget {name} needs 2 healthy pods and has 1 currently"}]},
                    "code": 429}
    assert "retry-after" not in headers  # upstream's NewTooManyRequests(..., 0)
    code, same = get(cluster, pod_path(pod["metadata"]["name"]))
    assert code == 200 and same["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert get(cluster, pdb_path(name))[1]["metadata"]["resourceVersion"] == pdb["metadata"]["resourceVersion"]


def test_a_budget_the_controller_has_not_observed_is_429_retry_after_10(cluster: Cluster) -> None:
    labels = {"app": unique("unobserved")}
    pod = make_pod(cluster, labels)
    pdb = make_pdb(cluster, labels, allowed=5, observed=False)
    code, body, headers = evict(cluster, pod["metadata"]["name"])
    assert code == 429 and body["message"] == VIOLATION and headers["retry-after"] == "10"
    assert body["details"] == {"causes": [{"reason": "DisruptionBudget", "message": f"The disruption budget "
                                           f"{pdb['metadata']['name']} is still being processed by the server."}],
                               "retryAfterSeconds": 10}
    assert get(cluster, pod_path(pod["metadata"]["name"]))[0] == 200


def test_the_python_client_evicts_and_gets_429(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api_client())
    labels = {"app": unique("pyclient")}
    first, second = make_pod(cluster, labels), make_pod(cluster, labels)
    make_pdb(cluster, labels, allowed=1, current=2, desired=1)
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=first["metadata"]["name"], namespace=NS))
    core.create_namespaced_pod_eviction(first["metadata"]["name"], NS, body)
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod(first["metadata"]["name"], NS)  # not on a node: deleted at once
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=second["metadata"]["name"], namespace=NS))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_eviction(second["metadata"]["name"], NS, body)
    assert exc.value.status == 429 and json.loads(exc.value.body)["message"] == VIOLATION


def test_concurrent_evictions_spend_one_disruption_once(cluster: Cluster) -> None:
    """The decrement is a compare-and-swap on the PDB: of two racing evictions with one disruption left, one wins."""
    labels = {"app": unique("race")}
    pods = [make_pod(cluster, labels, node="somewhere") for _ in range(4)]
    pdb = make_pdb(cluster, labels, allowed=1, current=4, desired=3)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda p: evict(cluster, p["metadata"]["name"])[0], pods))
    assert sorted(answers) == [201, 429, 429, 429]
    status = get(cluster, pdb_path(pdb["metadata"]["name"]))[1]["status"]
    assert status["disruptionsAllowed"] == 0 and len(status["disruptedPods"]) == 1
    evicted = pods[answers.index(201)]["metadata"]["name"]
    assert list(status["disruptedPods"]) == [evicted]
    for pod, answer in zip(pods, answers):
        marked = get(cluster, pod_path(pod["metadata"]["name"]))[1]
        assert bool(marked["metadata"].get("deletionTimestamp")) == (answer == 201)


def test_more_than_one_budget_is_500(cluster: Cluster) -> None:
    labels = {"app": unique("two")}
    pod = make_pod(cluster, labels)
    make_pdb(cluster, labels, allowed=1)
    make_pdb(cluster, labels, allowed=1)
    code, body, _ = evict(cluster, pod["metadata"]["name"])
    assert code == 500
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500,
                    "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                               "does not support."}
    assert get(cluster, pod_path(pod["metadata"]["name"]))[1]["metadata"]["resourceVersion"] == \
        pod["metadata"]["resourceVersion"]


def test_a_pdb_with_an_empty_selector_covers_no_pod(cluster: Cluster) -> None:
    labels = {"app": unique("empty")}
    pod = make_pod(cluster, labels)
    name = unique("pdb")
    code, pdb, _ = request(cluster, "POST", pdb_path(), {"metadata": {"name": name},
                                                         "spec": {"minAvailable": 5, "selector": {}}})
    assert code == 201, pdb
    assert evict(cluster, pod["metadata"]["name"])[0] == 201


# -- pods that need no budget ---------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed"])
def test_pending_and_terminal_pods_are_evicted_without_a_budget_check(cluster: Cluster, phase: str) -> None:
    labels = {"app": unique("phase")}
    pod = make_pod(cluster, labels, phase=phase, ready=False)
    pdb = make_pdb(cluster, labels, allowed=0, current=0, desired=2)
    assert evict(cluster, pod["metadata"]["name"])[:2] == (201, SUCCESS)
    assert get(cluster, pod_path(pod["metadata"]["name"]))[0] == 404
    after = get(cluster, pdb_path(pdb["metadata"]["name"]))[1]
    assert after["metadata"]["resourceVersion"] == pdb["metadata"]["resourceVersion"]  # nothing spent


def test_an_unready_pod_under_a_healthy_budget_goes_without_spending_it(cluster: Cluster) -> None:
    labels = {"app": unique("unready")}
    pod = make_pod(cluster, labels, ready=False)
    pdb = make_pdb(cluster, labels, allowed=0, current=2, desired=2)
    assert evict(cluster, pod["metadata"]["name"])[0] == 201
    assert get(cluster, pod_path(pod["metadata"]["name"]))[0] == 404
    assert get(cluster, pdb_path(pdb["metadata"]["name"]))[1]["status"]["disruptionsAllowed"] == 0
    assert "disruptedPods" not in get(cluster, pdb_path(pdb["metadata"]["name"]))[1]["status"]


def test_an_unready_pod_under_a_broken_budget_waits_unless_always_allow(cluster: Cluster) -> None:
    labels = {"app": unique("broken")}
    pod = make_pod(cluster, labels, ready=False)
    make_pdb(cluster, labels, allowed=0, current=1, desired=2)
    assert evict(cluster, pod["metadata"]["name"])[0] == 429
    labels = {"app": unique("always")}
    pod = make_pod(cluster, labels, ready=False)
    make_pdb(cluster, labels, allowed=0, current=1, desired=2, minAvailable=2,
             unhealthyPodEvictionPolicy="AlwaysAllow")
    assert evict(cluster, pod["metadata"]["name"])[0] == 201
    assert get(cluster, pod_path(pod["metadata"]["name"]))[0] == 404


# -- delete options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["query", "body"])
def test_dry_run_checks_the_budget_and_changes_nothing(cluster: Cluster, how: str) -> None:
    labels = {"app": unique("dry")}
    pod = make_pod(cluster, labels, node="somewhere")
    pdb = make_pdb(cluster, labels, allowed=1, current=3, desired=2)
    if how == "query":
        code, body, _ = evict(cluster, pod["metadata"]["name"], query="?dryRun=All")
    else:
        code, body, _ = evict(cluster, pod["metadata"]["name"], {"dryRun": ["All"]})
    assert (code, body) == (201, SUCCESS)
    after_pod = get(cluster, pod_path(pod["metadata"]["name"]))[1]
    assert after_pod["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert condition(after_pod, "DisruptionTarget") is None
    after_pdb = get(cluster, pdb_path(pdb["metadata"]["name"]))[1]
    assert after_pdb["metadata"]["resourceVersion"] == pdb["metadata"]["resourceVersion"]
    # A dry run that the budget refuses is refused as the real one would be.
    full = make_pdb(cluster, {"app": labels["app"] + "-full"}, allowed=0, current=1, desired=2)
    other = make_pod(cluster, {"app": labels["app"] + "-full"})
    assert evict(cluster, other["metadata"]["name"], query="?dryRun=All")[0] == 429
    assert get(cluster, pdb_path(full["metadata"]["name"]))[1]["metadata"]["resourceVersion"] == \
        full["metadata"]["resourceVersion"]


def test_grace_period_seconds_is_the_deletions(cluster: Cluster) -> None:
    pod = make_pod(cluster, {"app": unique("grace")}, node="somewhere")
    assert evict(cluster, pod["metadata"]["name"], {"gracePeriodSeconds": 7})[0] == 201
    marked = get(cluster, pod_path(pod["metadata"]["name"]))[1]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 7
    pod = make_pod(cluster, {"app": unique("grace0")}, node="somewhere")
    assert evict(cluster, pod["metadata"]["name"], {"gracePeriodSeconds": 0})[0] == 201
    assert get(cluster, pod_path(pod["metadata"]["name"]))[0] == 404


def test_uid_precondition_mismatch_is_409_and_changes_nothing(cluster: Cluster) -> None:
    pod = make_pod(cluster, {"app": unique("uid")}, node="somewhere")
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    code, body, _ = evict(cluster, name, {"preconditions": {"uid": "not-the-uid"}})
    assert code == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (f'Operation cannot be fulfilled on Pod "{name}": the UID in the precondition '
                               f"(not-the-uid) does not match the UID in record ({uid}). The object might have been "
                               "deleted and then recreated")
    after = get(cluster, pod_path(name))[1]
    assert after["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert evict(cluster, name, {"preconditions": {"uid": uid}})[0] == 201


def test_resource_version_precondition_is_checked_not_retried(cluster: Cluster) -> None:
    pod = make_pod(cluster, {"app": unique("rv")}, node="somewhere")
    name, rv = pod["metadata"]["name"], pod["metadata"]["resourceVersion"]
    code, body, _ = evict(cluster, name, {"preconditions": {"resourceVersion": "1"}})
    assert code == 409
    assert body["message"] == (f'Operation cannot be fulfilled on Pod "{name}": the ResourceVersion in the '
                               f"precondition (1) does not match the ResourceVersion in record ({rv}). The object "
                               "might have been modified")
    assert get(cluster, pod_path(name))[1]["metadata"]["resourceVersion"] == rv
    assert evict(cluster, name, {"preconditions": {"resourceVersion": rv}})[0] == 201
    assert get(cluster, pod_path(name))[1]["metadata"]["deletionTimestamp"]


def test_a_policy_v1beta1_eviction_is_accepted(cluster: Cluster) -> None:
    pod = make_pod(cluster, {"app": unique("beta")})
    assert evict(cluster, pod["metadata"]["name"], api_version="policy/v1beta1")[:2] == (201, SUCCESS)


# -- bad input --------------------------------------------------------------------------------------


def _bad(cluster: Cluster, name: str, body: Any = None, raw: Optional[bytes] = None) -> Tuple[int, Obj]:
    code, status, _ = request(cluster, "POST", pod_path(name, "eviction"), body, raw=raw)
    return code, status


BAD_BODIES: List[Tuple[str, Any, int, str]] = [
    ("name mismatch", {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}, 400,
     "name in URL does not match name in Eviction object"),
    ("no name", {"apiVersion": "policy/v1", "kind": "Eviction"}, 400,
     "name in URL does not match name in Eviction object"),
    ("a Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "{pod}"}}, 400,
     'Pod in version "v1" cannot be handled as a Eviction: converting (v1.Pod) to (policy.Eviction): '
     "unknown conversion"),
    ("deleteOptions not an object", {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "{pod}"},
                                     "deleteOptions": "now"}, 400, None),
    ("grace period not a number", {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "{pod}"},
                                   "deleteOptions": {"gracePeriodSeconds": "soon"}}, 400, None),
    ("bad dryRun", {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "{pod}"},
                    "deleteOptions": {"dryRun": ["Some"]}}, 422, None),
    ("bad propagation policy", {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "{pod}"},
                                "deleteOptions": {"propagationPolicy": "Sideways"}}, 422, None),
    ("other namespace", {"kind": "Eviction", "apiVersion": "policy/v1",
                         "metadata": {"name": "{pod}", "namespace": "kube-system"}}, 400,
     "the namespace of the provided object does not match the namespace sent on the request"),
]


@pytest.mark.parametrize("case", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_are_refused_and_change_nothing(cluster: Cluster, case: Tuple[str, Any, int, str]) -> None:
    _, body, want_code, want_message = case
    labels = {"app": unique("bad")}
    pod = make_pod(cluster, labels, node="somewhere")
    pdb = make_pdb(cluster, labels, allowed=1, current=3, desired=2)
    name = pod["metadata"]["name"]
    body = json.loads(json.dumps(body).replace("{pod}", name))
    code, status = _bad(cluster, name, body)
    assert code == want_code, status
    assert status["kind"] == "Status" and status["status"] == "Failure" and status["code"] == want_code
    if want_message is not None:
        assert status["message"] == want_message
    assert get(cluster, pod_path(name))[1]["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
    assert get(cluster, pdb_path(pdb["metadata"]["name"]))[1]["metadata"]["resourceVersion"] == \
        pdb["metadata"]["resourceVersion"]


def test_malformed_json_and_missing_pods(cluster: Cluster) -> None:
    pod = make_pod(cluster, {"app": unique("json")})
    code, status = _bad(cluster, pod["metadata"]["name"], raw=b'{"kind": "Eviction", ')
    assert code == 400 and status["message"].startswith(
        "the object provided is unrecognized (must be of type Eviction): couldn't get version/kind; json parse error")
    code, status = _bad(cluster, "no-such-pod", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                 "metadata": {"name": "no-such-pod"}})
    assert (code, status["reason"], status["message"]) == (404, "NotFound", 'pods "no-such-pod" not found')
    code, status, _ = request(cluster, "GET", pod_path(pod["metadata"]["name"], "eviction"))
    assert code == 405


# -- PodDisruptionBudget validation and printing ------------------------------------------------------


PDB_INVALID = [
    ({"minAvailable": 1, "maxUnavailable": 1}, "spec", "minAvailable and maxUnavailable cannot be both set"),
    ({"minAvailable": "150%"}, "spec.minAvailable",
     'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%'),
    ({"maxUnavailable": -1}, "spec.maxUnavailable", "Invalid value: -1: must be greater than or equal to 0"),
    ({"minAvailable": "half"}, "spec.minAvailable",
     "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"half\"}: a valid percent string must be a "
     "numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
    ({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}, "spec.unhealthyPodEvictionPolicy",
     'Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"'),
    ({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "spec.selector.matchExpressions[0].values", "Required value: must be specified when `operator` is 'In' or "
                                                 "'NotIn'"),
]


@pytest.mark.parametrize("spec,path,message", PDB_INVALID, ids=[c[1] + ":" + str(i) for i, c in enumerate(PDB_INVALID)])
def test_invalid_budgets_are_422(cluster: Cluster, spec: Obj, path: str, message: str) -> None:
    name = unique("invalid")
    code, status, _ = request(cluster, "POST", pdb_path(), {"metadata": {"name": name}, "spec": spec})
    assert code == 422 and status["reason"] == "Invalid", status
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert message in causes[path]
    assert status["message"].startswith(f'PodDisruptionBudget.policy "{name}" is invalid: ')
    assert get(cluster, pdb_path(name))[0] == 404


def test_a_negative_status_counter_is_422(cluster: Cluster) -> None:
    pdb = make_pdb(cluster, {"app": unique("neg")}, allowed=0)
    pdb["status"]["disruptionsAllowed"] = -1
    code, status, _ = request(cluster, "PUT", pdb_path(pdb["metadata"]["name"], "status"), pdb)
    assert code == 422
    assert status["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "status.disruptionsAllowed",
                                            "message": "Invalid value: -1: must be greater than or equal to 0"}]


def test_spec_changes_move_the_generation_and_status_is_kept(cluster: Cluster) -> None:
    pdb = make_pdb(cluster, {"app": unique("gen")}, allowed=1)
    pdb["spec"]["minAvailable"] = 3
    pdb["status"] = {"disruptionsAllowed": 99, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    code, updated, _ = request(cluster, "PUT", pdb_path(pdb["metadata"]["name"]), pdb)
    assert code == 200, updated
    assert updated["metadata"]["generation"] == 2 and updated["status"]["disruptionsAllowed"] == 1


def test_kubectl_get_pdb_columns(cluster: Cluster) -> None:
    name = unique("table")
    cluster.ok("create", "pdb", name, "--selector=app=table", "--max-unavailable=25%")
    out = cluster.ok("get", "pdb", name).splitlines()
    assert out[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert out[1].split()[:4] == [name, "N/A", "25%", "0"]
    assert json.loads(cluster.ok("get", "pdb", name, "-o", "json"))["spec"]["maxUnavailable"] == "25%"
    # The Python client's typed model (its status counters are required fields) reads it back.
    pdb = client.PolicyV1Api(cluster.api_client()).read_namespaced_pod_disruption_budget(name, NS)
    assert pdb.spec.max_unavailable == "25%" and pdb.status.disruptions_allowed == 0
    assert pdb.metadata.generation == 1
