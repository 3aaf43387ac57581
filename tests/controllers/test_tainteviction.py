"""taint-eviction-controller and DefaultTolerationSeconds admission, in `megaplane up` with Nodes no kubelet runs.

The Nodes are created by the test (no fleet), so a deleted pod stays
terminating and its DisruptionTarget condition can be read. Taints are set
with the Python client as an operator (or the node lifecycle controller)
would. Every wait polls for a state with a deadline.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional

import kubernetes
import pytest

from megaplane.controllers.nodelifecycle.records import Taint
from megaplane.controllers.tainteviction import matching_tolerations, min_toleration_seconds, tolerates
from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, start_server

KEY = "example.com/broken"


def test_toleration_matching_as_upstream() -> None:
    taint = Taint(key="k", effect="NoExecute", value="v")
    assert tolerates({"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"}, taint)
    assert tolerates({"key": "k", "value": "v"}, taint)  # operator defaults to Equal, effect empty matches all
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert tolerates({"operator": "Exists"}, taint)  # empty key with Exists tolerates everything
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": "k", "operator": "Lt"}, taint)
    other = Taint(key="o", effect="NoExecute")
    ok, used = matching_tolerations([taint, other], [{"key": "k", "operator": "Exists", "tolerationSeconds": 5},
                                                     {"key": "o", "operator": "Exists", "tolerationSeconds": 3}])
    assert ok and min_toleration_seconds(used) == 3
    assert matching_tolerations([taint, other], [{"key": "k", "operator": "Exists"}]) == (False, [])
    assert min_toleration_seconds([{"key": "k"}]) == -1  # no tolerationSeconds: forever
    assert min_toleration_seconds([{"key": "k", "tolerationSeconds": -5}, {"key": "o"}]) == 0


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-tainteviction-")
    c = start_server(root, "up", ["--nodes", "0", "--scheduler=false", "--default-not-ready-toleration-seconds", "7",
                                  "--default-unreachable-toleration-seconds", "9",
                                  "--controllers", "tainteviction,namespace,serviceaccount"])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def core(up: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(up.api_client())


def _node(core: kubernetes.client.CoreV1Api, name: str) -> None:
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})


def _pod(core: kubernetes.client.CoreV1Api, name: str, node: str,
         tolerations: Optional[List[Dict[str, Any]]] = None) -> Any:
    spec: Dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                                  "spec": spec})


def _taint(core: kubernetes.client.CoreV1Api, node: str, on: bool) -> None:
    taints = [{"key": KEY, "value": "yes", "effect": "NoExecute"}] if on else []
    core.patch_node(node, {"spec": {"taints": taints}})


def _deleting(core: kubernetes.client.CoreV1Api, name: str) -> Any:
    pod = core.read_namespaced_pod(name, "default")
    return pod if pod.metadata.deletion_timestamp is not None else None


def _events(core: kubernetes.client.CoreV1Api, pod: str) -> List[str]:
    return [e.message for e in core.list_namespaced_event("default", field_selector=f"involvedObject.name={pod}").items
            if e.reason == "TaintManagerEviction"]


def test_default_toleration_seconds_admission(core: kubernetes.client.CoreV1Api) -> None:
    _node(core, "adm")
    plain = _pod(core, "adm-plain", "adm")
    assert sorted((t.key, t.operator, t.effect, t.toleration_seconds) for t in plain.spec.tolerations) == [
        ("node.kubernetes.io/not-ready", "Exists", "NoExecute", 7),
        ("node.kubernetes.io/unreachable", "Exists", "NoExecute", 9)]
    everything = _pod(core, "adm-all", "adm", [{"operator": "Exists"}])  # tolerates every taint: nothing added
    assert [(t.key, t.operator) for t in everything.spec.tolerations] == [(None, "Exists")]
    own = _pod(core, "adm-own", "adm", [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                         "effect": "NoExecute", "tolerationSeconds": 1}])
    assert sorted((t.key, t.toleration_seconds) for t in own.spec.tolerations) == [
        ("node.kubernetes.io/not-ready", 1), ("node.kubernetes.io/unreachable", 9)]


def test_untolerated_taint_evicts_at_once_with_event_and_disruption_target(core: kubernetes.client.CoreV1Api) -> None:
    _node(core, "n1")
    _pod(core, "now", "n1")
    _pod(core, "forever", "n1", [{"key": KEY, "operator": "Exists", "effect": "NoExecute"}])
    _taint(core, "n1", True)
    pod = eventually(lambda: _deleting(core, "now"), "the untolerating pod deleted")
    target = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (target.status, target.reason, target.message) == (
        "True", "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")
    eventually(lambda: "Marking for deletion Pod default/now" in _events(core, "now"), "the eviction event")
    # A toleration without tolerationSeconds tolerates forever: the sibling stays, and no event names it.
    assert core.read_namespaced_pod("forever", "default").metadata.deletion_timestamp is None
    assert _events(core, "forever") == []


def test_toleration_seconds_delay_the_eviction(core: kubernetes.client.CoreV1Api) -> None:
    _node(core, "n2")
    _pod(core, "timed", "n2", [{"key": KEY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}])
    tainted = time.monotonic()
    _taint(core, "n2", True)
    eventually(lambda: _deleting(core, "timed"), "the pod deleted after its toleration", timeout=30, every=0.05)
    assert time.monotonic() - tainted >= 2.0  # never before tolerationSeconds (a lower bound: cannot be early)
    assert "Marking for deletion Pod default/timed" in _events(core, "timed")


def test_taint_removed_in_time_cancels_the_eviction(core: kubernetes.client.CoreV1Api) -> None:
    _node(core, "n3")
    _pod(core, "spared", "n3", [{"key": KEY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}])
    _taint(core, "n3", True)
    tainted = time.monotonic()
    _pod(core, "probe", "n3")  # evicted at once: proof the controller has seen the taint
    eventually(lambda: _deleting(core, "probe"), "the probe pod evicted")
    _taint(core, "n3", False)
    eventually(lambda: "Cancelling deletion of Pod default/spared" in _events(core, "spared"), "the cancel event")
    # Past the original deadline (3 s after the taint) the pod is still there.
    while time.monotonic() < tainted + 4.0:
        assert core.read_namespaced_pod("spared", "default").metadata.deletion_timestamp is None
        time.sleep(0.25)
    assert _events(core, "spared") == ["Cancelling deletion of Pod default/spared"]


def test_pod_added_to_a_tainted_node_and_toleration_changes(core: kubernetes.client.CoreV1Api) -> None:
    _node(core, "n4")
    _taint(core, "n4", True)
    _pod(core, "late", "n4", [{"key": KEY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}])
    eventually(lambda: _deleting(core, "late"), "a pod bound to an already tainted node evicted after 1 s")
