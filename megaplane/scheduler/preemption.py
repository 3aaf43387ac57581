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
from .plugins import resource_fit_checks
from .podspec import PODS, PodSpecInfo
from .topologyspread import DO_NOT_SCHEDULE, constraints_for

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
        resource_only = self._resource_only(pod)
        hopeless = self._hopeless(pod, by_slot) if resource_only else {}
        for i in range(len(potential)):
            slot = potential[(offset + i) % len(potential)]
            if slot in hopeless:
                reasons = hopeless[slot]
                for reason in reasons:
                    statuses[reason] = statuses.get(reason, 0) + 1
                continue
            if resource_only and slot in by_slot:
                found, reasons = self._select_victims_by_resources(pod, slot, by_slot[slot], pdbs)
            else:
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

    def _resource_only(self, pod: PodSpecInfo) -> bool:
        """NodeResourcesFit is the one filter taking pods off a node could change for `pod`: no host ports, no pod
        affinity or DoNotSchedule spreading of its own, no placed pod's required anti-affinity anywhere (the other
        filters read the node alone, and a node failing them is not a potential node)."""
        table = self.table
        profile = self.algorithm.profile(pod)
        seen = profile.for_pod(table, pod)
        affinity = seen.affinity
        return not (seen.host_ports
                    or (affinity is not None and (affinity.required_affinity or affinity.required_anti_affinity))
                    or constraints_for(table, seen, DO_NOT_SCHEDULE)
                    or next(table.pod_index.groups_where("required_anti_affinity"), None) is not None
                    or "NodeResourcesFit" not in profile.filter_names)

    def _hopeless(self, pod: PodSpecInfo, by_slot: Mapping[int, List[PlacedPod]]) -> Dict[int, List[str]]:
        """For a resource-only pod, the nodes whose dry run is known to fail, with the reasons it would give.

        A node that still lacks room with every lower-priority pod gone
        fails its dry run with exactly those resource reasons: computed
        vectorised here for all nodes instead of one dry run per node (a pod
        that fits nowhere, Unschedulable's churn, cost ~37 us per node).
        Nodes without lower-priority pods are left to select_victims (their
        reason is "no victims").
        """
        table = self.table
        seen = self.algorithm.profile(pod).for_pod(table, pod)
        slots = np.fromiter(by_slot.keys(), dtype=np.int64, count=len(by_slot))
        if len(slots) == 0:
            return {}
        freed = np.zeros((len(slots), len(table.resources)), dtype=np.int64)
        pods_col = table.resource_index[PODS]
        for row, slot in enumerate(slots.tolist()):
            for placed in by_slot[slot]:
                for rname, amount in placed.info.requests.items():
                    col = table.resource_index.get(rname)
                    if col is not None:
                        freed[row, col] += amount
                freed[row, pods_col] += 1
        checks = resource_fit_checks(table, seen, table.allocatable[slots], table.requested[slots] - freed)
        failing = np.zeros(len(slots), dtype=bool)
        for _, mask in checks:
            failing |= mask
        out: Dict[int, List[str]] = {}
        for row in np.flatnonzero(failing).tolist():
            out[int(slots[row])] = [reason for reason, mask in checks if mask[row]]
        return out

    def _select_victims_by_resources(self, pod: PodSpecInfo, slot: int, on_node: List[PlacedPod],
                                     pdbs: Sequence[Pdb]) -> Tuple[Optional[Candidate], List[str]]:
        """select_victims for a resource-only pod in plain integers: the same removal of every lower-priority pod,
        the same reprieves in the same order (PDB-violating first, most important first), each judged by whether
        the pod's requests fit the node's room with the nominated pods of no lower priority counted, as
        Algorithm.fits judges NodeResourcesFit; no table changes, no filter runs."""
        table = self.table
        potential = [p for p in on_node if p.info.priority < pod.priority]
        if not potential:
            return None, [REASON_NO_VICTIMS]
        seen = self.algorithm.profile(pod).for_pod(table, pod)
        index = table.resource_index
        wanted = {PODS: 1}
        for rname, amount in seen.requests.items():
            if amount > 0 and rname != PODS:
                wanted[rname] = amount
        room: Dict[str, int] = {}
        for rname in wanted:
            col = index.get(rname)
            room[rname] = 0 if col is None else int(table.allocatable[slot, col]) - int(table.requested[slot, col])
        node = table.names[slot]
        for key, (info, nominated_node) in self.algorithm.nominated.items():
            if nominated_node == node and key != pod.key and info.priority >= pod.priority and key not in table.pods:
                for rname in wanted:
                    room[rname] -= 1 if rname == PODS else info.requests.get(rname, 0)

        def uses(p: PlacedPod, rname: str) -> int:
            return 1 if rname == PODS else p.info.requests.get(rname, 0)

        for p in potential:
            for rname in wanted:
                room[rname] += uses(p, rname)
        if any(wanted[r] > room[r] for r in wanted) or any(index.get(r) is None for r in wanted):
            return None, self._resource_reasons(seen, slot, potential)

        def reprieved(p: PlacedPod) -> bool:
            if any(wanted[r] > room[r] - uses(p, r) for r in wanted):
                return False
            for r in wanted:
                room[r] -= uses(p, r)
            return True

        victims, violations = self._reprieve(potential, pdbs, reprieved)
        return Candidate(slot, node, victims, violations), []

    def _reprieve(self, potential: List[PlacedPod], pdbs: Sequence[Pdb],
                  reprieved: Callable[[PlacedPod], bool]) -> Tuple[List[PlacedPod], int]:
        """The victims and their PDB violations, from all of `potential` taken off: each pod, PDB-violating ones
        first and most important first, is given back if `reprieved` (which puts it back) says the preemptor still
        fits."""
        potential.sort(key=self._importance)
        violating, non_violating = _split_by_pdb(potential, pdbs)
        victims: List[PlacedPod] = []
        violations = 0
        for group, counts in ((violating, True), (non_violating, False)):
            for p in group:
                if not reprieved(p):
                    victims.append(p)
                    violations += counts
        if violating and non_violating:
            victims.sort(key=self._importance)
        return victims, violations

    def _resource_reasons(self, pod: PodSpecInfo, slot: int, removed: List[PlacedPod]) -> List[str]:
        """NodeResourcesFit's reasons on `slot` with `removed` taken off (what the dry run's node_reasons gives)."""
        table = self.table
        freed = np.zeros((1, len(table.resources)), dtype=np.int64)
        for placed in removed:
            for rname, amount in placed.info.requests.items():
                col = table.resource_index.get(rname)
                if col is not None:
                    freed[0, col] += amount
            freed[0, table.resource_index[PODS]] += 1
        rows = slice(slot, slot + 1)
        checks = resource_fit_checks(table, pod, table.allocatable[rows], table.requested[rows] - freed)
        return [reason for reason, mask in checks if mask[0]]

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

            def reprieved(p: PlacedPod) -> bool:
                table.add_pod(p.info, node, assumed=p.assumed)
                if self.algorithm.fits(pod, slot):
                    return True
                table.remove_pod(p.info.key)
                return False

            victims, violations = self._reprieve(potential, pdbs, reprieved)
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
