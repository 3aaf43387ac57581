"""Pod address ranges: one node-sized range (a /64 by default) per node, pod IPs from the node's range.

A node's range is a *slot* of `--pod-cidr`: slot k is the k-th
`/mask` subnet. A fleet node's slot is its global index (so shards of one
fleet, which hold disjoint index ranges, hold disjoint slots) unless the
cluster already gives that slot to a node the fleet does not own (another
fleet, another prefix, a real node): then it takes the next slot above
everything the cluster holds, as the node IPAM controller allocates
against the nodes it sees. Fleets started at the same instant can still
race for a slot; nothing but the API server could settle that.

Within a node's range, address 1 is the node's InternalIP and pods count
up from address 2; hostNetwork pods use the node's address.

Dual-stack (`--pod-cidr` of two families): a node holds the same slot in
both ranges and a pod the same offset in both, so its podIPs (primary
family first) and the node's InternalIPs correspond; slots are chosen
against the primary family's ranges the cluster holds.
"""

from __future__ import annotations

import ipaddress
from array import array
from typing import Iterable, List, Optional, Set, Union

from .config import FleetConfig

__all__ = ["PodAddresses"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class _FamilyRanges:
    """One family's --pod-cidr range cut into node ranges of `mask` bits."""

    def __init__(self, network: Network, mask: int) -> None:
        self.network = network
        self.mask = mask
        self.slots_total = 1 << (mask - network.prefixlen)
        self.base = int(network.network_address)
        self.shift = network.max_prefixlen - mask
        self.per_node = (1 << self.shift) - 2

    def node_base(self, slot: int) -> int:
        return self.base + (slot << self.shift)


class PodAddresses:
    """Slots, node ranges and pod IPs for the nodes of one fleet (index 0 .. nodes-1)."""

    def __init__(self, config: FleetConfig) -> None:
        self.families = [_FamilyRanges(n, config.mask_for(n)) for n in config.pod_networks]
        #: The first family's ranges: the one slots are chosen, and addresses recognised, in.
        self.primary = self.families[0]
        self.slots_total = min(f.slots_total for f in self.families)
        self._start = config.node_index_start
        count = config.nodes
        self.slots = array("q", range(self._start, self._start + count))
        # Pod addresses handed out per node (offsets from 2), never reused while the fleet runs.
        self.next_pod = array("q", bytes(8 * count))

    @property
    def dual_stack(self) -> bool:
        return len(self.families) > 1
    def slot_of(self, cidr: str) -> Optional[int]:
        """The slot a podCIDR occupies in this fleet's --pod-cidr, or None when it lies elsewhere."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        primary = self.primary
        if net.version != primary.network.version or not net.subnet_of(primary.network):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - primary.base) >> primary.shift

    def assign(self, taken: Iterable[int], kept: "dict[int, int]") -> None:
        """Give each node a slot: `kept` (index -> slot) from its existing Node, else its index unless `taken`."""
        taken_set: Set[int] = set(taken)
        cursor = max(taken_set, default=-1) + 1
        for local in range(len(self.slots)):
            if local in kept:
                self.slots[local] = kept[local]
                continue
            slot = self._start + local
            if slot in taken_set:
                while cursor in taken_set:
                    cursor += 1
                if cursor >= self.slots_total:
                    raise ValueError(f"--pod-cidr {self.primary.network} has no free node range left")
                slot = cursor
                cursor += 1
            self.slots[local] = slot
            taken_set.add(slot)

    def node_cidrs(self, local: int) -> List[str]:
        """spec.podCIDRs of node `local`: its range in each family, the primary first."""
        slot = self.slots[local]
        return [f"{ipaddress.ip_address(f.node_base(slot))}/{f.mask}" for f in self.families]

    def node_cidr(self, local: int) -> str:
        return self.node_cidrs(local)[0]

    def node_ips(self, local: int) -> List[str]:
        """The node's InternalIP in each family."""
        slot = self.slots[local]
        return [str(ipaddress.ip_address(f.node_base(slot) + 1)) for f in self.families]

    def node_ip(self, local: int) -> str:
        return str(ipaddress.ip_address(self.primary.node_base(self.slots[local]) + 1))

    def pod_ips(self, local: int) -> List[str]:
        """The next pod's addresses on node `local`, one per family (each wraps within the node's range,
        skipping the node and network addresses)."""
        offset = self.next_pod[local]
        self.next_pod[local] = offset + 1
        slot = self.slots[local]
        return [str(ipaddress.ip_address(f.node_base(slot) + 2 + offset % f.per_node)) for f in self.families]

    def pod_ip(self, local: int) -> str:
        """The next pod address of node `local` in the primary family."""
        return self.pod_ips(local)[0]

    def seen_pod_ip(self, local: int, ip: str) -> None:
        """An address a pod already holds (fleet restart): later pods on the node count on from above it."""
        try:
            value = int(ipaddress.ip_address(ip))
        except ValueError:
            return
        offset = value - self.primary.node_base(self.slots[local]) - 2
        if 0 <= offset < self.primary.per_node and offset >= self.next_pod[local]:
            self.next_pod[local] = offset + 1
