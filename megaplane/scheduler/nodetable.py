"""The cluster as numpy columns, one row per node, kept current from the informers and the scheduler's own placements.

Rows are slots: a deleted node's slot is reused by the next new node, so
`valid` says which slots hold a node. Per slot:

- `allocatable` / `requested` (int64, one column per resource: cpu in
  millicores, memory, ephemeral-storage, pods, then extended resources in
  the order first seen): `requested` sums the real requests of the pods on
  the node, assumed ones included, its `pods` column counts them;
  `non_zero` is NonZeroRequested (cpu, memory) for LeastAllocated;
- `unschedulable` (spec.unschedulable);
- `taint_set`: an id into `taint_sets`, the distinct taint lists of the
  cluster (few, however many nodes), so a pod's tolerations are checked
  once per distinct list, not once per node;
- one int32 column per label key: an id into that key's values (-1: the
  node has no such label), so `In` is an `isin` over ids; a topology key's
  column is its domain id column;
- `pod_index`: which placed pods match what, per slot (PodTopologySpread,
  InterPodAffinity);
- `objects`: the other objects plugins read (namespaces' labels, the
  Services and workloads behind the default spreading selector).

A pod's accounting is applied once per pod key (`add_pod` again with the
same node only flips assumed -> confirmed); pods naming a node the table
does not hold yet wait for it. Nothing here is asynchronous: the
scheduler changes the table only between scheduling cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .objects import ClusterObjects
from .podindex import PodIndex
from .podspec import CPU, EPHEMERAL_STORAGE, MEMORY, PODS, HostPort, PodSpecInfo
from .quantity import QuantityError, milli_value, value

__all__ = ["NodeTable", "Taint", "PlacedPod", "FIXED_RESOURCES"]

FIXED_RESOURCES = (CPU, MEMORY, EPHEMERAL_STORAGE, PODS)
Taint = Tuple[str, str, str]  # key, value, effect


@dataclass
class PlacedPod:
    info: PodSpecInfo
    node_name: str
    #: True between the scheduler's choice and the informer's sight of the binding.
    assumed: bool
    slot: Optional[int]


class NodeTable:
    def __init__(self, capacity: int = 64) -> None:
        self._cap = max(capacity, 1)
        self.size = 0
        self.count = 0
        self.names: List[str] = []
        self.index: Dict[str, int] = {}
        self._free: List[int] = []
        self.resources: List[str] = list(FIXED_RESOURCES)
        self.resource_index: Dict[str, int] = {r: i for i, r in enumerate(self.resources)}
        cap = self._cap
        self.valid = np.zeros(cap, dtype=bool)
        self.allocatable = np.zeros((cap, len(self.resources)), dtype=np.int64)
        self.requested = np.zeros((cap, len(self.resources)), dtype=np.int64)
        self.non_zero = np.zeros((cap, 2), dtype=np.int64)
        self.unschedulable = np.zeros(cap, dtype=bool)
        self.taint_set = np.zeros(cap, dtype=np.int32)
        self.taint_sets: List[Tuple[Taint, ...]] = [()]
        self._taint_set_ids: Dict[Tuple[Taint, ...], int] = {(): 0}
        self.label_columns: Dict[str, np.ndarray] = {}
        self.label_values: Dict[str, Dict[str, int]] = {}
        self.label_value_names: Dict[str, List[str]] = {}
        self._numeric: Dict[str, Tuple[int, np.ndarray]] = {}
        self._facts: List[Optional[Tuple[Any, ...]]] = []
        self.host_ports: Dict[int, Dict[HostPort, int]] = {}
        self.pods: Dict[str, PlacedPod] = {}
        self._waiting: Dict[str, Dict[str, PodSpecInfo]] = {}
        self.pod_index = PodIndex(cap)
        self.objects = ClusterObjects()
        #: Bumped on every change of nodes or placements (lets callers cache per-state answers).
        self.generation = 0
        #: Answers that depend on the nodes only (domain columns per topology key...), dropped when a node changes.
        self.node_derived: Dict[Any, Any] = {}
        #: Slots whose resource rows (allocatable, requested, non-zero requests) changed, in order, so per-slot
        #: answers over them (scorecache) are brought up to date for those slots alone.
        self.resource_journal: List[int] = []
        #: Bumped when the resource arrays are replaced (grown, widened) or the journal restarts: per-slot answers
        #: from before are void.
        self.resource_epoch = 0

    def __repr__(self) -> str:
        return f"<NodeTable nodes={self.count} pods={len(self.pods)} resources={len(self.resources)}>"

    # -- shape -------------------------------------------------------------------------------------

    def _grow(self) -> None:
        new = self._cap * 2

        def grown(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            shape = (new,) + a.shape[1:]
            out = np.full(shape, fill, dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        self.valid = grown(self.valid)
        self.allocatable = grown(self.allocatable)
        self.requested = grown(self.requested)
        self.non_zero = grown(self.non_zero)
        self.unschedulable = grown(self.unschedulable)
        self.taint_set = grown(self.taint_set)
        for key, col in list(self.label_columns.items()):
            self.label_columns[key] = grown(col, -1)
        self.pod_index.grow(new)
        self._cap = new
        self._restart_journal()

    #: The journal restarts (and every per-slot answer is recomputed once) past this many entries.
    MAX_JOURNAL = 1 << 20

    def _restart_journal(self) -> None:
        self.resource_epoch += 1
        self.resource_journal = []

    def _resources_changed(self, slot: int) -> None:
        journal = self.resource_journal
        journal.append(slot)
        if len(journal) > self.MAX_JOURNAL:
            self._restart_journal()

    @property
    def capacity(self) -> int:
        return self._cap

    def resource_column(self, name: str) -> int:
        """The column of resource `name`, added (zero everywhere) when first seen."""
        col = self.resource_index.get(name)
        if col is None:
            col = len(self.resources)
            self.resources.append(name)
            self.resource_index[name] = col
            pad = np.zeros((self._cap, 1), dtype=np.int64)
            self.allocatable = np.hstack([self.allocatable, pad])
            self.requested = np.hstack([self.requested, pad.copy()])
            self._restart_journal()
        return col

    def _label_id(self, key: str, val: str) -> int:
        values = self.label_values.get(key)
        if values is None:
            values = self.label_values[key] = {}
            self.label_value_names[key] = []
            self.label_columns[key] = np.full(self._cap, -1, dtype=np.int32)
        found = values.get(val)
        if found is None:
            found = values[val] = len(values)
            self.label_value_names[key].append(val)
        return found

    def label_numbers(self, key: str) -> np.ndarray:
        """Per value id of `key`, the value as a number (nan when it is not an integer), for Gt/Lt."""
        names = self.label_value_names.get(key, [])
        cached = self._numeric.get(key)
        if cached is not None and cached[0] == len(names):
            return cached[1]
        nums = np.full(len(names), np.nan)
        for i, v in enumerate(names):
            try:
                nums[i] = int(v)
            except ValueError:
                pass
        self._numeric[key] = (len(names), nums)
        return nums

    # -- nodes -------------------------------------------------------------------------------------

    def upsert_node(self, node: Mapping[str, Any]) -> bool:
        """Add or update a node from its object; True when anything the scheduler looks at changed."""
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        name = str(meta.get("name", ""))
        labels = meta.get("labels") or {}
        taints = tuple((str(t.get("key", "")), str(t.get("value") or ""), str(t.get("effect", "")))
                       for t in spec.get("taints") or ())
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        facts = (tuple(sorted(labels.items())), taints, tuple(sorted(allocatable.items())),
                 bool(spec.get("unschedulable")))
        slot = self.index.get(name)
        is_new = slot is None
        if slot is None:
            slot = self._free.pop() if self._free else self.size
            if slot == self.size:
                if self.size == self._cap:
                    self._grow()
                self.size += 1
                self.names.append(name)
                self._facts.append(None)
            else:
                self.names[slot] = name
            self.index[name] = slot
            self.valid[slot] = True
            self.count += 1
        elif self._facts[slot] == facts:
            return False
        self._facts[slot] = facts
        self.generation += 1
        self.node_derived.clear()
        self._resources_changed(slot)
        self.allocatable[slot, :] = 0
        for rname, qty in allocatable.items():
            try:
                amount = milli_value(qty) if rname == CPU else value(qty)
            except QuantityError:
                continue
            col = self.resource_column(str(rname))  # may widen the arrays: before indexing them
            self.allocatable[slot, col] = amount
        self.unschedulable[slot] = facts[3]
        tid = self._taint_set_ids.get(taints)
        if tid is None:
            tid = self._taint_set_ids[taints] = len(self.taint_sets)
            self.taint_sets.append(taints)
        self.taint_set[slot] = tid
        for column in self.label_columns.values():
            column[slot] = -1
        for key, val in labels.items():
            vid = self._label_id(str(key), str(val))
            self.label_columns[str(key)][slot] = vid
        if is_new:
            for info in self._waiting.pop(name, {}).values():
                placed = self.pods[info.key]
                placed.slot = slot
                self._apply(slot, info, 1)
        return True

    def remove_node(self, name: str) -> bool:
        slot = self.index.pop(name, None)
        if slot is None:
            return False
        self.generation += 1
        self.node_derived.clear()
        waiting = self._waiting.setdefault(name, {})
        for placed in self.pods.values():
            if placed.slot == slot:
                placed.slot = None
                waiting[placed.info.key] = placed.info
                self.pod_index.apply(slot, placed.info, -1)
        if not waiting:
            del self._waiting[name]
        self.valid[slot] = False
        self._resources_changed(slot)
        self.allocatable[slot, :] = 0
        self.requested[slot, :] = 0
        self.non_zero[slot, :] = 0
        self.unschedulable[slot] = False
        self.taint_set[slot] = 0
        for col in self.label_columns.values():
            col[slot] = -1
        self.host_ports.pop(slot, None)
        self._facts[slot] = None
        self.names[slot] = ""
        self._free.append(slot)
        self.count -= 1
        return True

    def node_labels(self, slot: int) -> Dict[str, str]:
        facts = self._facts[slot]
        return dict(facts[0]) if facts else {}

    # -- pods --------------------------------------------------------------------------------------

    def _apply(self, slot: int, info: PodSpecInfo, sign: int) -> None:
        self._resources_changed(slot)
        for rname, amount in info.requests.items():
            col = self.resource_index.get(rname)
            if col is None:
                col = self.resource_column(rname)
            self.requested[slot, col] += sign * amount
        self.requested[slot, self.resource_index[PODS]] += sign
        self.non_zero[slot, 0] += sign * info.non_zero_cpu
        self.non_zero[slot, 1] += sign * info.non_zero_memory
        self.pod_index.apply(slot, info, sign)
        if info.host_ports:
            used = self.host_ports.setdefault(slot, {})
            for port in info.host_ports:
                n = used.get(port, 0) + sign
                if n > 0:
                    used[port] = n
                else:
                    used.pop(port, None)
            if not used:
                del self.host_ports[slot]

    def add_pod(self, info: PodSpecInfo, node_name: str, *, assumed: bool = False) -> None:
        """Account `info` on `node_name` (again with the same node: only the assumed flag changes)."""
        placed = self.pods.get(info.key)
        if placed is not None:
            if placed.node_name == node_name and placed.info.uid == info.uid:
                placed.assumed = assumed and placed.assumed
                old = placed.info
                if old.requests == info.requests and old.host_ports == info.host_ports \
                        and old.labels == info.labels and old.terminating == info.terminating \
                        and old.affinity == info.affinity:
                    return
            self.remove_pod(info.key)
        self.generation += 1
        slot = self.index.get(node_name)
        self.pods[info.key] = PlacedPod(info, node_name, assumed, slot)
        if slot is None:
            self._waiting.setdefault(node_name, {})[info.key] = info
        else:
            self._apply(slot, info, 1)

    def remove_pod(self, key: str) -> Optional[PlacedPod]:
        placed = self.pods.pop(key, None)
        if placed is None:
            return None
        self.generation += 1
        if placed.slot is None:
            waiting = self._waiting.get(placed.node_name)
            if waiting is not None:
                waiting.pop(key, None)
                if not waiting:
                    del self._waiting[placed.node_name]
        else:
            self._apply(placed.slot, placed.info, -1)
        return placed

    def assumed_count(self) -> int:
        return sum(1 for p in self.pods.values() if p.assumed)
