"""The gRPC server: a method table served on asyncio TCP listeners, one `H2Connection` each."""

from __future__ import annotations

import asyncio
from typing import Dict, List, Set, Tuple, Type

from .calls import Method, RpcError
from .connection import H2Connection

__all__ = ["GrpcServer"]


class GrpcServer:
    """A method table served on asyncio TCP listeners."""

    def __init__(
        self,
        methods: Dict[str, Method],
        *,
        max_receive_bytes: int,
        status_errors: Tuple[Type[Exception], ...] = (),
    ) -> None:
        """`status_errors`: exception types a handler may raise to end its call with a status.

        Each must carry `code` (a STATUS name) and `message`, as `RpcError` does; the
        etcd server passes the store's errors, so the transport knows nothing of them.
        """
        self.methods = methods
        self.max_receive_bytes = max_receive_bytes
        self.status_errors: Tuple[Type[Exception], ...] = (RpcError, *status_errors)
        self.servers: List[asyncio.AbstractServer] = []
        self.connections: Set[H2Connection] = set()

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: H2Connection(self.methods, self.max_receive_bytes, self.connections, self.status_errors), host, port, reuse_address=True, backlog=4096)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for c in list(self.connections):
            c.goaway()
        for s in self.servers:
            await s.wait_closed()
