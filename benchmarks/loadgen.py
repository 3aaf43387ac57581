"""A lean HTTP/1.1 load generator for the API benchmarks (asyncio + uvloop, raw bytes).

The official `kubernetes` client manages ~500 calls/s per process; this one
drives tens of thousands from one core because it never parses a response
beyond its status line, Content-Length and resourceVersion. Each mode prints
one JSON line with its figures; the benchmarks run it pinned to the client
core and read that line.

    update  N keep-alive connections, each PUTting its own object with the
            resourceVersion of its last response (optimistic concurrency,
            as a kubelet renews its Lease)
    create  POST objects from a template over C connections (bulk fill)
    watch   W watch streams; counts events without decoding them
    list    LIST a collection, following `continue`, and time it

Body templates are JSON with the placeholders @NAME@, @RV@ and @N@ (the
update's sequence number), substituted as bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import Dict, List, Optional

_RV = re.compile(rb'"resourceVersion":"(\d+)"')
_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def fill(template: bytes, name: str, rv: str = "", n: int = 0) -> bytes:
    return template.replace(b"@NAME@", name.encode()).replace(b"@RV@", rv.encode()).replace(b"@N@", b"%d" % n)


class Responses:
    """Splits a byte stream of Content-Length framed HTTP/1.1 responses into (status, body)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> List[tuple]:
        buf = self.buf + data
        out = []
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            cl_at = buf.find(b"Content-Length: ", 0, head_end)
            length = int(buf[cl_at + 16 : buf.find(b"\r\n", cl_at)])
            end = head_end + 4 + length
            if len(buf) < end:
                break
            out.append((buf[9:12], buf[head_end + 4 : end]))
            buf = buf[end:]
        self.buf = buf
        return out


class Client(asyncio.Protocol):
    """One keep-alive connection that sends its next request when the last is answered; `done` when closed."""

    def __init__(self, method: bytes, path: bytes, host: str) -> None:
        self.head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\n" % (
            method, path, host.encode())
        self.responses = Responses()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        raise NotImplementedError

    def write_body(self, body: bytes) -> None:
        self.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))

    def connection_lost(self, exc: object) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Updater(Client):
    """One connection updating one object as fast as the server answers."""

    def __init__(self, run: "UpdateRun", path: str, name: str, rv: str) -> None:
        super().__init__(b"PUT", path.encode(), run.host)
        self.run = run
        self.name = name
        self.rv = rv
        self.path = path.encode()
        self.refreshing = False
        self.sent_at = 0.0
        self.n = 0

    def send(self) -> None:
        now = time.perf_counter()
        if now >= self.run.stop_at:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.n += 1
        self.sent_at = now
        self.write_body(fill(self.run.template, self.name, self.rv, self.n))

    def data_received(self, data: bytes) -> None:
        for status, body in self.responses.feed(data):
            now = time.perf_counter()
            m = _RV.search(body)
            if self.refreshing:
                # The answer to our GET after a conflict: carry on from the object's current version.
                self.refreshing = False
                if m:
                    self.rv = m.group(1).decode()
                self.send()
                continue
            if status == b"200":
                if m:
                    self.rv = m.group(1).decode()
                if now >= self.run.warm_until:
                    self.run.ok += 1
                    self.run.latencies.append(now - self.sent_at)
                self.send()
            else:
                self.run.errors += 1
                # Someone else moved it (409): read it again, as a kubelet does.
                self.refreshing = True
                self.transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n\r\n" % (
                    self.path, self.run.host.encode()))


class UpdateRun:
    def __init__(self, host: str, template: bytes, seconds: float, warmup: float) -> None:
        self.host = host
        self.template = template
        self.ok = 0
        self.errors = 0
        self.latencies: List[float] = []
        self.warm_until = time.perf_counter() + warmup
        self.stop_at = self.warm_until + seconds
        self.seconds = seconds


def percentiles(latencies: List[float]) -> Dict[str, float]:
    lat = sorted(latencies)
    return {
        "p50_ms": lat[len(lat) // 2] * 1e3 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else 0.0,
    }


async def update(host: str, port: int, path: str, objects: List[tuple], template: bytes, seconds: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    run = UpdateRun(f"{host}:{port}", template, seconds, warmup)
    conns = []
    for name, rv in objects:
        _, proto = await loop.create_connection(lambda name=name, rv=rv: Updater(run, path.replace("@NAME@", name), name, rv), host, port)
        conns.append(proto)
    await asyncio.gather(*(c.done for c in conns))
    return {"updates_per_s": run.ok / seconds, "updates": run.ok, "errors": run.errors, **percentiles(run.latencies)}


class Creator(Client):
    def __init__(self, host: str, path: str, template: bytes, names: List[str], result: dict) -> None:
        super().__init__(b"POST", path.encode(), host)
        self.template = template
        self.names = names
        self.result = result
        self.current = ""

    def send(self) -> None:
        if not self.names:
            self.transport.close()
            return
        self.current = self.names.pop()
        self.write_body(fill(self.template, self.current))

    def data_received(self, data: bytes) -> None:
        for status, body in self.responses.feed(data):
            if status == b"201":
                self.result["created"] += 1
                m = _RV.search(body)
                if m and self.result["rvs"] is not None:
                    self.result["rvs"][self.current] = m.group(1).decode()
            else:
                self.result["errors"] += 1
                if len(self.result["first_errors"]) < 3:
                    self.result["first_errors"].append(body[:300].decode(errors="replace"))
            self.send()


async def create(host: str, port: int, path: str, template: bytes, names: List[str], conns: int, want_rvs: bool) -> dict:
    loop = asyncio.get_running_loop()
    result: dict = {"created": 0, "errors": 0, "first_errors": [], "rvs": {} if want_rvs else None}
    pending = list(reversed(names))
    t0 = time.perf_counter()
    protos = []
    for _ in range(min(conns, len(names))):
        _, proto = await loop.create_connection(lambda: Creator(f"{host}:{port}", path, template, pending, result), host, port)
        protos.append(proto)
    await asyncio.gather(*(p.done for p in protos))
    result["seconds"] = time.perf_counter() - t0
    result["creates_per_s"] = result["created"] / result["seconds"]
    if result["rvs"] is None:
        del result["rvs"]
    return result


class WatchReader(asyncio.Protocol):
    """Reads a chunked watch stream; counts event lines without decoding them.

    Every event is one JSON object ending in "}\\n" inside the chunk data; the
    chunked framing never puts "}" before a "\\n", so the count is exact as
    long as a "}" / "\\n" pair split across two reads is counted too.
    """

    def __init__(self, request: bytes, stats: "WatchStats") -> None:
        self.request = request
        self.stats = stats
        self.count = 0
        self.last = b""
        stats.readers.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        n = data.count(b"}\n") + (self.last == b"}" and data[:1] == b"\n")
        self.last = data[-1:]
        if n:
            self.count += n
            self.stats.total += n
            self.stats.last_event = time.perf_counter()
            if not self.stats.first_event:
                self.stats.first_event = self.stats.last_event


class WatchStats:
    def __init__(self) -> None:
        self.readers: List[WatchReader] = []
        self.total = 0
        self.first_event = 0.0
        self.last_event = 0.0


async def watch(host: str, port: int, path: str, watchers: int, seconds: float, warmup: float, until_idle: Optional[float]) -> dict:
    """Count events for `seconds` after `warmup`, or, with `until_idle`, until the streams go quiet."""
    loop = asyncio.get_running_loop()
    stats = WatchStats()
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
    transports = []
    for _ in range(watchers):
        t, _ = await loop.create_connection(lambda: WatchReader(req, stats), host, port)
        transports.append(t)
    print("watching", flush=True)  # the benchmark starts its writers on this line
    if until_idle is None:
        await asyncio.sleep(warmup)
        start = stats.total
        await asyncio.sleep(seconds)
        out = {"events_per_s": (stats.total - start) / seconds}
    else:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            if stats.first_event and time.perf_counter() - stats.last_event > until_idle:
                break
        span = stats.last_event - stats.first_event
        out = {"events": stats.total, "span_s": span, "events_per_s": stats.total / span if span > 0 else 0.0}
    counts = [r.count for r in stats.readers]
    out.update({"watchers": watchers, "min_per_watcher": min(counts), "max_per_watcher": max(counts), "per_watcher": counts})
    for t in transports:
        t.close()
    return out


async def list_collection(host: str, port: int, path: str, repeat: int, follow: bool = True) -> dict:
    """GET `path` (following `continue` unless told not to) `repeat` times; time to the last byte of the last page."""
    import orjson

    runs = []
    items = pages = size = 0
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
    for _ in range(repeat):
        bodies = []
        token = b""
        t0 = time.perf_counter()
        while True:
            sep = "&" if "?" in path else "?"
            url = path + (f"{sep}continue={token.decode()}" if token else "")
            writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            cl_at = head.find(b"Content-Length: ")
            if cl_at >= 0:
                body = await reader.readexactly(int(head[cl_at + 16 : head.find(b"\r\n", cl_at)]))
            else:  # chunked
                parts = []
                while True:
                    n = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                    parts.append(await reader.readexactly(n + 2))
                    if n == 0:
                        break
                body = b"".join(p[:-2] for p in parts)
            if head[9:12] != b"200":
                raise RuntimeError(f"LIST {url}: {head[:12]!r} {body[:300]!r}")
            bodies.append(body)
            m = _CONTINUE.search(body, 0, 400)
            token = m.group(1) if m and follow else b""
            if not token:
                break
        runs.append(time.perf_counter() - t0)
        # Outside the timed window: prove the pages add up to the collection.
        decoded = [orjson.loads(b) for b in bodies]
        names = {(i["metadata"].get("namespace"), i["metadata"]["name"]) for d in decoded for i in d["items"]}
        items, pages, size = len(names), len(bodies), sum(len(b) for b in bodies)
        if items != sum(len(d["items"]) for d in decoded):
            raise RuntimeError("pages overlap: an item was listed twice")
    writer.close()
    return {"seconds": runs, "items": items, "pages": pages, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("update")
    u.add_argument("path", help="object path with @NAME@")
    u.add_argument("objects", help="file of name=resourceVersion lines")
    u.add_argument("template", help="body template file")
    u.add_argument("seconds", type=float)
    u.add_argument("--warmup", type=float, default=1.0)
    c = sub.add_parser("create")
    c.add_argument("path", help="collection path")
    c.add_argument("template")
    c.add_argument("prefix")
    c.add_argument("count", type=int)
    c.add_argument("--conns", type=int, default=32)
    c.add_argument("--rvs", action="store_true", help="report each created object's resourceVersion")
    w = sub.add_parser("watch")
    w.add_argument("path")
    w.add_argument("watchers", type=int)
    w.add_argument("seconds", type=float, help="measurement window, or the deadline with --until-idle")
    w.add_argument("--warmup", type=float, default=1.0)
    w.add_argument("--until-idle", type=float)
    ls = sub.add_parser("list")
    ls.add_argument("path")
    ls.add_argument("--repeat", type=int, default=3)
    ls.add_argument("--no-follow", action="store_true", help="one page per run: do not follow continue")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.cmd == "update":
        with open(args.objects) as f:
            objects = [tuple(line.strip().split("=")) for line in f if line.strip()]
        with open(args.template, "rb") as f:
            template = f.read()
        out = asyncio.run(update(args.host, args.port, args.path, objects, template, args.seconds, args.warmup))
    elif args.cmd == "create":
        with open(args.template, "rb") as f:
            template = f.read()
        names = [f"{args.prefix}-{i:06d}" for i in range(args.count)]
        out = asyncio.run(create(args.host, args.port, args.path, template, names, args.conns, args.rvs))
    elif args.cmd == "watch":
        out = asyncio.run(watch(args.host, args.port, args.path, args.watchers, args.seconds, args.warmup, args.until_idle))
    else:
        out = asyncio.run(list_collection(args.host, args.port, args.path, args.repeat, not args.no_follow))
    print(json.dumps(out), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
