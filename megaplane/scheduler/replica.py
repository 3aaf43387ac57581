"""The coordinator's node table as a journal of changes, replayed into every shard's copy.

With `--shards N` the coordinator keeps the one authoritative `NodeTable`
(fed by its informers and its own assumptions, exactly as one scheduler's)
and every shard process keeps a replica of it: the same nodes in the same
slots, the same placed pods, the same ClusterObjects and nominated pods.
`ReplicatedTable` records each change that changed something, in order,
as a small tuple (`Op`); the coordinator sends the ops gathered since the
last message ahead of each batch of pods, and `apply` replays them. Slot
assignment depends only on the sequence of node upserts and removals, so
a replica assigns the same slots and a slot means the same node on both
sides. A new or restarted shard starts from a snapshot instead: pickling
a `ReplicatedTable` gives a plain `NodeTable` (numpy columns and dicts,
without the journal), taken at the moment the ops after it start.

Ops: ("node", object) / ("rmnode", name), ("pod", info, node, assumed) /
("rmpod", key), ("obj", kind, object) / ("rmobj", kind, object),
("nom", key, info, node) / ("unnom", key).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from .nodetable import NodeTable, PlacedPod
from .objects import ClusterObjects
from .podspec import PodSpecInfo

__all__ = ["Op", "ReplicatedTable", "JournaledNominations", "apply"]

Op = Tuple[Any, ...]


def _plain_table(state: Dict[str, Any]) -> NodeTable:
    table = NodeTable.__new__(NodeTable)
    table.__dict__.update(state)
    return table


def _plain_objects(state: Dict[str, Any]) -> ClusterObjects:
    objects = ClusterObjects.__new__(ClusterObjects)
    objects.__dict__.update(state)
    return objects


class JournaledObjects(ClusterObjects):
    """ClusterObjects that journal their feeding (pickled: plain ClusterObjects)."""

    def __init__(self, journal: List[Op]) -> None:
        super().__init__()
        self.journal = journal

    def upsert(self, kind: str, obj: Mapping[str, Any]) -> None:
        super().upsert(kind, obj)
        self.journal.append(("obj", kind, obj))

    def delete(self, kind: str, obj: Mapping[str, Any]) -> None:
        super().delete(kind, obj)
        self.journal.append(("rmobj", kind, obj))

    def __reduce__(self) -> Any:
        state = dict(self.__dict__)
        del state["journal"]
        return _plain_objects, (state,)


class JournaledNominations(Dict[str, Tuple[PodSpecInfo, str]]):
    """`Algorithm.nominated` journaling its changes."""

    def __init__(self, journal: List[Op], initial: Optional[Mapping[str, Tuple[PodSpecInfo, str]]] = None) -> None:
        super().__init__(initial or {})
        self.journal = journal

    def __setitem__(self, key: str, value: Tuple[PodSpecInfo, str]) -> None:
        super().__setitem__(key, value)
        self.journal.append(("nom", key, value[0], value[1]))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.journal.append(("unnom", key))

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.journal.append(("unnom", key))
        return super().pop(key, *default)

    def __reduce__(self) -> Any:
        return dict, (dict(self),)


class ReplicatedTable(NodeTable):
    """A NodeTable journaling every change into `journal` (see the module docstring).

    `node_epoch` counts node changes (a slot may name another node after one): an answer computed in a shard
    before a node change is not used after it.
    """

    def __init__(self, capacity: int = 64) -> None:
        super().__init__(capacity)
        self.journal: List[Op] = []
        self.node_epoch = 0
        self._depth = 0  # add_pod calls remove_pod: only the outer call is journaled
        self._dropped = False
        self.objects = JournaledObjects(self.journal)

    def upsert_node(self, node: Mapping[str, Any]) -> bool:
        changed = super().upsert_node(node)
        if changed:
            self.node_epoch += 1
            self._journal(("node", node))
        return changed

    def remove_node(self, name: str) -> bool:
        removed = super().remove_node(name)
        if removed:
            self.node_epoch += 1
            self._journal(("rmnode", name))
        return removed

    def add_pod(self, info: PodSpecInfo, node_name: str, *, assumed: bool = False) -> None:
        before = self.generation
        self._depth += 1
        try:
            super().add_pod(info, node_name, assumed=assumed)
        finally:
            self._depth -= 1
        if self.generation != before:  # not a mere assumed -> confirmed flip
            self._journal(("pod", info, node_name, assumed))

    def remove_pod(self, key: str) -> Optional[PlacedPod]:
        placed = super().remove_pod(key)
        if placed is not None and not self._depth:
            self._journal(("rmpod", key))
        return placed

    #: Past this many ops since the last message the journal is dropped and every shard gets a snapshot instead
    #: (a scheduler with nothing to place for a long time would otherwise keep every change in memory).
    MAX_OPS = 200_000

    def _journal(self, op: Op) -> None:
        self.journal.append(op)
        if len(self.journal) > self.MAX_OPS:
            self.journal.clear()
            self._dropped = True

    def overflowed(self) -> bool:
        """The journal was dropped since the last message (see MAX_OPS): the replicas need snapshots."""
        dropped, self._dropped = self._dropped, False
        if len(self.journal) > self.MAX_OPS:
            dropped = True
        if dropped:
            self.journal.clear()
        return dropped

    def take_journal(self) -> List[Op]:
        ops = list(self.journal)
        self.journal.clear()
        return ops

    def __reduce__(self) -> Any:
        state = dict(self.__dict__)
        for name in ("journal", "node_epoch", "_depth", "_dropped"):
            del state[name]
        return _plain_table, (state,)


def apply(table: NodeTable, nominated: Dict[str, Tuple[PodSpecInfo, str]], ops: List[Op]) -> None:
    """Replay the coordinator's ops into a replica (its table and its algorithm's nominated pods)."""
    for op in ops:
        kind = op[0]
        if kind == "pod":
            table.add_pod(op[1], op[2], assumed=op[3])
        elif kind == "rmpod":
            table.remove_pod(op[1])
        elif kind == "node":
            table.upsert_node(op[1])
        elif kind == "rmnode":
            table.remove_node(op[1])
        elif kind == "obj":
            table.objects.upsert(op[1], op[2])
        elif kind == "rmobj":
            table.objects.delete(op[1], op[2])
        elif kind == "nom":
            nominated[op[1]] = (op[2], op[3])
        elif kind == "unnom":
            nominated.pop(op[1], None)
        else:
            raise ValueError(f"unknown replica op {kind!r}")
