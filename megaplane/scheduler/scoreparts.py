"""A score split where normalisation needs every candidate: raw parts per shard, totals over their union.

`profile.score_nodes` totals the score plugins over one scheduler's
candidates. Four of them normalise over those candidates
(DefaultNormalizeScore for TaintToleration and NodeAffinity: divide by
the max; PodTopologySpread: `max + min - s` over `max`, its constraint
weights `log(domains + 2)` counted over the scored candidates;
InterPodAffinity: `(s - min) / (max - min)`), so a shard that sees only
some of the candidates cannot finish them: the same raw score normalises
differently over another set, and the weighted sums of normalised scores
do not even rank nodes the same way. NodeResourcesFit and
BalancedAllocation depend on the node alone.

So a shard computes `score_parts` over its candidates: the node-only
plugins already weighted and summed, and for the others what their
normalisation needs (raw counts and scores, PodTopologySpread's per
constraint domain ids). `ScoreParts.join` concatenates the shards' parts
and `totals` finishes them over the union with the profile's weights, the
same arithmetic in the same order as `score_nodes`: over one candidate
set split any way, `totals(join(parts))` equals `score_nodes` exactly
(tests/scheduler/test_shards.py checks it). Sending the parts of every
candidate rather than a top-k is what makes that hold: a candidate that
ranks low under its shard's own normalisation may win under the union's.
The parts are a few int64 columns per candidate (percentageOfNodesToScore
keeps that to the adaptive 5-50% of the nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from .interpodaffinity import inter_pod_affinity_normalize, inter_pod_affinity_raw
from .nodetable import NodeTable
from .plugins import balanced_allocation, node_affinity_score, normalize, taint_toleration_score
from .podspec import PodSpecInfo
from .profile import DEFAULT_PROFILE, Profile, ResourceScores, fit_score
from .topologyspread import SpreadScoreParts, spread_score_finish, spread_score_parts

__all__ = ["ScoreParts", "score_parts", "totals"]


@dataclass
class ScoreParts:
    """The raw scores of some candidate slots (see the module docstring); None: the plugin scores nothing."""

    #: The candidate slots, in the order of every column below.
    slots: np.ndarray
    #: NodeResourcesFit and NodeResourcesBalancedAllocation, weighted and summed (they do not normalise).
    fixed: np.ndarray
    taint: Optional[np.ndarray]
    node_affinity: Optional[np.ndarray]
    spread: Optional[SpreadScoreParts]
    inter_pod: Optional[np.ndarray]
    #: Per row, how many candidates it stands for (None: one each); see `compact`.
    multiplicity: Optional[np.ndarray] = None

    def compact(self, slot: int) -> Optional["ScoreParts"]:
        """One row standing for every candidate of the best `fixed`, as `slot` (one of them), when that changes
        no union's totals or their ties: no spreading parts (their weights count candidates) and every
        normalising column constant over these candidates, so their maxima and minima, all a normalisation of
        the union reads from them, are the one row's; and the others, lower by `fixed` alone, never win. None
        when that does not hold."""
        if self.spread is not None:
            return None
        columns = (self.taint, self.node_affinity, self.inter_pod)
        if any(c is not None and len(c) and (c != c[0]).any() for c in columns):
            return None
        top = self.fixed.max()
        count = int(np.count_nonzero(self.fixed == top))
        at = np.flatnonzero(self.slots == slot)

        def one(c: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if c is None else c[at]

        return ScoreParts(self.slots[at], self.fixed[at], one(self.taint), one(self.node_affinity), None,
                          one(self.inter_pod), np.array([count], dtype=np.int64))

    def weights(self) -> np.ndarray:
        return self.multiplicity if self.multiplicity is not None else np.ones(len(self.slots), dtype=np.int64)

    def __reduce__(self) -> Any:
        # One int64 matrix for the columns (a shard sends a set per pod: one array unpickles much faster than 5).
        optional = (self.taint, self.node_affinity, self.inter_pod, self.multiplicity)
        present = tuple(c is not None for c in optional)
        columns = [self.slots, self.fixed] + [c for c in optional if c is not None]
        return _unpack, (np.vstack(columns).astype(np.int64, copy=False), present, self.spread)

    @staticmethod
    def join(parts: List["ScoreParts"]) -> "ScoreParts":
        """One set of parts over every candidate of `parts` (all computed for the same pod and profile)."""
        parts = [p for p in parts if len(p.slots)]
        if len(parts) == 1:
            return parts[0]

        def column(name: str) -> Optional[np.ndarray]:
            cols = [getattr(p, name) for p in parts]
            if all(c is None for c in cols):
                return None
            return np.concatenate([c if c is not None else np.zeros(len(p.slots), dtype=np.int64)
                                   for c, p in zip(cols, parts)])

        spreads = [p.spread for p in parts]
        spread = None
        if any(s is not None for s in spreads):
            # A pod's soft constraints are the same in every shard: either all have them or none has candidates.
            spread = SpreadScoreParts.join([s for s in spreads if s is not None])
        multiplicity = None
        if any(p.multiplicity is not None for p in parts):
            multiplicity = np.concatenate([p.weights() for p in parts])
        return ScoreParts(np.concatenate([p.slots for p in parts]), np.concatenate([p.fixed for p in parts]),
                          column("taint"), column("node_affinity"), spread, column("inter_pod"), multiplicity)


def _unpack(matrix: np.ndarray, present: Tuple[bool, ...], spread: Optional[SpreadScoreParts]) -> ScoreParts:
    rows = iter(matrix[2:])
    taint, affinity, inter, multiplicity = (next(rows) if has else None for has in present)
    return ScoreParts(matrix[0], matrix[1], taint, affinity, spread, inter, multiplicity)


def score_parts(table: NodeTable, pod: PodSpecInfo, cand: np.ndarray, profile: Optional[Profile] = None,
                cache: Optional[ResourceScores] = None) -> ScoreParts:
    """The parts of `score_nodes` over `cand` that need no other candidate."""
    p = profile if profile is not None else DEFAULT_PROFILE
    weights = p.score_weights
    fixed = np.zeros(len(cand), dtype=np.int64)
    fit = balanced = None
    if cache is not None and p.scoring_strategy == DEFAULT_PROFILE.scoring_strategy:
        fit, balanced = cache.scores(pod, cand)
    if "NodeResourcesFit" in weights:
        if fit is None:
            fit = fit_score(table, pod, cand, p.scoring_strategy)
        fixed += fit * weights["NodeResourcesFit"]
    if "NodeResourcesBalancedAllocation" in weights:
        if balanced is None:
            balanced = balanced_allocation(table, pod, cand)
        fixed += balanced * weights["NodeResourcesBalancedAllocation"]
    taint = taint_toleration_score(table, pod, cand) if "TaintToleration" in weights else None
    affinity = node_affinity_score(table, pod, cand) if pod.preferred_terms and "NodeAffinity" in weights else None
    spread = spread_score_parts(table, pod, cand) if "PodTopologySpread" in weights else None
    inter = inter_pod_affinity_raw(table, pod, cand, hard_pod_affinity_weight=p.hard_pod_affinity_weight) \
        if "InterPodAffinity" in weights else None
    return ScoreParts(np.asarray(cand, dtype=np.int64), fixed, taint, affinity, spread, inter)


def totals(parts: ScoreParts, profile: Optional[Profile] = None) -> np.ndarray:
    """The weighted total per candidate of `parts`, normalised over all of them (as `score_nodes`)."""
    p = profile if profile is not None else DEFAULT_PROFILE
    weights = p.score_weights
    total = parts.fixed.copy()
    if parts.taint is not None:
        total += normalize(parts.taint, reverse=True) * weights["TaintToleration"]
    if parts.node_affinity is not None:
        total += normalize(parts.node_affinity) * weights["NodeAffinity"]
    if parts.spread is not None:
        total += spread_score_finish(parts.spread) * weights["PodTopologySpread"]
    if parts.inter_pod is not None:
        total += inter_pod_affinity_normalize(parts.inter_pod) * weights["InterPodAffinity"]
    return total
