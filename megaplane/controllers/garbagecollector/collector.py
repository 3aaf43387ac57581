"""The garbage collector: deletes objects whose owners are gone, and runs foreground and orphan deletion.

As kube-controller-manager's garbagecollector (pkg/controller/garbagecollector/
garbagecollector.go). One informer per kind the API server serves (events
left out, as upstream's default ignored resources; custom resources added
and removed with their established CRDs, which upstream finds through
discovery) feeds the `Graph`; the
informers keep only a few metadata fields per object, the graph the rest
it needs. Two rate-limited queues of graph nodes:

- attempt to delete (`--concurrent-gc-syncs` workers, 20): an object whose
  owners may be gone (a live GET of each owner, by uid: an owner of the
  same name with another uid is absent). No owner left -> delete it
  (Background, or the propagation its own finalizers ask for); some owners
  alive but some gone or deleting in the foreground -> remove those
  references; an owner deleting in the foreground and the object has
  dependents of its own -> delete it in the foreground too. An object
  deleting its dependents in the foreground: when no dependent with
  blockOwnerDeletion is left, remove its `foregroundDeletion` finalizer,
  otherwise queue those dependents. A virtual node (an owner never
  observed) that a GET does not find is removed from the graph, which
  queues its dependents: this is how owners deleted while the collector
  was down are collected after a restart.
- attempt to orphan (one worker): an object with the `orphan` finalizer:
  remove its ownerReference from every dependent, then the finalizer.

Deletes carry the object's uid and resourceVersion as preconditions (a
conflict is retried without the resourceVersion if the ownerReferences
did not change), so nothing is deleted on a view that is out of date.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Hashable, List, Optional, Set, Tuple, Union

from megaplane.client import (
    BUILTIN,
    Client,
    ConflictError,
    DeletedFinalStateUnknown,
    Indexer,
    Lister,
    NotFoundError,
    ResourceClient,
    ResourceRef,
    SharedInformer,
)
from megaplane.client.workers import Workers
from megaplane.client.workqueue import RateLimitingQueue, default_controller_rate_limiter
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .graph import (
    FINALIZER_DELETE_DEPENDENTS,
    FINALIZER_ORPHAN_DEPENDENTS,
    Graph,
    Node,
    ObjectMeta,
    ObjectReference,
    OwnerRef,
    owner_refs,
)

__all__ = ["GarbageCollector", "IGNORED_RESOURCES", "DEFAULT_CONCURRENT_GC_SYNCS"]

log = logging.getLogger("megaplane.controllers.garbagecollector")

DEFAULT_CONCURRENT_GC_SYNCS = 20
#: Upstream's DefaultIgnoredResources: kinds the collector neither watches nor deletes.
IGNORED_RESOURCES = {("", "events"), ("events.k8s.io", "events")}
SYNC_TIMEOUT = 60.0

Obj = Dict[str, Any]


class RestMappingError(Exception):
    """An ownerReference names a kind the API server does not serve (retried: it may appear)."""


class _NotObservedYet(Exception):
    """A virtual node whose object exists but no informer event has shown it yet: look again later."""


class _NamespacedOwnerOfClusterScopedObject(Exception):
    """A cluster-scoped object names a namespaced owner: never valid, never retried."""


class _SlimIndexer(Indexer):
    """An informer store that keeps only the metadata the graph and a relist need (not whole objects)."""

    def upsert(self, obj: Obj) -> Optional[Obj]:
        return super().upsert(_slim(obj))


#: Key and resourceVersion for the relist's diff, deletion state for the graph's transitions.
_KEPT = ("namespace", "name", "uid", "resourceVersion", "deletionTimestamp", "finalizers")


_CRDS = ResourceRef("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)


def _custom_resource(crd: Obj, established: bool = True) -> Optional[ResourceRef]:
    """The custom resource an (established) CRD serves, in its storage version when served, else the first."""
    spec, status = crd.get("spec") or {}, crd.get("status") or {}
    names = status.get("acceptedNames") or {}
    if established and not any(c.get("type") == "Established" and c.get("status") == "True"
                               for c in status.get("conditions") or ()):
        return None
    versions = [v for v in spec.get("versions") or () if v.get("served")]
    if not versions or not names.get("plural") or not names.get("kind"):
        return None
    version = next((v for v in versions if v.get("storage")), versions[0])
    return ResourceRef(spec.get("group", ""), str(version.get("name")), names["plural"], names["kind"],
                       spec.get("scope") == "Namespaced")


def _slim(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in _KEPT if k in meta}}


class GarbageCollector:
    """The component (see the module docstring)."""

    def __init__(self, client: Client, *, workers: int = DEFAULT_CONCURRENT_GC_SYNCS, clock: Clock = REAL_CLOCK,
                 resources: Optional[List[ResourceRef]] = None) -> None:
        self.client = client
        self.clock = clock
        self.workers = workers
        self._candidates = resources if resources is not None else [
            r for r in BUILTIN.values() if (r.group, r.plural) not in IGNORED_RESOURCES]
        self.attempt_to_delete: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name="garbage_collector_attempt_to_delete", clock=clock)
        self.attempt_to_orphan: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name="garbage_collector_attempt_to_orphan", clock=clock)
        self.graph = Graph(self.attempt_to_delete.add, self.attempt_to_orphan.add,
                           self.attempt_to_delete.add_rate_limited)
        self.monitors: Dict[ResourceRef, SharedInformer] = {}
        self._by_kind: Dict[Tuple[str, str], ResourceRef] = {}
        self._delete_workers: Workers[Hashable] = Workers(
            "garbage-collector-delete", self.attempt_to_delete, self._attempt_to_delete, workers,
            forget_on=(_NamespacedOwnerOfClusterScopedObject,))
        self._orphan_workers: Workers[Hashable] = Workers(
            "garbage-collector-orphan", self.attempt_to_orphan, self._attempt_to_orphan, 1)
        self.deleted = 0
        self.orphaned = 0
        # Custom resources are collected too unless the caller named the resources (tests do).
        self._custom = resources is None
        self._crds: Optional[SharedInformer] = None
        self._starting: Set["asyncio.Task[None]"] = set()

    @property
    def name(self) -> str:
        return "garbage-collector-controller"

    # -- lifecycle -------------------------------------------------------------------------------

    def _monitor(self, ref: ResourceRef) -> SharedInformer:
        informer = SharedInformer(self.client.resource(ref), clock=self.clock)
        # The graph holds what collection needs; the informer keeps what a relist compares, not objects.
        informer.indexer = _SlimIndexer()
        informer.lister = Lister(informer.indexer)
        informer.add_event_handler(*self._handlers(ref))
        self.monitors[ref] = informer
        self._by_kind[(ref.group, ref.kind)] = ref
        return informer

    async def start(self) -> None:
        for ref in await self._served(self._candidates):
            self._monitor(ref)
        for informer in self.monitors.values():
            await informer.start()
        for informer in self.monitors.values():
            if not await informer.wait_for_sync(SYNC_TIMEOUT):
                raise RuntimeError(f"{self.name}: {informer.name} did not sync within {SYNC_TIMEOUT:.0f} s")
        if self._custom and await self._served([_CRDS]):
            # Custom resources come and go with their CRDs: upstream's collector finds them through discovery.
            self._crds = SharedInformer(self.client.resource(_CRDS), clock=self.clock)
            self._crds.add_event_handler(self._crd_changed, lambda old, new: self._crd_changed(new), self._crd_gone)
            await self._crds.start()
            await self._crds.wait_for_sync(SYNC_TIMEOUT)
        self._delete_workers.start()
        self._orphan_workers.start()

    def _crd_changed(self, crd: Obj) -> None:
        ref = _custom_resource(crd)
        if ref is not None and (ref.group, ref.kind) not in self._by_kind:
            informer = self._monitor(ref)
            task = asyncio.get_running_loop().create_task(informer.start())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    def _crd_gone(self, crd: Union[Obj, DeletedFinalStateUnknown]) -> None:
        ref = _custom_resource(crd.obj if isinstance(crd, DeletedFinalStateUnknown) else crd, established=False)
        if ref is None:
            return
        known = self._by_kind.pop((ref.group, ref.kind), None)
        informer = self.monitors.pop(known, None) if known is not None else None
        if informer is not None:
            task = asyncio.get_running_loop().create_task(informer.stop())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _served(self, candidates: List[ResourceRef]) -> List[ResourceRef]:
        """The candidates the API server serves (our stand-in for discovery: a one-item list; 404 = not served)."""
        served = []
        for ref in candidates:
            try:
                await self.client.resource(ref).list(limit=1)
            except NotFoundError:
                log.info("%s: %s/%s is not served; not collected", self.name, ref.group_version, ref.plural)
                continue
            served.append(ref)
        return served

    async def stop(self) -> None:
        await self._delete_workers.stop()
        await self._orphan_workers.stop()
        if self._crds is not None:
            await self._crds.stop()
        for task in list(self._starting):
            await task
        for informer in list(self.monitors.values()):
            await informer.stop()

    def ready(self) -> bool:
        return self._delete_workers.running and all(i.has_synced() for i in self.monitors.values())

    def statistics(self) -> Statistics:
        return {"graph_nodes": float(len(self.graph)), "attempt_to_delete_depth": float(len(self.attempt_to_delete)),
                "attempt_to_orphan_depth": float(len(self.attempt_to_orphan)), "deleted": float(self.deleted),
                "orphaned": float(self.orphaned), "monitors": float(len(self.monitors)),
                "errors": float(self._delete_workers.errors + self._orphan_workers.errors)}

    # -- informer events -> graph -------------------------------------------------------------------

    def _handlers(self, ref: ResourceRef) -> Tuple[Any, Any, Any]:
        graph = self.graph
        api_version, kind = ref.group_version, ref.kind

        def meta_of(obj: Obj) -> ObjectMeta:
            m = obj.get("metadata") or {}
            identity = ObjectReference(api_version, kind, str(m.get("name") or ""), str(m.get("uid") or ""),
                                       str(m.get("namespace") or ""))
            return ObjectMeta(identity, owner_refs(m), bool(m.get("deletionTimestamp")),
                              tuple(m.get("finalizers") or ()))

        def on_add(obj: Obj) -> None:
            graph.observe("add", meta_of(obj))

        def on_update(old: Obj, new: Obj) -> None:
            graph.observe("update", meta_of(new), meta_of(old))

        def on_delete(obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
            graph.observe("delete", meta_of(obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj))

        return on_add, on_update, on_delete

    # -- API access by coordinates --------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> ResourceRef:
        group = api_version.rpartition("/")[0]
        ref = self._by_kind.get((group, kind))
        if ref is None:
            raise RestMappingError(f"unable to get REST mapping for {api_version}/{kind}")
        return ref

    def _client_for(self, identity: ObjectReference) -> Tuple[ResourceClient, Optional[str]]:
        ref = self._resource(identity.api_version, identity.kind)
        return self.client.resource(ref), (identity.namespace or None) if ref.namespaced else None

    async def _get(self, identity: ObjectReference) -> Obj:
        rc, ns = self._client_for(identity)
        return await rc.get(identity.name, ns)

    # -- attempt to delete ------------------------------------------------------------------------------

    async def _attempt_to_delete(self, item: Hashable) -> None:
        node = item
        assert isinstance(node, Node)
        if await self._attempt_to_delete_item(node) and not node.observed:
            # A virtual node whose object exists: wait for the informer to show it (issue 56121).
            raise _NotObservedYet(f"{node.identity} not yet observed by an informer")

    async def _attempt_to_delete_item(self, node: Node) -> bool:
        """One attemptToDeleteItem; False when it generated a virtual delete (nothing to look at again)."""
        if node.being_deleted and not node.deleting_dependents:
            return True  # on its way out; its dependents are looked at when it is gone
        try:
            latest = await self._get(node.identity)
        except NotFoundError:
            self.graph.virtual_delete(node.identity)
            return False
        meta = latest.get("metadata") or {}
        if meta.get("uid") != node.identity.uid:
            self.graph.virtual_delete(node.identity)
            return False
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return True
        owners = owner_refs(meta)
        if not owners:
            return True
        solid, dangling, waiting = await self._classify(node, owners)
        rv = str(meta.get("resourceVersion") or "")
        if solid:
            if dangling or waiting:
                # Waiting references must go too, or their owners would wait for this one forever.
                await self._remove_owner_refs(node, [o.uid for o in dangling + waiting])
            return True
        if waiting and node.dependents:
            if any(dep.deleting_dependents for dep in node.dependents):
                # An owner and a dependent both delete in the foreground: unblock ours to avoid a cycle.
                await self._unblock_owner_refs(node, owners)
            return await self._delete(node, rv, owners, "Foreground")
        finalizers = meta.get("finalizers") or ()
        if FINALIZER_ORPHAN_DEPENDENTS in finalizers:
            policy = "Orphan"
        elif FINALIZER_DELETE_DEPENDENTS in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        return await self._delete(node, rv, owners, policy)

    async def _classify(self, node: Node, owners: Tuple[OwnerRef, ...]
                        ) -> Tuple[List[OwnerRef], List[OwnerRef], List[OwnerRef]]:
        """(solid, dangling, waiting for dependents' deletion) owner references (classifyReferences)."""
        solid: List[OwnerRef] = []
        dangling: List[OwnerRef] = []
        waiting: List[OwnerRef] = []
        for ref in owners:
            is_dangling, owner = await self._is_dangling(ref, node)
            if is_dangling:
                dangling.append(ref)
                continue
            assert owner is not None
            ometa = owner.get("metadata") or {}
            # Every dependent of a foreground deletion goes; blockOwnerDeletion only decides who waits.
            if ometa.get("deletionTimestamp") and FINALIZER_DELETE_DEPENDENTS in (ometa.get("finalizers") or ()):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _is_dangling(self, ref: OwnerRef, node: Node) -> Tuple[bool, Optional[Obj]]:
        """Whether the owner is absent: a live GET, and absent too if its uid is another (isDangling)."""
        cluster_key = ref.coordinates()
        if self.graph.known_absent(cluster_key):
            return True, None
        namespaced_key = ref.coordinates(node.identity.namespace)
        if self.graph.known_absent(namespaced_key):
            return True, None
        rr = self._resource(ref.api_version, ref.kind)
        key = namespaced_key if rr.namespaced else cluster_key
        if rr.namespaced and not node.identity.namespace:
            raise _NamespacedOwnerOfClusterScopedObject(
                f"{node.identity} is cluster-scoped but refers to a namespaced owner of type {ref.api_version}/{ref.kind}")
        try:
            owner = await self.client.resource(rr).get(ref.name, node.identity.namespace if rr.namespaced else None)
        except NotFoundError:
            self.graph.mark_absent(key)
            return True, None
        if (owner.get("metadata") or {}).get("uid") != ref.uid:
            self.graph.mark_absent(key)
            return True, None
        return False, owner

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = node.blocking_dependents()
        if not blocking:
            await self._remove_finalizer(node, FINALIZER_DELETE_DEPENDENTS)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.attempt_to_delete.add(dep)

    # -- writes ----------------------------------------------------------------------------------------

    async def _delete(self, node: Node, rv: str, owners: Tuple[OwnerRef, ...], policy: str) -> bool:
        """deleteObject: uid and resourceVersion preconditions; a conflict on an unrelated change retries.
        False when the object was already gone (a virtual delete event was generated)."""
        identity = node.identity
        rc, ns = self._client_for(identity)
        preconditions = {"uid": identity.uid}
        if rv:
            preconditions["resourceVersion"] = rv
        log.info("%s: deleting %s (propagationPolicy=%s)", self.name, identity, policy)
        try:
            await rc.delete(identity.name, ns, propagation_policy=policy, preconditions=preconditions)
        except NotFoundError:
            self.graph.virtual_delete(identity)
            return False
        except ConflictError:
            if not rv:
                raise
            try:
                live = await rc.get(identity.name, ns)
            except NotFoundError:
                return True  # gone meanwhile: what we wanted
            lm = live.get("metadata") or {}
            if lm.get("uid") == identity.uid and lm.get("resourceVersion") != rv and owner_refs(lm) == owners:
                # Changed, but not its owners: retry without the resourceVersion, so churn cannot starve us.
                return await self._delete(node, "", (), policy)
            raise
        self.deleted += 1
        return True

    async def _remove_owner_refs(self, node: Node, owner_uids: List[str]) -> None:
        rc, ns = self._client_for(node.identity)
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": u} for u in owner_uids],
                              "uid": node.identity.uid}}
        try:
            await rc.patch(node.identity.name, patch, ns)
        except NotFoundError:
            pass

    async def _unblock_owner_refs(self, node: Node, owners: Tuple[OwnerRef, ...]) -> None:
        rc, ns = self._client_for(node.identity)
        refs = [{"uid": o.uid, "blockOwnerDeletion": False} for o in owners if o.block_owner_deletion]
        if refs:
            await rc.patch(node.identity.name, {"metadata": {"ownerReferences": refs, "uid": node.identity.uid}}, ns)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        """Take `finalizer` off the object, on its latest resourceVersion (retried on conflicts)."""
        rc, ns = self._client_for(node.identity)
        while True:
            try:
                obj = await rc.get(node.identity.name, ns)
            except NotFoundError:
                return
            meta = obj.get("metadata") or {}
            if meta.get("uid") != node.identity.uid:
                return
            finalizers = list(meta.get("finalizers") or ())
            if finalizer not in finalizers:
                return
            kept = [f for f in finalizers if f != finalizer]
            patch = {"metadata": {"finalizers": kept or None, "resourceVersion": meta.get("resourceVersion")}}
            try:
                await rc.patch(node.identity.name, patch, ns, patch_type="merge")
            except ConflictError:
                continue
            except NotFoundError:
                return
            log.info("%s: removed the %s finalizer of %s", self.name, finalizer, node.identity)
            return

    # -- attempt to orphan ---------------------------------------------------------------------------

    async def _attempt_to_orphan(self, item: Hashable) -> None:
        owner = item
        assert isinstance(owner, Node)
        dependents = list(owner.dependents)
        results = await asyncio.gather(*(self._remove_owner_refs(dep, [owner.identity.uid]) for dep in dependents),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        self.orphaned += len(dependents)
        await self._remove_finalizer(owner, FINALIZER_ORPHAN_DEPENDENTS)
