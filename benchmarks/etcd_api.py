"""Put throughput and latency over the etcd v3 gRPC API: megaplane store vs. Debian's etcd 3.4.

    python benchmarks/etcd_api.py           # quick: 6 s of load per server, < 1 minute
    python benchmarks/etcd_api.py --full    # + `etcdctl check perf --load=xl` (60 s each)

Both servers are started by this script on loopback with fresh data dirs and
driven by the same client: a separate load process (grpc.aio, pre-encoded
PutRequests, --clients in flight over 4 channels) and, with --full, etcdctl's
own `check perf`. megaplane runs twice: WAL buffered (its default) and WAL
fsync (each put acknowledged after fdatasync, like etcd's raft WAL).
Printed: puts/s, client-side p50/p99 latency, server CPU per put (from
/proc), and the ratio megaplane / etcd measured in this run.
Target (issue #3): ratio >= 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_seconds, free_port  # noqa: E402


def wait_ready(endpoint: str, timeout: float = 20.0) -> None:
    import grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with grpc.insecure_channel(endpoint) as ch:
                grpc.channel_ready_future(ch).result(timeout=0.5)
                return
        except grpc.FutureTimeoutError:
            time.sleep(0.1)
    raise RuntimeError(f"{endpoint} not ready")


def start_server(kind: str, root: str, wal: str = "buffered") -> tuple[subprocess.Popen, str]:
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    data = tempfile.mkdtemp(dir=root)
    log = open(os.path.join(data + ".log"), "w")
    if kind == "etcd":
        peer = free_port()
        cmd = [
            "etcd", "--data-dir", data, "--listen-client-urls", f"http://{endpoint}",
            "--advertise-client-urls", f"http://{endpoint}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster", f"default=http://127.0.0.1:{peer}",
        ]
    else:
        cmd = [sys.executable, "-m", "megaplane.cli", "store", "--data-dir", data,
               "--listen-client-urls", f"http://{endpoint}", "--wal-default", wal]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_ready(endpoint)
    return proc, endpoint


# -- the load process ---------------------------------------------------------------


async def _load(endpoint: str, clients: int, seconds: float, value_size: int) -> dict:
    import grpc

    from megaplane.etcd.pb import etcd_pb2 as pb

    channels = [grpc.aio.insecure_channel(endpoint) for _ in range(4)]
    calls = [
        ch.unary_unary("/etcdserverpb.KV/Put", request_serializer=lambda b: b, response_deserializer=lambda b: b)
        for ch in channels
    ]
    value = b"x" * value_size
    reqs = [pb.PutRequest(key=b"/registry/leases/kube-node-lease/node-%06d" % i, value=value).SerializeToString() for i in range(clients)]
    latencies: list[float] = []
    done = 0
    warm = time.perf_counter() + 1.0
    stop = warm + seconds

    async def worker(i: int) -> None:
        nonlocal done
        call, req = calls[i % len(calls)], reqs[i]
        while True:
            t = time.perf_counter()
            if t >= stop:
                return
            await call(req)
            if t >= warm:
                latencies.append(time.perf_counter() - t)
                done += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    latencies.sort()
    for ch in channels:
        await ch.close()
    return {
        "puts_per_s": done / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else 0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else 0,
    }


def run_load(endpoint: str, pid: int, clients: int, seconds: float, value_size: int) -> dict:
    """Drive one server from a separate process; add the server's CPU per put."""
    c0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--load-client", endpoint, str(clients), str(seconds), str(value_size)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - c0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # The server's CPU over the whole client run (incl. its 1 s warm-up) per put issued in it.
    total_puts = res["puts_per_s"] * (seconds + 1.0)
    res["server_cpu_us_per_put"] = cpu / max(total_puts, 1) * 1e6
    res["server_cpu_cores"] = cpu / wall
    return res


def check_perf(endpoint: str, load: str) -> dict:
    out = subprocess.run(
        ["etcdctl", "--endpoints", endpoint, "check", "perf", f"--load={load}"],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout + out.stderr
    m = re.search(r"Throughput.*?: (\d+) writes/s", text)
    slow = re.search(r"Slowest request took.*?: ([\d.]+)s", text)
    return {
        "writes_per_s": int(m.group(1)) if m else None,
        "slowest_s": float(slow.group(1)) if slow else None,
        "verdict": "PASS" if "PASS" in text and "FAIL" not in text else "FAIL",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true", help="longer runs and etcdctl check perf --load=xl")
    ap.add_argument("--clients", type=int, default=256, help="puts in flight (default 256)")
    ap.add_argument("--value-size", type=int, default=256)
    ap.add_argument("--load-client", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_client:
        ep, clients, seconds, size = args.load_client
        print(json.dumps(asyncio.run(_load(ep, int(clients), float(seconds), int(size)))))
        return
    if not shutil.which("etcd") or not shutil.which("etcdctl"):
        sys.exit("needs Debian's etcd-server and etcd-client (apt-get install etcd-server etcd-client)")
    seconds = 20.0 if args.full else 6.0
    root = tempfile.mkdtemp(prefix="megaplane-etcd-api-")
    targets = [("etcd 3.4", "etcd", ""), ("megaplane wal=buffered", "megaplane", "buffered"), ("megaplane wal=fsync", "megaplane", "fsync")]
    results: dict = {"clients": args.clients, "value_bytes": args.value_size, "seconds": seconds}
    print(f"etcd_api: {args.clients} concurrent puts of {args.value_size} B for {seconds:.0f} s per server", flush=True)
    try:
        for label, kind, wal in targets:
            proc, endpoint = start_server(kind, root, wal)
            try:
                r = run_load(endpoint, proc.pid, args.clients, seconds, args.value_size)
                if args.full:
                    r["check_perf_xl"] = check_perf(endpoint, "xl")
            finally:
                proc.terminate()
                proc.wait(180)  # a checkpoint the load started is finished before the store exits
            results[label] = r
            print(f"  {label:24s} {r['puts_per_s']:>8,.0f} puts/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  "
                  f"server {r['server_cpu_us_per_put']:.0f} us CPU/put", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = results["etcd 3.4"]["puts_per_s"]
    for label, _, _ in targets[1:]:
        results[label]["ratio_vs_etcd"] = results[label]["puts_per_s"] / base
    print()
    print("| server | puts/s | p50 ms | p99 ms | server CPU us/put | ratio vs etcd |" + (" check perf xl |" if args.full else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---|" if args.full else ""))
    for label, _, _ in targets:
        r = results[label]
        row = (f"| {label} | {r['puts_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
               f"{r['server_cpu_us_per_put']:.0f} | {r.get('ratio_vs_etcd', 1.0):.2f} |")
        if args.full:
            cp = r["check_perf_xl"]
            row += f" {cp['writes_per_s']} w/s {cp['verdict']} |"
        print(row)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
