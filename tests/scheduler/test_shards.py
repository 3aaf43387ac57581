"""Sharded scatter/gather: `megaplane scheduler --shards 2` next to one scheduler, on one cluster.

In-process: the score parts of candidates split across shards, joined and
finished over their union, total exactly as `score_nodes` over all of
them; two shard replicas' candidates are disjoint and their summed FitError
counts are one scheduler's; a replica fed the journal is the coordinator's
table slot for slot.

Processes: `megaplane up --scheduler=false` with 6 fleet nodes in 3 zones,
and two `megaplane scheduler` processes against it, one with profile
`single` (one process) and one with profile `sharded` and `--shards 2`.
The same constraint-heavy workloads are created in two namespaces, one per
scheduler (pod affinity and spreading count pods of the pod's own
namespace, and requests are small, so the two do not constrain each
other): each gives the same feasibility, the same per-zone / per-node
shape and the same upstream Pending messages. A shard killed with SIGKILL
is restarted and the pods created around it all get bound.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pytest

from megaplane.scheduler.algorithm import Algorithm
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.profile import score_nodes
from megaplane.scheduler.replica import ReplicatedTable, apply
from megaplane.scheduler.scoreparts import ScoreParts, score_parts, totals
from megaplane.scheduler.shard import ShardAlgorithm
from tests.api.conftest import Cluster
from tests.fleet.conftest import Fleet, eventually, start_server
from tests.scheduler.test_up import FLEET_FLAGS

ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"

# -- in process ------------------------------------------------------------------------------------


def _node(i: int, zone: str, taint: bool = False) -> Dict[str, Any]:
    alloc = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    spec = {"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]} if taint else {}
    return {"metadata": {"name": f"node-{i}", "labels": {HOST: f"node-{i}", ZONE: zone}}, "spec": spec,
            "status": {"allocatable": alloc}}


def _pod(name: str, labels: Dict[str, str], cpu: str = "100m", **spec: Any) -> Dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "500Mi"}}}],
                     **spec}}


def _workload(i: int) -> Dict[str, Any]:
    kind = i % 4
    if kind == 0:  # every other one tolerates the PreferNoSchedule taint (its raw taint score is 0 everywhere)
        return _pod(f"plain-{i}", {}, tolerations=[{"key": "k", "operator": "Exists"}] if i % 8 == 0 else [])
    if kind == 1:
        return _pod(f"spread-{i}", {"app": "s"}, topologySpreadConstraints=[{
            "maxSkew": 2, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "s"}}}])
    if kind == 2:
        return _pod(f"pref-{i}", {"app": "p"}, affinity={
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "s"}}, "topologyKey": ZONE}}]},
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 3, "preference": {
                "matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a"]}]}}]}})
    return _pod(f"anti-{i}", {"app": "x"}, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "x"}},
                                                            "topologyKey": HOST}]}})


def _cluster(nodes: int = 240, pods: int = 300) -> Tuple[ReplicatedTable, Algorithm]:
    table = ReplicatedTable()
    for i in range(nodes):
        table.upsert_node(_node(i, "abc"[i % 3], taint=i % 7 == 0))
    algorithm = Algorithm(table, rng=random.Random(1))
    for i in range(pods):
        info = parse_pod(_workload(i))
        table.add_pod(info, algorithm.schedule(info).node, assumed=True)
    return table, algorithm


def test_score_parts_split_any_way_total_as_one_scheduler_scores() -> None:
    table, algorithm = _cluster()
    rng = np.random.default_rng(3)
    for i in range(4):
        info = parse_pod(_workload(1000 + i))
        cand = np.flatnonzero(algorithm.feasible(info))
        want = dict(zip(cand.tolist(), score_nodes(table, info, cand).tolist()))
        assert len(set(want.values())) > 1  # the scores differ: the check can fail
        for _ in range(4):
            order = rng.permutation(cand)
            cut = int(rng.integers(1, len(order)))
            joined = ScoreParts.join([score_parts(table, info, order[:cut]), score_parts(table, info, order[cut:])])
            assert dict(zip(joined.slots.tolist(), totals(joined).tolist())) == want


def test_shards_split_the_candidates_and_sum_to_one_schedulers_fit_error() -> None:
    table, algorithm = _cluster(nodes=60, pods=40)  # under 100 nodes every feasible node is a candidate
    shards = [ShardAlgorithm(pickle.loads(pickle.dumps(table)), i, 2, rng=random.Random(i)) for i in range(2)]
    compacted = 0
    for i in range(8):
        info = parse_pod(_workload(2000 + i))
        proposals = [s.propose(info) for s in shards]
        for s in shards:
            s.release([])
        found = [p.parts for p in proposals if p.parts is not None]
        assert all((p.parts.slots % 2 == k).all() for k, p in enumerate(proposals) if p.parts is not None)
        compacted += sum(1 for parts in found if parts.multiplicity is not None)
        # Every feasible node is a candidate: the union's best total and its ties (rows weighted by how many
        # candidates each stands for) are one scheduler's over all feasible nodes.
        feasible = np.flatnonzero(algorithm.feasible(info))
        single = score_nodes(table, info, feasible)
        joined = ScoreParts.join(found)
        union = totals(joined)
        assert union.max() == single.max()
        best = union == union.max()
        assert set(joined.slots[best].tolist()) <= set(feasible[single == single.max()].tolist())
        assert int(joined.weights()[best].sum()) == int(np.count_nonzero(single == single.max()))
    assert compacted  # plain pods send one row for all their best nodes
    big = parse_pod(_pod("big", {}, cpu="9"))
    summed: Dict[str, int] = {}
    for s in shards:
        proposal = s.propose(big)
        assert proposal.parts is None and proposal.reasons
        for reason, n in proposal.reasons.items():
            summed[reason] = summed.get(reason, 0) + n
    assert summed == algorithm.diagnose(big) == {"Insufficient cpu": 60}


def test_a_replica_fed_the_journal_is_the_coordinators_table() -> None:
    table, _ = _cluster(nodes=30, pods=20)
    replica = pickle.loads(pickle.dumps(table))
    assert type(replica).__name__ == "NodeTable"
    table.take_journal()
    table.remove_node("node-3")
    table.upsert_node(_node(99, "b"))  # reuses node-3's slot
    table.remove_pod(next(iter(table.pods)))
    table.add_pod(parse_pod(_workload(5000)), "node-99", assumed=True)
    table.objects.upsert("services", {"metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"selector": {"app": "s"}}})
    nominated: Dict[str, Any] = {}
    apply(replica, nominated, table.take_journal())
    assert replica.names == table.names and replica.index == table.index
    assert sorted(replica.pods) == sorted(table.pods)
    assert (replica.requested[: table.size] == table.requested[: table.size]).all()
    assert replica.objects.default_selector("default", {"app": "s"}) == \
        table.objects.default_selector("default", {"app": "s"})


def test_reservations_are_released_or_kept_as_the_winners_ops_say() -> None:
    table, _ = _cluster(nodes=30, pods=10)
    table.take_journal()
    shards = [ShardAlgorithm(pickle.loads(pickle.dumps(table)), i, 2, rng=random.Random(i)) for i in range(2)]
    pods = [parse_pod(_workload(6000 + 4 * i)) for i in range(3)]
    proposals = [[s.propose(p) for p in pods] for s in shards]
    # Pod 0 goes where shard 0 reserved it, pod 1 where shard 1 did, pod 2 nowhere.
    table.add_pod(pods[0], table.names[proposals[0][0].tentative], assumed=True)
    table.add_pod(pods[1], table.names[proposals[1][1].tentative], assumed=True)
    ops = table.take_journal()
    for s in shards:
        s.release(ops)
        apply(s.table, s.nominated, ops)
        assert sorted(s.table.pods) == sorted(table.pods)
        assert {k: p.node_name for k, p in s.table.pods.items()} == {k: p.node_name for k, p in table.pods.items()}
        assert (s.table.requested[: table.size] == table.requested[: table.size]).all()
        assert (s.table.pod_index.counts(next(iter(table.pod_index.matchers())))[: table.size] ==
                table.pod_index.counts(next(iter(table.pod_index.matchers())))[: table.size]).all()


def test_a_journal_past_its_bound_is_dropped_for_snapshots() -> None:
    table, _ = _cluster(nodes=10, pods=0)
    table.take_journal()
    table.MAX_OPS = 5
    for i in range(4):
        table.add_pod(parse_pod(_workload(4 * i)), "node-1", assumed=True)
    assert not table.overflowed() and len(table.journal) == 4
    for i in range(4, 10):
        table.add_pod(parse_pod(_workload(4 * i)), "node-1", assumed=True)
    assert table.overflowed() and table.journal == []
    assert not table.overflowed()


# -- the processes ---------------------------------------------------------------------------------------

PROFILES = {"single": ("single-scheduler", []), "sharded": ("sharded-scheduler", ["--shards", "2"])}


@pytest.fixture(scope="module")
def clusters() -> Iterator[Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]]:
    root = tempfile.mkdtemp(prefix="megaplane-shards-")
    c = start_server(root, "up", ["--nodes", "6", "--scheduler=false", *FLEET_FLAGS])
    scheds: Dict[str, Fleet] = {}
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 6, "6 nodes")
        nodes = json.loads(c.ok("get", "nodes", "-o", "json"))["items"]
        zones = {n["metadata"]["name"]: n["metadata"]["labels"][ZONE] for n in nodes}
        for ns, (profile, flags) in PROFILES.items():
            c.ok("create", "namespace", ns)
            log_path = os.path.join(root, f"{ns}.log")
            with open(log_path, "w") as log:
                proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig",
                                         c.kubeconfig, "--scheduler-name", profile, "--leader-elect=false", *flags],
                                        stdout=log, stderr=subprocess.STDOUT)
            scheds[ns] = Fleet(proc, log_path)
        for ns, sched in scheds.items():
            eventually(lambda s=sched: "scheduling pods of" in s.output() or s.proc.poll() is not None,  # type: ignore[misc]
                       f"the {ns} scheduler to start", timeout=60)
            if sched.proc.poll() is not None:
                raise RuntimeError(f"megaplane scheduler exited with {sched.proc.returncode}:\n{sched.output()}")
        eventually(lambda: scheds["sharded"].output().count("scheduler shard") >= 2, "2 shards started")
        yield c, scheds, zones
    finally:
        for sched in scheds.values():
            sched.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _manifest(ns: str, name: str, labels: Dict[str, str], cpu: str = "100m", **spec: Any) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"schedulerName": PROFILES[ns][0],
                     "containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu}}}],
                     **spec}}


def _create(c: Cluster, pods: List[Dict[str, Any]]) -> None:
    c.ok("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))


def _pods(c: Cluster, ns: str, prefix: str) -> List[Dict[str, Any]]:
    items = json.loads(c.ok("get", "pods", "-n", ns, "-o", "json"))["items"]
    return [p for p in items if p["metadata"]["name"].startswith(prefix)]


def _message(pod: Dict[str, Any]) -> Optional[str]:
    for cond in pod["status"].get("conditions") or ():
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return str(cond["message"])
    return None


def _settled(c: Cluster, ns: str, prefix: str, count: int, pending: int) -> List[Dict[str, Any]]:
    """The `count` pods once all but `pending` are bound and those carry their Unschedulable message."""
    def probe() -> Optional[List[Dict[str, Any]]]:
        pods = _pods(c, ns, prefix)
        bound = [p for p in pods if p["spec"].get("nodeName")]
        waiting = [p for p in pods if not p["spec"].get("nodeName") and _message(p)]
        return pods if len(pods) == count and len(bound) == count - pending and len(waiting) == pending else None
    return eventually(probe, f"{ns}/{prefix}*: {count - pending} bound, {pending} Unschedulable", timeout=40)


def _run_both(c: Cluster, prefix: str, count: int, pending: int, make: Any) -> Dict[str, List[Dict[str, Any]]]:
    for ns in PROFILES:
        _create(c, [make(ns, f"{prefix}-{i}") for i in range(count)])
    return {ns: _settled(c, ns, prefix, count, pending) for ns in PROFILES}


def _bound_to(pods: List[Dict[str, Any]]) -> List[str]:
    return [p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")]


def _messages(pods: List[Dict[str, Any]]) -> List[str]:
    return sorted(m for m in (_message(p) for p in pods) if m)


def _anti(key: str, app: str) -> Dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}


def test_one_per_node_anti_affinity_as_one_scheduler(clusters: Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]) -> None:
    c, _, _ = clusters
    got = _run_both(c, "host", 8, 2, lambda ns, name: _manifest(ns, name, {"app": "host"}, affinity=_anti(HOST, "host")))
    for ns, pods in got.items():
        assert len(set(_bound_to(pods))) == 6, ns  # one per node, all six
    assert _messages(got["sharded"]) == _messages(got["single"])
    assert _messages(got["sharded"])[0].startswith("0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules.")


def test_one_per_zone_anti_affinity_as_one_scheduler(clusters: Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]) -> None:
    c, _, zones = clusters
    got = _run_both(c, "zonal", 5, 2, lambda ns, name: _manifest(ns, name, {"app": "zonal"}, affinity=_anti(ZONE, "zonal")))
    for ns, pods in got.items():
        assert sorted(zones[n] for n in _bound_to(pods)) == sorted(set(zones.values())), ns
    assert _messages(got["sharded"]) == _messages(got["single"])
    assert _messages(got["single"])[0].startswith("0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules.")


def test_zone_spread_max_skew_1_as_one_scheduler(clusters: Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]) -> None:
    c, _, zones = clusters
    # One pod per node, and one node of the first zone excluded: that zone takes 1 pod, so the others may take 2
    # (maxSkew 1), and the 6th and 7th pods break the skew wherever they go.
    first = sorted(set(zones.values()))[0]
    excluded = sorted(n for n, z in zones.items() if z == first)[0]
    spread = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    affinity = {**_anti(HOST, "spread"), "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": [excluded]}]}]}}}
    got = _run_both(c, "spread", 7, 2, lambda ns, name: _manifest(ns, name, {"app": "spread"}, affinity=affinity,
                                                                 topologySpreadConstraints=spread))
    shapes = {}
    for ns, pods in got.items():
        per_zone: Dict[str, int] = {}
        for n in _bound_to(pods):
            per_zone[zones[n]] = per_zone.get(zones[n], 0) + 1
        shapes[ns] = sorted(per_zone.items())
        assert excluded not in _bound_to(pods), ns
    assert shapes["sharded"] == shapes["single"]
    assert sorted(n for _, n in shapes["single"]) == [1, 2, 2] and dict(shapes["single"])[first] == 1
    assert _messages(got["sharded"]) == _messages(got["single"])
    assert _messages(got["single"])[0].startswith(
        "0/6 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't match pod "
        "anti-affinity rules, 4 node(s) didn't match pod topology spread constraints. preemption: ")


def test_node_affinity_and_insufficient_resources_as_one_scheduler(
        clusters: Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]) -> None:
    c, _, zones = clusters
    zone = sorted(set(zones.values()))[0]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": [zone]}]}]}}}
    got = _run_both(c, "pinned", 4, 0, lambda ns, name: _manifest(ns, name, {"app": "pinned"}, affinity=affinity))
    for ns, pods in got.items():
        assert {zones[n] for n in _bound_to(pods)} == {zone}, ns
    got = _run_both(c, "huge", 2, 2, lambda ns, name: _manifest(ns, name, {"app": "huge"}, cpu="5"))
    assert _messages(got["sharded"]) == _messages(got["single"])
    assert _messages(got["sharded"])[0].startswith("0/6 nodes are available: 6 Insufficient cpu.")


def _shard_pids(parent: int) -> List[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"megaplane.scheduler.shard" in cmdline:
            out.append(int(entry))
    return out


def test_a_shard_killed_with_sigkill_is_restarted_and_no_pod_is_lost(
        clusters: Tuple[Cluster, Dict[str, Fleet], Dict[str, str]]) -> None:
    c, scheds, _ = clusters
    sched = scheds["sharded"]
    before = _shard_pids(sched.proc.pid)
    assert len(before) == 2
    _create(c, [_manifest("sharded", f"kill-a-{i}", {"app": "kill"}) for i in range(10)])
    os.kill(before[0], signal.SIGKILL)
    _create(c, [_manifest("sharded", f"kill-b-{i}", {"app": "kill"}) for i in range(10)])
    eventually(lambda: len([p for p in _shard_pids(sched.proc.pid) if p not in before]) == 1, "a new shard")
    eventually(lambda: len(_bound_to(_pods(c, "sharded", "kill-"))) == 20, "all 20 pods bound", timeout=40)
    assert "exited with -9; restarting" in sched.output()


def test_up_with_scheduler_shards_places_pods_and_preempts() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-shards-up-")
    c = start_server(root, "up", ["--nodes", "3", "--scheduler-shards", "2", *FLEET_FLAGS])
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 3, "3 nodes")
        pods = [_manifest("single", f"up-{i}", {"app": "up"}, affinity=_anti(HOST, "up")) for i in range(4)]
        for pod in pods:
            pod["metadata"]["namespace"] = "default"
            pod["spec"].pop("schedulerName")
        _create(c, pods)
        settled = _settled(c, "default", "up-", 4, 1)
        assert len(set(_bound_to(settled))) == 3
        assert _messages(settled)[0].startswith("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
        # DefaultPreemption over every shard's nodes: 3 CPU pods fill the three nodes, a more important one
        # evicts one of them (PostFilter on the coordinator's table) and is bound to its node.
        c.ok("create", "priorityclass", "high", "--value=100000")
        low = [_manifest("single", f"low-{i}", {"app": "low"}, cpu="3") for i in range(3)]
        for pod in low:
            pod["metadata"]["namespace"] = "default"
            pod["spec"].pop("schedulerName")
            pod["spec"]["terminationGracePeriodSeconds"] = 1
        _create(c, low)
        eventually(lambda: len(_bound_to(_pods(c, "default", "low-"))) == 3, "3 low-priority pods bound")
        urgent = _manifest("single", "urgent", {"app": "urgent"}, cpu="3", priorityClassName="high")
        urgent["metadata"]["namespace"] = "default"
        urgent["spec"].pop("schedulerName")
        _create(c, [urgent])
        node = eventually(lambda: (_pods(c, "default", "urgent") or [{"spec": {}}])[0]["spec"].get("nodeName"),
                          "the high-priority pod bound after preempting", timeout=60)
        preempted = json.loads(c.ok("get", "events", "-o", "json", "--field-selector", "reason=Preempted"))["items"]
        assert preempted and all(e["message"].endswith(f"on node {node}") for e in preempted)
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
