"""kube-scheduler's default filter and score plugins (v1.32), each vectorised over every slot of a NodeTable.

Filters return a boolean array over the table's slots (True: the node
passes) and, for the nodes that fail, upstream's reason strings; the
framework runs them in upstream's order and charges each node to the
first plugin it fails, as `RunFilterPlugins` stops at the first failure.
The per-node filters (`WINDOWED_FILTERS`) also take a window, a slice of
slots, and answer over it alone: a scheduling cycle filters only as many
nodes as it needs to find its `percentageOfNodesToScore` share, as
upstream stops once it has found enough, instead of every node.
Scores take the candidate slots and return int64 arrays with upstream's
integer arithmetic; `normalize` is `DefaultNormalizeScore`.

PodTopologySpread, InterPodAffinity and DefaultPreemption have modules of
their own (`topologyspread`, `interpodaffinity`, `preemption`); `profile`
puts the filters and scores in upstream's order with upstream's weights.
Not here: ImageLocality (the fleet's nodes report no images, so it would
score 0 everywhere), volume plugins.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .nodetable import NodeTable, Taint
from .podspec import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    NodeSelectorTerm,
    PodSpecInfo,
    Requirement,
    Toleration,
)

__all__ = [
    "MAX_NODE_SCORE", "Filter", "FilterResult",
    "node_unschedulable", "node_name", "taint_toleration", "node_affinity", "node_ports", "node_resources_fit",
    "least_allocated", "balanced_allocation", "least_allocated_at", "balanced_allocation_at", "taint_toleration_score", "node_affinity_score", "normalize",
    "match_term", "WINDOWED_FILTERS", "resource_fit_checks",
]

MAX_NODE_SCORE = 100

# Upstream's reason strings (each plugin's ErrReason).
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_NAME = "node(s) didn't match the requested node name"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

#: (ok over all slots, reasons for failing slots: reason -> slots mask); None: the plugin has nothing to check.
FilterResult = Tuple[np.ndarray, Callable[[np.ndarray], List[Tuple[str, np.ndarray]]]]
Filter = Callable[[NodeTable, PodSpecInfo], Optional[FilterResult]]


def _window(table: NodeTable, window: Optional[slice]) -> Tuple[slice, int, int]:
    """(the window, its first slot, its length); None is every slot. A window may have a step (a scheduler
    shard's slots, `shard`): use `_position` to find a slot in it."""
    if window is None:
        return slice(0, table.size), 0, table.size
    lo, hi, step = window.indices(table.size)
    if step == 1:
        return window, lo, hi - lo
    return window, lo, len(range(lo, hi, step))


def _position(window: Optional[slice], lo: int, n: int, slot: int) -> Optional[int]:
    """Where `slot` is in a window (its first slot `lo`, length `n`), None when outside it."""
    step = (window.step or 1) if window is not None else 1
    offset = slot - lo
    if offset < 0 or offset % step:
        return None
    position = offset // step
    return position if position < n else None


def _one_reason(reason: str) -> Callable[[np.ndarray], List[Tuple[str, np.ndarray]]]:
    return lambda fail: [(reason, fail)]


# -- filters ------------------------------------------------------------------------------------


def node_unschedulable(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    sel, _, _ = _window(table, window)
    unschedulable = table.unschedulable[sel]
    if not unschedulable.any():
        return None
    if any(t.tolerates(TAINT_UNSCHEDULABLE, "", "NoSchedule") for t in pod.tolerations):
        return None
    return ~unschedulable, _one_reason(REASON_UNSCHEDULABLE)


def node_name(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    if not pod.node_name:
        return None
    _, lo, n = _window(table, window)
    ok = np.zeros(n, dtype=bool)
    slot = table.index.get(pod.node_name)
    at = _position(window, lo, n, slot) if slot is not None else None
    if at is not None:
        ok[at] = True
    return ok, _one_reason(REASON_NODE_NAME)


def _untolerated(taints: Sequence[Taint], tolerations: Tuple[Toleration, ...], effects: Tuple[str, ...]) -> List[Taint]:
    return [t for t in taints if t[2] in effects and not any(tol.tolerates(*t) for tol in tolerations)]


def taint_toleration(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    if len(table.taint_sets) == 1:
        return None  # no node has a taint
    first: List[Optional[Taint]] = []
    for taints in table.taint_sets:
        bad = _untolerated(taints, pod.tolerations, ("NoSchedule", "NoExecute"))
        first.append(bad[0] if bad else None)
    set_ok = np.array([f is None for f in first], dtype=bool)
    if set_ok.all():
        return None
    ids = table.taint_set[_window(table, window)[0]]

    def reasons(fail: np.ndarray) -> List[Tuple[str, np.ndarray]]:
        by_reason: Dict[str, np.ndarray] = {}
        for sid, taint in enumerate(first):
            if taint is None:
                continue
            reason = f"node(s) had untolerated taint {{{taint[0]}: {taint[1]}}}"
            mask = fail & (ids == sid)
            by_reason[reason] = by_reason[reason] | mask if reason in by_reason else mask
        return list(by_reason.items())

    return set_ok[ids], reasons


def _match_requirement(table: NodeTable, req: Requirement, window: Optional[slice] = None) -> np.ndarray:
    sel, _, n = _window(table, window)
    col = table.label_columns.get(req.key)
    op = req.operator
    if col is None:
        # No node has the key: only the operators that accept an absent label match.
        return np.full(n, op in ("NotIn", "DoesNotExist"), dtype=bool)
    col = col[sel]
    if op in ("In", "NotIn"):
        known = table.label_values[req.key]
        ids = [known[v] for v in req.values if v in known]
        hit = np.isin(col, ids) if ids else np.zeros(n, dtype=bool)
        return hit if op == "In" else ~hit
    if op == "Exists":
        return col >= 0
    if op == "DoesNotExist":
        return col < 0
    if op in ("Gt", "Lt"):
        if len(req.values) != 1:
            return np.zeros(n, dtype=bool)
        try:
            bound = int(req.values[0])
        except ValueError:
            return np.zeros(n, dtype=bool)
        nums = table.label_numbers(req.key)
        present = col >= 0
        vals = np.where(present, nums[np.where(present, col, 0)] if len(nums) else np.nan, np.nan)
        with np.errstate(invalid="ignore"):
            return (vals > bound) if op == "Gt" else (vals < bound)
    return np.zeros(n, dtype=bool)


def _match_field(table: NodeTable, req: Requirement, window: Optional[slice] = None) -> np.ndarray:
    _, lo, n = _window(table, window)
    if req.key != "metadata.name" or req.operator not in ("In", "NotIn") or len(req.values) != 1:
        return np.zeros(n, dtype=bool)
    hit = np.zeros(n, dtype=bool)
    slot = table.index.get(req.values[0])
    at = _position(window, lo, n, slot) if slot is not None else None
    if at is not None:
        hit[at] = True
    return hit if req.operator == "In" else ~hit


def match_term(table: NodeTable, term: NodeSelectorTerm, window: Optional[slice] = None) -> np.ndarray:
    """Slots a node selector term matches (its expressions and fields ANDed; an empty term matches none)."""
    _, _, n = _window(table, window)
    if not term.expressions and not term.fields:
        return np.zeros(n, dtype=bool)
    ok = np.ones(n, dtype=bool)
    for req in term.expressions:
        ok &= _match_requirement(table, req, window)
    for req in term.fields:
        ok &= _match_field(table, req, window)
    return ok


def node_affinity(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    if not pod.node_selector and pod.required_terms is None:
        return None
    _, _, n = _window(table, window)
    ok = np.ones(n, dtype=bool)
    for key, val in pod.node_selector.items():
        ok &= _match_requirement(table, Requirement(key, "In", (val,)), window)
    if pod.required_terms is not None:
        any_term = np.zeros(n, dtype=bool)
        for term in pod.required_terms:
            any_term |= match_term(table, term, window)
        ok &= any_term
    return ok, _one_reason(REASON_NODE_AFFINITY)


def node_ports(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    if not pod.host_ports or not table.host_ports:
        return None
    _, lo, n = _window(table, window)
    ok = np.ones(n, dtype=bool)
    for slot, used in table.host_ports.items():
        at = _position(window, lo, n, slot)
        if at is None:
            continue
        for want in pod.host_ports:
            if any(u.port == want.port and u.protocol == want.protocol
                   and (u.ip == want.ip or "0.0.0.0" in (u.ip, want.ip)) for u in used):
                ok[at] = False
                break
    return ok, _one_reason(REASON_NODE_PORTS)


def node_resources_fit(table: NodeTable, pod: PodSpecInfo, window: Optional[slice] = None) -> Optional[FilterResult]:
    sel, _, _ = _window(table, window)
    checks = resource_fit_checks(table, pod, table.allocatable[sel], table.requested[sel])
    bad = checks[0][1].copy()
    for _, mask in checks[1:]:
        bad |= mask
    return ~bad, lambda fail: [(reason, fail & mask) for reason, mask in checks]


def resource_fit_checks(table: NodeTable, pod: PodSpecInfo, alloc: np.ndarray,
                        used: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """NodeResourcesFit's failures, (reason, failing rows) in upstream's order, over rows of allocatable and
    requested (the table's, or preemption's with victims taken off)."""
    n = len(alloc)
    checks: List[Tuple[str, np.ndarray]] = []
    pods_col = table.resource_index[PODS]
    checks.append((REASON_TOO_MANY_PODS, used[:, pods_col] + 1 > alloc[:, pods_col]))
    for rname in (CPU, MEMORY, EPHEMERAL_STORAGE):
        want = pod.requests.get(rname, 0)
        if want > 0:
            col = table.resource_index[rname]
            checks.append((f"Insufficient {rname}", want > alloc[:, col] - used[:, col]))
    for rname, want in pod.requests.items():
        if rname in (CPU, MEMORY, EPHEMERAL_STORAGE, PODS) or want <= 0:
            continue
        ext = table.resource_index.get(rname)
        if ext is None:
            checks.append((f"Insufficient {rname}", np.ones(n, dtype=bool)))
        else:
            checks.append((f"Insufficient {rname}", want > alloc[:, ext] - used[:, ext]))
    return checks


#: The filters that answer over a window of slots (each node judged on its own row alone).
WINDOWED_FILTERS = frozenset({node_unschedulable, node_name, taint_toleration, node_affinity, node_ports,
                              node_resources_fit})


# -- scores -------------------------------------------------------------------------------------

def least_allocated(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """NodeResourcesFit's LeastAllocated over cpu and memory (weight 1 each), on NonZeroRequested."""
    total = np.zeros(len(cand), dtype=np.int64)
    weights = np.zeros(len(cand), dtype=np.int64)
    for i, (rname, pod_req) in enumerate(((CPU, pod.non_zero_cpu), (MEMORY, pod.non_zero_memory))):
        alloc = table.allocatable[cand, table.resource_index[rname]]
        req = table.non_zero[cand, i] + pod_req
        has = alloc != 0
        safe = np.where(has, alloc, 1)
        score = np.where(req > alloc, 0, (alloc - req) * MAX_NODE_SCORE // safe)
        total += np.where(has, score, 0)
        weights += has
    return np.where(weights > 0, total // np.maximum(weights, 1), 0)


def balanced_allocation(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """NodeResourcesBalancedAllocation over cpu and memory, on real requests: (1 - std) * 100, truncated."""
    fractions = []
    present = []
    for rname in (CPU, MEMORY):
        col = table.resource_index[rname]
        alloc = table.allocatable[cand, col]
        req = table.requested[cand, col] + pod.requests.get(rname, 0)
        has = alloc != 0
        frac = np.minimum(req.astype(np.float64) / np.where(has, alloc, 1).astype(np.float64), 1.0)
        fractions.append(frac)
        present.append(has)
    both = present[0] & present[1]
    std = np.where(both, np.abs((fractions[0] - fractions[1]) / 2), 0.0)
    return ((1 - std) * float(MAX_NODE_SCORE)).astype(np.int64)


def least_allocated_at(table: NodeTable, pod: PodSpecInfo, slot: int) -> int:
    """least_allocated for one slot in plain integers (the same arithmetic, without numpy's per-call cost)."""
    total = weights = 0
    for i, (rname, pod_req) in enumerate(((CPU, pod.non_zero_cpu), (MEMORY, pod.non_zero_memory))):
        alloc = int(table.allocatable[slot, table.resource_index[rname]])
        if alloc == 0:
            continue
        req = int(table.non_zero[slot, i]) + pod_req
        total += 0 if req > alloc else (alloc - req) * MAX_NODE_SCORE // alloc
        weights += 1
    return total // weights if weights else 0


def balanced_allocation_at(table: NodeTable, pod: PodSpecInfo, slot: int) -> int:
    """balanced_allocation for one slot in plain floats (IEEE doubles, the same operations in the same order)."""
    fractions = []
    both = True
    for rname in (CPU, MEMORY):
        col = table.resource_index[rname]
        alloc = int(table.allocatable[slot, col])
        req = int(table.requested[slot, col]) + pod.requests.get(rname, 0)
        both = both and alloc != 0
        fractions.append(min(float(req) / float(alloc if alloc != 0 else 1), 1.0))
    std = abs((fractions[0] - fractions[1]) / 2) if both else 0.0
    return int((1 - std) * float(MAX_NODE_SCORE))


def taint_toleration_score(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """Raw TaintToleration score: PreferNoSchedule taints the pod does not tolerate (normalised reversed)."""
    prefer = tuple(t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule"))
    counts = np.array([len(_untolerated(ts, prefer, ("PreferNoSchedule",))) for ts in table.taint_sets],
                      dtype=np.int64)
    out: np.ndarray = counts[table.taint_set[cand]]
    return out


def node_affinity_score(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray) -> np.ndarray:
    """Raw NodeAffinity score: the summed weights of the preferred terms a node matches."""
    total = np.zeros(len(cand), dtype=np.int64)
    for weight, term in pod.preferred_terms:
        total += np.where(match_term(table, term)[cand], weight, 0)
    return total


def normalize(scores: np.ndarray, reverse: bool = False) -> np.ndarray:
    """framework.DefaultNormalizeScore with MaxNodeScore 100."""
    top = int(scores.max()) if len(scores) else 0
    if top == 0:
        return np.full(len(scores), MAX_NODE_SCORE if reverse else 0, dtype=np.int64)
    out = MAX_NODE_SCORE * scores // top
    return MAX_NODE_SCORE - out if reverse else out
