"""PodTopologySpread (v1.32): Filter for DoNotSchedule constraints, Score for ScheduleAnyway ones, over all slots.

Constraints come from `spec.topologySpreadConstraints`, or, for a pod
without any, from the system defaults (hostname maxSkew 3, zone maxSkew 5,
ScheduleAnyway) with the selector of the Services / ReplicaSets /
StatefulSets selecting the pod (`ClusterObjects.default_selector`; none:
no constraint). `matchLabelKeys` add `key in (pod's value)` to the
selector; `minDomains` defaults to 1, `nodeAffinityPolicy` to Honor and
`nodeTaintsPolicy` to Ignore.

Filter (PreFilter's state, then per node): a node is counted when it has
every constraint's topology key and passes the constraint's inclusion
policies; per domain the matching pods of the pod's namespace that are not
terminating are summed; the global minimum is the least domain count (0
when fewer domains than minDomains); a node fails when
`count(its domain) + self-match - minimum > maxSkew`, or with "(missing
required label)" when it lacks a key (the first failing constraint gives
the reason).

Score (PreScore over the nodes being scored, counts over all nodes):
`sum(count * log(domains + 2) + maxSkew - 1)` per node, rounded half away
from zero, hostname counting the node's own pods; nodes missing a key
(when the pod's own constraints are used) are ignored and score 0; the
rest are normalised as `100 * (max + min - s) / max` (integer), 100 when
max is 0.

The per-slot pod counts come from the node table's `PodIndex`, so a
cycle costs a few numpy passes over the slots, not a walk of every pod.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .labels import LabelRequirement, Selector
from .nodetable import NodeTable
from .plugins import FilterResult, node_affinity, taint_toleration
from .podindex import Matcher
from .podspec import PodSpecInfo, SpreadConstraint

__all__ = [
    "Constraint", "SYSTEM_DEFAULT_CONSTRAINTS", "REASON_CONSTRAINTS_NOT_MATCH", "REASON_NODE_LABEL_NOT_MATCH",
    "constraints_for", "pod_topology_spread", "pod_topology_spread_score", "LABEL_HOSTNAME", "LABEL_ZONE",
    "SpreadScoreParts", "spread_score_parts", "spread_score_finish", "DO_NOT_SCHEDULE",
]

LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE, SCHEDULE_ANYWAY = "DoNotSchedule", "ScheduleAnyway"
HONOR = "Honor"
REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
REASON_NODE_LABEL_NOT_MATCH = REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
MAX_NODE_SCORE = 100
MAX_INT32 = 2**31 - 1


@dataclass(frozen=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: Selector
    min_domains: int
    node_affinity_policy: str
    node_taints_policy: str


def _system(key: str, skew: int) -> SpreadConstraint:
    return SpreadConstraint(skew, key, SCHEDULE_ANYWAY, Selector(), 1, HONOR, "Ignore", ())


#: podtopologyspread's systemDefaultConstraints, in upstream's order.
SYSTEM_DEFAULT_CONSTRAINTS = (_system(LABEL_HOSTNAME, 3), _system(LABEL_ZONE, 5))


def _filter(constraints: Tuple[SpreadConstraint, ...], pod: PodSpecInfo, action: str) -> List[Constraint]:
    out = []
    for c in constraints:
        if c.when_unsatisfiable != action:
            continue
        selector = c.selector
        if c.match_label_keys:
            extra = tuple(LabelRequirement(k, "In", (pod.labels[k],)) for k in c.match_label_keys if k in pod.labels)
            selector = selector.add(extra)
        out.append(Constraint(c.max_skew, c.topology_key, selector, c.min_domains, c.node_affinity_policy,
                              c.node_taints_policy))
    return out


def constraints_for(table: NodeTable, pod: PodSpecInfo, action: str) -> List[Constraint]:
    """The pod's constraints of `action` (its own, else the system defaults with the default selector)."""
    if pod.spread_constraints:
        return _filter(pod.spread_constraints, pod, action)
    defaults = _filter(SYSTEM_DEFAULT_CONSTRAINTS, pod, action)
    if not defaults:
        return []
    selector = table.objects.default_selector(pod.namespace, pod.labels)
    if selector.empty:
        return []
    return [Constraint(c.max_skew, c.topology_key, selector, c.min_domains, c.node_affinity_policy,
                       c.node_taints_policy) for c in defaults]


#: "Every node passes" (the pod has nothing the policy would honor).
_ALL = np.ones(0, dtype=bool)


class _Policies:
    """matchNodeInclusionPolicies' two masks over the slots, computed once per cycle when a constraint asks."""

    def __init__(self, table: NodeTable, pod: PodSpecInfo) -> None:
        self.table, self.pod = table, pod
        self._affinity: Optional[np.ndarray] = None
        self._taints: Optional[np.ndarray] = None

    def mask(self, c: Constraint) -> Optional[np.ndarray]:
        """The slots the constraint's policies admit; None: every slot."""
        out: Optional[np.ndarray] = None
        if c.node_affinity_policy == HONOR:
            if self._affinity is None:
                r = node_affinity(self.table, self.pod)
                self._affinity = r[0] if r is not None else _ALL
            out = None if self._affinity is _ALL else self._affinity
        if c.node_taints_policy == HONOR:
            if self._taints is None:
                r = taint_toleration(self.table, self.pod)
                self._taints = r[0] if r is not None else _ALL
            if self._taints is not _ALL:
                out = self._taints if out is None else out & self._taints
        return out


def _counts(table: NodeTable, pod: PodSpecInfo, c: Constraint) -> np.ndarray:
    """countPodsMatchSelector per slot: the pod's namespace, not terminating; an empty selector counts none."""
    n = table.size
    if c.selector.empty:
        return np.zeros(n, dtype=np.int64)
    matcher = Matcher(((frozenset((pod.namespace,)), c.selector),), skip_terminating=True)
    return table.pod_index.counts(matcher)[:n]


def _column(table: NodeTable, key: str) -> np.ndarray:
    col = table.label_columns.get(key)
    return col[: table.size] if col is not None else np.full(table.size, -1, dtype=np.int32)


def _has_all_keys(table: NodeTable, constraints: List[Constraint]) -> np.ndarray:
    ok = table.valid[: table.size].copy()
    for c in constraints:
        ok &= _column(table, c.topology_key) >= 0
    return ok


class _Domains:
    """Per topology key, over the slots a constraint counts: which ones, their value ids, which values occur."""

    __slots__ = ("slots", "ids", "present", "nvals", "has", "safe")

    def __init__(self, table: NodeTable, counted: np.ndarray, key: str) -> None:
        col = _column(table, key)
        self.nvals = len(table.label_value_names.get(key, ()))
        self.slots = np.flatnonzero(counted)
        self.ids = col[self.slots]
        self.present = np.zeros(self.nvals, dtype=bool)
        self.present[self.ids] = True
        self.has = col >= 0
        self.safe = np.where(self.has, col, 0)

    def restricted(self, table: NodeTable, key: str, mask: np.ndarray) -> "_Domains":
        return _Domains(table, _mask_of(table.size, self.slots[mask[self.slots]]), key)


def _mask_of(n: int, slots: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[slots] = True
    return out


def _filter_domains(table: NodeTable, keys: Tuple[str, ...], key: str) -> _Domains:
    """The nodes-only part of PreFilter (nodes having every key), cached until a node changes."""
    cache_key = ("podtopologyspread.filter", keys, key)
    found = table.node_derived.get(cache_key)
    if found is None:
        counted = table.valid[: table.size].copy()
        for k in keys:
            counted &= _column(table, k) >= 0
        found = table.node_derived[cache_key] = _Domains(table, counted, key)
    assert isinstance(found, _Domains)
    return found


def pod_topology_spread(table: NodeTable, pod: PodSpecInfo) -> Optional[FilterResult]:
    """The Filter over every slot (None: the pod has no DoNotSchedule constraint)."""
    constraints = constraints_for(table, pod, DO_NOT_SCHEDULE)
    if not constraints:
        return None
    n = table.size
    keys = tuple(c.topology_key for c in constraints)
    policies = _Policies(table, pod)
    missing: List[np.ndarray] = []
    skewed: List[np.ndarray] = []
    for c in constraints:
        domains = _filter_domains(table, keys, c.topology_key)
        mask = policies.mask(c)
        if mask is not None:
            domains = domains.restricted(table, c.topology_key, mask)
        nvals = domains.nvals
        if len(domains.ids):
            per_domain = np.bincount(domains.ids, weights=_counts(table, pod, c)[domains.slots], minlength=nvals)
        else:
            per_domain = np.zeros(nvals, dtype=np.float64)
        present = domains.present
        count = int(np.count_nonzero(present))
        min_match = int(per_domain[present].min()) if count else MAX_INT32
        if count < c.min_domains:
            min_match = 0
        self_match = 1 if c.selector.matches(pod.labels) else 0
        has = domains.has
        match_num = per_domain[domains.safe] if nvals else np.zeros(n)
        missing.append(~has)
        skewed.append(has & (match_num + (self_match - min_match) > c.max_skew))
    fail = np.zeros(n, dtype=bool)
    label_fail = np.zeros(n, dtype=bool)
    skew_fail = np.zeros(n, dtype=bool)
    for miss, skew in zip(missing, skewed):
        label_fail |= miss & ~fail
        skew_fail |= skew & ~fail
        fail |= miss | skew

    def reasons(failing: np.ndarray) -> List[Tuple[str, np.ndarray]]:
        return [(REASON_NODE_LABEL_NOT_MATCH, failing & label_fail), (REASON_CONSTRAINTS_NOT_MATCH, failing & skew_fail)]

    return ~fail, reasons


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """math.Round for non-negative floats (x - floor(x) is exact)."""
    floor = np.floor(x)
    out: np.ndarray = np.where(x - floor >= 0.5, floor + 1, floor).astype(np.int64)
    return out


@dataclass
class SpreadScoreParts:
    """PodTopologySpread's score over some candidates before the steps that depend on all of them: per candidate
    whether it is scored (has the keys its constraints need), and per ScheduleAnyway constraint (in order) its
    topology key, maxSkew, which candidates have the key, their domains' matching-pod counts and domain ids.
    `spread_score_finish` turns the parts of every candidate (`join` of the shards' parts) into the scores."""

    scored: np.ndarray
    terms: List[Tuple[str, int, np.ndarray, np.ndarray, np.ndarray]]

    @staticmethod
    def join(parts: List["SpreadScoreParts"]) -> "SpreadScoreParts":
        terms = [(key, skew, np.concatenate([p.terms[i][2] for p in parts]),
                  np.concatenate([p.terms[i][3] for p in parts]), np.concatenate([p.terms[i][4] for p in parts]))
                 for i, (key, skew, _, _, _) in enumerate(parts[0].terms)]
        return SpreadScoreParts(np.concatenate([p.scored for p in parts]), terms)


def spread_score_parts(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> Optional[SpreadScoreParts]:
    """PreScore and the per-candidate half of Score (None when the pod has no soft constraint)."""
    k = len(cand)
    constraints = constraints_for(table, pod, SCHEDULE_ANYWAY)
    if not constraints or k == 0:
        return None
    # Only the pod's own constraints need every key on a node: nodes without a zone still get hostname spreading.
    require_all = bool(pod.spread_constraints)
    ignored = np.zeros(k, dtype=bool)
    if require_all:
        ignored = ~_has_all_keys(table, constraints)[cand]
    counted_all = _has_all_keys(table, constraints) if require_all else table.valid[: table.size]
    policies = _Policies(table, pod)
    terms = []
    for c in constraints:
        col = _column(table, c.topology_key)
        names = table.label_value_names.get(c.topology_key, [])
        # A node without the key falls in the "" domain, as node.Labels[key] reads it.
        empty_id = table.label_values.get(c.topology_key, {}).get("", len(names))
        domain = np.where(col >= 0, col, empty_id)
        has_c = col[cand] >= 0
        counts = _counts(table, pod, c)
        if c.topology_key == LABEL_HOSTNAME:
            cnt = counts[cand]
        else:
            included = counted_all
            mask = policies.mask(c)
            if mask is not None:
                included = included & mask
            per_domain = np.bincount(domain[included], weights=counts[included], minlength=len(names) + 1)
            cnt = per_domain.astype(np.int64)[domain[cand]]
        terms.append((c.topology_key, c.max_skew, has_c, cnt, domain[cand]))
    return SpreadScoreParts(~ignored, terms)


def spread_score_finish(parts: SpreadScoreParts) -> np.ndarray:
    """The rest of Score (each constraint weighted by log(domains among the scored candidates + 2)) and
    NormalizeScore, over every candidate at once."""
    scored = parts.scored
    k = len(scored)
    score = np.zeros(k, dtype=np.float64)
    for key, max_skew, has_c, cnt, dom in parts.terms:
        if key == LABEL_HOSTNAME:
            size = int(np.count_nonzero(scored))
        else:
            size = len(np.unique(dom[scored]))
        weight = math.log(float(size + 2))
        score = np.where(has_c, score + (cnt.astype(np.float64) * weight + float(max_skew - 1)), score)
    raw = _round_half_away(score)
    if not scored.any():
        return np.zeros(k, dtype=np.int64)
    lo = int(raw[scored].min())
    hi = int(raw[scored].max())
    if hi == 0:
        out = np.full(k, MAX_NODE_SCORE, dtype=np.int64)
    else:
        out = MAX_NODE_SCORE * (hi + lo - raw) // hi
    return np.where(scored, out, 0)


def pod_topology_spread_score(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """PreScore + Score + NormalizeScore over the candidate slots (zeros when the pod has no soft constraint)."""
    parts = spread_score_parts(table, pod, cand)
    if parts is None:
        return np.zeros(len(cand), dtype=np.int64)
    return spread_score_finish(parts)
