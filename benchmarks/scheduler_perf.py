"""Pods per second of the scheduling algorithm alone, in process, on upstream scheduler_perf's constraint workloads.

Shapes as kubernetes/kubernetes test/integration/scheduler_perf
(config/performance-config.yaml and its pod templates):

- TopologySpreading: nodes zoned moon-1/2/3; initPods pod-default; measured
  pods color=blue with a zone constraint maxSkew 5, DoNotSchedule;
- SchedulingPodAntiAffinity: measured and initial pods color=green with
  required anti-affinity to color=green per kubernetes.io/hostname over
  namespaces sched-0 and sched-1 (init in sched-0, measured in sched-1);
- SchedulingPodAffinity: every node in zone1; pods color=blue with required
  affinity to color=blue per zone over sched-0 and sched-1;
- DefaultTopologySpreading: nodes zoned moon-1/2/3; measured pods selected
  by a Service, so the system default constraints (hostname maxSkew 3, zone
  maxSkew 5, ScheduleAnyway) score every placement.

Nodes are node-default (4 CPU, 32Gi, 110 pods), pods request 100m / 500Mi.
Every pod goes through `Algorithm.schedule` (all filters, the scores over
the nodes percentageOfNodesToScore picks) and is then assumed on its node
(`NodeTable.add_pod`), as the scheduler's loop does; no API server, no
binding. Initial pods are placed the same way (not timed). The cores are
shared, so next to wall-clock pods/s the table gives pods per CPU second
of this process (what one core would do undisturbed). The reference
measured in the same run is SchedulingBasic (pod-default, no constraints)
on the same nodes; upstream's thresholds (pods/s, REFERENCE.md §10) are
quoted next to each workload.

    python benchmarks/scheduler_perf.py          # quick: 500 nodes (upstream's 500Nodes shapes), < 1 min
    python benchmarks/scheduler_perf.py --full   # upstream's 5000-node sizes, and SchedulingBasic on 100K nodes

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402

ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"
#: Upstream scheduler_perf thresholds at 5000 nodes (pods/s).
THRESHOLDS = {"SchedulingBasic": 680.0, "TopologySpreading": 460.0, "DefaultTopologySpreading": 160.0,
              "SchedulingPodAntiAffinity": 60.0, "SchedulingPodAffinity": 35.0, "SchedulingNodeAffinity": 220.0,
              "PreferredTopologySpreading": 340.0, "SchedulingWithExtendedResource": 180.0, "PreemptionAsync": 570.0,
              "Unschedulable": 590.0}
#: Churn workloads inject one pod per this many measured pods: upstream's 5 pods/s next to its ~500 pods/s.
CHURN_EVERY = 100

Obj = Dict[str, Any]
PodMaker = Callable[[int], Obj]


def node(i: int, zone: str) -> Obj:
    alloc = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    labels = {HOST: f"node-{i}"}
    if zone:
        labels[ZONE] = zone
    return {"metadata": {"name": f"node-{i}", "labels": labels}, "status": {"allocatable": alloc, "capacity": alloc}}


def _pod(name: str, ns: str, labels: Dict[str, str], **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"{ns}/{name}", "labels": labels},
            "spec": {"containers": [{"name": "pause", "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}},
                                     "ports": [{"containerPort": 80}]}], **spec}}


def pod_default(prefix: str, ns: str = "default") -> PodMaker:
    return lambda i: _pod(f"{prefix}-{i}", ns, {})


def pod_spreading(prefix: str) -> PodMaker:
    constraint = {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
                  "labelSelector": {"matchLabels": {"color": "blue"}}}
    return lambda i: _pod(f"{prefix}-{i}", "default", {"color": "blue"}, topologySpreadConstraints=[constraint])


def pod_preferred_spreading(prefix: str) -> PodMaker:
    constraint = {"maxSkew": 5, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
                  "labelSelector": {"matchLabels": {"color": "blue"}}}
    return lambda i: _pod(f"{prefix}-{i}", "default", {"color": "blue"}, topologySpreadConstraints=[constraint])


def pod_node_affinity(prefix: str) -> PodMaker:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["zone1", "zone2"]}]}]}}}
    return lambda i: _pod(f"{prefix}-{i}", "default", {}, affinity=affinity)


def pod_requesting(prefix: str, cpu: str, priority: int = 0, extended: str = "") -> PodMaker:
    def make(i: int) -> Obj:
        obj = _pod(f"{prefix}-{i}", "default", {}, priority=priority)
        requests = obj["spec"]["containers"][0]["resources"]["requests"]
        requests["cpu"] = cpu
        if extended:
            requests[extended.format(i=i)] = "1"
        return obj
    return make


def pod_of_service(prefix: str) -> PodMaker:
    return lambda i: _pod(f"{prefix}-{i}", "default", {"app": "web"})


def _pod_affinity(kind: str, color: str, key: str, prefix: str, ns: str) -> PodMaker:
    affinity = {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"color": color}}, "topologyKey": key,
        "namespaces": ["sched-1", "sched-0"]}]}}
    return lambda i: _pod(f"{prefix}-{i}", ns, {"color": color}, affinity=affinity)


def pod_anti_affinity(prefix: str, ns: str) -> PodMaker:
    return _pod_affinity("podAntiAffinity", "green", HOST, prefix, ns)


def pod_affinity(prefix: str, ns: str) -> PodMaker:
    return _pod_affinity("podAffinity", "blue", ZONE, prefix, ns)


#: name -> (zones of the nodes, init pods maker, measured pods maker, {size: (nodes, init, measured)}).
WORKLOADS: Dict[str, Tuple[List[str], PodMaker, PodMaker, Dict[str, Tuple[int, int, int]]]] = {
    "SchedulingBasic": (["zone1"], pod_default("init"), pod_default("measure"),
                        {"500Nodes": (500, 500, 1000), "5000Nodes_10000Pods": (5000, 1000, 10000),
                         "100000Nodes_10000Pods": (100_000, 1000, 10000)}),
    "TopologySpreading": (["moon-1", "moon-2", "moon-3"], pod_default("init"), pod_spreading("measure"),
                          {"500Nodes": (500, 1000, 1000), "5000Nodes_5000Pods": (5000, 5000, 5000)}),
    "DefaultTopologySpreading": (["moon-1", "moon-2", "moon-3"], pod_default("init"), pod_of_service("measure"),
                                 {"500Nodes": (500, 1000, 1000), "5000Nodes_5000Pods": (5000, 5000, 5000)}),
    "SchedulingPodAntiAffinity": (["zone1"], pod_anti_affinity("init", "sched-0"),
                                  pod_anti_affinity("measure", "sched-1"),
                                  {"500Nodes": (500, 100, 400), "5000Nodes_2000Pods": (5000, 1000, 1000)}),
    "SchedulingPodAffinity": (["zone1"], pod_affinity("init", "sched-0"), pod_affinity("measure", "sched-1"),
                              {"500Nodes": (500, 500, 1000), "5000Nodes_5000Pods": (5000, 5000, 5000)}),
    "SchedulingNodeAffinity": (["zone1"], pod_node_affinity("init"), pod_node_affinity("measure"),
                               {"500Nodes": (500, 500, 1000), "5000Nodes_10000Pods": (5000, 5000, 10000)}),
    "PreferredTopologySpreading": (["moon-1", "moon-2", "moon-3"], pod_default("init"),
                                   pod_preferred_spreading("measure"),
                                   {"500Nodes": (500, 1000, 1000), "5000Nodes_5000Pods": (5000, 5000, 5000)}),
    # Each node has its own extended resource foo.com/bar-<i> and pod i asks for it: one feasible node per pod.
    # Upstream's size is 5000: NodeTable keeps a column per resource, so 5000 resources would be a 5000x5000
    # table; the 500-node shape is run in both modes.
    "SchedulingWithExtendedResource": ([], pod_default("init"), pod_requesting("measure", "100m",
                                                                                extended="foo.com/bar-{i}"),
                                       {"500Nodes": (500, 0, 500), "5000Nodes_500Pods": (500, 0, 500)}),
    # 4 low-priority pods of 900m per 4-CPU node; a high-priority 3-CPU pod (which must preempt three of them)
    # every CHURN_EVERY measured pods; the measured pods (100m) always fit.
    "PreemptionAsync": ([], pod_requesting("init", "900m"), pod_default("measure"),
                        {"500Nodes": (500, 2000, 500), "5000Nodes": (5000, 20000, 5000)}),
    # A 9-CPU high-priority pod, which fits nowhere and preempts nothing, every CHURN_EVERY measured pods.
    "Unschedulable": ([], pod_default("init"), pod_default("measure"),
                      {"500Nodes": (500, 10, 1000), "5000Nodes_10000Pods": (5000, 100, 10000)}),
}
#: The churn pods of the churn workloads.
CHURN: Dict[str, PodMaker] = {"PreemptionAsync": pod_requesting("churn", "3", priority=10),
                              "Unschedulable": pod_requesting("churn", "9", priority=10)}


def run(name: str, size: str) -> Dict[str, Any]:
    from megaplane.scheduler.algorithm import Algorithm, FitError
    from megaplane.scheduler.nodetable import NodeTable
    from megaplane.scheduler.podspec import parse_pod
    from megaplane.scheduler.preemption import Preemptor

    zones, make_init, make_measured, sizes = WORKLOADS[name]
    nodes, init, measured = sizes[size]
    table = NodeTable(capacity=nodes)
    for i in range(nodes):
        n = node(i, zones[i % len(zones)] if zones else "")
        if name == "SchedulingWithExtendedResource":
            n["status"]["allocatable"][f"foo.com/bar-{i}"] = "1"
        table.upsert_node(n)
    # DefaultTopologySpreading's pods belong to a Service: the system default constraints apply to them.
    table.objects.upsert("services", {"metadata": {"name": "web", "namespace": "default"},
                                      "spec": {"selector": {"app": "web"}}})
    algorithm = Algorithm(table, rng=random.Random(1))
    preemptor = Preemptor(table, algorithm, rng=random.Random(2))
    churn = CHURN.get(name)

    def schedule(info: Any) -> bool:
        try:
            result = algorithm.schedule(info)
        except FitError:
            # DefaultPreemption as the scheduler runs it; victims are taken off at once (their deletion is the
            # API server's part) and the preemptor placed on the node it was nominated to.
            candidate, _ = preemptor.preempt(info, algorithm.statuses(info))
            if candidate is None:
                return False
            for victim in candidate.victims:
                table.remove_pod(victim.info.key)
            table.add_pod(info, candidate.node, assumed=True)
            return True
        table.add_pod(info, result.node, assumed=True)
        return True

    def place(make: PodMaker, count: int, churning: bool = False) -> int:
        failed = 0
        for i in range(count):
            if churning and churn is not None and i % CHURN_EVERY == 0:
                schedule(parse_pod(churn(i)))
            if not schedule(parse_pod(make(i))):
                failed += 1
        return failed

    place(make_init, init)
    cpu0, t0 = time.process_time(), time.perf_counter()
    failed = place(make_measured, measured, churning=True)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"workload": f"{name}/{size}", "nodes": nodes, "init_pods": init, "measured_pods": measured,
            "seconds": elapsed, "pods_per_s": measured / elapsed, "cpu_us_per_pod": 1e6 * cpu / measured,
            "pods_per_cpu_s": measured / cpu if cpu > 0 else 0.0,
            "unschedulable": failed, "threshold": THRESHOLDS[name],
            "vs_threshold": measured / elapsed / THRESHOLDS[name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="upstream's 5000-node sizes")
    parser.add_argument("--only", default="", help="run only workloads whose name contains this")
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {harness.CLIENT_CORE})
    except (AttributeError, OSError):
        pass
    results = []
    for name, (_, _, _, sizes) in WORKLOADS.items():
        if args.only and args.only not in name:
            continue
        chosen = [s for s in sizes if s.startswith(("5000", "100000"))] if args.full else ["500Nodes"]
        for size in chosen:
            r = run(name, size)
            results.append(r)
            print(f"{r['workload']}: {r['pods_per_s']:,.0f} pods/s ({r['vs_threshold']:.1f}x upstream's "
                  f"{r['threshold']:.0f})", file=sys.stderr, flush=True)
    rows = [[r["workload"], f"{r['nodes']:,}", f"{r['init_pods']:,}", f"{r['measured_pods']:,}",
             f"{r['pods_per_s']:,.0f}", f"{r['cpu_us_per_pod']:,.0f}", f"{r['pods_per_cpu_s']:,.0f}",
             str(r["unschedulable"]),
             f"{r['threshold']:.0f}", f"{r['vs_threshold']:.1f}x"] for r in results]
    print(harness.markdown_table(["workload", "nodes", "init pods", "measured pods", "pods/s (algorithm, in process)",
                                  "CPU us/pod", "pods per CPU second", "unschedulable", "upstream threshold (5000 nodes)",
                                  "vs threshold"], rows))
    print(json.dumps({"results": results, "reference": {"upstream_thresholds_pods_per_s": THRESHOLDS,
                                                         "same_run_reference": "SchedulingBasic"}}))


if __name__ == "__main__":
    main()
