"""FieldsV1 sets and the field manager's algebra, on upstream's own examples (no server needed)."""

from __future__ import annotations

import copy

import orjson
import pytest

from megaplane.apiserver.fieldmanager import FieldManager, type_for_schema
from megaplane.apiserver.fieldmanager import fieldpath as fp
from megaplane.apiserver.fieldmanager.compare import ZERO, compare, field_set
from megaplane.apiserver.fieldmanager.typemodel import kind_type

# As kube-apiserver 1.32 stores them (a Deployment created by kubectl, a Pod's status).
UPSTREAM = [
    b'{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},'
    b'"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\\"name\\":\\"nginx\\"}":{".":{},"f:image":{},"f:name":{},'
    b'"f:ports":{".":{},"k:{\\"containerPort\\":80,\\"protocol\\":\\"TCP\\"}":{".":{},"f:containerPort":{},'
    b'"f:protocol":{}}}}}}}}}',
    b'{"f:status":{"f:conditions":{"k:{\\"type\\":\\"Ready\\"}":{".":{},"f:lastTransitionTime":{},"f:status":{},'
    b'"f:type":{}}},"f:podIPs":{".":{},"k:{\\"ip\\":\\"10.0.0.1\\"}":{".":{},"f:ip":{}}}}}',
    b'{"f:metadata":{"f:finalizers":{".":{},"v:\\"example.com/a\\"":{}}},"f:spec":{"f:args":{}}}',
]


@pytest.mark.parametrize("raw", UPSTREAM)
def test_fieldsv1_round_trips_in_upstream_order(raw: bytes) -> None:
    s = orjson.loads(raw)
    assert orjson.dumps(fp.canonical(s)) == raw
    # Rebuilt from its member paths, the set is the same set.
    rebuilt: fp.FieldSet = {}
    for path in fp.members(s):
        fp.insert(rebuilt, list(path))
    assert orjson.dumps(fp.canonical(rebuilt)) == raw


def test_member_paths_print_as_upstream() -> None:
    s = orjson.loads(UPSTREAM[0])
    paths = [fp.path_string(p) for p in fp.members(s)]
    assert ".metadata.labels" in paths and ".metadata.labels.app" in paths
    assert '.spec.template.spec.containers[name="nginx"].image' in paths
    assert '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]' in paths
    assert ".spec" not in paths  # a prefix only, not a member
    assert fp.path_string(("f:metadata", "f:finalizers", 'v:"example.com/a"')) == '.metadata.finalizers[="example.com/a"]'


def test_set_algebra_keeps_membership() -> None:
    a = {"f:spec": {"f:replicas": {}, "f:template": {"f:x": {}}}}
    b = {"f:spec": {"f:template": {}}}
    u = fp.union(a, b)
    assert u == {"f:spec": {"f:replicas": {}, "f:template": {".": {}, "f:x": {}}}}
    assert fp.difference(u, b) == a
    assert fp.intersection(u, {"f:spec": {"f:replicas": {}}}) == {"f:spec": {"f:replicas": {}}}
    assert fp.contains(u, a) and not fp.contains(a, b)
    assert fp.union(a, {"f:spec": {"f:replicas": {}}}) is a  # nothing new: the same set back
    assert fp.difference(a, {"f:status": {}}) is a


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}},
    },
}


def test_created_object_is_owned_like_upstream() -> None:
    fm = FieldManager("apps", "v1", "Deployment", True)
    obj = copy.deepcopy(DEPLOYMENT)
    fm.updated(None, obj, "kubectl-create")
    [entry] = obj["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl-create", "Update", "apps/v1")
    assert orjson.dumps(entry["fieldsV1"]) == UPSTREAM[0]


def test_list_types_follow_the_schemas() -> None:
    pod = kind_type("", "v1", "Pod")
    spec = pod.child("spec")
    assert (spec.child("containers").list_type, spec.child("containers").keys) == ("map", ("name",))
    ports = spec.child("containers").item().child("ports")
    assert (ports.list_type, ports.keys) == ("map", ("containerPort", "protocol"))
    assert spec.child("containers").item().child("args").atomic
    assert kind_type("", "v1", "Pod").child("metadata").child("finalizers").list_type == "set"
    assert spec.child("nodeSelector").atomic  # x-kubernetes-map-type: atomic
    deploy = kind_type("apps", "v1", "Deployment")
    assert deploy.child("spec").child("selector").atomic


def test_objects_without_a_schema_are_deduced() -> None:
    t = type_for_schema(None)
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
           "spec": {"size": 3, "tags": ["x", "y"], "nested": {"k": "v"}}}
    assert field_set(obj, t) == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {".": {}, "f:size": {}, "f:tags": {}, "f:nested": {".": {}, "f:k": {}}},
    }
    changed = compare(ZERO, obj, t).changed()
    assert fp.has_member(changed, ["f:spec", "f:tags"])


def test_schema_given_by_a_crd() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}},
        "size": {"type": "integer"}}}}}
    t = type_for_schema(schema)
    obj = {"spec": {"size": 1, "items": [{"id": "a", "v": 1}]}}
    assert field_set(obj, t) == {"f:spec": {"f:size": {}, "f:items": {'k:{"id":"a"}': {".": {}, "f:id": {}, "f:v": {}}}}}


def test_custom_resource_apply_merges_by_schema_keys_and_conflicts() -> None:
    """What C2's CustomResourceStore does with a CRD version's schema: apply by its list-map keys."""
    from megaplane.apimachinery.errors import StatusError

    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}},
        "size": {"type": "integer"}}}}}
    fm = FieldManager("example.com", "v1", "Widget", True, type_for_schema(schema))
    a = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
         "spec": {"size": 1, "items": [{"id": "a", "v": 1}]}}
    live = fm.apply(None, copy.deepcopy(a), "alice", False)
    b = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
         "spec": {"items": [{"id": "b", "v": 2}]}}
    live = fm.apply(copy.deepcopy(live), b, "bob", False)
    assert [i["id"] for i in live["spec"]["items"]] == ["a", "b"]
    with pytest.raises(StatusError) as err:
        fm.apply(copy.deepcopy(live), {**b, "spec": {"size": 2}}, "bob", False)
    assert err.value.code == 409
    assert err.value.message == 'Apply failed with 1 conflict: conflict with "alice": .spec.size'
    # Alice lets go of her item: it goes; bob's stays.
    live = fm.apply(copy.deepcopy(live), {**a, "spec": {"size": 1}}, "alice", False)
    assert live["spec"]["items"] == [{"id": "b", "v": 2}]


def test_more_than_ten_update_managers_merge_into_ancient_changes() -> None:
    fm = FieldManager("", "v1", "ConfigMap", False)
    obj: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    for i in range(12):
        new = copy.deepcopy(obj)
        new["data"][f"k{i:02d}"] = "v"
        fm.updated(obj if i else None, new, f"m{i:02d}")
        obj = new
    entries = obj["metadata"]["managedFields"]
    assert len(entries) == 10
    [bucket] = [e for e in entries if e["manager"] == "ancient-changes"]
    assert set(bucket["fieldsV1"]["f:data"]) >= {"f:k00", "f:k01", "f:k02"}
    assert {e["manager"] for e in entries} == {"ancient-changes"} | {f"m{i:02d}" for i in range(3, 12)}


@pytest.mark.parametrize("reset", ["", "status", "spec"])
def test_the_one_pass_create_set_is_the_comparison_with_the_zero_object(reset: str) -> None:
    from megaplane.apiserver.fieldmanager.compare import created_set

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["x", "x", "y"]},
           "spec": {"containers": [{"name": "c", "image": "i", "args": ["a"], "resources": {}, "env": [],
                                    "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}]}],
                    "securityContext": {}, "nodeSelector": {}, "tolerations": [{"key": "k", "operator": "Exists"}]},
           "status": {"phase": "Pending", "conditions": None}}
    empty = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
             "spec": {"template": {"spec": {"containers": []}}, "strategy": {}}, "status": {}}
    widget = {"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": {"b": [1]}, "c": None, "d": {}}}
    cases = [(kind_type("", "v1", "Pod"), pod), (kind_type("apps", "v1", "Deployment"), copy.deepcopy(DEPLOYMENT)),
             (kind_type("apps", "v1", "Deployment"), empty), (type_for_schema(None), widget)]
    for t, obj in cases:
        expected = orjson.dumps(fp.canonical(compare(ZERO, obj, t, reset).changed()))
        assert orjson.dumps(created_set(obj, t, reset)) == expected, obj["kind"]
