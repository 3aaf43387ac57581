"""`ClientComponent`: a process's `Client` as a `megaplane.runtime.Component`, closed last.

A component process (`megaplane scheduler`, `megaplane controller-manager`)
lists it first, so the Runner, which stops in reverse, closes the client's
connections only after everything that used it has stopped.
"""

from __future__ import annotations

from megaplane.runtime import Statistics

from .client import Client

__all__ = ["ClientComponent"]


class ClientComponent:
    def __init__(self, client: Client, *, name: str = "client") -> None:
        self.client = client
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        await self.client.close()

    def ready(self) -> bool:
        return True

    def statistics(self) -> Statistics:
        return {}
