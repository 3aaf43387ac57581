"""Pods per second megaplane's scheduler places, P pods on N nodes, in process and through HTTP.

Two runs per size, each timed from the scheduler's start (informers
synced) to the last bind answered, with every pod then confirmed bound by
the informer:

- loopback: `megaplane up`'s shape in one process (embedded store, API
  server, scheduler on the loopback client), nodes and pods created
  first through the same client;
- http: `megaplane apiserver` as its own process pinned to core 0, the
  scheduler in this process on core 1 over HTTP (megaplane.client, no
  client-side rate limit), nodes and pods created first over HTTP.

Nodes are plain Node objects (32 CPU, 256Gi, 110 pods); pods request
100m / 128Mi (SchedulingBasic's shape: no constraints). Reference, quoted:
kube-scheduler v1.32, 100K pods on 100K nodes in 387 s (REFERENCE.md §10,
from k8s-1m), and scheduler_perf's SchedulingBasic 5000Nodes_10000Pods
floor of 680 pods/s (REFERENCE.md §3/§10).

    python benchmarks/scheduler_throughput.py          # quick: 5K pods on 5K nodes, both ways (< 1 min)
    python benchmarks/scheduler_throughput.py --full   # adds 20K on 20K both ways and 100K on 100K loopback

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402

REFERENCE_PODS, REFERENCE_SECONDS = 100_000, 387.0
SCHEDULER_PERF_BASIC = 680.0


def node_body(i: int) -> Dict[str, Any]:
    alloc = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {"metadata": {"name": f"node-{i}", "labels": {"kubernetes.io/hostname": f"node-{i}",
                                                         "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
            "status": {"allocatable": alloc, "capacity": alloc}}


def pod_body(i: int) -> Dict[str, Any]:
    return {"metadata": {"name": f"pod-{i}", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "pause",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def create_all(client: Any, nodes: int, pods: int) -> None:
    node_rc, pod_rc = client.resource("nodes"), client.resource("pods")

    async def batch(make: Any, rc: Any, count: int, ns: Any) -> None:
        for start in range(0, count, 256):
            await asyncio.gather(*(rc.create(make(i), ns) for i in range(start, min(start + 256, count))))

    await batch(node_body, node_rc, nodes, None)
    await batch(pod_body, pod_rc, pods, "default")


async def schedule_all(client: Any, pods: int) -> Dict[str, float]:
    from megaplane.scheduler import Scheduler

    scheduler = Scheduler(client)
    t0 = time.perf_counter()
    await scheduler.start()
    t_sync = time.perf_counter()
    cpu0 = time.process_time()
    try:
        while scheduler.metrics.totals().get("scheduled", 0) < pods:
            await asyncio.sleep(0.01)
        t_done = time.perf_counter()
        cpu = time.process_time() - cpu0
        while sum(1 for p in scheduler.table.pods.values() if not p.assumed) < pods:
            await asyncio.sleep(0.01)
        t_confirmed = time.perf_counter()
        errors = scheduler.metrics.totals().get("error", 0) + scheduler.metrics.totals().get("unschedulable", 0)
    finally:
        await scheduler.stop()
    return {"sync_s": t_sync - t0, "schedule_s": t_done - t_sync, "confirmed_s": t_confirmed - t_sync,
            "pods_per_s": pods / (t_done - t_sync), "cpu_s": cpu, "errors": float(errors)}


async def loopback_run(nodes: int, pods: int) -> Dict[str, float]:
    from megaplane.controlplane import ControlPlane, ControlPlaneConfig

    plane = ControlPlane(ControlPlaneConfig(secure_port=0, port=0, controllers=[]))
    await plane.start()
    try:
        await create_all(plane.client, nodes, pods)
        return await schedule_all(plane.client, pods)
    finally:
        await plane.stop()


async def http_run(base: str, nodes: int, pods: int) -> Dict[str, float]:
    from benchmarks.fleet_capacity import kubeconfig_for
    from megaplane.client import Client

    directory = tempfile.mkdtemp(prefix="megaplane-sched-bench-")
    client = Client.from_kubeconfig(kubeconfig_for(base, directory), qps=0, burst=0, max_connections=8)
    try:
        await create_all(client, nodes, pods)
        return await schedule_all(client, pods)
    finally:
        await client.close()


def run_uvloop(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    sizes = [(5000, 5000)] + ([(20000, 20000)] if args.full else [])
    results: List[Dict[str, Any]] = []
    try:
        os.sched_setaffinity(0, {harness.CLIENT_CORE})
    except (AttributeError, OSError):
        pass
    for nodes, pods in sizes + ([(100_000, 100_000)] if args.full else []):
        r = run_uvloop(loopback_run(nodes, pods))
        results.append({"mode": "loopback", "nodes": nodes, "pods": pods, **r})
        print(f"loopback {pods} pods / {nodes} nodes: {r['pods_per_s']:.0f} pods/s", file=sys.stderr, flush=True)
    for nodes, pods in sizes:
        with harness.apiserver(["--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"]) as (_, base):
            r = run_uvloop(http_run(base, nodes, pods))
            results.append({"mode": "http", "nodes": nodes, "pods": pods, **r})
            print(f"http {pods} pods / {nodes} nodes: {r['pods_per_s']:.0f} pods/s", file=sys.stderr, flush=True)
    ref_rate = REFERENCE_PODS / REFERENCE_SECONDS
    rows = [[r["mode"], f"{r['pods']:,} / {r['nodes']:,}", f"{r['pods_per_s']:,.0f}",
             f"{1000 * r['schedule_s'] / r['pods']:.2f}", f"{1e6 * r['cpu_s'] / r['pods']:.0f}",
             f"{r['sync_s']:.2f}", f"{r['confirmed_s']:.2f}", f"{r['pods_per_s'] / ref_rate:.1f}x",
             str(int(r["errors"]))] for r in results]
    rows.append(["kube-scheduler 1.32 (published)", "100,000 / 100,000", f"{ref_rate:,.0f}",
                 f"{1000 * REFERENCE_SECONDS / REFERENCE_PODS:.2f}", "-", "-", "-", "1.0x", "-"])
    rows.append(["scheduler_perf SchedulingBasic floor", "10,000 / 5,000", f"{SCHEDULER_PERF_BASIC:,.0f}",
                 f"{1000 / SCHEDULER_PERF_BASIC:.2f}", "-", "-", "-", f"{SCHEDULER_PERF_BASIC / ref_rate:.1f}x", "-"])
    print(harness.markdown_table(["run", "pods / nodes", "pods/s", "ms/pod", "this process CPU us/pod (loopback: + API server)",
                                  "informer sync s", "all confirmed s", "vs kube-scheduler", "errors"], rows))
    print(json.dumps({"results": results, "reference": {"kube_scheduler_1_32_pods_per_s": ref_rate,
                                                         "kube_scheduler_1_32_ms_per_pod": 1000 * REFERENCE_SECONDS / REFERENCE_PODS,
                                                         "scheduler_perf_basic_floor": SCHEDULER_PERF_BASIC}}))


if __name__ == "__main__":
    main()
