"""Parallel per tenant: tenants' dedicated node pools scheduled by independent worker processes.

Seed 002's multi-tenant shape: each tenant's pods select the tenant's own
pool of nodes (`spec.nodeSelector[<tenant label>]: <tenant>`, or a
required node affinity term `<tenant label> In [<tenant>]`), so two
tenants' pods can never compete for a node and need not be scheduled one
after the other. `megaplane scheduler --tenant-label L --tenant-workers N`
runs N schedulers (this process and N-1 worker processes it supervises);
a `TenantPartition` tells each which pods are its own: a tenant's pods
belong to worker blake2b(tenant) % N, pods that name no tenant to worker 0.

Every worker keeps the whole cluster (all nodes, all placed pods), so
topology spreading and inter-pod affinity count exactly what one
scheduler would; each only places its own pods. Pods that name no tenant
are kept off the tenants' pools (a `L DoesNotExist` node requirement),
as taints would keep them off dedicated pools: otherwise worker 0 could
fill a node a tenant's worker is placing on at the same moment.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from .podspec import NodeSelectorTerm, PodSpecInfo, Requirement

__all__ = ["TenantPartition", "tenant_hash", "tenant_of"]


def tenant_hash(tenant: str) -> int:
    """A stable, well-mixed hash of a tenant's name (Python's hash() differs per process; crc32's low bits put
    t0..t3 all on one of two workers)."""
    return int.from_bytes(hashlib.blake2b(tenant.encode(), digest_size=8).digest(), "big")


def tenant_of(pod: Mapping[str, Any], label: str) -> Optional[str]:
    """The tenant whose pool `pod` is pinned to: its nodeSelector's value of `label`, else the one value every
    required node affinity term allows for it (In with a single value); None when it names no single tenant."""
    spec = pod.get("spec") or {}
    selected = (spec.get("nodeSelector") or {}).get(label)
    if isinstance(selected, str) and selected:
        return selected
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    found: Optional[str] = None
    for term in terms:
        pinned = None
        for expr in (term or {}).get("matchExpressions") or ():
            values = expr.get("values") or []
            if expr.get("key") == label and expr.get("operator") == "In" and len(values) == 1:
                pinned = str(values[0])
        if pinned is None or (found is not None and pinned != found):
            return None  # a term allows other pools (or none of the terms agree): not one tenant's
        found = pinned
    return found


@dataclass(frozen=True)
class TenantPartition:
    """Which pods worker `index` of `workers` schedules, by the tenant label `label`."""

    label: str
    workers: int
    index: int

    def __post_init__(self) -> None:
        if not self.label:
            raise ValueError("the tenant label must not be empty")
        if self.workers < 1 or not 0 <= self.index < self.workers:
            raise ValueError(f"tenant worker {self.index} of {self.workers} is out of range")

    def worker_of(self, tenant: Optional[str]) -> int:
        return 0 if tenant is None else tenant_hash(tenant) % self.workers

    def owns(self, pod: Mapping[str, Any]) -> bool:
        return self.worker_of(tenant_of(pod, self.label)) == self.index

    def restrict(self, pod: Mapping[str, Any], info: PodSpecInfo) -> PodSpecInfo:
        """A pod naming no tenant may not use the tenants' pools: `label DoesNotExist` joins each required term."""
        if tenant_of(pod, self.label) is not None:
            return info
        outside = Requirement(self.label, "DoesNotExist", ())
        if info.required_terms is None:
            terms: Tuple[NodeSelectorTerm, ...] = (NodeSelectorTerm((outside,), ()),)
        else:
            # A term with no requirements matches no node and must stay so.
            terms = tuple(NodeSelectorTerm(t.expressions + (outside,), t.fields) if t.expressions or t.fields else t
                          for t in info.required_terms)
        return dataclasses.replace(info, required_terms=terms)
