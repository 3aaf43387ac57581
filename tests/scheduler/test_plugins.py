"""Filters and scores against upstream's plugin semantics (v1.32), table-driven over small node tables.

Cases follow kubernetes/kubernetes pkg/scheduler/framework/plugins/*/ tests
(written anew): each builds nodes and pods as the API serves them, runs one
plugin over the table and compares the passing nodes, the reasons, or the
scores with what upstream's per-node formulas give.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from megaplane.scheduler.algorithm import (
    Algorithm,
    FitError,
    NoNodesAvailableError,
    num_feasible_nodes_to_find,
)
from megaplane.scheduler.nodetable import NodeTable
from megaplane.scheduler.plugins import (
    balanced_allocation,
    least_allocated,
    node_affinity,
    node_affinity_score,
    node_name,
    node_ports,
    node_resources_fit,
    node_unschedulable,
    normalize,
    taint_toleration,
    taint_toleration_score,
)
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.profile import score_nodes
from megaplane.scheduler.quantity import QuantityError, milli_value, value

Obj = Dict[str, Any]


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int = 110, labels: Optional[Dict[str, str]] = None,
         taints: Optional[List[Obj]] = None, unschedulable: bool = False, **extended: str) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    alloc.update({k.replace("__", "/").replace("_", "."): v for k, v in extended.items()})
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": alloc, "capacity": alloc}}


def pod(name: str = "p", cpu: Optional[str] = None, memory: Optional[str] = None, *, init: Optional[List[Obj]] = None,
        containers: Optional[List[Obj]] = None, **spec: Any) -> Obj:
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    cs = containers if containers is not None else [{"name": "c", "resources": {"requests": requests}}]
    body = {"containers": cs, **spec}
    if init:
        body["initContainers"] = init
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}, "spec": body}


def table_of(*nodes: Obj) -> NodeTable:
    t = NodeTable(capacity=2)
    for n in nodes:
        t.upsert_node(n)
    return t


def passing(table: NodeTable, result: Any) -> List[str]:
    if result is None:
        return sorted(table.names[i] for i in range(table.size) if table.valid[i])
    ok = result[0]
    return sorted(table.names[i] for i in np.flatnonzero(ok & table.valid[: table.size]))


def reasons(table: NodeTable, result: Any) -> Dict[str, int]:
    ok, why = result
    fail = table.valid[: table.size] & ~ok
    return {r: int(np.count_nonzero(m & fail)) for r, m in why(fail) if np.count_nonzero(m & fail)}


# -- quantities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text,milli,val", [
    ("1", 1000, 1), ("100m", 100, 1), ("0.5", 500, 1), ("1Ki", 1024000, 1024), ("1Gi", (1 << 30) * 1000, 1 << 30),
    ("1e3", 1000000, 1000), ("1k", 1000000, 1000), ("0.1m", 1, 1), (2, 2000, 2),
])
def test_quantities_round_up_as_resource_quantity(text: Any, milli: int, val: int) -> None:
    assert milli_value(text) == milli
    assert value(text) == val


@pytest.mark.parametrize("bad", ["", "abc", "1X", "--1", True, None])
def test_bad_quantities_are_refused(bad: Any) -> None:
    with pytest.raises(QuantityError):
        milli_value(bad)


# -- pod requests -------------------------------------------------------------------------------


def test_requests_take_init_containers_max_sidecars_and_overhead() -> None:
    p = pod(containers=[{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                        {"name": "b", "resources": {"requests": {"cpu": "500m"}}}],
            init=[{"name": "i1", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}},
                  {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                  {"name": "i2", "resources": {"requests": {"cpu": "3"}}}],
            overhead={"cpu": "100m"})
    info = parse_pod(p)
    # containers 1.5 + sidecar 0.2 = 1.7; init i2 runs beside the sidecar: 3.2 is the max; + overhead 0.1.
    assert info.requests["cpu"] == 3300
    assert info.requests["memory"] == 1 << 30
    # non-zero: container b and the sidecar set no memory request, each counted as 200Mi.
    assert info.non_zero_memory == (1 << 30) + 2 * (200 << 20)


def test_non_zero_requests_default_only_unset_requests() -> None:
    assert parse_pod(pod()).non_zero_cpu == 100
    assert parse_pod(pod()).non_zero_memory == 200 << 20
    assert parse_pod(pod(cpu="0", memory="0")).non_zero_cpu == 0


# -- NodeResourcesFit ---------------------------------------------------------------------------


def fit_table() -> NodeTable:
    t = table_of(node("n1", cpu="10", memory="20", pods=32, **{"example_com__nic": "2"}), node("n2", cpu="10", memory="20", pods=1))
    t.add_pod(parse_pod(pod("existing", cpu="5", memory="19")), "n1")
    t.add_pod(parse_pod(pod("existing2", cpu="0", memory="0")), "n2")
    return t


@pytest.mark.parametrize("name,p,fits,why", [
    ("no requests fit", pod(), ["n1"], {"Too many pods": 1}),
    ("cpu fits", pod(cpu="5"), ["n1"], {"Too many pods": 1}),
    ("too much cpu", pod(cpu="6"), [], {"Insufficient cpu": 1, "Too many pods": 1}),
    ("too much memory", pod(memory="2"), [], {"Insufficient memory": 1, "Too many pods": 1}),
    ("both", pod(cpu="6", memory="2"), [], {"Insufficient cpu": 1, "Insufficient memory": 1, "Too many pods": 1}),
    ("init container too big", pod(cpu="1", init=[{"name": "i", "resources": {"requests": {"cpu": "6"}}}]), [],
     {"Insufficient cpu": 1, "Too many pods": 1}),
    ("extended fits", pod(containers=[{"name": "c", "resources": {"requests": {"example.com/nic": "2"}}}]), ["n1"],
     {"Too many pods": 1, "Insufficient example.com/nic": 1}),
    ("extended too many", pod(containers=[{"name": "c", "resources": {"requests": {"example.com/nic": "3"}}}]), [],
     {"Insufficient example.com/nic": 2, "Too many pods": 1}),
    ("unknown extended", pod(containers=[{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]), [],
     {"Insufficient example.com/gpu": 2, "Too many pods": 1}),
])
def test_node_resources_fit(name: str, p: Obj, fits: List[str], why: Dict[str, int]) -> None:
    t = fit_table()
    result = node_resources_fit(t, parse_pod(p))
    assert passing(t, result) == fits, name
    assert reasons(t, result) == why, name


def test_assumed_pods_take_the_last_slot() -> None:
    t = table_of(node("n1", cpu="1"))
    algo = Algorithm(t)
    first = parse_pod(pod("a", cpu="600m"))
    assert algo.schedule(first).node == "n1"
    t.add_pod(first, "n1", assumed=True)
    with pytest.raises(FitError) as err:
        algo.schedule(parse_pod(pod("b", cpu="600m")))
    assert err.value.message == "0/1 nodes are available: 1 Insufficient cpu."
    t.remove_pod(first.key)
    assert algo.schedule(parse_pod(pod("b", cpu="600m"))).node == "n1"


# -- NodeName, NodeUnschedulable ----------------------------------------------------------------


def test_node_name() -> None:
    t = table_of(node("a"), node("b"))
    assert node_name(t, parse_pod(pod())) is None
    assert passing(t, node_name(t, parse_pod(pod(nodeName="b")))) == ["b"]
    assert reasons(t, node_name(t, parse_pod(pod(nodeName="c")))) == {
        "node(s) didn't match the requested node name": 2}


@pytest.mark.parametrize("tolerations,fits", [
    ([], ["ok"]),
    ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], ["cordoned", "ok"]),
    ([{"operator": "Exists"}], ["cordoned", "ok"]),
    ([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}], ["ok"]),
])
def test_node_unschedulable(tolerations: List[Obj], fits: List[str]) -> None:
    t = table_of(node("cordoned", unschedulable=True), node("ok"))
    assert passing(t, node_unschedulable(t, parse_pod(pod(tolerations=tolerations)))) == fits


# -- TaintToleration ----------------------------------------------------------------------------


TAINTED = [
    node("clean"),
    node("dedicated", taints=[{"key": "dedicated", "value": "user1", "effect": "NoSchedule"}]),
    node("evict", taints=[{"key": "foo", "value": "bar", "effect": "NoExecute"}]),
    node("soft", taints=[{"key": "foo", "value": "bar", "effect": "PreferNoSchedule"}]),
]


@pytest.mark.parametrize("tolerations,fits", [
    ([], ["clean", "soft"]),
    ([{"key": "dedicated", "operator": "Equal", "value": "user1", "effect": "NoSchedule"}],
     ["clean", "dedicated", "soft"]),
    ([{"key": "dedicated", "operator": "Equal", "value": "user2", "effect": "NoSchedule"}], ["clean", "soft"]),
    ([{"key": "dedicated", "operator": "Exists"}], ["clean", "dedicated", "soft"]),
    ([{"key": "foo", "operator": "Exists", "effect": "NoSchedule"}], ["clean", "soft"]),
    ([{"operator": "Exists"}], ["clean", "dedicated", "evict", "soft"]),
])
def test_taint_toleration_filter(tolerations: List[Obj], fits: List[str]) -> None:
    t = table_of(*TAINTED)
    assert passing(t, taint_toleration(t, parse_pod(pod(tolerations=tolerations)))) == fits


def test_taint_toleration_reasons_name_the_first_untolerated_taint() -> None:
    t = table_of(*TAINTED)
    assert reasons(t, taint_toleration(t, parse_pod(pod()))) == {
        "node(s) had untolerated taint {dedicated: user1}": 1, "node(s) had untolerated taint {foo: bar}": 1}


def test_taint_toleration_score_counts_intolerable_prefer_no_schedule_reversed() -> None:
    t = table_of(node("none"), node("one", taints=[{"key": "a", "value": "1", "effect": "PreferNoSchedule"}]),
                 node("two", taints=[{"key": "a", "value": "1", "effect": "PreferNoSchedule"},
                                     {"key": "b", "value": "2", "effect": "PreferNoSchedule"}]))
    cand = np.arange(3)
    raw = taint_toleration_score(t, parse_pod(pod()), cand)
    assert list(raw) == [0, 1, 2]
    assert list(normalize(raw, reverse=True)) == [100, 50, 0]
    tolerant = parse_pod(pod(tolerations=[{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]))
    assert list(normalize(taint_toleration_score(t, tolerant, cand), reverse=True)) == [100, 100, 0]
    # A NoSchedule toleration does not count for PreferNoSchedule taints.
    other = parse_pod(pod(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]))
    assert list(taint_toleration_score(t, other, cand)) == [0, 1, 2]


# -- NodeAffinity ---------------------------------------------------------------------------------


AFFINITY_NODES = [
    node("n1", labels={"zone": "a", "gen": "3", "disk": "ssd"}),
    node("n2", labels={"zone": "b", "gen": "5"}),
    node("n3", labels={"zone": "c", "gen": "x"}),
]


def required(*terms: Obj) -> Obj:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, op: str, *values: str) -> Obj:
    return {"key": key, "operator": op, "values": list(values)} if values else {"key": key, "operator": op}


@pytest.mark.parametrize("spec,fits", [
    ({}, ["n1", "n2", "n3"]),
    ({"nodeSelector": {"zone": "a"}}, ["n1"]),
    ({"nodeSelector": {"zone": "a", "disk": "hdd"}}, []),
    ({"nodeSelector": {"missing": "x"}}, []),
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "a", "b")]})}, ["n1", "n2"]),
    ({"affinity": required({"matchExpressions": [expr("zone", "NotIn", "a")]})}, ["n2", "n3"]),
    ({"affinity": required({"matchExpressions": [expr("disk", "Exists")]})}, ["n1"]),
    ({"affinity": required({"matchExpressions": [expr("disk", "DoesNotExist")]})}, ["n2", "n3"]),
    ({"affinity": required({"matchExpressions": [expr("gen", "Gt", "4")]})}, ["n2"]),
    ({"affinity": required({"matchExpressions": [expr("gen", "Lt", "4")]})}, ["n1"]),
    ({"affinity": required({"matchExpressions": [expr("gen", "Gt", "notanumber")]})}, []),
    ({"affinity": required({"matchExpressions": [expr("nokey", "NotIn", "x")]})}, ["n1", "n2", "n3"]),
    ({"affinity": required({"matchExpressions": [expr("nokey", "In", "x")]})}, []),
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "a")]},
                           {"matchExpressions": [expr("zone", "In", "c")]})}, ["n1", "n3"]),
    ({"affinity": required({"matchExpressions": [expr("zone", "In", "a", "b"), expr("gen", "Gt", "4")]})}, ["n2"]),
    ({"affinity": required({})}, []),
    ({"affinity": required({"matchFields": [expr("metadata.name", "In", "n2")]})}, ["n2"]),
    ({"affinity": required({"matchFields": [expr("metadata.name", "NotIn", "n2")]})}, ["n1", "n3"]),
    ({"nodeSelector": {"zone": "b"}, "affinity": required({"matchExpressions": [expr("zone", "In", "a")]})}, []),
])
def test_node_affinity_filter(spec: Obj, fits: List[str]) -> None:
    t = table_of(*AFFINITY_NODES)
    result = node_affinity(t, parse_pod(pod(**spec)))
    assert passing(t, result) == fits
    if result is not None and len(fits) < 3:
        assert reasons(t, result) == {"node(s) didn't match Pod's node affinity/selector": 3 - len(fits)}


def test_node_affinity_score_sums_matching_preferred_weights() -> None:
    t = table_of(*AFFINITY_NODES)
    p = parse_pod(pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [expr("zone", "In", "a")]}},
        {"weight": 5, "preference": {"matchExpressions": [expr("gen", "Exists")]}},
        {"weight": 8, "preference": {"matchExpressions": [expr("gen", "Gt", "4")]}},
    ]}}))
    raw = node_affinity_score(t, p, np.arange(3))
    assert list(raw) == [7, 13, 5]
    assert list(normalize(raw)) == [100 * 7 // 13, 100, 100 * 5 // 13]


# -- NodePorts ------------------------------------------------------------------------------------


def port(p: int, protocol: str = "TCP", ip: str = "") -> Obj:
    out: Obj = {"containerPort": 80, "hostPort": p, "protocol": protocol}
    if ip:
        out["hostIP"] = ip
    return out


@pytest.mark.parametrize("existing,wanted,fits", [
    ([port(8080)], [port(8081)], True),
    ([port(8080)], [port(8080)], False),
    ([port(8080, "TCP")], [port(8080, "UDP")], True),
    ([port(8080, ip="127.0.0.1")], [port(8080, ip="127.0.0.2")], True),
    ([port(8080, ip="127.0.0.1")], [port(8080)], False),
    ([port(8080)], [port(8080, ip="127.0.0.1")], False),
])
def test_node_ports(existing: List[Obj], wanted: List[Obj], fits: bool) -> None:
    t = table_of(node("n"))
    t.add_pod(parse_pod(pod("old", containers=[{"name": "c", "ports": existing}])), "n")
    result = node_ports(t, parse_pod(pod("new", containers=[{"name": "c", "ports": wanted}])))
    assert passing(t, result) == (["n"] if fits else [])


# -- resource scores ------------------------------------------------------------------------------


def test_least_allocated_matches_upstream_integer_formula() -> None:
    # Upstream's case: node1 4000m / 10000, node2 6000m / 10000; pod 3000m / 5000 on empty nodes (nonzero defaults).
    t = table_of(node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))
    p = parse_pod(pod(cpu="3", memory="5000"))
    cand = np.arange(2)
    # cpu (4000-3000)*100/4000 = 25, mem (10000-5000)*100/10000 = 50 -> 37; n2: 50, 50 -> 50.
    assert list(least_allocated(t, p, cand)) == [37, 50]
    # Requests beyond allocatable score 0 for that resource.
    big = parse_pod(pod(cpu="5", memory="5000"))
    assert list(least_allocated(t, big, cand)) == [25, (16 + 50) // 2]


def test_least_allocated_counts_unset_requests_as_non_zero() -> None:
    t = table_of(node("n", cpu="1", memory=str(1000 << 20)))
    cand = np.arange(1)
    # 100m of 1000m, 200Mi of 1000Mi: 90 and 80 -> 85.
    assert list(least_allocated(t, parse_pod(pod()), cand)) == [85]


def test_balanced_allocation_matches_upstream_float_formula() -> None:
    t = table_of(node("n1", cpu="4", memory="10000"), node("n2", cpu="6", memory="10000"))
    t.add_pod(parse_pod(pod("e", cpu="1", memory="2000")), "n1")
    p = parse_pod(pod(cpu="1", memory="3000"))
    cand = np.arange(2)
    f1 = [2000 / 4000, 5000 / 10000]
    f2 = [1000 / 6000, 3000 / 10000]
    expected = [int((1 - abs((f1[0] - f1[1]) / 2)) * 100), int((1 - abs((f2[0] - f2[1]) / 2)) * 100)]
    assert list(balanced_allocation(t, p, cand)) == expected


def test_totals_weight_the_default_plugins_and_ties_are_random() -> None:
    t = table_of(*(node(f"n{i}") for i in range(4)))
    p = parse_pod(pod(cpu="1", memory="1Gi"))
    totals = score_nodes(t, p, np.arange(4))
    assert len(set(totals.tolist())) == 1
    # LeastAllocated + Balanced + TaintToleration (100 everywhere, weight 3).
    assert totals[0] == least_allocated(t, p, np.arange(1))[0] + balanced_allocation(t, p, np.arange(1))[0] + 300
    chosen = {Algorithm(t, rng=random.Random(seed)).schedule(p).node for seed in range(40)}
    assert chosen == {"n0", "n1", "n2", "n3"}


def test_algorithm_prefers_the_emptier_node() -> None:
    t = table_of(node("busy"), node("idle"))
    t.add_pod(parse_pod(pod("e", cpu="3", memory="6Gi")), "busy")
    assert Algorithm(t).schedule(parse_pod(pod(cpu="500m", memory="1Gi"))).node == "idle"


# -- the whole cycle --------------------------------------------------------------------------------


def test_fit_error_counts_each_node_under_its_first_failing_filter() -> None:
    t = table_of(node("small1", cpu="1"), node("small2", cpu="1"),
                 node("tainted", cpu="64", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
                 node("cordoned", cpu="64", unschedulable=True))
    with pytest.raises(FitError) as err:
        Algorithm(t).schedule(parse_pod(pod(cpu="2")))
    assert err.value.message == ("0/4 nodes are available: 1 node(s) had untolerated taint {k: v}, "
                                 "1 node(s) were unschedulable, 2 Insufficient cpu.")


def test_fit_error_sorts_reasons_as_strings() -> None:
    t = table_of(*(node(f"s{i}", cpu="1") for i in range(10)), *(node(f"m{i}", cpu="2", memory="1") for i in range(2)))
    with pytest.raises(FitError) as err:
        Algorithm(t).schedule(parse_pod(pod(cpu="1500m", memory="1Gi")))
    assert err.value.message == "0/12 nodes are available: 10 Insufficient cpu, 2 Insufficient memory."


def test_no_nodes() -> None:
    with pytest.raises(NoNodesAvailableError):
        Algorithm(NodeTable()).schedule(parse_pod(pod()))


@pytest.mark.parametrize("percentage,nodes,expected", [
    (0, 10, 10), (0, 99, 99), (0, 100, 100), (0, 1000, 420), (0, 5000, 500), (0, 6000, 300), (0, 100000, 5000),
    (0, 1000000, 50000), (10, 1000, 100), (10, 5000, 500), (1, 5000, 100), (100, 5000, 5000),
])
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, expected: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


def test_percentage_of_nodes_to_score_rotates_the_start() -> None:
    t = table_of(*(node(f"n{i:03}") for i in range(200)))
    algo = Algorithm(t, percentage_of_nodes_to_score=50)
    first = algo.schedule(parse_pod(pod()))
    assert first.feasible_nodes == 100 and first.evaluated_nodes == 100
    assert algo.next_start_node_index == 100
    algo.schedule(parse_pod(pod()))
    assert algo.next_start_node_index == 0


def test_node_updates_and_removal_keep_slots_consistent() -> None:
    t = table_of(node("a"), node("b"))
    t.add_pod(parse_pod(pod("x", cpu="1")), "b")
    assert t.upsert_node(node("b")) is False  # nothing the scheduler reads changed
    assert t.upsert_node(node("b", labels={"new": "1"})) is True
    t.remove_node("a")
    t.upsert_node(node("c"))
    assert t.count == 2 and t.index["c"] == 0
    assert t.requested[t.index["b"], 0] == 1000
    t.remove_node("b")
    t.upsert_node(node("b"))  # the pod waited for its node and is counted again
    assert t.requested[t.index["b"], 0] == 1000
    t.remove_pod("ns/x")
    assert t.requested[t.index["b"], 0] == 0
