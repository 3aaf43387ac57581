"""HTTPTransport request deadlines on pooled connections, and the transport under uvloop.

The transport keeps one deadline timer per connection across requests
(moved to the deadline of the request in flight when it fires early), so
these check the observable contract: a request answered within `timeout`
succeeds even when an earlier request's deadline passes meanwhile, and one
never answered fails with RequestTimeoutError no sooner than its own timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, List, Optional, Tuple

import pytest
import uvloop

from megaplane.client import Client, HTTPTransport, RequestTimeoutError
from tests.client.servers import response

NEVER: Optional[float] = None


class DelayedServer:
    """Answers the n-th request after delays[n] seconds (NEVER: reads it and stays silent)."""

    def __init__(self, delays: List[Optional[float]]) -> None:
        self.delays = list(delays)
        self.connections = 0
        self.server: Optional[asyncio.base_events.Server] = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                delay = self.delays.pop(0) if self.delays else 0.0
                if delay is NEVER:
                    await reader.read()  # until the client gives up and closes
                    break
                await asyncio.sleep(delay)
                writer.write(response(200, b'{"kind":"ConfigMap","metadata":{"name":"a"}}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_deadline_is_each_requests_own_on_a_reused_connection() -> None:
    async def main() -> Tuple[List[str], Any, float, int]:
        server = DelayedServer([0.6, 0.7, NEVER])
        url = await server.start()
        names = []
        async with Client(HTTPTransport(url, qps=0, max_connections=1, timeout=1.0)) as client:
            cms = client.resource("configmaps")
            # The first request's deadline passes while the second is in flight, which is answered in time.
            names.append((await cms.get("a", "default"))["metadata"]["name"])
            names.append((await cms.get("a", "default"))["metadata"]["name"])
            started = time.monotonic()
            try:
                await cms.get("a", "default")
                failure: Any = None
            except RequestTimeoutError as exc:
                failure = exc
            waited = time.monotonic() - started
        await server.stop()
        return names, failure, waited, server.connections

    names, failure, waited, connections = asyncio.run(main())
    assert names == ["a", "a"] and connections == 1
    assert isinstance(failure, RequestTimeoutError) and "1s" in str(failure)
    assert waited >= 1.0  # not cut short by a deadline of an earlier request


def test_timed_out_connection_is_not_reused() -> None:
    async def main() -> Tuple[Any, str, int]:
        server = DelayedServer([NEVER, 0.0])
        url = await server.start()
        async with Client(HTTPTransport(url, qps=0, max_connections=1, timeout=0.3)) as client:
            cms = client.resource("configmaps")
            with pytest.raises(RequestTimeoutError) as raised:
                await cms.get("a", "default")
            name = (await cms.get("a", "default"))["metadata"]["name"]
        await server.stop()
        return raised.value, name, server.connections

    failure, name, connections = asyncio.run(main())
    assert isinstance(failure, RequestTimeoutError)
    assert name == "a" and connections == 2


def test_requests_on_uvloop() -> None:
    # uvloop's transports implement asyncio.Transport without subclassing it.
    async def main() -> List[str]:
        server = DelayedServer([0.0, 0.0, 0.0])
        url = await server.start()
        async with Client(HTTPTransport(url, qps=0, max_connections=2)) as client:
            cms = client.resource("configmaps")
            got = await asyncio.gather(*(cms.get("a", "default") for _ in range(3)))
        await server.stop()
        return [o["metadata"]["name"] for o in got]

    assert uvloop.run(main()) == ["a", "a", "a"]
