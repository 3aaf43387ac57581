"""What kube-apiserver 1.32 does, asked of `megaplane up`: the semantics clients rely on.

Selectors (label and field), resourceVersion rules of GET/LIST/WATCH,
optimistic concurrency and delete preconditions, metadata.generation,
server-owned metadata, finalizers, graceful pod deletion and binding,
the namespace lifecycle, service IP and port allocation, deletecollection,
watch event semantics (selector transitions, bookmarks, initial events),
health, version, metrics and discovery.

Every expectation is upstream's behaviour (the registry strategies under
pkg/registry, k8s.io/apiserver's generic store, cacher and handlers, the
NamespaceLifecycle admission plugin); where megaplane differs the test
fails rather than bending to it. Requests go through the official
`kubernetes` client where it can express them and through raw HTTP
otherwise (resourceVersion on GET, watch streams, discovery Accept headers,
error bodies). Nothing waits on a clock except where upstream's semantics
are a deadline (a watch timeout, a 3 s freshness wait); asynchronous work
(namespace deletion, the default ServiceAccount) is polled with a deadline.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "x"}}
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
# names.SimpleNameGenerator: 5 characters from utilrand's alphabet (no vowels, no 0/1/3).
GENERATED_SUFFIX = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5}$")
SERVICE_RANGE = ipaddress.ip_network("fd00:10:96::/108")  # `megaplane up` default --service-cluster-ip-range
OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


# -- plumbing ------------------------------------------------------------------------------------


class Raw:
    """Plain HTTP to the server: one connection per request, JSON in and out."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None, timeout: float = 15
    ) -> Tuple[int, Dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            parsed: Any = json.loads(payload)
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        return resp.status, resp_headers, parsed

    def get(self, path: str, **kw: Any) -> Tuple[int, Dict[str, str], Any]:
        return self.request("GET", path, **kw)


class WatchStream:
    """A raw watch: one JSON event per line of a chunked response."""

    def __init__(self, port: int, path: str, timeout: float = 10) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "application/json"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            body = self.resp.read()
            self.conn.close()
            raise AssertionError(f"watch {path} answered {self.resp.status}: {body[:500]!r}")

    def next(self) -> Dict[str, Any]:
        line = self.resp.readline()
        if not line:
            raise EOFError("watch closed")
        return json.loads(line)

    def take(self, n: int) -> List[Dict[str, Any]]:
        return [self.next() for _ in range(n)]

    def until(self, pred: Callable[[Dict[str, Any]], bool], limit: int = 200) -> List[Dict[str, Any]]:
        """Events up to and including the first that satisfies pred."""
        out = []
        for _ in range(limit):
            ev = self.next()
            out.append(ev)
            if pred(ev):
                return out
        raise AssertionError(f"no matching event in {limit}: {[(e['type'], _name(e)) for e in out]}")

    def drain(self) -> List[Dict[str, Any]]:
        """Everything until the server closes the stream."""
        out = []
        while True:
            line = self.resp.readline()
            if not line:
                return out
            out.append(json.loads(line))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "WatchStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _name(ev: Dict[str, Any]) -> str:
    return ev["object"].get("metadata", {}).get("name", "")


def _rv(ev: Dict[str, Any]) -> int:
    return int(ev["object"]["metadata"]["resourceVersion"])


def _q(**params: Any) -> str:
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def _status(exc: ApiException) -> Dict[str, Any]:
    return json.loads(exc.body)


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _poll(what: str, fn: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Call fn until it returns something truthy, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


def _gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _names(items: Iterable[Any]) -> Set[str]:
    return {i.metadata.name for i in items}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(cluster):
    return cluster.api_client()


@pytest.fixture(scope="module")
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture(scope="module")
def raw(cluster):
    return Raw(cluster.port)


_made: Set[str] = set()


def namespace(core, name: str) -> str:
    if name not in _made:
        core.create_namespace({"metadata": {"name": name}})
        _made.add(name)
    return name


@pytest.fixture(scope="module", autouse=True)
def _fresh_namespaces():
    _made.clear()
    yield
    _made.clear()


def cm(core, ns: str, name: str, labels: Optional[Dict[str, str]] = None, data: Optional[Dict[str, str]] = None, **meta: Any):
    body = {"metadata": {"name": name, "labels": labels or {}, **meta}, "data": data or {}}
    return core.create_namespaced_config_map(ns, body)


def pod(core, ns: str, name: str, labels: Optional[Dict[str, str]] = None, node: str = "", **spec: Any):
    body: Dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "spec": {**POD_SPEC, **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return core.create_namespaced_pod(ns, body)


# -- label selectors -----------------------------------------------------------------------------

LABELED = {
    "a": {"app": "web", "tier": "front"},
    "b": {"app": "web", "tier": "back"},
    "c": {"app": "db"},
    "d": {},
    "e": {"app": "cache", "env": "prod"},
}

# (selector, names it selects). `!=` and `notin` also select objects without the key (labels.Requirement).
LABEL_CASES = [
    ("", "abcde"),
    ("app=web", "ab"),
    ("app==web", "ab"),
    ("app!=web", "cde"),
    ("app in (web,db)", "abc"),
    ("app in (web, cache)", "abe"),
    ("app notin (web,db)", "de"),
    ("tier", "ab"),
    ("!tier", "cde"),
    ("app=web,tier=front", "a"),
    ("app in (web,cache),!env", "ab"),
    ("app,app!=db", "abe"),
    ("tier notin (front)", "bcde"),
    ("env=prod,app=cache", "e"),
    ("app=nope", ""),
    ("app=web,!app", ""),
]


@pytest.fixture(scope="module")
def labeled(core):
    ns = namespace(core, "sem-labels")
    for name, labels in LABELED.items():
        cm(core, ns, name, labels)
    return ns


@pytest.mark.parametrize("selector,expected", LABEL_CASES, ids=[c[0] or "<empty>" for c in LABEL_CASES])
def test_label_selectors_on_configmaps(core, labeled, selector, expected):
    got = core.list_namespaced_config_map(labeled, label_selector=selector).items
    assert _names(got) - {"kube-root-ca.crt"} == set(expected)


def test_label_selectors_on_pods_and_across_namespaces(core):
    ns = namespace(core, "sem-labels-pods")
    pod(core, ns, "p-web", {"app": "web", "track": "stable"})
    pod(core, ns, "p-canary", {"app": "web", "track": "canary"})
    pod(core, ns, "p-db", {"app": "db"})
    cases = {
        "app=web": {"p-web", "p-canary"},
        "app=web,track!=canary": {"p-web"},
        "track in (stable,canary)": {"p-web", "p-canary"},
        "!track": {"p-db"},
        "app notin (web)": {"p-db"},
    }
    for selector, expected in cases.items():
        assert _names(core.list_namespaced_pod(ns, label_selector=selector).items) == expected, selector
    every = core.list_pod_for_all_namespaces(label_selector="track=canary")
    assert {(p.metadata.namespace, p.metadata.name) for p in every.items} == {(ns, "p-canary")}


def test_label_and_field_selectors_on_nodes(core):
    nodes = {"sem-node-a": {"semtest": "yes", "zone": "a"}, "sem-node-b": {"semtest": "yes", "zone": "b"},
             "sem-node-c": {"semtest": "yes"}}
    for name, labels in nodes.items():
        core.create_node({"metadata": {"name": name, "labels": labels}})
    core.patch_node("sem-node-b", {"spec": {"unschedulable": True}})
    cases = {
        "semtest": set(nodes),
        "semtest,zone=a": {"sem-node-a"},
        "semtest,zone!=a": {"sem-node-b", "sem-node-c"},
        "semtest,zone in (a,b)": {"sem-node-a", "sem-node-b"},
        "semtest,!zone": {"sem-node-c"},
    }
    for selector, expected in cases.items():
        assert _names(core.list_node(label_selector=selector).items) == expected, selector
    # Node fields: metadata.name and spec.unschedulable (fmt.Sprint of the bool, so "false" when unset).
    assert _names(core.list_node(label_selector="semtest", field_selector="spec.unschedulable=false").items) == {
        "sem-node-a", "sem-node-c"}
    assert _names(core.list_node(field_selector="metadata.name=sem-node-b").items) == {"sem-node-b"}
    for name in nodes:
        core.delete_node(name)


def test_malformed_selectors_are_bad_requests(core, labeled):
    for kwargs in ({"label_selector": "app in ("}, {"label_selector": "a b"}, {"field_selector": "metadata.name"}):
        with pytest.raises(ApiException) as info:
            core.list_namespaced_config_map(labeled, **kwargs)
        assert info.value.status == 400, kwargs
        assert _status(info.value)["reason"] == "BadRequest"


# -- field selectors -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def field_pods(core):
    ns = namespace(core, "sem-fields")
    pod(core, ns, "p1", {"role": "x"}, node="sem-fnode-a")
    pod(core, ns, "p2", {"role": "x"}, node="sem-fnode-b")
    pod(core, ns, "p3", {"role": "y"}, restartPolicy="Never")
    core.patch_namespaced_pod_status("p1", ns, {"status": {"phase": "Running"}})
    core.patch_namespaced_pod_status("p2", ns, {"status": {"phase": "Succeeded"}})
    return ns


POD_FIELD_CASES = [
    ("metadata.name=p1", {"p1"}),
    ("metadata.name==p1", {"p1"}),
    ("metadata.name!=p1", {"p2", "p3"}),
    ("spec.nodeName=sem-fnode-a", {"p1"}),
    ("spec.nodeName=", {"p3"}),
    ("spec.nodeName!=", {"p1", "p2"}),
    ("spec.host=sem-fnode-b", {"p2"}),  # legacy alias of spec.nodeName
    ("status.phase=Running", {"p1"}),
    ("status.phase=Pending", {"p3"}),
    ("status.phase!=Succeeded,status.phase!=Failed", {"p1", "p3"}),
    ("spec.restartPolicy=Never", {"p3"}),
    ("spec.schedulerName=default-scheduler", {"p1", "p2", "p3"}),
    ("spec.hostNetwork=false", {"p1", "p2", "p3"}),  # strconv.FormatBool: unset is "false"
    ("metadata.namespace=sem-fields", {"p1", "p2", "p3"}),
    ("metadata.namespace=elsewhere", set()),
    ("spec.nodeName=sem-fnode-a,status.phase=Running", {"p1"}),
    ("spec.nodeName=sem-fnode-a,status.phase!=Running", set()),
]


@pytest.mark.parametrize("selector,expected", POD_FIELD_CASES, ids=[c[0] or "<empty>" for c in POD_FIELD_CASES])
def test_pod_field_selectors(core, field_pods, selector, expected):
    assert _names(core.list_namespaced_pod(field_pods, field_selector=selector).items) == expected


def test_pod_field_selectors_with_labels_and_across_namespaces(core, field_pods):
    both = core.list_namespaced_pod(field_pods, field_selector="spec.nodeName!=", label_selector="role=x")
    assert _names(both.items) == {"p1", "p2"}
    assert not core.list_namespaced_pod(field_pods, field_selector="status.phase=Pending", label_selector="role=x").items
    everywhere = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=sem-fnode-a")
    assert {(p.metadata.namespace, p.metadata.name) for p in everywhere.items} == {(field_pods, "p1")}
    by_ns = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={field_pods},metadata.name!=p2")
    assert _names(by_ns.items) == {"p1", "p3"}


def test_unsupported_field_labels_are_refused_with_upstream_messages(core, field_pods):
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(field_pods, field_selector="spec.foo=x")
    assert info.value.status == 400
    assert _status(info.value)["message"] == "field label not supported: spec.foo"
    # Kinds without their own conversion function accept only metadata.name/metadata.namespace.
    with pytest.raises(ApiException) as info:
        core.list_namespaced_config_map(field_pods, field_selector="data.x=y")
    assert info.value.status == 400
    assert _status(info.value)["message"] == (
        '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"')


@pytest.fixture(scope="module")
def events_ns(core):
    ns = namespace(core, "sem-events")

    def event(namespace_: str, name: str, involved: Dict[str, str], **rest: Any) -> None:
        core.create_namespaced_event(namespace_, {"metadata": {"name": name}, "involvedObject": involved, **rest})

    event(ns, "e1", {"kind": "Pod", "name": "web-1", "namespace": ns}, reason="Started", type="Normal",
          message="m", source={"component": "kubelet"})
    event(ns, "e2", {"kind": "Pod", "name": "web-2", "namespace": ns}, reason="Failed", type="Warning",
          message="m", source={"component": "kubelet"})
    # No source.component: the "source" field falls back to reportingComponent (event strategy).
    event(ns, "e4", {"kind": "Service", "name": "web-1", "namespace": ns}, reason="Synced", type="Normal",
          message="m", reportingComponent="svc-ctrl")
    # An event about a cluster-scoped object lives in "default" (legacy event validation).
    event("default", "sem-e3", {"kind": "Node", "name": "sem-evt-node"}, reason="NodeReady", type="Normal", message="m")
    return ns


EVENT_FIELD_CASES = [
    ("involvedObject.kind=Pod", {"e1", "e2"}),
    ("involvedObject.kind!=Pod", {"e4"}),
    ("involvedObject.name=web-1", {"e1", "e4"}),
    ("involvedObject.kind=Pod,involvedObject.name=web-1", {"e1"}),
    ("involvedObject.namespace=sem-events", {"e1", "e2", "e4"}),
    ("involvedObject.namespace!=sem-events", set()),
    ("type=Warning", {"e2"}),
    ("reason!=Started", {"e2", "e4"}),
    ("source=kubelet", {"e1", "e2"}),
    ("source=svc-ctrl", {"e4"}),
    ("reportingComponent=svc-ctrl", {"e4"}),
    ("metadata.name=e2", {"e2"}),
]


@pytest.mark.parametrize("selector,expected", EVENT_FIELD_CASES, ids=[c[0] for c in EVENT_FIELD_CASES])
def test_core_event_field_selectors(core, events_ns, selector, expected):
    assert _names(core.list_namespaced_event(events_ns, field_selector=selector).items) == expected


def test_core_event_field_selectors_across_namespaces(core, events_ns):
    got = core.list_event_for_all_namespaces(field_selector="involvedObject.kind=Node,involvedObject.name=sem-evt-node")
    assert {(e.metadata.namespace, e.metadata.name) for e in got.items} == {("default", "sem-e3")}
    got = core.list_event_for_all_namespaces(field_selector="involvedObject.name=web-2", label_selector="!nothing")
    assert {(e.metadata.namespace, e.metadata.name) for e in got.items} == {(events_ns, "e2")}


# -- resourceVersion semantics -------------------------------------------------------------------


def _assert_too_large(status: int, body: Any, rv: int) -> None:
    assert status == 504, body
    assert body["reason"] == "Timeout" and body["code"] == 504
    assert body["message"].startswith(f"Timeout: Too large resource version: {rv}, current: "), body["message"]
    causes = (body.get("details") or {}).get("causes") or []
    assert {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"} in causes


def test_get_with_resource_version(core, raw):
    ns = namespace(core, "sem-rv")
    first = cm(core, ns, "g", data={"v": "1"})
    second = core.patch_namespaced_config_map("g", ns, {"data": {"v": "2"}})
    path = f"/api/v1/namespaces/{ns}/configmaps/g"
    # "0": any version (served from the cache); a known version: not older than it. Never an old copy.
    for rv in ("0", second.metadata.resource_version, first.metadata.resource_version):
        code, _, body = raw.get(f"{path}?resourceVersion={rv}")
        assert code == 200, body
        assert body["data"] == {"v": "2"} and body["metadata"]["resourceVersion"] == second.metadata.resource_version


def test_get_with_a_future_resource_version_times_out(core, raw):
    ns = namespace(core, "sem-rv")
    obj = cm(core, ns, "future-get")
    future = int(obj.metadata.resource_version) + 100000
    # The watch cache waits up to 3 s to catch up, then answers 504 with Retry-After 1.
    code, headers, body = raw.get(f"/api/v1/namespaces/{ns}/configmaps/future-get?resourceVersion={future}")
    _assert_too_large(code, body, future)
    assert body["details"].get("retryAfterSeconds") == 1 and headers.get("retry-after") == "1"


@pytest.fixture(scope="module")
def history(core):
    """A namespace whose configmaps changed in known steps: {step: revision} and the names at each."""
    ns = namespace(core, "sem-history")
    steps: Dict[str, int] = {}
    steps["created"] = int(cm(core, ns, "h1", data={"v": "1"}).metadata.resource_version)
    steps["patched"] = int(core.patch_namespaced_config_map("h1", ns, {"data": {"v": "2"}}).metadata.resource_version)
    steps["second"] = int(cm(core, ns, "h2").metadata.resource_version)
    core.delete_namespaced_config_map("h1", ns)
    steps["deleted"] = int(core.list_namespaced_config_map(ns).metadata.resource_version)
    return ns, steps


def _cms(raw: Raw, ns: str, **params: Any) -> Tuple[int, Any]:
    code, _, body = raw.get(f"/api/v1/namespaces/{ns}/configmaps?{_q(**params)}")
    return code, body


def _state(body: Any) -> Dict[str, Dict[str, str]]:
    return {i["metadata"]["name"]: i.get("data") or {} for i in body["items"] if i["metadata"]["name"] != "kube-root-ca.crt"}


def test_list_exact_shows_the_past(raw, history):
    ns, steps = history
    code, body = _cms(raw, ns, resourceVersion=steps["created"], resourceVersionMatch="Exact")
    assert code == 200, body
    assert _state(body) == {"h1": {"v": "1"}} and body["metadata"]["resourceVersion"] == str(steps["created"])
    code, body = _cms(raw, ns, resourceVersion=steps["patched"], resourceVersionMatch="Exact")
    assert _state(body) == {"h1": {"v": "2"}} and body["metadata"]["resourceVersion"] == str(steps["patched"])
    code, body = _cms(raw, ns, resourceVersion=steps["second"], resourceVersionMatch="Exact")
    assert _state(body) == {"h1": {"v": "2"}, "h2": {}}


def test_list_with_limit_and_resource_version_is_exact(raw, history):
    # Legacy rule: resourceVersion=N (not 0) with limit and no resourceVersionMatch lists at exactly N.
    ns, steps = history
    code, body = _cms(raw, ns, resourceVersion=steps["patched"], limit=50)
    assert code == 200, body
    assert _state(body) == {"h1": {"v": "2"}} and body["metadata"]["resourceVersion"] == str(steps["patched"])


def test_list_not_older_than_and_any(raw, history):
    ns, steps = history
    for params in ({"resourceVersion": steps["deleted"], "resourceVersionMatch": "NotOlderThan"},
                   {"resourceVersion": steps["deleted"]}, {}):
        code, body = _cms(raw, ns, **params)
        assert code == 200, body
        assert _state(body) == {"h2": {}}, params
        assert int(body["metadata"]["resourceVersion"]) >= steps["deleted"]
    code, body = _cms(raw, ns, resourceVersion="0")
    assert code == 200 and set(_state(body)) <= {"h1", "h2"}


def test_list_exact_in_the_future_is_too_large(raw, history):
    ns, steps = history
    future = steps["deleted"] + 100000
    code, _, body = raw.get(f"/api/v1/namespaces/{ns}/configmaps?resourceVersion={future}&resourceVersionMatch=Exact")
    assert code == 504, body
    assert body["reason"] == "Timeout" and "Too large resource version" in body["message"]


def test_list_not_older_than_in_the_future_times_out(raw, history):
    ns, steps = history
    future = steps["deleted"] + 100000
    code, _, body = raw.get(
        f"/api/v1/namespaces/{ns}/configmaps?resourceVersion={future}&resourceVersionMatch=NotOlderThan")
    _assert_too_large(code, body, future)


LIST_OPTION_ERRORS = [
    ({"resourceVersionMatch": "NotOlderThan"},
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"),
    ({"resourceVersion": "0", "resourceVersionMatch": "Exact"},
     'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"'),
    ({"resourceVersion": "1", "resourceVersionMatch": "Newest"},
     'resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""'),
    ({"sendInitialEvents": "true"}, "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
]


@pytest.mark.parametrize("params,detail", LIST_OPTION_ERRORS, ids=["no-rv", "exact-0", "unknown-match", "sie-list"])
def test_list_options_are_validated_as_upstream(raw, history, params, detail):
    # ValidateListOptions errors are a 422 on kind ListOptions of group meta.k8s.io.
    ns, _ = history
    code, body = _cms(raw, ns, **params)
    assert code == 422, body
    assert body["reason"] == "Invalid"
    assert body["message"] == f'ListOptions.meta.k8s.io "" is invalid: {detail}'


def test_continue_with_resource_version_match_is_refused(core, raw):
    ns = namespace(core, "sem-continue")
    cm(core, ns, "c1")
    cm(core, ns, "c2")
    token = core.list_namespaced_config_map(ns, limit=1).metadata._continue
    assert token
    code, body = _cms(raw, ns, resourceVersion="0", resourceVersionMatch="NotOlderThan", limit=1, **{"continue": token})
    assert code == 422 and "resourceVersionMatch is forbidden when continue is provided" in body["message"]


def test_pages_stay_at_one_revision_while_objects_change(core):
    ns = namespace(core, "sem-pages")
    names = [f"pg-{i:02d}" for i in range(12)]
    for n in names:
        cm(core, ns, n, {"page": "yes"}, data={"v": "0"})
    for n in ("zz-1", "zz-2"):
        cm(core, ns, n)
    everything = sorted(names + ["zz-1", "zz-2", "kube-root-ca.crt"]) if _has_root_ca(core, ns) else sorted(
        names + ["zz-1", "zz-2"])
    first = core.list_namespaced_config_map(ns, limit=5)
    assert [i.metadata.name for i in first.items] == everything[:5]
    assert first.metadata.remaining_item_count == len(everything) - 5
    # Writes between pages: a change, a delete and a create do not show in later pages.
    core.patch_namespaced_config_map("pg-07", ns, {"data": {"v": "changed"}})
    core.delete_namespaced_config_map("pg-08", ns)
    cm(core, ns, "pg-05a", {"page": "yes"})
    seen = list(first.items)
    token = first.metadata._continue
    remaining = []
    while token:
        page = core.list_namespaced_config_map(ns, limit=5, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        remaining.append(page.metadata.remaining_item_count)
        seen += page.items
        token = page.metadata._continue
    assert [i.metadata.name for i in seen] == everything
    assert {i.metadata.name: i.data for i in seen}["pg-07"] == {"v": "0"}
    # With a selector the count would be a guess, so there is none; pages are still filled to the limit.
    sel = core.list_namespaced_config_map(ns, label_selector="page=yes", limit=5)
    assert len(sel.items) == 5 and sel.metadata.remaining_item_count is None and sel.metadata._continue
    after = core.list_namespaced_config_map(ns, label_selector="page=yes")
    assert "pg-05a" in _names(after.items) and "pg-08" not in _names(after.items)
    # Every page but the last says how many objects follow it.
    assert remaining == [len(everything) - 10 - 5 * k for k in range(len(remaining) - 1)] + [None]


def _has_root_ca(core, ns: str) -> bool:
    return "kube-root-ca.crt" in _names(core.list_namespaced_config_map(ns).items)


# -- optimistic concurrency and preconditions ----------------------------------------------------


def test_stale_update_is_a_conflict_naming_the_resource(core, apps, api):
    ns = namespace(core, "sem-occ")
    old = cm(core, ns, "occ", data={"a": "1"})
    core.patch_namespaced_config_map("occ", ns, {"data": {"a": "2"}})
    body = api.sanitize_for_serialization(old)
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("occ", ns, body)
    st = _status(info.value)
    assert info.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == f'Operation cannot be fulfilled on configmaps "occ": {OPTIMISTIC_LOCK}'
    assert st["details"]["name"] == "occ" and st["details"]["kind"] == "configmaps"
    d = apps.create_namespaced_deployment(ns, {"metadata": {"name": "occ-d"}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    apps.patch_namespaced_deployment("occ-d", ns, {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as info:
        apps.replace_namespaced_deployment("occ-d", ns, api.sanitize_for_serialization(d))
    st = _status(info.value)
    assert info.value.status == 409
    assert st["message"] == f'Operation cannot be fulfilled on deployments.apps "occ-d": {OPTIMISTIC_LOCK}'
    assert st["details"]["group"] == "apps" and st["details"]["kind"] == "deployments"


def test_unconditional_update_where_the_strategy_allows_it(core, apps, api):
    ns = namespace(core, "sem-occ")
    before = cm(core, ns, "uncond", data={"a": "1"})
    body = api.sanitize_for_serialization(before)
    del body["metadata"]["resourceVersion"]
    body["data"] = {"a": "2"}
    after = core.replace_namespaced_config_map("uncond", ns, body)
    assert after.data == {"a": "2"} and int(after.metadata.resource_version) > int(before.metadata.resource_version)
    d = apps.create_namespaced_deployment(ns, {"metadata": {"name": "uncond-d"}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    body = api.sanitize_for_serialization(d)
    del body["metadata"]["resourceVersion"]
    body["spec"]["replicas"] = 3
    assert apps.replace_namespaced_deployment("uncond-d", ns, body).spec.replicas == 3


def _lease(ns: str, name: str, holder: str) -> Dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": ns},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}}


def test_put_creates_a_missing_lease_but_not_a_configmap(api, core):
    ns = namespace(core, "sem-occ")
    # leaseStrategy.AllowCreateOnUpdate is true (leader election relies on it); configMapStrategy's is false.
    made = client.CoordinationV1Api(api).replace_namespaced_lease("put-made", ns, _lease(ns, "put-made", "a"))
    assert made.metadata.uid and made.spec.holder_identity == "a"
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("never-made", ns, {"metadata": {"name": "never-made"}, "data": {}})
    assert info.value.status == 404


def test_lease_updates_need_a_resource_version(api, core):
    # leaseStrategy.AllowUnconditionalUpdate is false: the generic store answers 422.
    ns = namespace(core, "sem-occ")
    coord = client.CoordinationV1Api(api)
    coord.create_namespaced_lease(ns, _lease(ns, "cond", "a"))
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("cond", ns, _lease(ns, "cond", "b"))
    st = _status(info.value)
    assert info.value.status == 422 and st["reason"] == "Invalid"
    assert "metadata.resourceVersion" in st["message"] and "must be specified for an update" in st["message"]
    assert coord.read_namespaced_lease("cond", ns).spec.holder_identity == "a"


def test_delete_preconditions(core):
    ns = namespace(core, "sem-occ")
    obj = cm(core, ns, "pre")
    wrong_uid = str(uuid.uuid4())
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"uid": wrong_uid}})
    st = _status(info.value)
    assert info.value.status == 409 and st["reason"] == "Conflict"
    # rest.BeforeDelete checks preconditions before the storage layer does, with its own wording.
    assert st["message"] == (f'Operation cannot be fulfilled on ConfigMap "pre": the UID in the precondition ({wrong_uid}) '
                             f"does not match the UID in record ({obj.metadata.uid}). "
                             "The object might have been deleted and then recreated")
    stale = obj.metadata.resource_version
    current = core.patch_namespaced_config_map("pre", ns, {"data": {"x": "y"}}).metadata.resource_version
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"resourceVersion": stale}})
    assert info.value.status == 409
    assert _status(info.value)["message"] == (
        f'Operation cannot be fulfilled on ConfigMap "pre": the ResourceVersion in the precondition ({stale}) '
        f"does not match the ResourceVersion in record ({current}). The object might have been modified")
    assert core.read_namespaced_config_map("pre", ns).metadata.uid == obj.metadata.uid
    core.delete_namespaced_config_map("pre", ns, body={"preconditions": {"uid": obj.metadata.uid, "resourceVersion": current}})
    assert _gone(lambda: core.read_namespaced_config_map("pre", ns))


def test_delete_answers_a_status_or_the_object_as_upstream(core, raw):
    ns = namespace(core, "sem-occ")
    obj = cm(core, ns, "del-status")
    # Stores without ReturnDeletedObject answer a Status whose details.kind is the resource.
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/del-status")
    assert code == 200, body
    assert body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"] == {"name": "del-status", "kind": "configmaps", "uid": obj.metadata.uid}
    # Pods set ReturnDeletedObject: the answer is the pod.
    pod(core, ns, "del-pod")
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/pods/del-pod")
    assert code == 200 and body["kind"] == "Pod" and body["metadata"]["name"] == "del-pod"
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/del-status")
    assert code == 404 and body["message"] == 'configmaps "del-status" not found'


# -- generation ----------------------------------------------------------------------------------

WORKLOADS = {
    "deployment": ("namespaced_deployment", {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE},
                   {"spec": {"replicas": 2}}),
    "replicaset": ("namespaced_replica_set", {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE},
                   {"spec": {"replicas": 2}}),
    "daemonset": ("namespaced_daemon_set", {"selector": SELECTOR, "template": TEMPLATE},
                  {"spec": {"minReadySeconds": 5}}),
    "statefulset": ("namespaced_stateful_set", {"serviceName": "s", "selector": SELECTOR, "template": TEMPLATE},
                    {"spec": {"replicas": 3}}),
    "job": ("namespaced_job", {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}},
            {"spec": {"parallelism": 2}}),
}


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_generation_moves_on_spec_changes_only(api, core, kind):
    ns = namespace(core, "sem-gen")
    fn, spec, spec_patch = WORKLOADS[kind]
    a = client.BatchV1Api(api) if kind == "job" else client.AppsV1Api(api)
    name = f"gen-{kind}"
    created = getattr(a, f"create_{fn}")(ns, {"metadata": {"name": name, "generation": 7}, "spec": spec})
    assert created.metadata.generation == 1, "a create starts at 1 whatever the client sends"
    labeled = getattr(a, f"patch_{fn}")(name, ns, {"metadata": {"labels": {"extra": "yes"}}})
    assert labeled.metadata.generation == 1, "a label change is not a spec change"
    forged = getattr(a, f"patch_{fn}")(name, ns, {"metadata": {"generation": 42}})
    assert forged.metadata.generation == 1, "clients cannot set generation"
    changed = getattr(a, f"patch_{fn}")(name, ns, spec_patch)
    assert changed.metadata.generation == 2
    same = getattr(a, f"patch_{fn}")(name, ns, spec_patch)
    assert same.metadata.generation == 2, "re-sending the same spec does not move generation"


def test_deployment_annotations_move_generation(apps, core):
    # deploymentStrategy.PrepareForUpdate: annotations are copied to ReplicaSets, so they count.
    ns = namespace(core, "sem-gen")
    apps.create_namespaced_deployment(ns, {"metadata": {"name": "annotated"}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    rs = apps.create_namespaced_replica_set(ns, {"metadata": {"name": "annotated-rs"}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    rs = apps.patch_namespaced_replica_set(rs.metadata.name, ns, {"metadata": {"annotations": {"note": "x"}}})
    assert rs.metadata.generation == 1, "ReplicaSets count spec changes only"
    d = apps.patch_namespaced_deployment("annotated", ns, {"metadata": {"annotations": {"note": "x"}}})
    assert d.metadata.generation == 2
    d = apps.patch_namespaced_deployment("annotated", ns, {"metadata": {"labels": {"l": "1"}}})
    assert d.metadata.generation == 2, "labels do not count"


def test_status_subresource_writes_status_only(apps, core):
    ns = namespace(core, "sem-gen")
    apps.create_namespaced_deployment(ns, {"metadata": {"name": "st", "labels": {"keep": "1"}}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    d = apps.patch_namespaced_deployment_status("st", ns, {
        "metadata": {"labels": {"keep": "2"}}, "spec": {"replicas": 9}, "status": {"replicas": 1, "observedGeneration": 1}})
    assert d.spec.replicas == 1, "status writes keep the spec"
    assert d.metadata.labels == {"keep": "1"}, "deployments/status keeps labels"
    assert d.metadata.generation == 1 and d.status.replicas == 1 and d.status.observed_generation == 1
    sts = apps.create_namespaced_stateful_set(ns, {"metadata": {"name": "st-sts"}, "spec": WORKLOADS["statefulset"][1]})
    s = apps.patch_namespaced_stateful_set_status("st-sts", ns, {"spec": {"replicas": 5}, "status": {
        "replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "availableReplicas": 1}})
    assert s.spec.replicas == 1 and s.status.ready_replicas == 1 and s.metadata.generation == 1
    # The main resource keeps status whatever the client sends.
    body = apps.api_client.sanitize_for_serialization(s)
    body["status"] = {"replicas": 7}
    body["spec"]["replicas"] = 2
    s = apps.replace_namespaced_stateful_set("st-sts", ns, body)
    assert s.spec.replicas == 2 and s.status.replicas == 1 and s.status.ready_replicas == 1
    assert s.metadata.generation == 2 and sts.metadata.uid == s.metadata.uid


def test_deployment_status_writes_may_change_annotations(apps, core):
    # deploymentStatusStrategy.PrepareForUpdate resets spec and labels only.
    ns = namespace(core, "sem-gen")
    apps.create_namespaced_deployment(ns, {"metadata": {"name": "st-ann"}, "spec": {
        "replicas": 1, "selector": SELECTOR, "template": TEMPLATE}})
    d = apps.patch_namespaced_deployment_status("st-ann", ns, {"metadata": {"annotations": {"from-status": "yes"}}})
    assert (d.metadata.annotations or {}).get("from-status") == "yes"
    assert d.metadata.generation == 1, "a status write never moves generation"


# -- server-owned metadata -----------------------------------------------------------------------


def test_uid_is_the_servers_unique_and_stable(core, api):
    ns = namespace(core, "sem-meta")
    mine = str(uuid.uuid4())
    objs = [cm(core, ns, f"uid-{i}", uid=mine if i == 0 else None) for i in range(3)]
    uids = [o.metadata.uid for o in objs]
    assert len(set(uids)) == 3 and mine not in uids, "FillObjectMetaSystemFields assigns a new UID"
    for u in uids:
        uuid.UUID(u)
    updated = core.patch_namespaced_config_map("uid-1", ns, {"data": {"x": "1"}})
    assert updated.metadata.uid == uids[1]
    body = api.sanitize_for_serialization(updated)
    del body["metadata"]["uid"]
    assert core.replace_namespaced_config_map("uid-1", ns, body).metadata.uid == uids[1], "no UID: keep the old one"
    body = api.sanitize_for_serialization(core.read_namespaced_config_map("uid-1", ns))
    body["metadata"]["uid"] = mine
    # A UID in an update body is a precondition: a different one is a 409.
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("uid-1", ns, body)
    st = _status(info.value)
    assert info.value.status == 409 and st["reason"] == "Conflict"
    assert f"Precondition failed: UID in precondition: {mine}, UID in object meta: {uids[1]}" in st["message"]


def test_creation_timestamp_is_set_by_the_server_and_kept(core, api):
    ns = namespace(core, "sem-meta")
    before = datetime.now().astimezone() - timedelta(seconds=5)
    obj = cm(core, ns, "ts", creationTimestamp="2001-01-01T00:00:00Z")
    created = _ts(obj.metadata.creation_timestamp)
    assert created >= before, "the client's creationTimestamp is replaced"
    body = api.sanitize_for_serialization(obj)
    body["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    body["data"] = {"x": "1"}
    updated = core.replace_namespaced_config_map("ts", ns, body)
    assert _ts(updated.metadata.creation_timestamp) == created and updated.data == {"x": "1"}


def test_generate_name(core):
    ns = namespace(core, "sem-meta")
    made = [core.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}}) for _ in range(10)]
    names = [m.metadata.name for m in made]
    assert len(set(names)) == 10
    for m in made:
        assert m.metadata.name.startswith("gen-") and GENERATED_SUFFIX.match(m.metadata.name[4:]), m.metadata.name
        assert m.metadata.generate_name == "gen-"
    both = core.create_namespaced_config_map(ns, {"metadata": {"name": "given", "generateName": "gen-"}})
    assert both.metadata.name == "given", "a name wins over generateName"


def test_labels_and_annotations_round_trip(core, api):
    ns = namespace(core, "sem-meta")
    labels = {"app.kubernetes.io/name": "x", "empty": "", "a-b_c.d": "v-1_2.3"}
    annotations = {"example.com/long": "x" * 5000, "unicode": "h\u00e9llo \u2603", "json": '{"a": [1, 2]}',
                   "multi": "line1\nline2", "empty": ""}
    obj = cm(core, ns, "round", labels=labels, annotations=annotations)
    got = core.read_namespaced_config_map("round", ns)
    assert got.metadata.labels == labels and got.metadata.annotations == annotations
    assert obj.metadata.labels == labels
    patched = core.patch_namespaced_config_map("round", ns, {"metadata": {"labels": {"empty": None, "new": "1"}}})
    assert patched.metadata.labels == {"app.kubernetes.io/name": "x", "a-b_c.d": "v-1_2.3", "new": "1"}
    assert _names(core.list_namespaced_config_map(ns, label_selector="new=1,empty!=").items) == {"round"}


def test_objects_without_managed_fields_are_accepted(core, api):
    ns = namespace(core, "sem-meta")
    obj = cm(core, ns, "nomf")
    body = api.sanitize_for_serialization(obj)
    body["metadata"].pop("managedFields", None)
    body["data"] = {"k": "v"}
    assert core.replace_namespaced_config_map("nomf", ns, body).data == {"k": "v"}


# -- finalizers ----------------------------------------------------------------------------------


def test_finalizers_hold_an_object_until_the_last_is_removed(core, api):
    ns = namespace(core, "sem-fin")
    cm(core, ns, "held", finalizers=["example.com/a", "example.com/b"])
    core.delete_namespaced_config_map("held", ns)
    obj = core.read_namespaced_config_map("held", ns)
    stamp = obj.metadata.deletion_timestamp
    assert stamp is not None and obj.metadata.deletion_grace_period_seconds == 0
    assert "held" in _names(core.list_namespaced_config_map(ns).items)
    # Other changes are allowed; deletionTimestamp cannot be moved; a second delete changes nothing.
    body = api.sanitize_for_serialization(obj)
    body["metadata"]["labels"] = {"touched": "yes"}
    body["metadata"]["deletionTimestamp"] = "2001-01-01T00:00:00Z"
    touched = core.replace_namespaced_config_map("held", ns, body)
    assert touched.metadata.labels == {"touched": "yes"} and touched.metadata.deletion_timestamp == stamp
    core.delete_namespaced_config_map("held", ns)
    assert core.read_namespaced_config_map("held", ns).metadata.deletion_timestamp == stamp
    # Removing finalizers one by one: the last removal deletes the object.
    body = api.sanitize_for_serialization(core.read_namespaced_config_map("held", ns))
    body["metadata"]["finalizers"] = ["example.com/b"]
    assert core.replace_namespaced_config_map("held", ns, body).metadata.finalizers == ["example.com/b"]
    body = api.sanitize_for_serialization(core.read_namespaced_config_map("held", ns))
    body["metadata"]["finalizers"] = []
    core.replace_namespaced_config_map("held", ns, body)
    assert _gone(lambda: core.read_namespaced_config_map("held", ns))


def test_no_new_finalizers_once_deletion_started(core, api):
    # ValidateObjectMetaUpdate forbids adding finalizers to an object with a deletionTimestamp.
    ns = namespace(core, "sem-fin")
    cm(core, ns, "no-new", finalizers=["example.com/a"])
    core.delete_namespaced_config_map("no-new", ns)
    body = api.sanitize_for_serialization(core.read_namespaced_config_map("no-new", ns))
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/c"]
    try:
        with pytest.raises(ApiException) as info:
            core.replace_namespaced_config_map("no-new", ns, body)
        st = _status(info.value)
        assert info.value.status == 422 and st["reason"] == "Invalid"
        assert ('metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, '
                'found new finalizers []string{"example.com/c"}') in st["message"]
        with pytest.raises(ApiException) as info:
            core.patch_namespaced_config_map("no-new", ns, {"metadata": {"finalizers": ["example.com/d"]}})
        assert info.value.status == 422
        assert core.read_namespaced_config_map("no-new", ns).metadata.finalizers == ["example.com/a"]
    finally:
        core.patch_namespaced_config_map("no-new", ns, {"metadata": {"finalizers": None}})


def test_delete_of_a_finalized_object_answers_200_with_the_object(core, raw):
    # handlers/delete.go answers 202 only when orphanDependents=false was asked for.
    ns = namespace(core, "sem-fin")
    cm(core, ns, "held-code", finalizers=["example.com/a"])
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/held-code")
    assert body["kind"] == "ConfigMap" and body["metadata"]["deletionTimestamp"]
    assert body["metadata"]["deletionGracePeriodSeconds"] == 0
    assert code == 200
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/held-code")
    assert code == 200 and body["kind"] == "ConfigMap"
    core.patch_namespaced_config_map("held-code", ns, [{"op": "remove", "path": "/metadata/finalizers"}])


# -- pods: graceful deletion and binding ---------------------------------------------------------


def _bind(raw: Raw, ns: str, name: str, node: str) -> Tuple[int, Any]:
    code, _, body = raw.request("POST", f"/api/v1/namespaces/{ns}/pods/{name}/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    return code, body


def test_unscheduled_pod_is_deleted_at_once(core):
    ns = namespace(core, "sem-pods")
    pod(core, ns, "pending")
    core.delete_namespaced_pod("pending", ns)
    assert _gone(lambda: core.read_namespaced_pod("pending", ns))


def test_bound_pod_waits_for_its_grace_period(core, raw):
    ns = namespace(core, "sem-pods")
    pod(core, ns, "bound")
    code, body = _bind(raw, ns, "bound", "sem-kubelet")
    assert code == 201 and body["kind"] == "Status" and body["status"] == "Success" and body["code"] == 201
    code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}/pods/bound")
    assert code == 200 and body["kind"] == "Pod" and body["metadata"]["deletionGracePeriodSeconds"] == 30
    p = core.read_namespaced_pod("bound", ns)
    assert p.metadata.deletion_grace_period_seconds == 30 and p.metadata.deletion_timestamp is not None
    # Another delete without a shorter period leaves it as it is.
    core.delete_namespaced_pod("bound", ns)
    again = core.read_namespaced_pod("bound", ns)
    assert again.metadata.deletion_timestamp == p.metadata.deletion_timestamp
    assert again.metadata.deletion_grace_period_seconds == 30
    # A shorter period shortens it, a longer one cannot extend it, 0 removes the pod.
    core.delete_namespaced_pod("bound", ns, grace_period_seconds=10)
    assert core.read_namespaced_pod("bound", ns).metadata.deletion_grace_period_seconds == 10
    core.delete_namespaced_pod("bound", ns, grace_period_seconds=60)
    longer = core.read_namespaced_pod("bound", ns).metadata.deletion_grace_period_seconds
    core.delete_namespaced_pod("bound", ns, grace_period_seconds=0)
    assert _gone(lambda: core.read_namespaced_pod("bound", ns))
    assert longer == 10, "only a shorter grace period may be given once deletion started"


def test_graceful_deletion_timestamp_is_when_the_grace_period_ends(core):
    # rest.BeforeDelete: deletionTimestamp = now + grace; shortening moves it back by the difference.
    ns = namespace(core, "sem-pods")
    created = pod(core, ns, "stamped", node="sem-kubelet")
    core.delete_namespaced_pod("stamped", ns)
    stamp = _ts(core.read_namespaced_pod("stamped", ns).metadata.deletion_timestamp)
    assert stamp >= _ts(created.metadata.creation_timestamp) + timedelta(seconds=25)
    core.delete_namespaced_pod("stamped", ns, grace_period_seconds=10)
    assert _ts(core.read_namespaced_pod("stamped", ns).metadata.deletion_timestamp) == stamp - timedelta(seconds=20)
    core.delete_namespaced_pod("stamped", ns, grace_period_seconds=0)


def test_pod_grace_period_comes_from_the_spec_and_finished_pods_go_at_once(core):
    ns = namespace(core, "sem-pods")
    pod(core, ns, "short", node="sem-kubelet", terminationGracePeriodSeconds=5)
    core.delete_namespaced_pod("short", ns)
    assert core.read_namespaced_pod("short", ns).metadata.deletion_grace_period_seconds == 5
    core.delete_namespaced_pod("short", ns, grace_period_seconds=0)
    pod(core, ns, "done", node="sem-kubelet")
    core.patch_namespaced_pod_status("done", ns, {"status": {"phase": "Succeeded"}})
    core.delete_namespaced_pod("done", ns)
    assert _gone(lambda: core.read_namespaced_pod("done", ns))


def test_binding_assigns_once(core, raw):
    ns = namespace(core, "sem-pods")
    pod(core, ns, "to-bind")
    code, body = _bind(raw, ns, "to-bind", "sem-node-1")
    assert code == 201, body
    p = core.read_namespaced_pod("to-bind", ns)
    assert p.spec.node_name == "sem-node-1"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in p.status.conditions or [])
    code, conflict = _bind(raw, ns, "to-bind", "sem-node-2")
    assert code == 409 and conflict["reason"] == "Conflict", conflict
    assert core.read_namespaced_pod("to-bind", ns).spec.node_name == "sem-node-1"
    code, body = _bind(raw, ns, "no-such-pod", "sem-node-1")
    assert code == 404, body
    # A pod that is being deleted cannot be bound.
    core.create_namespaced_pod(ns, {"metadata": {"name": "dying", "finalizers": ["example.com/keep"]}, "spec": POD_SPEC})
    core.delete_namespaced_pod("dying", ns)
    code, dying = _bind(raw, ns, "dying", "sem-node-1")
    core.patch_namespaced_pod("dying", ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert code == 409 and dying["reason"] == "Conflict", dying
    # BindingREST wraps its errors in a Conflict on pods/binding.
    assert conflict["message"] == (
        'Operation cannot be fulfilled on pods/binding "to-bind": pod to-bind is already assigned to node "sem-node-1"')
    assert dying["message"] == (
        'Operation cannot be fulfilled on pods/binding "dying": pod dying is being deleted, cannot be assigned to a host')


# -- namespaces ----------------------------------------------------------------------------------


def test_default_namespaces(core):
    names = _names(core.list_namespace().items)
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
        ns = core.read_namespace(n)
        assert ns.status.phase == "Active" and ns.spec.finalizers == ["kubernetes"]
        assert ns.metadata.labels == {"kubernetes.io/metadata.name": n}


def test_the_kubernetes_service(core):
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == str(SERVICE_RANGE.network_address + 1), "the first address of the range"
    assert svc.spec.type == "ClusterIP" and svc.metadata.labels == {"component": "apiserver", "provider": "kubernetes"}
    port = svc.spec.ports[0]
    assert (port.name, port.port, port.protocol) == ("https", 443, "TCP")
    # IPv6 single-stack, and its endpoints in its family (kube-apiserver refuses a mismatched advertise address).
    assert (svc.spec.ip_families, svc.spec.ip_family_policy) == (["IPv6"], "SingleStack")
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for a in endpoints.subsets[0].addresses] == ["::1"]


def test_the_kubernetes_service_targets_the_secure_port(core, cluster):
    secure = int(re.search(r"server: https://[^:\s]+:(\d+)", open(cluster.kubeconfig).read()).group(1))
    assert core.read_namespaced_service("kubernetes", "default").spec.ports[0].target_port == secure
    ep = core.read_namespaced_endpoints("kubernetes", "default")
    assert [(p.name, p.port) for p in ep.subsets[0].ports] == [("https", secure)]


def test_new_namespace_gets_the_default_service_account(core):
    ns = namespace(core, "sem-sa")
    sa = _poll("the default ServiceAccount", lambda: [
        s for s in core.list_namespaced_service_account(ns).items if s.metadata.name == "default"])
    assert sa[0].metadata.namespace == ns


def test_create_in_a_missing_namespace_is_not_found(core):
    with pytest.raises(ApiException) as info:
        cm(core, "sem-no-such-namespace", "x")
    assert info.value.status == 404 and _status(info.value)["message"] == 'namespaces "sem-no-such-namespace" not found'


def _release(core, ns: str, name: str) -> None:
    try:
        core.patch_namespaced_config_map(name, ns, [{"op": "remove", "path": "/metadata/finalizers"}])
    except ApiException:
        pass


def test_deleted_namespace_is_terminating_and_refuses_new_content(core, raw):
    ns = namespace(core, "sem-doomed-a")
    cm(core, ns, "held", finalizers=["example.com/hold"])
    try:
        code, _, body = raw.request("DELETE", f"/api/v1/namespaces/{ns}")
        assert code == 200, body
        assert body["kind"] == "Namespace" and body["metadata"]["deletionTimestamp"]
        assert body["status"]["phase"] == "Terminating"
        got = core.read_namespace(ns)
        assert got.status.phase == "Terminating" and got.metadata.deletion_timestamp is not None
        assert got.spec.finalizers == ["kubernetes"]
        # NamespaceLifecycle admission: no new content in a terminating namespace.
        with pytest.raises(ApiException) as info:
            cm(core, ns, "late")
        st = _status(info.value)
        assert info.value.status == 403 and st["reason"] == "Forbidden"
        assert st["message"] == (f'configmaps "late" is forbidden: unable to create new content in namespace {ns} '
                                 "because it is being terminated")
        assert {"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                "field": "metadata.namespace"} in st["details"]["causes"]
    finally:
        _release(core, ns, "held")


def test_namespace_deletion_removes_content_then_the_namespace(core):
    ns = namespace(core, "sem-doomed-b")
    for i in range(3):
        cm(core, ns, f"content-{i}")
    pod(core, ns, "content-pod")
    cm(core, ns, "held", finalizers=["example.com/hold"])
    try:
        core.delete_namespace(ns)
        assert core.read_namespace(ns).status.phase == "Terminating"
        # The namespace controller deletes the content; what has finalizers is marked and waits.
        _poll("namespace content removed", lambda: _names(core.list_namespaced_config_map(ns).items) == {"held"}
              and not core.list_namespaced_pod(ns).items, timeout=15)
        assert _poll("the held configmap marked for deletion",
                     lambda: core.read_namespaced_config_map("held", ns).metadata.deletion_timestamp)
        conds = _poll("NamespaceFinalizersRemaining", lambda: [
            c for c in core.read_namespace(ns).status.conditions or []
            if c.type == "NamespaceFinalizersRemaining" and c.status == "True"], timeout=15)
        assert "example.com/hold" in conds[0].message
        assert core.read_namespace(ns).status.phase == "Terminating"
    finally:
        _release(core, ns, "held")
    _poll("namespace gone", lambda: _gone(lambda: core.read_namespace(ns)), timeout=15)


def test_namespaces_have_no_deletecollection(core, raw):
    # Namespaces do not offer deletecollection: 405. The selector keeps a wrong answer harmless.
    core.create_namespace({"metadata": {"name": "sem-dc-guard", "labels": {"sem-dc-guard": "yes"}}})
    code, _, body = raw.request("DELETE", "/api/v1/namespaces?labelSelector=sem-dc-guard%3Dyes")
    assert code == 405 and body["reason"] == "MethodNotAllowed", body


# -- services ------------------------------------------------------------------------------------


def _svc(core, ns: str, name: str, **spec: Any):
    return core.create_namespaced_service(ns, {"metadata": {"name": name}, "spec": {
        "ports": [{"port": 80, "targetPort": 8080}], **spec}})


def test_cluster_ips_are_allocated_unique_and_released(core):
    ns = namespace(core, "sem-svc")
    ips = [_svc(core, ns, f"ip-{i}").spec.cluster_ip for i in range(6)]
    assert len(set(ips)) == 6
    kubernetes = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    for ip in ips:
        assert ipaddress.ip_address(ip) in SERVICE_RANGE and ip != kubernetes
    with pytest.raises(ApiException) as info:
        _svc(core, ns, "ip-taken", clusterIP=ips[0])
    st = _status(info.value)
    assert info.value.status == 422 and "spec.clusterIPs" in st["message"]
    assert "provided IP is already allocated" in st["message"]
    with pytest.raises(ApiException) as info:
        _svc(core, ns, "ip-outside", clusterIP="fd00:99::1")
    assert info.value.status == 422
    assert f"is not in the valid range. The range of valid IPs is {SERVICE_RANGE}" in _status(info.value)["message"]
    with pytest.raises(ApiException) as info:
        _svc(core, ns, "ip-other-family", clusterIP="10.96.0.50")
    assert info.value.status == 422
    assert 'spec.clusterIPs[0]: Invalid value: ["10.96.0.50"]: IPv4 is not configured on this cluster' in _status(
        info.value)["message"]
    core.delete_namespaced_service("ip-0", ns)
    again = _svc(core, ns, "ip-reuse", clusterIP=ips[0])
    assert again.spec.cluster_ip == ips[0] and again.spec.cluster_ips == [ips[0]]
    headless = _svc(core, ns, "headless", clusterIP="None")
    assert headless.spec.cluster_ip == "None" and headless.spec.cluster_ips == ["None"]


def test_ip_families_on_a_single_stack_cluster(core):
    ns = namespace(core, "sem-svc")
    prefer = _svc(core, ns, "fam-prefer", ipFamilyPolicy="PreferDualStack")
    assert prefer.spec.ip_families == ["IPv6"] and len(prefer.spec.cluster_ips) == 1
    assert prefer.spec.ip_family_policy == "PreferDualStack"
    cases = [
        ({"ipFamilyPolicy": "RequireDualStack"},
         'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack '
         'services'),
        ({"ipFamilies": ["IPv4"]}, 'spec.ipFamilies[0]: Invalid value: "IPv4": not configured on this cluster'),
        ({"ipFamilies": ["IPv6", "IPv4"]},
         "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' "
         "when multiple IP families are specified"),
    ]
    for i, (spec, message) in enumerate(cases):
        with pytest.raises(ApiException) as info:
            _svc(core, ns, f"fam-bad-{i}", **spec)
        assert info.value.status == 422 and message in _status(info.value)["message"], (spec, _status(info.value))
    # Refused creates hold nothing: the next service still gets a fresh address and the names are free.
    names = {s.metadata.name for s in core.list_namespaced_service(ns).items}
    assert not {n for n in names if n.startswith("fam-bad")}
    # A headless service without a selector may name both families (nothing is allocated for it).
    headless = _svc(core, ns, "fam-headless", clusterIP="None")
    assert headless.spec.ip_family_policy == "RequireDualStack" and headless.spec.ip_families == ["IPv6", "IPv4"]


def test_node_ports_are_allocated_from_the_range(core):
    ns = namespace(core, "sem-svc")
    a = _svc(core, ns, "np-a", type="NodePort")
    b = _svc(core, ns, "np-b", type="NodePort")
    ports = [a.spec.ports[0].node_port, b.spec.ports[0].node_port]
    assert all(p is not None and 30000 <= p <= 32767 for p in ports), ports
    assert ports[0] != ports[1]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service(ns, {"metadata": {"name": "np-taken"}, "spec": {
            "type": "NodePort", "ports": [{"port": 80, "nodePort": ports[0]}]}})
    assert info.value.status == 422
    assert f"spec.ports[0].nodePort: Invalid value: {ports[0]}: provided port is already allocated" in _status(
        info.value)["message"]
    chosen = core.create_namespaced_service(ns, {"metadata": {"name": "np-chosen"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80, "nodePort": 31999}]}})
    assert chosen.spec.ports[0].node_port == 31999


# -- deletecollection ----------------------------------------------------------------------------


def test_deletecollection_deletes_only_what_matches(core):
    ns = namespace(core, "sem-dc")
    for i in range(3):
        cm(core, ns, f"yes-{i}", {"dc": "yes"})
    for i in range(2):
        cm(core, ns, f"no-{i}", {"dc": "no"})
    cm(core, ns, "unlabeled")
    core.delete_collection_namespaced_config_map(ns, label_selector="dc=yes")
    left = _names(core.list_namespaced_config_map(ns).items) - {"kube-root-ca.crt"}
    assert left == {"no-0", "no-1", "unlabeled"}
    core.delete_collection_namespaced_config_map(ns, field_selector="metadata.name=no-1")
    assert _names(core.list_namespaced_config_map(ns).items) - {"kube-root-ca.crt"} == {"no-0", "unlabeled"}
    # Other namespaces are untouched.
    other = namespace(core, "sem-dc-other")
    cm(core, other, "yes-0", {"dc": "yes"})
    core.delete_collection_namespaced_config_map(ns, label_selector="dc")
    assert "yes-0" in _names(core.list_namespaced_config_map(other).items)


# -- watch ---------------------------------------------------------------------------------------


def _list_rv(core, ns: str) -> str:
    return core.list_namespaced_config_map(ns).metadata.resource_version


def test_watch_reports_changes_in_order(core, cluster):
    ns = namespace(core, "sem-watch")
    start = _list_rv(core, ns)
    created = cm(core, ns, "w", data={"v": "1"})
    patched = core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("w", ns)
    with WatchStream(cluster.port, f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start)}") as w:
        events = w.take(3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1" for e in events)
    rvs = [_rv(e) for e in events]
    assert rvs == sorted(set(rvs)), rvs
    assert rvs[0] == int(created.metadata.resource_version) and rvs[1] == int(patched.metadata.resource_version)
    assert events[2]["object"]["data"] == {"v": "2"}, "DELETED carries the last state, at the deletion's revision"


def test_watch_with_a_label_selector_sees_objects_enter_and_leave(core, cluster):
    ns = namespace(core, "sem-watch")
    start = _list_rv(core, ns)
    cm(core, ns, "mover", {"sel": "no"})
    entered = core.patch_namespaced_config_map("mover", ns, {"metadata": {"labels": {"sel": "yes"}}})
    core.patch_namespaced_config_map("mover", ns, {"data": {"x": "1"}})
    left = core.patch_namespaced_config_map("mover", ns, {"metadata": {"labels": {"sel": "no"}}})
    core.patch_namespaced_config_map("mover", ns, {"data": {"x": "2"}})  # unseen: does not match before or after
    core.delete_namespaced_config_map("mover", ns)  # unseen
    cm(core, ns, "sentinel", {"sel": "yes"})
    path = f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start, labelSelector='sel=yes')}"
    with WatchStream(cluster.port, path) as w:
        events = w.until(lambda e: _name(e) == "sentinel")
    assert [(e["type"], _name(e)) for e in events] == [
        ("ADDED", "mover"), ("MODIFIED", "mover"), ("DELETED", "mover"), ("ADDED", "sentinel")]
    assert _rv(events[0]) == int(entered.metadata.resource_version)
    # Leaving the selector: the previous state of the object, at the revision of the change.
    gone = events[2]["object"]
    assert gone["metadata"]["labels"] == {"sel": "yes"} and gone["data"] == {"x": "1"}
    assert _rv(events[2]) == int(left.metadata.resource_version)


def test_watch_across_namespaces(core, cluster):
    one, two = namespace(core, "sem-watch"), namespace(core, "sem-watch-2")
    start = core.list_config_map_for_all_namespaces(limit=1).metadata.resource_version
    cm(core, one, "everywhere", {"semwatch": "all"})
    cm(core, two, "everywhere", {"semwatch": "all"})
    cm(core, two, "last", {"semwatch": "all"})
    path = f"/api/v1/configmaps?{_q(watch=1, resourceVersion=start, labelSelector='semwatch=all')}"
    with WatchStream(cluster.port, path) as w:
        events = w.take(3)
    assert [(e["type"], e["object"]["metadata"]["namespace"], _name(e)) for e in events] == [
        ("ADDED", one, "everywhere"), ("ADDED", two, "everywhere"), ("ADDED", two, "last")]
    path = f"/api/v1/configmaps?{_q(watch=1, resourceVersion=start, fieldSelector=f'metadata.namespace={two}')}"
    with WatchStream(cluster.port, path) as w:
        events = w.until(lambda e: _name(e) == "last")
    assert {e["object"]["metadata"]["namespace"] for e in events} == {two}


@pytest.mark.parametrize("rv", [None, "0"], ids=["unset", "zero"])
def test_watch_without_a_version_starts_with_the_current_state(core, cluster, rv):
    ns = namespace(core, f"sem-watch-state-{rv or 'unset'}")
    cm(core, ns, "s1")
    cm(core, ns, "s2")
    with WatchStream(cluster.port, f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=rv)}") as w:
        initial: List[Dict[str, Any]] = []
        seen: Set[str] = set()
        while not {"s1", "s2"} <= seen:
            ev = w.next()
            assert ev["type"] == "ADDED", ev["type"]
            seen.add(_name(ev))
            initial.append(ev)
        cm(core, ns, "s3")
        live = w.until(lambda e: _name(e) == "s3")
    assert {_name(e) for e in initial} - {"kube-root-ca.crt"} == {"s1", "s2"}
    assert live[-1]["type"] == "ADDED"


def test_watch_by_name(core, cluster):
    ns = namespace(core, "sem-watch")
    start = _list_rv(core, ns)
    cm(core, ns, "other")
    cm(core, ns, "target")
    core.delete_namespaced_config_map("other", ns)
    core.delete_namespaced_config_map("target", ns)
    path = f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start, fieldSelector='metadata.name=target')}"
    with WatchStream(cluster.port, path) as w:
        events = w.take(2)
    assert [(e["type"], _name(e)) for e in events] == [("ADDED", "target"), ("DELETED", "target")]


def test_watch_bookmarks_carry_a_resource_version(core, cluster):
    # Upstream sends a bookmark 2 s before the watch's deadline (cacheWatcher.nextBookmarkTime).
    ns = namespace(core, "sem-watch-bm")
    start = int(cm(core, ns, "bm").metadata.resource_version)
    path = f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start, allowWatchBookmarks='true', timeoutSeconds=5)}"
    with WatchStream(cluster.port, path, timeout=15) as w:
        events = w.drain()
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert marks, [e["type"] for e in events]
    for m in marks:
        assert m["object"]["kind"] == "ConfigMap" and m["object"]["apiVersion"] == "v1"
        assert _rv(m) >= start and set(m["object"]) <= {"kind", "apiVersion", "metadata"}
        assert not m["object"]["metadata"].get("annotations")


def test_watch_timeout_closes_the_stream_cleanly(core, cluster):
    ns = namespace(core, "sem-watch-bm")
    start = _list_rv(core, ns)
    with WatchStream(cluster.port, f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start, timeoutSeconds=1)}",
                     timeout=15) as w:
        assert w.drain() == [], "no events and no bookmarks unless asked for"


def test_watch_send_initial_events(core, cluster):
    ns = namespace(core, "sem-watch-sie")
    rvs = [int(cm(core, ns, f"i{i}").metadata.resource_version) for i in range(3)]
    path = (f"/api/v1/namespaces/{ns}/configmaps?"
            + _q(watch=1, sendInitialEvents="true", resourceVersionMatch="NotOlderThan", allowWatchBookmarks="true"))
    with WatchStream(cluster.port, path) as w:
        events = w.until(lambda e: e["type"] == "BOOKMARK")
        initial, mark = events[:-1], events[-1]
        assert {e["type"] for e in initial} == {"ADDED"}
        assert {_name(e) for e in initial} - {"kube-root-ca.crt"} == {"i0", "i1", "i2"}
        assert mark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert _rv(mark) >= max(rvs)
        changed = core.patch_namespaced_config_map("i1", ns, {"data": {"k": "v"}})
        ev = w.until(lambda e: e["type"] != "BOOKMARK")[-1]
    assert (ev["type"], _name(ev), _rv(ev)) == ("MODIFIED", "i1", int(changed.metadata.resource_version))
    # With a resourceVersion the initial state is the state not older than it.
    path = (f"/api/v1/namespaces/{ns}/configmaps?" + _q(
        watch=1, sendInitialEvents="true", resourceVersionMatch="NotOlderThan", allowWatchBookmarks="true",
        resourceVersion=rvs[0]))
    with WatchStream(cluster.port, path) as w:
        events = w.until(lambda e: e["type"] == "BOOKMARK")
    assert {_name(e) for e in events[:-1]} - {"kube-root-ca.crt"} == {"i0", "i1", "i2"}
    assert next(e for e in events if _name(e) == "i1")["object"]["data"] == {"k": "v"}


# -- health, version, metrics --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_endpoints(raw, path):
    code, headers, body = raw.get(path, headers={"Accept": "*/*"})
    assert code == 200 and body == "ok"
    assert headers["content-type"].startswith("text/plain")


def test_version(api, raw):
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor) == ("1", "32") and info.git_version.startswith("v1.32.")
    code, _, body = raw.get("/version")
    assert code == 200 and {"major", "minor", "gitVersion", "gitCommit", "buildDate", "goVersion", "platform"} <= set(body)


def _metrics(raw: Raw) -> Dict[str, Any]:
    code, _, text = raw.get("/metrics", headers={"Accept": "text/plain"})
    assert code == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(families: Dict[str, Any], family: str, sample: str) -> List[Any]:
    assert family in families, f"no metric family {family}"
    return [s for s in families[family].samples if s.name == sample]


def _value(families: Dict[str, Any], family: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in _samples(families, family, sample) if all(s.labels.get(k) == v for k, v in labels.items()))


REQUEST_LABELS = {"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"}


@pytest.fixture(scope="module")
def traffic(core, raw, cluster):
    """Known requests between two scrapes of /metrics."""
    ns = namespace(core, "sem-metrics")
    before = _metrics(raw)
    cm(core, ns, "m1")
    cm(core, ns, "m2")
    core.read_namespaced_config_map("m1", ns)
    core.list_namespaced_config_map(ns)
    core.list_config_map_for_all_namespaces()
    core.patch_namespaced_config_map("m1", ns, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("m2", ns)
    start = int(core.read_namespaced_config_map("m1", ns).metadata.resource_version)
    cm(core, ns, "m3")
    path = f"/api/v1/namespaces/{ns}/configmaps?{_q(watch=1, resourceVersion=start, timeoutSeconds=1)}"
    with WatchStream(cluster.port, path, timeout=15) as w:
        assert [e["type"] for e in w.drain()] == ["DELETED", "ADDED"]
    return before, _metrics(raw)


def test_request_total_labels(traffic):
    _, after = traffic
    assert after["apiserver_request"].type == "counter"
    samples = _samples(after, "apiserver_request", "apiserver_request_total")
    assert samples and all(set(s.labels) == REQUEST_LABELS | {"code"} for s in samples), samples[0].labels


# (verb, scope, code) of the requests `traffic` made: metrics.CleanScope and CanonicalVerb.
REQUESTS = [("POST", "resource", "201"), ("GET", "resource", "200"), ("LIST", "namespace", "200"),
            ("LIST", "cluster", "200"), ("PATCH", "resource", "200"), ("DELETE", "resource", "200"),
            ("WATCH", "namespace", "200")]


@pytest.mark.parametrize("verb,scope,code", REQUESTS, ids=[f"{v}-{s}" for v, s, _ in REQUESTS])
def test_request_total_counts_by_verb_and_scope(traffic, verb, scope, code):
    before, after = traffic
    labels = {"verb": verb, "scope": scope, "code": code, "resource": "configmaps", "group": "", "version": "v1",
              "subresource": "", "component": "apiserver"}
    grew = _value(after, "apiserver_request", "apiserver_request_total", **labels) - _value(
        before, "apiserver_request", "apiserver_request_total", **labels)
    assert grew >= (2 if verb == "POST" else 1), labels


def test_request_duration_histogram(traffic):
    _, after = traffic
    assert after["apiserver_request_duration_seconds"].type == "histogram"
    buckets = _samples(after, "apiserver_request_duration_seconds", "apiserver_request_duration_seconds_bucket")
    assert buckets and all(set(s.labels) == REQUEST_LABELS | {"le"} for s in buckets), buckets[0].labels
    assert _value(after, "apiserver_request_duration_seconds", "apiserver_request_duration_seconds_count",
                  resource="configmaps", scope="cluster") >= 1


def test_current_inflight_requests(traffic):
    _, after = traffic
    samples = _samples(after, "apiserver_current_inflight_requests", "apiserver_current_inflight_requests")
    assert {s.labels.get("request_kind") for s in samples} == {"mutating", "readOnly"}
    assert all(set(s.labels) == {"request_kind"} for s in samples)


def test_watch_events_total(traffic):
    # endpoints/metrics: WatchEvents is labeled by group, version and kind in 1.32.
    before, after = traffic
    samples = _samples(after, "apiserver_watch_events", "apiserver_watch_events_total")
    assert samples and all(set(s.labels) == {"group", "version", "kind"} for s in samples), samples[0].labels
    labels = {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert _value(after, "apiserver_watch_events", "apiserver_watch_events_total", **labels) - _value(
        before, "apiserver_watch_events", "apiserver_watch_events_total", **labels) >= 2


def test_storage_objects(traffic):
    _, after = traffic
    samples = _samples(after, "apiserver_storage_objects", "apiserver_storage_objects")
    assert all(set(s.labels) == {"resource"} for s in samples)
    resources = {s.labels["resource"] for s in samples}
    # The resource label is group-qualified (resource.group), as the storage reports it.
    assert {"namespaces", "configmaps", "deployments.apps", "leases.coordination.k8s.io"} <= resources, resources
    assert _value(after, "apiserver_storage_objects", "apiserver_storage_objects", resource="namespaces") >= 4


# -- discovery -----------------------------------------------------------------------------------

CORE_RESOURCES = {
    # name: (namespaced, kind, shortNames, categories)
    "pods": (True, "Pod", ["po"], ["all"]),
    "services": (True, "Service", ["svc"], ["all"]),
    "namespaces": (False, "Namespace", ["ns"], None),
    "nodes": (False, "Node", ["no"], None),
    "configmaps": (True, "ConfigMap", ["cm"], None),
    "endpoints": (True, "Endpoints", ["ep"], None),
    "events": (True, "Event", ["ev"], None),
    "serviceaccounts": (True, "ServiceAccount", ["sa"], None),
    "secrets": (True, "Secret", None, None),
}
APPS_RESOURCES = {
    "deployments": ("Deployment", ["deploy"]),
    "replicasets": ("ReplicaSet", ["rs"]),
    "daemonsets": ("DaemonSet", ["ds"]),
    "statefulsets": ("StatefulSet", ["sts"]),
}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CORE_VERBS = {
    "pods": ALL_VERBS, "configmaps": ALL_VERBS, "nodes": ALL_VERBS, "events": ALL_VERBS, "secrets": ALL_VERBS,
    "serviceaccounts": ALL_VERBS, "endpoints": ALL_VERBS,
    "namespaces": ["create", "delete", "get", "list", "patch", "update", "watch"],
    "pods/binding": ["create"], "pods/status": ["get", "patch", "update"], "namespaces/finalize": ["update"],
    "namespaces/status": ["get", "patch", "update"], "nodes/status": ["get", "patch", "update"],
}


def test_core_discovery(api):
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    lst = client.CoreV1Api(api).get_api_resources()
    assert lst.group_version == "v1"
    by_name = {r.name: r for r in lst.resources}
    problems = []
    for name, (namespaced, kind, short, categories) in CORE_RESOURCES.items():
        r = by_name[name]
        got = (r.namespaced, r.kind, r.short_names, r.categories, r.singular_name)
        want = (namespaced, kind, short, categories, kind.lower())
        if got != want:
            problems.append((name, got, want))
    for name, verbs in CORE_VERBS.items():
        if name not in by_name or sorted(by_name[name].verbs) != verbs:
            problems.append((name, by_name[name].verbs if name in by_name else None, verbs))
    if "pods/binding" in by_name and by_name["pods/binding"].kind != "Binding":
        problems.append(("pods/binding kind", by_name["pods/binding"].kind, "Binding"))
    assert problems == []


def test_group_discovery(api):
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    for name in ("apps", "batch", "coordination.k8s.io", "events.k8s.io", "discovery.k8s.io"):
        assert name in groups and groups[name].preferred_version.version == "v1", name
    assert groups["apps"].preferred_version.group_version == "apps/v1"
    by_name = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    problems = []
    for name, (kind, short) in APPS_RESOURCES.items():
        r = by_name[name]
        got = (r.kind, r.short_names, r.categories, r.namespaced, sorted(r.verbs))
        if got != (kind, short, ["all"], True, ALL_VERBS):
            problems.append((name, got))
    scale = by_name["deployments/scale"]
    if (scale.group, scale.version, scale.kind, sorted(scale.verbs)) != ("autoscaling", "v1", "Scale",
                                                                          ["get", "patch", "update"]):
        problems.append(("deployments/scale", scale.group, scale.version, scale.kind, scale.verbs))
    jobs = {r.name: r for r in client.BatchV1Api(api).get_api_resources().resources}["jobs"]
    if jobs.categories != ["all"] or jobs.short_names:
        problems.append(("jobs", jobs.categories, jobs.short_names))
    assert problems == []


def test_aggregated_discovery(raw):
    code, headers, body = raw.get("/apis", headers={"Accept": AGGREGATED + ",application/json"})
    assert code == 200
    assert headers["content-type"].replace(" ", "") == AGGREGATED
    assert (body["kind"], body["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    groups = {g["metadata"]["name"]: g for g in body["items"]}
    v1 = next(v for v in groups["apps"]["versions"] if v["version"] == "v1")
    assert v1.get("freshness", "Current") == "Current"
    deploy = next(r for r in v1["resources"] if r["resource"] == "deployments")
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert (deploy["scope"], deploy["singularResource"], deploy["shortNames"], deploy["categories"]) == (
        "Namespaced", "deployment", ["deploy"], ["all"])
    assert sorted(deploy["verbs"]) == ALL_VERBS
    subs = {s["subresource"]: s for s in deploy["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert sorted(subs["status"]["verbs"]) == ["get", "patch", "update"]
    code, headers, body = raw.get("/api", headers={"Accept": AGGREGATED})
    assert code == 200 and body["kind"] == "APIGroupDiscoveryList"
    [core_group] = body["items"]
    assert not core_group["metadata"].get("name")
    [v] = core_group["versions"]
    resources = {r["resource"]: r for r in v["resources"]}
    pods = resources["pods"]
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert (pods["scope"], pods["shortNames"], pods["singularResource"]) == ("Namespaced", ["po"], "pod")
    assert resources["namespaces"]["scope"] == "Cluster" and resources["namespaces"]["shortNames"] == ["ns"]
    binding = {s["subresource"]: s for s in pods["subresources"]}["binding"]
    assert binding["verbs"] == ["create"] and binding["responseKind"]["kind"] == "Binding"
    # Without the aggregated media type the answer is the legacy list.
    code, headers, body = raw.get("/apis")
    assert code == 200 and body["kind"] == "APIGroupList" and headers["content-type"].startswith("application/json")
