"""DefaultPreemption's victim selection and node choice against upstream's semantics (v1.32), as data.

Scenarios after kubernetes/kubernetes
pkg/scheduler/framework/plugins/defaultpreemption/default_preemption_test.go
(TestSelectNodesForPreemption, TestPickOneNodeForPreemption, PDB-aware
reprieve, eligibility), written anew, run against `Preemptor` over a real
NodeTable: which node is chosen, which pods are its victims, and the
PostFilter message when nothing helps.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from megaplane.scheduler.algorithm import Algorithm, FitError
from megaplane.scheduler.labels import selector_from_set
from megaplane.scheduler.nodetable import NodeTable
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.preemption import Pdb, Preemptor, pdb_from

Obj = Dict[str, Any]


def node(name: str, cpu: str = "4", pods: int = 110, taints: Sequence[Obj] = ()) -> Obj:
    alloc = {"cpu": cpu, "memory": "100Gi", "pods": str(pods)}
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": list(taints)}, "status": {"allocatable": alloc}}


def pod(name: str, cpu: str, priority: int = 0, on: str = "", start: str = "", labels: Optional[Dict[str, str]] = None,
        **spec: Any) -> Obj:
    body: Obj = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Mi"}}}],
                 "priority": priority, **spec}
    if on:
        body["nodeName"] = on
    status: Obj = {"startTime": start} if start else {}
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {}},
            "spec": body, "status": status}


def cluster(nodes: Sequence[Obj], pods: Sequence[Obj]) -> Tuple[NodeTable, Algorithm, Preemptor]:
    t = NodeTable(capacity=2)
    for n in nodes:
        t.upsert_node(n)
    for p in pods:
        t.add_pod(parse_pod(p), p["spec"]["nodeName"])
    algorithm = Algorithm(t, rng=random.Random(0))
    return t, algorithm, Preemptor(t, algorithm, rng=random.Random(0))


def preempt(nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj,
            pdbs: Sequence[Pdb] = ()) -> Tuple[Optional[str], List[str], str]:
    t, algorithm, preemptor = cluster(nodes, pods)
    info = parse_pod(incoming)
    with pytest.raises(FitError):
        algorithm.schedule(info)
    before = (t.requested[: t.size].copy(), {k: (p.slot, p.assumed) for k, p in t.pods.items()})
    candidate, message = preemptor.preempt(info, algorithm.statuses(info), pdbs)
    # The dry run leaves the table as it found it.
    assert np.array_equal(t.requested[: t.size], before[0])
    assert {k: (p.slot, p.assumed) for k, p in t.pods.items()} == before[1]
    if candidate is None:
        return None, [], message
    return candidate.node, [v.info.name for v in candidate.victims], message


CASES: List[Tuple[str, Sequence[Obj], Sequence[Obj], Obj, Optional[str], List[str]]] = [
    ("a pod that fits on both nodes when lower priority pods are preempted: the lower victim wins",
     [node("n1", "4"), node("n2", "4")],
     [pod("a", "3", 10, "n1"), pod("b", "3", 5, "n2")], pod("p", "2", 100), "n2", ["b"]),
    ("node with the minimum highest-priority victim is picked",
     [node("n1", "4"), node("n2", "4"), node("n3", "4")],
     [pod("a1", "2", 10, "n1"), pod("a2", "2", 10, "n1"), pod("b1", "2", 10, "n2"), pod("b2", "2", 20, "n2"),
      pod("c1", "2", 30, "n3"), pod("c2", "2", 5, "n3")],
     pod("p", "4", 100), "n1", ["a1", "a2"]),
    ("when highest priorities are the same, the minimum sum of priorities is used",
     [node("n1", "4"), node("n2", "4")],
     [pod("a1", "2", 10, "n1"), pod("a2", "2", 10, "n1"), pod("b1", "2", 10, "n2"), pod("b2", "2", 2, "n2")],
     pod("p", "4", 100), "n2", ["b1", "b2"]),
    ("same highest priority: fewer victims make the smaller adjusted sum",
     [node("n1", "4"), node("n2", "4")],
     [pod("a1", "2", 10, "n1"), pod("a2", "2", 10, "n1"), pod("b1", "4", 10, "n2")],
     pod("p", "4", 100), "n2", ["b1"]),
    ("reprieve keeps the most important pod that leaves room: the lower one is the victim",
     [node("n1", "6")],
     [pod("a1", "2", 10, "n1"), pod("a2", "2", 5, "n1"), pod("a3", "2", 5, "n1")],
     pod("p", "4", 100), "n1", ["a2", "a3"]),
    ("sum of adjusted priorities: negative priorities do not make more victims cheaper",
     [node("n1", "4"), node("n2", "4")],
     [pod("a1", "2", -1, "n1"), pod("a2", "2", -1, "n1"), pod("b1", "4", -1, "n2")],
     pod("p", "4", 100), "n2", ["b1"]),
    ("reprieve from the most important: the higher-priority pod stays when the others make room",
     [node("n1", "4")],
     [pod("a1", "1", 50, "n1"), pod("a2", "1", 10, "n1"), pod("a3", "2", 20, "n1")],
     pod("p", "2", 100), "n1", ["a3"]),
    ("same priority and victims: the node whose victims started latest is picked",
     [node("n1", "4"), node("n2", "4")],
     [pod("a", "4", 10, "n1", start="2024-01-01T00:00:00Z"), pod("b", "4", 10, "n2", start="2024-06-01T00:00:00Z")],
     pod("p", "4", 100), "n2", ["b"]),
    ("equal-priority pods are not victims; only lower ones",
     [node("n1", "4"), node("n2", "4")],
     [pod("a", "4", 100, "n1"), pod("b", "4", 99, "n2")], pod("p", "4", 100), "n2", ["b"]),
]


@pytest.mark.parametrize("name,nodes,pods,incoming,want_node,want_victims", CASES, ids=[c[0][:80] for c in CASES])
def test_select_and_pick(name: str, nodes: Sequence[Obj], pods: Sequence[Obj], incoming: Obj,
                         want_node: Optional[str], want_victims: List[str]) -> None:
    got_node, victims, message = preempt(nodes, pods, incoming)
    assert (got_node, victims, message) == (want_node, want_victims, "")


def test_pdb_violating_pods_are_reprieved_first_and_nodes_without_violations_preferred() -> None:
    nodes = [node("n1", "4"), node("n2", "4")]
    pods = [pod("a", "4", 10, "n1", labels={"app": "guarded"}), pod("b", "4", 20, "n2", labels={"app": "free"})]
    budget = Pdb("default", selector_from_set({"app": "guarded"}), 0, frozenset())
    # Without the PDB n1 (lower victim priority) wins; with it n2's victim violates nothing.
    assert preempt(nodes, pods, pod("p", "4", 100))[:2] == ("n1", ["a"])
    assert preempt(nodes, pods, pod("p", "4", 100), [budget])[:2] == ("n2", ["b"])
    # A budget that allows one disruption is not violated by one victim.
    assert preempt(nodes, pods, pod("p", "4", 100), [Pdb("default", budget.selector, 1, frozenset())])[:2] == \
        ("n1", ["a"])
    # A pod the PDB already counts as disrupted does not use the budget up.
    assert preempt(nodes, pods, pod("p", "4", 100), [Pdb("default", budget.selector, 0, frozenset({"a"}))])[:2] == \
        ("n1", ["a"])


def test_pdb_from_an_api_object() -> None:
    got = pdb_from({"metadata": {"name": "x", "namespace": "ns"},
                    "spec": {"selector": {"matchLabels": {"app": "web"}}},
                    "status": {"disruptionsAllowed": 2, "disruptedPods": {"web-1": "2024-01-01T00:00:00Z"}}})
    assert got == Pdb("ns", selector_from_set({"app": "web"}), 2, frozenset({"web-1"}))


def test_messages_when_preemption_cannot_help() -> None:
    taint = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    nodes = [node("n1", "4"), node("n2", "4"), node("n3", "4", taints=taint)]
    # Equal priorities: no victims on the two full nodes; the tainted one is not helped by preemption.
    pods = [pod("a", "4", 0, "n1"), pod("b", "4", 0, "n2")]
    assert preempt(nodes, pods, pod("p", "1", 0)) == (
        None, [], "0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
                  "2 No preemption victims found for incoming pod.")
    # Removing every lower-priority pod is not enough: the node's own reason is given.
    pods = [pod("a", "1", 0, "n1"), pod("b", "1", 0, "n2")]
    assert preempt(nodes[:2], pods, pod("p", "8", 10)) == (
        None, [], "0/2 nodes are available: 2 Insufficient cpu.")
    # Only unresolvable nodes.
    assert preempt([nodes[2]], [], pod("p", "1", 10)) == (
        None, [], "0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    # preemptionPolicy Never.
    assert preempt(nodes[:2], [pod("a", "4", 0, "n1"), pod("b", "4", 0, "n2")],
                   pod("p", "1", 10, preemptionPolicy="Never")) == (None, [], "not eligible due to preemptionPolicy=Never.")


def test_a_terminating_victim_on_the_nominated_node_makes_the_pod_wait() -> None:
    nodes = [node("n1", "4")]
    victim = pod("a", "4", 0, "n1")
    victim["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    victim["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                       "reason": "PreemptionByScheduler"}]
    incoming = pod("p", "2", 10)
    incoming["status"]["nominatedNodeName"] = "n1"
    assert preempt(nodes, [victim], incoming) == (None, [], "not eligible due to a terminating pod on the nominated node.")


def test_num_candidates_as_upstream() -> None:
    assert Preemptor.num_candidates(5) == 5
    assert Preemptor.num_candidates(500) == 100
    assert Preemptor.num_candidates(5000) == 500


def test_room_freed_for_a_nominated_pod_is_not_taken_by_a_less_important_one() -> None:
    t, algorithm, _ = cluster([node("n1", "4"), node("n2", "4")], [pod("b", "3", 0, "n2")])
    preemptor = parse_pod(pod("p", "3", 100))
    # p was nominated to n1 (its victims are gone): a priority-5 pod needing 3 CPUs may not use n1 ...
    algorithm.nominated[preemptor.key] = (preemptor, "n1")
    low = parse_pod(pod("low", "3", 5))
    with pytest.raises(FitError):
        algorithm.schedule(low)
    # ... nor does the nomination change the table; a small pod still fits next to it.
    assert "default/p" not in t.pods
    assert algorithm.schedule(parse_pod(pod("small", "1", 5))).node in ("n1", "n2")
    # A pod more important than the nominated one ignores the nomination.
    assert algorithm.schedule(parse_pod(pod("vip", "3", 200))).node == "n1"


def test_the_nominated_node_is_taken_first_when_it_fits() -> None:
    t, algorithm, _ = cluster([node("n1", "4"), node("n2", "16")], [])
    nominated = pod("p", "1", 100)
    nominated["status"]["nominatedNodeName"] = "n1"
    # LeastAllocated alone would pick the bigger n2; the nomination wins, without scoring.
    result = algorithm.schedule(parse_pod(nominated))
    assert (result.node, result.evaluated_nodes, result.feasible_nodes) == ("n1", 1, 1)
    assert algorithm.schedule(parse_pod(pod("q", "1", 100))).node == "n2"
