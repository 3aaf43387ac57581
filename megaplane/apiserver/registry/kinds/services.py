"""Services: cluster IPs and node ports taken on create/update and given back on delete or failure."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.services import ServiceAllocations
from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["ServiceStrategy"]


class ServiceStrategy(Strategy):
    restores = True
    def __init__(self, resource: Resource, cluster_ip_range: str, node_port_range: str) -> None:
        super().__init__(resource)
        self.allocations = ServiceAllocations(cluster_ip_range, node_port_range)

    def initial_status(self, obj: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        return {"loadBalancer": {}}

    def admit_create(self, obj: Dict[str, Any]) -> None:
        self.allocations.admit_create(obj)

    def admit_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> List[int]:
        return self.allocations.admit_update(obj, old)

    def release_update(self, taken: List[int]) -> None:
        if taken:
            self.allocations.release_ports(taken)

    def after_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        self.allocations.after_update(obj, old)

    def release(self, obj: Dict[str, Any]) -> None:
        self.allocations.release(obj)

    def restore(self, obj: Dict[str, Any]) -> None:
        self.allocations.restore(obj.get("spec") or {})
