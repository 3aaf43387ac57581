"""Lease renewals over TLS, as HTTP/1.1 (one connection per renewer) or HTTP/2 (many streams per connection).

    loadgen_tls.py --port P --kubeconfig K update http1 PATH OBJECTS TEMPLATE SECONDS
    loadgen_tls.py --port P --kubeconfig K update h2 PATH OBJECTS TEMPLATE SECONDS --streams 100

The HTTP/1.1 mode is loadgen.py's `update` over TLS; the HTTP/2 mode puts
`--streams` renewers on each connection (each renewer has one request in
flight at a time, as in the HTTP/1.1 mode), with hyper-h2 as the client.
Credentials are the kubeconfig's client certificate. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import h2.config
import h2.connection
import h2.events
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadgen import _RV, Updater, UpdateRun, fill, percentiles  # noqa: E402


def tls_context(kubeconfig: str, alpn: List[str]) -> ssl.SSLContext:
    with open(kubeconfig) as f:
        config = yaml.safe_load(f)
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
        pem.write(base64.b64decode(user["client-certificate-data"]) + b"\n" + base64.b64decode(user["client-key-data"]))
        pem.flush()
        ctx.load_cert_chain(pem.name)
    ctx.set_alpn_protocols(alpn)
    return ctx


# Answers other than 200 by status (or reset code), for the report.
STATUSES: Dict[str, int] = {}


class Renewer:
    __slots__ = ("name", "path", "rv", "n", "sent_at", "refreshing")

    def __init__(self, name: str, path: bytes, rv: str) -> None:
        self.name = name
        self.path = path
        self.rv = rv
        self.n = 0
        self.sent_at = 0.0
        self.refreshing = False


class H2Renewers(asyncio.Protocol):
    """One HTTP/2 connection carrying one stream at a time per renewer."""

    def __init__(self, run: UpdateRun, renewers: List[Renewer]) -> None:
        self.run = run
        self.renewers = renewers
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.streams: Dict[int, Tuple[Renewer, List[bytes], List[int]]] = {}
        self.active = len(renewers)
        self.done = asyncio.get_running_loop().create_future()
        self.authority = run.host.encode()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window((1 << 30) - 65535)
        for r in self.renewers:
            self.send(r)
        self.transport.write(self.conn.data_to_send())

    def _headers(self, method: bytes, path: bytes, length: int = -1) -> List[Tuple[bytes, bytes]]:
        h = [(b":method", method), (b":path", path), (b":scheme", b"https"), (b":authority", self.authority),
             (b"accept", b"application/json")]
        if length >= 0:
            h += [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]
        return h

    def send(self, r: Renewer) -> None:
        now = time.perf_counter()
        if now >= self.run.stop_at:
            self.active -= 1
            if not self.active:
                self.transport.write(self.conn.data_to_send())
                self.transport.close()
            return
        r.n += 1
        r.sent_at = now
        body = fill(self.run.template, r.name, r.rv, r.n)
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, self._headers(b"PUT", r.path, len(body)))
        self.conn.send_data(sid, body, end_stream=True)
        self.streams[sid] = (r, [], [0])

    def refresh(self, r: Renewer) -> None:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, self._headers(b"GET", r.path), end_stream=True)
        self.streams[sid] = (r, [], [0])

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        for ev in conn.receive_data(data):
            kind = type(ev)
            if kind is h2.events.ResponseReceived:
                self.streams[ev.stream_id][2][0] = int(dict(ev.headers)[b":status"])
            elif kind is h2.events.DataReceived:
                self.streams[ev.stream_id][1].append(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif kind is h2.events.StreamEnded:
                r, parts, status = self.streams.pop(ev.stream_id)
                self.answered(r, status[0], b"".join(parts))
            elif kind is h2.events.StreamReset:
                r, _parts, _status = self.streams.pop(ev.stream_id)
                self.run.errors += 1
                STATUSES[f"reset {ev.error_code}"] = STATUSES.get(f"reset {ev.error_code}", 0) + 1
                self.send(r)
        out = conn.data_to_send()
        if out:
            self.transport.write(out)  # every answer of one read is followed by one write of the next requests

    def answered(self, r: Renewer, status: int, body: bytes) -> None:
        now = time.perf_counter()
        m = _RV.search(body)
        if r.refreshing:
            r.refreshing = False
            if m:
                r.rv = m.group(1).decode()
            self.send(r)
            return
        if status == 200:
            if m:
                r.rv = m.group(1).decode()
            if now >= self.run.warm_until:
                self.run.ok += 1
                self.run.latencies.append(now - r.sent_at)
            self.send(r)
        else:
            self.run.errors += 1
            STATUSES[str(status)] = STATUSES.get(str(status), 0) + 1
            r.refreshing = True
            self.refresh(r)

    def connection_lost(self, exc: object) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def update(args: argparse.Namespace, objects: List[tuple], template: bytes) -> dict:
    loop = asyncio.get_running_loop()
    run = UpdateRun(f"{args.host}:{args.port}", template, args.seconds, args.warmup)
    conns: list = []
    if args.protocol == "http1":
        ctx = tls_context(args.kubeconfig, ["http/1.1"])
        for name, rv in objects:
            _, proto = await loop.create_connection(
                lambda name=name, rv=rv: Updater(run, args.path.replace("@NAME@", name), name, rv),
                args.host, args.port, ssl=ctx, server_hostname="localhost")
            conns.append(proto)
    else:
        ctx = tls_context(args.kubeconfig, ["h2"])
        renewers = [Renewer(name, args.path.replace("@NAME@", name).encode(), rv) for name, rv in objects]
        for i in range(0, len(renewers), args.streams):
            group = renewers[i : i + args.streams]
            transport, proto = await loop.create_connection(
                lambda group=group: H2Renewers(run, group), args.host, args.port, ssl=ctx, server_hostname="localhost")
            if transport.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
                raise SystemExit("the server did not negotiate h2")
            conns.append(proto)
    # The warm-up starts when every connection is up (TLS handshakes take a while for hundreds).
    run.warm_until = time.perf_counter() + args.warmup
    run.stop_at = run.warm_until + args.seconds
    await asyncio.gather(*(c.done for c in conns))
    return {"updates_per_s": run.ok / args.seconds, "updates": run.ok, "errors": run.errors,
            "connections": len(conns), "error_statuses": STATUSES, **percentiles(run.latencies)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kubeconfig", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("update")
    u.add_argument("protocol", choices=["http1", "h2"])
    u.add_argument("path", help="object path with @NAME@")
    u.add_argument("objects", help="file of name=resourceVersion lines")
    u.add_argument("template", help="body template file")
    u.add_argument("seconds", type=float)
    u.add_argument("--warmup", type=float, default=1.0)
    u.add_argument("--streams", type=int, default=100, help="HTTP/2: renewers per connection")
    args = ap.parse_args()
    import uvloop

    with open(args.objects) as f:
        objects = [tuple(line.strip().split("=")) for line in f if line.strip()]
    with open(args.template, "rb") as f:
        template = f.read()
    out = uvloop.run(update(args, objects, template))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
