"""The few fields of Nodes and Leases node lifecycle reads, as msgspec records (the rest is never decoded)."""

from __future__ import annotations

from typing import Dict, List, Optional

import msgspec

__all__ = ["Condition", "Lease", "Node", "Taint", "taint_dict"]


class Meta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resourceVersion: str = ""
    creationTimestamp: Optional[str] = None
    labels: Dict[str, str] = msgspec.field(default_factory=dict)


class Taint(msgspec.Struct, frozen=True):
    key: str = ""
    effect: str = ""
    value: Optional[str] = None
    timeAdded: Optional[str] = None


class Condition(msgspec.Struct):
    type: str = ""
    status: str = ""
    lastHeartbeatTime: Optional[str] = None
    lastTransitionTime: Optional[str] = None


class NodeSpec(msgspec.Struct):
    taints: Optional[List[Taint]] = None
    unschedulable: bool = False


class NodeStatus(msgspec.Struct):
    conditions: Optional[List[Condition]] = None


class Node(msgspec.Struct):
    metadata: Meta = msgspec.field(default_factory=Meta)
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)


class LeaseMeta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""


class LeaseSpec(msgspec.Struct):
    holderIdentity: Optional[str] = None
    renewTime: Optional[str] = None


class Lease(msgspec.Struct):
    metadata: LeaseMeta = msgspec.field(default_factory=LeaseMeta)
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)


def taint_dict(t: Taint) -> Dict[str, str]:
    out = {"key": t.key, "effect": t.effect}
    if t.value:
        out["value"] = t.value
    if t.timeAdded:
        out["timeAdded"] = t.timeAdded
    return out
