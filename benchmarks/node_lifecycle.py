"""Node lifecycle controller: CPU per node per monitor pass and per Lease event, and a zone's time to taint.

`megaplane apiserver` pinned to core 0, `megaplane fleet` (N simulated
kubelets renewing Leases) on core 1, and the node lifecycle controller in
this process (also core 1) over HTTP with kube-controller-manager's client
limits (20 QPS, burst 30). Per size N:

- steady state: over a window, the controller's process CPU and its Lease
  events (renewals it observed); monitor passes timed one by one (a pass
  that has nothing to write never yields, so its wall time is its CPU):
  CPU per node per pass, and the rest of the window's CPU per Lease event
  (HTTP read, decode into the lean record, bookkeeping);
- the same run's references: a naive pass over per-node dicts (what a
  straightforward port of monitorNodeHealth does per node), and
  megaplane.client's SharedInformer on the same Leases (full dicts per
  event) for CPU per event;
- a zone stopping (quick and the 10K size): every node of one zone gets
  `fleet.megaplane.io/fault=stop-heartbeat`; time until its first and its
  last node carry the unreachable NoExecute taint, and the tainting rate
  observed while the zone is fully disrupted, next to the configured
  rates and what upstream's documented defaults (0.1 nodes/s, 0.01 in a
  large partially disrupted zone) mean for a zone of that size. (As
  upstream, the queues are drained every 100 ms through a burst-1 bucket:
  no zone is tainted faster than 10 nodes/s whatever the flag says.)
- the hot path alone: Lease watch lines decoded and handled in process,
  no I/O (the all-in figure is mostly the socket and the loop waking per
  event at these rates).

    python benchmarks/node_lifecycle.py          # quick: 2,000 nodes, a zone of 80 (about 1 min)
    python benchmarks/node_lifecycle.py --full   # 10,000 nodes (with the zone) and 100,000 nodes

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from benchmarks.fleet_capacity import kubeconfig_for  # noqa: E402
from megaplane.client import Client, HTTPTransport, SharedInformer  # noqa: E402
from megaplane.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController  # noqa: E402

UPSTREAM_EVICTION_RATE = 0.1
UPSTREAM_SECONDARY_RATE = 0.01
UPSTREAM_MONITOR_PERIOD = 5.0


def start_fleet(kubeconfig: str, nodes: int, zones: int, lease: int, log_path: str) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(harness.pinned([
        sys.executable, "-m", "megaplane.cli", "fleet", "--kubeconfig", kubeconfig, "--nodes", str(nodes),
        "--zones", str(zones), "--node-lease-duration-seconds", str(lease), "--max-connections", "64"],
        harness.CLIENT_CORE), stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)


def hot_path_us_per_event(n: int) -> float:
    """Decode + bookkeeping of one Lease event without I/O: `n` watch lines through a (separate, offline)
    controller's own reflector decoders and handler, each renewal moving its node's probe time."""
    from megaplane.controllers.nodelifecycle.records import Condition, Meta, Node, NodeSpec, NodeStatus

    offline = NodeLifecycleController(Client(transport=None))  # type: ignore[arg-type]
    for i in range(n):
        offline._on_node(Node(Meta(name=f"node-{i}", uid=str(i), resourceVersion="1",
                                   labels={"topology.kubernetes.io/zone": f"z{i % 10}"}), NodeSpec(),
                              NodeStatus([Condition("Ready", "True", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")])))
    offline._listing_leases = False
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time()))
    lines = [(b'{"type":"MODIFIED","object":{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":'
              b'{"name":"node-%d","namespace":"kube-node-lease","uid":"u","resourceVersion":"%d","ownerReferences":'
              b'[{"apiVersion":"v1","kind":"Node","name":"node-%d","uid":"x"}]},"spec":{"holderIdentity":"node-%d",'
              b'"leaseDurationSeconds":40,"renewTime":"%s.%06dZ"}}}') % (i, i, i, i, stamp.encode(), i % 1_000_000)
             for i in range(n)]
    reflector = offline.lease_reflector
    c = time.process_time()
    for line in lines:
        event = reflector._event.decode(line)
        offline._on_lease(reflector._item.decode(event.object))
    return (time.process_time() - c) / max(1, len(lines)) * 1e6


def naive_pass(nodes: Dict[str, Dict[str, Any]], now: float, grace: float) -> int:
    """The per-node Python a direct port does each pass: read the health record, compare, count the zone."""
    stale = 0
    zones: Dict[str, List[int]] = {}
    for name, health in nodes.items():
        probe = health["probe"]
        ready = health["ready"]
        if now > probe + grace and ready != "Unknown":
            stale += 1
        counts = zones.setdefault(health["zone"], [0, 0])
        counts[0 if ready == "True" else 1] += 1
    return stale


async def wait_for(pred: Any, timeout: float, every: float = 0.05) -> float:
    began = time.monotonic()
    while not pred():
        if time.monotonic() - began > timeout:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(every)
    return time.monotonic() - began


async def measure(base: str, kubeconfig: str, n: int, zones: int, lease: int, grace: float, window: float,
                  zone_test: bool, rate: float, secondary: float) -> Dict[str, Any]:
    out: Dict[str, Any] = {"nodes": n, "zones": zones, "lease_seconds": lease, "grace_seconds": grace}
    client = Client(HTTPTransport(base, qps=20, burst=30, max_connections=8))
    cfg = NodeLifecycleConfig(node_monitor_grace_period=grace, node_startup_grace_period=grace,
                              node_eviction_rate=rate, secondary_node_eviction_rate=secondary)
    nlc = NodeLifecycleController(client, cfg)
    nodes_rc = client.resource("nodes")
    t0 = time.monotonic()
    while True:
        page = await nodes_rc.list(limit=1)
        if page.get("items") and int((page.get("metadata") or {}).get("remainingItemCount") or 0) + 1 >= n:
            break
        await asyncio.sleep(0.5)
    out["fleet_registered_seconds"] = round(time.monotonic() - t0, 1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    began = time.monotonic()
    await nlc.start()
    await wait_for(lambda: len(nlc.index) >= n and nlc.sight.seeing(time.monotonic()), 120)
    out["controller_sync_seconds"] = round(time.monotonic() - began, 2)
    await asyncio.sleep(lease / 4 + 1)  # a renewal interval: every Lease seen once by the watch
    # -- steady state ------------------------------------------------------------------------------
    events0, cpu0, wall0 = nlc.stats["lease_events"], time.process_time(), time.monotonic()
    pass_cpu: List[float] = []
    while time.monotonic() - wall0 < window:
        await asyncio.sleep(1.0)
        c = time.process_time()
        await nlc._monitor()
        pass_cpu.append(time.process_time() - c)
    cpu = time.process_time() - cpu0
    events = nlc.stats["lease_events"] - events0
    # The loop's own passes (every 5 s) ran too: count them with the median timed pass.
    per_pass = harness.median(pass_cpu)
    own_passes = (time.monotonic() - wall0) / cfg.node_monitor_period
    event_cpu = max(0.0, cpu - sum(pass_cpu) - own_passes * per_pass)
    out["monitor_pass_ms"] = round(per_pass * 1e3, 2)
    out["pass_us_per_node"] = round(per_pass / n * 1e6, 3)
    out["lease_events"] = events
    out["lease_events_per_s"] = round(events / window, 1)
    out["cpu_us_per_lease_event"] = round(event_cpu / max(1, events) * 1e6, 1)
    out["controller_rss_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0) / 2**20, 1)
    out["marked_unknown_in_steady_state"] = nlc.stats["marked_unknown"]
    out["hot_path_us_per_lease_event"] = round(hot_path_us_per_event(n), 2)
    # -- references: a naive pass, the SharedInformer per event -------------------------------------
    fake = {f"node-{i}": {"probe": time.monotonic(), "ready": "True", "zone": f"z{i % zones}"} for i in range(n)}
    naive: List[float] = []
    for _ in range(5):
        c = time.process_time()
        naive_pass(fake, time.monotonic(), grace)
        naive.append(time.process_time() - c)
    out["reference_naive_pass_us_per_node"] = round(harness.median(naive) / n * 1e6, 3)
    if zone_test:
        out.update(await zone_stop(nlc, client, n, zones, lease, grace, rate, secondary))
    await nlc.stop()
    informer = SharedInformer(client.resource("coordination.k8s.io/v1", "leases"), namespace="kube-node-lease")
    seen = [0]
    informer.add_event_handler(None, lambda old, new: seen.__setitem__(0, seen[0] + 1), None)
    await informer.start()
    await informer.wait_for_sync(120)
    await asyncio.sleep(lease / 4 + 1)
    seen[0] = 0
    c, w = time.process_time(), time.monotonic()
    await asyncio.sleep(min(window, 10.0))
    ref_cpu, ref_events = time.process_time() - c, seen[0]
    out["reference_informer_cpu_us_per_lease_event"] = round(ref_cpu / max(1, ref_events) * 1e6, 1)
    out["reference_informer_events_per_s"] = round(ref_events / (time.monotonic() - w), 1)
    await informer.stop()
    await client.close()
    return out


async def zone_stop(nlc: NodeLifecycleController, client: Client, n: int, zones: int, lease: int, grace: float,
                    rate: float, secondary: float) -> Dict[str, Any]:
    # The faults are set by an operator's client, not the controller's (20 QPS would take seconds).
    operator = Client(HTTPTransport(client.transport.server, qps=0, burst=0, max_connections=16))  # type: ignore[attr-defined]
    nodes = operator.resource("nodes")
    zone_nodes = [f"node-{i}" for i in range(0, n, zones)]
    sem = asyncio.Semaphore(32)

    async def stop(name: str) -> None:
        async with sem:
            await nodes.patch(name, {"metadata": {"annotations": {"fleet.megaplane.io/fault": "stop-heartbeat"}}})

    began = time.monotonic()
    await asyncio.gather(*(stop(x) for x in zone_nodes))
    stopped = time.monotonic()
    await operator.close()
    idx = [nlc.index[x] for x in zone_nodes]
    tainted_at: Dict[int, float] = {}
    deadline = stopped + grace + lease + len(zone_nodes) / min(rate, max(secondary, 1e-9)) + 60
    while len(tainted_at) < len(idx) and time.monotonic() < deadline:
        now = time.monotonic()
        for i in idx:
            if i not in tainted_at and nlc.noexec[i] & 2:
                tainted_at[i] = now
        await asyncio.sleep(0.05)
    times = sorted(t - stopped for t in tainted_at.values())
    size = len(zone_nodes)
    out: Dict[str, Any] = {
        "zone_size": size, "zone_annotate_seconds": round(stopped - began, 2),
        "zone_tainted": len(times),
        "zone_first_taint_seconds": round(times[0], 2) if times else None,
        "zone_last_taint_seconds": round(times[-1], 2) if times else None,
        "zone_states_after": {k.replace("\x00", ""): v for k, v in nlc.zone_states().items()},
        "configured_rate": rate, "configured_secondary_rate": secondary,
    }
    if len(times) > 2:
        # The rate over the second half of the taints (the zone fully disrupted by then).
        half = times[len(times) // 2:]
        out["zone_taint_rate_per_s"] = round((len(half) - 1) / max(1e-9, half[-1] - half[0]), 2)
    out["upstream_zone_all_tainted_seconds"] = round(grace + size / UPSTREAM_EVICTION_RATE, 0)
    return out


def run(n: int, zones: int, lease: int, grace: float, window: float, zone_test: bool, rate: float,
        secondary: float) -> Dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="bench-nodelifecycle-")
    try:
        with harness.apiserver(["--max-requests-inflight", "800", "--max-mutating-requests-inflight", "400"]) as (api, base):
            kubeconfig = kubeconfig_for(base, directory)
            fleet = start_fleet(kubeconfig, n, zones, lease, os.path.join(directory, "fleet.log"))
            try:
                api_cpu0 = harness.cpu_seconds(api.pid)
                import uvloop  # the loop every megaplane process runs on

                result = uvloop.run(measure(base, kubeconfig, n, zones, lease, grace, window, zone_test, rate,
                                            secondary))
                result["apiserver_cpu_seconds"] = round(harness.cpu_seconds(api.pid) - api_cpu0, 1)
                return result
            finally:
                fleet.terminate()
                try:
                    fleet.wait(20)
                except subprocess.TimeoutExpired:
                    fleet.kill()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="10,000 and 100,000 nodes")
    args = parser.parse_args()
    if args.full:
        sizes = [dict(n=10_000, zones=10, lease=40, grace=50.0, window=30.0, zone_test=True),
                 dict(n=100_000, zones=10, lease=200, grace=150.0, window=60.0, zone_test=False)]
    else:
        sizes = [dict(n=2_000, zones=25, lease=20, grace=8.0, window=6.0, zone_test=True)]
    results = []
    for size in sizes:
        r = run(size["n"], size["zones"], size["lease"], size["grace"], size["window"], size["zone_test"],
                rate=5.0, secondary=1.0)
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    print(harness.markdown_table(
        ["nodes", "pass ms", "us/node/pass", "naive us/node", "us/Lease event (all-in)", "hot path us/event",
         "informer us/event (all-in)", "events/s", "RSS MB"],
        [[str(r["nodes"]), str(r["monitor_pass_ms"]), str(r["pass_us_per_node"]),
          str(r["reference_naive_pass_us_per_node"]), str(r["cpu_us_per_lease_event"]),
          str(r["hot_path_us_per_lease_event"]), str(r["reference_informer_cpu_us_per_lease_event"]),
          str(r["lease_events_per_s"]), str(r["controller_rss_mb"])] for r in results]))
    for r in results:
        if "zone_size" in r:
            print(f"\nzone of {r['zone_size']} nodes stopped ({r['nodes']} nodes, grace {r['grace_seconds']:g}s, "
                  f"rates {r['configured_rate']:g}/s and secondary {r['configured_secondary_rate']:g}/s): first taint "
                  f"after {r['zone_first_taint_seconds']}s, last after {r['zone_last_taint_seconds']}s, "
                  f"{r.get('zone_taint_rate_per_s')} nodes/s while fully disrupted; upstream's defaults "
                  f"(0.1/s; 0.01/s partially disrupted) would take {r['upstream_zone_all_tainted_seconds']:g}s "
                  f"for this zone; monitor period {UPSTREAM_MONITOR_PERIOD:g}s")
    print(json.dumps({"benchmark": "node_lifecycle", "results": results}))


if __name__ == "__main__":
    main()
