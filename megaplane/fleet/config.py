"""What one fleet process simulates: `FleetConfig` and the parsing of its flag values.

Every value is checked when the config is built, so a bad flag is a
`FleetConfigError` (a ValueError) naming the flag, before any node is
registered. Quantities are kept as the strings the Node will carry and
as numbers where the fleet computes with them (allocatable memory).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    "DEFAULT_POD_CIDR",
    "FleetConfig",
    "FleetConfigError",
    "Taint",
    "parse_extended_resource",
    "parse_labels",
    "parse_quantity_bytes",
    "parse_taints",
]

#: 2**20 node /64s: room for a million nodes in one unique-local range.
DEFAULT_POD_CIDR = "fd00:10:240::/44"

_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_BINARY_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
# A qualified name (labels, resource names): optional DNS prefix, then a name of [A-Za-z0-9._-].
_QUALIFIED = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class FleetConfigError(ValueError):
    """A fleet flag value that cannot be used; the message names the flag."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def as_dict(self) -> Dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


def parse_quantity_bytes(text: str, flag: str) -> int:
    """Bytes in a Kubernetes quantity ("256Gi", "64G", "1048576")."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise FleetConfigError(f"{flag}: {text!r} is not a quantity (want e.g. 256Gi)")
    number, suffix = m.group(1), m.group(2) or ""
    scale = _BINARY_SUFFIXES.get(suffix) or _DECIMAL_SUFFIXES[suffix]
    value = int(float(number) * scale)
    if value <= 0:
        raise FleetConfigError(f"{flag}: {text!r} must be positive")
    return value


def parse_labels(text: str, flag: str = "--node-labels") -> Dict[str, str]:
    """`k=v,k2=v2` (kubelet's --node-labels) into a dict."""
    labels: Dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not _QUALIFIED.match(key) or len(key.rpartition("/")[2]) > 63:
            raise FleetConfigError(f"{flag}: {item!r} is not key=value with a valid label key")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise FleetConfigError(f"{flag}: {value!r} is not a valid label value")
        labels[key] = value
    return labels


def parse_taints(text: str, flag: str = "--node-taints") -> List[Taint]:
    """`k=v:Effect,k2:Effect` (kubelet's --register-with-taints) into Taints."""
    taints: List[Taint] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        head, sep, effect = item.rpartition(":")
        if not sep or effect not in _TAINT_EFFECTS:
            raise FleetConfigError(f"{flag}: {item!r} wants key[=value]:Effect, Effect one of {', '.join(_TAINT_EFFECTS)}")
        key, _, value = head.partition("=")
        if not _QUALIFIED.match(key) or not _LABEL_VALUE.match(value):
            raise FleetConfigError(f"{flag}: {item!r} has an invalid key or value")
        taints.append(Taint(key, value, effect))
    return taints


def parse_extended_resource(text: str, flag: str = "--node-extended-resource") -> Tuple[str, str]:
    """`example.com/nic=4` into (name, quantity); extended resources are whole numbers in a domain."""
    name, sep, qty = text.partition("=")
    if not sep or "/" not in name or not _QUALIFIED.match(name) or name.startswith("kubernetes.io/"):
        raise FleetConfigError(f"{flag}: {text!r} wants DOMAIN/NAME=COUNT (e.g. example.com/nic=4)")
    if not qty.isdigit():
        raise FleetConfigError(f"{flag}: {text!r}: extended resources are whole numbers")
    return name, str(int(qty))


@dataclass
class FleetConfig:
    """One fleet process: which nodes it owns and how each behaves (flag names in the comments)."""

    nodes: int = 3  # --nodes
    node_name_prefix: str = "node-"  # --node-name-prefix
    node_index_start: int = 0  # --node-index-start (shards: disjoint index ranges)
    zones: int = 1  # --zones
    region: str = "region-1"  # --region
    node_cpu: str = "32"  # --node-cpu
    node_memory: str = "256Gi"  # --node-memory
    node_pods: int = 110  # --node-pods
    extended_resources: Dict[str, str] = field(default_factory=dict)  # --node-extended-resource
    node_labels: Dict[str, str] = field(default_factory=dict)  # --node-labels
    node_taints: List[Taint] = field(default_factory=list)  # --node-taints
    node_lease_duration_seconds: int = 40  # --node-lease-duration-seconds
    node_status_report_frequency: float = 300.0  # --node-status-report-frequency
    pod_startup_latency: float = 0.5  # --pod-startup-latency
    job_pod_run_time: float = 2.0  # --job-pod-run-time
    pod_cidr: str = DEFAULT_POD_CIDR  # --pod-cidr (one range, or two of different families: dual-stack)
    node_cidr_mask_size: Optional[int] = None  # --node-cidr-mask-size (single-stack; default: the family's below)
    node_cidr_mask_size_ipv4: int = 24  # --node-cidr-mask-size-ipv4
    node_cidr_mask_size_ipv6: int = 64  # --node-cidr-mask-size-ipv6
    kubelet_version: str = "v1.32.0"
    #: Requests in flight at once (and the HTTP connections they share). 16 left the fleet latency-bound
    #: (a round trip per connection per renewal; 5-8K renewals/s); 64 keeps the API server's core busy
    #: (11K/s) and stays under the node-high priority level's 98 seats per loop turn, past which APF
    #: queues renewals (256 in flight: 86 % queued, API CPU per renewal 81 -> 129 us).
    max_connections: int = 64  # --max-connections
    #: Lease renewals sent back to back on one connection before the first is answered (HTTP/1.1
    #: pipelining, over HTTP only; 1: one at a time, on connections of the fleet's own; 0: through
    #: megaplane.client like every other request). The fleet's renewal connections are max_connections /
    #: this, so the renewals in flight stay max_connections; one write carries all of a connection's batch.
    max_pipelined_requests: int = 8  # --max-pipelined-requests
    metrics_bind_address: str = ""  # --metrics-bind-address (empty: no /metrics)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 0:
            raise FleetConfigError(f"--nodes must be a whole number >= 0 (got {self.nodes!r})")
        if self.node_index_start < 0:
            raise FleetConfigError(f"--node-index-start must be >= 0 (got {self.node_index_start})")
        prefix = self.node_name_prefix
        if not prefix or not re.match(r"^[a-z0-9]([-a-z0-9.]*)$", prefix) or len(prefix) > 200:
            raise FleetConfigError(f"--node-name-prefix {prefix!r}: node names are DNS subdomains (lowercase, digits, '-', '.')")
        if self.zones < 1:
            raise FleetConfigError(f"--zones must be >= 1 (got {self.zones})")
        if not _LABEL_VALUE.match(self.region) or not self.region:
            raise FleetConfigError(f"--region {self.region!r} is not a valid label value")
        if not re.match(r"^[0-9]+(\.[0-9]+)?m?$", self.node_cpu):
            raise FleetConfigError(f"--node-cpu {self.node_cpu!r} is not a CPU quantity (e.g. 32 or 500m)")
        parse_quantity_bytes(self.node_memory, "--node-memory")
        if self.node_pods < 1:
            raise FleetConfigError(f"--node-pods must be >= 1 (got {self.node_pods})")
        if self.node_lease_duration_seconds < 1:
            raise FleetConfigError(f"--node-lease-duration-seconds must be >= 1 (got {self.node_lease_duration_seconds})")
        for flag, value in (("--node-status-report-frequency", self.node_status_report_frequency),
                            ("--pod-startup-latency", self.pod_startup_latency),
                            ("--job-pod-run-time", self.job_pod_run_time)):
            if value < 0:
                raise FleetConfigError(f"{flag} must not be negative (got {value})")
        if self.node_status_report_frequency <= 0:
            raise FleetConfigError("--node-status-report-frequency must be positive")
        if self.max_connections < 1:
            raise FleetConfigError(f"--max-connections must be >= 1 (got {self.max_connections})")
        if self.max_pipelined_requests < 0:
            raise FleetConfigError(f"--max-pipelined-requests must be >= 0 (got {self.max_pipelined_requests})")
        networks = self.pod_networks
        if len(networks) == 2 and self.node_cidr_mask_size is not None:
            # As kube-controller-manager: a dual-stack cluster sizes each family on its own.
            raise FleetConfigError("usage of --node-cidr-mask-size is not allowed with dual-stack clusters "
                                   "(use --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6)")
        for network in networks:
            mask = self.mask_for(network)
            flag = "--node-cidr-mask-size" if self.node_cidr_mask_size is not None else \
                f"--node-cidr-mask-size-ipv{network.version}"
            if not network.prefixlen <= mask <= network.max_prefixlen - 2:
                raise FleetConfigError(
                    f"{flag} {mask} must lie between the --pod-cidr prefix /{network.prefixlen} "
                    f"and /{network.max_prefixlen - 2}")
            slots = 1 << (mask - network.prefixlen)
            last = self.node_index_start + self.nodes
            if last > slots:
                raise FleetConfigError(
                    f"--pod-cidr {network} holds {slots} node /{mask} ranges, too few for node index {last - 1}")

    @property
    def pod_networks(self) -> List[Any]:
        """--pod-cidr parsed: one network, or two of different families (the first is the primary)."""
        parts = [p.strip() for p in self.pod_cidr.split(",") if p.strip()]
        if not 1 <= len(parts) <= 2:
            raise FleetConfigError(f"--pod-cidr {self.pod_cidr!r}: one range, or two of different IP families")
        networks = []
        for part in parts:
            try:
                networks.append(ipaddress.ip_network(part, strict=True))
            except ValueError as exc:
                raise FleetConfigError(f"--pod-cidr {part!r}: {exc}") from None
        if len(networks) == 2 and networks[0].version == networks[1].version:
            raise FleetConfigError(f"--pod-cidr {self.pod_cidr!r}: a dual-stack --pod-cidr needs one IPv4 and one "
                                   "IPv6 range")
        return networks

    def mask_for(self, network: Any) -> int:
        """The prefix length of each node's range cut from `network`."""
        if self.node_cidr_mask_size is not None:
            return self.node_cidr_mask_size
        return self.node_cidr_mask_size_ipv6 if network.version == 6 else self.node_cidr_mask_size_ipv4

    @property
    def mask_size(self) -> int:
        """The primary family's node range prefix length."""
        return self.mask_for(self.pod_networks[0])

    @property
    def memory_bytes(self) -> int:
        return parse_quantity_bytes(self.node_memory, "--node-memory")

    @property
    def lease_renew_interval(self) -> float:
        """kubelet's renewInterval: a quarter of the lease duration (NodeLeaseRenewIntervalFraction)."""
        return self.node_lease_duration_seconds * 0.25

    def node_name(self, index: int) -> str:
        return f"{self.node_name_prefix}{index}"

    def node_index(self, name: str) -> int:
        """The fleet-local index (0 .. nodes-1) of a node this fleet owns, else -1."""
        prefix = self.node_name_prefix
        if not name.startswith(prefix):
            return -1
        digits = name[len(prefix):]
        # "node-01" is not node 1: only the canonical spelling is ours.
        if not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
            return -1
        local = int(digits) - self.node_index_start
        return local if 0 <= local < self.nodes else -1


FlagValue = Union[str, int, float]
