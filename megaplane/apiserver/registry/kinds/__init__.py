"""Per-kind strategies: one module per kind with rules of its own, found through the resource table.

Kinds not listed here get the default `Strategy`. Each strategy instance
belongs to one API server (service allocations and event leases are state).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.kinds.controllerrevisions import ControllerRevisionStrategy
from megaplane.apiserver.registry.kinds.cronjobs import CronJobStrategy
from megaplane.apiserver.registry.kinds.daemonsets import DaemonSetStrategy
from megaplane.apiserver.registry.kinds.deployments import DeploymentStrategy
from megaplane.apiserver.registry.kinds.endpointslices import EndpointSliceStrategy
from megaplane.apiserver.registry.kinds.jobs import JobStrategy
from megaplane.apiserver.registry.kinds.limitranges import LimitRangeStrategy
from megaplane.apiserver.registry.kinds.namespaces import NamespaceStrategy
from megaplane.apiserver.registry.kinds.nodes import NodeStrategy
from megaplane.apiserver.registry.kinds.poddisruptionbudgets import PodDisruptionBudgetStrategy
from megaplane.apiserver.registry.kinds.pods import PodStrategy
from megaplane.apiserver.registry.kinds.priorityclasses import PriorityClassStrategy
from megaplane.apiserver.registry.kinds.rbac import RoleBindingStrategy, RoleStrategy
from megaplane.apiserver.registry.kinds.resourcequotas import ResourceQuotaStrategy
from megaplane.apiserver.registry.kinds.services import ServiceStrategy
from megaplane.apiserver.registry.strategy import Strategy

__all__ = ["StrategyConfig", "strategy_for"]


class StrategyConfig:
    """The server flags kinds' strategies read."""

    def __init__(
        self,
        service_cluster_ip_range: str = "10.96.0.0/12",
        service_node_port_range: str = "30000-32767",
        event_ttl: int = 3600,
    ) -> None:
        self.service_cluster_ip_range = service_cluster_ip_range
        self.service_node_port_range = service_node_port_range
        self.event_ttl = event_ttl


def _events(r: Resource, config: StrategyConfig) -> Strategy:
    from megaplane.apiserver.registry.kinds.events import EventStrategy

    return EventStrategy(r, config.event_ttl)


_KINDS: Dict[Tuple[str, str], Callable[[Resource, StrategyConfig], Strategy]] = {
    ("", "pods"): lambda r, c: PodStrategy(r),
    ("", "namespaces"): lambda r, c: NamespaceStrategy(r),
    ("", "nodes"): lambda r, c: NodeStrategy(r),
    ("", "services"): lambda r, c: ServiceStrategy(r, c.service_cluster_ip_range, c.service_node_port_range),
    ("", "events"): _events,
    ("", "resourcequotas"): lambda r, c: ResourceQuotaStrategy(r),
    ("", "limitranges"): lambda r, c: LimitRangeStrategy(r),
    ("apps", "deployments"): lambda r, c: DeploymentStrategy(r),
    ("apps", "daemonsets"): lambda r, c: DaemonSetStrategy(r),
    ("apps", "controllerrevisions"): lambda r, c: ControllerRevisionStrategy(r),
    ("discovery.k8s.io", "endpointslices"): lambda r, c: EndpointSliceStrategy(r),
    ("batch", "jobs"): lambda r, c: JobStrategy(r),
    ("batch", "cronjobs"): lambda r, c: CronJobStrategy(r),
    ("policy", "poddisruptionbudgets"): lambda r, c: PodDisruptionBudgetStrategy(r),
    ("scheduling.k8s.io", "priorityclasses"): lambda r, c: PriorityClassStrategy(r),
    ("rbac.authorization.k8s.io", "roles"): lambda r, c: RoleStrategy(r),
    ("rbac.authorization.k8s.io", "clusterroles"): lambda r, c: RoleStrategy(r),
    ("rbac.authorization.k8s.io", "rolebindings"): lambda r, c: RoleBindingStrategy(r),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): lambda r, c: RoleBindingStrategy(r),
}


def strategy_for(resource: Resource, config: StrategyConfig) -> Strategy:
    make = _KINDS.get((resource.group, resource.plural))
    return make(resource, config) if make is not None else Strategy(resource)
