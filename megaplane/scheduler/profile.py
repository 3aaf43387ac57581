"""Scheduling profiles: the default one (v1.32, apis/config/v1/default_plugins.go) and configured ones.

Filters run in upstream's order (volume plugins have nothing to check
without volumes), PodTopologySpread and InterPodAffinity last, as in the
default plugin list; the total score of a node is the weighted sum of each
plugin's normalised score.

A `Profile` is what one `KubeSchedulerConfiguration` profile comes down to
(`config` builds them): its filters in order, its score weights and the
plugins' args. `DEFAULT_PROFILE` is built from `FILTERS` and
`SCORE_WEIGHTS`, the tables `DEFAULT_PLUGINS` (upstream's multiPoint list)
is derived from too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple

import numpy as np

from .interpodaffinity import (
    HARD_POD_AFFINITY_WEIGHT,
    REASON_AFFINITY_NOT_MATCH,
    inter_pod_affinity,
    inter_pod_affinity_score,
)
from .labels import Selector
from .nodetable import NodeTable
from .plugins import (
    MAX_NODE_SCORE,
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
from .podspec import CPU, EPHEMERAL_STORAGE, MEMORY, NodeSelectorTerm, PodSpecInfo, SpreadConstraint
from .topologyspread import (
    REASON_NODE_LABEL_NOT_MATCH,
    SYSTEM_DEFAULT_CONSTRAINTS,
    pod_topology_spread,
    pod_topology_spread_score,
)

__all__ = ["FILTERS", "SCORE_WEIGHTS", "DEFAULT_PLUGINS", "PLUGIN_EXTENSIONS", "DEFAULT_PROFILE", "Profile",
           "ScoringStrategy", "fit_score", "score_nodes", "unresolvable"]

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


#: Upstream's extension points, as KubeSchedulerConfiguration's `plugins` names them.
EXTENSION_POINTS = ("preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score", "reserve",
                    "permit", "preBind", "bind", "postBind")

#: The in-tree plugins (v1.32 registry, feature-gated ones left out) and the extension points each implements.
#: Volume plugins and ImageLocality have nothing to check in a fleet without volumes or images: they pass every
#: node and score 0 everywhere.
PLUGIN_EXTENSIONS: Dict[str, Tuple[str, ...]] = {
    "SchedulingGates": ("preEnqueue",),
    "PrioritySort": ("queueSort",),
    "NodeUnschedulable": ("filter",),
    "NodeName": ("filter",),
    "TaintToleration": ("filter", "preScore", "score"),
    "NodeAffinity": ("preFilter", "filter", "preScore", "score"),
    "NodePorts": ("preFilter", "filter"),
    "NodeResourcesFit": ("preFilter", "filter", "preScore", "score"),
    "VolumeRestrictions": ("preFilter", "filter"),
    "NodeVolumeLimits": ("filter",),
    "VolumeBinding": ("preFilter", "filter", "reserve", "preBind", "preScore", "score"),
    "VolumeZone": ("preFilter", "filter"),
    "PodTopologySpread": ("preFilter", "filter", "preScore", "score"),
    "InterPodAffinity": ("preFilter", "filter", "preScore", "score"),
    "DefaultPreemption": ("postFilter",),
    "NodeResourcesBalancedAllocation": ("preScore", "score"),
    "ImageLocality": ("score",),
    "DefaultBinder": ("bind",),
}

#: Score plugins scoring 0 on every node here (see above); weights count only for the overflow check.
CONSTANT_SCORE_PLUGINS = frozenset({"ImageLocality", "VolumeBinding"})

FILTER_PLUGINS = dict(FILTERS)
_DEFAULT_ORDER = ("SchedulingGates", "PrioritySort", "NodeUnschedulable", "NodeName", "TaintToleration",
                  "NodeAffinity", "NodePorts", "NodeResourcesFit", "VolumeRestrictions", "NodeVolumeLimits",
                  "VolumeBinding", "VolumeZone", "PodTopologySpread", "InterPodAffinity", "DefaultPreemption",
                  "NodeResourcesBalancedAllocation", "ImageLocality", "DefaultBinder")

#: getDefaultPlugins' multiPoint list: (name, weight) in upstream's order, weights from SCORE_WEIGHTS
#: (ImageLocality's 1 included: it scores 0 here).
DEFAULT_PLUGINS: Tuple[Tuple[str, int], ...] = tuple(
    (name, SCORE_WEIGHTS.get(name, 1 if name == "ImageLocality" else 0)) for name in _DEFAULT_ORDER)
assert [n for n, _ in FILTERS] == [n for n in _DEFAULT_ORDER if n in FILTER_PLUGINS]

#: The default resources of NodeResourcesFit's scoring strategy and of BalancedAllocation: (name, weight).
DEFAULT_RESOURCES: Tuple[Tuple[str, int], ...] = ((CPU, 1), (MEMORY, 1))
MAX_CUSTOM_PRIORITY_SCORE = 10


@dataclass(frozen=True)
class ScoringStrategy:
    """NodeResourcesFitArgs.scoringStrategy: the type, (resource, weight) pairs and, for
    RequestedToCapacityRatio, the shape's (utilization, score) points."""

    type: str = "LeastAllocated"
    resources: Tuple[Tuple[str, int], ...] = DEFAULT_RESOURCES
    shape: Tuple[Tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Profile:
    """One scheduling profile: its filters in order, score weights, and the args its plugins read."""

    name: str = "default-scheduler"
    filters: Tuple[Tuple[str, Filter], ...] = tuple(FILTERS)
    score_weights: Mapping[str, int] = field(default_factory=lambda: dict(SCORE_WEIGHTS))
    #: DefaultPreemption is enabled (the PostFilter).
    preemption: bool = True
    #: The profile's percentageOfNodesToScore (None: the configuration's).
    percentage_of_nodes_to_score: Optional[int] = None
    scoring_strategy: ScoringStrategy = ScoringStrategy()
    #: PodTopologySpreadArgs: the constraints a pod without its own gets (defaultingType System: upstream's).
    default_spread_constraints: Tuple[SpreadConstraint, ...] = SYSTEM_DEFAULT_CONSTRAINTS
    hard_pod_affinity_weight: int = HARD_POD_AFFINITY_WEIGHT
    #: NodeAffinityArgs.addedAffinity: required terms (ORed, None: none) and preferred (weight, term) pairs.
    added_required_terms: Optional[Tuple[NodeSelectorTerm, ...]] = None
    added_preferred_terms: Tuple[Tuple[int, NodeSelectorTerm], ...] = ()

    @property
    def filter_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.filters)

    def for_pod(self, table: NodeTable, pod: PodSpecInfo) -> PodSpecInfo:
        """The pod as this profile's plugins see it: addedAffinity ANDed into its node affinity; with
        defaultingType List and no constraints of its own, the profile's defaultConstraints with the
        selector deduced from its Services, ReplicaSets and StatefulSets. The default profile: the pod."""
        changes: Dict[str, Any] = {}
        if self.added_required_terms is not None:
            own = pod.required_terms
            changes["required_terms"] = self.added_required_terms if own is None else tuple(
                NodeSelectorTerm(a.expressions + b.expressions, a.fields + b.fields)
                for b in own for a in self.added_required_terms)
        if self.added_preferred_terms:
            changes["preferred_terms"] = pod.preferred_terms + self.added_preferred_terms
        if self.default_spread_constraints != SYSTEM_DEFAULT_CONSTRAINTS and not pod.spread_constraints:
            selector = table.objects.default_selector(pod.namespace, pod.labels)
            if not self.default_spread_constraints or selector.empty:
                changes["spread_constraints"] = (_NO_SPREADING,)
            else:
                changes["spread_constraints"] = tuple(dataclasses.replace(c, selector=selector)
                                                      for c in self.default_spread_constraints)
        return dataclasses.replace(pod, **changes) if changes else pod


class ResourceScores(Protocol):
    """Per-slot LeastAllocated and BalancedAllocation scores kept across cycles (scorecache.ResourceScoreCache)."""

    def scores(self, pod: PodSpecInfo, cand: np.ndarray) -> Tuple[np.ndarray, np.ndarray]: ...


#: Stands for "no constraints" where an empty tuple would mean "the system defaults": neither
#: DoNotSchedule nor ScheduleAnyway, so neither the filter nor the score picks it up.
_NO_SPREADING = SpreadConstraint(1, "", "", Selector(), 1, "Honor", "Ignore", ())


def _resource_columns(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray,
                      resources: Tuple[Tuple[str, int], ...]) -> List[Tuple[int, np.ndarray, np.ndarray]]:
    """calculateResourceAllocatableRequest per resource: (weight, allocatable, requested incl. the pod) over the
    candidates, cpu and memory on the non-zero requests; an extended resource the pod does not ask for is left
    out, as upstream skips it."""
    out = []
    for rname, weight in resources:
        if rname == CPU:
            alloc = table.allocatable[cand, table.resource_index[CPU]]
            req = table.non_zero[cand, 0] + pod.non_zero_cpu
        elif rname == MEMORY:
            alloc = table.allocatable[cand, table.resource_index[MEMORY]]
            req = table.non_zero[cand, 1] + pod.non_zero_memory
        else:
            want = pod.requests.get(rname, 0)
            col = table.resource_index.get(rname)
            if col is None or (want == 0 and rname != EPHEMERAL_STORAGE):
                continue
            alloc = table.allocatable[cand, col]
            req = table.requested[cand, col] + want
        out.append((weight, alloc.astype(np.int64), req.astype(np.int64)))
    return out


def _broken_linear(shape: Tuple[Tuple[int, int], ...], p: np.ndarray) -> np.ndarray:
    """helper.BuildBrokenLinearFunction over p (0..100), Go's truncating integer division."""
    out = np.full(p.shape, shape[-1][1], dtype=np.int64)
    done = np.zeros(p.shape, dtype=bool)
    for i, (util, score) in enumerate(shape):
        hit = ~done & (p <= util)
        if i == 0:
            value = np.full(p.shape, score, dtype=np.int64)
        else:
            u0, s0 = shape[i - 1]
            num = (score - s0) * (p - u0)
            value = s0 + np.sign(num) * (np.abs(num) // (util - u0))
        out = np.where(hit, value, out)
        done |= hit
    return out


def fit_score(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray, strategy: ScoringStrategy) -> np.ndarray:
    """NodeResourcesFit's score with `strategy` (LeastAllocated, MostAllocated, RequestedToCapacityRatio)."""
    if strategy == DEFAULT_PROFILE.scoring_strategy:
        return least_allocated(table, pod, cand)
    total = np.zeros(len(cand), dtype=np.int64)
    weights = np.zeros(len(cand), dtype=np.int64)
    shape = tuple((u, s * (MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE)) for u, s in strategy.shape)
    for weight, alloc, req in _resource_columns(table, pod, cand, strategy.resources):
        has = alloc != 0
        safe = np.where(has, alloc, 1)
        if strategy.type == "MostAllocated":
            score = np.minimum(req, alloc) * MAX_NODE_SCORE // safe
        elif strategy.type == "RequestedToCapacityRatio":
            over = req > alloc
            score = _broken_linear(shape, np.where(over, 100, np.where(has, req, 0) * 100 // safe))
            has = has & (score > 0)  # only resources scoring above 0 count, weights included
        else:
            score = np.where(req > alloc, 0, (alloc - req) * MAX_NODE_SCORE // safe)
        total += np.where(has, score * weight, 0)
        weights += np.where(has, weight, 0)
    safe_w = np.maximum(weights, 1)
    if strategy.type == "RequestedToCapacityRatio":
        return np.where(weights > 0, (2 * total + safe_w) // (2 * safe_w), 0)  # math.Round, positive values
    return np.where(weights > 0, total // safe_w, 0)


def score_nodes(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray,
                profile: Optional[Profile] = None, cache: Optional["ResourceScores"] = None) -> np.ndarray:
    """Weighted sum of the profile's score plugins (default: upstream's) over the candidate slots, as the
    framework totals them. `cache` (scorecache.ResourceScoreCache) answers LeastAllocated and BalancedAllocation
    from per-slot scores kept across cycles."""
    p = profile if profile is not None else DEFAULT_PROFILE
    weights = p.score_weights
    total = np.zeros(len(cand), dtype=np.int64)
    fit = balanced = None
    if cache is not None and p.scoring_strategy == DEFAULT_PROFILE.scoring_strategy:
        fit, balanced = cache.scores(pod, cand)
    if "NodeResourcesFit" in weights:
        if fit is None:
            fit = fit_score(table, pod, cand, p.scoring_strategy)
        total += fit * weights["NodeResourcesFit"]
    if "NodeResourcesBalancedAllocation" in weights:
        if balanced is None:
            balanced = balanced_allocation(table, pod, cand)
        total += balanced * weights["NodeResourcesBalancedAllocation"]
    if "TaintToleration" in weights:
        total += normalize(taint_toleration_score(table, pod, cand), reverse=True) * weights["TaintToleration"]
    if pod.preferred_terms and "NodeAffinity" in weights:
        total += normalize(node_affinity_score(table, pod, cand)) * weights["NodeAffinity"]
    if "PodTopologySpread" in weights:
        total += pod_topology_spread_score(table, pod, cand) * weights["PodTopologySpread"]
    if "InterPodAffinity" in weights:
        total += inter_pod_affinity_score(table, pod, cand,
                                          hard_pod_affinity_weight=p.hard_pod_affinity_weight) * weights["InterPodAffinity"]
    return total


DEFAULT_PROFILE = Profile()
