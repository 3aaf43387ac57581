"""The scheduling cycle's shortcuts give exactly what the plain computation gives.

Two shortcuts in megaplane.scheduler: filtering node windows from the
start index instead of every node (algorithm._feasible_from), and keeping
LeastAllocated / BalancedAllocation per slot across cycles for pods of
the same requests (scorecache). Each is checked against the computation
it replaces on randomised clusters that change under it: nodes added,
updated (allocatable, taints, labels, cordons), removed and their slots
reused, pods placed and removed, a new extended resource widening the
table.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List

import numpy as np
import pytest

from megaplane.scheduler.algorithm import Algorithm
from megaplane.scheduler.nodetable import NodeTable
from megaplane.scheduler.plugins import balanced_allocation, least_allocated
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.scorecache import ResourceScoreCache

Obj = Dict[str, Any]


def random_node(rng: random.Random, i: int) -> Obj:
    alloc = {"cpu": str(rng.choice([0, 1, 2, 4, 8])), "memory": f"{rng.choice([0, 2, 4, 16])}Gi",
             "pods": str(rng.choice([3, 10, 110])), "ephemeral-storage": "100Gi"}
    if rng.random() < 0.2:
        alloc["example.com/nic"] = str(rng.choice([0, 1, 2]))
    taints = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}] if rng.random() < 0.2 else []
    labels = {"kubernetes.io/hostname": f"n{i}", "disk": rng.choice(["ssd", "hdd"])}
    return {"metadata": {"name": f"n{i}", "labels": labels},
            "spec": {"taints": taints, "unschedulable": rng.random() < 0.1},
            "status": {"allocatable": alloc, "capacity": alloc}}


def random_pod(rng: random.Random, i: int) -> Obj:
    requests = {}
    if rng.random() < 0.8:
        requests["cpu"] = rng.choice(["100m", "500m", "1"])
    if rng.random() < 0.8:
        requests["memory"] = rng.choice(["128Mi", "1Gi"])
    if rng.random() < 0.1:
        requests["example.com/nic"] = "1"
    spec: Obj = {"containers": [{"name": "c", "resources": {"requests": requests}}]}
    if rng.random() < 0.3:
        spec["nodeSelector"] = {"disk": "ssd"}
    if rng.random() < 0.3:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.1:
        spec["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    return {"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"u{i}"}, "spec": spec}


def mutate(rng: random.Random, table: NodeTable, step: int) -> None:
    roll = rng.random()
    names = [n for n in table.names if n]
    if roll < 0.15 or not names:
        table.upsert_node(random_node(rng, rng.randrange(400)))
    elif roll < 0.25:
        table.upsert_node(random_node(rng, int(rng.choice(names)[1:])))
    elif roll < 0.3:
        table.remove_node(rng.choice(names))
    elif roll < 0.7:
        table.add_pod(parse_pod(random_pod(rng, step)), rng.choice(names))
    elif table.pods:
        table.remove_pod(rng.choice(list(table.pods)))


@pytest.mark.parametrize("seed", range(4))
def test_score_cache_matches_fresh_scores_while_the_cluster_changes(seed: int) -> None:
    rng = random.Random(seed)
    table = NodeTable(capacity=8)  # small: grows (and widens for the NIC resource) during the run
    for i in range(40):
        table.upsert_node(random_node(rng, i))
    cache = ResourceScoreCache(table, max_entries=3)  # fewer than the request shapes: entries are evicted too
    shapes = [parse_pod(random_pod(rng, 10_000 + i)) for i in range(6)]
    for step in range(400):
        # Mostly one change between uses (rescored one slot at a time), sometimes a burst (rescored with numpy).
        for burst in range(40 if step % 25 == 0 else 1):
            mutate(rng, table, step * 100 + burst)
        pod = rng.choice(shapes)
        cand = np.flatnonzero(table.valid[: table.size])
        if len(cand) == 0:
            continue
        fit, balanced = cache.scores(pod, cand)
        assert fit.tolist() == least_allocated(table, pod, cand).tolist(), step
        assert balanced.tolist() == balanced_allocation(table, pod, cand).tolist(), step


@pytest.mark.parametrize("seed", range(4))
def test_windowed_filtering_finds_the_same_nodes_in_the_same_order(seed: int) -> None:
    rng = random.Random(100 + seed)
    table = NodeTable(capacity=16)
    for i in range(300):
        table.upsert_node(random_node(rng, i))
    algorithm = Algorithm(table, rng=random.Random(seed))
    for step in range(150):
        mutate(rng, table, step)
        pod = parse_pod(random_pod(rng, 20_000 + step))
        size = table.size
        start = rng.randrange(size)
        enough = rng.choice([1, 5, 50, 101, size + 1])
        every = np.flatnonzero(algorithm.feasible(pod))
        rotated = np.concatenate([every[every >= start], every[every < start]])
        found = algorithm._feasible_from(pod, start, enough)
        assert found[:enough].tolist() == rotated[:enough].tolist(), step
        assert len(found) >= min(enough, len(rotated))


def test_schedule_places_as_full_filtering_and_fresh_scores_would() -> None:
    """Two algorithms over twin tables, one with both shortcuts disabled, place a stream of pods identically."""
    rng = random.Random(7)
    nodes = [random_node(rng, i) for i in range(250)]
    pods: List[Obj] = [random_pod(rng, i) for i in range(300)]
    tables = [NodeTable(), NodeTable()]
    for t in tables:
        for n in nodes:
            t.upsert_node(n)
    fast = Algorithm(tables[0], rng=random.Random(3))
    plain = Algorithm(tables[1], rng=random.Random(3))
    plain.score_cache = None  # type: ignore[assignment]
    plain._feasible_from = lambda pod, start, enough: _every_from(plain, pod, start)  # type: ignore[method-assign]
    for p in pods:
        got = []
        for algo, t in ((fast, tables[0]), (plain, tables[1])):
            try:
                result = algo.schedule(parse_pod(p))
            except Exception as exc:  # FitError: both must fail alike
                got.append(type(exc).__name__)
                continue
            t.add_pod(parse_pod(p), result.node, assumed=True)
            got.append((result.node, result.evaluated_nodes, result.feasible_nodes))
        assert got[0] == got[1], p["metadata"]["name"]


def _every_from(algo: Algorithm, pod: Any, start: int) -> np.ndarray:
    every = np.flatnonzero(algo.feasible(pod))
    return np.concatenate([every[every >= start], every[every < start]])


@pytest.mark.parametrize("seed", range(3))
def test_preemption_skips_hopeless_nodes_with_the_reasons_their_dry_runs_give(seed: int) -> None:
    """For pods whose only pod-dependent filter is NodeResourcesFit, Preemptor's shortcuts (hopeless nodes found at
    once, victims chosen in plain integers) give the same candidate and victims, or the same message, as a dry run
    of every filter on every node; nominated pods included."""
    from megaplane.scheduler.algorithm import FitError
    from megaplane.scheduler.preemption import Preemptor

    rng = random.Random(300 + seed)
    table = NodeTable()
    for i in range(120):
        table.upsert_node(random_node(rng, i))
    algorithm = Algorithm(table, rng=random.Random(seed))
    for i in range(400):
        p = random_pod(rng, i)
        p["spec"]["priority"] = rng.choice([0, 5, 10])
        info = parse_pod(p)
        try:
            table.add_pod(info, algorithm.schedule(info).node, assumed=True)
        except FitError:
            pass
    checked = chosen = 0
    # Some nominated pods of high priority hold room on nodes (the dry run counts them).
    for i in range(10):
        p = random_pod(rng, 5000 + i)
        p["spec"]["priority"] = 30
        info = parse_pod(p)
        algorithm.nominated[info.key] = (info, rng.choice(table.names))
    for i in range(40):
        p = random_pod(rng, 1000 + i)
        p["spec"]["priority"] = rng.choice([5, 10, 20])
        p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = rng.choice(["3", "7", "9"])
        info = parse_pod(p)
        codes = algorithm.statuses(info)
        fast = Preemptor(table, algorithm, rng=random.Random(i)).preempt(info, codes)
        plain_preemptor = Preemptor(table, algorithm, rng=random.Random(i))
        plain_preemptor._resource_only = lambda pod: False  # type: ignore[method-assign]
        plain = plain_preemptor.preempt(info, codes)
        summary = [(c.node, [v.info.key for v in c.victims]) if c is not None else None for c, _ in (fast, plain)]
        assert summary[0] == summary[1] and fast[1] == plain[1], (i, fast[1], plain[1])
        checked += fast[0] is None and "Insufficient cpu" in fast[1]
        chosen += fast[0] is not None and len(fast[0].victims) > 0
    assert checked  # some preemptors fit nowhere: the shortcut was taken and its reasons compared
    assert chosen  # and some preempt: victims chosen both ways
