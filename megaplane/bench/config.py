"""`BenchConfig`: one run of `megaplane bench` (scenario, sizes, thresholds, what to pass the components)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from .slis import Thresholds

__all__ = ["BenchConfig", "SCENARIOS"]

SCENARIOS = ("leases", "density", "load", "stall", "zone-outage")

#: Pods per node when --pods-per-node is not given (clusterloader2's density and load use 30).
DEFAULT_PODS_PER_NODE = {"leases": 0, "density": 30, "load": 30, "stall": 1, "zone-outage": 1}


@dataclass
class BenchConfig:
    scenario: str
    nodes: int = 100
    pods_per_node: Optional[int] = None
    node_lease_duration_seconds: int = 40
    duration: float = 60.0
    processes: int = 1
    zones: int = 1
    report: str = ""
    kubeconfig: str = ""
    #: load: Deployment operations (create, scale, delete) per second.
    rate: float = 1.0
    #: Replicas of each Deployment the bench creates (0: min(100, pods)).
    deployment_replicas: int = 0
    #: Pods per second the bench's Deployments ask for, paced by when each Deployment is created
    #: (clusterloader2's tuning set); 0: every Deployment at once (saturation).
    pod_creation_rate: float = 100.0
    stall_duration: float = 10.0
    #: When the stall starts, seconds into the hold (0: a third of --duration).
    stall_at: float = 0.0
    scrape_interval: float = 5.0
    #: Longest wait for nodes to register and for pods to run.
    timeout: float = 600.0
    namespace: str = "megaplane-bench"
    node_name_prefix: str = ""
    pod_toleration_seconds: int = 300
    kube_api_qps: float = 500.0
    kube_api_burst: int = 1000
    cpu_affinity: bool = True
    node_monitor_grace_period: str = ""
    node_monitor_period: str = ""
    node_eviction_rate: Optional[float] = None
    secondary_node_eviction_rate: Optional[float] = None
    #: Components to profile with py-spy during the hold (apiserver, controller-manager, scheduler, fleet-0...).
    profile: List[str] = field(default_factory=list)
    profile_seconds: float = 30.0
    apiserver_args: List[str] = field(default_factory=list)
    controller_manager_args: List[str] = field(default_factory=list)
    scheduler_args: List[str] = field(default_factory=list)
    fleet_args: List[str] = field(default_factory=list)
    #: Components the bench does not start (scheduler, controller-manager).
    without: List[str] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def validate(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r} (one of {', '.join(SCENARIOS)})")
        for name in ("nodes", "processes", "zones", "node_lease_duration_seconds"):
            if getattr(self, name) < (0 if name == "nodes" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be >= {0 if name == 'nodes' else 1}")
        for name in ("duration", "stall_duration", "scrape_interval", "timeout", "rate", "pod_creation_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must not be negative")
        if self.pods_per_node is not None and self.pods_per_node < 0:
            raise ValueError("--pods-per-node must not be negative")
        if "scheduler" in self.without and self.pods_per_node_effective > 0:
            raise ValueError("--without scheduler: no pod would be scheduled (give --pods-per-node 0)")
        if self.without and self.kubeconfig:
            raise ValueError("--without applies to the components the bench starts, not to a cluster it attaches to")
        if self.scenario == "stall" and self.kubeconfig:
            raise ValueError("the stall scenario stops the API server process: it cannot attach (--kubeconfig)")
        if self.scenario == "zone-outage" and self.zones < 2:
            raise ValueError("zone-outage needs --zones >= 2 (one zone fails, the others must stay healthy)")

    @property
    def pods_per_node_effective(self) -> int:
        return DEFAULT_PODS_PER_NODE[self.scenario] if self.pods_per_node is None else self.pods_per_node

    @property
    def prefix(self) -> str:
        return self.node_name_prefix or ("bench-node-" if self.kubeconfig else "node-")

    @property
    def grace_period_effective(self) -> str:
        """--node-monitor-grace-period as given, else upstream's 50 s scaled with the Lease duration.

        The node lifecycle controller never reads leaseDurationSeconds: with kubelet's 40 s Lease (renewed
        every 10 s) upstream's grace is 50 s; a 240 s Lease renewed every 60 s under a 50 s grace would
        mark healthy nodes NotReady between renewals. So the bench keeps upstream's ratio (1.25) unless told.
        """
        if self.node_monitor_grace_period:
            return self.node_monitor_grace_period
        if self.node_lease_duration_seconds > 40:
            return f"{math.ceil(self.node_lease_duration_seconds * 1.25)}s"
        return ""

    def node_lifecycle_args(self) -> List[str]:
        out: List[str] = []
        if self.grace_period_effective:
            out += ["--node-monitor-grace-period", self.grace_period_effective]
        if self.node_monitor_period:
            out += ["--node-monitor-period", self.node_monitor_period]
        if self.node_eviction_rate is not None:
            out += ["--node-eviction-rate", f"{self.node_eviction_rate:g}"]
        if self.secondary_node_eviction_rate is not None:
            out += ["--secondary-node-eviction-rate", f"{self.secondary_node_eviction_rate:g}"]
        return out

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["pods_per_node"] = self.pods_per_node_effective
        d["node_monitor_grace_period"] = self.grace_period_effective or "50s"
        return d
