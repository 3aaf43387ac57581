"""DefaultPreemption (v1.32): when no node fits, find the node where evicting lower-priority pods makes room.

As `preemption.Evaluator.Preempt` with DefaultPreemption's victim selection:

1. Eligibility: a pod with `preemptionPolicy: Never` does not preempt; nor
   does one whose nominated node still has a lower-priority pod terminating
   after an earlier preemption (unless that node is now unresolvable).
2. Candidates are the nodes whose filter status is Unschedulable (not
   UnschedulableAndUnresolvable); from a random offset, as many as
   max(10 % of them, 100) are dry-run, stopping once enough are found and
   one of them violates no PodDisruptionBudget.
3. On a node: remove every pod of lower priority; if the pod fits then,
   reprieve them from the most important down (higher priority, then the
   earlier start), the PDB-violating ones first, keeping those whose return
   still lets the pod fit; the others are the victims.
4. The node: fewest PDB violations, then the lowest highest-victim
   priority, the smallest priority sum, the fewest victims, the latest
   start among the highest-priority victims, then the first.

The dry run changes the node table (victims removed and put back) and runs
the filters over it (`Algorithm.fits`, nominated pods of no lower priority
included), so every plugin sees the node as it would be; the table is as
before when `preempt` returns. The caller deletes the victims, clears the
nominations of less important pods on the node and nominates it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .algorithm import UNRESOLVABLE, UNSCHEDULABLE, Algorithm, fit_error_message
from .labels import Selector, SelectorError, selector_from
from .nodetable import NodeTable, PlacedPod
from .podspec import PodSpecInfo

__all__ = ["Candidate", "Pdb", "Preemptor", "REASON_NOT_HELPFUL", "REASON_NO_VICTIMS", "pdb_from",
           "MIN_CANDIDATE_NODES_PERCENTAGE", "MIN_CANDIDATE_NODES_ABSOLUTE"]

REASON_NOT_HELPFUL = "Preemption is not helpful for scheduling"
REASON_NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
#: DefaultPreemptionArgs defaults.
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
MAX_INT32 = 2**31 - 1
#: A pod without status.startTime counts as started now (util.GetPodStartTime): later than any RFC 3339 time.
NOT_STARTED = "9999"


@dataclass(frozen=True)
class Pdb:
    namespace: str
    selector: Selector
    disruptions_allowed: int
    disrupted_pods: FrozenSet[str]


def pdb_from(obj: Mapping[str, Any]) -> Pdb:
    """What victim selection reads from a policy/v1 PodDisruptionBudget."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    try:
        selector = selector_from(spec.get("selector"))
    except SelectorError:
        selector = Selector(nothing=True)
    return Pdb(str(meta.get("namespace", "")), selector, int(status.get("disruptionsAllowed") or 0),
               frozenset((status.get("disruptedPods") or {}).keys()))


@dataclass
class Candidate:
    slot: int
    node: str
    #: Most important first.
    victims: List[PlacedPod]
    pdb_violations: int


class Preemptor:
    def __init__(self, table: NodeTable, algorithm: Algorithm, *, rng: Optional[random.Random] = None,
                 start_time: Optional[Callable[[PlacedPod], str]] = None) -> None:
        self.table = table
        self.algorithm = algorithm
        self.rng = rng or random.Random()
        self._start_time = start_time or (lambda p: p.info.start_time)

    # -- the evaluator ----------------------------------------------------------------------------

    def eligible(self, pod: PodSpecInfo, codes: np.ndarray) -> Tuple[bool, str]:
        """PodEligibleToPreemptOthers."""
        if pod.preemption_policy == "Never":
            return False, NOT_ELIGIBLE_NEVER
        nominated = pod.nominated_node_name
        slot = self.table.index.get(nominated) if nominated else None
        if slot is not None:
            if codes[slot] == UNRESOLVABLE:
                return True, ""
            for placed in self.table.pods.values():
                if placed.slot == slot and placed.info.priority < pod.priority and placed.info.preempted_by_scheduler:
                    return False, NOT_ELIGIBLE_TERMINATING
        return True, ""

    def preempt(self, pod: PodSpecInfo, codes: np.ndarray, pdbs: Sequence[Pdb] = ()) -> Tuple[Optional[Candidate], str]:
        """The chosen candidate, or None and the message (without the "preemption: " prefix)."""
        ok, why = self.eligible(pod, codes)
        if not ok:
            return None, why
        table = self.table
        potential = [int(s) for s in np.flatnonzero(codes == UNSCHEDULABLE)]
        if not potential:
            return None, fit_error_message(table.count, {REASON_NOT_HELPFUL: table.count})
        offset = self.rng.randrange(len(potential))
        wanted = self.num_candidates(len(potential))
        by_slot: Dict[int, List[PlacedPod]] = {}
        for placed in table.pods.values():
            if placed.slot is not None and placed.info.priority < pod.priority:
                by_slot.setdefault(placed.slot, []).append(placed)
        if not by_slot:
            # No lower-priority pod anywhere: every node's dry run would find no victims.
            counts = {REASON_NO_VICTIMS: len(potential), REASON_NOT_HELPFUL: table.count - len(potential)}
            return None, fit_error_message(table.count, {r: n for r, n in counts.items() if n})
        non_violating: List[Candidate] = []
        violating: List[Candidate] = []
        statuses: Dict[str, int] = {}
        for i in range(len(potential)):
            slot = potential[(offset + i) % len(potential)]
            found, reasons = self.select_victims(pod, slot, by_slot.get(slot, []), pdbs)
            if found is None:
                for reason in reasons:
                    statuses[reason] = statuses.get(reason, 0) + 1
                continue
            (violating if found.pdb_violations else non_violating).append(found)
            if non_violating and len(non_violating) + len(violating) >= wanted:
                break
        candidates = non_violating + violating
        if not candidates:
            absent = table.count - len(potential)
            if absent:
                statuses[REASON_NOT_HELPFUL] = statuses.get(REASON_NOT_HELPFUL, 0) + absent
            return None, fit_error_message(table.count, statuses)
        return self.pick(candidates), ""

    @staticmethod
    def num_candidates(nodes: int) -> int:
        n = nodes * MIN_CANDIDATE_NODES_PERCENTAGE // 100
        return min(max(n, MIN_CANDIDATE_NODES_ABSOLUTE), nodes)

    # -- one node ---------------------------------------------------------------------------------

    def _importance(self, placed: PlacedPod) -> Tuple[int, str]:
        return -placed.info.priority, self._start_time(placed) or NOT_STARTED

    def select_victims(self, pod: PodSpecInfo, slot: int, on_node: List[PlacedPod],
                       pdbs: Sequence[Pdb]) -> Tuple[Optional[Candidate], List[str]]:
        """SelectVictimsOnNode as a dry run on the table (restored before returning)."""
        table = self.table
        node = table.names[slot]
        potential = [p for p in on_node if p.info.priority < pod.priority]
        if not potential:
            return None, [REASON_NO_VICTIMS]
        for p in potential:
            table.remove_pod(p.info.key)
        try:
            if not self.algorithm.fits(pod, slot):
                return None, self.algorithm.node_reasons(pod, slot)
            potential.sort(key=self._importance)
            violating, non_violating = _split_by_pdb(potential, pdbs)
            victims: List[PlacedPod] = []
            violations = 0
            for group, counts in ((violating, True), (non_violating, False)):
                for p in group:
                    table.add_pod(p.info, node, assumed=p.assumed)
                    if not self.algorithm.fits(pod, slot):
                        table.remove_pod(p.info.key)
                        victims.append(p)
                        violations += counts
            if violating and non_violating:
                victims.sort(key=self._importance)
            return Candidate(slot, node, victims, violations), []
        finally:
            for p in potential:
                if p.info.key not in table.pods:
                    table.add_pod(p.info, node, assumed=p.assumed)

    # -- the node ---------------------------------------------------------------------------------

    def pick(self, candidates: List[Candidate]) -> Candidate:
        """pickOneNodeForPreemption's criteria in order; the first of the remaining ties."""
        if len(candidates) == 1:
            return candidates[0]

        def earliest_of_highest(c: Candidate) -> str:
            top = c.victims[0].info.priority
            return min(self._start_time(v) or NOT_STARTED for v in c.victims if v.info.priority == top)

        scores: List[Callable[[Candidate], Any]] = [
            lambda c: -c.pdb_violations,
            lambda c: -c.victims[0].info.priority,
            lambda c: -sum(v.info.priority + MAX_INT32 + 1 for v in c.victims),
            lambda c: -len(c.victims),
            earliest_of_highest,
        ]
        remaining = candidates
        for score in scores:
            values = [score(c) for c in remaining]
            best = max(values)
            remaining = [c for c, v in zip(remaining, values) if v == best]
            if len(remaining) == 1:
                break
        return remaining[0]


def _split_by_pdb(pods: List[PlacedPod], pdbs: Sequence[Pdb]) -> Tuple[List[PlacedPod], List[PlacedPod]]:
    """filterPodsWithPDBViolation: order kept; a pod whose matching PDB's budget goes below zero violates."""
    allowed = [p.disruptions_allowed for p in pdbs]
    violating: List[PlacedPod] = []
    non_violating: List[PlacedPod] = []
    for placed in pods:
        info = placed.info
        violated = False
        if info.labels:
            for i, pdb in enumerate(pdbs):
                if pdb.namespace != info.namespace or pdb.selector.empty or not pdb.selector.matches(info.labels):
                    continue
                if info.name in pdb.disrupted_pods:
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(placed)
    return violating, non_violating
