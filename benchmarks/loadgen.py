"""A lean HTTP/1.1 load generator for the API benchmarks (asyncio + uvloop, raw bytes).

Kubelet-like Lease renewals: N keep-alive connections, each renewing its
own Lease with PUT and the resourceVersion of its last response (optimistic
concurrency, as a kubelet does). Responses are not parsed beyond the status
line, Content-Length and the resourceVersion, so one client core drives far
more requests than the official clients could.

Also: watch clients that read a chunked watch stream and count events.
Run as a module by the benchmarks (`python benchmarks/loadgen.py ...`);
prints one JSON line with its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import List

_RV = re.compile(rb'"resourceVersion":"(\d+)"')


def lease_body(ns: str, name: str, rv: str, renew: int) -> bytes:
    return (
        b'{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"%s","namespace":"%s",'
        b'"resourceVersion":"%s"},"spec":{"holderIdentity":"%s","leaseDurationSeconds":40,'
        b'"renewTime":"2026-11-22T10:00:%02d.000000Z"}}'
    ) % (name.encode(), ns.encode(), rv.encode(), name.encode(), renew % 60)


class Renewer(asyncio.Protocol):
    """One connection renewing one lease as fast as the server answers."""

    def __init__(self, host: str, ns: str, name: str, rv: str, stats: dict, stop_at: float, warm_until: float) -> None:
        self.host = host
        self.ns = ns
        self.name = name
        self.rv = rv
        self.stats = stats
        self.stop_at = stop_at
        self.warm_until = warm_until
        self.buf = b""
        self.sent_at = 0.0
        self.n = 0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}".encode()
        self.done = asyncio.get_event_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        now = time.perf_counter()
        if now >= self.stop_at:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.n += 1
        body = lease_body(self.ns, self.name, self.rv, self.n)
        self.sent_at = now
        self.transport.write(
            b"PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (self.path, self.host.encode(), len(body), body)
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            cl_at = buf.find(b"Content-Length: ", 0, head_end)
            length = int(buf[cl_at + 16 : buf.find(b"\r\n", cl_at)])
            end = head_end + 4 + length
            if len(buf) < end:
                break
            status = buf[9:12]
            body = buf[head_end + 4 : end]
            buf = buf[end:]
            now = time.perf_counter()
            if status == b"200":
                m = _RV.search(body)
                if m:
                    self.rv = m.group(1).decode()
                if now >= self.warm_until:
                    self.stats["ok"] += 1
                    self.stats["lat"].append(now - self.sent_at)
            else:
                self.stats["errors"] += 1
                if status == b"409":  # someone else moved it: take the current version
                    m = _RV.search(body)
                    self.rv = ""
            self.send()
        self.buf = buf

    def connection_lost(self, exc: object) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def renew(host: str, port: int, ns: str, names: List[str], rvs: List[str], seconds: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    stats: dict = {"ok": 0, "errors": 0, "lat": []}
    t0 = time.perf_counter()
    warm_until = t0 + warmup
    stop_at = warm_until + seconds
    conns = []
    for name, rv in zip(names, rvs):
        _, proto = await loop.create_connection(
            lambda name=name, rv=rv: Renewer(f"{host}:{port}", ns, name, rv, stats, stop_at, warm_until), host, port
        )
        conns.append(proto)
    await asyncio.gather(*(c.done for c in conns))
    lat = sorted(stats["lat"])
    return {
        "updates_per_s": stats["ok"] / seconds,
        "errors": stats["errors"],
        "p50_ms": lat[len(lat) // 2] * 1e3 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else 0.0,
    }


class WatchReader(asyncio.Protocol):
    """Reads a chunked watch stream; counts event lines without decoding them."""

    def __init__(self, request: bytes, counter: list) -> None:
        self.request = request
        self.counter = counter
        self.headers_done = False
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        # Each event ends with "}\n" inside a chunk; chunk framing lines never contain "}\n".
        self.counter[0] += data.count(b"}\n")


async def watch(host: str, port: int, path: str, watchers: int, seconds: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    counter = [0]
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
    transports = []
    for _ in range(watchers):
        t, _ = await loop.create_connection(lambda: WatchReader(req, counter), host, port)
        transports.append(t)
    await asyncio.sleep(warmup)
    start = counter[0]
    await asyncio.sleep(seconds)
    got = counter[0] - start
    for t in transports:
        t.close()
    return {"events_per_s": got / seconds, "watchers": watchers}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("renew")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("namespace")
    r.add_argument("leases", help="comma-separated name=resourceVersion")
    r.add_argument("seconds", type=float)
    r.add_argument("--warmup", type=float, default=1.0)
    w = sub.add_parser("watch")
    w.add_argument("host")
    w.add_argument("port", type=int)
    w.add_argument("path")
    w.add_argument("watchers", type=int)
    w.add_argument("seconds", type=float)
    w.add_argument("--warmup", type=float, default=1.0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.cmd == "renew":
        pairs = [p.split("=") for p in args.leases.split(",")]
        out = asyncio.run(
            renew(args.host, args.port, args.namespace, [p[0] for p in pairs], [p[1] for p in pairs], args.seconds, args.warmup)
        )
    else:
        out = asyncio.run(watch(args.host, args.port, args.path, args.watchers, args.seconds, args.warmup))
    print(json.dumps(out), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
