"""Can megaplane.client's HTTPTransport drive the benchmarks' load? Lease renewals from one process, vs loadgen.py.

    python benchmarks/client_loadgen.py           # quick: 200 leases, 5 s, 2 rounds, < 1 minute
    python benchmarks/client_loadgen.py --full    # 2000 leases, 10 s, 3 rounds

The measured protocol is api_lease_updates.py's: each Lease has one
renewer, a PUT with the resourceVersion of its last answer, the next PUT as
soon as the answer is in. Two generators, each one process pinned to the
client core (1), the server on core 0:

    loadgen  benchmarks/loadgen.py update: one hand-written asyncio Protocol
             per keep-alive connection, raw bytes, no response parsing
             beyond status, Content-Length and resourceVersion
    client   megaplane.client over HTTPTransport (max_connections = leases,
             no rate limit), one task per Lease calling `update_raw`

against two servers: `megaplane apiserver` (the real load: both generators
are then bounded by the server) and the bare asyncio + httptools server of
api_lease_updates.py answering a fixed Lease (the generator is then the
bottleneck: its own ceiling). CPU of the generator and of the server is
sampled from /proc during the steady part of the run (warm-up, start-up and
shutdown excluded); the figure that decides is updates per client core-second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_lease_updates import LEASE  # noqa: E402
from harness import (  # noqa: E402
    CLIENT_CORE,
    apiserver,
    cpu_seconds,
    create_namespace,
    loadgen,
    markdown_table,
    pinned,
    python_server,
    result,
    without_resource_version,
)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/bench/leases"
_RV = re.compile(rb'"resourceVersion":"(\d+)"')


# -- the megaplane.client generator (run as a subprocess of its own) -----------------------------


async def client_update(port: int, objects: List[Tuple[str, str]], template: bytes, seconds: float,
                        warmup: float) -> Dict[str, Any]:
    from megaplane.client import Client
    from megaplane.client.http import HTTPTransport

    client = Client(HTTPTransport(f"http://127.0.0.1:{port}", max_connections=len(objects), qps=0))
    leases = client.resource("coordination.k8s.io/v1", "leases")
    warm_until = time.perf_counter() + warmup
    stop_at = warm_until + seconds
    latencies: List[float] = []
    counts = {"ok": 0, "errors": 0}

    async def renew(name: str, rv: str) -> None:
        n = 0
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            n += 1
            body = template.replace(b"@NAME@", name.encode()).replace(b"@RV@", rv.encode()).replace(b"@N@", b"%d" % n)
            try:
                answer = await leases.update_raw(name, body, "bench")
            except Exception:  # a conflict: read the Lease again, as a kubelet does
                counts["errors"] += 1
                answer = await leases.get_raw(name, "bench")
                m = _RV.search(answer)
                rv = m.group(1).decode() if m else rv
                continue
            now = time.perf_counter()
            m = _RV.search(answer)
            if m:
                rv = m.group(1).decode()
            if now >= warm_until:
                counts["ok"] += 1
                latencies.append(now - sent)

    await asyncio.gather(*(renew(name, rv) for name, rv in objects))
    await client.close()
    lat = sorted(latencies)
    return {"updates": counts["ok"], "errors": counts["errors"], "updates_per_s": counts["ok"] / seconds,
            "p50_ms": lat[len(lat) // 2] * 1e3 if lat else 0.0, "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else 0.0}


# -- running and sampling the generators --------------------------------------------------------


class Sampler(threading.Thread):
    """CPU seconds of some processes every 50 ms, to take the steady window's rate afterwards."""

    def __init__(self, pids: List[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: List[Tuple[float, List[float]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.samples.append((time.perf_counter(), [cpu_seconds(p) for p in self.pids]))
            except OSError:  # a process has exited
                return
            self.stopped.wait(0.05)

    def cores(self, start: float, end: float) -> List[float]:
        """CPU cores each process used between `start` and `end` (perf_counter seconds)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            raise RuntimeError("too few CPU samples in the steady window (run longer)")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return [(b - a) / (t1 - t0) for a, b in zip(c0, c1)]


def generate(kind: str, server_pid: int, port: int, objects_file: str, template_file: str, seconds: float) -> Dict[str, Any]:
    args = ["--port", str(port), "update", LEASES + "/@NAME@", objects_file, template_file, str(seconds)]
    if kind == "loadgen":
        gen = loadgen(args)
    else:
        gen = subprocess.Popen(pinned([sys.executable, os.path.abspath(__file__), "--generate", *args], CLIENT_CORE),
                               stdout=subprocess.PIPE, text=True)
    sampler = Sampler([gen.pid, server_pid])
    sampler.start()
    out = result(gen)
    ended = time.perf_counter()
    sampler.stopped.set()
    sampler.join()
    # The steady window: the measured seconds, less a margin at each end (shutdown, the warm-up's tail).
    client_cores, server_cores = sampler.cores(ended - seconds + 0.3, ended - 0.2)
    out["client_cores"] = client_cores
    out["server_cores"] = server_cores
    out["client_cpu_us_per_update"] = client_cores / max(out["updates_per_s"], 1) * 1e6
    out["server_cpu_us_per_update"] = server_cores / max(out["updates_per_s"], 1) * 1e6
    out["updates_per_client_core_s"] = out["updates_per_s"] / max(client_cores, 1e-9)
    return out


def one_round(leases: int, seconds: float, root: str) -> Dict[str, Dict[str, Dict[str, Any]]]:
    template = os.path.join(root, "lease.json")
    with open(template, "wb") as f:
        f.write(LEASE)
    with open(os.path.join(root, "lease-create.json"), "wb") as f:
        f.write(without_resource_version(LEASE))
    out: Dict[str, Dict[str, Dict[str, Any]]] = {"megaplane": {}, "bare": {}}
    for kind in ("loadgen", "client"):
        # A fresh server per generator, so neither inherits the other's history.
        with apiserver() as (server, base):
            port = int(base.rsplit(":", 1)[1])
            create_namespace(base, "bench")
            made = result(loadgen(["--port", str(port), "create", LEASES, os.path.join(root, "lease-create.json"),
                                   "node", str(leases), "--rvs"]))
            if made["created"] != leases:
                raise SystemExit(f"creating leases failed: {made}")
            objects = os.path.join(root, "leases.txt")
            with open(objects, "w") as f:
                f.writelines(f"{n}={v}\n" for n, v in sorted(made["rvs"].items()))
            out["megaplane"][kind] = generate(kind, server.pid, port, objects, template, seconds)
        with python_server(os.path.join(os.path.dirname(os.path.abspath(__file__)), "api_lease_updates.py"),
                           ["--bare-server"]) as (bare, port):
            out["bare"][kind] = generate(kind, bare.pid, port, objects, template, seconds)
        for server_kind in ("megaplane", "bare"):
            o = out[server_kind][kind]
            print(f"  {server_kind:<9} {kind:<7} {o['updates_per_s']:>9,.0f} updates/s  client {o['client_cores']:.2f} cores "
                  f"({o['client_cpu_us_per_update']:.1f} us/update)  server {o['server_cores']:.2f} cores  "
                  f"p99 {o['p99_ms']:.1f} ms  errors {o['errors']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--leases", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--generate", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate is not None:
        # --port P update PATH OBJECTS TEMPLATE SECONDS, as loadgen.py takes them.
        g = args.generate
        port, objects_file, template_file, seconds = int(g[1]), g[4], g[5], float(g[6])
        with open(objects_file) as f:
            objects = [tuple(line.strip().split("=")) for line in f if line.strip()]
        with open(template_file, "rb") as f:
            template = f.read()
        import uvloop

        print(json.dumps(uvloop.run(client_update(port, objects, template, seconds, 1.0))), flush=True)  # type: ignore[arg-type]
        return
    leases = args.leases or (2000 if args.full else 200)
    seconds = args.seconds or (10.0 if args.full else 4.0)
    n_rounds = args.rounds or (3 if args.full else 2)
    root = tempfile.mkdtemp(prefix="megaplane-client-loadgen-")
    print(f"client_loadgen: {leases} Lease renewers from one process for {seconds:g} s, {n_rounds} rounds", flush=True)
    rounds = [one_round(leases, seconds, root) for _ in range(n_rounds)]
    keys = ("updates_per_s", "client_cores", "client_cpu_us_per_update", "server_cores", "updates_per_client_core_s",
            "p99_ms")
    med = {s: {k: {key: statistics.median(r[s][k][key] for r in rounds) for key in keys} for k in ("loadgen", "client")}
           for s in ("megaplane", "bare")}
    ratio = {s: statistics.median(r[s]["client"]["updates_per_client_core_s"] / r[s]["loadgen"]["updates_per_client_core_s"]
                                  for r in rounds) for s in ("megaplane", "bare")}
    rows = []
    for s in ("megaplane", "bare"):
        for k in ("loadgen", "client"):
            m = med[s][k]
            rows.append([s if k == "loadgen" else "", k, f"{m['updates_per_s']:,.0f}", f"{m['client_cores']:.2f}",
                         f"{m['client_cpu_us_per_update']:.1f}", f"{m['updates_per_client_core_s']:,.0f}",
                         f"{m['server_cores']:.2f}", f"{m['p99_ms']:.1f}"])
        rows.append(["", "client / loadgen", "", "", "", f"{ratio[s]:.2f}", "", ""])
    print()
    print(markdown_table(["server", "generator", "updates/s", "client cores", "client CPU us/update",
                          "updates per client core-s", "server cores", "p99 ms"], rows))
    print("(medians of rounds; the ratio is the median of same-round ratios)")
    print(json.dumps({"leases": leases, "seconds": seconds, "rounds": rounds, "median": med,
                      "ratio_client_loadgen_per_core": ratio}))


if __name__ == "__main__":
    main()
