"""Hostile PATCH bodies: the limits kube-apiserver puts on patching, with its codes and wording.

Upstream (k8s.io/apiserver at 24a394e, gopkg.in/evanphx/json-patch.v4):
  maxJSONPatchOperations = 10000          handlers/patch.go applyJSPatch -> 413 RequestEntityTooLarge
  JSONPatchMaxCopyBytes = 3 MiB           pkg/server/config.go -> jsonpatch.AccumulatedCopySizeLimit;
                                          AccumulatedCopySizeError -> NewGenericServerResponse(422)
  maxNestingDepth = 10000                 encoding/json scanner (and sigs.k8s.io/json): "invalid character
                                          '{' exceeded max depth", a 400; megaplane refuses from 255 levels
                                          (megaplane.apiserver.patch.limits says why)

The unit tests call the patch functions; the end-to-end tests send the exact hostile request over a
real socket to `megaplane up` and check the Status, that nothing changed, and that the server still
answers /readyz.
"""

from __future__ import annotations

import http.client
import itertools
import json
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional, Tuple

import orjson
import pytest

from megaplane.apiserver.patch import (
    MAX_COPY_BYTES,
    MAX_DEPTH,
    MAX_JSON_PATCH_OPERATIONS,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    go_syntax_error,
)
from megaplane.apiserver.patch.limits import first_too_deep
from megaplane.apiserver.patch.values import clone, clone_with_size

REJECTED = "the server rejected our request due to an error in our request"


def nested_object(depth: int, leaf: bytes = b"1") -> bytes:
    """`depth` objects nested in one another: {"a":{"a":...1...}}."""
    return b'{"a":' * depth + leaf + b"}" * depth


def nested_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def doubling_copies(count: int) -> list:
    """`count` copies of /a into itself: each one doubles the JSON size of the array."""
    return [{"op": "copy", "from": "/a", "path": "/a/-"} for _ in range(count)]


# ==================================================================================================
# JSON patch: operation count


def test_json_patch_at_the_operation_limit_applies() -> None:
    patch = [{"op": "test", "path": "/a", "value": 1}] * MAX_JSON_PATCH_OPERATIONS
    assert apply_json_patch({"a": 1}, orjson.dumps(patch)) == {"a": 1}


def test_json_patch_over_the_operation_limit_is_413() -> None:
    patch = [{"op": "test", "path": "/a", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(PatchError) as exc:
        apply_json_patch({"a": 1}, orjson.dumps(patch))
    assert (exc.value.code, exc.value.reason, exc.value.message) == (
        413,
        "RequestEntityTooLarge",
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001",
    )


# ==================================================================================================
# JSON patch: accumulated copy size


def test_copy_explosion_stops_at_the_accumulated_copy_limit() -> None:
    # The reported request: 23 copies doubling an array (before: 7.9 s, then a 500).
    with pytest.raises(PatchError) as exc:
        apply_json_patch({"a": [1]}, orjson.dumps(doubling_copies(23)))
    assert (exc.value.code, exc.value.reason, exc.value.message) == (422, "Invalid", REJECTED)
    assert exc.value.detail is not None
    assert exc.value.detail.startswith("Unable to complete the copy, the accumulated size increase of copy is ")
    assert exc.value.detail.endswith(f", exceeding the limit {MAX_COPY_BYTES}")
    total = int(exc.value.detail.split(" is ")[1].split(",")[0])
    assert total > MAX_COPY_BYTES


def test_copies_are_counted_by_their_json_size_and_allowed_up_to_the_limit() -> None:
    # One copy of a string member: its JSON is the string plus two quotes.
    fits = "x" * (MAX_COPY_BYTES - 2)
    assert apply_json_patch({"s": fits}, [{"op": "copy", "from": "/s", "path": "/t"}]) == {"s": fits, "t": fits}
    too_big = "x" * (MAX_COPY_BYTES - 1)
    with pytest.raises(PatchError) as exc:
        apply_json_patch({"s": too_big}, [{"op": "copy", "from": "/s", "path": "/t"}])
    assert exc.value.detail == (
        f"Unable to complete the copy, the accumulated size increase of copy is {MAX_COPY_BYTES + 1}, "
        f"exceeding the limit {MAX_COPY_BYTES}"
    )


def test_the_copy_limit_is_over_the_whole_patch() -> None:
    half = "x" * (MAX_COPY_BYTES // 2)
    patch = [{"op": "copy", "from": "/s", "path": "/t"}, {"op": "copy", "from": "/s", "path": "/u"}]
    with pytest.raises(PatchError) as exc:
        apply_json_patch({"s": half}, patch)
    assert exc.value.detail is not None and "accumulated size increase of copy is" in exc.value.detail


def test_copy_size_is_the_compact_json_length_even_where_orjson_cannot_encode() -> None:
    for value in ({"a": [1, "x", None, True, 1.5]}, {"big": 2**70, "l": [-(2**80), {"k": "v"}]}):
        copied, size = clone_with_size(value)
        assert copied == value and copied is not value
        assert size == len(json.dumps(value, separators=(",", ":")))
    deep = nested_value(400)  # deeper than orjson nests
    copied, size = clone_with_size(deep)
    assert copied == deep
    assert size == len(nested_object(400))


def test_clone_of_a_very_deep_value_needs_no_recursion() -> None:
    deep = nested_value(5000)
    copied = clone(deep)
    assert first_too_deep(copied, 4999) == "{" and first_too_deep(copied, 5000) is None


# ==================================================================================================
# Nesting depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1024, 1025, 20000])
def test_deep_merge_patch_is_a_400(depth: int) -> None:
    with pytest.raises(PatchError) as exc:
        apply_merge_patch({"a": 1}, nested_object(depth))
    assert (exc.value.code, exc.value.reason, exc.value.message) == (
        400,
        "BadRequest",
        "error decoding patch: invalid character '{' exceeded max depth",
    )


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1025])
def test_deep_strategic_merge_patch_is_a_400(depth: int) -> None:
    with pytest.raises(PatchError) as exc:
        apply_strategic_merge_patch({"a": 1}, nested_object(depth), None)
    assert (exc.value.code, exc.value.reason, exc.value.message) == (
        400,
        "BadRequest",
        "invalid character '{' exceeded max depth",
    )


def test_deep_json_patch_is_a_400_naming_the_bracket_that_went_too_deep() -> None:
    body = b'[{"op":"add","path":"/x","value":' + b"[" * 300 + b"]" * 300 + b"}]"
    with pytest.raises(PatchError) as exc:
        apply_json_patch({}, body)
    assert exc.value.message == "error decoding patch: invalid character '[' exceeded max depth"


def test_decoded_deep_patches_are_refused_too() -> None:
    deep = nested_value(MAX_DEPTH + 1)
    with pytest.raises(PatchError, match="exceeded max depth"):
        apply_merge_patch({}, deep)
    with pytest.raises(PatchError, match="exceeded max depth"):
        apply_strategic_merge_patch({}, deep, None)
    with pytest.raises(PatchError, match="exceeded max depth"):
        apply_json_patch({}, [{"op": "add", "path": "/x", "value": deep}])


def test_patches_at_the_depth_limit_apply() -> None:
    # The body itself nests MAX_DEPTH deep (the JSON patch's list and op take two levels).
    assert apply_merge_patch({"b": 1}, nested_object(MAX_DEPTH)) == {"b": 1, **nested_value(MAX_DEPTH)}
    merged = apply_strategic_merge_patch(nested_value(MAX_DEPTH), nested_object(MAX_DEPTH, b"2"), None)
    assert first_too_deep(merged) is None and first_too_deep(merged, MAX_DEPTH - 1) == "{"
    value = nested_value(MAX_DEPTH - 3)
    assert apply_json_patch({}, orjson.dumps([{"op": "add", "path": "/x", "value": value}])) == {"x": value}


def test_a_json_patch_may_not_nest_the_result_deeper_than_the_limit() -> None:
    # The document nests 253 levels; the copy puts /a (252 levels) at level 4: 255 levels.
    doc = {"a": nested_value(MAX_DEPTH - 2)}
    assert apply_json_patch(doc, [{"op": "copy", "from": "/a", "path": "/a/b"}])["a"]["b"] == doc["a"]
    with pytest.raises(PatchError) as exc:
        apply_json_patch(doc, [{"op": "copy", "from": "/a", "path": "/a/a/b"}])
    assert (exc.value.code, exc.value.message) == (422, REJECTED)
    assert exc.value.detail == f"the patched object nests deeper than {MAX_DEPTH} levels"


def test_deep_intermediate_documents_do_not_exhaust_the_stack() -> None:
    # Copies nest /a into itself far past the limit, then a remove takes it back: the result is fine.
    patch = [{"op": "copy", "from": "/a", "path": "/a/b"} for _ in range(11)]  # depth doubles: 2 ** 11
    patch.append({"op": "remove", "path": "/a"})
    assert apply_json_patch({"a": {"x": 1}, "keep": True}, patch) == {"keep": True}


def test_a_document_nested_deeper_than_the_limit_is_refused() -> None:
    deep = {"a": nested_value(MAX_DEPTH)}
    for apply in (
        lambda: apply_merge_patch(deep, {"b": 1}),
        lambda: apply_strategic_merge_patch(deep, {"b": 1}, None),
        lambda: apply_json_patch(deep, [{"op": "add", "path": "/b", "value": 1}]),
    ):
        with pytest.raises(PatchError) as exc:
            apply()
        assert (exc.value.code, exc.value.message) == (422, REJECTED)
        assert exc.value.detail == f"the object to patch nests deeper than {MAX_DEPTH} levels"


def test_go_scanner_reports_the_first_container_past_max_depth() -> None:
    assert go_syntax_error(b"[" * 10001 + b"]" * 10001) == "invalid character '[' exceeded max depth"
    assert go_syntax_error(b"[" * 10000 + b"]" * 10000) is None
    assert go_syntax_error(b'[{"a":[1]}]', max_depth=2) == "invalid character '[' exceeded max depth"
    assert go_syntax_error(b'[{"a":[1]}]', max_depth=3) is None
    # A syntax error before the too-deep container is what Go reports.
    assert go_syntax_error(b"[x" + b"[" * 20, max_depth=5) == "invalid character 'x' looking for beginning of value"


def test_first_too_deep_walks_in_document_order() -> None:
    value = {"a": [[1]], "b": {"c": {}}}
    assert first_too_deep(value, 2) == "["
    assert first_too_deep({"b": {"c": {}}, "a": [[1]]}, 2) == "{"
    assert first_too_deep(value, 3) is None
    assert first_too_deep(1) is None and first_too_deep({"big": 2**70}, 1) is None


# ==================================================================================================
# End to end: the hostile requests against `megaplane up`

CM_PATH = "/api/v1/namespaces/default/configmaps"
_NAMES = itertools.count()


def request(url: str, method: str, path: str, body: Optional[bytes] = None, ctype: str = "application/json") -> Tuple[int, Dict[str, Any]]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype, "Accept": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data)


def assert_ready(url: str) -> None:
    with urllib.request.urlopen(url + "/readyz", timeout=10) as r:
        assert r.status == 200


@pytest.fixture
def configmap(cluster):  # type: ignore[no-untyped-def]
    name = f"limits-{next(_NAMES)}"
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"l": "v"}}, "data": {"k": "v"}}
    code, created = request(cluster.url, "POST", CM_PATH, json.dumps(obj).encode())
    assert code == 201, created
    yield name, created
    request(cluster.url, "DELETE", f"{CM_PATH}/{name}")


def assert_refused(cluster, name: str, created: Dict[str, Any], body: bytes, ctype: str,
                   code: int, reason: str, message: str, details: Any = None) -> None:  # type: ignore[no-untyped-def]
    got_code, status = request(cluster.url, "PATCH", f"{CM_PATH}/{name}", body, ctype)
    assert (got_code, status.get("reason"), status.get("message")) == (code, reason, message), status
    assert status["kind"] == "Status" and status["code"] == code
    assert status.get("details") == details
    _, now = request(cluster.url, "GET", f"{CM_PATH}/{name}")
    assert now["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert now["data"] == created["data"] and now["metadata"]["labels"] == created["metadata"]["labels"]
    assert_ready(cluster.url)


def test_e2e_copy_explosion_is_422(cluster, configmap) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    patch = [{"op": "add", "path": "/x", "value": ["x"]}]
    patch += [{"op": "copy", "from": "/x", "path": "/x/-"}] * 23
    body = json.dumps(patch, separators=(",", ":")).encode()
    assert len(body) < 1200  # the reported request: about 1.1 KB
    assert_refused(cluster, name, created, body, "application/json-patch+json", 422, "Invalid", REJECTED, {})


def test_e2e_too_many_operations_is_413(cluster, configmap) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    body = json.dumps([{"op": "test", "path": "/data/k", "value": "v"}] * 10001).encode()
    assert_refused(
        cluster, name, created, body, "application/json-patch+json", 413, "RequestEntityTooLarge",
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001",
    )


def test_e2e_operations_at_the_limit_apply(cluster, configmap) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    patch = [{"op": "test", "path": "/data/k", "value": "v"}] * 9999 + [{"op": "add", "path": "/data/n", "value": "1"}]
    code, obj = request(cluster.url, "PATCH", f"{CM_PATH}/{name}", json.dumps(patch).encode(), "application/json-patch+json")
    assert code == 200, obj
    assert obj["data"] == {"k": "v", "n": "1"}


@pytest.mark.parametrize("depth", [300, 1100])
def test_e2e_deep_merge_patch_is_400(cluster, configmap, depth: int) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    body = b'{"metadata":{"annotations":{"x":"y"}},"z":' + nested_object(depth) + b"}"
    assert_refused(cluster, name, created, body, "application/merge-patch+json", 400, "BadRequest",
                   "error decoding patch: invalid character '{' exceeded max depth")


@pytest.mark.parametrize("depth", [300, 1100])
def test_e2e_deep_strategic_merge_patch_is_400(cluster, configmap, depth: int) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    body = b'{"metadata":{"annotations":{"x":"y"}},"z":' + nested_object(depth) + b"}"
    assert_refused(cluster, name, created, body, "application/strategic-merge-patch+json", 400, "BadRequest",
                   "invalid character '{' exceeded max depth")


def test_e2e_json_patch_nesting_the_object_too_deep_is_422(cluster, configmap) -> None:  # type: ignore[no-untyped-def]
    name, created = configmap
    value = nested_value(MAX_DEPTH - 2)  # the body nests MAX_DEPTH deep: accepted by the decoder
    body = json.dumps([{"op": "add", "path": "/metadata/labels/deep", "value": value}]).encode()
    assert_refused(cluster, name, created, body, "application/json-patch+json", 422, "Invalid", REJECTED, {})
