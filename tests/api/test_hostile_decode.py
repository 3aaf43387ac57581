"""Hostile request bodies against a real `megaplane up` (issue 8: #2 YAML aliases and tags, #6 nesting depth).

Each body is sent over a raw socket as the probe sent it; the answer must be
a 400 with upstream's wording (or upstream's conversion), nothing stored,
and the server still answering.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from tests.api.conftest import Cluster
from tests.api.test_hostile_transport import body_request, get, ready, request

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def post(cluster: Cluster, body: bytes, ctype: str = "application/json") -> tuple:
    code, _, answer = request(cluster.port, body_request("POST", CONFIGMAPS, body, ctype))
    return code, json.loads(answer)


def assert_refused(cluster: Cluster, code: int, status: Dict[str, Any], name: str, why: str) -> None:
    assert code == 400, status
    assert status["reason"] == "BadRequest"
    assert status["message"].startswith("the object provided is unrecognized (must be of type ConfigMap): " + why), status
    assert get(cluster.port, f"{CONFIGMAPS}/{name}")[0] == 404
    assert ready(cluster.port)


def billion_laughs(levels: int) -> bytes:
    doc = b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        doc += f"a{i}: &a{i} [".encode() + b",".join([f"*a{i - 1}".encode()] * 9) + b"]\n"
    return doc + b"metadata: {name: laughs}\n"


# -- #2: YAML -----------------------------------------------------------------------------------


def test_yaml_billion_laughs_is_refused_before_expansion(cluster: Cluster) -> None:
    body = billion_laughs(9)
    assert len(body) < 600
    code, status = post(cluster, body, "application/yaml")
    assert_refused(cluster, code, status, "laughs", "yaml: document contains excessive aliasing")


def test_yaml_small_aliases_are_expanded(cluster: Cluster) -> None:
    body = b"labels: &l {app: web}\nmetadata: {name: aliased, labels: *l, annotations: *l}\n"
    code, obj = post(cluster, body, "application/yaml")
    assert code == 201, obj
    assert obj["metadata"]["labels"] == {"app": "web"} == obj["metadata"]["annotations"]


def test_yaml_flow_depth_2000_is_400(cluster: Cluster) -> None:
    body = b"metadata: {name: flow}\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n"
    code, status = post(cluster, body, "application/yaml")
    assert_refused(cluster, code, status, "flow", "yaml: exceeded max depth of 200")


def test_yaml_block_depth_past_the_limit_is_400(cluster: Cluster) -> None:
    body = b"metadata: {name: block}\nx:\n" + b"".join(b"  " * (i + 1) + b"- \n" for i in range(300))
    code, status = post(cluster, body, "application/yaml")
    assert code == 400 and status["reason"] == "BadRequest", status
    assert get(cluster.port, f"{CONFIGMAPS}/block")[0] == 404


def test_yaml_binary_tag_is_its_decoded_string(cluster: Cluster) -> None:
    # goyaml decodes !!binary into a string of its bytes; Go's JSON then carries it (invalid UTF-8 as U+FFFD).
    code, obj = post(cluster, b"metadata: {name: binary}\ndata:\n  a: !!binary aGVsbG8=\n", "application/yaml")
    assert code == 201, obj
    assert obj["data"] == {"a": "hello"}


def test_yaml_non_json_values_convert_or_fail_as_upstream(cluster: Cluster) -> None:
    body = (b"metadata: {name: tags, labels: {1: one, true: 'y'}}\n"
            b"data: {when: 2024-01-01T00:00:00Z, day: 2024-01-02}\n")
    code, obj = post(cluster, body, "application/yaml")
    assert code == 201, obj
    assert obj["data"] == {"when": "2024-01-01T00:00:00Z", "day": "2024-01-02"}  # timestamps stay strings
    assert set(obj["metadata"]["labels"]) <= {"1", "true"}
    code, status = post(cluster, b"metadata: {name: nan}\ndata: {a: .nan}\n", "application/yaml")
    assert_refused(cluster, code, status, "nan", "json: unsupported value: NaN")
    code, status = post(cluster, b"metadata: {name: nullkey}\ndata: {~: a}\n", "application/yaml")
    assert_refused(cluster, code, status, "nullkey", "unsupported map key of type")
    code, status = post(cluster, b"metadata: {name: badbinary}\ndata: {a: !!binary \"@@@\"}\n", "application/yaml")
    assert_refused(cluster, code, status, "badbinary", "yaml: !!binary value contains invalid base64 data")
    code, obj = post(cluster, b"metadata: {name: aset}\nx: !!set {a, b}\n", "application/yaml")
    assert code == 201, obj  # a set is a mapping to nulls; x itself is an unknown field


# -- #6: JSON nesting -----------------------------------------------------------------------------


def test_json_depth_300_is_400(cluster: Cluster) -> None:
    body = b'{"metadata":{"name":"deep"},"x":' + b"[" * 300 + b"]" * 300 + b"}"
    code, status = post(cluster, body)
    assert_refused(cluster, code, status, "deep",
                   "couldn't get version/kind; json parse error: invalid character '[' exceeded max depth")


def test_json_depth_past_orjson_limit_is_400(cluster: Cluster) -> None:
    body = b'{"metadata":{"name":"deeper"},"x":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"
    code, status = post(cluster, body)
    assert_refused(cluster, code, status, "deeper",
                   "couldn't get version/kind; json parse error: invalid character '{' exceeded max depth")


def test_json_at_the_depth_limit_is_accepted_everywhere(cluster: Cluster) -> None:
    # 200 levels in an unknown field and in a typed one: every later walker copes, nothing is a 500.
    deep = b'{"a":' * 197 + b'"v"' + b"}" * 197
    for name, body in (
        ("limit-unknown", b'{"metadata":{"name":"limit-unknown"},"x":' + deep + b"}"),
        ("limit-data", b'{"metadata":{"name":"limit-data"},"data":' + deep + b"}"),
    ):
        code, status = post(cluster, body)
        assert code in (201, 400), status
        if code == 201:
            assert get(cluster.port, f"{CONFIGMAPS}/{name}")[0] == 200
            code, _, answer = request(cluster.port, body_request("PUT", f"{CONFIGMAPS}/{name}", body))
            assert code in (200, 400, 409, 422), answer
    assert ready(cluster.port)
