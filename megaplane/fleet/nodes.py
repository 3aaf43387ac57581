"""The Node a simulated kubelet registers, its status heartbeats, and the faults a Node annotation asks for.

The Node is what kubelet v1.32 posts in `tryRegisterWithAPIServer`
(pkg/kubelet/kubelet_node_status.go): well-known labels (hostname, os,
arch, instance-type, zone, region), capacity and allocatable (allocatable
memory is capacity less kubelet's default 100Mi hard eviction threshold),
the four kubelet conditions, addresses, daemonEndpoints and nodeInfo. The
heartbeat is a strategic-merge PATCH of `nodes/status` that touches every
condition's `lastHeartbeatTime` (the conditions merge by `type`), as the
kubelet's PatchNodeStatus does; a Ready change also carries status,
reason, message and lastTransitionTime.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Dict, List, Optional, Tuple

import orjson

from .config import FleetConfig
from .ipam import PodAddresses

__all__ = [
    "FAULT_ANNOTATION",
    "FAULT_NONE",
    "FAULT_NOT_READY",
    "FAULT_SLOW",
    "FAULT_STOP",
    "NodeFactory",
    "format_time",
    "format_micro_time",
    "parse_fault",
]

FAULT_ANNOTATION = "fleet.megaplane.io/fault"
FAULT_NONE, FAULT_STOP, FAULT_NOT_READY, FAULT_SLOW = 0, 1, 2, 3

# Kubelet's evictionHard default memory.available<100Mi is what allocatable leaves out.
_EVICTION_MEMORY = 100 << 20
_EPHEMERAL_STORAGE = 200 << 30

# (type, reason when healthy, message when healthy); Ready is last, as kubelet orders them.
_PRESSURE_CONDITIONS: Tuple[Tuple[str, str, str], ...] = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
READY_REASON, READY_MESSAGE = "KubeletReady", "kubelet is posting ready status"
NOT_READY_REASON = "KubeletNotReady"
NOT_READY_MESSAGE = "container runtime status check may not have completed yet (fleet fault not-ready)"


def parse_fault(value: Optional[str]) -> Tuple[int, float]:
    """(fault code, slow-heartbeat seconds) from the annotation; an unknown value is no fault."""
    if not value:
        return FAULT_NONE, 0.0
    value = value.strip()
    if value == "stop-heartbeat":
        return FAULT_STOP, 0.0
    if value == "not-ready":
        return FAULT_NOT_READY, 0.0
    kind, sep, seconds = value.partition("=")
    if kind == "slow-heartbeat" and sep:
        try:
            every = float(seconds)
        except ValueError:
            return FAULT_NONE, 0.0
        if every > 0:
            return FAULT_SLOW, every
    return FAULT_NONE, 0.0


_second_cache: List[Any] = [-1, b""]


def format_micro_time(now: float) -> bytes:
    """metav1.MicroTime as the API writes it: 2006-01-02T15:04:05.000000Z (cached per second)."""
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[0] = second
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
    return b"%s.%06dZ" % (_second_cache[1], int((now - second) * 1e6))


def format_time(now: float) -> str:
    """metav1.Time: RFC 3339 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _instance_type(config: FleetConfig) -> str:
    memory_gi = max(1, config.memory_bytes >> 30)
    return f"megaplane.c{config.node_cpu.replace('.', 'p')}-m{memory_gi}gi"


class NodeFactory:
    """Node bodies and status patches for the nodes of one fleet."""

    def __init__(self, config: FleetConfig, addresses: PodAddresses) -> None:
        self.config = config
        self.addresses = addresses
        memory = config.memory_bytes
        self.capacity: Dict[str, str] = {
            "cpu": config.node_cpu,
            "memory": f"{memory >> 10}Ki",
            "pods": str(config.node_pods),
            "ephemeral-storage": f"{_EPHEMERAL_STORAGE >> 10}Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            **config.extended_resources,
        }
        self.allocatable = dict(self.capacity)
        self.allocatable["memory"] = f"{max(memory - _EVICTION_MEMORY, 0) >> 10}Ki"
        self.allocatable["ephemeral-storage"] = str(_EPHEMERAL_STORAGE * 9 // 10)
        self.instance_type = _instance_type(config)

    def zone(self, local: int) -> str:
        """Zones round-robin by global index: region-1a, region-1b, ... (region-1-z30 past 26 zones)."""
        cfg = self.config
        k = (cfg.node_index_start + local) % cfg.zones
        return f"{cfg.region}{chr(ord('a') + k)}" if cfg.zones <= 26 else f"{cfg.region}-z{k}"

    def node(self, local: int, now: float) -> Dict[str, Any]:
        """The Node kubelet registers (status included: a create keeps it)."""
        cfg = self.config
        name = cfg.node_name(cfg.node_index_start + local)
        digest = hashlib.md5(name.encode()).hexdigest()
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": self.instance_type,
            "topology.kubernetes.io/region": cfg.region,
            "topology.kubernetes.io/zone": self.zone(local),
            "fleet.megaplane.io/managed": "true",
            **cfg.node_labels,
        }
        cidrs = self.addresses.node_cidrs(local)
        spec: Dict[str, Any] = {"podCIDR": cidrs[0], "podCIDRs": cidrs, "providerID": f"megaplane-fleet://{name}"}
        if cfg.node_taints:
            spec["taints"] = [t.as_dict() for t in cfg.node_taints]
        stamp = format_time(now)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": spec,
            "status": {
                "capacity": self.capacity,
                "allocatable": self.allocatable,
                "conditions": self.conditions(stamp, stamp, ready=True),
                "addresses": [
                    *({"type": "InternalIP", "address": ip} for ip in self.addresses.node_ips(local)),
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": digest,
                    "systemUUID": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}",
                    "bootID": hashlib.md5(f"{name}/{now}".encode()).hexdigest(),
                    "kernelVersion": "6.1.0-megaplane",
                    "osImage": "megaplane fleet (simulated kubelet)",
                    "containerRuntimeVersion": "megaplane-fleet://0.1.0",
                    "kubeletVersion": cfg.kubelet_version,
                    "kubeProxyVersion": cfg.kubelet_version,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }

    @staticmethod
    def conditions(heartbeat: str, transition: str, *, ready: bool) -> List[Dict[str, str]]:
        out = [
            {"type": kind, "status": "False", "reason": reason, "message": message,
             "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition}
            for kind, reason, message in _PRESSURE_CONDITIONS
        ]
        out.append({
            "type": "Ready", "status": "True" if ready else "False",
            "reason": READY_REASON if ready else NOT_READY_REASON,
            "message": READY_MESSAGE if ready else NOT_READY_MESSAGE,
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
        })
        return out

    @staticmethod
    def heartbeat_patch(now: float, ready: bool, transition: bool) -> bytes:
        """The status PATCH: every heartbeat time; with `transition`, Ready's new status and its time."""
        stamp = format_time(now)
        conditions: List[Dict[str, str]] = [
            {"type": kind, "lastHeartbeatTime": stamp} for kind, _, _ in _PRESSURE_CONDITIONS
        ]
        ready_condition = {"type": "Ready", "lastHeartbeatTime": stamp, "status": "True" if ready else "False",
                           "reason": READY_REASON if ready else NOT_READY_REASON,
                           "message": READY_MESSAGE if ready else NOT_READY_MESSAGE}
        if transition:
            ready_condition["lastTransitionTime"] = stamp
        conditions.append(ready_condition)
        return orjson.dumps({"status": {"conditions": conditions}})
