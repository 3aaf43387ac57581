"""One scheduler shard: a replica of the coordinator's table, filtering and scoring its own slots only.

Shard `index` of `count` owns the slots `index, index + count, ...` of
the replicated table (`replica`): every shard holds every node and every
placed pod, so PodTopologySpread's domains and minimum, InterPodAffinity's
domain counts and existing pods' anti-affinity are computed over the whole
cluster exactly as one scheduler computes them; only the search for
feasible nodes and their scores are split. Slots rather than ranges: the
table reuses freed slots and grows at its end, so striding keeps the
shards' shares even whatever the history (a window over a shard's slots
is a numpy slice with a step, which the per-node filters take as is).

Per pod (`ShardAlgorithm.propose`), as `Algorithm.schedule` over the
shard's slots: the share of `num_feasible_nodes_to_find(all nodes)` that
its node count makes (every feasible node below 100 nodes, as one
scheduler), searched from its own rotating start; the `scoreparts` of the
candidates found (raw: normalising is the coordinator's, over every
shard's candidates; one row for all its best when that is exact,
`ScoreParts.compact`); its own best node by those parts alone, which it
reserves in its replica at once (a *tentative* placement, so the next pod
of the same batch does not take the same room); or, when it has no
feasible node, upstream's per-reason node counts over its slots (the
coordinator sums them into the FitError).

Every message from the coordinator first drops the tentative placements
of the last batch (the losers release their reservation; the winner's
comes back as an op, with the other ops since, and a reservation that op
confirms on the same node is kept instead of dropped and re-added). The protocol over
stdin/stdout: 8-byte big-endian length, then a pickle. Request
(snapshot or None, ops, pods); reply: a `Proposal` per pod.
"""

from __future__ import annotations

import os
import pickle
import random
import struct
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .algorithm import Algorithm, filter_failures, num_feasible_nodes_to_find
from .nodetable import NodeTable
from .podspec import PodSpecInfo
from .profile import Profile
from .replica import Op, apply
from .scoreparts import ScoreParts, score_parts, totals

__all__ = ["Proposal", "ShardAlgorithm", "Snapshot", "main", "read_frame", "write_frame", "owner_of"]

HEADER = struct.Struct(">Q")


def owner_of(slot: int, count: int) -> int:
    """The shard owning `slot` when there are `count` shards."""
    return slot % count


@dataclass
class Snapshot:
    """What a new shard starts from: the table, the nominated pods, the profiles and percentageOfNodesToScore."""

    table: NodeTable
    nominated: Dict[str, Tuple[PodSpecInfo, str]]
    profiles: Mapping[str, Profile]
    percentage_of_nodes_to_score: int


@dataclass
class Proposal:
    """A shard's answer for one pod: the parts of its candidates and its own best slot, or its FitError counts."""

    parts: Optional[ScoreParts]
    tentative: int = -1
    reasons: Optional[Dict[str, int]] = None


class ShardAlgorithm(Algorithm):
    """`Algorithm` over the slots of shard `index` of `count` (see the module docstring)."""

    def __init__(self, table: NodeTable, index: int, count: int, **kwargs: Any) -> None:
        super().__init__(table, **kwargs)
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count} is out of range")
        self.index = index
        self.count = count
        #: (key, node) of the pods this shard reserved for the current batch (dropped with the next message).
        self.tentative: List[Tuple[str, str]] = []

    def _positions(self) -> int:
        return len(range(self.index, self.table.size, self.count))

    def _window(self, lo: int, hi: int) -> slice:
        """The slots of positions lo..hi-1 of this shard."""
        return slice(self.index + lo * self.count, self.index + (hi - 1) * self.count + 1, self.count)

    def owned_nodes(self) -> int:
        key = ("shard.owned", self.index, self.count)
        found = self.table.node_derived.get(key)
        if found is None:
            found = self.table.node_derived[key] = int(np.count_nonzero(
                self.table.valid[self.index: self.table.size: self.count]))
        return int(found)

    def _feasible_from(self, pod: PodSpecInfo, start: int, enough: int) -> np.ndarray:
        """As Algorithm._feasible_from, in positions of this shard's slots (returns slots)."""
        m = self._positions()
        found: List[np.ndarray] = []
        count = scanned = 0
        window = max(64, int(enough / max(self._feasible_share, 1e-3) * 1.25))
        for lo, end in ((start, m), (0, start)):
            while lo < end and count < enough:
                hi = min(lo + window, end)
                positions = np.flatnonzero(self.feasible(pod, self._window(lo, hi)))
                if len(positions):
                    found.append(self.index + (positions + lo) * self.count)
                    count += len(positions)
                scanned += hi - lo
                lo = hi
                window *= 2
        if scanned:
            self._feasible_share = max(count / scanned, 1e-3)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def diagnose(self, pod: PodSpecInfo) -> Dict[str, int]:
        """Algorithm.diagnose over this shard's slots."""
        table = self.table
        remaining = np.zeros(table.size, dtype=bool)
        remaining[self.index:: self.count] = table.valid[self.index: table.size: self.count]
        return filter_failures(table, self.profile(pod), pod, remaining)

    def propose(self, pod: PodSpecInfo) -> Proposal:
        table = self.table
        own = self.owned_nodes()
        if own == 0 or table.count == 0:
            return Proposal(None, reasons={})
        profile = self.profile(pod)
        percentage = profile.percentage_of_nodes_to_score
        want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score if percentage is None else percentage,
                                          table.count)
        share = -(-want * own // table.count)
        m = self._positions()
        start = self.next_start_node_index % m
        ordered = self._feasible_from(pod, start, share + 1)
        if len(ordered) == 0:
            return Proposal(None, reasons=self.diagnose(pod))
        if len(ordered) > share:
            cand = ordered[:share]
            processed = ((int(cand[-1]) - self.index) // self.count - start) % m + 1
        else:
            cand = ordered
            processed = m
        self.next_start_node_index = (start + processed) % m
        parts = score_parts(table, profile.for_pod(table, pod), cand, profile, self.score_cache)
        local = totals(parts, profile)
        best = np.flatnonzero(local == local.max())
        slot = int(cand[best[self.rng.randrange(len(best))]])
        if pod.key not in table.pods:
            table.add_pod(pod, table.names[slot], assumed=True)
            self.tentative.append((pod.key, table.names[slot]))
        return Proposal(parts.compact(slot) or parts, slot)

    def release(self, ops: List[Op]) -> None:
        """Drop the last batch's reservations, except those `ops` place on the same node: the op then only
        confirms what the replica holds (the same pod, node and accounting), and removing and adding it back
        would be two table updates for nothing."""
        if not self.tentative:
            return
        mine = dict(self.tentative)
        kept = {op[1].key for op in ops if op[0] == "pod" and mine.get(op[1].key) == op[2]}
        for key, _ in self.tentative:
            if key not in kept:
                self.table.remove_pod(key)
        self.tentative = []


def read_frame(stream: BinaryIO) -> Optional[bytes]:
    """One frame's body, None at end of stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)))
    stream.write(body)
    stream.flush()


def serve(index: int, count: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer the coordinator's batches until it closes the pipe."""
    algorithm: Optional[ShardAlgorithm] = None
    while True:
        body = read_frame(stdin)
        if body is None:
            return
        snapshot, ops, pods = pickle.loads(body)
        if snapshot is not None:
            algorithm = ShardAlgorithm(snapshot.table, index, count, rng=random.Random(),
                                       percentage_of_nodes_to_score=snapshot.percentage_of_nodes_to_score,
                                       profiles=snapshot.profiles)
            algorithm.nominated = dict(snapshot.nominated)
        if algorithm is None:
            raise RuntimeError("scheduler shard: the first message carries no snapshot")
        algorithm.release(ops)
        apply(algorithm.table, algorithm.nominated, ops)
        replies = [algorithm.propose(pod) for pod in pods]
        write_frame(stdout, pickle.dumps(replies, protocol=pickle.HIGHEST_PROTOCOL))


def main(argv: Optional[List[str]] = None) -> None:
    """`python -c 'from megaplane.scheduler.shard import main; main()' INDEX COUNT` (the coordinator runs it)."""
    args = sys.argv[1:] if argv is None else argv
    index, count = int(args[0]), int(args[1])
    # The protocol owns fd 1: anything printed goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        serve(index, count, sys.stdin.buffer, out)
    except KeyboardInterrupt:
        pass
