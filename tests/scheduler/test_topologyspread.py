"""PodTopologySpread's Filter and Score against upstream's plugin test cases (v1.32), as data.

Scenarios follow kubernetes/kubernetes
pkg/scheduler/framework/plugins/podtopologyspread/{filtering,scoring}_test.go
(TestSingleConstraint, TestMultipleConstraints, TestPodTopologySpreadScore,
minDomains and the node inclusion policies), written anew: nodes, existing
pods, the incoming pod, and the expected feasible set (with the reason per
failing node) or the expected normalised scores. Each runs against the
plugin functions over a real NodeTable.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from megaplane.scheduler.nodetable import NodeTable
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.topologyspread import (
    REASON_CONSTRAINTS_NOT_MATCH,
    REASON_NODE_LABEL_NOT_MATCH,
    pod_topology_spread,
    pod_topology_spread_score,
)

Obj = Dict[str, Any]
HOST = "kubernetes.io/hostname"
OK, SKEW, LABEL = "ok", "skew", "label"


def node(name: str, taints: Sequence[Obj] = (), **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": {k.replace("__", "/").replace("_", "."): v
                                                   for k, v in labels.items()}},
            "spec": {"taints": list(taints)},
            "status": {"allocatable": {"cpu": "100", "memory": "100Gi", "pods": "110"}}}


def zn(name: str, zone: str, **extra: str) -> Obj:
    """A node with upstream's test labels zone=<zone>, node=<name>."""
    return node(name, zone=zone, node=name, **extra)


def hn(name: str, **extra: str) -> Obj:
    """A node labelled kubernetes.io/hostname=<name>."""
    return {**node(name), "metadata": {"name": name, "labels": {HOST: name, **extra}}}


def existing(name: str, on: str, ns: str = "default", terminating: bool = False, **labels: str) -> Tuple[Obj, str]:
    meta: Obj = {"name": name, "namespace": ns, "uid": name, "labels": labels}
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": on, "containers": [{"name": "c"}]}}, on


def exists(*keys: str) -> Obj:
    return {"matchExpressions": [{"key": k, "operator": "Exists"} for k in keys]}


def spread(skew: int, key: str, when: str = "DoNotSchedule", selector: Optional[Obj] = None,
           **extra: Any) -> Obj:
    c: Obj = {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when, **extra}
    if selector is not None:
        c["labelSelector"] = selector
    return c


def incoming(*constraints: Obj, labels: Optional[Dict[str, str]] = None, **spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "p", "labels": labels or {"foo": ""}},
            "spec": {"containers": [{"name": "c"}], "topologySpreadConstraints": list(constraints), **spec}}


def table_of(nodes: Sequence[Obj], pods: Sequence[Tuple[Obj, str]]) -> NodeTable:
    t = NodeTable(capacity=2)
    for n in nodes:
        t.upsert_node(n)
    for p, on in pods:
        t.add_pod(parse_pod(p), on)
    return t


def filter_outcome(t: NodeTable, pod: Obj) -> Dict[str, str]:
    info = parse_pod(pod)
    result = pod_topology_spread(t, info)
    names = [t.names[i] for i in range(t.size) if t.valid[i]]
    if result is None:
        return {n: OK for n in names}
    ok, why = result
    fail = ~ok & t.valid[: t.size]
    out = {}
    by_reason = {r: m for r, m in why(fail)}
    for i in range(t.size):
        if not t.valid[i]:
            continue
        if ok[i]:
            out[t.names[i]] = OK
        elif by_reason[REASON_NODE_LABEL_NOT_MATCH][i]:
            out[t.names[i]] = LABEL
        else:
            assert by_reason[REASON_CONSTRAINTS_NOT_MATCH][i]
            out[t.names[i]] = SKEW
    return out


FOUR = [zn("node-a", "zone1"), zn("node-b", "zone1"), zn("node-x", "zone2"), zn("node-y", "zone2")]
SPREAD_2103 = [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""),
               existing("p-b1", "node-b", foo=""), existing("p-y1", "node-y", foo=""),
               existing("p-y2", "node-y", foo=""), existing("p-y3", "node-y", foo="")]

FILTER_CASES: List[Tuple[str, Sequence[Obj], Sequence[Tuple[Obj, str]], Obj, Dict[str, str]]] = [
    ("no existing pods", FOUR, [], incoming(spread(1, "zone", selector=exists("foo"))),
     {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
    ("no existing pods, incoming pod doesn't match itself", FOUR, [],
     incoming(spread(1, "zone", selector=exists("bar"))), {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
    ("existing pods in a different namespace do not count", FOUR,
     [existing("p-a1", "node-a", ns="ns1", foo=""), existing("p-b1", "node-a", ns="ns2", foo=""),
      existing("p-x1", "node-x", foo=""), existing("p-y1", "node-y", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"))), {"node-a": OK, "node-b": OK, "node-x": SKEW, "node-y": SKEW}),
    ("pods spread across zones as 3/3, all nodes fit", FOUR, SPREAD_2103,
     incoming(spread(1, "zone", selector=exists("foo"))), {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
    ("pods spread across zones as 1/2 due to absence of label 'zone' on node-b",
     [zn("node-a", "zone1"), node("node-b", zon="zone1", node="node-b"), zn("node-x", "zone2"), zn("node-y", "zone2")],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo=""), existing("p-x1", "node-x", foo=""),
      existing("p-y1", "node-y", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"))),
     {"node-a": OK, "node-b": LABEL, "node-x": SKEW, "node-y": SKEW}),
    ("pod cannot be scheduled as all nodes don't have label 'rack'", [zn("node-a", "zone1"), zn("node-x", "zone2")], [],
     incoming(spread(1, "rack", selector=exists("foo"))), {"node-a": LABEL, "node-x": LABEL}),
    ("pods spread across nodes as 2/1/0/3, only node-x fits", FOUR, SPREAD_2103,
     incoming(spread(1, "node", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": SKEW}),
    ("pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit", FOUR, SPREAD_2103,
     incoming(spread(2, "node", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": OK, "node-x": OK, "node-y": SKEW}),
    ("pods spread across nodes as 2/1/0/3, but pod doesn't match itself", FOUR, SPREAD_2103,
     incoming(spread(1, "node", selector=exists("foo")), labels={"bar": ""}),
     {"node-a": SKEW, "node-b": OK, "node-x": OK, "node-y": SKEW}),
    ("incoming pod has nodeAffinity, pods spread as 2/~1~/~0~/3, hence node-a fits", FOUR, SPREAD_2103,
     incoming(spread(1, "node", selector=exists("foo")), affinity={"nodeAffinity": {
         "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
             {"key": "node", "operator": "In", "values": ["node-a", "node-y"]}]}]}}}),
     {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": SKEW}),
    ("terminating Pods should be excluded", [node("node-a", node="node-a"), node("node-b", node="node-b")],
     [existing("p-a", "node-a", terminating=True, foo=""), existing("p-b", "node-b", foo="")],
     incoming(spread(1, "node", selector=exists("foo"))), {"node-a": OK, "node-b": SKEW}),
    # TestMultipleConstraints
    ("two Constraints on zone and node, spreads = [3/3, 2/1/0/3]", FOUR, SPREAD_2103,
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": SKEW}),
    ("two Constraints on zone and node, spreads = [3/4, 2/1/0/4]", FOUR,
     SPREAD_2103 + [existing("p-y4", "node-y", foo="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": SKEW, "node-x": SKEW, "node-y": SKEW}),
    ("Constraints hold different labelSelectors, spreads = [1/0, 1/0/0/1]", FOUR,
     [existing("p-a1", "node-a", foo=""), existing("p-y1", "node-y", bar="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("bar")),
              labels={"foo": "", "bar": ""}),
     {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": SKEW}),
    ("Constraints hold different labelSelectors, spreads = [1/0, 0/0/1/1]", FOUR,
     [existing("p-a1", "node-a", foo=""), existing("p-x1", "node-x", bar=""), existing("p-y1", "node-y", bar="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("bar")),
              labels={"foo": "", "bar": ""}),
     {"node-a": SKEW, "node-b": SKEW, "node-x": SKEW, "node-y": SKEW}),
    ("Constraints hold different labelSelectors, spreads = [2/3, 1/0/0/1]", FOUR,
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo="", bar=""),
      existing("p-y1", "node-y", foo=""), existing("p-y2", "node-y", foo="", bar=""),
      existing("p-y3", "node-y", foo="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("bar")),
              labels={"foo": "", "bar": ""}),
     {"node-a": SKEW, "node-b": OK, "node-x": SKEW, "node-y": SKEW}),
    ("Constraints hold different labelSelectors but pod doesn't match itself on 'zone' constraint", FOUR,
     [existing("p-a1", "node-a", foo=""), existing("p-x1", "node-x", bar=""), existing("p-y1", "node-y", bar="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("bar")),
              labels={"bar": ""}),
     {"node-a": OK, "node-b": OK, "node-x": SKEW, "node-y": SKEW}),
    ("two Constraints on zone and node, absence of label 'node' on node-x, spreads = [1/1, 1/0/0/1]",
     [zn("node-a", "zone1"), zn("node-b", "zone1"), node("node-x", zone="zone2"), zn("node-y", "zone2")],
     [existing("p-a1", "node-a", foo=""), existing("p-y3", "node-y", foo="")],
     incoming(spread(1, "zone", selector=exists("foo")), spread(1, "node", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": OK, "node-x": LABEL, "node-y": SKEW}),
    # minDomains: fewer eligible domains than minDomains make the global minimum 0.
    ("minDomains 3 with 2 zones: global minimum is 0, zones with a pod at maxSkew are full",
     FOUR, [existing("p-a1", "node-a", foo=""), existing("p-x1", "node-x", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"), minDomains=3)),
     {"node-a": SKEW, "node-b": SKEW, "node-x": SKEW, "node-y": SKEW}),
    ("minDomains 2 with 2 zones: as without it", FOUR,
     [existing("p-a1", "node-a", foo=""), existing("p-x1", "node-x", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"), minDomains=2)),
     {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
    ("minDomains 3, maxSkew 2, 2 zones with 1/0: only zone2 fits", FOUR, [existing("p-a1", "node-a", foo="")],
     incoming(spread(2, "zone", selector=exists("foo"), minDomains=3)),
     {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
    ("minDomains 3, maxSkew 1, zones 1/0: zone1 full", FOUR, [existing("p-a1", "node-a", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"), minDomains=3)),
     {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": OK}),
    # nodeAffinityPolicy / nodeTaintsPolicy decide which nodes' domains count.
    ("NodeAffinityPolicy Honor: zone3 (not selected) does not count as the minimum",
     [zn("node-a", "zone1", foo=""), zn("node-b", "zone2", foo=""), zn("node-c", "zone3")],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, "zone", selector=exists("foo")), nodeSelector={"foo": ""}),
     {"node-a": OK, "node-b": OK, "node-c": OK}),
    ("NodeAffinityPolicy Ignore: zone3's 0 is the minimum",
     [zn("node-a", "zone1", foo=""), zn("node-b", "zone2", foo=""), zn("node-c", "zone3")],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"), nodeAffinityPolicy="Ignore"), nodeSelector={"foo": ""}),
     {"node-a": SKEW, "node-b": SKEW, "node-c": OK}),
    ("NodeTaintsPolicy Honor: the tainted zone does not count",
     [zn("node-a", "zone1"), zn("node-b", "zone2"),
      zn("node-c", "zone3") | {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"), nodeTaintsPolicy="Honor")),
     {"node-a": OK, "node-b": OK, "node-c": OK}),
    ("NodeTaintsPolicy Ignore (default): the tainted zone's 0 is the minimum",
     [zn("node-a", "zone1"), zn("node-b", "zone2"),
      zn("node-c", "zone3") | {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, "zone", selector=exists("foo"))),
     {"node-a": SKEW, "node-b": SKEW, "node-c": OK}),
    # matchLabelKeys: the pod's value of each key joins the selector.
    ("matchLabelKeys: only pods of the same revision count", FOUR,
     [existing("p-a1", "node-a", foo="", rev="1"), existing("p-a2", "node-a", foo="", rev="1"),
      existing("p-x1", "node-x", foo="", rev="2")],
     incoming(spread(1, "zone", selector=exists("foo"), matchLabelKeys=["rev"]), labels={"foo": "", "rev": "2"}),
     {"node-a": OK, "node-b": OK, "node-x": SKEW, "node-y": SKEW}),
    ("matchLabelKeys the pod lacks add nothing", FOUR,
     [existing("p-a1", "node-a", foo="", rev="1"), existing("p-a2", "node-a", foo="", rev="1")],
     incoming(spread(1, "zone", selector=exists("foo"), matchLabelKeys=["rev"])),
     {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": OK}),
    ("ScheduleAnyway constraints are not filtered", FOUR, SPREAD_2103,
     incoming(spread(1, "node", when="ScheduleAnyway", selector=exists("foo"))),
     {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}),
]


@pytest.mark.parametrize("name,nodes,pods,pod,want", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter(name: str, nodes: Sequence[Obj], pods: Sequence[Tuple[Obj, str]], pod: Obj,
                want: Dict[str, str]) -> None:
    assert filter_outcome(table_of(nodes, pods), pod) == want


def scores(nodes: Sequence[Obj], failed: Sequence[Obj], pods: Sequence[Tuple[Obj, str]], pod: Obj,
           objects: Sequence[Tuple[str, Obj]] = ()) -> Dict[str, int]:
    t = table_of(list(nodes) + list(failed), pods)
    for kind, obj in objects:
        t.objects.upsert(kind, obj)
    cand = np.array([t.index[n["metadata"]["name"]] for n in nodes], dtype=np.int64)
    got = pod_topology_spread_score(t, parse_pod(pod), cand)
    return {t.names[s]: int(v) for s, v in zip(cand, got)}


FOO = exists("foo")
BAR = exists("bar")
HOSTS4 = [hn("node-a"), hn("node-b"), hn("node-c"), hn("node-d")]
P4321 = [existing(f"p-{n}{i}", f"node-{n}", foo="") for n, k in (("a", 4), ("b", 3), ("c", 2), ("d", 1))
         for i in range(k)]
SOFT = "ScheduleAnyway"


def znh(name: str, zone: str) -> Obj:
    return {**node(name), "metadata": {"name": name, "labels": {"zone": zone, HOST: name}}}


SCORE_CASES: List[Tuple[str, Sequence[Obj], Sequence[Obj], Sequence[Tuple[Obj, str]], Obj, Dict[str, int]]] = [
    ("one constraint on node, no existing pods", [hn("node-a"), hn("node-b")], [], [],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 100, "node-b": 100}),
    ("one constraint on node, only one node is candidate", [hn("node-a")], [hn("node-b")],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 100}),
    ("one constraint on node, all nodes have the same number of matching pods", [hn("node-a"), hn("node-b")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="")],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 100, "node-b": 100}),
    ("one constraint on node, all 4 nodes are candidates", HOSTS4, [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-d1", "node-d", foo=""), existing("p-d2", "node-d", foo=""), existing("p-d3", "node-d", foo="")],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 20, "node-b": 60, "node-c": 100, "node-d": 0}),
    ("one constraint on node, null selector", HOSTS4, [],
     [existing("p-a1", "node-a", foo=""), existing("p-d1", "node-d", foo="")],
     incoming(spread(1, HOST, SOFT, None)), {"node-a": 100, "node-b": 100, "node-c": 100, "node-d": 100}),
    ("one constraint on node, all 4 nodes are candidates, maxSkew=2", HOSTS4, [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-d1", "node-d", foo=""), existing("p-d2", "node-d", foo=""), existing("p-d3", "node-d", foo="")],
     incoming(spread(2, HOST, SOFT, FOO)), {"node-a": 33, "node-b": 66, "node-c": 100, "node-d": 16}),
    ("one constraint on node, all 4 nodes are candidates, maxSkew=3", HOSTS4, [], P4321,
     incoming(spread(3, HOST, SOFT, FOO)), {"node-a": 44, "node-b": 66, "node-c": 77, "node-d": 100}),
    ("one constraint on node, 3 out of 4 nodes are candidates", [hn("node-a"), hn("node-b"), hn("node-x")],
     [hn("node-y")],
     [existing(f"p-a{i}", "node-a", foo="") for i in range(4)] + [existing(f"p-b{i}", "node-b", foo="")
                                                                  for i in range(2)]
     + [existing("p-x1", "node-x", foo="")] + [existing(f"p-y{i}", "node-y", foo="") for i in range(3)],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 33, "node-b": 83, "node-x": 100}),
    ("one constraint on node, 3 out of 4 nodes are candidates, one node doesn't match topology key",
     [hn("node-a"), {**node("node-b"), "metadata": {"name": "node-b", "labels": {"n": "node-b"}}}, hn("node-x")],
     [hn("node-y")],
     [existing(f"p-a{i}", "node-a", foo="") for i in range(4)] + [existing(f"p-b{i}", "node-b", foo="")
                                                                  for i in range(2)]
     + [existing("p-x1", "node-x", foo="")] + [existing(f"p-y{i}", "node-y", foo="") for i in range(3)],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 16, "node-b": 0, "node-x": 100}),
    ("one constraint on zone, 3 out of 4 nodes are candidates",
     [znh("node-a", "zone1"), znh("node-b", "zone1"), znh("node-x", "zone2")], [znh("node-y", "zone2")],
     [existing(f"p-a{i}", "node-a", foo="") for i in range(4)] + [existing(f"p-b{i}", "node-b", foo="")
                                                                  for i in range(2)]
     + [existing("p-x1", "node-x", foo="")] + [existing(f"p-y{i}", "node-y", foo="") for i in range(3)],
     incoming(spread(1, "zone", SOFT, FOO)), {"node-a": 75, "node-b": 75, "node-x": 100}),
    ("two Constraints on zone and node, 2 out of 4 nodes are candidates",
     [znh("node-a", "zone1"), znh("node-x", "zone2")], [znh("node-b", "zone1"), znh("node-y", "zone2")],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-x1", "node-x", foo=""), existing("p-x2", "node-x", foo="")]
     + [existing(f"p-y{i}", "node-y", foo="") for i in range(4)],
     incoming(spread(1, "zone", SOFT, FOO), spread(1, HOST, SOFT, FOO)), {"node-a": 100, "node-x": 63}),
    ("two Constraints on zone and node, with different labelSelectors",
     [znh("node-a", "zone1"), znh("node-b", "zone1"), znh("node-x", "zone2"), znh("node-y", "zone2")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="", bar=""),
      existing("p-y1", "node-y", foo=""), existing("p-y2", "node-y", bar="")],
     incoming(spread(1, "zone", SOFT, FOO), spread(1, HOST, SOFT, BAR), labels={"foo": "", "bar": ""}),
     {"node-a": 60, "node-b": 20, "node-x": 100, "node-y": 60}),
    ("two Constraints on zone and node, with different labelSelectors, some nodes have 0 pods",
     [znh("node-a", "zone1"), znh("node-b", "zone1"), znh("node-x", "zone2"), znh("node-y", "zone2")], [],
     [existing("p-b1", "node-b", bar=""), existing("p-x1", "node-x", foo=""),
      existing("p-y1", "node-y", foo="", bar="")],
     incoming(spread(1, "zone", SOFT, FOO), spread(1, HOST, SOFT, BAR), labels={"foo": "", "bar": ""}),
     {"node-a": 100, "node-b": 60, "node-x": 40, "node-y": 0}),
    ("two Constraints on zone and node, with different labelSelectors, 3 out of 4 nodes are candidates",
     [znh("node-a", "zone1"), znh("node-b", "zone1"), znh("node-x", "zone2")], [znh("node-y", "zone2")],
     [existing("p-a1", "node-a", foo=""), existing("p-b1", "node-b", foo="", bar=""),
      existing("p-y1", "node-y", foo=""), existing("p-y2", "node-y", bar="")],
     incoming(spread(1, "zone", SOFT, FOO), spread(1, HOST, SOFT, BAR), labels={"foo": "", "bar": ""}),
     {"node-a": 50, "node-b": 25, "node-x": 100}),
    ("existing pods in a different namespace do not count", [hn("node-a"), hn("node-b")], [],
     [existing("p-a1", "node-a", ns="ns1", foo=""), existing("p-a2", "node-a", foo=""),
      existing("p-b1", "node-b", foo=""), existing("p-b2", "node-b", foo="")],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 100, "node-b": 33}),
    ("terminating Pods should be excluded", [hn("node-a"), hn("node-b")], [],
     [existing("p-a", "node-a", terminating=True, foo=""), existing("p-b", "node-b", foo="")],
     incoming(spread(1, HOST, SOFT, FOO)), {"node-a": 100, "node-b": 0}),
    ("minDomains has no effect when ScheduleAnyway",
     [node("node-a", node="node-a"), node("node-b", node="node-b"), node("node-c", node="node-c")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-b2", "node-b", foo=""), existing("p-c1", "node-c", foo="")],
     incoming(spread(2, "node", SOFT, FOO, minDomains=10)), {"node-a": 75, "node-b": 75, "node-c": 100}),
    ("NodeAffinityPolicy honored with labelSelectors",
     [node("node-a", node="node-a", foo=""), node("node-b", node="node-b", foo=""), node("node-c", node="node-c")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-c1", "node-c", foo="")],
     incoming(spread(1, "node", SOFT, FOO), nodeSelector={"foo": ""}), {"node-a": 0, "node-b": 33, "node-c": 100}),
    ("NodeAffinityPolicy ignored with labelSelectors",
     [node("node-a", node="node-a", foo=""), node("node-b", node="node-b", foo=""), node("node-c", node="node-c")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-c1", "node-c", foo="")],
     incoming(spread(1, "node", SOFT, FOO, nodeAffinityPolicy="Ignore"), nodeSelector={"foo": ""}),
     {"node-a": 66, "node-b": 100, "node-c": 100}),
    ("NodeTaintsPolicy honored",
     [node("node-a", node="node-a"), node("node-b", node="node-b"),
      node("node-c", taints=[{"key": "foo", "value": "", "effect": "NoSchedule"}], node="node-c")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-c1", "node-c", foo="")],
     incoming(spread(1, "node", SOFT, FOO, nodeTaintsPolicy="Honor")), {"node-a": 0, "node-b": 33, "node-c": 100}),
    ("NodeTaintsPolicy ignored",
     [node("node-a", node="node-a"), node("node-b", node="node-b"),
      node("node-c", taints=[{"key": "foo", "value": "", "effect": "NoSchedule"}], node="node-c")], [],
     [existing("p-a1", "node-a", foo=""), existing("p-a2", "node-a", foo=""), existing("p-b1", "node-b", foo=""),
      existing("p-c1", "node-c", foo="")],
     incoming(spread(1, "node", SOFT, FOO)), {"node-a": 66, "node-b": 100, "node-c": 100}),
    ("matchLabelKeys narrow the selector to the pod's revision", HOSTS4, [],
     [existing("p-a1", "node-a", foo="", rev="1"), existing("p-a2", "node-a", foo="", rev="2"),
      existing("p-b1", "node-b", foo="", rev="2")],
     incoming(spread(1, HOST, SOFT, FOO, matchLabelKeys=["rev"]), labels={"foo": "", "rev": "1"}),
     {"node-a": 0, "node-b": 100, "node-c": 100, "node-d": 100}),
]


@pytest.mark.parametrize("name,nodes,failed,pods,pod,want", SCORE_CASES, ids=[c[0] for c in SCORE_CASES])
def test_score(name: str, nodes: Sequence[Obj], failed: Sequence[Obj], pods: Sequence[Tuple[Obj, str]], pod: Obj,
               want: Dict[str, int]) -> None:
    assert scores(nodes, failed, pods, pod) == want


def service(name: str, ns: str = "default", **selector: str) -> Tuple[str, Obj]:
    return "services", {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector}}


def replica_set(name: str, ns: str = "default", **labels: str) -> Tuple[str, Obj]:
    return "replicasets", {"metadata": {"name": name, "namespace": ns},
                           "spec": {"selector": {"matchLabels": labels}}}


def test_system_defaulting_nodes_without_zone_pods_match_service() -> None:
    # Upstream: "system defaulting, nodes don't have zone, pods match service": same scores as one hostname
    # constraint with maxSkew 3 (the zone constraint adds the same to every node).
    got = scores(HOSTS4, [], P4321, incoming(), objects=[service("svc", foo="")])
    assert got == {"node-a": 44, "node-b": 66, "node-c": 77, "node-d": 100}


def test_system_defaulting_without_a_selecting_object_scores_nothing() -> None:
    assert scores(HOSTS4, [], P4321, incoming()) == {"node-a": 0, "node-b": 0, "node-c": 0, "node-d": 0}
    # A Service in another namespace, or selecting other labels, does not select the pod.
    got = scores(HOSTS4, [], P4321, incoming(), objects=[service("a", ns="other", foo=""), service("b", app="x")])
    assert got == {"node-a": 0, "node-b": 0, "node-c": 0, "node-d": 0}


def test_system_defaulting_replica_set_and_zones() -> None:
    # Zones z1 = {a, b}, z2 = {c, d}; the ReplicaSet's pods: a 2, b 0, c 1, d 1 -> zone counts 2 / 2.
    nodes = [znh("node-a", "z1"), znh("node-b", "z1"), znh("node-c", "z2"), znh("node-d", "z2")]
    nodes = [{**n, "metadata": {**n["metadata"], "labels": {**n["metadata"]["labels"],
                                                            "topology.kubernetes.io/zone":
                                                            n["metadata"]["labels"]["zone"]}}} for n in nodes]
    pods = [existing("r1", "node-a", app="web"), existing("r2", "node-a", app="web"),
            existing("r3", "node-c", app="web"), existing("r4", "node-d", app="web"),
            existing("other", "node-b", app="db")]
    got = scores(nodes, [], pods, incoming(labels={"app": "web"}), objects=[replica_set("web", app="web")])
    # hostname (maxSkew 3, 4 nodes): cnt*log(6)+2; zone (maxSkew 5, 2 zones): 2*log(4)+4 for all.
    import math
    raw = {n: round(c * math.log(6) + 2 + 2 * math.log(4) + 4) for n, c in
           (("node-a", 2), ("node-b", 0), ("node-c", 1), ("node-d", 1))}
    lo, hi = min(raw.values()), max(raw.values())
    assert got == {n: 100 * (hi + lo - s) // hi for n, s in raw.items()}
    assert got["node-b"] == 100 and got["node-a"] < got["node-c"] == got["node-d"] < 100
    # The default constraints are ScheduleAnyway: nothing is filtered.
    t = table_of(nodes, pods)
    t.objects.upsert(*replica_set("web", app="web"))
    assert pod_topology_spread(t, parse_pod(incoming(labels={"app": "web"}))) is None


def test_counts_follow_placements_and_removals_incrementally() -> None:
    t = table_of(FOUR, [])
    pod = incoming(spread(1, "zone", selector=FOO))
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}
    first, _ = existing("p1", "node-a", foo="")
    t.add_pod(parse_pod(first), "node-a", assumed=True)
    assert filter_outcome(t, pod) == {"node-a": SKEW, "node-b": SKEW, "node-x": OK, "node-y": OK}
    t.add_pod(parse_pod(existing("p2", "node-y", foo="")[0]), "node-y", assumed=True)
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}
    t.remove_pod("default/p1")
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-x": SKEW, "node-y": SKEW}
    # A relabelled pod stops counting; a node going away takes its pods' counts with it.
    relabelled, _ = existing("p2", "node-y", other="")
    t.add_pod(parse_pod(relabelled), "node-y")
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-x": OK, "node-y": OK}
    t.add_pod(parse_pod(existing("p3", "node-x", foo="")[0]), "node-x")
    t.remove_node("node-x")
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-y": OK}
    t.upsert_node(zn("node-x", "zone2"))
    assert filter_outcome(t, pod) == {"node-a": OK, "node-b": OK, "node-x": SKEW, "node-y": SKEW}


def test_default_selector_merges_services_replica_sets_and_stateful_sets() -> None:
    from megaplane.scheduler.labels import LabelRequirement
    from megaplane.scheduler.objects import ClusterObjects

    objects = ClusterObjects()
    objects.upsert(*service("svc", app="web"))
    objects.upsert(*service("other-ns", ns="elsewhere", app="web"))
    objects.upsert("services", {"metadata": {"name": "nil-selector", "namespace": "default"}, "spec": {}})
    objects.upsert(*replica_set("rs", app="web", tier="front"))
    objects.upsert("statefulsets", {"metadata": {"name": "ss", "namespace": "default"},
                                    "spec": {"selector": {"matchExpressions": [
                                        {"key": "tier", "operator": "In", "values": ["front"]}]}}})
    objects.upsert("replicasets", {"metadata": {"name": "empty", "namespace": "default"},
                                   "spec": {"selector": {}}})
    got = objects.default_selector("default", {"app": "web", "tier": "front"})
    assert set(got.requirements) == {LabelRequirement("app", "In", ("web",)), LabelRequirement("tier", "In", ("front",))}
    # Only the Service selects a pod without tier=front; nothing selects a db pod.
    assert objects.default_selector("default", {"app": "web"}).requirements == (LabelRequirement("app", "In", ("web",)),)
    assert objects.default_selector("default", {"app": "db"}).empty
    # Deleting the Service drops its part (the cache follows changes).
    objects.delete("services", {"metadata": {"name": "svc", "namespace": "default"}})
    assert objects.default_selector("default", {"app": "web"}).empty
