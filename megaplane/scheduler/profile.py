"""The default profile (v1.32, apis/config/v1/default_plugins.go): its filters in order and its weighted scores.

Filters run in upstream's order (volume plugins have nothing to check
without volumes), PodTopologySpread and InterPodAffinity last, as in the
default plugin list; the total score of a node is the weighted sum of each
plugin's normalised score.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .interpodaffinity import REASON_AFFINITY_NOT_MATCH, inter_pod_affinity, inter_pod_affinity_score
from .nodetable import NodeTable
from .plugins import (
    REASON_NODE_AFFINITY,
    REASON_NODE_NAME,
    REASON_UNSCHEDULABLE,
    Filter,
    balanced_allocation,
    least_allocated,
    node_affinity,
    node_affinity_score,
    node_name,
    node_ports,
    node_resources_fit,
    node_unschedulable,
    normalize,
    taint_toleration,
    taint_toleration_score,
)
from .podspec import PodSpecInfo
from .topologyspread import REASON_NODE_LABEL_NOT_MATCH, pod_topology_spread, pod_topology_spread_score

__all__ = ["FILTERS", "SCORE_WEIGHTS", "score_nodes", "unresolvable"]

FILTERS: List[Tuple[str, Filter]] = [
    ("NodeUnschedulable", node_unschedulable),
    ("NodeName", node_name),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodePorts", node_ports),
    ("NodeResourcesFit", node_resources_fit),
    ("PodTopologySpread", pod_topology_spread),
    ("InterPodAffinity", inter_pod_affinity),
]

#: Reasons whose filter returns UnschedulableAndUnresolvable: removing pods from the node cannot help.
UNRESOLVABLE_REASONS = frozenset({
    REASON_UNSCHEDULABLE, REASON_NODE_NAME, REASON_NODE_AFFINITY, REASON_NODE_LABEL_NOT_MATCH,
    REASON_AFFINITY_NOT_MATCH,
})


def unresolvable(reason: str) -> bool:
    """True for a reason preemption cannot fix (TaintToleration's untolerated taints included)."""
    return reason in UNRESOLVABLE_REASONS or reason.startswith("node(s) had untolerated taint")


#: Upstream's default score weights.
SCORE_WEIGHTS = {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1, "PodTopologySpread": 2,
                 "InterPodAffinity": 2, "NodeResourcesBalancedAllocation": 1}


def score_nodes(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """Weighted sum of the default score plugins over the candidate slots, as the framework totals them."""
    total = least_allocated(table, pod, cand) * SCORE_WEIGHTS["NodeResourcesFit"]
    total += balanced_allocation(table, pod, cand) * SCORE_WEIGHTS["NodeResourcesBalancedAllocation"]
    total += normalize(taint_toleration_score(table, pod, cand), reverse=True) * SCORE_WEIGHTS["TaintToleration"]
    if pod.preferred_terms:
        total += normalize(node_affinity_score(table, pod, cand)) * SCORE_WEIGHTS["NodeAffinity"]
    total += pod_topology_spread_score(table, pod, cand) * SCORE_WEIGHTS["PodTopologySpread"]
    total += inter_pod_affinity_score(table, pod, cand) * SCORE_WEIGHTS["InterPodAffinity"]
    return total
