"""InterPodAffinity's Filter and Score against upstream's plugin test cases (v1.32), as data.

Scenarios follow kubernetes/kubernetes
pkg/scheduler/framework/plugins/interpodaffinity/{filtering,scoring}_test.go
(TestRequiredAffinitySingleNode / MultipleNodes, TestPreferredAffinity and
its symmetry and namespaceSelector cases), written anew, each run against
the plugin functions over a real NodeTable.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from megaplane.scheduler.interpodaffinity import (
    REASON_AFFINITY_NOT_MATCH,
    REASON_ANTI_AFFINITY_NOT_MATCH,
    REASON_EXISTING_ANTI_AFFINITY_NOT_MATCH,
    inter_pod_affinity,
    inter_pod_affinity_score,
)
from megaplane.scheduler.nodetable import NodeTable
from megaplane.scheduler.podspec import parse_pod

Obj = Dict[str, Any]
OK, AFF, ANTI, EXISTING = "ok", "affinity", "anti-affinity", "existing anti-affinity"
REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"


def node(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "100", "memory": "100Gi", "pods": "110"}}}


def pod(name: str = "p", on: str = "", ns: str = "default", labels: Optional[Dict[str, str]] = None,
        affinity: Optional[Obj] = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c"}]}
    if on:
        spec["nodeName"] = on
    if affinity:
        spec["affinity"] = affinity
    return {"metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels or {}}, "spec": spec}


def expr(key: str, op: str, *values: str) -> Obj:
    e: Obj = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def term(key: str, *exprs: Obj, namespaces: Optional[List[str]] = None, ns_selector: Optional[Obj] = None) -> Obj:
    t: Obj = {"labelSelector": {"matchExpressions": list(exprs)}, "topologyKey": key}
    if namespaces is not None:
        t["namespaces"] = namespaces
    if ns_selector is not None:
        t["namespaceSelector"] = ns_selector
    return t


def weighted(weight: int, t: Obj) -> Obj:
    return {"weight": weight, "podAffinityTerm": t}


def affinity(required: Sequence[Obj] = (), anti: Sequence[Obj] = (), preferred: Sequence[Obj] = (),
             preferred_anti: Sequence[Obj] = ()) -> Obj:
    out: Obj = {}
    if required or preferred:
        out["podAffinity"] = {REQ: list(required), PREF: list(preferred)}
    if anti or preferred_anti:
        out["podAntiAffinity"] = {REQ: list(anti), PREF: list(preferred_anti)}
    return out


NAMESPACES = [("subteam1.team1", {"team": "team1"}), ("subteam2.team1", {"team": "team1"}),
              ("subteam1.team2", {"team": "team2"}), ("subteam2.team2", {"team": "team2"})]


def table_of(nodes: Sequence[Obj], pods: Sequence[Obj]) -> NodeTable:
    t = NodeTable(capacity=2)
    for name, labels in NAMESPACES:
        t.objects.upsert("namespaces", {"metadata": {"name": name, "labels": labels}})
    for n in nodes:
        t.upsert_node(n)
    for p in pods:
        t.add_pod(parse_pod(p), p["spec"]["nodeName"])
    return t


def filter_outcome(nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj) -> Dict[str, str]:
    t = table_of(nodes, pods)
    result = inter_pod_affinity(t, parse_pod(incoming))
    if result is None:
        return {t.names[i]: OK for i in range(t.size) if t.valid[i]}
    ok, why = result
    fail = ~ok & t.valid[: t.size]
    by_reason = dict(why(fail))
    names = {REASON_AFFINITY_NOT_MATCH: AFF, REASON_ANTI_AFFINITY_NOT_MATCH: ANTI,
             REASON_EXISTING_ANTI_AFFINITY_NOT_MATCH: EXISTING}
    out = {}
    for i in range(t.size):
        if not t.valid[i]:
            continue
        if ok[i]:
            out[t.names[i]] = OK
        else:
            hits = [names[r] for r, m in by_reason.items() if m[i]]
            assert len(hits) == 1, hits
            out[t.names[i]] = hits[0]
    return out


S1 = {"service": "securityscan"}
REGION_NODE = node("node1", region="r1", zone="z11", hostname="h1")
SEC_IN_S1 = expr("service", "In", "securityscan", "value2")

FILTER_CASES: List[Tuple[str, Sequence[Obj], Sequence[Obj], Obj, Dict[str, str]]] = [
    ("A pod that has no required pod affinity scheduling rules can schedule onto a node with no existing pods",
     [REGION_NODE], [], pod(), {"node1": OK}),
    ("satisfies with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using In operator that matches "
     "the existing pod", [REGION_NODE], [pod("e", "node1", labels=S1)],
     pod(labels={"foo": "bar"}, affinity=affinity(required=[term("region", SEC_IN_S1)])), {"node1": OK}),
    ("satisfies the pod with requiredDuringSchedulingIgnoredDuringExecution in PodAffinity using not in operator "
     "in labelSelector that matches the existing pod", [REGION_NODE], [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", expr("service", "NotIn", "securityscan3", "value3"))])),
     {"node1": OK}),
    ("Does not satisfy the PodAffinity with labelSelector because of diff Namespace", [REGION_NODE],
     [pod("e", "node1", ns="ns", labels=S1)],
     pod(labels={"foo": "bar"}, affinity=affinity(required=[term("region", SEC_IN_S1, namespaces=["DiffNameSpace"])])),
     {"node1": AFF}),
    ("Doesn't satisfy the PodAffinity because of unmatching labelSelector with the existing pod", [REGION_NODE],
     [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", expr("service", "In", "antivirusscan", "value2"))])),
     {"node1": AFF}),
    ("satisfies the PodAffinity with different label Operators in multiple RequiredDuringSchedulingIgnoredDuring"
     "Execution", [REGION_NODE], [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", expr("service", "Exists")),
                                     term("region", expr("wrongkey", "DoesNotExist")),
                                     term("region", SEC_IN_S1, expr("service", "NotIn", "WrongValue"))])),
     {"node1": OK}),
    ("The labelSelector requirements(items of matchExpressions) are ANDed, the pod cannot schedule onto the node "
     "because one of the matchExpression item don't match.", [REGION_NODE], [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", expr("service", "Exists"), expr("wrongkey", "DoesNotExist")),
                                     term("region", expr("service", "In", "securityscan2"),
                                          expr("service", "NotIn", "WrongValue"))])),
     {"node1": AFF}),
    ("satisfies the PodAffinity and PodAntiAffinity with the existing pod", [REGION_NODE],
     [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", SEC_IN_S1)],
                           anti=[term("node", expr("service", "In", "antivirusscan", "value2"))])),
     {"node1": OK}),
    ("satisfies the PodAffinity and PodAntiAffinity and PodAntiAffinity symmetry with the existing pod",
     [REGION_NODE],
     [pod("e", "node1", labels=S1, affinity=affinity(anti=[term("node", expr("service", "In", "antivirusscan",
                                                                               "value2"))]))],
     pod(affinity=affinity(required=[term("region", SEC_IN_S1)],
                           anti=[term("node", expr("service", "In", "antivirusscan", "value2"))])),
     {"node1": OK}),
    ("satisfies the PodAffinity but doesn't satisfy the PodAntiAffinity with the existing pod", [REGION_NODE],
     [pod("e", "node1", labels=S1)],
     pod(affinity=affinity(required=[term("region", SEC_IN_S1)], anti=[term("zone", SEC_IN_S1)])),
     {"node1": ANTI}),
    ("satisfies the PodAffinity and PodAntiAffinity but doesn't satisfy PodAntiAffinity symmetry with the existing "
     "pod", [REGION_NODE],
     [pod("e", "node1", labels=S1, affinity=affinity(anti=[term("zone", expr("security", "Exists"))]))],
     pod(labels={"security": "S1"}, affinity=affinity(required=[term("region", SEC_IN_S1)],
                                                      anti=[term("node", expr("service", "In", "antivirusscan"))])),
     {"node1": EXISTING}),
    ("pod matches its own Label in PodAffinity and that matches the existing pod Labels", [REGION_NODE],
     [pod("e", "node1", labels={"service": "securityscan"})],
     pod(labels={"service": "securityscan"}, affinity=affinity(required=[term("region", SEC_IN_S1)])),
     {"node1": OK}),
    ("verify that PodAntiAffinity from existing pod is respected when pod has no AntiAffinity constraints. doesn't "
     "satisfy PodAntiAffinity symmetry with the existing pod", [REGION_NODE],
     [pod("e", "node1", labels=S1, affinity=affinity(anti=[term("zone", SEC_IN_S1)]))],
     pod(labels=S1), {"node1": EXISTING}),
    ("verify that PodAntiAffinity from existing pod is respected when pod has no AntiAffinity constraints. "
     "satisfy PodAntiAffinity symmetry with the existing pod", [REGION_NODE],
     [pod("e", "node1", labels=S1, affinity=affinity(anti=[term("zone", expr("service", "NotIn", "securityscan",
                                                                               "value2"))]))],
     pod(labels=S1), {"node1": OK}),
    ("satisfies the PodAntiAffinity with existing pod but doesn't satisfy PodAntiAffinity symmetry with incoming "
     "pod", [REGION_NODE],
     [pod("e", "node1", labels={"service": "securityscan"},
          affinity=affinity(anti=[term("zone", expr("service", "Exists"))]))],
     pod(labels={"service": "securityscan"}, affinity=affinity(anti=[term("zone", expr("service", "Exists"))])),
     {"node1": ANTI}),
    # The first pod of a group that has affinity to itself.
    ("the first pod of a self-affine group lands on any node with the topology key",
     [node("node1", region="r1"), node("node2", region="r2"), node("node3")], [],
     pod(labels={"app": "db"}, affinity=affinity(required=[term("region", expr("app", "In", "db"))])),
     {"node1": OK, "node2": OK, "node3": AFF}),
    ("a pod whose affinity does not match itself, with no matching pod anywhere, fits nowhere",
     [node("node1", region="r1"), node("node2", region="r2")], [],
     pod(labels={"app": "web"}, affinity=affinity(required=[term("region", expr("app", "In", "db"))])),
     {"node1": AFF, "node2": AFF}),
    ("once one pod of the group exists, only its domain fits",
     [node("node1", region="r1"), node("node2", region="r1"), node("node3", region="r2")],
     [pod("e", "node2", labels={"app": "db"})],
     pod(labels={"app": "db"}, affinity=affinity(required=[term("region", expr("app", "In", "db"))])),
     {"node1": OK, "node2": OK, "node3": AFF}),
    # TestRequiredAffinityMultipleNodes: anti-affinity per hostname across nodes.
    ("anti-affinity on hostname: nodes hosting a matching pod are excluded",
     [node("machine1", hostname="machine1"), node("machine2", hostname="machine2"),
      node("machine3", hostname="machine3")],
     [pod("e1", "machine1", labels={"foo": "bar"}), pod("e2", "machine2", labels={"foo": "baz"})],
     pod(labels={"foo": "bar"}, affinity=affinity(anti=[term("hostname", expr("foo", "In", "bar"))])),
     {"machine1": ANTI, "machine2": OK, "machine3": OK}),
    ("existing anti-affinity on zone blocks the whole zone",
     [node("nodeA", zone="az1", hostname="a"), node("nodeB", zone="az1", hostname="b"),
      node("nodeC", zone="az2", hostname="c")],
     [pod("e", "nodeA", labels={"foo": "bar"}, affinity=affinity(anti=[term("zone", expr("foo", "In", "bar"))]))],
     pod(labels={"foo": "bar"}), {"nodeA": EXISTING, "nodeB": EXISTING, "nodeC": OK}),
    ("existing anti-affinity whose topology key a node lacks does not block it",
     [node("nodeA", zone="az1"), node("nodeB")],
     [pod("e", "nodeA", labels={"foo": "bar"}, affinity=affinity(anti=[term("zone", expr("foo", "In", "bar"))]))],
     pod(labels={"foo": "bar"}), {"nodeA": EXISTING, "nodeB": OK}),
    # namespaces and namespaceSelector.
    ("affinity with namespaceSelector matches pods of the selected namespaces",
     [node("node1", region="r1"), node("node2", region="r2")],
     [pod("e", "node1", ns="subteam2.team1", labels=S1)],
     pod(ns="subteam1.team2", affinity=affinity(required=[term("region", SEC_IN_S1, ns_selector={"matchLabels": {
         "team": "team1"}})])), {"node1": OK, "node2": AFF}),
    ("anti-affinity with namespaceSelector of another team ignores this team's pods",
     [node("node1", region="r1"), node("node2", region="r2")],
     [pod("e", "node1", ns="subteam2.team1", labels=S1)],
     pod(ns="subteam1.team1", affinity=affinity(anti=[term("region", SEC_IN_S1, ns_selector={"matchLabels": {
         "team": "team2"}})])), {"node1": OK, "node2": OK}),
    ("an empty namespaceSelector selects every namespace",
     [node("node1", region="r1"), node("node2", region="r2")],
     [pod("e", "node1", ns="elsewhere", labels=S1)],
     pod(affinity=affinity(anti=[term("region", SEC_IN_S1, ns_selector={})])), {"node1": ANTI, "node2": OK}),
    ("existing pod's anti-affinity namespaceSelector is matched against the incoming pod's namespace labels",
     [node("node1", region="r1"), node("node2", region="r2")],
     [pod("e", "node1", ns="x", affinity=affinity(anti=[term("region", SEC_IN_S1, ns_selector={
         "matchLabels": {"team": "team1"}})]))],
     pod(ns="subteam1.team1", labels=S1), {"node1": EXISTING, "node2": OK}),
    ("existing pod's anti-affinity namespaceSelector not matching the incoming pod's namespace",
     [node("node1", region="r1"), node("node2", region="r2")],
     [pod("e", "node1", ns="x", affinity=affinity(anti=[term("region", SEC_IN_S1, ns_selector={
         "matchLabels": {"team": "team1"}})]))],
     pod(ns="subteam1.team2", labels=S1), {"node1": OK, "node2": OK}),
]


@pytest.mark.parametrize("name,nodes,pods,incoming,want", FILTER_CASES, ids=[c[0][:90] for c in FILTER_CASES])
def test_filter(name: str, nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj, want: Dict[str, str]) -> None:
    assert filter_outcome(nodes, pods, incoming) == want


def scores(nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj) -> Dict[str, int]:
    t = table_of(nodes, pods)
    cand = np.array([t.index[n["metadata"]["name"]] for n in nodes], dtype=np.int64)
    got = inter_pod_affinity_score(t, parse_pod(incoming), cand)
    return {t.names[s]: int(v) for s, v in zip(cand, got)}


SEC_S1 = {"security": "S1"}
SEC_S2 = {"security": "S2"}
STAY_S1_REGION = affinity(preferred=[weighted(5, term("region", expr("security", "In", "S1")))])
STAY_S2_REGION = affinity(preferred=[weighted(6, term("region", expr("security", "In", "S2")))])
AFFINITY3 = affinity(preferred=[
    weighted(8, term("region", expr("security", "NotIn", "S1"), expr("security", "In", "S2"))),
    weighted(2, term("region", expr("security", "Exists"), expr("wrongkey", "DoesNotExist")))])
HARD = affinity(required=[term("region", expr("security", "In", "S1", "value2")),
                          term("region", expr("security", "Exists"), expr("wrongkey", "DoesNotExist"))])
AWAY_S1_AZ = affinity(preferred_anti=[weighted(5, term("az", expr("security", "In", "S1")))])
AWAY_S2_AZ = affinity(preferred_anti=[weighted(5, term("az", expr("security", "In", "S2")))])
STAY_S1_AWAY_S2 = affinity(preferred=[weighted(8, term("region", expr("security", "In", "S1")))],
                           preferred_anti=[weighted(5, term("az", expr("security", "In", "S2")))])
NS_SELECTOR = dict(namespaces=["subteam2.team2"],
                   ns_selector={"matchExpressions": [{"key": "team", "operator": "In", "values": ["team1"]}]})
AFFINITY_NS = affinity(preferred=[weighted(5, term("region", expr("security", "In", "S1"), **NS_SELECTOR))])
ANTI_NS = affinity(preferred_anti=[weighted(5, term("region", expr("security", "In", "S1"), **NS_SELECTOR))])


def N(name: str, **labels: str) -> Obj:
    return node(name, **labels)


CHINA, INDIA, AZ1, AZ2 = {"region": "China"}, {"region": "India"}, {"az": "az1"}, {"az": "az2"}
CHINA_AZ1 = {"region": "China", "az": "az1"}

SCORE_CASES: List[Tuple[str, Sequence[Obj], Sequence[Obj], Obj, Dict[str, int]]] = [
    ("all nodes are same priority as Affinity is nil", [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [], pod(labels=SEC_S1), {"node1": 0, "node2": 0, "node3": 0}),
    ("Affinity: pod that matches topology key & pods in nodes will get high score comparing to others",
     [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S2), pod("c", "node3", labels=SEC_S1)],
     pod(labels=SEC_S1, affinity=STAY_S1_REGION), {"node1": 100, "node2": 0, "node3": 0}),
    ("All the nodes that have the same topology key & label value with one of them has an existing pod that match "
     "the affinity rules, have the same score", [N("node1", **CHINA), N("node2", **CHINA_AZ1), N("node3", **INDIA)],
     [pod("a", "node1", labels=SEC_S1)], pod(affinity=STAY_S1_REGION), {"node1": 100, "node2": 100, "node3": 0}),
    ("Affinity: nodes in one region has more matching pods comparing to other region",
     [N("node1", **CHINA), N("node2", **INDIA), N("node3", **CHINA), N("node4", **CHINA), N("node5", **INDIA)],
     [pod("a", "node1", labels=SEC_S2), pod("b", "node1", labels=SEC_S2), pod("c", "node2", labels=SEC_S2),
      pod("d", "node3", labels=SEC_S2), pod("e", "node4", labels=SEC_S2), pod("f", "node5", labels=SEC_S2)],
     pod(labels=SEC_S1, affinity=STAY_S2_REGION),
     {"node1": 100, "node2": 0, "node3": 100, "node4": 100, "node5": 0}),
    ("Affinity: different Label operators and values for pod affinity scheduling preference",
     [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S2), pod("c", "node3", labels=SEC_S1)],
     pod(labels=SEC_S1, affinity=AFFINITY3), {"node1": 20, "node2": 100, "node3": 0}),
    ("Affinity symmetry: considered only the preferredDuringSchedulingIgnoredDuringExecution in pod affinity symmetry",
     [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1, affinity=STAY_S1_REGION), pod("b", "node2", labels=SEC_S2,
                                                                     affinity=STAY_S2_REGION)],
     pod(labels=SEC_S2), {"node1": 0, "node2": 100, "node3": 0}),
    ("Affinity symmetry with namespace selector", [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1, affinity=AFFINITY_NS), pod("b", "node2", labels=SEC_S2,
                                                                  affinity=STAY_S2_REGION)],
     pod(ns="subteam1.team1", labels=SEC_S1), {"node1": 100, "node2": 0, "node3": 0}),
    ("AntiAffinity symmetry with namespace selector", [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1, affinity=ANTI_NS), pod("b", "node2", labels=SEC_S2, affinity=STAY_S2_REGION)],
     pod(ns="subteam1.team1", labels=SEC_S1), {"node1": 0, "node2": 100, "node3": 100}),
    ("Affinity symmetry: considered RequiredDuringSchedulingIgnoredDuringExecution in pod affinity symmetry",
     [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)],
     [pod("a", "node1", labels=SEC_S1, affinity=HARD), pod("b", "node2", labels=SEC_S2, affinity=HARD)],
     pod(labels=SEC_S1), {"node1": 100, "node2": 100, "node3": 0}),
    ("Anti Affinity: pod that does not match existing pods in node will get high score",
     [N("node1", **AZ1), N("node2", **CHINA)], [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S2)],
     pod(labels=SEC_S1, affinity=AWAY_S1_AZ), {"node1": 0, "node2": 100}),
    ("Anti Affinity: pod that does not match topology key & match the pods in nodes will get higher score",
     [N("node1", **AZ1), N("node2", **CHINA)], [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S1)],
     pod(labels=SEC_S1, affinity=AWAY_S1_AZ), {"node1": 0, "node2": 100}),
    ("Anti Affinity: one node has more matching pods comparing to other node",
     [N("node1", **AZ1), N("node2", **INDIA)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node1", labels=SEC_S1), pod("c", "node2", labels=SEC_S2)],
     pod(labels=SEC_S1, affinity=AWAY_S1_AZ), {"node1": 0, "node2": 100}),
    ("Anti Affinity symmetry: the existing pods in node which has anti affinity match will get high score",
     [N("node1", **AZ1), N("node2", **AZ2)],
     [pod("a", "node1", labels=SEC_S1, affinity=AWAY_S2_AZ), pod("b", "node2", labels=SEC_S2, affinity=AWAY_S1_AZ)],
     pod(labels=SEC_S2), {"node1": 0, "node2": 100}),
    ("Affinity and Anti Affinity: considered only preferredDuringSchedulingIgnoredDuringExecution in both",
     [N("node1", **CHINA), N("node2", **AZ1)], [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S1)],
     pod(labels=SEC_S1, affinity=STAY_S1_AWAY_S2), {"node1": 100, "node2": 0}),
    ("Affinity and Anti Affinity: the pod to schedule and existing pods have the same labels",
     [N("node1", **CHINA_AZ1), N("node2", **INDIA), N("node3", **CHINA), N("node4", **CHINA), N("node5", **INDIA)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node1", labels=SEC_S1), pod("c", "node2", labels=SEC_S1),
      pod("d", "node3", labels=SEC_S1), pod("e", "node3", labels=SEC_S1), pod("f", "node4", labels=SEC_S1),
      pod("g", "node5", labels=SEC_S1)],
     pod(labels=SEC_S1, affinity=STAY_S1_AWAY_S2),
     {"node1": 100, "node2": 0, "node3": 100, "node4": 100, "node5": 0}),
    ("Affinity and Anti Affinity and symmetry", [N("node1", **CHINA), N("node2", **AZ1), N("node3", **INDIA),
                                                 N("node4", **AZ2)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S2),
      pod("c", "node3", affinity=STAY_S1_AWAY_S2), pod("d", "node4", affinity=AWAY_S1_AZ)],
     pod(labels=SEC_S1, affinity=STAY_S1_AWAY_S2), {"node1": 100, "node2": 0, "node3": 100, "node4": 0}),
    ("Avoid panic when partial nodes in a topology don't have pods with affinity",
     [N("node1", **CHINA), N("node2", **CHINA)],
     [pod("a", "node1", labels=SEC_S1), pod("b", "node2", affinity=STAY_S1_AWAY_S2)], pod(labels=SEC_S1),
     {"node1": 0, "node2": 0}),
    ("Affinity with pods matching NamespaceSelector", [N("node1", **CHINA), N("node2", **INDIA)],
     [pod("a", "node1", ns="subteam1.team1", labels=SEC_S1), pod("b", "node1", ns="subteam1.team1", labels=SEC_S1),
      pod("c", "node1", ns="subteam1.team2", labels=SEC_S1), pod("d", "node2", ns="subteam2.team1", labels=SEC_S1)],
     pod(ns="subteam1.team1", labels=SEC_S1, affinity=AFFINITY_NS), {"node1": 100, "node2": 0}),
    ("Affinity with pods matching both NamespaceSelector and Namespaces fields",
     [N("node1", **CHINA), N("node2", **INDIA)],
     [pod("a", "node1", ns="subteam1.team1", labels=SEC_S1), pod("b", "node1", ns="subteam1.team1", labels=SEC_S1),
      pod("c", "node1", ns="subteam2.team2", labels=SEC_S1), pod("d", "node2", ns="subteam2.team1", labels=SEC_S1)],
     pod(ns="subteam1.team1", labels=SEC_S1, affinity=AFFINITY_NS), {"node1": 100, "node2": 0}),
    ("Anti-affinity with pods matching NamespaceSelector", [N("node1", **CHINA), N("node2", **INDIA)],
     [pod("a", "node1", ns="subteam1.team1", labels=SEC_S1), pod("b", "node1", ns="subteam1.team1", labels=SEC_S1),
      pod("c", "node1", ns="subteam1.team2", labels=SEC_S1), pod("d", "node2", ns="subteam2.team1", labels=SEC_S1)],
     pod(ns="subteam1.team1", labels=SEC_S1, affinity=ANTI_NS), {"node1": 0, "node2": 100}),
    ("Anti-affinity with pods matching both NamespaceSelector and Namespaces fields",
     [N("node1", **CHINA), N("node2", **INDIA)],
     [pod("a", "node1", ns="subteam1.team1", labels=SEC_S1), pod("b", "node1", ns="subteam1.team1", labels=SEC_S1),
      pod("c", "node1", ns="subteam2.team2", labels=SEC_S1), pod("d", "node2", ns="subteam2.team1", labels=SEC_S1)],
     pod(ns="subteam1.team1", labels=SEC_S1, affinity=ANTI_NS), {"node1": 0, "node2": 100}),
    ("Do not ignore preferred terms of existing pods", [N("node1", **CHINA), N("node2", **INDIA)],
     [pod("a", "node1", labels=SEC_S1, affinity=STAY_S1_AWAY_S2), pod("b", "node2", labels=SEC_S2,
                                                                       affinity=STAY_S2_REGION)],
     pod(labels=SEC_S2), {"node1": 0, "node2": 100}),
]

# TestPreferredAffinityWithHardPodAffinitySymmetricWeight (default weight 1): existing pods' required affinity.
HARD_NS = affinity(required=[term("region", expr("service", "In", "S1"), namespaces=["", "subteam2.team2"],
                                  ns_selector={"matchExpressions": [{"key": "team", "operator": "In",
                                                                     "values": ["team1"]}]})])
HARD_NODES = [N("node1", **CHINA), N("node2", **INDIA), N("node3", **AZ1)]
HARD_PODS = [pod("a", "node1", ns="", affinity=HARD_NS), pod("b", "node2", ns="", affinity=HARD_NS)]
SCORE_CASES += [
    ("hard pod affinity symmetry with default weight", HARD_NODES, HARD_PODS,
     pod(ns="", labels={"service": "S1"}), {"node1": 100, "node2": 100, "node3": 0}),
    ("hard pod affinity symmetry with no matching namespace", HARD_NODES, HARD_PODS,
     pod(ns="subteam1.team2", labels={"service": "S1"}), {"node1": 0, "node2": 0, "node3": 0}),
    ("hard pod affinity symmetry with matching NamespaceSelector", HARD_NODES, HARD_PODS,
     pod(ns="subteam1.team1", labels={"service": "S1"}), {"node1": 100, "node2": 100, "node3": 0}),
    ("hard pod affinity symmetry with matching Namespaces", HARD_NODES, HARD_PODS,
     pod(ns="subteam2.team2", labels={"service": "S1"}), {"node1": 100, "node2": 100, "node3": 0}),
]


@pytest.mark.parametrize("name,nodes,pods,incoming,want", SCORE_CASES, ids=[c[0][:90] for c in SCORE_CASES])
def test_score(name: str, nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj, want: Dict[str, int]) -> None:
    assert scores(nodes, pods, incoming) == want


def test_unequal_scores_normalise_as_float_then_truncate() -> None:
    # Raw sums 8 (China), -5 (az1), 0 (none): (s - min) / (max - min) * 100 -> 100, 0, int(38.46) = 38.
    got = scores([N("node1", **CHINA), N("node2", **AZ1), N("node3")],
                 [pod("a", "node1", labels=SEC_S1), pod("b", "node2", labels=SEC_S2)],
                 pod(labels=SEC_S1, affinity=STAY_S1_AWAY_S2))
    assert got == {"node1": 100, "node2": 0, "node3": 38}


def test_existing_anti_affinity_group_follows_placements() -> None:
    t = table_of([node("n1", hostname="n1"), node("n2", hostname="n2")], [])
    anti = affinity(anti=[term("hostname", expr("app", "In", "web"))])
    incoming = parse_pod(pod(labels={"app": "web"}, affinity=anti))
    assert inter_pod_affinity(t, incoming) is not None
    t.add_pod(parse_pod(pod("w1", "n1", labels={"app": "web"}, affinity=anti)), "n1", assumed=True)
    result = inter_pod_affinity(t, incoming)
    assert result is not None
    ok, _ = result
    assert [t.names[i] for i in np.flatnonzero(ok)] == ["n2"]
    t.remove_pod("default/w1")
    assert inter_pod_affinity(t, incoming) is not None
    assert not t.pod_index.groups


def test_dense_groups_give_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups spread over many nodes keep a dense count column; every case again with every group dense."""
    from megaplane.scheduler import podindex

    monkeypatch.setattr(podindex, "DENSE_GROUP_SLOTS", 1)
    for name, nodes, pods, incoming, want in FILTER_CASES:
        assert filter_outcome(nodes, pods, incoming) == want, name
    for name, nodes, pods, incoming, want_scores in SCORE_CASES:
        assert scores(nodes, pods, incoming) == want_scores, name
    t = table_of([node("n1", hostname="n1")], [pod("a", "n1", affinity=STAY_S1_REGION)])
    assert next(iter(t.pod_index.groups.values())).dense is not None
