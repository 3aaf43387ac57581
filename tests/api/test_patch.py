"""Tests for megaplane.apiserver.patch: JSON patch, JSON merge patch, strategic merge patch.

Expected values come from the RFCs' own examples, from upstream's test tables (ported case by case,
named as upstream names them) and, for real kinds, from tracing upstream's code
(k8s.io/apimachinery/pkg/util/strategicpatch, gopkg.in/evanphx/json-patch.v4, the apiserver's
handlers/patch.go); each case says which.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from megaplane.apiserver.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    decode_patch,
)
from megaplane.apiserver.schema import definitions as schema

REJECTED = "the server rejected our request due to an error in our request"


def kind_schema(group: str, version: str, kind: str) -> dict:
    return schema.definitions()[schema.definition_for(group, version, kind)]


# ==================================================================================================
# JSON patch


# RFC 6902 appendix A, A.1 - A.16, in order. `None` as the result means "this patch is an error".
RFC6902_EXAMPLES = [
    ("A.1 adding an object member", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2 adding an array element", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3 removing an object member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
     {"foo": "bar"}),
    ("A.4 removing an array element", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5 replacing a value", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6 moving a value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 moving an array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}], {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 testing a value: success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.9 testing a value: error", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], None),
    ("A.10 adding a nested member object", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignoring unrecognized elements", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.12 adding to a nonexistent target", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], None),
    # A.13 (a duplicate "op" member) cannot be written as a dict: see test_rfc6902_a13_invalid_patch_document.
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.15 comparing strings and numbers", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], None),
    ("A.16 adding an array value", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]


@pytest.mark.parametrize("doc,patch,expected", [c[1:] for c in RFC6902_EXAMPLES], ids=[c[0] for c in RFC6902_EXAMPLES])
def test_rfc6902_appendix_a(doc: Any, patch: list, expected: Any) -> None:
    before = copy.deepcopy(doc), copy.deepcopy(patch)
    if expected is None:
        with pytest.raises(PatchError) as e:
            apply_json_patch(doc, patch)
        assert (e.value.code, e.value.reason, e.value.message) == (422, "Invalid", REJECTED)
    else:
        assert apply_json_patch(doc, patch) == expected
    assert (doc, patch) == before  # inputs untouched


def test_rfc6902_a13_invalid_patch_document() -> None:
    # The last "op" wins when decoding (Go and orjson alike): a remove of a member that is not there.
    body = b'[{"op": "add", "path": "/baz", "value": "qux", "op": "remove"}]'
    with pytest.raises(PatchError) as e:
        apply_json_patch({"foo": "bar"}, body)
    assert e.value.detail == "error in remove for path: '/baz': Unable to remove nonexistent key: baz: missing value"


POD_DOC = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "resourceVersion": "7", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx"}], "tolerations": [{"key": "a"}, {"key": "b"}, {"key": "c"}]},
}


# What kube-apiserver answers when a JSON patch does not apply (handlers/patch.go applyJSPatch): always
# 422 Invalid with NewGenericServerResponse's fixed message; the evanphx error is only in `detail`.
JSON_PATCH_FAILURES = [
    ("test fails", [{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}],
     "testing value /metadata/resourceVersion failed: test failed"),
    ("test of a missing path", [{"op": "test", "path": "/metadata/annotations/a", "value": "x"}],
     "test operation does not apply: is missing path: /metadata/annotations/a: missing value"),
    ("add under a missing parent", [{"op": "add", "path": "/metadata/annotations/a", "value": "x"}],
     'add operation does not apply: doc is missing path: "/metadata/annotations/a": missing value'),
    ("remove a missing member", [{"op": "remove", "path": "/metadata/labels/tier"}],
     "error in remove for path: '/metadata/labels/tier': Unable to remove nonexistent key: tier: missing value"),
    ("replace under a missing parent", [{"op": "replace", "path": "/spec/nodeSelector/zone", "value": "a"}],
     "replace operation does not apply: doc is missing path: /spec/nodeSelector/zone: missing value"),
    ("replace a missing array element", [{"op": "replace", "path": "/spec/containers/3", "value": {}}],
     "replace operation does not apply: doc is missing key: /spec/containers/3: missing value"),
    ("add past the end of an array", [{"op": "add", "path": "/spec/containers/2", "value": {}}],
     "error in add for path: '/spec/containers/2': Unable to access invalid index: 2: invalid index referenced"),
    ("array index that is not a number", [{"op": "add", "path": "/spec/containers/x", "value": {}}],
     "error in add for path: '/spec/containers/x': value was not a proper array index: 'x': "
     'strconv.Atoi: parsing "x": invalid syntax'),
    ("move from a missing member", [{"op": "move", "from": "/metadata/labels/x", "path": "/metadata/labels/y"}],
     "error in move for path: 'x': Unable to remove nonexistent key: x: missing value"),
    ("copy to a missing parent", [{"op": "copy", "from": "/metadata/name", "path": "/status/name"}],
     "copy operation does not apply: doc is missing destination path: /status/name: missing value"),
    ("unknown op", [{"op": "frobnicate", "path": "/metadata"}], "Unexpected kind: frobnicate"),
    ("no op", [{"path": "/metadata"}], "Unexpected kind: unknown"),
    ("no path", [{"op": "add", "value": 1}], "add operation failed to decode path: missing value"),
    ("no from", [{"op": "move", "path": "/a"}],
     "move operation failed to decode from: operation, missing from field: missing value"),
    ("whole document add", [{"op": "add", "path": "", "value": {}}],
     'add operation does not apply: doc is missing path: "": missing value'),
]


@pytest.mark.parametrize("patch,detail", [c[1:] for c in JSON_PATCH_FAILURES], ids=[c[0] for c in JSON_PATCH_FAILURES])
def test_json_patch_failures_answer_like_kube_apiserver(patch: list, detail: str) -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch(POD_DOC, patch)
    assert (e.value.code, e.value.reason, e.value.message, e.value.detail) == (422, "Invalid", REJECTED, detail)


# A body that does not decode as a list of operations: 400 BadRequest with the strict decoder's message
# prefixed by "error decoding patch: " (applyJSPatch, default fieldValidation=Warn).
MALFORMED_JSON_PATCHES = [
    ("not a list", {"op": "add", "path": "/a", "value": 1},
     "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"),
    ("a string", "add", "error decoding patch: json: cannot unmarshal string into Go value of type []handlers.jsonPatchOp"),
    ("operation not an object", [1],
     "error decoding patch: json: cannot unmarshal number into Go value of type handlers.jsonPatchOp"),
    ("path not a string", [{"op": "add", "path": 1, "value": 1}],
     "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.path of type string"),
    ("op not a string", [{"op": ["add"], "path": "/a"}],
     "error decoding patch: json: cannot unmarshal array into Go struct field jsonPatchOp.op of type string"),
    ("not JSON", b"[{op: add}]", "error decoding patch: invalid character 'o' looking for beginning of object key string"),
    ("empty body", b"", "error decoding patch: unexpected end of JSON input"),
]


@pytest.mark.parametrize("patch,message", [c[1:] for c in MALFORMED_JSON_PATCHES], ids=[c[0] for c in MALFORMED_JSON_PATCHES])
def test_malformed_json_patch_is_a_bad_request(patch: Any, message: str) -> None:
    with pytest.raises(PatchError) as e:
        apply_json_patch(POD_DOC, patch)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def test_json_patch_operation_limit() -> None:
    # handlers/patch.go: maxJSONPatchOperations, NewRequestEntityTooLargeError.
    patch = [{"op": "test", "path": "/kind", "value": "Pod"}] * 10001
    with pytest.raises(PatchError) as e:
        apply_json_patch(POD_DOC, patch)
    assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
    assert e.value.message == (
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    )
    assert apply_json_patch(POD_DOC, patch[:10000]) == POD_DOC


def test_json_patch_upstream_extensions_and_quirks() -> None:
    doc = {"a": [1, 2, 3], "m": {"x": 1}}
    # Negative indices count from the end (evanphx SupportNegativeIndices, on by default).
    assert apply_json_patch(doc, [{"op": "remove", "path": "/a/-1"}]) == {"a": [1, 2], "m": {"x": 1}}
    assert apply_json_patch(doc, [{"op": "add", "path": "/a/-1", "value": 9}])["a"] == [1, 2, 3, 9]
    assert apply_json_patch(doc, [{"op": "replace", "path": "/a/-3", "value": 0}])["a"] == [0, 2, 3]
    # Indices are read by strconv.Atoi: a sign or leading zeros are fine.
    assert apply_json_patch(doc, [{"op": "replace", "path": "/a/01", "value": 0}])["a"] == [1, 0, 3]
    # replace of a missing member of an existing object sets it (partialDoc.get never fails).
    assert apply_json_patch(doc, [{"op": "replace", "path": "/m/y", "value": 2}])["m"] == {"x": 1, "y": 2}
    # "value" left out means null; testing a missing member against null passes.
    assert apply_json_patch(doc, [{"op": "add", "path": "/n"}])["n"] is None
    assert apply_json_patch(doc, [{"op": "test", "path": "/missing", "value": None}]) == doc
    # The whole document: replace (object or array only) and test work, add does not.
    assert apply_json_patch(doc, [{"op": "replace", "path": "", "value": {"b": 1}}]) == {"b": 1}
    assert apply_json_patch(doc, [{"op": "test", "path": "", "value": doc}]) == doc
    # A null patch decodes to no operations.
    assert apply_json_patch(doc, None) == doc
    assert apply_json_patch(doc, b"null") == doc


def test_json_patch_on_an_object() -> None:
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/example.com~1owner", "value": "me"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "log", "image": "fluent-bit"}},
        {"op": "copy", "from": "/spec/containers/0/image", "path": "/metadata/labels/image"},
        {"op": "move", "from": "/spec/tolerations/0", "path": "/spec/tolerations/2"},
        {"op": "remove", "path": "/metadata/resourceVersion"},
    ]
    assert apply_json_patch(POD_DOC, patch) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web", "image": "nginx"}, "annotations": {"example.com/owner": "me"}},
        "spec": {
            "containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "fluent-bit"}],
            "tolerations": [{"key": "b"}, {"key": "c"}, {"key": "a"}],
        },
    }


def test_json_patch_values_are_copied() -> None:
    value = {"k": "v"}
    out = apply_json_patch({}, [{"op": "add", "path": "/a", "value": value}, {"op": "copy", "from": "/a", "path": "/b"}])
    out["a"]["k"] = "changed"
    assert value == {"k": "v"} and out["b"] == {"k": "v"}


# ==================================================================================================
# JSON merge patch


# RFC 7386 appendix A, every row.
RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("doc,patch,expected", RFC7386_EXAMPLES)
def test_rfc7386_appendix_a(doc: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(doc), copy.deepcopy(patch)
    assert apply_merge_patch(doc, patch) == expected
    assert (doc, patch) == before


def test_merge_patch_on_an_object() -> None:
    doc = {"metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch = {"metadata": {"labels": {"tier": None, "v": "2"}}, "spec": {"containers": [{"name": "c"}]}}
    # Lists are replaced whole: merge patch knows no merge keys.
    assert apply_merge_patch(doc, patch) == {
        "metadata": {"name": "web", "labels": {"app": "web", "v": "2"}},
        "spec": {"containers": [{"name": "c"}]},
    }


def test_merge_patch_null_pruning_follows_evanphx() -> None:
    # Copied-in values lose their null members, through arrays too (pruneNulls/pruneAryNulls)...
    assert apply_merge_patch({}, {"a": [{"b": None, "c": 1}, None]}) == {"a": [{"c": 1}, None]}
    assert apply_merge_patch({"a": "x"}, {"a": {"b": None, "c": 1}}) == {"a": {"c": 1}}
    # ...but an array replacing an object is taken as it is (merge() returns the patch untouched).
    assert apply_merge_patch({"a": {"x": 1}}, {"a": [{"b": None}]}) == {"a": [{"b": None}]}


MALFORMED_MERGE_PATCHES = [
    # handlers/patch.go: the strict decode into map[string]any, then jsonpatch.MergePatch.
    ("not JSON", b"{labels: 1}", "error decoding patch: invalid character 'l' looking for beginning of object key string"),
    ("truncated", b'{"metadata": {', "error decoding patch: unexpected end of JSON input"),
    ("an array", b"[1]", "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("a string", b'"x"', "error decoding patch: json: cannot unmarshal string into Go value of type map[string]interface {}"),
    ("null", b"null", "Invalid JSON Patch"),
]


@pytest.mark.parametrize("body,message", [c[1:] for c in MALFORMED_MERGE_PATCHES], ids=[c[0] for c in MALFORMED_MERGE_PATCHES])
def test_malformed_merge_patch_is_a_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(PatchError) as e:
        apply_merge_patch({"a": 1}, body)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def test_merge_patch_body() -> None:
    assert apply_merge_patch({"a": 1, "b": 2}, b'{"a": null, "c": 3}') == {"b": 2, "c": 3}


# ==================================================================================================
# Decoding bodies: Go's encoding/json syntax errors, as kubectl prints them


GO_SYNTAX_ERRORS = [
    (b"", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b"{}x", "invalid character 'x' after top-level value"),
    (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
    (b"nope", "invalid character 'o' in literal null (expecting 'u')"),
    (b"-", "invalid character ' ' in numeric literal"),
    (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
]


@pytest.mark.parametrize("body,message", GO_SYNTAX_ERRORS)
def test_strategic_patch_body_syntax_errors(body: bytes, message: str) -> None:
    # strategicPatchObject reports the decoder's error as it is (no prefix).
    with pytest.raises(PatchError) as e:
        decode_patch(body, STRATEGIC_MERGE_PATCH)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def test_decode_patch() -> None:
    assert decode_patch(b'[{"op": "remove", "path": "/a"}]', JSON_PATCH) == [{"op": "remove", "path": "/a"}]
    assert decode_patch(b'{"a": null}', MERGE_PATCH) == {"a": None}
    assert decode_patch(b"null", STRATEGIC_MERGE_PATCH) is None
    with pytest.raises(PatchError, match=r"^json: cannot unmarshal array into Go value of type map\[string\]interface \{\}$"):
        decode_patch(b"[]", STRATEGIC_MERGE_PATCH)
    with pytest.raises(ValueError):
        decode_patch(b"{}", "application/json")


# ==================================================================================================
# Strategic merge patch: upstream's own tables (strategicpatch/patch_test.go), on a schema that
# mirrors the MergeItem test struct they are written against.


def _merge_item_schema() -> dict:
    string = {"type": "string"}
    item: dict = {"type": "object", "properties": {}}
    retain_item = {
        "type": "object",
        "x-kubernetes-patch-strategy": "retainKeys",
        "properties": {
            "name": string,
            "value": string,
            "other": string,
            "simpleMap": {"type": "object", "additionalProperties": string},
            "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
            "mergingList": {"type": "array", "items": item, "x-kubernetes-patch-strategy": "merge",
                            "x-kubernetes-patch-merge-key": "name"},
            "nonMergingList": {"type": "array", "items": item},
        },
    }
    item["properties"].update(
        {
            "name": string,
            "value": string,
            "other": string,
            "mergingList": {"type": "array", "items": item, "x-kubernetes-patch-strategy": "merge",
                            "x-kubernetes-patch-merge-key": "name"},
            "nonMergingList": {"type": "array", "items": item},
            "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
            "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
            "simpleMap": {"type": "object", "additionalProperties": string},
            "replacingItem": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
            "retainKeysMap": retain_item,
            "retainKeysMergingList": {"type": "array", "items": item, "x-kubernetes-patch-strategy": "merge,retainKeys",
                                      "x-kubernetes-patch-merge-key": "name"},
        }
    )
    return item


MERGE_ITEM = _merge_item_schema()


def _named(*names: Any) -> list:
    return [{"name": n} for n in names]


# (upstream description, document, patch, expected). The document is upstream's `original` for a
# two-way case (expected = `modified`/`twoWayResult`) and `current` for a three-way one (expected = `result`).
UPSTREAM_SMP_CASES = [
    # customStrategicMergePatchTestCaseData
    ("unique scalars when merging lists", {"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]},
     {"mergingIntList": [1, 2, 3]}),
    ("delete map from nested map", {"simpleMap": {"key1": 1, "key2": 1}}, {"simpleMap": {"$patch": "delete"}},
     {"simpleMap": {}}),
    ("delete all items from merging list", {"mergingList": _named(1, 2)}, {"mergingList": [{"$patch": "replace"}]},
     {"mergingList": []}),
    ("merge empty merging lists", {"mergingList": []}, {"mergingList": []}, {"mergingList": []}),
    ("delete all keys from map", {"name": 1, "value": 1}, {"$patch": "replace"}, {}),
    ("add key and delete all keys from map", {"name": 1, "value": 1}, {"other": "a", "$patch": "replace"}, {"other": "a"}),
    ("delete all duplicate entries in a merging list",
     {"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]},
     {"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "value": "a"}]}),
    ("retainKeys map can delete a field when no retainKeys directive present",
     {"retainKeysMap": {"name": "foo", "value": "a"}}, {"retainKeysMap": {"value": None}}, {"retainKeysMap": {"name": "foo"}}),
    ("retainKeys list can add a field when no retainKeys directive present",
     {"retainKeysMergingList": _named("bar", "foo")}, {"retainKeysMergingList": [{"name": "foo", "value": "a"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
    ("preserve the order from the patch in a merging list",
     {"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "other": "x"}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}, {"name": 2, "value": "b", "other": "x"}]}),
    ("preserve the order from the patch in a merging list 2",
     {"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
    ("preserve the order from the patch in a merging int list", {"mergingIntList": [1, 2, 3]},
     {"mergingIntList": [3, 1, 2]}, {"mergingIntList": [3, 1, 2]}),
    ("preserve the order from the patch in a merging int list (subset)", {"mergingIntList": [1, 2, 3]},
     {"mergingIntList": [3, 1]}, {"mergingIntList": [2, 3, 1]}),
    # customStrategicMergePatchRawTestCases
    ("$setElementOrder contains item that is not present in the list to be merged",
     {"mergingList": _named(1, 3)},
     {"$setElementOrder/mergingList": _named(3, 2, 1), "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     {"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    ("$setElementOrder contains item that is not present in the int list to be merged",
     {"mergingIntList": [1, 3]}, {"$setElementOrder/mergingIntList": [3, 2, 1]}, {"mergingIntList": [3, 1]}),
    ("$deleteFromPrimitiveList of nonexistent item in primitive list should not add the item to the list",
     {"mergingIntList": [1, 2]}, {"$deleteFromPrimitiveList/mergingIntList": [3]}, {"mergingIntList": [1, 2]}),
    ("$deleteFromPrimitiveList on empty primitive list should not add the item to the list",
     {"mergingIntList": None}, {"$deleteFromPrimitiveList/mergingIntList": [3]}, {"mergingIntList": None}),
    ("$deleteFromPrimitiveList on nonexistent primitive list should not add the primitive list",
     {"foo": ["bar"]}, {"$deleteFromPrimitiveList/mergingIntList": [3]}, {"foo": ["bar"]}),
    ("$deleteFromPrimitiveList should delete item from a list with merge patch strategy",
     {"mergingIntList": [1, 2, 3]}, {"$deleteFromPrimitiveList/mergingIntList": [2]}, {"mergingIntList": [1, 3]}),
    ("$deleteFromPrimitiveList should delete item from a list without merge patch strategy",
     {"nonMergingIntList": [1, 2, 3]}, {"$deleteFromPrimitiveList/nonMergingIntList": [2]}, {"nonMergingIntList": [1, 3]}),
    # strategicMergePatchRawTestCases (three-way: current + threeWay = result)
    ("nested patch merge with empty list (three-way)",
     {"name": "hi", "mergingList": _named("hello2")},
     {"$setElementOrder/mergingList": _named("hello", "doesntexist"),
      "mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]},
     {"name": "hi", "mergingList": _named("hello", "hello2")}),
    ("nested patch merge with empty list (two-way)", {"name": "hi"},
     {"mergingList": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}]},
     {"name": "hi", "mergingList": _named("hello")}),
    ("delete all duplicate items in lists of scalars", {"mergingIntList": [1, 2, 3, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ("add and delete items in lists of scalars", {"mergingIntList": [1, 2, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2, 4], "$deleteFromPrimitiveList/mergingIntList": [3], "mergingIntList": [4]},
     {"mergingIntList": [1, 2, 4]}),
    ("merge lists of maps",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": _named(4, 1, 2, 3),
      "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"},
                      {"name": 3, "value": 3}]}),
    ("add field to map in merging list with conflict",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": _named(1, 2),
      "mergingList": [{"name": 1, "value": 1}, {"name": 2, "value": 2}]},
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2},
                      {"name": 3, "value": 2, "other": "b"}]}),
    # The next two depend on upstream editing the live list in place (see _merge_maps).
    ("add map and delete map from merging list",
     {"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": _named(2, 3), "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
    ("add map and delete map from merging list with conflict",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": _named(2, 3),
      "mergingList": [{"name": 2}, {"name": 3}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 4, "other": "c"}, {"name": 2}, {"name": 3}]}),
    ("delete missing map from merging list with conflict",
     {"mergingList": [{"name": 3, "other": "a"}]},
     {"$setElementOrder/mergingList": _named(2), "mergingList": [{"name": 2}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2}, {"name": 3, "other": "a"}]}),
    ("set elements order in a list with server-only items 2",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 9}, {"name": 3, "value": 3},
                      {"name": 4, "value": 4}]},
     {"$setElementOrder/mergingList": _named(2, 1, 4, 3)},
     {"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 9}, {"name": 4, "value": 4},
                      {"name": 3, "value": 3}]}),
    ("set elements order in a int list with server-only items 3", {"mergingIntList": [1, 2, 7, 9, 8, 3, 4]},
     {"$setElementOrder/mergingIntList": [2, 1, 4, 3]}, {"mergingIntList": [2, 1, 7, 9, 8, 4, 3]}),
    ("behavior of set element order for a merging list with duplicate",
     {"mergingList": [{"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3}, {"name": 2, "value": "dup2"}, {"name": 4}]},
     {"$setElementOrder/mergingList": _named(2, 1, 4, 3, 2)},
     {"mergingList": [{"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"}, {"name": 1}, {"name": 4}, {"name": 3}]}),
    ("retainKeys map should clear defaulted field with conflict (discriminated union)",
     {"retainKeysMap": {"name": "type1", "value": "foo"}},
     {"retainKeysMap": {"$retainKeys": ["name", "other"], "name": "type2", "other": "bar"}},
     {"retainKeysMap": {"name": "type2", "other": "bar"}}),
    ("retainKeys map adds an item in nested merging int list",
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}},
     {"retainKeysMap": {"$setElementOrder/mergingIntList": [1, 2, 4], "$retainKeys": ["mergingIntList", "name"],
                        "mergingIntList": [4]}},
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 4, 3]}}),
    ("retainKeys map adds an item and deletes an item in nested merging int list",
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3, 4]}},
     {"retainKeysMap": {"$retainKeys": ["mergingIntList", "name"], "mergingIntList": [5],
                        "$deleteFromPrimitiveList/mergingIntList": [2], "$setElementOrder/mergingIntList": [1, 3, 5]}},
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 3, 5, 4]}}),
    ("retainKeys map deletes an item in nested merging list",
     {"retainKeysMap": {"name": "foo", "mergingList": _named("a", "b", "x")}},
     {"retainKeysMap": {"$retainKeys": ["mergingList", "name"], "$setElementOrder/mergingList": _named("a"),
                        "mergingList": [{"name": "b", "$patch": "delete"}]}},
     {"retainKeysMap": {"name": "foo", "mergingList": _named("a", "x")}}),
    ("retainKeys list of maps clears a field",
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]},
     {"$setElementOrder/retainKeysMergingList": _named("bar", "foo"),
      "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}),
    # replaceRawExtensionPatchTestCases: a field with patchStrategy replace is replaced, not merged
    ("replace RawExtension field, rest unchanched",
     {"name": "my-object", "replacingItem": {"Some": "Generic", "Field": "Period"}},
     {"replacingItem": {"Newly": "Modified"}}, {"name": "my-object", "replacingItem": {"Newly": "Modified"}}),
    # TestUnknownField (two-way results)
    ("no diff even if modified null", {"name": "foo"}, {"complex_nullable": {"key": None}},
     {"name": "foo", "complex_nullable": {}}),
    ("discard nulls in nested and adds not nulls", {"name": "foo"},
     {"complex_nullable": {"key": {"keynotnull": "value", "keynull": None}}},
     {"name": "foo", "complex_nullable": {"key": {"keynotnull": "value"}}}),
    ("filter nulls from nested slices", {}, {"complex_nullable": [{"inner_one": {"key_one": "foo", "key_two": None}}]},
     {"complex_nullable": [{"inner_one": {"key_one": "foo"}}]}),
    ("not filter nulls from non-associative slice", {}, {"complex_nullable": ["key1", None, "key2"]},
     {"complex_nullable": ["key1", None, "key2"]}),
    ("null values in original are preserved", {"thing": None}, {"nested": {"value": 5}},
     {"nested": {"value": 5}, "thing": None}),
    ("removed only (three-way)", {"name": "foo", "scalar": True, "complex": {"nested": True}, "array": [1, 2, 3]},
     {"complex": None, "scalar": None}, {"array": [1, 2, 3], "name": "foo"}),
]


@pytest.mark.parametrize("doc,patch,expected", [c[1:] for c in UPSTREAM_SMP_CASES], ids=[c[0] for c in UPSTREAM_SMP_CASES])
def test_strategic_merge_patch_upstream_tables(doc: dict, patch: dict, expected: dict) -> None:
    before = copy.deepcopy(doc), copy.deepcopy(patch)
    assert apply_strategic_merge_patch(doc, patch, MERGE_ITEM) == expected
    assert (doc, patch) == before


UPSTREAM_SMP_ERRORS = [
    ("should check if order in $setElementOrder and patch list match", {"mergingList": _named(1, 3, 2)},
     {"$setElementOrder/mergingList": _named(1, 2, 3), "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     "The order in patch list:\n[map[name:3 value:3] map[name:1 value:1]]\n doesn't match $setElementOrder list:\n"
     "[map[name:1] map[name:2] map[name:3]]\n"),
    ("should check if order in $setElementOrder and patch list match (int list)", {"mergingIntList": [1, 3, 2]},
     {"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]},
     "The order in patch list:\n[3 1]\n doesn't match $setElementOrder list:\n[1 2 3]\n"),
    ("missing merge key should error out", {"mergingList": [{"name": 1, "value": "a"}]},
     {"mergingList": [{"value": "b"}]}, "map: map[value:b] does not contain declared merge key: name"),
]


@pytest.mark.parametrize("doc,patch,message", [c[1:] for c in UPSTREAM_SMP_ERRORS], ids=[c[0] for c in UPSTREAM_SMP_ERRORS])
def test_strategic_merge_patch_upstream_errors(doc: dict, patch: dict, message: str) -> None:
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch(doc, patch, MERGE_ITEM)
    assert (e.value.code, e.value.reason, e.value.message) == (422, "Invalid", message)


def test_strategic_merge_patch_directive_errors() -> None:
    # $patch: merge exists in no apply path upstream: a map refuses it (handleDirectiveInMergeMap)...
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch({"simpleMap": {"a": "1"}}, {"simpleMap": {"$patch": "merge", "b": "2"}}, MERGE_ITEM)
    assert e.value.message == "unknown patch type: merge in map: map[$patch:merge b:2]"
    # ...and so does a merging list (mergeSliceWithSpecialElements).
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch({"mergingList": _named(1)}, {"mergingList": [{"name": 1, "$patch": "merge"}]}, MERGE_ITEM)
    assert e.value.message == "merging lists cannot yet be specified in the patch"
    # Malformed directives are 400 (interpretStrategicMergePatchError).
    for patch, message in [
        ({"$deleteFromPrimitiveListmergingIntList": [1]}, "invalid patch format of primitive list"),
        ({"$setElementOrder": [1]}, "invalid patch format of setElementOrder list"),
        ({"retainKeysMap": {"$retainKeys": "name"}}, "invalid patch format of retainKeys"),
        ({"retainKeysMap": {"$retainKeys": ["name"], "value": "x"}}, "invalid patch format of retainKeys"),
    ]:
        with pytest.raises(PatchError) as e:
            apply_strategic_merge_patch({"mergingIntList": [1], "retainKeysMap": {"name": "a"}}, patch, MERGE_ITEM)
        assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)
    # Lists of lists: 422 with the generic message (ErrNoListOfLists).
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch({"mergingIntList": [[1]]}, {"mergingIntList": [[2]]}, MERGE_ITEM)
    assert (e.value.code, e.value.message, e.value.detail) == (422, REJECTED, "lists of lists are not supported")


# ==================================================================================================
# Strategic merge patch on real kinds (expected results traced through upstream's code)

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "labels": {"app": "web", "tier": "frontend"},
        "finalizers": ["example.com/a", "example.com/b"],
    },
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "web-config"}}],
        "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def pod_smp(patch: Any) -> dict:
    before = copy.deepcopy(POD), copy.deepcopy(patch)
    out = apply_strategic_merge_patch(POD, patch, kind_schema("", "v1", "Pod"))
    assert (POD, patch) == before
    return out


def with_pod(path: str, value: Any) -> dict:
    """POD with the value at a dotted path (list indices as numbers) replaced."""
    out = copy.deepcopy(POD)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for p in parents:
        node = node[p]
    node[last] = value
    return out


APP, SIDECAR = POD["spec"]["containers"]


def test_pod_container_merged_by_name() -> None:
    # Containers merge by `name`: only the named container changes, the list keeps its order.
    out = pod_smp({"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}})
    assert out == with_pod("spec.containers.1.image", "busybox:1.36")


def test_pod_new_container_goes_first_without_element_order() -> None:
    # mergeSortedSlice puts a patch element the live list lacks before the server-only ones: a plain
    # `kubectl patch` adding a container prepends it (the behaviour kustomize issue #2907 records).
    out = pod_smp({"spec": {"containers": [{"name": "log", "image": "fluent-bit"}]}})
    assert out["spec"]["containers"] == [{"name": "log", "image": "fluent-bit"}, APP, SIDECAR]


def test_pod_new_container_placed_by_set_element_order() -> None:
    # What `kubectl apply` sends: the parallel order list puts the new container last.
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}, {"name": "log"}],
            "containers": [{"name": "log", "image": "fluent-bit"}],
        }
    }
    assert pod_smp(patch)["spec"]["containers"] == [APP, SIDECAR, {"name": "log", "image": "fluent-bit"}]


def test_pod_set_element_order_reorders() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}
    assert pod_smp(patch)["spec"]["containers"] == [SIDECAR, APP]


def test_pod_container_ports_merged_by_container_port() -> None:
    # Port 80 gets a name; 8080 is new: it lands after the patched port, before the untouched 443
    # (patch elements keep the patch's order and precede server-only ones they are not behind).
    out = pod_smp({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"},
                                                                     {"containerPort": 8080, "protocol": "TCP"}]}]}})
    assert out["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 443, "protocol": "TCP"},
    ]
    assert out["spec"]["containers"][1] == SIDECAR


def test_pod_env_merged_by_name() -> None:
    out = pod_smp({"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "x"}]}]}})
    assert out["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "x"},
    ]
    # Switching an env var from value to valueFrom: null deletes inside the merged element.
    value_from = {"fieldRef": {"fieldPath": "metadata.name"}}
    out = pod_smp({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": None, "valueFrom": value_from}]}]}})
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "valueFrom": value_from}, {"name": "B", "value": "2"}]


def test_pod_volume_mounts_merged_by_mount_path() -> None:
    out = pod_smp({"spec": {"containers": [{"name": "app", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}})
    assert out["spec"]["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]


def test_pod_volumes_retain_keys() -> None:
    # volumes are "merge,retainKeys": `kubectl apply` switching a volume's source sends $retainKeys,
    # which clears the old source (upstream "retainKeys list of maps ..." cases).
    out = pod_smp({"spec": {"volumes": [{"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}]}})
    assert out["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}}, POD["spec"]["volumes"][1]]
    # Without the directive both sources stay (and validation rejects the pod later, as upstream's does).
    out = pod_smp({"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/srv"}}]}})
    assert out["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}, "hostPath": {"path": "/srv"}}
    # Every field the patch sets must be retained.
    with pytest.raises(PatchError) as e:
        pod_smp({"spec": {"volumes": [{"name": "data", "$retainKeys": ["name"], "hostPath": {"path": "/srv"}}]}})
    assert (e.value.code, e.value.message) == (400, "invalid patch format of retainKeys")


def test_pod_tolerations_have_no_merge_key_so_are_replaced() -> None:
    # tolerations carry no patch strategy: the patch list replaces the live one.
    tolerations = [{"key": "c", "operator": "Equal", "value": "x"}]
    assert pod_smp({"spec": {"tolerations": tolerations}}) == with_pod("spec.tolerations", tolerations)


def test_pod_args_are_replaced() -> None:
    assert pod_smp({"spec": {"containers": [{"name": "sidecar", "args": ["true"]}]}}) == with_pod(
        "spec.containers.1.args", ["true"]
    )


def test_metadata_finalizers_merge_as_a_set() -> None:
    # finalizers: strategy merge, primitives. Duplicates collapse; a new value goes first, as new list
    # elements do without $setElementOrder.
    assert pod_smp({"metadata": {"finalizers": ["example.com/b"]}})["metadata"]["finalizers"] == [
        "example.com/a", "example.com/b"
    ]
    assert pod_smp({"metadata": {"finalizers": ["example.com/c"]}})["metadata"]["finalizers"] == [
        "example.com/c", "example.com/a", "example.com/b"
    ]
    # Removing one: the parallel deletion list `kubectl apply` and controllers send.
    out = pod_smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}})
    assert out["metadata"]["finalizers"] == ["example.com/b"]
    # What kubectl apply sends to add one at the end.
    out = pod_smp({"metadata": {"$setElementOrder/finalizers": ["example.com/a", "example.com/b", "example.com/c"],
                                "finalizers": ["example.com/c"]}})
    assert out["metadata"]["finalizers"] == ["example.com/a", "example.com/b", "example.com/c"]


def test_metadata_labels() -> None:
    # null deletes a key, other keys merge.
    out = pod_smp({"metadata": {"labels": {"tier": None, "version": "v2"}}})
    assert out["metadata"]["labels"] == {"app": "web", "version": "v2"}
    # $patch: replace makes the map exactly the patch's; $patch: delete empties it (upstream returns {}).
    assert pod_smp({"metadata": {"labels": {"$patch": "replace", "app": "api"}}})["metadata"]["labels"] == {"app": "api"}
    assert pod_smp({"metadata": {"labels": {"$patch": "delete"}}})["metadata"]["labels"] == {}
    # labels: null removes the whole map.
    assert "labels" not in pod_smp({"metadata": {"labels": None}})["metadata"]


def test_pod_patch_delete_container() -> None:
    out = pod_smp({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}})
    assert out == with_pod("spec.containers", [APP])
    # Deleting one that is not there changes nothing.
    assert pod_smp({"spec": {"containers": [{"name": "nope", "$patch": "delete"}]}}) == POD


def test_pod_patch_replace_list() -> None:
    only = {"name": "only", "image": "x"}
    assert pod_smp({"spec": {"containers": [{"$patch": "replace"}, only]}}) == with_pod("spec.containers", [only])


def test_pod_patch_errors() -> None:
    with pytest.raises(PatchError) as e:
        pod_smp({"spec": {"containers": [{"image": "x"}]}})
    assert (e.value.code, e.value.reason, e.value.message) == (
        422, "Invalid", "map: map[image:x] does not contain declared merge key: name"
    )
    with pytest.raises(PatchError) as e:
        pod_smp({"metadata": {"labels": {"$patch": "merge", "x": "y"}}})
    assert e.value.message == "unknown patch type: merge in map: map[$patch:merge x:y]"


def test_pod_new_fields_are_added_without_nulls_or_directives() -> None:
    # Where the live object has nothing to merge with, the patch value is taken minus nulls
    # (discardNullValuesFromPatch) and minus maps carrying $patch (removeDirectives).
    out = pod_smp({"spec": {"nodeSelector": {"zone": "a", "gone": None}, "initContainers": [
        {"name": "init", "image": "busybox", "resources": None}, {"name": "x", "$patch": "delete"}]}})
    assert out["spec"]["nodeSelector"] == {"zone": "a"}
    assert out["spec"]["initContainers"] == [{"name": "init", "image": "busybox"}]


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}},
    },
}


def deployment_smp(patch: Any) -> dict:
    return apply_strategic_merge_patch(DEPLOYMENT, patch, kind_schema("apps", "v1", "Deployment"))


def test_deployment_strategy_retain_keys() -> None:
    # spec.strategy is patchStrategy retainKeys: switching to Recreate the way `kubectl apply` does
    # drops rollingUpdate (upstream "retainKeys map should clear defaulted field ..." cases).
    out = deployment_smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    # A plain patch merges, keeping rollingUpdate (kubernetes issue #24198's famous validation error).
    out = deployment_smp({"spec": {"strategy": {"type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def test_deployment_template_containers() -> None:
    out = deployment_smp({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}})
    expected = copy.deepcopy(DEPLOYMENT)
    expected["spec"]["replicas"] = 5
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert out == expected


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
        ],
    },
}


def service_smp(patch: Any) -> dict:
    return apply_strategic_merge_patch(SERVICE, patch, kind_schema("", "v1", "Service"))


def test_service_ports_merged_by_port() -> None:
    http, https = SERVICE["spec"]["ports"]
    out = service_smp({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    assert out["spec"]["ports"] == [{**http, "targetPort": 9090}, https]
    out = service_smp({"spec": {"ports": [{"port": 8081, "name": "alt"}]}})
    assert out["spec"]["ports"] == [{"port": 8081, "name": "alt"}, http, https]
    out = service_smp({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}})
    assert out["spec"]["ports"] == [http]
    # selector is a plain map: merged key by key.
    assert service_smp({"spec": {"selector": {"tier": "fe"}}})["spec"]["selector"] == {"app": "web", "tier": "fe"}


def test_pdb_selector_is_replaced() -> None:
    # PodDisruptionBudgetSpec.selector has patchStrategy replace: the patch map replaces the live one.
    pdb = {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    patch = {"spec": {"selector": {"matchLabels": {"tier": "fe"}}}}
    out = apply_strategic_merge_patch(pdb, patch, kind_schema("policy", "v1", "PodDisruptionBudget"))
    assert out == {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"tier": "fe"}}}}


def test_no_schema_behaves_like_merge_patch() -> None:
    # Without schema information every field has an empty strategy: maps merge, null deletes, lists
    # are replaced (PatchMetaFromOpenAPI with no schema).
    doc = {"spec": {"items": [{"name": "a", "v": 1}], "m": {"a": 1, "b": 2}}, "status": {"x": 1}}
    patch = {"spec": {"items": [{"name": "b"}], "m": {"a": None, "c": 3}}}
    expected = {"spec": {"items": [{"name": "b"}], "m": {"b": 2, "c": 3}}, "status": {"x": 1}}
    assert apply_strategic_merge_patch(doc, patch, None) == expected
    assert apply_strategic_merge_patch(doc, patch, None) == apply_merge_patch(doc, patch)


def test_unknown_field_of_a_known_kind_behaves_like_merge_patch() -> None:
    doc = with_pod("spec.extra", {"list": [{"name": "a"}], "keep": 1})
    out = apply_strategic_merge_patch(doc, {"spec": {"extra": {"list": [{"name": "b"}]}}}, kind_schema("", "v1", "Pod"))
    assert out["spec"]["extra"] == {"list": [{"name": "b"}], "keep": 1}


def test_strategic_merge_patch_body_and_result_independence() -> None:
    body = b'{"metadata": {"labels": {"tier": null}}, "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}'
    out = apply_strategic_merge_patch(POD, body, kind_schema("", "v1", "Pod"))
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["containers"][0]["image"] == "nginx:2"
    # The result shares nothing with the inputs.
    patch = {"spec": {"containers": [{"name": "log", "env": [{"name": "X", "value": "1"}]}]}}
    out = apply_strategic_merge_patch(POD, patch, kind_schema("", "v1", "Pod"))
    out["spec"]["containers"][0]["env"][0]["value"] = "changed"
    out["spec"]["containers"][1]["ports"].clear()
    assert patch["spec"]["containers"][0]["env"][0]["value"] == "1"
    assert POD["spec"]["containers"][0]["ports"]
    # A null patch changes nothing; a non-object patch is refused like the strict decode refuses it.
    assert apply_strategic_merge_patch(POD, None, None) == POD
    with pytest.raises(PatchError) as e:
        apply_strategic_merge_patch(POD, [{"op": "add"}], None)
    assert (e.value.code, e.value.message) == (
        400, "json: cannot unmarshal array into Go value of type map[string]interface {}"
    )


# Plain JSON values: no "$" keys (no directives) and no nulls inside lists, where the two algorithms
# legitimately differ (merge patch prunes nulls inside copied arrays, strategic merge does not).
_keys = st.text(alphabet="abcd", min_size=1, max_size=2)
_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(alphabet="xy", max_size=2)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(st.booleans() | st.integers(-3, 3), max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)
_objects = st.dictionaries(_keys, _values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(doc=_objects, patch=_objects)
def test_strategic_merge_without_schema_is_merge_patch(doc: dict, patch: dict) -> None:
    before = copy.deepcopy(doc), copy.deepcopy(patch)
    assert apply_strategic_merge_patch(doc, patch, None) == apply_merge_patch(doc, patch)
    assert (doc, patch) == before
