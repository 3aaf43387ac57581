"""Parallel per tenant: pods bound per second by `megaplane scheduler` with 1 and with 2 tenant workers.

`megaplane apiserver` runs as its own process; N plain nodes are labelled
into T tenants' pools (`megaplane.io/tenant`), P pods each pinned to one
tenant by nodeSelector are created first (tenant names chosen so they split evenly over two workers); then `megaplane scheduler
--tenant-label megaplane.io/tenant --tenant-workers W` starts as a
process and the run ends when every pod is bound (polled with a
`spec.nodeName=` field selector). Timed from the scheduler's start, so
both runs include a process start and informer sync; the same cluster
shape is rebuilt for each run. Reference in the same run: W=1, the
scheduler as it runs without tenants. On this 2-core machine the API
server shares the cores with the workers, so the ratio is what two
workers gain when the API server also needs CPU.

    python benchmarks/scheduler_tenants.py          # quick: 1,000 nodes, 4,000 pods, 4 tenants (< 1 min)
    python benchmarks/scheduler_tenants.py --full   # 5,000 nodes, 20,000 pods, 8 tenants

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from benchmarks.fleet_capacity import kubeconfig_for  # noqa: E402

LABEL = "megaplane.io/tenant"


def tenant_names(count: int, workers: int = 2) -> List[str]:
    """`count` tenant names that split evenly over `workers` (the hash decides; the run measures the mechanism)."""
    from megaplane.scheduler.tenants import tenant_hash

    per: Dict[int, List[str]] = {w: [] for w in range(workers)}
    i = 0
    while sum(len(v) for v in per.values()) < count:
        name = f"t{i}"
        i += 1
        bucket = per[tenant_hash(name) % workers]
        if len(bucket) < count // workers + (1 if count % workers else 0):
            bucket.append(name)
    return sorted(n for v in per.values() for n in v)[:count]


def node_body(i: int, tenant: str) -> Dict[str, Any]:
    alloc = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {"metadata": {"name": f"node-{i}", "labels": {"kubernetes.io/hostname": f"node-{i}", LABEL: tenant}},
            "status": {"allocatable": alloc, "capacity": alloc}}


def pod_body(i: int, tenant: str) -> Dict[str, Any]:
    return {"metadata": {"name": f"pod-{i}", "namespace": "default"},
            "spec": {"nodeSelector": {LABEL: tenant},
                     "containers": [{"name": "c", "image": "pause",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def populate(kubeconfig: str, nodes: int, pods: int, tenants: int) -> None:
    from megaplane.client import Client

    names = tenant_names(tenants)

    client = Client.from_kubeconfig(kubeconfig, qps=0, burst=0, max_connections=8)
    try:
        node_rc, pod_rc = client.resource("nodes"), client.resource("pods")
        for start in range(0, nodes, 256):
            await asyncio.gather(*(node_rc.create(node_body(i, names[i % tenants]))
                                   for i in range(start, min(start + 256, nodes))))
        for start in range(0, pods, 256):
            await asyncio.gather(*(pod_rc.create(pod_body(i, names[i % tenants]), "default")
                                   for i in range(start, min(start + 256, pods))))
    finally:
        await client.close()


async def unbound(kubeconfig: str) -> int:
    from megaplane.client import Client

    client = Client.from_kubeconfig(kubeconfig, qps=0, burst=0, max_connections=1)
    try:
        body = await client.resource("pods").list("default", field_selector="spec.nodeName=")
        return len(body.get("items") or [])
    finally:
        await client.close()


def one_run(nodes: int, pods: int, tenants: int, workers: int) -> Dict[str, float]:
    import uvloop

    with harness.apiserver(["--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"]) as (_, base):
        directory = tempfile.mkdtemp(prefix="megaplane-tenants-bench-")
        kubeconfig = kubeconfig_for(base, directory)
        uvloop.run(populate(kubeconfig, nodes, pods, tenants))
        log = open(os.path.join(directory, "scheduler.log"), "w")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", kubeconfig,
                                 "--leader-elect=false", "--kube-api-qps", "0", "--kube-api-burst", "0",
                                 "--tenant-label", LABEL, "--tenant-workers", str(workers)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
        try:
            last, shown = pods, time.monotonic()
            while last:
                time.sleep(0.25)
                last = uvloop.run(unbound(kubeconfig))
                if time.monotonic() - shown > 5:
                    print(f"  {workers} worker(s): {pods - last:,}/{pods:,} bound", file=sys.stderr, flush=True)
                    shown = time.monotonic()
                if proc.poll() is not None:
                    raise RuntimeError(f"the scheduler exited with {proc.returncode}; see {log.name}")
            seconds = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
    return {"workers": workers, "seconds": seconds, "pods_per_s": pods / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    nodes, pods, tenants = (5000, 20000, 8) if args.full else (1000, 4000, 4)
    results: List[Dict[str, Any]] = []
    for workers in (1, 2):
        r = one_run(nodes, pods, tenants, workers)
        results.append(r)
        print(f"{workers} worker(s): {r['pods_per_s']:,.0f} pods/s", file=sys.stderr, flush=True)
    base = results[0]["pods_per_s"]
    rows = [[str(r["workers"]), f"{nodes:,}", f"{pods:,}", str(tenants), f"{r['seconds']:.1f}",
             f"{r['pods_per_s']:,.0f}", f"{r['pods_per_s'] / base:.2f}x"] for r in results]
    print(harness.markdown_table(["tenant workers", "nodes", "pods", "tenants", "start to all bound s", "pods/s",
                                  "vs 1 worker"], rows))
    print(json.dumps({"nodes": nodes, "pods": pods, "tenants": tenants, "results": results,
                      "reference": {"one_worker_pods_per_s": base}}))


if __name__ == "__main__":
    main()
