"""A scripted HTTP server for what megaplane cannot be made to do: 429s, dropped keep-alive connections.

Each accepted request is answered by the next item of `script`: a full
response (bytes) or DROP (close the connection without answering).
`requests` records the request lines it read.
"""

from __future__ import annotations

import asyncio
from typing import List, Optional, Union

DROP = None


def response(status: int, body: bytes = b"{}", headers: Optional[List[str]] = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}",
             *(headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ScriptedServer:
    def __init__(self, script: List[Union[bytes, None]]) -> None:
        self.script = list(script)
        self.requests: List[str] = []
        self.connections = 0
        self.server: Optional[asyncio.base_events.Server] = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length")), 0)
                if length:
                    await reader.readexactly(length)
                self.requests.append(lines[0])
                answer = self.script.pop(0) if self.script else response(500)
                if answer is DROP:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
