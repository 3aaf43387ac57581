"""Lease renewals, node heartbeats' traffic, at ~10x the API server's capacity, with and without flow control.

    python benchmarks/api_overload.py           # quick: 8 s per run, < 1 minute
    python benchmarks/api_overload.py --full    # 30 s per run, plus the max-inflight-only server

The server is `megaplane apiserver` pinned to core 0; the load (this file's `--load` mode) runs on
core 1. Setup: 500 ConfigMaps in `bench` (a LIST walks 500 objects: 5 seats), 100 Leases in
kube-node-lease. First the capacity C: responses/s of the bulk mix (45 % GET, 35 % PUT, 20 % LIST
of the 500 ConfigMaps) from 64 closed-loop connections against the server without flow control.
Then each server under test gets that mix paced open-loop at 10 x C over up to 1000 connections (a
tick that finds every connection busy is counted as unsent: offered load the client could not even
put on the wire; so is load the one-core client cannot generate, see `sent`), 50 watchers on the
ConfigMaps that re-watch every 2 s from resourceVersion 0 (each new watch is sent all 500 objects
first), and 100 kubelets renewing their Lease once a second (PUT with the last resourceVersion,
one connection each; a 429 is retried after its Retry-After, as client-go does, and counts against
the success rate only if the renewal is not done within 10 s). Bulk connections wait out a 429's
Retry-After before their next request, as client-go does ("apf"); "apf_hostile" is the same run with
bulk clients that ignore it and resend at once. Reported per server: lease renewal
p50/p99 latency (first send to the 200) and success rate, bulk answers by class, 429s with a
Retry-After, 5xx, and the server's RSS at idle and over time. Targets (issue 8): lease renewal
p99 < 1 s and 100 % success at 10x overload; RSS within 2x of idle; 0 5xx. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CLIENT_CORE, apiserver, create_namespace, markdown_table, pinned, post_json, rss_bytes  # noqa: E402

CONFIGMAPS = 500
LEASES = 100
WATCHERS = 50
RV = re.compile(rb'"resourceVersion":"(\d+)"')
NO_FLOW_CONTROL = ["--enable-priority-and-fairness=false", "--max-requests-inflight", "0",
                   "--max-mutating-requests-inflight", "0"]
MAX_INFLIGHT_ONLY = ["--enable-priority-and-fairness=false"]


# -- the load generator (--load, on core 1) ---------------------------------------------------------

class Conn(asyncio.Protocol):
    """One keep-alive connection, one request at a time; `done(status, headers, body)` per answer."""

    def __init__(self) -> None:
        import httptools

        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: Optional[asyncio.Future] = None
        self.headers: Dict[bytes, bytes] = {}
        self.body: List[bytes] = []
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Any) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((0, {}, b""))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
        self.headers, self.body = {}, []

    def request(self, raw: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


async def connect(port: int, cls: Any = Conn) -> Any:
    _, proto = await asyncio.get_running_loop().create_connection(cls, "127.0.0.1", port)
    return proto


def http(method: str, path: str, body: bytes = b"", agent: str = "bulk/1.0") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def bulk_request(rng: random.Random) -> bytes:
    x = rng.random()
    i = rng.randrange(CONFIGMAPS)
    if x < 0.45:
        return http("GET", f"/api/v1/namespaces/bench/configmaps/cm-{i}")
    if x < 0.8:
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                           "data": {"v": str(rng.random()) * 20}}).encode()
        return http("PUT", f"/api/v1/namespaces/bench/configmaps/cm-{i}", body)
    return http("GET", "/api/v1/namespaces/bench/configmaps")


class Tally:
    def __init__(self) -> None:
        self.codes: Dict[str, int] = {}
        self.retry_after = 0
        self.unsent = 0
        self.sent = 0

    def add(self, status: int, headers: Dict[bytes, bytes]) -> None:
        k = str(status)
        self.codes[k] = self.codes.get(k, 0) + 1
        if status == 429 and b"retry-after" in headers:
            self.retry_after += 1


async def closed_loop(port: int, conns: int, seconds: float) -> Dict[str, Any]:
    tally = Tally()
    end = time.monotonic() + seconds

    async def one(seed: int) -> None:
        rng = random.Random(seed)
        c = await connect(port)
        while time.monotonic() < end and not c.lost:
            status, headers, _ = await c.request(bulk_request(rng))
            tally.add(status, headers)
            if c.lost:
                c = await connect(port)

    t = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(conns)))
    n = sum(tally.codes.values())
    return {"rate": n / (time.monotonic() - t), "codes": tally.codes}


async def overload(port: int, rate: float, max_conns: int, seconds: float, lease_rvs: Dict[str, str],
                   polite: bool) -> Dict[str, Any]:
    loop = asyncio.get_running_loop()
    tally = Tally()
    stop = time.monotonic() + seconds
    rng = random.Random(1)
    free: List[Conn] = []
    opened = [0]

    async def fire(c: Optional[Conn]) -> None:
        if c is None or c.lost:
            opened[0] += 1
            try:
                c = await connect(port)
            except OSError:
                tally.add(-1, {})
                opened[0] -= 1
                return
        status, headers, _ = await c.request(bulk_request(rng))
        tally.add(status, headers)
        if polite and status == 429:
            # As client-go and megaplane.client do: this connection's next request waits for Retry-After.
            await asyncio.sleep(float(headers.get(b"retry-after", b"1")))
        if not c.lost:
            free.append(c)
        else:
            opened[0] -= 1

    async def pacer() -> None:
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() < stop:
            due = int((time.monotonic() - t0) * rate) - sent
            for _ in range(due):
                sent += 1
                if free:
                    loop.create_task(fire(free.pop()))
                elif opened[0] < max_conns:
                    loop.create_task(fire(None))
                else:
                    tally.unsent += 1
            await asyncio.sleep(0.002)
        tally.sent = sent - tally.unsent

    async def watcher() -> None:
        while time.monotonic() < stop:
            try:
                c = await connect(port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            c.transport.write(http("GET", "/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion=0",
                                   agent="watcher/1.0"))
            # Re-watch every 2 s: each new watch is sent the 500 ConfigMaps first (resourceVersion=0).
            until = time.monotonic() + 2.0
            while time.monotonic() < min(stop, until) and not c.lost:
                await asyncio.sleep(0.2)
            c.transport.close()

    latencies: List[float] = []
    renewals = {"ok": 0, "failed": 0, "first_try_ok": 0, "429": 0, "other": 0}

    async def kubelet(name: str, offset: float) -> None:
        c = await connect(port)
        await asyncio.sleep(offset)
        rv = lease_rvs[name]
        next_at = time.monotonic()
        while next_at < stop:
            start = time.monotonic()
            attempt = 0
            done = False
            while time.monotonic() - start < 10:
                body = json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": rv},
                                   "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                            "renewTime": "2026-01-01T00:00:00.000000Z"}}).encode()
                if c.lost:
                    c = await connect(port)
                status, headers, data = await c.request(
                    http("PUT", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", body,
                         agent="kubelet/v1.32"))
                attempt += 1
                if status == 200:
                    m = RV.search(data)
                    rv = m.group(1).decode() if m else rv
                    done = True
                    break
                if status == 429:
                    renewals["429"] += 1
                    await asyncio.sleep(float(headers.get(b"retry-after", b"1")))
                else:
                    renewals["other"] += 1
                    await asyncio.sleep(0.1)
            if done:
                renewals["ok"] += 1
                renewals["first_try_ok"] += attempt == 1
                latencies.append(time.monotonic() - start)
            else:
                renewals["failed"] += 1
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    tasks = [loop.create_task(watcher()) for _ in range(WATCHERS)]
    tasks += [loop.create_task(kubelet(n, i / LEASES)) for i, n in enumerate(sorted(lease_rvs))]
    await pacer()
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)  # answers still in flight
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 4) if latencies else -1.0

    total = renewals["ok"] + renewals["failed"]
    return {
        "offered_rate": rate, "sent": tally.sent, "sent_rate": round(tally.sent / seconds), "unsent": tally.unsent, "codes": tally.codes,
        "429_with_retry_after": tally.retry_after,
        "5xx": sum(n for k, n in tally.codes.items() if k.startswith("5")),
        "lease_p50_s": pct(0.5), "lease_p99_s": pct(0.99), "lease_max_s": pct(1.0),
        "lease_success": renewals["ok"] / total if total else 0.0, "lease": renewals,
    }


def load_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    spec = json.loads(args.load)
    if spec["mode"] == "capacity":
        out = asyncio.run(closed_loop(spec["port"], spec["conns"], spec["seconds"]))
    else:
        out = asyncio.run(overload(spec["port"], spec["rate"], spec["max_conns"], spec["seconds"], spec["leases"],
                                   spec["polite"]))
    print(json.dumps(out))


# -- the driver -------------------------------------------------------------------------------------

def run_load(spec: Dict[str, Any]) -> Dict[str, Any]:
    proc = subprocess.run(pinned([sys.executable, os.path.abspath(__file__), "--load", json.dumps(spec)], CLIENT_CORE),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def setup(base: str) -> Dict[str, str]:
    create_namespace(base, "bench")
    for i in range(CONFIGMAPS):
        post_json(base, "/api/v1/namespaces/bench/configmaps",
                  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}, "data": {"v": "x" * 200}})
    rvs = {}
    for i in range(LEASES):
        lease = post_json(base, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                          {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": f"node-{i}"},
                           "spec": {"holderIdentity": f"node-{i}", "leaseDurationSeconds": 40}})
        rvs[f"node-{i}"] = lease["metadata"]["resourceVersion"]
    return rvs


def sample_rss(pid: int, stop: threading.Event, out: List[int]) -> None:
    while not stop.wait(0.5):
        try:
            out.append(rss_bytes(pid))
        except OSError:
            return


def overloaded(extra: List[str], rate: float, seconds: float, polite: bool = True) -> Dict[str, Any]:
    with apiserver(extra) as (proc, base):
        rvs = setup(base)
        urllib.request.urlopen(base + "/readyz").read()
        idle = rss_bytes(proc.pid)
        stop = threading.Event()
        samples: List[int] = []
        t = threading.Thread(target=sample_rss, args=(proc.pid, stop, samples))
        t.start()
        try:
            out = run_load({"mode": "overload", "port": int(base.rsplit(":", 1)[1]), "rate": rate, "max_conns": 1000,
                            "seconds": seconds, "leases": rvs, "polite": polite})
        finally:
            stop.set()
            t.join()
        out["rss_idle_mb"] = round(idle / 2**20, 1)
        out["rss_max_mb"] = round(max(samples or [idle]) / 2**20, 1)
        out["rss_over_time_mb"] = [round(s / 2**20) for s in samples[::max(1, len(samples) // 12)]]
        out["rss_ratio"] = round(max(samples or [idle]) / idle, 2)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--load", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        load_main(args)
        return
    seconds = 30.0 if args.full else 8.0
    with apiserver(NO_FLOW_CONTROL) as (_, base):
        setup(base)
        cap = run_load({"mode": "capacity", "port": int(base.rsplit(":", 1)[1]), "conns": 64,
                        "seconds": 3.0 if not args.full else 10.0})
    capacity = cap["rate"]
    rate = 10 * capacity
    runs = {"apf": overloaded([], rate, seconds), "apf_hostile": overloaded([], rate, seconds, polite=False),
            "none": overloaded(NO_FLOW_CONTROL, rate, seconds)}
    if args.full:
        runs["max_inflight_only"] = overloaded(MAX_INFLIGHT_ONLY, rate, seconds)
    rows = []
    for name, r in runs.items():
        rows.append([name, f"{r['lease_p50_s']:.3f}", f"{r['lease_p99_s']:.3f}", f"{100 * r['lease_success']:.1f} %",
                     str(r["codes"].get("200", 0) + r["codes"].get("201", 0)), str(r["codes"].get("429", 0)),
                     str(r["429_with_retry_after"]), str(r["5xx"]), str(r["unsent"]),
                     f"{r['rss_idle_mb']} -> {r['rss_max_mb']} ({r['rss_ratio']}x)"])
    print(f"capacity (bulk mix, 64 closed-loop connections, no flow control): {capacity:.0f} responses/s; "
          f"offered at 10x: {rate:.0f}/s for {seconds:.0f} s")
    print(markdown_table(["server", "lease p50 s", "lease p99 s", "lease ok", "bulk 2xx", "429", "429+Retry-After",
                          "5xx", "unsent", "RSS MB idle -> max"], rows))
    apf = runs["apf"]
    print(json.dumps({
        "benchmark": "api_overload", "capacity_rps": round(capacity), "offered_rps": round(rate), "seconds": seconds,
        "runs": runs,
        "targets_met": {"lease_p99_lt_1s": apf["lease_p99_s"] < 1.0, "lease_success_100": apf["lease_success"] == 1.0,
                        "rss_within_2x": apf["rss_ratio"] <= 2.0, "no_5xx": apf["5xx"] == 0},
    }))


if __name__ == "__main__":
    main()
