"""Events: stored with a TTL (--event-ttl), so storage deletes them when they expire."""

from __future__ import annotations

from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["EventStrategy"]


class EventStrategy(Strategy):
    def __init__(self, resource: Resource, ttl: int) -> None:
        super().__init__(resource)
        self.ttl = ttl

    def storage_ttl(self) -> int:
        return self.ttl
