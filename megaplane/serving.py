"""A component process's own endpoints: /healthz, /livez, /readyz and /metrics over plain HTTP.

kube-scheduler and kube-controller-manager serve these on their secure
port; megaplane has no authentication yet, so `megaplane scheduler` and
`megaplane controller-manager` serve them plain, on --bind-address and
--port. They are answered on the event loop that owns the state the
collectors and checks read (as `megaplane.metrics` does for the store), so
a scrape never reads a dict another thread is resizing.

/healthz and /livez run the named health checks (kube-controller-manager's
`leaderElection` check is one: megaplane.client.leaderelection); each check
returns None when healthy or a reason. `?verbose` lists every check as
upstream's healthz handler does. /readyz answers from the process's
`ready()`.

Must import nothing from megaplane but this bottom layer: every component
process (scheduler, controllers, fleet) uses it.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

__all__ = ["EndpointServer", "HealthCheck", "serve"]

#: A health check: None when healthy, else why not.
HealthCheck = Callable[[], Optional[str]]

_TEXT = "text/plain; charset=utf-8"


def _health(checks: Mapping[str, HealthCheck], verbose: bool) -> Tuple[str, bytes]:
    lines: List[str] = []
    failed = False
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # a broken check is a failed check, not a 500 without a reason
            reason = f"check raised {exc!r}"
        if reason is None:
            lines.append(f"[+]{name} ok")
        else:
            failed = True
            lines.append(f"[-]{name} failed: {reason}")
    if failed:
        # Upstream's healthz answers 500 with every check listed when one fails, whatever ?verbose says.
        return "500 Internal Server Error", ("\n".join(lines) + "\nhealthz check failed\n").encode()
    if verbose:
        return "200 OK", ("[+]ping ok\n" + "".join(line + "\n" for line in lines) + "healthz check passed\n").encode()
    return "200 OK", b"ok"


async def serve(host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool],
                checks: Optional[Mapping[str, HealthCheck]] = None) -> asyncio.Server:
    """Answer the endpoints on host:port from the running loop (port 0: a free port the kernel picks)."""
    health = dict(checks or {})

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            parts = request.split(b" ", 2)
            target = parts[1] if len(parts) > 2 else b"/"
            path, _, query = target.partition(b"?")
            status, ctype, body = "404 Not Found", _TEXT, b"404 page not found\n"
            if path == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path in (b"/healthz", b"/livez"):
                status, body = _health(health, b"verbose" in query)
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


class EndpointServer:
    """The endpoints as a `megaplane.runtime.Component`: listening from start() to stop().

    Start it last, so /readyz (the process's `ready`) and /metrics answer
    for components that exist.
    """

    def __init__(self, host: str, port: int, collectors: Iterable[Collector], ready: Callable[[], bool],
                 checks: Optional[Mapping[str, HealthCheck]] = None, *, name: str = "endpoints") -> None:
        self.host = host
        self.port = port
        self.registry = CollectorRegistry()
        for collector in collectors:
            self.registry.register(collector)
        self.is_ready = ready
        self.checks: Dict[str, HealthCheck] = dict(checks or {})
        self._name = name
        self.server: Optional[asyncio.Server] = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def bound_port(self) -> int:
        """The port listened on (the one the kernel chose for port 0); 0 before start."""
        if self.server is None or not self.server.sockets:
            return 0
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await serve(self.host, self.port, self.registry, self.is_ready, self.checks)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()

    def ready(self) -> bool:
        return self.server is not None

    def statistics(self) -> Dict[str, Union[int, float, bool, str]]:
        return {"port": self.bound_port}
