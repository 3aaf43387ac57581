"""scheduling.k8s.io/v1 PriorityClasses and the Priority admission plugin on a real `megaplane up`, over sockets.

Driven with kubectl (whose typed `create priorityclass` sends protobuf),
the `kubernetes` Python client and raw HTTP for exact Status bodies.
Expected wording is upstream's (pkg/apis/scheduling/validation,
pkg/registry/scheduling/priorityclass, plugin/pkg/admission/priority); every
refused write is checked to have changed nothing.

The cluster is one per module; a test that makes a class the global default
removes it again, since a default class changes every pod created after it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import tempfile
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.registry.priority import PriorityAdmission, PriorityClassFacts
from tests.api.conftest import Cluster, start_cluster

Obj = Dict[str, Any]
PCS = "/apis/scheduling.k8s.io/v1/priorityclasses"
PODS = "/api/v1/namespaces/default/pods"
POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
UPDATABLE = ("pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
             "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
             "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-pc-")
    c = start_cluster(root)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def request(cluster: Cluster, method: str, path: str, body: Any = None,
            content_type: str = "application/json", accept: str = "application/json") -> Tuple[int, Obj]:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": accept}
    if data is not None:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, (json.loads(payload) if payload else {})


def pc_body(name: str, value: Optional[int] = 1000, **fields: Any) -> Obj:
    body: Obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, **fields}
    if value is not None:
        body["value"] = value
    return body


def create_pc(cluster: Cluster, name: str, value: int = 1000, **fields: Any) -> Obj:
    code, out = request(cluster, "POST", PCS, pc_body(name, value, **fields))
    assert code == 201, out
    return out


def get(cluster: Cluster, path: str) -> Tuple[int, Obj]:
    return request(cluster, "GET", path)


def pod_body(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {**POD_SPEC, **spec}}


def create_pod(cluster: Cluster, name: str, **spec: Any) -> Tuple[int, Obj]:
    return request(cluster, "POST", PODS, pod_body(name, **spec))


def pc_names(cluster: Cluster) -> set:
    code, out = get(cluster, PCS)
    assert code == 200
    return {item["metadata"]["name"] for item in out["items"]}


# -- the system classes ---------------------------------------------------------------------------


def test_system_classes_exist_as_kube_apiserver_creates_them(cluster: Cluster) -> None:
    api = client.SchedulingV1Api(cluster.api_client())
    classes = {pc.metadata.name: pc for pc in api.list_priority_class().items}
    node, cluster_critical = classes["system-node-critical"], classes["system-cluster-critical"]
    assert (node.value, cluster_critical.value) == (2000001000, 2000000000)
    for pc in (node, cluster_critical):
        assert not pc.global_default and pc.preemption_policy == "PreemptLowerPriority"
        assert pc.metadata.generation == 1
    assert node.description == "Used for system critical pods that must not be moved from their current node."
    assert cluster_critical.description == ("Used for system critical pods that must run in the cluster, but can be "
                                            "moved to another node if necessary.")


def test_system_classes_cannot_be_deleted_or_revalued(cluster: Cluster) -> None:
    for name in ("system-node-critical", "system-cluster-critical"):
        code, out = request(cluster, "DELETE", f"{PCS}/{name}")
        assert code == 403, out
        assert out["reason"] == "Forbidden"
        assert out["message"] == (f'priorityclasses.scheduling.k8s.io "{name}" is forbidden: this is a system '
                                  "priority class and cannot be deleted")
        assert out["details"] == {"name": name, "group": "scheduling.k8s.io", "kind": "priorityclasses"}
    out = cluster.kubectl("delete", "pc", "system-node-critical")
    assert out.returncode != 0
    assert "this is a system priority class and cannot be deleted" in out.stderr
    code, out = request(cluster, "PATCH", f"{PCS}/system-cluster-critical", {"value": 5},
                        content_type="application/merge-patch+json")
    assert code == 422 and out["message"] == ('PriorityClass.scheduling.k8s.io "system-cluster-critical" is invalid: '
                                              "value: Forbidden: may not be changed in an update.")
    code, stored = get(cluster, f"{PCS}/system-cluster-critical")
    assert code == 200 and stored["value"] == 2000000000
    assert {"system-node-critical", "system-cluster-critical"} <= pc_names(cluster)


# -- kubectl ----------------------------------------------------------------------------------------


def test_kubectl_create_priorityclass_sends_protobuf_and_gets_defaults(cluster: Cluster) -> None:
    name = unique("kubectl")
    cluster.ok("create", "priorityclass", name, "--value=4242", "--description=batch jobs",
               "--preemption-policy=Never")
    pc = json.loads(cluster.ok("get", "pc", name, "-o", "json"))
    assert (pc["value"], pc["description"], pc["preemptionPolicy"]) == (4242, "batch jobs", "Never")
    assert pc["metadata"]["generation"] == 1 and "namespace" not in pc["metadata"]
    described = cluster.ok("describe", "pc", name)
    assert "Value:" in described and "4242" in described and "PreemptionPolicy:  Never" in described
    plain = unique("plain")
    cluster.ok("create", "priorityclass", plain, "--value=7")
    assert json.loads(cluster.ok("get", "priorityclass", plain, "-o", "json"))["preemptionPolicy"] == \
        "PreemptLowerPriority"


def test_discovery_lists_priorityclasses(cluster: Cluster) -> None:
    out = cluster.ok("api-resources", "--api-group=scheduling.k8s.io")
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["priorityclasses", "pc", "scheduling.k8s.io/v1", "false", "PriorityClass"]]


def test_kubectl_get_pc_columns(cluster: Cluster) -> None:
    name = unique("cols")
    create_pc(cluster, name, 17, preemptionPolicy="Never")
    lines = cluster.ok("get", "pc").splitlines()
    assert lines[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-node-critical"][4] == "PreemptLowerPriority"
    assert rows[name][1:3] == ["17", "false"] and rows[name][4] == "Never"
    code, table = request(cluster, "GET", f"{PCS}/{name}", accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert code == 200
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [
        ("Name", "string"), ("Value", "integer"), ("Global-Default", "boolean"), ("Age", "string"),
        ("PreemptionPolicy", "string")]
    cells = table["rows"][0]["cells"]
    assert cells[:3] == [name, 17, False] and cells[4] == "Never"


# -- validation -------------------------------------------------------------------------------------

_REFUSED = [
    ("too-high", 1000000001, {}, "value", "FieldValueForbidden",
     "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    ("system-mine", 5, {}, "metadata.name", "FieldValueForbidden",
     "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
     "error: system-mine is not a known system priority class"),
    ("system-node-critical", 2000000000, {}, "metadata.name", "FieldValueForbidden",
     "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
     "error: value of system-node-critical PriorityClass must be 2000001000"),
    ("system-cluster-critical", 2000000000, {"globalDefault": True}, "metadata.name", "FieldValueForbidden",
     "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
     "error: globalDefault of system-cluster-critical PriorityClass must be false"),
    ("sometimes", 1, {"preemptionPolicy": "Sometimes"}, "preemptionPolicy", "FieldValueNotSupported",
     'preemptionPolicy: Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"'),
    ("empty-policy", 1, {"preemptionPolicy": ""}, "preemptionPolicy", "FieldValueRequired",
     "preemptionPolicy: Required value"),
]


@pytest.mark.parametrize("name,value,fields,field,reason,message", _REFUSED, ids=[r[0] for r in _REFUSED])
def test_invalid_priority_classes_are_refused_and_change_nothing(
    cluster: Cluster, name: str, value: int, fields: Obj, field: str, reason: str, message: str
) -> None:
    before = get(cluster, f"{PCS}/{name}")
    code, out = request(cluster, "POST", PCS, pc_body(name, value, **fields))
    assert code == 422, out
    assert out["reason"] == "Invalid"
    assert out["message"] == f'PriorityClass.scheduling.k8s.io "{name}" is invalid: {message}'
    assert out["details"]["causes"] == [{"reason": reason, "message": message.split(": ", 1)[1], "field": field}]
    assert get(cluster, f"{PCS}/{name}") == before


def test_kubectl_shows_the_validation_error(cluster: Cluster) -> None:
    manifest = json.dumps(pc_body("way-too-high", 2000000000))
    out = cluster.kubectl("create", "-f", "-", input=manifest)
    assert out.returncode != 0
    assert ('The PriorityClass "way-too-high" is invalid: value: Forbidden: maximum allowed value of a user defined '
            "priority is 1000000000") in out.stderr
    assert "way-too-high" not in pc_names(cluster)


def test_a_class_without_value_has_value_zero(cluster: Cluster) -> None:
    # value is a plain int32 upstream (no omitempty, no pointer): absent decodes as 0 and is always served
    name = unique("zero")
    code, out = request(cluster, "POST", PCS, pc_body(name, None))
    assert code == 201, out
    assert out["value"] == 0
    assert client.SchedulingV1Api(cluster.api_client()).read_priority_class(name).value == 0


def test_value_out_of_int32_is_refused(cluster: Cluster) -> None:
    name = unique("huge")
    code, out = request(cluster, "POST", PCS, pc_body(name, 2 ** 31))
    assert code == 400, out
    assert name not in pc_names(cluster)


def test_value_and_preemption_policy_are_immutable(cluster: Cluster) -> None:
    name = unique("immutable")
    created = create_pc(cluster, name, 300)
    path = f"{PCS}/{name}"
    merge = "application/merge-patch+json"
    code, out = request(cluster, "PATCH", path, {"value": 301}, content_type=merge)
    assert code == 422 and out["message"] == (f'PriorityClass.scheduling.k8s.io "{name}" is invalid: '
                                              "value: Forbidden: may not be changed in an update.")
    assert out["details"]["causes"] == [{"reason": "FieldValueForbidden", "field": "value",
                                         "message": "Forbidden: may not be changed in an update."}]
    code, out = request(cluster, "PATCH", path, {"preemptionPolicy": "Never"}, content_type=merge)
    assert code == 422 and out["message"] == (f'PriorityClass.scheduling.k8s.io "{name}" is invalid: '
                                              'preemptionPolicy: Invalid value: "Never": field is immutable')
    assert get(cluster, path) == (200, created)
    # everything else may change, and generation stays (no spec)
    code, out = request(cluster, "PATCH", path, {"description": "now described", "metadata": {"labels": {"a": "b"}}},
                        content_type=merge)
    assert code == 200, out
    assert out["description"] == "now described" and out["value"] == 300
    assert out["metadata"]["generation"] == 1
    # a PUT that leaves preemptionPolicy out gets it defaulted again, so it is no change
    body = {k: v for k, v in out.items() if k != "preemptionPolicy"}
    code, out = request(cluster, "PUT", path, body)
    assert code == 200 and out["preemptionPolicy"] == "PreemptLowerPriority"


# -- globalDefault ------------------------------------------------------------------------------------


def test_only_one_global_default(cluster: Cluster) -> None:
    first, second, other = unique("default-a"), unique("default-b"), unique("not-default")
    create_pc(cluster, first, 50, globalDefault=True)
    try:
        code, out = request(cluster, "POST", PCS, pc_body(second, 60, globalDefault=True))
        assert code == 403, out
        assert out["reason"] == "Forbidden"
        assert out["message"] == (f'priorityclasses.scheduling.k8s.io "{second}" is forbidden: PriorityClass {first} '
                                  "is already marked as default. Only one default can exist")
        assert second not in pc_names(cluster)
        created = create_pc(cluster, other, 70)
        code, out = request(cluster, "PATCH", f"{PCS}/{other}", {"globalDefault": True},
                            content_type="application/merge-patch+json")
        assert code == 403 and out["message"] == (
            f'priorityclasses.scheduling.k8s.io "{other}" is forbidden: PriorityClass {first} is already marked as '
            "default. Only one default can exist")
        assert get(cluster, f"{PCS}/{other}") == (200, created)
        # the default itself may be updated while it stays the default
        code, out = request(cluster, "PATCH", f"{PCS}/{first}", {"description": "the default"},
                            content_type="application/merge-patch+json")
        assert code == 200 and out["globalDefault"] is True
        out = cluster.kubectl("create", "priorityclass", second, "--value=60", "--global-default")
        assert out.returncode != 0 and "Only one default can exist" in out.stderr
    finally:
        assert request(cluster, "DELETE", f"{PCS}/{first}")[0] == 200
    # with the default gone, another class may become it
    code, out = request(cluster, "PATCH", f"{PCS}/{other}", {"globalDefault": True},
                        content_type="application/merge-patch+json")
    assert code == 200 and out["globalDefault"] is True
    assert request(cluster, "DELETE", f"{PCS}/{other}")[0] == 200


# -- Priority admission of pods ------------------------------------------------------------------------


def test_pod_gets_priority_and_preemption_policy_from_its_class(cluster: Cluster) -> None:
    pc = unique("high")
    create_pc(cluster, pc, 100000, preemptionPolicy="Never")
    name = unique("p")
    code, out = create_pod(cluster, name, priorityClassName=pc)
    assert code == 201, out
    assert (out["spec"]["priorityClassName"], out["spec"]["priority"], out["spec"]["preemptionPolicy"]) == \
        (pc, 100000, "Never")
    pod = client.CoreV1Api(cluster.api_client()).read_namespaced_pod(name, "default")
    assert (pod.spec.priority, pod.spec.preemption_policy) == (100000, "Never")


def test_system_class_pods(cluster: Cluster) -> None:
    name = unique("critical")
    code, out = create_pod(cluster, name, priorityClassName="system-cluster-critical")
    assert code == 201, out
    assert out["spec"]["priority"] == 2000000000 and out["spec"]["preemptionPolicy"] == "PreemptLowerPriority"


def test_pod_without_class_gets_zero_or_the_global_default(cluster: Cluster) -> None:
    name = unique("plain")
    code, out = create_pod(cluster, name)
    assert code == 201, out
    assert out["spec"]["priority"] == 0 and out["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in out["spec"]
    default = unique("cluster-default")
    create_pc(cluster, default, 500, globalDefault=True, preemptionPolicy="Never")
    try:
        name = unique("defaulted")
        code, out = create_pod(cluster, name)
        assert code == 201, out
        assert (out["spec"]["priorityClassName"], out["spec"]["priority"], out["spec"]["preemptionPolicy"]) == \
            (default, 500, "Never")
        # a pod naming its own class is not touched by the default
        code, out = create_pod(cluster, unique("own"), priorityClassName="system-node-critical")
        assert code == 201 and out["spec"]["priority"] == 2000001000
    finally:
        assert request(cluster, "DELETE", f"{PCS}/{default}")[0] == 200


def test_unknown_class_is_forbidden(cluster: Cluster) -> None:
    name = unique("orphan")
    code, out = create_pod(cluster, name, priorityClassName="nope")
    assert code == 403, out
    assert out["reason"] == "Forbidden"
    assert out["message"] == f'pods "{name}" is forbidden: no PriorityClass with name nope was found'
    assert out["details"] == {"name": name, "kind": "pods"}
    assert get(cluster, f"{PODS}/{name}")[0] == 404
    out = cluster.kubectl("run", unique("run"), "--image=busybox:1.36", "--overrides",
                          json.dumps({"spec": {"priorityClassName": "nope"}}))
    assert out.returncode != 0 and "no PriorityClass with name nope was found" in out.stderr


def test_a_priority_the_class_does_not_give_is_refused(cluster: Cluster) -> None:
    pc = unique("mid")
    create_pc(cluster, pc, 2000)
    name = unique("mine")
    code, out = create_pod(cluster, name, priorityClassName=pc, priority=3000)
    assert code == 403, out
    assert out["message"] == (f'pods "{name}" is forbidden: the integer value of priority (3000) must not be '
                              "provided in pod spec; priority admission controller computed 2000 from the given "
                              "PriorityClass name")
    code, out = create_pod(cluster, name, priority=7)  # no class: computed 0
    assert code == 403 and "the integer value of priority (7) must not be provided" in out["message"]
    assert "computed 0 from the given PriorityClass name" in out["message"]
    code, out = create_pod(cluster, name, priorityClassName=pc, preemptionPolicy="Never")
    assert code == 403 and out["message"] == (
        f'pods "{name}" is forbidden: the string value of PreemptionPolicy (Never) must not be provided in pod spec; '
        "priority admission controller computed PreemptLowerPriority from the given PriorityClass name")
    assert get(cluster, f"{PODS}/{name}")[0] == 404
    # the same values as the class's are accepted (a pod spec copied from another pod)
    code, out = create_pod(cluster, name, priorityClassName=pc, priority=2000, preemptionPolicy="PreemptLowerPriority")
    assert code == 201, out


def test_pod_updates_keep_and_may_not_change_priority(cluster: Cluster) -> None:
    pc = unique("keep")
    create_pc(cluster, pc, 900)
    name = unique("upd")
    code, pod = create_pod(cluster, name, priorityClassName=pc)
    assert code == 201, pod
    path = f"{PODS}/{name}"
    # a PUT that leaves priority and preemptionPolicy out keeps them (the plugin's Admit on update)
    body = json.loads(json.dumps(pod))
    del body["spec"]["priority"], body["spec"]["preemptionPolicy"]
    body["metadata"]["labels"] = {"put": "yes"}
    code, out = request(cluster, "PUT", path, body)
    assert code == 200, out
    assert out["spec"]["priority"] == 900 and out["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    for patch in ({"spec": {"priority": 5}}, {"spec": {"priorityClassName": "system-node-critical"}},
                  {"spec": {"preemptionPolicy": "Never"}}):
        before = get(cluster, path)
        code, out = request(cluster, "PATCH", path, patch, content_type="application/strategic-merge-patch+json")
        assert code == 422, out
        assert out["reason"] == "Invalid"
        assert out["message"].startswith(f'Pod "{name}" is invalid: spec: Forbidden: {UPDATABLE}\n')
        assert out["details"]["causes"][0]["field"] == "spec"
        assert get(cluster, path) == before


def test_python_client_priority_classes(cluster: Cluster) -> None:
    api = client.SchedulingV1Api(cluster.api_client())
    name = unique("py")
    created = api.create_priority_class(client.V1PriorityClass(
        metadata=client.V1ObjectMeta(name=name), value=123, description="from python"))
    assert (created.value, created.preemption_policy, created.description) == (123, "PreemptLowerPriority",
                                                                               "from python")
    with pytest.raises(ApiException) as refused:
        api.patch_priority_class(name, {"value": 124})
    assert refused.value.status == 422
    with pytest.raises(ApiException) as refused:
        api.create_priority_class(client.V1PriorityClass(metadata=client.V1ObjectMeta(name="system-x"), value=1))
    assert refused.value.status == 422
    assert json.loads(refused.value.body)["details"]["causes"][0]["field"] == "metadata.name"
    api.delete_priority_class(name)
    assert name not in pc_names(cluster)


# -- the plugin's choice of default, which the API cannot produce twice (a race could) -----------------


class _Classes:
    def __init__(self, *classes: PriorityClassFacts) -> None:
        self.classes = {pc.name: pc for pc in classes}

    def get(self, name: str) -> Optional[PriorityClassFacts]:
        return self.classes.get(name)

    def list(self) -> Iterator[PriorityClassFacts]:
        return iter(list(self.classes.values()))


def test_of_several_default_classes_the_lowest_value_wins() -> None:
    pods = lookup("", "pods")
    assert pods is not None
    plugin = PriorityAdmission(_Classes(PriorityClassFacts("b", 300, True, "Never"),
                                        PriorityClassFacts("a", 200, True, "PreemptLowerPriority"),
                                        PriorityClassFacts("c", 100, False, "PreemptLowerPriority")))
    pod: Obj = {"metadata": {"name": "p"}, "spec": dict(POD_SPEC)}
    plugin.admit_create(pods, pod)
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"], pod["spec"]["preemptionPolicy"]) == \
        ("a", 200, "PreemptLowerPriority")
    # a class stored without preemptionPolicy (never defaulted) leaves the pod's unset, as upstream's nil
    plugin = PriorityAdmission(_Classes(PriorityClassFacts("old", 5, False, None)))
    pod = {"metadata": {"name": "q"}, "spec": {**POD_SPEC, "priorityClassName": "old", "preemptionPolicy": "Never"}}
    plugin.admit_create(pods, pod)
    assert pod["spec"]["priority"] == 5 and "preemptionPolicy" not in pod["spec"]
