"""CustomResourceDefinitions end to end: kubectl and the `kubernetes` package against `megaplane up`.

One server for the module; one CRD with a schema, status and scale subresources and printer columns
(widgets.crd.example.com) is installed once and driven by kubectl (get, -o wide, get all, explain,
scale, api-resources, invalid objects) and by CustomObjectsApi / ApiextensionsV1Api (pruning,
defaulting, status and generation rules, watch); other CRDs cover versions, name conflicts,
CRD validation and deletion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.api.conftest import KUBECTL, Cluster, start_cluster

GROUP = "crd.example.com"
NS = "default"

WIDGETS: Dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                  "categories": ["all"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "selectableFields": [{"jsonPath": ".spec.color"}],
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object", "description": "A widget of the test suite.",
                "properties": {
                    "spec": {"type": "object", "description": "What the widget should be.", "required": ["color"],
                             "properties": {
                                 "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                                 "color": {"type": "string", "enum": ["red", "green", "blue"]},
                                 "size": {"type": "string", "default": "medium"},
                                 "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                 "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                 "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                 "port": {"x-kubernetes-int-or-string": True},
                                 "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                                              "x-kubernetes-preserve-unknown-fields": True},
                             }},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                                "selector": {"type": "string"}}},
                },
            }},
        }],
    },
}


def _poll(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _get(cluster, path: str, accept: str = "application/json") -> Any:  # type: ignore[no-untyped-def]
    req = urllib.request.Request(cluster.url + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return {"code": e.code}


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or ()))


def _served(cluster, group: str, version: str, plural: str) -> bool:  # type: ignore[no-untyped-def]
    doc = _get(cluster, f"/apis/{group}/{version}")
    return any(r["name"] == plural for r in doc.get("resources") or ())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """The API tests' server, with the garbage collector (owner references to and from custom resources)."""
    root = tempfile.mkdtemp(prefix="megaplane-crd-")
    c = start_cluster(root, ["--controllers", "namespace,serviceaccount,garbagecollector"])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def api(cluster):  # type: ignore[no-untyped-def]
    with cluster.api_client() as c:
        yield c


@pytest.fixture(scope="module")
def widgets(cluster, api):  # type: ignore[no-untyped-def]
    cluster.ok("apply", "-f", "-", input=json.dumps(WIDGETS))
    ext = client.ApiextensionsV1Api(api)
    _poll(lambda: _established(ext, WIDGETS["metadata"]["name"]) and _served(cluster, GROUP, "v1", "widgets"),
          "widgets to be served")
    return client.CustomObjectsApi(api)


def _widget(obj_name: str, **spec: Any) -> Dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": obj_name}, "spec": spec}


def test_crd_status_and_discovery(cluster, api, widgets):  # type: ignore[no-untyped-def]
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(f"widgets.{GROUP}")
    names = crd.status.accepted_names
    assert (names.plural, names.kind, names.list_kind, names.short_names) == ("widgets", "Widget", "WidgetList", ["wd"])
    conds = {c.type: (c.status, c.reason) for c in crd.status.conditions}
    assert conds["NamesAccepted"] == ("True", "NoConflicts")
    assert conds["Established"] == ("True", "InitialNamesAccepted")
    assert crd.status.stored_versions == ["v1"]
    assert cluster.ok("get", "crd", f"widgets.{GROUP}").splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    # kubectl reads aggregated discovery (v2) first.
    agg = _get(cluster, "/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    group = next(g for g in agg["items"] if g["metadata"]["name"] == GROUP)
    entry = group["versions"][0]["resources"][0]
    assert entry["resource"] == "widgets" and entry["shortNames"] == ["wd"] and entry["categories"] == ["all"]
    assert {s["subresource"] for s in entry["subresources"]} == {"status", "scale"}
    out = cluster.ok("api-resources", "--api-group", GROUP, "-o", "wide")
    assert out.splitlines()[1].split()[:5] == ["widgets", "wd", f"{GROUP}/v1", "true", "Widget"]
    assert "all" in out.splitlines()[1].split()[-1]


def test_kubectl_get_printer_columns_and_get_all(cluster, widgets):  # type: ignore[no-untyped-def]
    cluster.ok("create", "-f", "-", input=json.dumps(_widget("printed", color="green", replicas=3)))
    table = cluster.ok("get", "widgets").splitlines()
    assert table[0].split() == ["NAME", "REPLICAS", "AGE"]
    assert table[1].split()[:2] == ["printed", "3"]
    wide = cluster.ok("get", "wd", "printed", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "REPLICAS", "COLOR", "AGE"]
    assert wide[1].split()[:3] == ["printed", "3", "green"]
    assert f"widget.{GROUP}/printed" in cluster.ok("get", "all")
    cluster.ok("create", "-f", "-", input=json.dumps(_widget("reddish", color="red")))
    assert cluster.ok("get", "widgets", "--field-selector", "spec.color=green", "-o", "name").split() == [
        f"widget.{GROUP}/printed"]
    out = cluster.kubectl("get", "widgets", "--field-selector", "spec.size=small")
    assert "field label not supported: spec.size" in out.stderr


def test_kubectl_apply_and_patch(cluster, widgets):  # type: ignore[no-untyped-def]
    # Client-side apply of a custom resource is a JSON merge patch: the OpenAPI v3 PATCH of a custom resource
    # offers no strategic merge patch, as upstream's, so kubectl does not try one.
    cluster.ok("apply", "-f", "-", input=json.dumps(_widget("applied", color="red", replicas=2)))
    assert "configured" in cluster.ok("apply", "-f", "-", input=json.dumps(_widget("applied", color="red", replicas=5)))
    assert widgets.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "applied")["spec"]["replicas"] == 5
    assert "serverside-applied" in cluster.ok("apply", "--server-side", "--force-conflicts", "-f", "-",
                                              input=json.dumps(_widget("applied", color="blue", replicas=5)))
    out = cluster.kubectl("patch", "widget", "applied", "-p", '{"spec":{"replicas":6}}')  # strategic by default
    assert out.returncode == 1 and "the body of the request was in an unknown format - accepted media types " \
        "include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml" in out.stderr
    cluster.ok("patch", "widget", "applied", "--type=merge", "-p", '{"spec":{"replicas":6}}')
    assert widgets.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "applied")["spec"] == {
        "color": "blue", "replicas": 6, "size": "medium"}


def test_kubectl_explain(cluster, widgets):  # type: ignore[no-untyped-def]
    out = cluster.ok("explain", "widgets.spec")
    assert "What the widget should be." in out
    assert "color\t<string> -required-" in out and "replicas\t<integer>" in out
    assert "A widget of the test suite." in cluster.ok("explain", "widget")


def test_invalid_object_rejected_with_upstream_messages(cluster, widgets):  # type: ignore[no-untyped-def]
    bad = _widget("bad", color="pink", replicas="three", name="Bad-Name")
    out = cluster.kubectl("create", "-f", "-", input=json.dumps(bad))
    assert out.returncode == 1
    assert 'The Widget "bad" is invalid:' in out.stderr
    assert ('spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'
            in out.stderr)
    assert 'spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"' in out.stderr
    assert """spec.name: Invalid value: "Bad-Name": spec.name in body should match '^[a-z]+$'""" in out.stderr
    with pytest.raises(ApiException) as exc:
        widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget("big", color="red", replicas=11))
    assert exc.value.status == 422
    body = json.loads(exc.value.body)
    assert body["reason"] == "Invalid" and body["message"] == (
        f'Widget.{GROUP} "big" is invalid: spec.replicas: Invalid value: 11: spec.replicas in body should be less '
        "than or equal to 10")
    missing = cluster.kubectl("create", "-f", "-", input=json.dumps(_widget("nocolor", template={"spec": {}})))
    assert "spec.color: Required value" in missing.stderr
    assert "spec.template.apiVersion: Required value: must not be empty" in missing.stderr
    assert cluster.kubectl("get", "widget", "bad").returncode == 1  # nothing stored


def test_pruning_defaulting_and_strict(cluster, widgets):  # type: ignore[no-untyped-def]
    body = _widget("pruned", color="red", unknown="x", free={"any": {"thing": 1}}, port="http",
                   labels={"a": "b"})
    body["metadata"]["bogus"] = "y"
    body["top"] = "level"
    got = widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", body)
    assert got["spec"] == {"color": "red", "free": {"any": {"thing": 1}}, "port": "http", "labels": {"a": "b"},
                           "replicas": 1, "size": "medium"}
    assert "top" not in got and "bogus" not in got["metadata"]
    assert got["metadata"]["generation"] == 1
    # kubectl asks for fieldValidation=Strict: unknown fields are refused with the decoder's message.
    strict = cluster.kubectl("create", "-f", "-", input=json.dumps(_widget("strict", color="red", extra=1)))
    assert strict.returncode == 1
    assert ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field '
            '"spec.extra"') in strict.stderr
    warned = cluster.kubectl("create", "--validate=warn", "-f", "-",
                             input=json.dumps(_widget("warned", color="red", extra=1)))
    assert warned.returncode == 0 and 'unknown field "spec.extra"' in warned.stderr


def test_status_subresource_and_generation(widgets):  # type: ignore[no-untyped-def]
    w = widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets",
                                                {**_widget("st", color="red"), "status": {"replicas": 9}})
    assert "status" not in w  # reset on create
    w = widgets.patch_namespaced_custom_object_status(GROUP, "v1", NS, "widgets", "st",
                                                      {"status": {"replicas": 2}, "spec": {"color": "blue"}})
    assert w["status"] == {"replicas": 2} and w["spec"]["color"] == "red"  # /status changes status only
    assert w["metadata"]["generation"] == 1
    w = widgets.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", "st",
                                               {"status": {"replicas": 7}, "spec": {"color": "blue"}})
    assert w["status"] == {"replicas": 2} and w["spec"]["color"] == "blue"  # main writes keep status
    assert w["metadata"]["generation"] == 2
    w = widgets.patch_namespaced_custom_object(GROUP, "v1", NS, "widgets", "st", {"metadata": {"labels": {"a": "b"}}})
    assert w["metadata"]["generation"] == 2


def test_scale_subresource(cluster, widgets):  # type: ignore[no-untyped-def]
    widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget("scaled", color="red"))
    widgets.patch_namespaced_custom_object_status(GROUP, "v1", NS, "widgets", "scaled",
                                                  {"status": {"replicas": 1, "selector": "app=scaled"}})
    cluster.ok("scale", "widget", "scaled", "--replicas=4")
    scale = widgets.get_namespaced_custom_object_scale(GROUP, "v1", NS, "widgets", "scaled")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 4} and scale["status"] == {"replicas": 1, "selector": "app=scaled"}
    assert widgets.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "scaled")["spec"]["replicas"] == 4
    out = cluster.kubectl("scale", "widget", "scaled", "--replicas=20")
    assert "spec.replicas in body should be less than or equal to 10" in out.stderr


def test_watch_custom_objects(widgets):  # type: ignore[no-untyped-def]
    rv = widgets.list_namespaced_custom_object(GROUP, "v1", NS, "widgets")["metadata"]["resourceVersion"]
    widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget("watched", color="green"))
    widgets.delete_namespaced_custom_object(GROUP, "v1", NS, "widgets", "watched")
    seen = []
    w = watch.Watch()
    for ev in w.stream(widgets.list_namespaced_custom_object, GROUP, "v1", NS, "widgets", resource_version=rv,
                       timeout_seconds=30):
        if ev["object"]["metadata"]["name"] == "watched":
            seen.append(ev["type"])
            assert ev["object"]["apiVersion"] == f"{GROUP}/v1"
        if seen == ["ADDED", "DELETED"]:
            w.stop()
    assert seen == ["ADDED", "DELETED"]


def test_namespace_deletion_deletes_custom_resources(cluster, api, widgets):  # type: ignore[no-untyped-def]
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "crd-ns"}})
    widgets.create_namespaced_custom_object(GROUP, "v1", "crd-ns", "widgets", _widget("inside", color="red"))
    cluster.ok("delete", "namespace", "crd-ns")  # waits until the namespace controller emptied it and it is gone
    assert widgets.list_cluster_custom_object(GROUP, "v1", "widgets",
                                              field_selector="metadata.namespace=crd-ns")["items"] == []


def test_garbage_collection_through_custom_resources(api, widgets):  # type: ignore[no-untyped-def]
    core = client.CoreV1Api(api)
    owner = widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", _widget("owner", color="red"))
    ref = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "name": "owner", "uid": owner["metadata"]["uid"]}
    core.create_namespaced_config_map(NS, {"metadata": {"name": "owned-by-widget", "ownerReferences": [ref]}})
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "owns-a-widget"}})
    widgets.create_namespaced_custom_object(GROUP, "v1", NS, "widgets", {
        **_widget("owned", color="red"), "metadata": {"name": "owned", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owns-a-widget", "uid": cm.metadata.uid}]}})
    widgets.delete_namespaced_custom_object(GROUP, "v1", NS, "widgets", "owner")
    core.delete_namespaced_config_map("owns-a-widget", NS)

    def gone() -> bool:
        cms = {c.metadata.name for c in core.list_namespaced_config_map(NS).items}
        ws = {w["metadata"]["name"] for w in widgets.list_namespaced_custom_object(GROUP, "v1", NS, "widgets")["items"]}
        return "owned-by-widget" not in cms and "owned" not in ws

    _poll(gone, "the dependents of deleted owners to be collected")


def test_openapi_documents_follow_crds(cluster, api, widgets):  # type: ignore[no-untyped-def]
    doc = _get(cluster, f"/openapi/v3/apis/{GROUP}/v1")
    schema = doc["components"]["schemas"]["com.example.crd.v1.Widget"]
    assert schema["properties"]["spec"]["required"] == ["color"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": GROUP, "kind": "Widget", "version": "v1"}]
    v2 = _get(cluster, "/openapi/v2")
    assert f"/apis/{GROUP}/v1/namespaces/{{namespace}}/widgets" in v2["paths"]
    assert "nullable" not in json.dumps(v2["definitions"]["com.example.crd.v1.Widget"])

    def v2_etag() -> str:
        req = urllib.request.Request(cluster.url + "/openapi/v2",
                                     headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        with urllib.request.urlopen(req, timeout=30) as r:  # gnostic's compiler takes the CRD schemas (kubectl 1.27)
            assert r.status == 200 and r.read()
            return str(r.headers["ETag"])

    before = v2_etag()
    client.ApiextensionsV1Api(api).create_custom_resource_definition(
        _crd("etags", "Etag", [{"name": "v1", "served": True, "storage": True, "schema": _OPEN}]))
    _poll(lambda: _served(cluster, GROUP, "v1", "etags"), "etags to be served")
    assert v2_etag() != before
    assert f"/apis/{GROUP}/v1/namespaces/{{namespace}}/etags" in _get(cluster, "/openapi/v2")["paths"]


def _crd(plural: str, kind: str, versions: Any, group: str = GROUP, scope: str = "Namespaced") -> Dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope, "names": {"plural": plural, "kind": kind}, "versions": versions}}


_OPEN = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def test_versions_conversion_none(cluster, api, widgets):  # type: ignore[no-untyped-def]
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(_crd("gizmos", "Gizmo", [
        {"name": "v1beta1", "served": True, "storage": False, "schema": _OPEN},
        {"name": "v1", "served": True, "storage": True, "schema": _OPEN},
    ], scope="Cluster"))
    _poll(lambda: _served(cluster, GROUP, "v1beta1", "gizmos") and _served(cluster, GROUP, "v1", "gizmos"),
          "gizmos in both versions")
    objs = client.CustomObjectsApi(api)
    rv = objs.list_cluster_custom_object(GROUP, "v1beta1", "gizmos")["metadata"]["resourceVersion"]
    made = objs.create_cluster_custom_object(GROUP, "v1beta1", "gizmos",
                                             {"apiVersion": f"{GROUP}/v1beta1", "kind": "Gizmo",
                                              "metadata": {"name": "g"}, "spec": {"x": 1}})
    assert made["apiVersion"] == f"{GROUP}/v1beta1"
    assert objs.get_cluster_custom_object(GROUP, "v1", "gizmos", "g")["apiVersion"] == f"{GROUP}/v1"
    assert [i["apiVersion"] for i in objs.list_cluster_custom_object(GROUP, "v1beta1", "gizmos")["items"]] == [
        f"{GROUP}/v1beta1"]
    w = watch.Watch()
    for ev in w.stream(objs.list_cluster_custom_object, GROUP, "v1beta1", "gizmos", resource_version=rv,
                       timeout_seconds=30):
        assert (ev["type"], ev["object"]["apiVersion"]) == ("ADDED", f"{GROUP}/v1beta1")
        w.stop()
    group = _get(cluster, f"/apis/{GROUP}")
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]


def test_webhook_conversion_serves_the_storage_version(cluster, api, widgets):  # type: ignore[no-untyped-def]
    """A CRD asking for webhook conversion installs (Helm charts ship them); megaplane calls no webhooks, so a
    version other than the storage one answers as upstream does when its webhook fails."""
    crd = _crd("hooks", "Hook", [{"name": "v1", "served": True, "storage": True, "schema": _OPEN},
                                 {"name": "v2", "served": True, "storage": False, "schema": _OPEN}])
    crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"], "clientConfig": {"url": "https://conversion.invalid/convert"}}}
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    _poll(lambda: _served(cluster, GROUP, "v1", "hooks"), "hooks to be served")
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, "v1", NS, "hooks", {
        "apiVersion": f"{GROUP}/v1", "kind": "Hook", "metadata": {"name": "h"}, "spec": {"a": 1}})
    assert objs.get_namespaced_custom_object(GROUP, "v1", NS, "hooks", "h")["spec"] == {"a": 1}
    with pytest.raises(ApiException) as exc:
        objs.get_namespaced_custom_object(GROUP, "v2", NS, "hooks", "h")
    assert exc.value.status == 500
    assert f"conversion webhook for {GROUP}/v1, Kind=Hook failed" in json.loads(exc.value.body)["message"]
    bad = _crd("badhooks", "BadHook", [{"name": "v1", "served": True, "storage": True, "schema": _OPEN}])
    bad["spec"]["conversion"] = {"strategy": "Webhook"}
    out = cluster.kubectl("create", "-f", "-", input=json.dumps(bad))
    assert "spec.conversion.webhook: Required value: required when strategy is set to Webhook" in out.stderr


def test_cel_validation_rules(cluster, api, widgets):  # type: ignore[no-untyped-def]
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas"},
            {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable", "fieldPath": ".mode"},
        ],
        "properties": {"replicas": {"type": "integer"}, "minReplicas": {"type": "integer"},
                       "mode": {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('m-')"}]}},
    }}}}
    client.ApiextensionsV1Api(api).create_custom_resource_definition(
        _crd("ruleds", "Ruled", [{"name": "v1", "served": True, "storage": True, "schema": schema}]))
    _poll(lambda: _served(cluster, GROUP, "v1", "ruleds"), "ruleds to be served")

    def ruled(name: str, **spec: Any) -> str:
        return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Ruled", "metadata": {"name": name}, "spec": spec})

    out = cluster.kubectl("create", "-f", "-", input=ruled("r", replicas=1, minReplicas=2, mode="x"))
    assert out.returncode == 1
    assert 'spec: Invalid value: "object": replicas must be at least minReplicas' in out.stderr
    assert """spec.mode: Invalid value: "string": failed rule: self.startsWith('m-')""" in out.stderr
    cluster.ok("create", "-f", "-", input=ruled("r", replicas=2, minReplicas=2, mode="m-a"))
    out = cluster.kubectl("apply", "-f", "-", input=ruled("r", replicas=2, minReplicas=2, mode="m-b"))
    assert 'spec.mode: Invalid value: "object": mode is immutable' in out.stderr  # a transition rule
    cluster.ok("apply", "-f", "-", input=ruled("r", replicas=3, minReplicas=2, mode="m-a"))


def test_name_conflict_and_crd_validation(cluster, api, widgets):  # type: ignore[no-untyped-def]
    ext = client.ApiextensionsV1Api(api)
    other = _crd("otherwidgets", "Widget", [{"name": "v1", "served": True, "storage": True, "schema": _OPEN}])
    other["spec"]["names"]["singular"] = "otherwidget"  # not the defaulted "widget": the kind is what collides
    ext.create_custom_resource_definition(other)

    def conflict() -> Any:
        crd = ext.read_custom_resource_definition(f"otherwidgets.{GROUP}")
        return next((c for c in crd.status.conditions or () if c.type == "NamesAccepted"), None)

    cond = _poll(conflict, "the NamesAccepted condition")
    assert (cond.status, cond.reason, cond.message) == ("False", "KindConflict", '"Widget" is already in use')
    assert not _served(cluster, GROUP, "v1", "otherwidgets")
    bad = _crd("things", "Thing", [{"name": "v1", "served": True, "storage": False,
                                    "schema": {"openAPIV3Schema": {"type": "object",
                                                                   "properties": {"spec": {"description": "x"}}}}}])
    bad["metadata"]["name"] = "wrong.example.com"
    out = cluster.kubectl("create", "-f", "-", input=json.dumps(bad))
    assert 'metadata.name: Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group' in out.stderr
    assert ("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for "
            "specified object fields") in out.stderr
    assert "must have exactly one version marked as storage version" in out.stderr
    crd = ext.read_custom_resource_definition(f"widgets.{GROUP}")
    crd.spec.scope = "Cluster"
    with pytest.raises(ApiException) as exc:
        ext.replace_custom_resource_definition(f"widgets.{GROUP}", crd)
    assert exc.value.status == 422
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in json.loads(exc.value.body)["message"]


def test_crd_deletion_removes_objects_and_endpoints(cluster, api, widgets):  # type: ignore[no-untyped-def]
    ext = client.ApiextensionsV1Api(api)
    objs = client.CustomObjectsApi(api)
    versions = [{"name": "v1", "served": True, "storage": True, "schema": _OPEN}]
    ext.create_custom_resource_definition(_crd("doomeds", "Doomed", versions))
    _poll(lambda: _served(cluster, GROUP, "v1", "doomeds"), "doomeds to be served")
    for i in range(3):
        objs.create_namespaced_custom_object(GROUP, "v1", NS, "doomeds", {
            "apiVersion": f"{GROUP}/v1", "kind": "Doomed", "metadata": {"name": f"d{i}"}})
    cluster.ok("delete", "crd", f"doomeds.{GROUP}")  # waits until the CRD is gone (its finalizer done)
    assert _get(cluster, f"/apis/{GROUP}/v1/namespaces/{NS}/doomeds") == {"code": 404}
    assert not _served(cluster, GROUP, "v1", "doomeds")
    ext.create_custom_resource_definition(_crd("doomeds", "Doomed", versions))
    _poll(lambda: _served(cluster, GROUP, "v1", "doomeds"), "doomeds to be served again")
    assert objs.list_namespaced_custom_object(GROUP, "v1", NS, "doomeds")["items"] == []


KPT = shutil.which("kpt") or os.path.join(os.path.dirname(os.path.realpath(KUBECTL)), "kpt")


@pytest.mark.skipif(not os.path.exists(KPT), reason="kpt is not installed")
def test_kpt_live_init_and_apply(cluster, api, widgets, tmp_path):  # type: ignore[no-untyped-def]
    """kpt installs its ResourceGroup CRD (a fixed wait of kpt's: ~10 s), then server-side applies the package
    (a built-in kind and a custom resource) and records it in its ResourceGroup inventory."""
    (tmp_path / "Kptfile").write_text("apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n")
    (tmp_path / "cm.yaml").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "kpt-cm", "namespace": NS}, "data": {"a": "b"}}))
    (tmp_path / "widget.yaml").write_text(json.dumps({**_widget("kpt-widget", color="green"),
                                                      "metadata": {"name": "kpt-widget", "namespace": NS}}))
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}

    def kpt(*args: str) -> str:
        out = subprocess.run([KPT, "live", *args, str(tmp_path)], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, f"kpt live {' '.join(args)}: {out.stdout}\n{out.stderr}"
        return out.stdout

    kpt("init", "--namespace", NS)
    out = kpt("apply", "--server-side", "--reconcile-timeout=1m")
    assert "apply result: 2 attempted, 2 successful, 0 skipped, 0 failed" in out
    assert "reconcile result: 2 attempted, 2 successful" in out
    objs = client.CustomObjectsApi(api)
    groups = objs.list_namespaced_custom_object("kpt.dev", "v1alpha1", NS, "resourcegroups")["items"]
    listed = {(r["kind"], r["name"]) for g in groups for r in (g.get("spec") or {}).get("resources") or ()}
    assert {("ConfigMap", "kpt-cm"), ("Widget", "kpt-widget")} <= listed
    widget = objs.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "kpt-widget")
    assert widget["spec"] == {"color": "green", "replicas": 1, "size": "medium"}
    assert [(m["manager"], m["operation"]) for m in widget["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    # Changed configuration, applied again: the fields kpt owns move, the defaults stay.
    (tmp_path / "widget.yaml").write_text(json.dumps({**_widget("kpt-widget", color="blue", replicas=2),
                                                      "metadata": {"name": "kpt-widget", "namespace": NS}}))
    kpt("apply", "--server-side", "--reconcile-timeout=1m")
    widget = objs.get_namespaced_custom_object(GROUP, "v1", NS, "widgets", "kpt-widget")
    assert widget["spec"] == {"color": "blue", "replicas": 2, "size": "medium"}
