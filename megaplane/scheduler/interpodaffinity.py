"""InterPodAffinity (v1.32): required pod affinity / anti-affinity as a Filter, preferred terms as a Score.

The incoming pod's terms first take in the namespaces their
namespaceSelector matches (`mergeAffinityTermNamespacesIfNotEmpty`; an
empty selector `{}` keeps matching every namespace). Then, over all slots:

Filter, in upstream's order and with its reasons:
1. affinity: a node must have every term's topology key, and in each
   term's domain there must be a pod matching *all* terms; unless no pod
   anywhere matches them all and the pod matches its own terms (the first
   pod of a group may land anywhere with the keys);
2. anti-affinity: no pod matching a term in the node's domain of that term;
3. existing pods' anti-affinity: no placed pod whose required anti-affinity
   term matches the incoming pod (namespace labels of the incoming pod's
   namespace) in the node's domain of that term.

Score: per (topology key, value) the sum of the incoming pod's preferred
affinity weights over matching pods, minus its preferred anti-affinity
weights, plus, symmetrically, the existing pods' required affinity terms
(hardPodAffinityWeight 1), preferred affinity and anti-affinity weights
whose terms match the incoming pod; a node scores the sum over its labels,
normalised as `int(100 * (s - min) / (max - min))` (0 when all are equal).

Counts per slot of pods matching a term come from the `PodIndex`, the
existing pods' terms from its affinity groups (one per distinct set of
terms), so nothing walks every pod.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .nodetable import NodeTable
from .plugins import FilterResult
from .podindex import AffinityGroup, Clause, Matcher
from .podspec import AffinityTerm, PodSpecInfo

__all__ = [
    "REASON_AFFINITY_NOT_MATCH", "REASON_ANTI_AFFINITY_NOT_MATCH", "REASON_EXISTING_ANTI_AFFINITY_NOT_MATCH",
    "HARD_POD_AFFINITY_WEIGHT", "inter_pod_affinity", "inter_pod_affinity_score", "incoming_clause",
    "inter_pod_affinity_raw", "inter_pod_affinity_normalize",
]

REASON_AFFINITY_NOT_MATCH = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY_NOT_MATCH = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY_NOT_MATCH = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1
MAX_NODE_SCORE = 100


def incoming_clause(table: NodeTable, term: AffinityTerm) -> Clause:
    """The incoming pod's term with its namespaceSelector merged into its namespaces (None: every namespace)."""
    sel = term.namespace_selector
    if sel.empty:
        return None, term.selector
    if sel.nothing:
        return term.namespaces, term.selector
    return term.namespaces | table.objects.namespaces_matching(sel), term.selector


def _column(table: NodeTable, key: str) -> Optional[np.ndarray]:
    col = table.label_columns.get(key)
    return col[: table.size] if col is not None else None


def _domain_sums(col: np.ndarray, counts: np.ndarray, nvals: int) -> np.ndarray:
    """Per value id of a key, the counts summed over the slots having the key."""
    has = col >= 0
    if not has.any():
        return np.zeros(nvals, dtype=np.int64)
    return np.bincount(col[has], weights=counts[has], minlength=nvals).astype(np.int64)


def _in_domains(col: np.ndarray, per_value: np.ndarray) -> np.ndarray:
    """Per slot, per_value of its value (0 where the slot lacks the key)."""
    has = col >= 0
    if len(per_value) == 0:
        return np.zeros(len(col), dtype=per_value.dtype)
    return np.where(has, per_value[np.where(has, col, 0)], 0)


def _matches_all(clauses: Tuple[Clause, ...], pod: PodSpecInfo) -> bool:
    return bool(clauses) and Matcher(clauses).matches(pod.namespace, pod.labels, False)


def inter_pod_affinity(table: NodeTable, pod: PodSpecInfo) -> Optional[FilterResult]:
    """The Filter over every slot (None: nothing to check: no required terms either way)."""
    n = table.size
    index = table.pod_index
    ns_labels = table.objects.labels_of_namespace(pod.namespace)
    # Existing pods' required anti-affinity terms that the incoming pod matches: the domains they block.
    blocked: Dict[str, np.ndarray] = {}
    for group in index.groups_where("required_anti_affinity"):
        for term in group.affinity.required_anti_affinity:
            if not term.matches(pod.namespace, pod.labels, ns_labels):
                continue
            col = _column(table, term.topology_key)
            if col is None:
                continue
            slots, _ = group.arrays()
            values = col[slots]
            values = values[values >= 0]
            if len(values) == 0:
                continue
            nvals = len(table.label_value_names[term.topology_key])
            mask = blocked.get(term.topology_key)
            if mask is None:
                mask = blocked[term.topology_key] = np.zeros(nvals, dtype=bool)
            mask[values] = True
    affinity = pod.affinity
    required = affinity.required_affinity if affinity is not None else ()
    anti = affinity.required_anti_affinity if affinity is not None else ()
    if not blocked and not required and not anti:
        return None
    affinity_fail = np.zeros(n, dtype=bool)
    if required:
        clauses = tuple(incoming_clause(table, t) for t in required)
        counts = index.counts(Matcher(clauses))[:n]
        missing = np.zeros(n, dtype=bool)
        exist = np.ones(n, dtype=bool)
        any_match = False
        for t in required:
            col = _column(table, t.topology_key)
            if col is None:
                missing[:] = True
                continue
            per_value = _domain_sums(col, counts, len(table.label_value_names[t.topology_key]))
            any_match = any_match or bool(per_value.any())
            missing |= col < 0
            exist &= _in_domains(col, per_value) > 0
        if not any_match and _matches_all(clauses, pod):
            exist[:] = True
        affinity_fail = missing | ~exist
    anti_fail = np.zeros(n, dtype=bool)
    for t in anti:
        col = _column(table, t.topology_key)
        if col is None:
            continue
        counts = index.counts(Matcher((incoming_clause(table, t),)))[:n]
        per_value = _domain_sums(col, counts, len(table.label_value_names[t.topology_key]))
        anti_fail |= _in_domains(col, per_value) > 0
    existing_fail = np.zeros(n, dtype=bool)
    for key, mask in blocked.items():
        col = _column(table, key)
        assert col is not None
        existing_fail |= _in_domains(col, mask) != 0
    anti_fail &= ~affinity_fail
    existing_fail &= ~affinity_fail & ~anti_fail
    fail = affinity_fail | anti_fail | existing_fail

    def reasons(failing: np.ndarray) -> List[Tuple[str, np.ndarray]]:
        return [(REASON_AFFINITY_NOT_MATCH, failing & affinity_fail),
                (REASON_ANTI_AFFINITY_NOT_MATCH, failing & anti_fail),
                (REASON_EXISTING_ANTI_AFFINITY_NOT_MATCH, failing & existing_fail)]

    return ~fail, reasons


class _TopologyScore:
    """topologyScore: per key, an int64 per value id."""

    def __init__(self, table: NodeTable) -> None:
        self.table = table
        self.by_key: Dict[str, np.ndarray] = {}
        self.touched = False

    def _row(self, key: str) -> np.ndarray:
        nvals = len(self.table.label_value_names[key])
        row = self.by_key.get(key)
        if row is None:
            row = self.by_key[key] = np.zeros(nvals, dtype=np.int64)
        return row

    def add_group(self, key: str, group: AffinityGroup, weight: int) -> None:
        """`weight` per pod of the group, in the domain of its node."""
        if group.dense is not None:
            self.add_counts(key, group.dense[: self.table.size], weight)
        else:
            slots, pods = group.arrays()
            self.add_slots(key, slots, pods, weight)

    def add_slots(self, key: str, slots: np.ndarray, pods: np.ndarray, weight: int) -> None:
        col = _column(self.table, key)
        if col is None:
            return
        values = col[slots]
        has = values >= 0
        if not has.any():
            return
        np.add.at(self._row(key), values[has], pods[has] * weight)
        self.touched = True

    def add_counts(self, key: str, counts: np.ndarray, weight: int) -> None:
        col = _column(self.table, key)
        if col is None:
            return
        has = col >= 0
        if not (counts[has] > 0).any():
            return
        self._row(key)[:] += _domain_sums(col, counts, len(self.table.label_value_names[key])) * weight
        self.touched = True


def inter_pod_affinity_score(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray, *,
                             hard_pod_affinity_weight: int = HARD_POD_AFFINITY_WEIGHT) -> np.ndarray:
    """PreScore + Score + NormalizeScore over the candidate slots (InterPodAffinityArgs.hardPodAffinityWeight)."""
    raw = inter_pod_affinity_raw(table, pod, cand, hard_pod_affinity_weight=hard_pod_affinity_weight)
    return inter_pod_affinity_normalize(raw) if raw is not None else np.zeros(len(cand), dtype=np.int64)


def inter_pod_affinity_normalize(raw: np.ndarray) -> np.ndarray:
    """NormalizeScore over every candidate's raw score: int(100 * (s - min) / (max - min)), 0 when all are equal."""
    k = len(raw)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(raw.min()), int(raw.max())
    if hi - lo <= 0:
        return np.zeros(k, dtype=np.int64)
    return (float(MAX_NODE_SCORE) * ((raw - lo).astype(np.float64) / float(hi - lo))).astype(np.int64)


def inter_pod_affinity_raw(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray, *,
                           hard_pod_affinity_weight: int = HARD_POD_AFFINITY_WEIGHT) -> Optional[np.ndarray]:
    """PreScore + Score over the candidate slots, before NormalizeScore (None: no term scores anything)."""
    k = len(cand)
    n = table.size
    index = table.pod_index
    topo = _TopologyScore(table)
    affinity = pod.affinity
    if affinity is not None:
        for weighted, sign in ((affinity.preferred_affinity, 1), (affinity.preferred_anti_affinity, -1)):
            for w in weighted:
                counts = index.counts(Matcher((incoming_clause(table, w.term),)))[:n]
                topo.add_counts(w.term.topology_key, counts, w.weight * sign)
    ns_labels = table.objects.labels_of_namespace(pod.namespace)
    for group in list(index.groups.values()):
        a = group.affinity
        if not (a.required_affinity or a.preferred_affinity or a.preferred_anti_affinity):
            continue
        for term in a.required_affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                topo.add_group(term.topology_key, group, hard_pod_affinity_weight)
        for weighted, sign in ((a.preferred_affinity, 1), (a.preferred_anti_affinity, -1)):
            for w in weighted:
                if w.term.matches(pod.namespace, pod.labels, ns_labels):
                    topo.add_group(w.term.topology_key, group, w.weight * sign)
    if not topo.touched or k == 0:
        return None
    raw = np.zeros(k, dtype=np.int64)
    for key, row in topo.by_key.items():
        col = _column(table, key)
        assert col is not None
        raw += _in_domains(col[cand], row)
    return raw
