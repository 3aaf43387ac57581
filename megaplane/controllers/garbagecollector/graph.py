"""The dependency graph: every object the collector watches, linked to its owners by uid.

As upstream's GraphBuilder (pkg/controller/garbagecollector/graph.go,
graph_builder.go). A `Node` per uid keeps only what collection needs:
identity (apiVersion, kind, namespace, name, uid), the ownerReferences
(slim tuples), the set of dependents, and two flags (being deleted;
deleting its dependents in the foreground). At 100K pods that is a few
hundred bytes per object, not the object.

`Graph.observe` applies one informer event, in event order:

- add/update: insert the node (linking it under each owner; an owner not
  seen yet becomes a *virtual* node, queued for a live lookup), or apply
  the change of its ownerReferences (owners whose blocking dependents went
  away are queued), then the deletion transitions: a new `orphan`
  finalizer queues the node for orphaning, a new `foregroundDeletion`
  finalizer marks it and queues it and all its dependents for deletion;
- delete: remove the node; its dependents are queued (their owner is now
  absent, and remembered as absent), so are owners waiting for it.

`virtual_delete` is the event the collector generates when a live lookup
says an object (usually a virtual owner) does not exist; it removes the
node only when the identity agrees, as upstream does for dependents that
name one uid with different coordinates.

Worked example (background deletion after a restart): a ReplicaSet whose
Deployment was deleted while the collector was down is listed; its owner
uid is unknown, so a virtual Deployment node is created and queued; the
collector's GET answers 404, so `virtual_delete` removes the virtual node
and queues the ReplicaSet, whose owner is now dangling: it is deleted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import AbstractSet, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

__all__ = [
    "FINALIZER_DELETE_DEPENDENTS",
    "FINALIZER_ORPHAN_DEPENDENTS",
    "Graph",
    "Node",
    "ObjectMeta",
    "ObjectReference",
    "OwnerRef",
    "owner_refs",
]

FINALIZER_ORPHAN_DEPENDENTS = "orphan"
FINALIZER_DELETE_DEPENDENTS = "foregroundDeletion"
#: Upstream's absentOwnerCache holds 500 owners known to be gone.
ABSENT_OWNER_CACHE_SIZE = 500


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """An object's coordinates (upstream's objectReference: an OwnerReference's plus a namespace)."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str = ""

    def __str__(self) -> str:
        ns = f"namespace={self.namespace}, " if self.namespace else ""
        return f"[{self.api_version}/{self.kind}, {ns}name: {self.name}, uid: {self.uid}]"


class OwnerRef(NamedTuple):
    """One ownerReference, as much of it as collection reads."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool
    block_owner_deletion: bool

    def coordinates(self, namespace: str = "") -> ObjectReference:
        return ObjectReference(self.api_version, self.kind, self.name, self.uid, namespace)


def owner_refs(meta: Mapping[str, object]) -> Tuple[OwnerRef, ...]:
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return ()
    return tuple(OwnerRef(str(r.get("apiVersion") or ""), str(r.get("kind") or ""), str(r.get("name") or ""),
                          str(r.get("uid") or ""), bool(r.get("controller")), bool(r.get("blockOwnerDeletion")))
                 for r in refs if isinstance(r, dict))


class ObjectMeta(NamedTuple):
    """What one event says about an object: identity, owners, deletion state."""

    identity: ObjectReference
    owners: Tuple[OwnerRef, ...]
    being_deleted: bool
    finalizers: Tuple[str, ...]

    @property
    def waits_for_orphaning(self) -> bool:
        return self.being_deleted and FINALIZER_ORPHAN_DEPENDENTS in self.finalizers

    @property
    def waits_for_dependents_deleted(self) -> bool:
        return self.being_deleted and FINALIZER_DELETE_DEPENDENTS in self.finalizers


class Node:
    """One object in the graph (or a virtual one: an owner named by a dependent, not yet observed)."""

    __slots__ = ("identity", "owners", "dependents", "deleting_dependents", "being_deleted", "virtual", "observed")

    def __init__(self, identity: ObjectReference, owners: Tuple[OwnerRef, ...] = (), *, virtual: bool = False,
                 being_deleted: bool = False, deleting_dependents: bool = False) -> None:
        self.identity = identity
        self.owners = owners
        # Most objects (pods) own nothing: they share one empty set until a first dependent comes.
        self.dependents: AbstractSet[Node] = _NO_DEPENDENTS
        self.being_deleted = being_deleted
        self.deleting_dependents = deleting_dependents
        self.virtual = virtual
        self.observed = not virtual

    def __repr__(self) -> str:
        flags = "".join(f for f, on in ((" virtual", self.virtual), (" deleting", self.being_deleted),
                                         (" foreground", self.deleting_dependents)) if on)
        return f"<Node {self.identity}{flags} dependents={len(self.dependents)}>"

    def clone(self) -> "Node":
        n = Node(self.identity, self.owners, virtual=self.virtual, being_deleted=self.being_deleted,
                 deleting_dependents=self.deleting_dependents)
        n.observed = self.observed
        n.dependents = set(self.dependents) if self.dependents else _NO_DEPENDENTS
        return n

    def add_dependent(self, node: "Node") -> None:
        if self.dependents is _NO_DEPENDENTS:
            self.dependents = set()
        assert isinstance(self.dependents, set)
        self.dependents.add(node)

    def remove_dependent(self, node: "Node") -> None:
        if isinstance(self.dependents, set):
            self.dependents.discard(node)

    def blocking_dependents(self) -> List["Node"]:
        """Dependents whose reference to this node has blockOwnerDeletion (they hold a foreground deletion)."""
        uid = self.identity.uid
        return [d for d in self.dependents if any(o.uid == uid and o.block_owner_deletion for o in d.owners)]


_NO_DEPENDENTS: AbstractSet[Node] = frozenset()
Enqueue = Callable[[Node], None]


def _partition_dependents(dependents: Iterable[Node], identity: ObjectReference) -> Tuple[List[Node], List[Node]]:
    """Dependents naming the owner with these coordinates, and the ones naming its uid otherwise."""
    matching: List[Node] = []
    other: List[Node] = []
    namespaced = bool(identity.namespace)
    for dep in dependents:
        found_match = found_mismatch = False
        if namespaced and dep.identity.namespace != identity.namespace:
            found_mismatch = True  # a namespaced owner may only own objects of its own namespace
        else:
            for o in dep.owners:
                if o.uid != identity.uid:
                    continue
                if (o.api_version, o.kind, o.name) == (identity.api_version, identity.kind, identity.name):
                    found_match = True
                else:
                    found_mismatch = True
        if found_match:
            matching.append(dep)
        if found_mismatch:
            other.append(dep)
    return matching, other


class Graph:
    """uid -> Node, kept by `observe` (see the module docstring); queues work through the callbacks."""

    def __init__(self, attempt_to_delete: Enqueue, attempt_to_orphan: Enqueue,
                 attempt_to_delete_later: Optional[Enqueue] = None) -> None:
        self.uid_to_node: Dict[str, Node] = {}
        self._absent: "OrderedDict[ObjectReference, None]" = OrderedDict()
        self.attempt_to_delete = attempt_to_delete
        self.attempt_to_orphan = attempt_to_orphan
        self.attempt_to_delete_later = attempt_to_delete_later or attempt_to_delete

    def __len__(self) -> int:
        return len(self.uid_to_node)

    def get(self, uid: str) -> Optional[Node]:
        return self.uid_to_node.get(uid)

    # -- the absent-owner cache (an LRU, as upstream's) ----------------------------------------------

    def mark_absent(self, ref: ObjectReference) -> None:
        self._absent[ref] = None
        self._absent.move_to_end(ref)
        while len(self._absent) > ABSENT_OWNER_CACHE_SIZE:
            self._absent.popitem(last=False)

    def known_absent(self, ref: ObjectReference) -> bool:
        if ref in self._absent:
            self._absent.move_to_end(ref)
            return True
        return False

    # -- events ----------------------------------------------------------------------------------

    def observe(self, event: str, meta: ObjectMeta, old: Optional[ObjectMeta] = None) -> None:
        """Apply one informer event: "add", "update" or "delete" (processGraphChanges)."""
        identity = meta.identity
        existing = self.uid_to_node.get(identity.uid)
        if existing is not None and not existing.observed:
            # The first informer event for a node that was virtual: adopt the observed coordinates.
            if identity != existing.identity:
                _, invalid = _partition_dependents(existing.dependents, identity)
                for dep in invalid:
                    self.attempt_to_delete(dep)  # their owners may still be solid: then it is a no-op
                existing = existing.clone()
                existing.identity = identity
                self._replace(existing)
            existing.observed = True
            existing.virtual = False
        if event == "delete":
            if existing is None:
                return
            self._removed(existing, identity)
            return
        if existing is None:
            node = Node(identity, meta.owners, being_deleted=meta.being_deleted,
                        deleting_dependents=meta.waits_for_dependents_deleted)
            self._insert(node)
            self._transitions(old, meta, node)
            return
        if existing.owners != meta.owners:
            added, removed, changed = _reference_diffs(existing.owners, meta.owners)
            self._unblocked_owners(removed, changed)
            existing.owners = meta.owners
            self._add_to_owners(existing, added)
            self._remove_from_owners(existing, removed)
        if meta.being_deleted:
            existing.being_deleted = True
        self._transitions(old, meta, existing)

    def virtual_delete(self, identity: ObjectReference) -> None:
        """A live lookup found no object with these coordinates (the collector's virtual delete event)."""
        existing = self.uid_to_node.get(identity.uid)
        if existing is None:
            return
        if existing.virtual:
            matching, other = _partition_dependents(existing.dependents, identity)
            if other:
                # Some dependents name this uid with other coordinates: keep the node for them.
                if matching:
                    self.mark_absent(identity)
                    for dep in matching:
                        self.attempt_to_delete(dep)
                if existing.identity == identity:
                    replacement = _alternate_identity(other, identity)
                    if replacement is not None:
                        node = existing.clone()
                        node.identity = replacement
                        self._replace(node)
                        self.attempt_to_delete_later(node)
                return
        elif existing.identity != identity:
            # A real node is not removed by a virtual event for other coordinates.
            matching, _ = _partition_dependents(existing.dependents, identity)
            if matching:
                self.mark_absent(identity)
                for dep in matching:
                    self.attempt_to_delete(dep)
            return
        self._removed(existing, identity)

    # -- graph edits -----------------------------------------------------------------------------

    def _replace(self, node: Node) -> None:
        """Put a clone in place of the node with its uid, re-pointing owners' dependent sets at it."""
        old = self.uid_to_node.get(node.identity.uid)
        self.uid_to_node[node.identity.uid] = node
        if old is None:
            return
        for o in node.owners:
            owner = self.uid_to_node.get(o.uid)
            if owner is not None and old in owner.dependents:
                owner.remove_dependent(old)
                owner.add_dependent(node)

    def _insert(self, node: Node) -> None:
        self.uid_to_node[node.identity.uid] = node
        self._add_to_owners(node, node.owners)

    def _add_to_owners(self, node: Node, owners: Iterable[OwnerRef]) -> None:
        """addDependentToOwners: link under each owner; unknown owners become virtual nodes, looked up."""
        suspicious = False
        for o in owners:
            owner = self.uid_to_node.get(o.uid)
            if owner is None:
                owner = Node(o.coordinates(node.identity.namespace), virtual=True)
                self.uid_to_node[o.uid] = owner
                owner.add_dependent(node)
                self.attempt_to_delete(owner)  # the collector confirms it exists or deletes the virtual node
                continue
            owner.add_dependent(node)
            if suspicious:
                continue
            oid = owner.identity
            if oid.namespace and oid.namespace != node.identity.namespace:
                suspicious = True  # a namespaced owner in another namespace cannot own this
            elif (o.api_version, o.kind, o.name) != (oid.api_version, oid.kind, oid.name):
                suspicious = True
            elif not oid.namespace and oid.namespace != node.identity.namespace and not owner.observed:
                suspicious = True  # maybe a namespaced owner named from a cluster-scoped object (#98040)
        if suspicious:
            self.attempt_to_delete(node)  # the collector checks the references against live owners

    def _remove_from_owners(self, node: Node, owners: Iterable[OwnerRef]) -> None:
        for o in owners:
            owner = self.uid_to_node.get(o.uid)
            if owner is not None:
                owner.remove_dependent(node)

    def _unblocked_owners(self, removed: Iterable[OwnerRef], changed: Iterable[Tuple[OwnerRef, OwnerRef]]) -> None:
        """Owners deleting in the foreground that this dependent stopped blocking: look at them again."""
        for o in removed:
            if o.block_owner_deletion:
                self._requeue_if_deleting_dependents(o.uid)
        for old, new in changed:
            if old.block_owner_deletion and not new.block_owner_deletion:
                self._requeue_if_deleting_dependents(new.uid)

    def _requeue_if_deleting_dependents(self, uid: str) -> None:
        owner = self.uid_to_node.get(uid)
        if owner is not None and owner.deleting_dependents:
            self.attempt_to_delete(owner)

    def _removed(self, node: Node, identity: ObjectReference) -> None:
        del self.uid_to_node[node.identity.uid]
        self._remove_from_owners(node, node.owners)
        if node.dependents:
            self.mark_absent(identity)
        for dep in list(node.dependents):
            self.attempt_to_delete(dep)
        for o in node.owners:
            owner = self.uid_to_node.get(o.uid)
            if owner is not None and owner.deleting_dependents:
                self.attempt_to_delete(owner)  # it may have been waiting for this one

    def _transitions(self, old: Optional[ObjectMeta], new: ObjectMeta, node: Node) -> None:
        """processTransitions: the orphan or foregroundDeletion finalizer just appeared on a deleted object."""
        if new.waits_for_orphaning and (old is None or not old.waits_for_orphaning):
            self.attempt_to_orphan(node)
            return
        if new.waits_for_dependents_deleted and (old is None or not old.waits_for_dependents_deleted):
            node.deleting_dependents = True
            for dep in list(node.dependents):
                self.attempt_to_delete(dep)
            self.attempt_to_delete(node)


def _reference_diffs(old: Tuple[OwnerRef, ...], new: Tuple[OwnerRef, ...]
                     ) -> Tuple[List[OwnerRef], List[OwnerRef], List[Tuple[OwnerRef, OwnerRef]]]:
    old_by_uid = {o.uid: o for o in old}
    new_by_uid = {o.uid: o for o in new}
    added = [o for o in new if o.uid not in old_by_uid]
    removed = [o for o in old if o.uid not in new_by_uid]
    changed = [(old_by_uid[o.uid], o) for o in new if o.uid in old_by_uid and old_by_uid[o.uid] != o]
    return added, removed, changed


def _alternate_identity(dependents: List[Node], verified_absent: ObjectReference) -> Optional[ObjectReference]:
    """Another set of coordinates the dependents name this uid by (getAlternateOwnerIdentity)."""
    absent_ns = verified_absent.namespace
    candidates = sorted(
        (o.coordinates(dep.identity.namespace if absent_ns else "") for dep in dependents for o in dep.owners
         if o.uid == verified_absent.uid),
        key=lambda r: (r.api_version, r.kind, r.name, r.namespace))
    for ref in candidates:
        if ref != verified_absent:
            return ref
    return None
