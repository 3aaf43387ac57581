"""Which placed pods match what, per node slot, kept incrementally as pods are placed and removed.

PodTopologySpread and InterPodAffinity ask, for a selector (and a set of
namespaces), how many pods on each node match it. Upstream walks every
pod of every node per scheduling cycle; here the answer is a count column
over the node table, kept current as pods come and go:

- Pods are grouped into *classes* (namespace, labels, terminating): one
  ReplicaSet's pods are one class, so a selector is evaluated once per
  class, not per pod.
- A `Matcher` (an AND of (namespaces, selector) clauses, optionally
  skipping terminating pods) gets a `counts` column the first time it is
  asked for, built from the classes' per-slot counts, and is then updated
  on every placement; the least recently used columns are dropped beyond
  `max_counters`.
- Pods with pod (anti-)affinity terms of their own are grouped by those
  terms (`AffinityGroup`): "existing pods' anti-affinity" and the
  symmetric scores walk the groups, not the pods.

Slots are the node table's; the table calls `apply` for every change of
its accounting (placements, removals, nodes going and coming back).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

import numpy as np

from .labels import Selector
from .podspec import PodAffinity, PodSpecInfo

__all__ = ["Clause", "Matcher", "PodClass", "AffinityGroup", "PodIndex"]

#: (namespaces the clause accepts, None: every namespace; the label selector).
Clause = Tuple[Optional[FrozenSet[str]], Selector]
ClassKey = Tuple[str, Tuple[Tuple[str, str], ...], bool]


@dataclass(frozen=True)
class Matcher:
    clauses: Tuple[Clause, ...]
    skip_terminating: bool = False
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A matcher is looked up once per constraint per cycle; the generated hash would walk every clause's
        # selector each time.
        object.__setattr__(self, "_hash", hash((self.clauses, self.skip_terminating)))

    def __hash__(self) -> int:
        return self._hash

    def matches(self, namespace: str, labels: Dict[str, str], terminating: bool) -> bool:
        if self.skip_terminating and terminating:
            return False
        for namespaces, selector in self.clauses:
            if namespaces is not None and namespace not in namespaces:
                return False
            if not selector.matches(labels):
                return False
        return True


class PodClass:
    __slots__ = ("id", "namespace", "labels", "terminating", "slots", "pods", "counters")

    def __init__(self, cid: int, namespace: str, labels: Dict[str, str], terminating: bool) -> None:
        self.id = cid
        self.namespace = namespace
        self.labels = labels
        self.terminating = terminating
        self.slots: Dict[int, int] = {}
        self.pods = 0
        #: The count columns this class's pods are counted in: a placement bumps just these, so its cost
        #: does not grow with the number of selectors asked about (one per ReplicaSet under default spreading).
        self.counters: List[_Counter] = []


class _Counter:
    __slots__ = ("matcher", "counts")

    def __init__(self, matcher: Matcher, capacity: int) -> None:
        self.matcher = matcher
        self.counts = np.zeros(capacity, dtype=np.int64)

    def matches(self, cls: PodClass) -> bool:
        return self.matcher.matches(cls.namespace, cls.labels, cls.terminating)


#: A group spread over this many slots keeps a dense count column (its sparse arrays would be rebuilt per change).
DENSE_GROUP_SLOTS = 64


class AffinityGroup:
    """The placed pods sharing one set of pod (anti-)affinity terms: how many of them per slot."""

    __slots__ = ("affinity", "slots", "dense", "_arrays")

    def __init__(self, affinity: PodAffinity) -> None:
        self.affinity = affinity
        self.slots: Dict[int, int] = {}
        self.dense: Optional[np.ndarray] = None
        self._arrays: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def bump(self, slot: int, sign: int, capacity: int) -> None:
        _bump(self.slots, slot, sign)
        self._arrays = None
        if self.dense is not None:
            self.dense[slot] += sign
        elif len(self.slots) >= DENSE_GROUP_SLOTS:
            self.dense = np.zeros(capacity, dtype=np.int64)
            keys = np.fromiter(self.slots.keys(), dtype=np.int64, count=len(self.slots))
            self.dense[keys] = np.fromiter(self.slots.values(), dtype=np.int64, count=len(self.slots))

    def grow(self, capacity: int) -> None:
        if self.dense is not None:
            grown = np.zeros(capacity, dtype=np.int64)
            grown[: len(self.dense)] = self.dense
            self.dense = grown

    def arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """(slots, pods on each) as arrays."""
        if self._arrays is None:
            if self.dense is not None:
                where = np.flatnonzero(self.dense)
                self._arrays = (where, self.dense[where])
            else:
                self._arrays = (np.fromiter(self.slots.keys(), dtype=np.int64, count=len(self.slots)),
                                np.fromiter(self.slots.values(), dtype=np.int64, count=len(self.slots)))
        return self._arrays


def _bump(slots: Dict[int, int], slot: int, sign: int) -> None:
    n = slots.get(slot, 0) + sign
    if n > 0:
        slots[slot] = n
    else:
        slots.pop(slot, None)


class PodIndex:
    def __init__(self, capacity: int, *, max_counters: int = 512) -> None:
        self.capacity = capacity
        self.max_counters = max_counters
        self.classes: Dict[ClassKey, PodClass] = {}
        self._next_class = 0
        self._counters: "OrderedDict[Matcher, _Counter]" = OrderedDict()
        self.groups: Dict[PodAffinity, AffinityGroup] = {}
        #: Bumped whenever a group changes (callers may cache per-group answers).
        self.group_generation = 0

    def grow(self, capacity: int) -> None:
        for counter in self._counters.values():
            grown = np.zeros(capacity, dtype=np.int64)
            grown[: len(counter.counts)] = counter.counts
            counter.counts = grown
        for group in self.groups.values():
            group.grow(capacity)
        self.capacity = capacity

    def apply(self, slot: int, info: PodSpecInfo, sign: int) -> None:
        """Account (+1) or unaccount (-1) `info` on `slot`."""
        key: ClassKey = (info.namespace, tuple(sorted(info.labels.items())), info.terminating)
        cls = self.classes.get(key)
        if cls is None:
            if sign < 0:
                return
            cls = self.classes[key] = PodClass(self._next_class, info.namespace, info.labels, info.terminating)
            self._next_class += 1
            cls.counters = [counter for counter in self._counters.values() if counter.matches(cls)]
        _bump(cls.slots, slot, sign)
        cls.pods += sign
        for counter in cls.counters:
            counter.counts[slot] += sign
        if cls.pods <= 0:
            del self.classes[key]
        if info.affinity is not None:
            group = self.groups.get(info.affinity)
            if group is None:
                if sign < 0:
                    return
                group = self.groups[info.affinity] = AffinityGroup(info.affinity)
            group.bump(slot, sign, self.capacity)
            self.group_generation += 1
            if not group.slots:
                del self.groups[info.affinity]

    def counts(self, matcher: Matcher) -> np.ndarray:
        """Per slot, the placed pods `matcher` accepts (the array is live: read it, do not keep it)."""
        counter = self._counters.get(matcher)
        if counter is not None:
            self._counters.move_to_end(matcher)
            return counter.counts
        counter = _Counter(matcher, self.capacity)
        for cls in self.classes.values():
            if counter.matches(cls):
                cls.counters.append(counter)
                if cls.slots:
                    slots = np.fromiter(cls.slots.keys(), dtype=np.int64, count=len(cls.slots))
                    counter.counts[slots] += np.fromiter(cls.slots.values(), dtype=np.int64, count=len(cls.slots))
        self._counters[matcher] = counter
        while len(self._counters) > self.max_counters:
            _, dropped = self._counters.popitem(last=False)
            for cls in self.classes.values():
                if dropped in cls.counters:
                    cls.counters.remove(dropped)
        return counter.counts

    def groups_where(self, has: str) -> Iterator[AffinityGroup]:
        """Groups whose affinity has terms of the kind `has` names (a PodAffinity field)."""
        for group in list(self.groups.values()):
            if getattr(group.affinity, has):
                yield group

    def counter_count(self) -> int:
        return len(self._counters)

    def matchers(self) -> List[Matcher]:
        return list(self._counters)
