"""One scheduling cycle's algorithm: filter every node, score the feasible ones found, pick the best.

As `schedulePod` (v1.32): the feasible nodes are taken in node order
from a start index that moves on each cycle, until
`num_feasible_nodes_to_find` of them are found (`percentageOfNodesToScore`,
adaptive by default: 50% - nodes/125, at least 5%, at least 100 nodes);
only those are scored. Filters run vectorised (numpy) over windows of
consecutive slots from the start index, each window sized from the share
of nodes the last cycle found feasible, until one more than that many
are found or every node was filtered: with 100K nodes a cycle filters
the ~5K it takes, not all of them (upstream likewise stops its parallel
search once it has enough). One feasible node is
chosen without scoring. Among equal best totals the choice is uniformly
random, as `selectHost`'s reservoir sampling makes it.

When no node fits, `FitError.message` is upstream's: `0/N nodes are
available: ` then each reason with its node count, sorted as strings,
joined by ", ", then ".".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .nodetable import NodeTable
from .plugins import WINDOWED_FILTERS
from .podspec import PodSpecInfo
from .profile import DEFAULT_PROFILE, Profile, score_nodes, unresolvable
from .scorecache import ResourceScoreCache

__all__ = ["Algorithm", "filter_failures", "ScheduleResult", "FitError", "NoNodesAvailableError", "num_feasible_nodes_to_find", "fit_error_message",
           "FEASIBLE", "UNSCHEDULABLE", "UNRESOLVABLE"]

#: Per-node status codes (framework.Code): fits, fails (preemption may help), fails whatever is removed.
FEASIBLE, UNSCHEDULABLE, UNRESOLVABLE = 0, 1, 2
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def num_feasible_nodes_to_find(percentage_of_nodes_to_score: int, num_all_nodes: int) -> int:
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    percentage = percentage_of_nodes_to_score
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    found = num_all_nodes * percentage // 100
    return max(found, MIN_FEASIBLE_NODES_TO_FIND)


def fit_error_message(num_all_nodes: int, reasons: Dict[str, int]) -> str:
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{num_all_nodes} nodes are available: " + ", ".join(parts) + "."


class FitError(Exception):
    """No node passes the filters; `reasons` counts nodes per reason (a node may count under several)."""

    def __init__(self, pod: PodSpecInfo, num_all_nodes: int, reasons: Dict[str, int]) -> None:
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.reasons = reasons
        self.message = fit_error_message(num_all_nodes, reasons)
        super().__init__(self.message)


class NoNodesAvailableError(Exception):
    """The cluster has no nodes at all (upstream's ErrNoNodesAvailable: a SchedulerError, not Unschedulable)."""


@dataclass
class ScheduleResult:
    node: str
    slot: int
    evaluated_nodes: int
    feasible_nodes: int


def filter_failures(table: NodeTable, profile: Profile, pod: PodSpecInfo, remaining: np.ndarray) -> Dict[str, int]:
    """Per reason, how many of the `remaining` slots (a mask, consumed) failed with it, each slot charged to the
    first of the profile's filters it fails."""
    counts: Dict[str, int] = {}
    pod = profile.for_pod(table, pod)
    for _, plugin in profile.filters:
        result = plugin(table, pod)
        if result is None:
            continue
        ok, reasons = result
        fail = remaining & ~ok
        if fail.any():
            for reason, mask in reasons(fail):
                hit = int(np.count_nonzero(mask & fail))
                if hit:
                    counts[reason] = counts.get(reason, 0) + hit
        remaining &= ok
    return counts


class Algorithm:
    def __init__(self, table: NodeTable, *, percentage_of_nodes_to_score: int = 0,
                 rng: Optional[random.Random] = None, profiles: Optional[Mapping[str, Profile]] = None) -> None:
        if not 0 <= percentage_of_nodes_to_score <= 100:
            raise ValueError(f"percentageOfNodesToScore must be in 0..100, got {percentage_of_nodes_to_score}")
        self.table = table
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        #: schedulerName -> its profile; a pod of a name not here gets the default profile.
        self.profiles: Mapping[str, Profile] = dict(profiles or {})
        self.next_start_node_index = 0
        #: Pending pods with status.nominatedNodeName: key -> (the pod, its nominated node).
        self.nominated: Dict[str, Tuple[PodSpecInfo, str]] = {}
        #: The share of the nodes the last cycle's windows found feasible: sizes the next cycle's first window.
        self._feasible_share = 1.0
        #: Resource scores per slot, kept for pods of the same requests (equivalence classes) across cycles.
        self.score_cache = ResourceScoreCache(table)

    def profile(self, pod: PodSpecInfo) -> Profile:
        return self.profiles.get(pod.scheduler_name, DEFAULT_PROFILE)

    def _filtered(self, pod: PodSpecInfo, window: Optional[slice] = None) -> np.ndarray:
        """Slots passing every filter (over `window` only, when given: a slice of slots)."""
        table = self.table
        sel = window if window is not None else slice(0, table.size)
        ok = table.valid[sel].copy()
        profile = self.profile(pod)
        pod = profile.for_pod(table, pod)
        for _, plugin in profile.filters:
            if plugin in WINDOWED_FILTERS:
                result = plugin(table, pod, sel)
                if result is not None:
                    ok &= result[0]
            else:
                result = plugin(table, pod)
                if result is not None:
                    ok &= result[0][sel] if window is not None else result[0]
        return ok

    def feasible(self, pod: PodSpecInfo, window: Optional[slice] = None) -> np.ndarray:
        """Slots passing every filter, with and without the pods nominated (by preemption) of no lower priority.

        As RunFilterPluginsWithNominatedPods: a node fits only if it passes
        both ways, so a pod does not take the room preemption freed for a
        more important one. The nominated pods are added on their nodes all
        at once (upstream adds, per node evaluated, those nominated to it).
        Over `window` only, when given.
        """
        ok = self._filtered(pod, window)
        if not self.nominated or not ok.any():
            return ok
        table = self.table
        added = []
        try:
            for key, (info, node) in self.nominated.items():
                if key != pod.key and info.priority >= pod.priority and key not in table.pods and node in table.index:
                    table.add_pod(info, node, assumed=True)
                    added.append(key)
            if added:
                ok &= self._filtered(pod, window)
        finally:
            for key in added:
                table.remove_pod(key)
        return ok

    def diagnose(self, pod: PodSpecInfo) -> Dict[str, int]:
        """Per reason, how many nodes failed with it (each node charged to the first filter it fails)."""
        table = self.table
        return filter_failures(table, self.profile(pod), pod, table.valid[: table.size].copy())

    def statuses(self, pod: PodSpecInfo) -> np.ndarray:
        """Per slot the framework's status code: FEASIBLE, UNSCHEDULABLE, or UNRESOLVABLE (UnschedulableAndUnresolvable:
        preemption cannot help), from the first filter a node fails, as RunFilterPlugins stops there."""
        table = self.table
        remaining = table.valid[: table.size].copy()
        codes = np.full(table.size, FEASIBLE, dtype=np.int8)
        profile = self.profile(pod)
        pod = profile.for_pod(table, pod)
        for _, plugin in profile.filters:
            result = plugin(table, pod)
            if result is None:
                continue
            ok, reasons = result
            fail = remaining & ~ok
            if fail.any():
                codes[fail] = UNSCHEDULABLE
                for reason, mask in reasons(fail):
                    if unresolvable(reason):
                        codes[mask & fail] = UNRESOLVABLE
            remaining &= ok
        codes[~table.valid[: table.size]] = UNRESOLVABLE
        return codes

    def node_reasons(self, pod: PodSpecInfo, slot: int) -> List[str]:
        """The reasons of the first filter `slot` fails ([] when it fits)."""
        table = self.table
        profile = self.profile(pod)
        pod = profile.for_pod(table, pod)
        for _, plugin in profile.filters:
            result = plugin(table, pod)
            if result is None or result[0][slot]:
                continue
            fail = np.zeros(table.size, dtype=bool)
            fail[slot] = True
            return [reason for reason, mask in result[1](fail) if mask[slot]]
        return []

    def fits(self, pod: PodSpecInfo, slot: int) -> bool:
        return bool(self.feasible(pod, slice(slot, slot + 1))[0])

    def _feasible_from(self, pod: PodSpecInfo, start: int, enough: int) -> np.ndarray:
        """Feasible slots in node order from `start` (wrapping), filtering window by window until `enough` are
        found or every slot was filtered; the same slots, in the same order, as filtering every node would give
        up to the `enough`-th."""
        size = self.table.size
        found: List[np.ndarray] = []
        count = scanned = 0
        # Slots filtered per feasible one found, from the last cycle, with a margin; at least 64 so a nearly full
        # cluster does not take a window per node.
        window = max(64, int(enough / max(self._feasible_share, 1e-3) * 1.25))
        for lo, end in ((start, size), (0, start)):
            while lo < end and count < enough:
                hi = min(lo + window, end)
                ok = self.feasible(pod, slice(lo, hi))
                slots = np.flatnonzero(ok)
                if len(slots):
                    found.append(slots + lo)
                    count += len(slots)
                scanned += hi - lo
                lo = hi
                window *= 2  # too few: the cluster is fuller than the last cycle saw
        if scanned:
            self._feasible_share = max(count / scanned, 1e-3)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def schedule(self, pod: PodSpecInfo) -> ScheduleResult:
        """The node for `pod`, or raise FitError."""
        table = self.table
        num_nodes = table.count
        if num_nodes == 0:
            raise NoNodesAvailableError("no nodes available to schedule pods")
        nominated = table.index.get(pod.nominated_node_name) if pod.nominated_node_name else None
        if nominated is not None and self.feasible(pod, slice(nominated, nominated + 1))[0]:
            # evaluateNominatedNode: the node preemption made room on is taken when it fits.
            return ScheduleResult(table.names[nominated], nominated, 1, 1)
        size = table.size
        start = self.next_start_node_index % size
        profile = self.profile(pod)
        percentage = profile.percentage_of_nodes_to_score
        want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score if percentage is None else percentage,
                                          num_nodes)
        ordered = self._feasible_from(pod, start, want + 1)
        if len(ordered) == 0:
            raise FitError(pod, num_nodes, self.diagnose(pod))
        if len(ordered) > want:
            cand = ordered[:want]
            processed = int((cand[-1] - start) % size) + 1
        else:
            cand = ordered
            processed = size
        self.next_start_node_index = (start + processed) % size
        if len(cand) == 1:
            slot = int(cand[0])
        else:
            totals = score_nodes(table, profile.for_pod(table, pod), cand, profile, self.score_cache)
            best = np.flatnonzero(totals == totals.max())
            slot = int(cand[best[self.rng.randrange(len(best))]])
        return ScheduleResult(table.names[slot], slot, processed, len(cand))
