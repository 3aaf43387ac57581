"""Prometheus exposition on the event loop (--listen-metrics-urls).

Collectors read live state, so they run on the loop that owns it, not on
prometheus_client's HTTP thread: a scrape is one GET answered between two
loop callbacks, never a read of a dict another thread is resizing.
"""

from __future__ import annotations

import asyncio
from typing import List
from urllib.parse import urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["serve_metrics"]


async def serve_metrics(registry: CollectorRegistry, urls: List[str]) -> List[asyncio.AbstractServer]:
    """Answer GET /metrics on each URL (http://host:port) from the running loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
            if path.split(b"?")[0] in (b"/metrics", b"/"):
                body = generate_latest(registry)
                head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
            else:
                body = b"404 page not found\n"
                head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    servers = []
    for url in urls:
        u = urlparse(url if "://" in url else f"http://{url}")
        servers.append(await asyncio.start_server(handle, u.hostname or "127.0.0.1", u.port or 2381))
    return servers
