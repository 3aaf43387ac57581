"""Topology hints for `service.kubernetes.io/topology-mode: Auto` (upstream's endpointslice/topologycache).

Endpoints are hinted to zones in proportion to the zones' allocatable
CPU: `set_nodes` keeps each zone's share of the ready nodes' CPU (nodes
with a control-plane role left out; any ready node without a zone or CPU,
or fewer than two zones, and there is no node information at all).
`add_hints` gives every ready endpoint its own zone first, then moves
hints from zones over their allocation to zones under it. A zone's
allocation is its share of the ready endpoints, never less than
`ceil(share / 1.2)` (the 20 % overload threshold); when some zone cannot
get that minimum (fewer endpoints than zones, ...), no endpoint of the
Service gets a hint and the existing ones are removed.

Slices here are the reconciler's plain dicts; an "unchanged" slice is
the informer's copy and is copied before a hint on it changes.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

__all__ = ["OVERLOAD_THRESHOLD", "SliceInfo", "TopologyCache", "cpu_millis", "endpoint_ready",
           "remove_hints_from_slices"]

log = logging.getLogger("megaplane.controllers.topologycache")

OVERLOAD_THRESHOLD = 0.2
ZONE_LABEL = "topology.kubernetes.io/zone"
_EXCLUDED_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")

# Upstream's event messages (topologycache/events.go).
INSUFFICIENT_NODE_INFO = "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes"
NODES_READY_IN_ONE_ZONE_ONLY = "Nodes only ready in one zone"
INSUFFICIENT_NUMBER_OF_ENDPOINTS = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD = ("Unable to allocate minimum required endpoints to each zone without "
                                             "exceeding overload threshold")
NO_ZONE_SPECIFIED = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES = "No hints allocated for zones"
TOPOLOGY_AWARE_HINTS_ENABLED = "Topology Aware Hints has been enabled"
TOPOLOGY_AWARE_HINTS_DISABLED = "Topology Aware Hints has been disabled"

Obj = Dict[str, Any]

_CPU = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(m|k|M|G)?\s*$")
_CPU_SCALE = {None: 1000.0, "m": 1.0, "k": 1e6, "M": 1e9, "G": 1e12}


def cpu_millis(text: Any) -> int:
    """A CPU quantity in millicores, rounded up ("4", "3500m", "0.5"); 0 for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(math.ceil(float(text) * 1000))
    m = _CPU.match(text) if isinstance(text, str) else None
    if m is None:
        return 0
    return int(math.ceil(float(m.group(1)) * _CPU_SCALE[m.group(2)]))


def endpoint_ready(endpoint: Mapping[str, Any]) -> bool:
    return bool((endpoint.get("conditions") or {}).get("ready"))


def _node_ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


@dataclass
class _Allocation:
    minimum: int
    desired: float
    maximum: int = 0


@dataclass
class SliceInfo:
    """One Service's slices of one address type in a sync: to create, to update, left as they are."""

    service_key: str
    address_type: str
    to_create: List[Obj]
    to_update: List[Obj]
    unchanged: List[Obj] = field(default_factory=list)

    def total_ready(self) -> int:
        return sum(1 for s in self.to_create + self.to_update + self.unchanged
                   for e in s.get("endpoints") or () if endpoint_ready(e))


def remove_hints_from_slices(si: SliceInfo) -> Tuple[List[Obj], List[Obj]]:
    """Hints off every slice; unchanged slices that had some become updates (RemoveHintsFromSlices)."""
    for s in si.to_create + si.to_update:
        for e in s.get("endpoints") or ():
            e.pop("hints", None)
    still: List[Obj] = []
    for s in si.unchanged:
        if any("hints" in e for e in s.get("endpoints") or ()):
            s = copy.deepcopy(s)
            for e in s["endpoints"]:
                e.pop("hints", None)
            si.to_update.append(s)
        else:
            still.append(s)
    si.unchanged = still
    return si.to_create, si.to_update


def _hints_by_zone(slice_: Mapping[str, Any], allocated: Mapping[str, int],
                   allocations: Mapping[str, _Allocation]) -> Optional[Dict[str, int]]:
    """The hints an unchanged slice holds per zone, or None when they must be redone (getHintsByZone)."""
    by_zone: Dict[str, int] = {}
    for e in slice_.get("endpoints") or ():
        if not endpoint_ready(e):
            continue
        zones = ((e.get("hints") or {}).get("forZones")) or []
        if not zones:
            return None
        for z in zones:
            name = z.get("name")
            if name not in allocations:
                return None
            by_zone[name] = by_zone.get(name, 0) + 1
    for zone, count in by_zone.items():
        if count + allocated.get(zone, 0) > allocations[zone].maximum:
            return None
    return by_zone


def _most(zones: Mapping[str, float]) -> Tuple[str, float]:
    best, amount = "", 0.0
    for z in sorted(zones):
        if zones[z] > amount:
            best, amount = z, zones[z]
    return best, amount


def _giving_and_receiving(allocations: Mapping[str, _Allocation],
                          allocated: Mapping[str, int]) -> Tuple[Dict[str, int], Dict[str, int]]:
    giving_desired: Dict[str, float] = {}
    receiving_desired: Dict[str, float] = {}
    for zone, a in allocations.items():
        have = float(allocated.get(zone, 0))
        if have > a.desired:
            giving_desired[zone] = have - a.desired
        elif have < a.desired:
            receiving_desired[zone] = a.desired - have
    giving: Dict[str, int] = {}
    receiving: Dict[str, int] = {}
    while True:
        gz, give = _most(giving_desired)
        rz, receive = _most(receiving_desired)
        if not gz or not rz or (give < 1.0 and receive < 1.0) or give < 0.5 or receive < 0.5:
            break
        giving[gz] = giving.get(gz, 0) + 1
        giving_desired[gz] -= 1
        receiving[rz] = receiving.get(rz, 0) + 1
        receiving_desired[rz] -= 1
    return giving, receiving


def _redistribute(slices: List[Obj], giving: Dict[str, int], receiving: Dict[str, int]) -> Dict[str, int]:
    moved: Dict[str, int] = {}
    for s in slices:
        for e in s.get("endpoints") or ():
            if not endpoint_ready(e):
                e.pop("hints", None)
                continue
            if not giving or not receiving:
                return moved
            zone = e.get("zone") or ""
            if not zone or giving.get(zone, 0) <= 0:
                continue
            for to in sorted(receiving):
                e["hints"] = {"forZones": [{"name": to}]}
                giving[zone] -= 1
                if not giving[zone]:
                    del giving[zone]
                receiving[to] -= 1
                if not receiving[to]:
                    del receiving[to]
                moved[to] = moved.get(to, 0) + 1
                moved[zone] = moved.get(zone, 0) - 1
                break
    return moved


class TopologyCache:
    """Zones' CPU shares, and which Services have hints (see the module docstring)."""

    def __init__(self) -> None:
        self.cpu_ratios: Optional[Dict[str, float]] = None
        self._hinted: Dict[str, Dict[str, Dict[str, int]]] = {}  # service -> address type -> zone -> hints
        self._populated: Set[str] = set()

    def set_nodes(self, nodes: Sequence[Mapping[str, Any]]) -> bool:
        """Recompute the zones' shares; True if they changed."""
        by_zone: Dict[str, int] = {}
        sufficient = True
        for node in nodes:
            labels = (node.get("metadata") or {}).get("labels") or {}
            if any(k in labels for k in _EXCLUDED_LABELS) or not _node_ready(node):
                continue
            cpu = cpu_millis(((node.get("status") or {}).get("allocatable") or {}).get("cpu"))
            zone = labels.get(ZONE_LABEL) or ""
            if not zone or cpu == 0:
                sufficient = False
                break
            by_zone[zone] = by_zone.get(zone, 0) + cpu
        total = sum(by_zone.values())
        before = self.cpu_ratios
        if not sufficient or total == 0 or len(by_zone) < 2:
            self.cpu_ratios = None
        else:
            self.cpu_ratios = {z: c / total for z, c in by_zone.items()}
        return before != self.cpu_ratios

    def has_populated_hints(self, service_key: str) -> bool:
        return service_key in self._populated

    def remove_hints(self, service_key: str, address_type: str) -> None:
        types = self._hinted.get(service_key)
        if types is not None:
            types.pop(address_type, None)
            if not types:
                del self._hinted[service_key]
        self._populated.discard(service_key)

    def _allocations(self, endpoints: int) -> Tuple[Optional[Dict[str, _Allocation]], str]:
        ratios = self.cpu_ratios
        if ratios is None:
            return None, INSUFFICIENT_NODE_INFO
        if len(ratios) < 2:
            return None, NODES_READY_IN_ONE_ZONE_ONLY
        if len(ratios) > endpoints:
            return None, f"{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({endpoints} endpoints, {len(ratios)} zones)"
        remaining = endpoints
        min_total = 0
        out: Dict[str, _Allocation] = {}
        for zone, ratio in ratios.items():
            desired = ratio * endpoints
            minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD))))
            out[zone] = _Allocation(minimum, max(desired, float(minimum)))
            min_total += minimum
            remaining -= minimum
            if remaining < 0:
                return None, (f"{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({endpoints} endpoints, "
                              f"{len(ratios)} zones)")
        for a in out.values():
            a.maximum = a.minimum + endpoints - min_total
        return out, ""

    def add_hints(self, si: SliceInfo) -> Tuple[List[Obj], List[Obj], List[Tuple[str, str, str]]]:
        """(slices to create, slices to update, events as (type, reason, message)) with hints set (AddHints)."""
        events: List[Tuple[str, str, str]] = []
        allocations, why = self._allocations(si.total_ready())
        if allocations is None:
            return self._disable(si, why, events)
        allocated: Dict[str, int] = {}
        still: List[Obj] = []
        for s in si.unchanged:
            by_zone = _hints_by_zone(s, allocated, allocations)
            if by_zone is None:
                si.to_update.append(copy.deepcopy(s))
            else:
                still.append(s)
                for zone, n in by_zone.items():
                    allocated[zone] = allocated.get(zone, 0) + n
        si.unchanged = still
        allocatable = si.to_create + si.to_update
        for s in allocatable:
            for e in s.get("endpoints") or ():
                if not endpoint_ready(e):
                    e.pop("hints", None)
                    continue
                zone = e.get("zone") or ""
                if not zone:
                    return self._disable(si, NO_ZONE_SPECIFIED, events)
                allocated[zone] = allocated.get(zone, 0) + 1
                e["hints"] = {"forZones": [{"name": zone}]}
        giving, receiving = _giving_and_receiving(allocations, allocated)
        for zone, diff in _redistribute(allocatable, giving, receiving).items():
            allocated[zone] = allocated.get(zone, 0) + diff
        if not allocated:
            return self._disable(si, NO_ALLOCATED_HINTS_FOR_ZONES, events)
        was = si.service_key in self._populated
        self._hinted.setdefault(si.service_key, {})[si.address_type] = allocated
        self._populated.add(si.service_key)
        if not was:
            events.append(("Normal", "TopologyAwareHintsEnabled",
                           f"{TOPOLOGY_AWARE_HINTS_ENABLED}, addressType: {si.address_type}"))
        return si.to_create, si.to_update, events

    def _disable(self, si: SliceInfo, why: str,
                 events: List[Tuple[str, str, str]]) -> Tuple[List[Obj], List[Obj], List[Tuple[str, str, str]]]:
        log.info("%s, removing hints (service %s, addressType %s)", why, si.service_key, si.address_type)
        events.append(("Warning", "TopologyAwareHintsDisabled", f"{why}, addressType: {si.address_type}"))
        self.remove_hints(si.service_key, si.address_type)
        to_create, to_update = remove_hints_from_slices(si)
        return to_create, to_update, events
