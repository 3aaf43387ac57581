"""Pod creates/s and lease updates/s through one API server on each storage backend, against each store direct.

    python benchmarks/storage_backends.py           # quick: 600 pods, 64 leases for 1 s per run, < 1 minute
    python benchmarks/storage_backends.py --full    # 5000 pods, 500 leases for 10 s

The issue's configurations, in one run, each on fresh processes:

(a) `megaplane apiserver` on its embedded store;
(b) `--etcd-servers` on `megaplane store` (megaplane's etcd v3 API over its store);
(c) `--etcd-servers` on a real etcd 3.4, one member, and three members on loopback;
(d) one etcd for everything but leases and events, overridden to a second etcd
    (`--etcd-servers-overrides coordination.k8s.io/leases#...,/events#...`).

Reference, measured in the same run on the same servers: the same pod creates
and lease compare-and-swaps straight from megaplane's etcd client to each
store (benchmarks/etcd_backend.py `_raw`: the API server's txn shapes, 64 in
flight, one process on the API server's core). The target (issue "Past one
machine"): the API server on etcd reaches >= 0.8 of what that store accepts
directly; `ratio_*` in the JSON line is API / direct per configuration.
The API server is pinned to core 0 with the load generator (4-10 % of a
core); etcd (or `megaplane store`) has core 1 to itself, as in the direct
reference. On a two-core machine there is no third core, and the load
generator beside etcd instead made the API server's etcd txns 3x slower
(327 against 1,037 pod creates/s measured, the load generator at 4 % CPU),
which the ratio would wrongly charge to the API server. The embedded store's
run keeps the load generator on core 1. "API core busy" is the API
server's CPU seconds per wall second during each phase, "waiting for a CPU"
the share of wall time it was runnable but not running (/proc schedstat):
busy well below 100 % with little waiting means the API server waited on its
store; a large wait means the machine's other processes took its core, and
then no ratio measured here says anything about the API server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd_backend import ETCD, ETCDCTL, IN_FLIGHT, api_run, etcd_server, raw_run  # noqa: E402
from harness import CLIENT_CORE, ROOT, SERVER_CORE, free_port, markdown_table, pinned  # noqa: E402


def _wait_healthy(urls: List[str], procs: List[subprocess.Popen], what: str) -> None:
    deadline = time.monotonic() + 60
    for url in urls:
        while subprocess.run([ETCDCTL, "--endpoints", url, "endpoint", "health"], capture_output=True,
                             env={**os.environ, "ETCDCTL_API": "3"}).returncode != 0:
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.1)


@contextlib.contextmanager
def store_server(core: int = CLIENT_CORE) -> Iterator[str]:
    """`megaplane store` on a fresh data dir; yields its client URL."""
    root = tempfile.mkdtemp(prefix="megaplane-bench-store-")
    url = f"http://127.0.0.1:{free_port()}"
    log = open(os.path.join(root, "store.log"), "w")
    proc = subprocess.Popen(pinned([sys.executable, "-m", "megaplane.cli", "store", "--data-dir",
                                    os.path.join(root, "data"), "--listen-client-urls", url], core),
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        _wait_healthy([url], [proc], "megaplane store")
        yield url
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def etcd_cluster(size: int = 3, core: int = CLIENT_CORE) -> Iterator[str]:
    """A fresh `size`-member etcd 3.4 cluster on loopback; yields its client URLs, comma separated."""
    root = tempfile.mkdtemp(prefix="megaplane-bench-etcd-cluster-")
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    procs: List[subprocess.Popen] = []
    logs = []
    try:
        for i, (client, peer) in enumerate(ports):
            url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
            log = open(os.path.join(root, f"m{i}.log"), "w")
            logs.append(log)
            procs.append(subprocess.Popen(pinned([
                ETCD, "--data-dir", os.path.join(root, f"m{i}"), "--name", f"m{i}",
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--quota-backend-bytes", str(4 << 30),
            ], core), stdout=subprocess.DEVNULL, stderr=log))
        urls = [f"http://127.0.0.1:{c}" for c, _ in ports]
        _wait_healthy(urls, procs, f"a {size}-member etcd")
        yield ",".join(urls)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for log in logs:
            log.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    pods, leases, seconds = (5000, 500, 10.0) if args.full else (600, 64, 1.0)
    root = tempfile.mkdtemp(prefix="megaplane-storage-backends-bench-")
    print(f"storage_backends: {pods} pod creates, {leases} leases renewed for {seconds:.0f} s, {IN_FLIGHT} in flight",
          flush=True)
    results: Dict[str, Any] = {"pods": pods, "leases": leases, "seconds": seconds, "in_flight": IN_FLIGHT}
    rows: List[List[str]] = []

    def show(name: str, api: Dict[str, Any], direct: Dict[str, Any] = {}) -> None:  # noqa: B006
        results[name] = {"api": api, **({"direct": direct} if direct else {})}
        row = [name, f"{api['pod_creates_per_s']:,.0f}", f"{api['lease_updates_per_s']:,.0f}",
               f"{api['server_cpu_us_per_update']:.0f}",
               f"{api['server_busy_creates'] * 100:.0f}% / {api['server_busy_updates'] * 100:.0f}%",
               f"{api['server_cpu_wait_creates'] * 100:.0f}% / {api['server_cpu_wait_updates'] * 100:.0f}%"]
        if direct:
            rc = api["pod_creates_per_s"] / max(direct["create_txns_per_s"], 1)
            ru = api["lease_updates_per_s"] / max(direct["cas_txns_per_s"], 1)
            results[f"ratio_{name}"] = {"creates": rc, "updates": ru}
            row += [f"{direct['create_txns_per_s']:,.0f}", f"{direct['cas_txns_per_s']:,.0f}", f"{rc:.2f}", f"{ru:.2f}"]
        else:
            row += ["-", "-", "-", "-"]
        rows.append(row)
        print("  " + "  ".join(row), flush=True)

    try:
        show("a_embedded", api_run([], pods, leases, seconds, root))
        with store_server() as url:
            show("b_megaplane_store", api_run(["--etcd-servers", url], pods, leases, seconds, root, loadgen_core=SERVER_CORE),
                 raw_run(url, pods, seconds, "megaplane"))
        with etcd_server() as url:
            show("c_etcd_1_member", api_run(["--etcd-servers", url], pods, leases, seconds, root, loadgen_core=SERVER_CORE),
                 raw_run(url, pods, seconds, "megaplane"))
        with etcd_cluster(3) as urls:
            show("c_etcd_3_members", api_run(["--etcd-servers", urls], pods, leases, seconds, root, loadgen_core=SERVER_CORE),
                 raw_run(urls.split(",")[0], pods, seconds, "megaplane"))
        with etcd_server() as main_url, etcd_server() as second:
            overrides = f"coordination.k8s.io/leases#{second},/events#{second}"
            api = api_run(["--etcd-servers", main_url, "--etcd-servers-overrides", overrides],
                          pods, leases, seconds, root, loadgen_core=SERVER_CORE)
            # Pods go to the first cluster, leases to the second: each measured direct on its own cluster.
            pods_direct = raw_run(main_url, pods, seconds, "megaplane")
            leases_direct = raw_run(second, pods, seconds, "megaplane")
            show("d_leases_events_overridden", api, {"create_txns_per_s": pods_direct["create_txns_per_s"],
                                                     "cas_txns_per_s": leases_direct["cas_txns_per_s"]})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(markdown_table(["configuration", "API pod creates/s", "API lease updates/s", "API CPU us/update",
                          "API core busy (creates / updates)", "API waiting for a CPU",
                          "direct create txns/s", "direct CAS txns/s", "ratio creates", "ratio updates"], rows))
    print("target: ratio >= 0.8 (the API server is not the bottleneck in front of etcd)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
