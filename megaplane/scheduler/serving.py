"""The scheduler's HTTP endpoints: /healthz, /readyz and /metrics on --bind-address/--port (plain HTTP).

kube-scheduler serves these on its secure port; megaplane has no
authentication yet, so they are served plain, on the loop that owns the
state the collectors read.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["serve"]


async def serve(host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            parts = request.split(b" ", 2)
            path = parts[1].split(b"?")[0] if len(parts) > 2 else b"/"
            status, ctype, body = "404 Not Found", "text/plain; charset=utf-8", b"404 page not found\n"
            if path == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path == b"/healthz":
                status, body = "200 OK", b"ok"
            elif path == b"/readyz":
                status, body = ("200 OK", b"ok") if ready() else ("500 Internal Server Error", b"not ready\n")
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
