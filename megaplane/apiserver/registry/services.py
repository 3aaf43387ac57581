"""Service allocations: cluster IPs from --service-cluster-ip-range and node ports from --service-node-port-range.

What kube-apiserver's service REST storage does around a Service's
lifetime: a create settles its IP families (ipFamilyPolicy, ipFamilies,
as upstream's initIPFamilyFields), takes a cluster IP per family (the
requested one, or the next free) and, for NodePort and LoadBalancer
services, a node port per port; an update keeps what was allocated; a
delete gives it all back. A taken, out-of-range or unconfigured request is
refused with upstream's field errors.

The cluster is single-stack (one range) or dual-stack (two ranges of
different families); the first range's family is the cluster's default,
the one the `kubernetes` Service has.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Set, Union

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error

__all__ = ["DEFAULT_SERVICE_CLUSTER_IP_RANGE", "ServiceAllocations", "ClusterIPAllocator", "PortAllocator", "parse_service_cidrs", "family_of"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: `megaplane up`'s --service-cluster-ip-range: IPv6, as the fleet's pods (IPv4 cannot number a million
#: nodes' pod ranges, and endpoints list only the pod IPs of their Service's family).
DEFAULT_SERVICE_CLUSTER_IP_RANGE = "fd00:10:96::/108"

# Upstream's bitmap allocator holds at most 2^20 addresses per range.
_MAX_CIDR_BITS = 20

_OTHER_FAMILY = {"IPv4": "IPv6", "IPv6": "IPv4"}


def family_of(address: Union[str, Network]) -> str:
    """"IPv4" or "IPv6" of an address or network."""
    version = address.version if not isinstance(address, str) else ipaddress.ip_address(address).version
    return "IPv6" if version == 6 else "IPv4"


def parse_service_cidrs(text: str) -> List[Network]:
    """--service-cluster-ip-range: one CIDR, or two of different families (dual-stack), as kube-apiserver
    validates it."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("--service-cluster-ip-range must not be empty")
    if len(parts) > 2:
        raise ValueError("--service-cluster-ip-range can not contain more than two entries")
    networks: List[Network] = []
    for part in parts:
        try:
            network = ipaddress.ip_network(part)
        except ValueError as exc:
            raise ValueError(f"--service-cluster-ip-range: {part!r} is not a valid CIDR: {exc}") from None
        if network.max_prefixlen - network.prefixlen > _MAX_CIDR_BITS:
            raise ValueError(f"specified --service-cluster-ip-range is too large; for {network.max_prefixlen}-bit "
                             f"addresses, the mask must be >= {network.max_prefixlen - _MAX_CIDR_BITS}")
        networks.append(network)
    if len(networks) == 2 and networks[0].version == networks[1].version:
        raise ValueError("--service-cluster-ip-range[0] and --service-cluster-ip-range[1] must be of different "
                         "IP family")
    return networks


class ClusterIPAllocator:
    """Service cluster IPs from one range, first free address first (the network address is never handed out)."""

    def __init__(self, cidr: Union[str, Network] = "10.96.0.0/12") -> None:
        self.network: Network = ipaddress.ip_network(cidr) if isinstance(cidr, str) else cidr
        self.family = family_of(self.network)
        self.used: Set[str] = set()
        self._next = 1

    def reserve(self, ip: str) -> None:
        self.used.add(_canonical(ip))

    def release(self, ip: str) -> None:
        self.used.discard(_canonical(ip))

    def allocate(self, requested: str = "") -> str:
        if requested:
            canonical = _canonical(requested)
            if canonical in self.used:
                raise ValueError("provided IP is already allocated")
            if ipaddress.ip_address(requested) not in self.network:
                raise ValueError(f"provided IP is not in the valid range. The range of valid IPs is {self.network}")
            self.used.add(canonical)
            return requested
        size = min(self.network.num_addresses, 1 << _MAX_CIDR_BITS)
        # IPv4 ranges also keep their broadcast address back, as upstream.
        end = size - 1 if self.network.version == 4 else size
        for _ in range(size):
            candidate = str(self.network.network_address + self._next)
            self._next = self._next + 1 if self._next + 1 < end else 1
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        raise ValueError("range is full")


def _canonical(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


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
    def __init__(self, cluster_ip_range: str = DEFAULT_SERVICE_CLUSTER_IP_RANGE,
                 node_port_range: str = "30000-32767") -> None:
        #: One allocator per configured family, the default (primary) family first.
        self.families: Dict[str, ClusterIPAllocator] = {}
        for network in parse_service_cidrs(cluster_ip_range):
            allocator = ClusterIPAllocator(network)
            self.families[allocator.family] = allocator
        self.default_family = next(iter(self.families))
        low, _, high = node_port_range.partition("-")
        self.ports = PortAllocator(int(low), int(high or low))

    @property
    def ips(self) -> ClusterIPAllocator:
        """The default family's allocator."""
        return self.families[self.default_family]

    def restore(self, spec: Dict[str, Any]) -> None:
        """Mark what a stored Service holds as taken (at start)."""
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            allocator = self._allocator_of(ip)
            if allocator is not None:
                allocator.reserve(ip)
        for port in _ports(spec):
            if port.get("nodePort"):
                self.ports.reserve(int(port["nodePort"]))

    def _allocator_of(self, ip: Any) -> Optional[ClusterIPAllocator]:
        if not ip or not isinstance(ip, str) or ip == "None":
            return None
        try:
            return self.families.get(family_of(ip))
        except ValueError:
            return None

    def init_ip_families(self, name: str, spec: Dict[str, Any]) -> None:
        """initIPFamilyFields on create: default ipFamilyPolicy and ipFamilies from the cluster's ranges and
        the requested clusterIPs, refusing families the cluster does not have."""
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        cluster_ips: List[Any] = list(spec.get("clusterIPs") or [])
        families: List[Any] = list(spec.get("ipFamilies") or [])
        headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
        policy = spec.get("ipFamilyPolicy")
        if not policy:
            policy = "RequireDualStack" if headless_selectorless else "SingleStack"
        causes: List[Dict[str, Any]] = []
        if policy == "SingleStack":
            if len(cluster_ips) == 2:
                causes.append(field_error("", "spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                          "'PreferDualStack' when multiple cluster IPs are specified"))
            if len(families) == 2:
                causes.append(field_error("", "spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                          "'PreferDualStack' when multiple IP families are specified"))
        for i, ip in enumerate(cluster_ips):
            if ip == "None":
                break
            try:
                family = family_of(ip)
            except (ValueError, TypeError):
                causes.append(field_error("", f"spec.clusterIPs[{i}]", ip, "must be a valid IP address"))
                continue
            if i < len(families):
                if families[i] != family:
                    causes.append(field_error("", f"spec.clusterIPs[{i}]", cluster_ips, "expected an IP of family "
                                              f"{families[i]}"))
            elif family not in self.families:
                causes.append(field_error("", f"spec.clusterIPs[{i}]", cluster_ips,
                                          f"{family} is not configured on this cluster"))
            else:
                families.append(family)
        if causes:
            raise errors.invalid("", "Service", name, causes)
        spec["ipFamilyPolicy"] = policy
        if headless_selectorless:
            # Headless services without selectors may name families the cluster lacks (nothing is allocated).
            if not families:
                families = [self.default_family]
            if len(families) < 2 and policy != "SingleStack":
                families.append(_OTHER_FAMILY.get(families[0], "IPv4"))
            spec["ipFamilies"] = families
            return
        if policy == "RequireDualStack" and len(self.families) < 2:
            causes.append(field_error("", "spec.ipFamilyPolicy", policy,
                                      "this cluster is not configured for dual-stack services"))
        for i, family in enumerate(families):
            if family not in self.families:
                causes.append(field_error("", f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
        if causes:
            raise errors.invalid("", "Service", name, causes)
        if not families:
            families = [self.default_family]
        if policy != "SingleStack" and len(families) == 1 and len(self.families) == 2:
            families.append(_OTHER_FAMILY[families[0]])
        spec["ipFamilies"] = families

    def admit_create(self, obj: Dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type", "ClusterIP") == "ExternalName":
            return
        name = obj["metadata"].get("name", "")
        self.init_ip_families(name, spec)
        taken: List[int] = []
        allocated: List[ClusterIPAllocator] = []
        ips: List[str] = []
        try:
            if _needs_node_ports(spec):
                for i, port in enumerate(_ports(spec)):
                    try:
                        port["nodePort"] = self.ports.allocate(int(port.get("nodePort") or 0))
                    except ValueError as exc:
                        raise errors.invalid("", "Service", name, [
                            field_error("", f"spec.ports[{i}].nodePort", port.get("nodePort"), str(exc))]) from None
                    taken.append(port["nodePort"])
            requested: List[Any] = list(spec.get("clusterIPs") or [])
            if requested[:1] == ["None"]:
                spec["clusterIP"] = "None"
                spec["clusterIPs"] = ["None"]
                return
            for i, family in enumerate(spec["ipFamilies"]):
                want = requested[i] if i < len(requested) else ""
                allocator = self.families[family]
                try:
                    ips.append(allocator.allocate(want or ""))
                except ValueError as exc:
                    message = f"failed to allocate IP {want}: {exc}" if want else f"failed to allocate a serviceIP: {exc}"
                    raise errors.invalid("", "Service", name, [
                        field_error("", "spec.clusterIPs", requested, message)]) from None
                allocated.append(allocator)
        except errors.StatusError:
            for port_number in taken:
                self.ports.release(port_number)
            for allocator, ip in zip(allocated, ips):
                allocator.release(ip)
            raise
        spec["clusterIP"] = ips[0]
        spec["clusterIPs"] = ips
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
        # An update that leaves the family fields out keeps them (upstream's patchAllocatedValues).
        for field_name in ("ipFamilies", "ipFamilyPolicy"):
            if not spec.get(field_name) and old_spec.get(field_name):
                spec[field_name] = old_spec[field_name]
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
            allocator = self._allocator_of(ip)
            if allocator is not None:
                allocator.release(ip)
        for port in _ports(spec):
            if port.get("nodePort"):
                self.ports.release(int(port["nodePort"]))


def _ports(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [p for p in spec.get("ports") or () if isinstance(p, dict)]


def _needs_node_ports(spec: Dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")
