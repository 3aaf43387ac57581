"""The ReplicaSet controller: as many active pods as `spec.replicas`, and the set's status.

As kube-controller-manager's replicaset controller (pkg/controller/replicaset):

- informers on ReplicaSets and pods; pods are indexed by their controller's
  uid, so a sync reads its own pods and the orphans of its namespace only;
- a sync claims pods (`refmanager.claim`: adopt matching orphans, release
  owned pods that stopped matching), then, only when its expectations are
  satisfied (`expectations`: never act twice on a view that does not show
  its own writes yet), creates the missing pods in slow-start batches (at
  most `burst_replicas` a sync) or deletes the surplus in upstream's rank
  order (`podutil.rank_for_deletion`);
- status: replicas (active pods), fullyLabeledReplicas, readyReplicas,
  availableReplicas (ready for minReadySeconds), observedGeneration, and a
  ReplicaFailure condition while creates or deletes fail.

`workers` is --concurrent-replicaset-syncs (5).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Union

from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.client import (
    Client,
    ConflictError,
    DeletedFinalStateUnknown,
    NotFoundError,
    StatusError,
    object_key,
)
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .expectations import ControllerExpectations
from .podutil import (
    CONTROLLER_UID_INDEX,
    SLOW_START_INITIAL_BATCH_SIZE,
    controller_of,
    controller_ref,
    controller_uid_index,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
    rank_for_deletion,
    slow_start_batch,
)
from .refmanager import CannotAdoptError, claim, resolve_controller_ref, selecting_owners

__all__ = ["ReplicaSetController", "BURST_REPLICAS", "CONTROLLER_UID_INDEX", "replica_set_status"]

log = logging.getLogger("megaplane.controllers.replicaset")

#: Upstream's BurstReplicas: the most creates or deletes one sync sends.
BURST_REPLICAS = 500
#: Pods by the uid of their controller ("" for orphans).
REPLICA_FAILURE = "ReplicaFailure"
API_VERSION, KIND = "apps/v1", "ReplicaSet"

Obj = Dict[str, Any]




def replica_set_status(rs: Mapping[str, Any], pods: List[Obj], failure: Optional[BaseException], now: float) -> Obj:
    """The status `rs` should have for its active `pods` (calculateStatus), observedGeneration aside."""
    spec = rs.get("spec") or {}
    status: Obj = dict(rs.get("status") or {})
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = ready = available = 0
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    existing = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if failure is not None and existing is None:
        reason = "FailedCreate" if len(pods) < int(spec.get("replicas", 1)) else "FailedDelete"
        conditions.append({"type": REPLICA_FAILURE, "status": "True", "lastTransitionTime": now_rfc3339(),
                           "reason": reason, "message": str(failure)})
    elif failure is None and existing is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    status["replicas"] = len(pods)
    status["fullyLabeledReplicas"] = fully
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    for f in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
        if not status[f]:
            del status[f]  # Go's omitempty: compare equal to what the server returns
    return status


class ReplicaSetController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 burst_replicas: int = BURST_REPLICAS,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("replicaset-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.replicasets = client.resource("apps/v1", "replicasets")
        self.pods = client.resource("pods")
        self.burst_replicas = burst_replicas
        self.expectations = ControllerExpectations(clock)
        self.rs_informer = self.shared_informer(self.replicasets)
        self.pod_informer = self.shared_informer(self.pods,
                                                         indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.rs_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new), self._rs_deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.created = 0
        self.deleted = 0

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, rs: Obj) -> None:
        self.queue.add(object_key(rs))

    def _rs_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        key = object_key(final_state(obj))
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Mapping[str, Any]) -> Optional[Obj]:
        return resolve_controller_ref(self.rs_informer.lister, namespace, ref, KIND, "apps")

    def _matching_sets(self, pod: Obj) -> List[Obj]:
        return selecting_owners(self.rs_informer.lister, pod)

    def _pod_added(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._pod_deleted(pod)  # seen first already deleting (a restart): count it as the delete
            return
        ref = controller_of(pod)
        if ref is not None:
            rs = self._resolve(meta.get("namespace") or "", ref)
            if rs is not None:
                key = object_key(rs)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for rs in self._matching_sets(pod):
            self._enqueue(rs)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        om, cm = old["metadata"], cur["metadata"]
        if om.get("resourceVersion") == cm.get("resourceVersion"):
            return  # a resync
        labels_changed = om.get("labels") != cm.get("labels")
        if cm.get("deletionTimestamp"):
            # Graceful deletion: the pod is already on its way out; let the set replace it now.
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        namespace = cm.get("namespace") or ""
        if ref_changed and old_ref is not None:
            rs = self._resolve(namespace, old_ref)
            if rs is not None:
                self._enqueue(rs)
        if cur_ref is not None:
            rs = self._resolve(namespace, cur_ref)
            if rs is not None:
                self._enqueue(rs)
                min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    # Available only minReadySeconds after Ready: look again then.
                    self.queue.add_after(object_key(rs), min_ready + 1.0)
            return
        if labels_changed or ref_changed:
            for rs in self._matching_sets(cur):
                self._enqueue(rs)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        pod = final_state(obj)
        ref = controller_of(pod)
        if ref is None:
            return
        rs = self._resolve((pod.get("metadata") or {}).get("namespace") or "", ref)
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        rs = self.rs_informer.lister.get(namespace, name)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        spec = rs.get("spec") or {}
        selector = selector_from_dict(spec.get("selector") or {})
        uid = rs["metadata"]["uid"]
        candidates = [p for p in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, uid)
                      + [p for p in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, "")
                         if (p.get("metadata") or {}).get("namespace") == namespace]
                      if is_pod_active(p)]
        candidates.sort(key=lambda p: p["metadata"].get("name", ""))

        async def can_adopt() -> None:
            fresh = await self.replicasets.get(name, namespace)
            if fresh["metadata"].get("uid") != uid:
                raise CannotAdoptError(f"original ReplicaSet {key} is gone: got uid {fresh['metadata'].get('uid')}, "
                                       f"wanted {uid}")
            if fresh["metadata"].get("deletionTimestamp"):
                raise CannotAdoptError(f"{key} has just been deleted at {fresh['metadata']['deletionTimestamp']}")

        ref = controller_ref(rs, API_VERSION, KIND)
        pods = await claim(self.pods, candidates, rs, selector, ref, can_adopt)
        failure: Optional[BaseException] = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self._manage(key, rs, pods, ref)
            except (StatusError, ValueError) as exc:
                failure = exc
        status = replica_set_status(rs, pods, failure, self.clock.time())
        await self._update_status(rs, status)
        if failure is not None:
            raise failure
        min_ready = int(spec.get("minReadySeconds") or 0)
        if min_ready > 0 and status.get("readyReplicas", 0) == status["replicas"] != status.get("availableReplicas", 0):
            # Ready but not yet available: nothing else would wake us when they become available.
            self.queue.add_after(key, float(min_ready))

    async def _manage(self, key: str, rs: Obj, pods: List[Obj], ref: Obj) -> None:
        want = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(pods) - want
        namespace = rs["metadata"]["namespace"]
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            body = pod_from_template((rs.get("spec") or {}).get("template") or {}, rs, ref)
            self.expectations.expect_creations(key, count)

            async def create() -> None:
                try:
                    await self.pods.create(body, namespace)
                except StatusError as exc:
                    if "NamespaceTerminating" in str((exc.details or {}).get("causes") or ""):
                        return  # the namespace is going away: nothing to make
                    raise
                self.created += 1

            done, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH_SIZE, create)
            for _ in range(count - done):
                # Creates that failed or were never sent will never be observed.
                self.expectations.creation_observed(key)
            if error is not None:
                raise error
        elif diff > 0:
            count = min(diff, self.burst_replicas)
            victims = pods
            if count < len(pods):
                victims = rank_for_deletion(pods, self._related_pods(rs, pods), self.clock.time())[:count]
            keys = [object_key(p) for p in victims]
            self.expectations.expect_deletions(key, keys)
            results = await asyncio.gather(*(self._delete(key, p) for p in victims), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    async def _delete(self, key: str, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.pods.delete(meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
            self.deleted += 1
        except StatusError as exc:
            self.expectations.deletion_observed(key, object_key(pod))
            if not isinstance(exc, (NotFoundError, ConflictError)):
                raise

    def _related_pods(self, rs: Obj, own: List[Obj]) -> List[Obj]:
        """Pods of every ReplicaSet with the same controller as `rs` (a Deployment's old and new sets)."""
        owner = controller_of(rs)
        if owner is None:
            return own
        related: List[Obj] = []
        for other in self.rs_informer.lister.list(rs["metadata"]["namespace"]):
            oref = controller_of(other)
            if oref is not None and oref.get("uid") == owner.get("uid"):
                related.extend(self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, other["metadata"]["uid"]))
        return related

    async def _update_status(self, rs: Obj, status: Obj) -> None:
        generation = rs["metadata"].get("generation", 0)
        old = rs.get("status") or {}
        if status == old and old.get("observedGeneration") == generation:
            return
        status["observedGeneration"] = generation
        body = dict(rs)
        body["status"] = status
        try:
            await self.replicasets.update_status(body)
        except ConflictError:
            # Upstream retries once on a fresh copy; the informer's newer copy requeues us just as well.
            fresh = await self.replicasets.get(rs["metadata"]["name"], rs["metadata"]["namespace"])
            fresh["status"] = status
            await self.replicasets.update_status(fresh)
        except NotFoundError:
            pass

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(created=float(self.created), deleted=float(self.deleted),
                     expectations=float(len(self.expectations)))
        return stats
