"""Prometheus exposition on the event loop at URLs (--listen-metrics-urls, the fleet's --metrics-bind-address).

Collectors read live state, so they run on the loop that owns it, not on
prometheus_client's HTTP thread: a scrape is one GET answered between two
loop callbacks, never a read of a dict another thread is resizing. The
endpoints themselves are megaplane.serving's (/metrics, /healthz, /readyz).
"""

from __future__ import annotations

import asyncio
from typing import List
from urllib.parse import urlparse

from prometheus_client import CollectorRegistry

from .serving import serve

__all__ = ["serve_metrics"]


async def serve_metrics(registry: CollectorRegistry, urls: List[str]) -> List[asyncio.AbstractServer]:
    """Answer GET /metrics on each URL (http://host:port, or host:port) from the running loop."""
    servers: List[asyncio.AbstractServer] = []
    for url in urls:
        u = urlparse(url if "://" in url else f"http://{url}")
        servers.append(await serve(u.hostname or "127.0.0.1", u.port or 2381, registry, lambda: True))
    return servers
