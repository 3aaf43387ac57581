"""How many nodes one `megaplane fleet` process holds on one core with every Lease renewed on time.

`megaplane apiserver` runs pinned to core 0 and `megaplane fleet` to core
1 (benchmarks/harness.py). For each size the fleet registers N nodes,
then renews their Leases for a measurement window; the figures come from
the fleet's /metrics (renewals, lateness p99: end of a renewal minus its
due time) and /proc (CPU of both processes, the fleet's RSS). A size
"holds" when lateness p99 < 1 s with no failed renewal. Fleet RSS per
node is (RSS at N - RSS of a 10-node fleet) / (N - 10).

Reference in the same run: benchmarks/loadgen.py's bare PUT generator
renewing Leases as fast as the server answers over as many connections
as the fleet uses (the server's Lease-PUT ceiling, and its CPU per PUT).

    python benchmarks/fleet_capacity.py           # quick: 10,000 nodes at 10 s renewals (< 1 min)
    python benchmarks/fleet_capacity.py --full    # 25K..100K at 10 s, and up to 150K at 60 s renewals
    python benchmarks/fleet_capacity.py --compare # each size also with renewals through megaplane.client
                                                  # (--max-pipelined-requests 0: the fleet before fleet.wire)

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from megaplane.bench import promtext  # noqa: E402
from megaplane.bench.procfs import runqueue_seconds  # noqa: E402

CONNECTIONS = 64


def kubeconfig_for(base: str, directory: str) -> str:
    path = os.path.join(directory, "kubeconfig")
    with open(path, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: bench, cluster: {{server: "{base}"}}}}]
users: [{{name: bench, user: {{}}}}]
contexts: [{{name: bench, context: {{cluster: bench, user: bench}}}}]
current-context: bench
""")
    return path



def scrape(port: int) -> Dict[str, float]:
    import urllib.request

    out: Dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
    return out


LATENESS = "megaplane_fleet_lease_renew_lateness_histogram_seconds"
WAIT = "apiserver_flowcontrol_request_wait_duration_seconds"


def buckets(metrics: Dict[str, float], name: str, labels: str = "") -> List[Tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram series, `labels` a substring its labels must hold."""
    out = []
    for key, value in metrics.items():
        if key.startswith(name + "_bucket{") and labels in key:
            le = key.split('le="', 1)[1].split('"', 1)[0]
            out.append((float(le), value))
    return sorted(out)


def window_quantile(m0: Dict[str, float], m1: Dict[str, float], name: str, q: float) -> float:
    """The q-quantile of what a histogram observed between two scrapes (PromQL's histogram_quantile)."""
    before = dict(buckets(m0, name))
    return promtext.quantile(q, {le: count - before.get(le, 0.0) for le, count in buckets(m1, name)})


def waited(m0: Dict[str, float], m1: Dict[str, float], level: str) -> Tuple[float, float]:
    """Of the requests of one APF priority level dispatched between two scrapes: how many, and how many
    waited in a queue at all (more than the first wait bucket, 0 s)."""
    def count(m: Dict[str, float]) -> Tuple[float, float]:
        series = buckets(m, WAIT, f'priority_level="{level}"')
        total = sum(c for le, c in series if le == float("inf"))
        immediate = sum(c for le, c in series if le == 0.0)
        return total, immediate
    t0, i0 = count(m0)
    t1, i1 = count(m1)
    return t1 - t0, (t1 - t0) - (i1 - i0)


class FleetRun:
    """One `megaplane fleet` process on the client core until stopped."""

    def __init__(self, kubeconfig: str, nodes: int, lease_seconds: int, prefix: str, index_start: int,
                 extra: Sequence[str] = ()) -> None:
        self.metrics_port = harness.free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="fleet-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(harness.pinned([
            sys.executable, "-m", "megaplane.cli", "fleet", "--kubeconfig", kubeconfig, "--nodes", str(nodes),
            "--node-name-prefix", prefix, "--node-index-start", str(index_start),
            "--node-lease-duration-seconds", str(lease_seconds), "--max-connections", str(CONNECTIONS),
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}", *extra], harness.CLIENT_CORE),
            stdout=self.log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
        self.started = time.monotonic()

    def wait_running(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fleet exited with {self.proc.returncode}: {self.output()[-2000:]}")
            if "running" in self.output():
                return time.monotonic() - self.started
            time.sleep(0.2)
        raise RuntimeError(f"fleet not running after {timeout:.0f}s: {self.output()[-2000:]}")

    def output(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


def measure_fleet(api: subprocess.Popen, api_port: int, kubeconfig: str, nodes: int, lease_seconds: int,
                  window: float, prefix: str, base_rss: int, extra: Sequence[str] = ()) -> Dict[str, Any]:
    run = FleetRun(kubeconfig, nodes, lease_seconds, prefix, 0, extra)
    try:
        registered_in = run.wait_running(600)
        # A warm-up before the window: the first renewals are spread over one interval after start-up,
        # and only what the window itself observed counts (histogram deltas, not recent samples).
        time.sleep(min(lease_seconds / 4, 15))
        a0, m0, c_api0, c_fleet0, t0 = scrape(api_port), scrape(run.metrics_port), harness.cpu_seconds(api.pid), \
            harness.cpu_seconds(run.proc.pid), time.monotonic()
        q_api0, q_fleet0 = runqueue_seconds(api.pid), runqueue_seconds(run.proc.pid)
        time.sleep(window)
        a1, m1, c_api1, c_fleet1, t1 = scrape(api_port), scrape(run.metrics_port), harness.cpu_seconds(api.pid), \
            harness.cpu_seconds(run.proc.pid), time.monotonic()
        q_api1, q_fleet1 = runqueue_seconds(api.pid), runqueue_seconds(run.proc.pid)
        renewals = m1["megaplane_fleet_lease_renew_duration_seconds_count"] - \
            m0["megaplane_fleet_lease_renew_duration_seconds_count"]
        failures = m1["megaplane_fleet_lease_renew_failures_total"] - m0["megaplane_fleet_lease_renew_failures_total"]
        rss = harness.rss_bytes(run.proc.pid)
        seconds = t1 - t0
        p99 = window_quantile(m0, m1, LATENESS, 0.99)
        dispatched, queued = waited(a0, a1, "node-high")
        return {
            "nodes": nodes, "renew_every_s": lease_seconds / 4, "registered_in_s": round(registered_in, 1),
            "renewals_per_s": renewals / seconds, "expected_per_s": nodes / (lease_seconds / 4),
            "lateness_p50_s": window_quantile(m0, m1, LATENESS, 0.5), "lateness_p99_s": p99,
            "lateness_max_s": window_quantile(m0, m1, LATENESS, 1.0), "failures": failures,
            "node_high_dispatched_per_s": dispatched / seconds, "node_high_queued_share": queued / max(dispatched, 1),
            "held": p99 < 1.0 and failures == 0 and renewals >= 0.9 * seconds * nodes / (lease_seconds / 4),
            "fleet_cpu_us_per_renewal": (c_fleet1 - c_fleet0) / max(renewals, 1) * 1e6,
            "fleet_cpu_share": (c_fleet1 - c_fleet0) / seconds,
            "api_cpu_us_per_renewal": (c_api1 - c_api0) / max(renewals, 1) * 1e6,
            "api_cpu_share": (c_api1 - c_api0) / seconds,
            "api_runqueue_share": (q_api1 - q_api0) / seconds, "fleet_runqueue_share": (q_fleet1 - q_fleet0) / seconds,
            "fleet_rss_mb": rss / 1e6,
            "fleet_rss_bytes_per_node": (rss - base_rss) / max(nodes - 10, 1),
        }
    finally:
        run.stop()


def baseline_rss(kubeconfig: str) -> int:
    run = FleetRun(kubeconfig, 10, 40, "baseline-", 0)
    try:
        run.wait_running(60)
        return harness.rss_bytes(run.proc.pid)
    finally:
        run.stop()


def reference(api: subprocess.Popen, base: str, seconds: float) -> Dict[str, Any]:
    """loadgen's bare PUT generator renewing CONNECTIONS Leases back to back."""
    port = int(base.rsplit(":", 1)[1])
    harness.create_namespace(base, "bench-leases")
    directory = tempfile.mkdtemp(prefix="fleet-ref-")
    # Each PUT changes the object (the annotation counts up), so none is skipped as a no-op update.
    lease = ('{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"@NAME@",'
             '"namespace":"bench-leases","resourceVersion":"@RV@","annotations":{"bench/n":"@N@"}},'
             '"spec":{"holderIdentity":"@NAME@","leaseDurationSeconds":40,"renewTime":"2026-01-01T00:00:00.000000Z"}}')
    objects = []
    for i in range(CONNECTIONS):
        created = harness.post_json(base, "/apis/coordination.k8s.io/v1/namespaces/bench-leases/leases", json.loads(
            harness.without_resource_version(lease.encode()).decode().replace("@NAME@", f"ref-{i}")
            .replace("@N@", "0")))
        objects.append(f"ref-{i}={created['metadata']['resourceVersion']}")
    with open(os.path.join(directory, "objects"), "w") as f:
        f.write("\n".join(objects) + "\n")
    with open(os.path.join(directory, "template"), "w") as f:
        f.write(lease)
    proc = harness.loadgen(["--port", str(port), "update",
                            "/apis/coordination.k8s.io/v1/namespaces/bench-leases/leases/@NAME@",
                            os.path.join(directory, "objects"), os.path.join(directory, "template"), str(seconds)])
    c0, t0 = harness.cpu_seconds(api.pid), time.monotonic()
    out = harness.result(proc)
    c1, t1 = harness.cpu_seconds(api.pid), time.monotonic()
    puts = out["updates"]
    return {"puts_per_s": out["updates_per_s"], "p99_ms": out["p99_ms"], "errors": out["errors"],
            # The window includes loadgen's 1 s warm-up, so the CPU is spread over a few more PUTs than counted.
            "api_cpu_us_per_put": (c1 - c0) / max(puts * (t1 - t0) / seconds, 1) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the large run (several minutes)")
    ap.add_argument("--nodes", type=int, action="append", default=[],
                    help="measure this many nodes instead of the plan (repeatable)")
    ap.add_argument("--lease-seconds", type=int, default=40,
                    help="with --nodes: Lease duration (renewals every quarter of it) (40)")
    ap.add_argument("--window", type=float, default=0.0, help="measurement window in seconds (quick 10, full 30)")
    ap.add_argument("--api-arg", action="append", default=[],
                    help="an extra flag for megaplane apiserver, e.g. --api-arg=--enable-priority-and-fairness=false")
    ap.add_argument("--fleet-arg", action="append", default=[],
                    help="an extra flag for megaplane fleet, e.g. --fleet-arg=--max-connections=64")
    ap.add_argument("--no-reference", action="store_true", help="skip loadgen's bare PUT reference")
    ap.add_argument("--compare", action="store_true",
                    help="measure each size twice: renewals through megaplane.client (--max-pipelined-requests=0, "
                         "as before fleet.wire), then pipelined on the fleet's own connections (the default)")
    args = ap.parse_args()
    if args.nodes:
        plan = [(n, args.lease_seconds) for n in args.nodes]
        window = 10.0
    elif args.full:
        plan: List[Tuple[int, int]] = [(25_000, 40), (50_000, 40), (100_000, 40), (100_000, 240), (150_000, 240)]
        window = 30.0
    else:
        plan = [(10_000, 40)]
        window = 10.0
    window = args.window or window
    rows: List[Dict[str, Any]] = []
    with harness.apiserver(["--wal-default", "none", *args.api_arg]) as (api, base):
        directory = tempfile.mkdtemp(prefix="fleet-bench-")
        kubeconfig = kubeconfig_for(base, directory)
        base_rss = baseline_rss(kubeconfig)
        ref = None if args.no_reference else reference(api, base, 5.0)
        api_port = int(base.rsplit(":", 1)[1])
        paths = [("client", ["--max-pipelined-requests=0"]), ("wire", [])] if args.compare else [("", [])]
        runs = [(nodes, lease_seconds, path, flags) for nodes, lease_seconds in plan for path, flags in paths]
        for i, (nodes, lease_seconds, path, flags) in enumerate(runs):
            row = measure_fleet(api, api_port, kubeconfig, nodes, lease_seconds, window, f"n{i}-", base_rss,
                                [*flags, *args.fleet_arg])
            row["renewal_path"] = path or "default"
            rows.append(row)
            print(f"  {nodes} nodes{' (' + path + ')' if path else ''}, renew every {lease_seconds / 4:g}s: "
                  f"{row['renewals_per_s']:.0f} renewals/s, "
                  f"lateness p50 {row['lateness_p50_s']:.3f}s p99 {row['lateness_p99_s']:.3f}s "
                  f"max <= {row['lateness_max_s']:.3f}s, node-high queued {row['node_high_queued_share']:.1%}, "
                  f"waiting for a CPU: API {row['api_runqueue_share']:.0%} fleet {row['fleet_runqueue_share']:.0%}, "
                  f"held={row['held']}", flush=True)
    header = ["nodes", "path", "renew every", "renewals/s", "lateness p99", "held", "fleet CPU/renewal", "fleet CPU",
              "API CPU/renewal", "API CPU", "fleet RSS/node"]
    table = [[f"{r['nodes']:,}", r["renewal_path"], f"{r['renew_every_s']:g} s", f"{r['renewals_per_s']:,.0f}",
              f"{r['lateness_p99_s'] * 1e3:.0f} ms", "yes" if r["held"] else "NO",
              f"{r['fleet_cpu_us_per_renewal']:.0f} us", f"{r['fleet_cpu_share'] * 100:.0f} %",
              f"{r['api_cpu_us_per_renewal']:.0f} us", f"{r['api_cpu_share'] * 100:.0f} %",
              f"{r['fleet_rss_bytes_per_node']:,.0f} B"] for r in rows]
    print(harness.markdown_table(header, table))
    if ref is not None:
        print(f"reference (loadgen bare PUTs, {CONNECTIONS} connections): {ref['puts_per_s']:,.0f} Lease PUTs/s, "
              f"API CPU {ref['api_cpu_us_per_put']:.0f} us/PUT, p99 {ref['p99_ms']:.1f} ms")
    held = [r for r in rows if r["held"]]
    best = {s: max((r["nodes"] for r in held if r["renew_every_s"] == s), default=0) for s in (10.0, 60.0)}
    summary = {
        "benchmark": "fleet_capacity", "full": args.full, "rows": rows, "reference": ref,
        "max_nodes_held_10s": best[10.0], "max_nodes_held_60s": best[60.0],
        "limit": "api server" if rows and max(r["api_cpu_share"] for r in rows) > max(r["fleet_cpu_share"] for r in rows)
        else "fleet",
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
