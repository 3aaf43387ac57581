"""Hypothesis-generated requests against a running `megaplane up` (issue 8, deliverable 4).

Bodies (JSON, YAML, protobuf bytes: valid-ish objects with extra fields,
wrong types, nesting up to and past the decode limit, huge strings within
the body limit), headers, paths, query strings (selectors, limits, continue
tokens, resourceVersions, timeouts, watches) and patches of the three patch
types go over real sockets. After every example:

* the answer is not a 5xx (but for those upstream gives by design: 504
  Timeout for a request whose own ``timeout`` ran out, 504 for a
  resourceVersion the store has not reached, etcd's "request is too large"
  500 for an object past the storage's request limit);
* the process is alive and ``/readyz`` answers within seconds;
* a refused write stored nothing: the dedicated namespace's objects of the
  kind (name -> resourceVersion) are what they were before (for the kinds
  only the fuzzer writes: ConfigMaps, Secrets, Leases, Services; the
  controllers of `megaplane up` write Pods and Deployments);
* RSS stays within a bound of what it was when the suite started.

Sizes: MEGAPLANE_SCALE=ci (the default, `.ci/run`) runs 150 examples per
test (about 10 s for the file on two cores); MEGAPLANE_SCALE=full runs 1500
(about 2 minutes). Examples are derandomized and no database is kept, so a CI
failure reproduces as it is.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Cluster

FULL = os.environ.get("MEGAPLANE_SCALE", "ci") == "full"
EXAMPLES = 1500 if FULL else 150
NS = "fuzz"
#: How much RSS may grow over the suite (huge bodies are allowed to cost while held, not to accumulate).
RSS_GROWTH_BOUND = 400 * 1024 * 1024
MAX_BODY = 3 * 1024 * 1024

FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# Kinds in the fuzz namespace, by collection path.
COLLECTIONS = {
    "configmaps": f"/api/v1/namespaces/{NS}/configmaps",
    "secrets": f"/api/v1/namespaces/{NS}/secrets",
    "leases": f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
    "pods": f"/api/v1/namespaces/{NS}/pods",
    "services": f"/api/v1/namespaces/{NS}/services",
    "deployments": f"/apis/apps/v1/namespaces/{NS}/deployments",
}
TEMPLATES: Dict[str, Dict[str, Any]] = {
    "configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": "b"}},
                   "data": {"k": "v"}},
    "secrets": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "type": "Opaque",
                "stringData": {"k": "v"}},
    "leases": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
               "spec": {"holderIdentity": "n", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"}},
    "pods": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
             "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
                                      "resources": {"limits": {"cpu": "100m"}}}],
                      "tolerations": [{"key": "k", "operator": "Exists"}]}},
    "services": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                 "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x"}}},
    "deployments": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                             "template": {"metadata": {"labels": {"app": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
}
TARGET = "fz"  # the object of each kind that patches and updates aim at
# The deployment and replicaset controllers of `megaplane up` write these (status, pods of replica sets), so
# "a refused write stored nothing" is checked on the other kinds, which only the fuzzer writes.
CONTROLLED = {"pods", "deployments"}


# -- the wire ---------------------------------------------------------------------------------


class Answer:
    def __init__(self, code: int, headers: Dict[str, str], body: bytes) -> None:
        self.code, self.headers, self.body = code, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, raw: bytes, head_only: bool = False) -> Answer:
    """Send one request on a fresh connection and read its answer (only the head of a streamed one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(raw)
        except OSError:
            pass  # the server answered (431, 413) and closed before taking it all: read what it said
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError(f"connection closed without an answer (sent {raw[:200]!r})")
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            code = int(lines[0].split()[1])
            if not 100 <= code < 200 or code == 101:
                break
            data = body  # an interim answer (100 Continue): the real one follows
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if head_only or "chunked" in headers.get("transfer-encoding", ""):
            return Answer(code, headers, body)
        if "content-length" in headers:
            want = int(headers["content-length"])
            while len(body) < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return Answer(code, headers, body)


def build(method: str, target: str, body: bytes = b"", headers: Optional[List[Tuple[str, str]]] = None,
          ctype: Optional[str] = "application/json") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: fuzz"]
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def rss(cluster: Cluster) -> int:
    with open(f"/proc/{cluster.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def alive(cluster: Cluster) -> None:
    assert cluster.proc.poll() is None, f"megaplane up exited with {cluster.proc.returncode}"
    a = exchange(cluster.port, build("GET", "/readyz", ctype=None))
    assert a.code == 200, (a.code, a.body[:300])


def objects(cluster: Cluster, kind: str) -> Dict[str, str]:
    a = exchange(cluster.port, build("GET", COLLECTIONS[kind], ctype=None))
    assert a.code == 200, a.body[:300]
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in a.json()["items"]}


def no_5xx(a: Answer, raw: bytes) -> None:
    """Not a 5xx, but for the two 504s upstream answers by design."""
    line = raw.split(b"\r\n", 1)[0]
    if a.code == 504 and b"timeout=" in line:
        return  # the request asked for a deadline it could not meet: upstream's 504 Timeout
    if a.code == 504 and b"resourceVersion=" in line and b"Too large resource version" in a.body:
        return  # a resourceVersion the store has not reached after 3 s: upstream's 504 with Retry-After
    if a.code == 500 and len(raw) > 1024 * 1024 and b'"message":"etcdserver: request is too large"' in a.body:
        return  # an object past etcd's --max-request-bytes: upstream answers etcd's error as a 500 too
    if a.code == 500 and b"without impersonating a user" in a.body and b"impersonate-group" in raw.lower():
        return  # Impersonate-Group without Impersonate-User: the impersonation filter's InternalError upstream
    assert a.code < 500, (a.code, a.body[:500], raw[:500])


def send_write(cluster: Cluster, kind: str, raw: bytes) -> Answer:
    """A write to one of the fuzz kinds: not a 5xx, and nothing stored when it was refused."""
    before = objects(cluster, kind) if kind not in CONTROLLED else {}
    a = exchange(cluster.port, raw)
    no_5xx(a, raw)
    alive(cluster)
    if a.code >= 400 and kind not in CONTROLLED:
        after = objects(cluster, kind)
        changed = {n: (before.get(n), after.get(n)) for n in set(before) | set(after) if before.get(n) != after.get(n)}
        assert not changed, (changed, a.code, a.body[:300], raw[:300])
    return a


# -- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz(cluster: Cluster) -> Cluster:
    a = exchange(cluster.port, build("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": NS}}).encode()))
    assert a.code == 201, a.body
    for kind, template in TEMPLATES.items():
        obj = copy.deepcopy(template)
        obj["metadata"]["name"] = TARGET
        a = exchange(cluster.port, build("POST", COLLECTIONS[kind], json.dumps(obj).encode()))
        assert a.code == 201, (kind, a.body)
    cluster.baseline_rss = rss(cluster)  # type: ignore[attr-defined]
    return cluster


@pytest.fixture(autouse=True)
def rss_bounded(fuzz: Cluster) -> Any:
    yield
    alive(fuzz)
    grown = rss(fuzz) - fuzz.baseline_rss  # type: ignore[attr-defined]
    assert grown < RSS_GROWTH_BOUND, f"RSS grew by {grown / 2**20:.0f} MiB"


# -- strategies -------------------------------------------------------------------------------

FIELD_NAMES = ["metadata", "spec", "status", "name", "namespace", "labels", "annotations", "data", "kind",
               "apiVersion", "containers", "image", "ports", "containerPort", "replicas", "selector",
               "matchLabels", "template", "holderIdentity", "leaseDurationSeconds", "resourceVersion", "uid",
               "finalizers", "ownerReferences", "managedFields", "generateName", "deletionTimestamp",
               "stringData", "type", "tolerations", "resources", "limits", "x", "$patch", "$retainKeys",
               "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers", "__proto__", ""]
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=24),
    st.sampled_from(["", "0", "-1", "100m", "2026-01-01T00:00:00Z", "Exists", "TCP", "delete", "replace", "merge"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=16)


def keep_replicas_small(obj: Any) -> None:
    """A Deployment the fuzzer creates gets at most 2 replicas: its pods are really made by the controllers."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if isinstance(spec, dict) and type(spec.get("replicas")) is int and spec["replicas"] > 2:
        spec["replicas"] = 2


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"d": value}
    return value


@st.composite
def special(draw: Any) -> Any:
    """Values that reach the limits: deep nesting around the decoder's 200 levels, long strings, big numbers."""
    kind = draw(st.sampled_from(["deep", "long", "wide", "number"]))
    if kind == "deep":
        return nested(draw(st.sampled_from([5, 50, 150, 195, 199, 200, 201, 260, 1100])))
    if kind == "long":
        return draw(st.sampled_from(["a", "\u00e9", "\U0001f600", "\\", '"'])) * draw(
            st.sampled_from([1000, 65536, 1_000_000]))
    if kind == "wide":
        n = draw(st.sampled_from([100, 10_000, 65_536]))
        return draw(st.sampled_from([list(range(n)), {f"k{i}": i for i in range(min(n, 20_000))}]))
    return draw(st.sampled_from([10**30, -(10**30), 2**63, 2**64, 1.5, 1e308, -0.0, 2**31]))


OTHER_TYPES: List[Any] = [None, True, 0, -1, 1.5, 10**30, "", "x", [], [1], ["x"], [{}], {}, {"a": 1}, {"a": "b"}]


@st.composite
def mutated(draw: Any, template: Dict[str, Any]) -> Any:
    """A copy of `template` with a few random edits: extra fields, wrong types, removals, limit values."""
    obj = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, 6))):
        # Walk down to a random container.
        node: Any = obj
        for _ in range(draw(st.integers(0, 4))):
            children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
            children = [c for c in children if isinstance(c, (dict, list))]
            if not children:
                break
            node = draw(st.sampled_from(children))
        new = draw(st.one_of(values, special())) if draw(st.integers(0, 3)) == 0 else draw(values)
        if isinstance(node, dict):
            action = draw(st.sampled_from(["add", "replace", "retype", "retype", "delete"]))
            if action == "add" or not node:
                node[draw(keys)] = new
            elif action == "replace":
                node[draw(st.sampled_from(sorted(node)))] = new
            elif action == "retype":  # a value of another JSON type where a typed field is
                key = draw(st.sampled_from(sorted(node)))
                other = draw(st.sampled_from([v for v in OTHER_TYPES if type(v) is not type(node[key])]))
                node[key] = copy.deepcopy(other)  # later edits may change it: never the shared sample
            else:
                del node[draw(st.sampled_from(sorted(node)))]
        elif isinstance(node, list):
            if node and draw(st.booleans()):
                node[draw(st.integers(0, len(node) - 1))] = new
            else:
                node.append(new)
    return obj


names = st.one_of(st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z"), st.text(max_size=20), st.just(TARGET))


def encode(draw: Any, obj: Any) -> Tuple[bytes, str]:
    """The object as a request body: JSON (compact, or with non-ASCII), YAML, or damaged bytes."""
    how = draw(st.sampled_from(["json", "json", "json-utf8", "yaml", "truncated", "protobuf", "bytes"]))
    if how == "yaml":
        try:
            return yaml.safe_dump(obj, allow_unicode=draw(st.booleans())).encode(), "application/yaml"
        except (yaml.YAMLError, RecursionError):
            how = "json"
    text = json.dumps(obj, ensure_ascii=how != "json-utf8").encode()
    if how == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))], "application/json"
    if how == "protobuf":
        return b"k8s\x00" + draw(st.binary(max_size=64)), "application/vnd.kubernetes.protobuf"
    if how == "bytes":
        return draw(st.binary(max_size=256)), draw(st.sampled_from(["application/json", "application/yaml"]))
    return text, "application/json"


YAML_SNIPPETS = [
    b"metadata: {name: fz-y1}\nx: &a [1, 2]\ny: *a\n",
    b"metadata: {name: fz-y2}\ndata: {a: !!binary aGVsbG8=}\n",
    b"metadata: {name: fz-y3}\ndata: {a: !!python/object:os.system ls}\n",
    b"metadata: {name: fz-y4, labels: {? [a, b] : c}}\n",
    b"metadata: {name: fz-y5}\n<<: {spec: {}}\n",
    b"--- \nmetadata: {name: fz-y6}\n---\nmetadata: {name: fz-y7}\n",
    b"metadata: {name: fz-y8}\ndata: {a: 0x1F, b: .inf, c: .nan, d: 1_000, e: 2001-12-14}\n",
    b"\xef\xbb\xbfmetadata: {name: fz-y9}\n",
    b"metadata: {name: \"\\ud800\"}\n",
    b"%YAML 1.1\n%TAG ! tag:x,2000:\n---\nmetadata: !x {name: fz-y10}\n",
]


# -- tests ------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_create_and_update_bodies(fuzz: Cluster, data: Any) -> None:
    kind = data.draw(st.sampled_from(sorted(TEMPLATES)))
    obj = data.draw(mutated(TEMPLATES[kind]))
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and data.draw(st.integers(0, 4)):
        obj["metadata"]["name"] = data.draw(names)
    keep_replicas_small(obj)
    if data.draw(st.integers(0, 9)) == 0:
        body, ctype = data.draw(st.sampled_from(YAML_SNIPPETS)), "application/yaml"
    else:
        body, ctype = encode(data.draw, obj)
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY + 1]  # one byte over the limit: 413, nothing read past it
    query = data.draw(st.sampled_from(["", "?fieldValidation=Strict", "?fieldValidation=Ignore",
                                       "?fieldValidation=Warn", "?dryRun=All", "?fieldValidation=bogus",
                                       "?fieldManager=" + "m" * 200, "?pretty=true"]))
    if data.draw(st.booleans()):
        raw = build("POST", COLLECTIONS[kind] + query, body, ctype=ctype)
    else:
        raw = build("PUT", f"{COLLECTIONS[kind]}/{TARGET}{query}", body, ctype=ctype)
    send_write(fuzz, kind, raw)


HEADER_NAMES = ["Accept", "Content-Type", "Content-Encoding", "Accept-Encoding", "Authorization", "User-Agent",
                "Impersonate-User", "Impersonate-Group", "X-Remote-User", "Expect", "Connection", "Upgrade",
                "Transfer-Encoding", "Audit-ID", "X-Forwarded-For", "Origin", "If-None-Match", "Range", "Cookie"]
HEADER_VALUES = ["application/json;as=Table;v=v1;g=meta.k8s.io", "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
                 "application/vnd.kubernetes.protobuf", "application/yaml", "*/*", "text/html", "application/json;q=0",
                 "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", "gzip", "deflate, br",
                 "Bearer junk", "Basic Og==", "100-continue", "close", "keep-alive", "websocket", "h2c", "identity",
                 "bytes=0-1", "", " ", "\t", "a" * 8000]
header_value = st.one_of(st.sampled_from(HEADER_VALUES),
                         st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                                 max_size=40))
header_name = st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}\Z"))


@FUZZ
@given(data=st.data())
def test_headers(fuzz: Cluster, data: Any) -> None:
    headers = data.draw(st.lists(st.tuples(header_name, header_value), max_size=6))
    headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "host")]
    if any(n.lower() == "transfer-encoding" for n, _ in headers):
        headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]  # framing is not fuzzed here
    kind = data.draw(st.sampled_from(sorted(TEMPLATES)))
    if data.draw(st.booleans()):
        raw = build("GET", data.draw(st.sampled_from([COLLECTIONS[kind], f"{COLLECTIONS[kind]}/{TARGET}"])),
                    headers=headers, ctype=None)
        a = exchange(fuzz.port, raw)
        no_5xx(a, raw)
        alive(fuzz)
    else:
        obj = copy.deepcopy(TEMPLATES[kind])
        obj["metadata"]["name"] = data.draw(st.from_regex(r"\Afz-h[a-z0-9]{1,10}\Z"))
        ctype = data.draw(header_value)
        raw = build("POST", COLLECTIONS[kind], json.dumps(obj).encode(), headers=headers, ctype=ctype)
        send_write(fuzz, kind, raw)


SEGMENTS = ["", "api", "apis", "v1", "v2", "apps", "coordination.k8s.io", "namespaces", NS, "default",
            "configmaps", "pods", "leases", "deployments", "status", "scale", "binding", "log", "exec", "proxy",
            "finalize", "watch", "openapi", "version", "healthz", "livez", "readyz", "metrics", "..", ".", "%2e%2e",
            "%2F", "%00", "%zz", "~", "*", TARGET, "\u00e9", "a" * 300]
segment = st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=10).map(lambda s: urllib.parse.quote(s, safe="")))
methods = st.sampled_from(["GET", "GET", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "get", "G\u00c9T"])


@FUZZ
@given(data=st.data())
def test_paths(fuzz: Cluster, data: Any) -> None:
    path = "/" + "/".join(data.draw(st.lists(segment, max_size=8)))
    if data.draw(st.integers(0, 5)) == 0:
        path = data.draw(st.sampled_from(["*", "http://fuzz/api/v1", "//api//v1//", "/api/v1/namespaces//pods",
                                          "/" + "x/" * 2000, "/api/v1?" + "a=b&" * 500]))
    method = data.draw(methods)
    raw = build(method, path, headers=[], ctype=None)
    a = exchange(fuzz.port, raw, head_only=method.upper() == "HEAD" or "watch" in path)
    no_5xx(a, raw)
    alive(fuzz)
    # The same paths with write verbs, under the fuzz namespace only (nothing else may be deleted).
    verb = data.draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]))
    kind = data.draw(st.sampled_from(sorted(TEMPLATES)))
    suffix = "/".join(data.draw(st.lists(segment, max_size=3)))
    target = f"{COLLECTIONS[kind]}/{suffix}" if suffix else COLLECTIONS[kind]
    body = json.dumps({"metadata": {"name": "fz-p"}}).encode()
    send_write(fuzz, kind, build(verb, target, body if verb != "DELETE" else b"", ctype="application/json"))
    if verb == "DELETE":
        recreate_targets(fuzz)


def recreate_targets(cluster: Cluster) -> None:
    """Put back a patch target a fuzzed DELETE removed (a DELETE under the fuzz namespace may well succeed)."""
    for kind, template in TEMPLATES.items():
        if TARGET not in objects(cluster, kind):
            obj = copy.deepcopy(template)
            obj["metadata"]["name"] = TARGET
            a = exchange(cluster.port, build("POST", COLLECTIONS[kind], json.dumps(obj).encode()))
            assert a.code in (201, 409), (kind, a.body)


QUERY_VALUES = {
    "labelSelector": ["a=b", "a!=b", "a in (b,c)", "!a", "a", "a==", "=b", "a in (", "a notin (b)", "a>1", "a,b",
                      "a=" + "b" * 100, "A/b=c", "a=b,,c=d", "\u00e9=1", "(", "a=b)"],
    "fieldSelector": ["metadata.name=fz", "metadata.namespace!=x", "spec.nodeName=", "status.phase=Running",
                      "bogus=1", "metadata.name", "metadata.name==a", "metadata.name=a,metadata.name=b", "=", "a\\=b"],
    "limit": ["0", "1", "2", "-1", "500", "9223372036854775807", "9223372036854775808", "1e3", "x", "", " 1"],
    "continue": ["", "x", "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJmeiJ9",
                 "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoiLi4vLi4ifQ", "%%%", "e30", "bnVsbA", "W10"],
    "resourceVersion": ["", "0", "1", "-1", "18446744073709551616", "9223372036854775807", "abc", "1.5", " 1",
                        "99999999"],
    "resourceVersionMatch": ["", "Exact", "NotOlderThan", "exact", "bogus"],
    "timeoutSeconds": ["0", "1", "-1", "9223372036854775807", "x", "1.5"],
    "timeout": ["1ns", "1s", "30s", "0", "-1s", "1h", "x", "1e3s", "9999999999h", "1.5m"],
    "watch": ["true", "1", "false", "yes", ""],
    "allowWatchBookmarks": ["true", "false", "x"],
    "sendInitialEvents": ["true", "false", "x"],
    "pretty": ["true", "x"],
    "includeUninitialized": ["true"],
    "x": ["y"],
}


@FUZZ
@given(data=st.data())
def test_query_strings(fuzz: Cluster, data: Any) -> None:
    pairs = []
    for name in data.draw(st.lists(st.sampled_from(sorted(QUERY_VALUES)), max_size=5)):
        pairs.append((name, data.draw(st.one_of(st.sampled_from(QUERY_VALUES[name]), st.text(max_size=12)))))
    watching = any(n == "watch" and v in ("true", "1") for n, v in pairs)
    if watching and not any(n == "timeoutSeconds" for n, _ in pairs):
        pairs.append(("timeoutSeconds", "1"))
    query = urllib.parse.urlencode(pairs)
    if data.draw(st.integers(0, 6)) == 0:
        query = data.draw(st.sampled_from(["%", "%zz", "&&&", "=", "a=%ff%fe", "limit=1&limit=2", ";", "a" * 5000]))
    kind = data.draw(st.sampled_from(sorted(TEMPLATES)))
    base = data.draw(st.sampled_from([COLLECTIONS[kind], f"{COLLECTIONS[kind]}/{TARGET}",
                                      COLLECTIONS[kind].replace(f"/namespaces/{NS}", ""),
                                      "/api/v1/watch/namespaces/fuzz/configmaps"]))
    raw = build("GET", f"{base}?{query}", ctype=None)
    a = exchange(fuzz.port, raw, head_only=watching or "/watch/" in base)
    no_5xx(a, raw)
    alive(fuzz)


pointer_segment = st.one_of(st.sampled_from(FIELD_NAMES[:30]), st.sampled_from(["0", "1", "-", "~0", "~1", "~2",
                                                                                 "01", "99999999999"]),
                            st.text(max_size=6))
pointers = st.lists(pointer_segment, max_size=5).map(lambda segs: "".join("/" + s for s in segs))
json_patch_op = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus", ""]), "path": pointers},
    optional={"value": st.one_of(values, special()), "from": pointers},
)
PATCH_TYPES = {"json": "application/json-patch+json", "merge": "application/merge-patch+json",
               "strategic": "application/strategic-merge-patch+json"}


@FUZZ
@given(data=st.data())
def test_patches(fuzz: Cluster, data: Any) -> None:
    # Not Deployments: a patch of spec.replicas would have the controllers make that many pods.
    kind = data.draw(st.sampled_from(sorted(set(TEMPLATES) - {"deployments"})))
    ptype = data.draw(st.sampled_from(sorted(PATCH_TYPES)))
    if ptype == "json":
        patch: Any = data.draw(st.one_of(st.lists(json_patch_op, max_size=6), values))
        if data.draw(st.integers(0, 5)) == 0:  # the copy explosion of the probe, scaled down
            patch = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 1000}}] + [
                {"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/labels{i}"} for i in range(30)]
    else:
        patch = data.draw(mutated({"metadata": {"labels": {"a": "b"}}, "spec": {}, "data": {}}))
        if data.draw(st.integers(0, 3)) == 0:
            patch = data.draw(st.one_of(values, special()))
    body = json.dumps(patch).encode()
    if len(body) > MAX_BODY:
        body = body[:MAX_BODY + 1]
    query = data.draw(st.sampled_from(["", "?fieldValidation=Strict", "?dryRun=All", "?fieldValidation=Ignore"]))
    sub = data.draw(st.sampled_from(["", "", "", "/status", "/scale"]))
    target = f"{COLLECTIONS[kind]}/{TARGET}{sub}{query}"
    send_write(fuzz, kind, build("PATCH", target, body, ctype=PATCH_TYPES[ptype]))
    recreate_targets(fuzz)


def test_rss_is_bounded_after_huge_bodies(fuzz: Cluster) -> None:
    """Huge but legal bodies, refused and accepted, leave RSS within the bound once answered."""
    before = rss(fuzz)
    for i in range(6):
        obj = copy.deepcopy(TEMPLATES["configmaps"])
        obj["metadata"]["name"] = f"fz-huge-{i}"
        obj["x" if i % 2 else "data"] = {"k": "a" * (MAX_BODY - 300)}
        body = json.dumps(obj).encode()
        assert len(body) <= MAX_BODY
        a = send_write(fuzz, "configmaps", build("POST", COLLECTIONS["configmaps"], body))
        assert a.code in (201, 400, 413, 422, 500), a.body[:300]  # 500: etcd's request limit (no_5xx)
        a = exchange(fuzz.port, build("DELETE", f"{COLLECTIONS['configmaps']}/fz-huge-{i}", ctype=None))
        assert a.code in (200, 404)
    deadline = time.monotonic() + 10
    while rss(fuzz) - before >= RSS_GROWTH_BOUND and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rss(fuzz) - before < RSS_GROWTH_BOUND
