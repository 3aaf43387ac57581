"""Service allocations: cluster IPs from --service-cluster-ip-range and node ports from --service-node-port-range.

What kube-apiserver's service REST storage does around a Service's
lifetime: a create takes a cluster IP (the requested one, or the next free)
and, for NodePort and LoadBalancer services, a node port per port; an
update keeps what was allocated; a delete gives it all back. A taken or
out-of-range request is refused with upstream's field errors.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Set

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error

__all__ = ["ServiceAllocations", "ClusterIPAllocator", "PortAllocator"]


class ClusterIPAllocator:
    """Service cluster IPs from --service-cluster-ip-range, first free address first."""

    def __init__(self, cidr: str = "10.96.0.0/12") -> None:
        self.network = ipaddress.ip_network(cidr)
        self.used: Set[str] = set()
        self._next = 1

    def reserve(self, ip: str) -> None:
        self.used.add(ip)

    def release(self, ip: str) -> None:
        self.used.discard(ip)

    def allocate(self, requested: str = "") -> str:
        if requested:
            if requested in self.used:
                raise ValueError("provided IP is already allocated")
            if ipaddress.ip_address(requested) not in self.network:
                raise ValueError(f"provided IP is not in the valid range. The range of valid IPs is {self.network}")
            self.used.add(requested)
            return requested
        size = self.network.num_addresses
        for _ in range(size):
            candidate = str(self.network.network_address + self._next)
            self._next = self._next + 1 if self._next + 1 < size - 1 else 1
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        raise ValueError("range is full")


class PortAllocator:
    """Node ports from a range (30000-32767 by default), next free port first."""

    def __init__(self, low: int = 30000, high: int = 32767) -> None:
        self.low, self.high = low, high
        self.used: Set[int] = set()
        self._next = low

    def reserve(self, port: int) -> None:
        self.used.add(port)

    def release(self, port: int) -> None:
        self.used.discard(port)

    def allocate(self, requested: int = 0) -> int:
        if requested:
            if not self.low <= requested <= self.high:
                raise ValueError(f"provided port is not in the valid range. The range of valid ports is {self.low}-{self.high}")
            if requested in self.used:
                raise ValueError("provided port is already allocated")
            self.used.add(requested)
            return requested
        for _ in range(self.high - self.low + 1):
            port = self._next
            self._next = port + 1 if port < self.high else self.low
            if port not in self.used:
                self.used.add(port)
                return port
        raise ValueError("range is full")


class ServiceAllocations:
    def __init__(self, cluster_ip_range: str, node_port_range: str = "30000-32767") -> None:
        self.ips = ClusterIPAllocator(cluster_ip_range)
        low, _, high = node_port_range.partition("-")
        self.ports = PortAllocator(int(low), int(high or low))

    def restore(self, spec: Dict[str, Any]) -> None:
        """Mark what a stored Service holds as taken (at start)."""
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                self.ips.reserve(ip)
        for port in _ports(spec):
            if port.get("nodePort"):
                self.ports.reserve(int(port["nodePort"]))

    def admit_create(self, obj: Dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type", "ClusterIP") == "ExternalName":
            return
        name = obj["metadata"].get("name", "")
        want = spec.get("clusterIP", "")
        taken: List[int] = []
        try:
            if _needs_node_ports(spec):
                for i, port in enumerate(_ports(spec)):
                    try:
                        port["nodePort"] = self.ports.allocate(int(port.get("nodePort") or 0))
                    except ValueError as exc:
                        raise errors.invalid("", "Service", name, [
                            field_error("", f"spec.ports[{i}].nodePort", port.get("nodePort"), str(exc))]) from None
                    taken.append(port["nodePort"])
            if want == "None":
                spec["clusterIPs"] = ["None"]
                return
            try:
                ip = self.ips.allocate(want)
            except ValueError as exc:
                raise errors.invalid("", "Service", name, [field_error("", "spec.clusterIPs", [want], str(exc))]) from None
        except errors.StatusError:
            for port_number in taken:
                self.ports.release(port_number)
            raise
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")

    def admit_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> List[int]:
        """Keep what the Service holds, allocate what it gains; returns the node ports taken by this update
        (to give back if the update is not stored)."""
        old_spec = old.get("spec") or {}
        spec = obj.setdefault("spec", {})
        name = obj["metadata"].get("name", "")
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
        elif old_spec.get("clusterIP") and spec.get("clusterIP") != old_spec["clusterIP"]:
            raise errors.invalid("", "Service", name, [
                field_error("", "spec.clusterIPs[0]", [spec.get("clusterIP")], "may not change once set")])
        taken: List[int] = []
        if not _needs_node_ports(spec):
            return taken
        held = {p.get("nodePort") for p in _ports(old_spec) if p.get("nodePort")}
        before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in _ports(old_spec)}
        try:
            for i, port in enumerate(_ports(spec)):
                want = port.get("nodePort")
                if want and want in held:
                    continue  # already this Service's
                if not want:
                    # A port that kept its number keeps its node port.
                    keep = before.get((port.get("port"), port.get("protocol", "TCP")))
                    if keep:
                        port["nodePort"] = keep
                        continue
                try:
                    port["nodePort"] = self.ports.allocate(int(want or 0))
                except ValueError as exc:
                    raise errors.invalid("", "Service", name, [
                        field_error("", f"spec.ports[{i}].nodePort", want, str(exc))]) from None
                taken.append(port["nodePort"])
        except errors.StatusError:
            self.release_ports(taken)
            raise
        return taken

    def release_ports(self, ports: List[int]) -> None:
        for port in ports:
            self.ports.release(port)

    def after_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """Give back the node ports the stored update no longer uses."""
        kept = {p.get("nodePort") for p in _ports(obj.get("spec") or {})}
        self.release_ports([p["nodePort"] for p in _ports(old.get("spec") or {}) if p.get("nodePort") and p["nodePort"] not in kept])

    def release(self, obj: Dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        for ip in spec.get("clusterIPs") or ():
            self.ips.release(ip)
        for port in _ports(spec):
            if port.get("nodePort"):
                self.ports.release(int(port["nodePort"]))


def _ports(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [p for p in spec.get("ports") or () if isinstance(p, dict)]


def _needs_node_ports(spec: Dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")
