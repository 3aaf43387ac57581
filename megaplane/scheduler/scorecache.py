"""Per-slot resource scores kept across scheduling cycles for pods asking for the same resources.

NodeResourcesFit's LeastAllocated and NodeResourcesBalancedAllocation
score each node from that node's resource row and the pod's requests
alone, with no normalisation over the candidates. So for one set of
requests (one ReplicaSet's pods: an equivalence class) the score of a
node changes only when that node's row does: the cache keeps both scores
for every slot, and before each use recomputes the slots the table's
resource journal lists since its last use (usually the one node the
previous pod was placed on). The scores handed out are the same integers
computing them afresh would give; only the work moves from every
candidate per cycle to the changed slots.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Tuple

import numpy as np

from .nodetable import NodeTable
from .plugins import balanced_allocation, balanced_allocation_at, least_allocated, least_allocated_at
from .podspec import CPU, MEMORY, PodSpecInfo

__all__ = ["ResourceScoreCache"]

#: Up to this many changed slots are rescored one by one in plain Python, more at once with numpy.
SCALAR_SLOTS = 16
#: (non-zero cpu, non-zero memory, cpu request, memory request): what the two scores read of a pod.
RequestKey = Tuple[int, int, int, int]


class _Entry:
    __slots__ = ("epoch", "position", "fit", "balanced")

    def __init__(self, epoch: int, position: int, fit: np.ndarray, balanced: np.ndarray) -> None:
        self.epoch = epoch
        self.position = position
        self.fit = fit
        self.balanced = balanced


class ResourceScoreCache:
    """LeastAllocated and BalancedAllocation scores per slot, per request signature (a few most recent ones)."""

    def __init__(self, table: NodeTable, max_entries: int = 16) -> None:
        self.table = table
        self.max_entries = max_entries
        self._entries: "OrderedDict[RequestKey, _Entry]" = OrderedDict()

    @staticmethod
    def key(pod: PodSpecInfo) -> RequestKey:
        return (pod.non_zero_cpu, pod.non_zero_memory, pod.requests.get(CPU, 0), pod.requests.get(MEMORY, 0))

    def scores(self, pod: PodSpecInfo, cand: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(LeastAllocated, BalancedAllocation) over `cand`, as least_allocated / balanced_allocation give them."""
        table = self.table
        key = self.key(pod)
        entry: Optional[_Entry] = self._entries.get(key)
        journal = table.resource_journal
        if entry is None or entry.epoch != table.resource_epoch or len(entry.fit) < table.size:
            every = np.arange(table.size)
            fit = np.zeros(table.capacity, dtype=np.int64)
            balanced = np.zeros(table.capacity, dtype=np.int64)
            fit[every] = least_allocated(table, pod, every)
            balanced[every] = balanced_allocation(table, pod, every)
            entry = _Entry(table.resource_epoch, len(journal), fit, balanced)
            self._entries[key] = entry
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        elif entry.position < len(journal):
            changed = journal[entry.position:]
            if len(changed) <= SCALAR_SLOTS:
                # The usual case (the node the last pod went to): plain arithmetic beats numpy's per-call cost.
                fit, balanced = entry.fit, entry.balanced
                for slot in set(changed):
                    fit[slot] = least_allocated_at(table, pod, slot)
                    balanced[slot] = balanced_allocation_at(table, pod, slot)
            else:
                dirty = np.unique(np.asarray(changed, dtype=np.int64))
                entry.fit[dirty] = least_allocated(table, pod, dirty)
                entry.balanced[dirty] = balanced_allocation(table, pod, dirty)
            entry.position = len(journal)
        self._entries.move_to_end(key)
        return entry.fit[cand], entry.balanced[cand]
