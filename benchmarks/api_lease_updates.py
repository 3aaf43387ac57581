"""Simulated kubelets renewing their Leases through the API server while 100 watchers watch leases.

    python benchmarks/api_lease_updates.py           # quick: 200 leases, 6 s, < 1 minute
    python benchmarks/api_lease_updates.py --full    # 2000 leases, 20 s

Each renewer is one keep-alive connection doing PUT with the Lease's last
resourceVersion (optimistic concurrency, as a kubelet does). The server is
`megaplane apiserver` on the embedded store (Leases without a WAL, as
`megaplane up` configures them), pinned to one core; the load generator
(benchmarks/loadgen.py) runs on the other.

Reference measured in the same run with the same load generator: the
ceiling, a bare asyncio + httptools + uvloop server that answers every PUT
with a fixed Lease body and does nothing else (the floor of any Python
HTTP server on this machine). Targets (issue #4): >= 25,000 updates/s from
one apiserver process, and >= 50 % of the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADGEN = os.path.join(ROOT, "benchmarks", "loadgen.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def pinned(cmd: list, core: int) -> list:
    return ["taskset", "-c", str(core), *cmd] if os.path.exists("/usr/bin/taskset") else cmd


# -- the ceiling: a bare server ------------------------------------------------------------


def bare_server(port: int) -> None:
    import asyncio

    import httptools
    import uvloop

    body = (
        b'{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"x","namespace":"bench",'
        b'"resourceVersion":"12345"},"spec":{"holderIdentity":"x","leaseDurationSeconds":40}}'
    )
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    class P(asyncio.Protocol):
        def connection_made(self, t):  # type: ignore[no-untyped-def]
            self.t = t
            self.p = httptools.HttpRequestParser(self)

        def data_received(self, d):  # type: ignore[no-untyped-def]
            self.p.feed_data(d)

        def on_message_complete(self):  # type: ignore[no-untyped-def]
            self.t.write(response)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


# -- the run ------------------------------------------------------------------------------------


def create_leases(base: str, ns: str, n: int) -> dict:
    req = urllib.request.Request(
        f"{base}/api/v1/namespaces",
        data=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(req)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
    rvs = {}
    for i in range(n):
        name = f"node-{i:06d}"
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
        }
        req = urllib.request.Request(
            f"{base}/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            rvs[name] = json.loads(r.read())["metadata"]["resourceVersion"]
    return rvs


def run_renewers(port: int, ns: str, rvs: dict, seconds: float, procs: int) -> dict:
    items = list(rvs.items())
    chunks = [items[i::procs] for i in range(procs)]
    ps = [
        subprocess.Popen(
            pinned([sys.executable, LOADGEN, "renew", "127.0.0.1", str(port), ns,
                    ",".join(f"{n}={v}" for n, v in chunk), str(seconds)], 1),
            stdout=subprocess.PIPE,
            text=True,
        )
        for chunk in chunks
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
    return {
        "updates_per_s": sum(o["updates_per_s"] for o in outs),
        "errors": sum(o["errors"] for o in outs),
        "p50_ms": max(o["p50_ms"] for o in outs),
        "p99_ms": max(o["p99_ms"] for o in outs),
    }


def measure(pid: int, fn) -> tuple:  # type: ignore[no-untyped-def]
    c0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    res = fn()
    wall = time.perf_counter() - t0
    return res, cpu_seconds(pid) - c0, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--leases", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--renew-procs", type=int, default=1)
    ap.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    leases = args.leases or (2000 if args.full else 200)
    seconds = args.seconds or (20.0 if args.full else 6.0)
    results: dict = {"leases": leases, "seconds": seconds, "watchers": args.watchers}
    print(f"api_lease_updates: {leases} renewing connections for {seconds:.0f} s, {args.watchers} lease watchers", flush=True)

    # 1. megaplane apiserver
    port = free_port()
    data = tempfile.mkdtemp(prefix="megaplane-bench-")
    server = subprocess.Popen(
        pinned([sys.executable, "-m", "megaplane.cli", "apiserver", "--port", str(port), "--secure-port", "0",
                "--data-dir", data], 0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/readyz")
        rvs = create_leases(base, "bench", leases)
        list_rv = max(int(v) for v in rvs.values())
        watchers = subprocess.Popen(
            pinned([sys.executable, LOADGEN, "watch", "127.0.0.1", str(port),
                    f"/apis/coordination.k8s.io/v1/leases?watch=true&resourceVersion={list_rv}",
                    str(args.watchers), str(seconds), "--warmup", "1.0"], 1),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        res, cpu, wall = measure(server.pid, lambda: run_renewers(port, "bench", rvs, seconds, args.renew_procs))
        watch_out = json.loads(watchers.communicate()[0].strip().splitlines()[-1])
        total = res["updates_per_s"] * seconds
        res["server_cpu_us_per_update"] = cpu / max(total, 1) * 1e6 * (seconds / wall)
        res["server_cpu_cores"] = cpu / wall
        res["watch_events_per_s"] = watch_out["events_per_s"]
        results["megaplane"] = res
    finally:
        server.terminate()
        server.wait(10)
    print(f"  megaplane apiserver  {res['updates_per_s']:>9,.0f} updates/s  p50 {res['p50_ms']:.2f} ms  "
          f"p99 {res['p99_ms']:.2f} ms  {res['server_cpu_us_per_update']:.0f} us CPU/update  "
          f"watch events {res['watch_events_per_s']:,.0f}/s  errors {res['errors']}", flush=True)

    # 2. the ceiling
    port = free_port()
    bare = subprocess.Popen(pinned([sys.executable, os.path.abspath(__file__), "--bare-server", str(port)], 0))
    try:
        time.sleep(1.0)
        ceil, cpu, wall = measure(bare.pid, lambda: run_renewers(port, "bench", rvs, seconds, args.renew_procs))
        ceil["server_cpu_us_per_update"] = cpu / max(ceil["updates_per_s"] * seconds, 1) * 1e6 * (seconds / wall)
        results["ceiling_bare_httptools"] = ceil
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"  ceiling (bare)       {ceil['updates_per_s']:>9,.0f} updates/s  p50 {ceil['p50_ms']:.2f} ms  "
          f"p99 {ceil['p99_ms']:.2f} ms  {ceil['server_cpu_us_per_update']:.0f} us CPU/update", flush=True)
    ratio = res["updates_per_s"] / max(ceil["updates_per_s"], 1)
    results["ratio_vs_ceiling"] = ratio
    print()
    print("| server | updates/s | p50 ms | p99 ms | server CPU us/update | watch events/s | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(f"| megaplane apiserver | {res['updates_per_s']:,.0f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} | "
          f"{res['server_cpu_us_per_update']:.0f} | {res['watch_events_per_s']:,.0f} | >= 25,000/s |")
    print(f"| bare asyncio+httptools+uvloop (ceiling) | {ceil['updates_per_s']:,.0f} | {ceil['p50_ms']:.2f} | "
          f"{ceil['p99_ms']:.2f} | {ceil['server_cpu_us_per_update']:.0f} | - | - |")
    print(f"| ratio megaplane / ceiling | {ratio:.2f} | | | | | >= 0.50 |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
