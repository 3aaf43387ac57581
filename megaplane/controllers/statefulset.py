"""The StatefulSet controller: pods with stable ordinal identities, created, updated and removed in order.

As kube-controller-manager's statefulset-controller (pkg/controller/statefulset):

- informers on StatefulSets, pods and ControllerRevisions; a sync claims
  the pods its selector matches and whose name is `<set>-<ordinal>`, and
  the revisions (orphans adopted);
- revisions (`controllers.history`): the update revision is the set's
  template as a ControllerRevision `<set>-<hash>` (created, or an older
  equal one renumbered to the newest: a rollback); the current revision
  is `status.currentRevision`'s, or the update revision at first;
- pods `<set>-<i>` for i in [ordinals.start, start + replicas): labels
  `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and
  `controller-revision-hash`, hostname the pod's name, subdomain
  `spec.serviceName`; below the partition (or the current replica count)
  a missing pod is made at the current revision, else at the update one;
- OrderedReady (`podManagementPolicy`, the default): one pod at a time,
  each created only when every lower ordinal is Running and Ready (and
  available for minReadySeconds), a terminating pod waited for; pods
  beyond the replicas are deleted highest ordinal first, each once the
  ones before are healthy; Parallel: all at once, in slow-start batches;
- failed or succeeded pods are deleted and made again; a pod whose
  identity labels drifted is updated back;
- RollingUpdate: the highest ordinal at or above `partition` not at the
  update revision is deleted (recreated at it by the next sync), one at a
  time, waiting for each to be healthy; OnDelete: only pods deleted by
  someone else change revision;
- status: replicas, readyReplicas, availableReplicas, currentReplicas,
  updatedReplicas, currentRevision, updateRevision (current := update once
  every replica is updated and ready), collisionCount, observedGeneration;
  revisions past revisionHistoryLimit that no pod uses are deleted.

volumeClaimTemplates are accepted and not provisioned: megaplane has no
storage, so no PersistentVolumeClaims are made and pods get no claim
volumes.

`workers` is --concurrent-statefulset-syncs (5).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from typing import Any, Awaitable, Callable, Dict, Hashable, List, Mapping, Optional, Tuple, Union

from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.client import (
    Client,
    ConflictError,
    DeletedFinalStateUnknown,
    NotFoundError,
    SharedInformer,
    StatusError,
    object_key,
)
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .events import EventRecorder
from .history import (
    CONTROLLER_REVISION_HASH_LABEL,
    create_revision,
    equal_revision,
    find_equal_revisions,
    list_controlled,
    new_revision,
    next_revision,
    sort_revisions,
    template_patch,
    update_revision,
)
from .podutil import (
    CONTROLLER_UID_INDEX,
    controller_of,
    controller_ref,
    controller_uid_index,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
)
from .refmanager import CannotAdoptError, claim, resolve_controller_ref, selecting_owners

__all__ = ["StatefulSetController", "POD_NAME_LABEL", "POD_INDEX_LABEL", "parent_and_ordinal"]

log = logging.getLogger("megaplane.controllers.statefulset")

API_VERSION, KIND = "apps/v1", "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")

Obj = Dict[str, Any]




def parent_and_ordinal(pod: Mapping[str, Any]) -> Tuple[str, int]:
    """(`<set>`, `i`) of a pod named `<set>-<i>`; ("", -1) for any other name (getParentNameAndOrdinal)."""
    m = _ORDINAL.match(str((pod.get("metadata") or {}).get("name") or ""))
    if m is None:
        return "", -1
    return m.group(1), int(m.group(2))


def _ordinal(pod: Mapping[str, Any]) -> int:
    return parent_and_ordinal(pod)[1]


def _replicas(sts: Mapping[str, Any]) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _start(sts: Mapping[str, Any]) -> int:
    return int((((sts.get("spec") or {}).get("ordinals")) or {}).get("start") or 0)


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _created(pod: Mapping[str, Any]) -> bool:
    return _phase(pod) != ""


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _running_and_ready(pod: Mapping[str, Any]) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def _healthy(pod: Mapping[str, Any]) -> bool:
    return _running_and_ready(pod) and not _terminating(pod)


def _revision_of(pod: Mapping[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) or "")


def _strategy(sts: Mapping[str, Any]) -> Mapping[str, Any]:
    return (sts.get("spec") or {}).get("updateStrategy") or {}


def _partition(sts: Mapping[str, Any]) -> Optional[int]:
    rolling = _strategy(sts).get("rollingUpdate")
    if rolling is None:
        return None
    return int(rolling.get("partition") or 0)


def apply_revision(sts: Mapping[str, Any], revision: Mapping[str, Any]) -> Obj:
    """The set with the revision's template (ApplyRevision: its patch replaces spec.template)."""
    out = copy.deepcopy(dict(sts))
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    out.setdefault("spec", {})["template"] = template
    return out


def _update_identity(sts: Mapping[str, Any], pod: Obj, ordinal: int) -> None:
    meta = pod.setdefault("metadata", {})
    meta["name"] = f"{sts['metadata']['name']}-{ordinal}"
    meta["namespace"] = sts["metadata"]["namespace"]
    labels = meta.setdefault("labels", {})
    labels[POD_NAME_LABEL] = meta["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def identity_matches(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = sts["metadata"]["name"]
    return ordinal >= 0 and parent == name and meta.get("namespace") == sts["metadata"]["namespace"] \
        and labels.get(POD_NAME_LABEL) == meta.get("name") and labels.get(POD_INDEX_LABEL) == str(ordinal)


def new_stateful_pod(sts: Mapping[str, Any], ordinal: int, revision: str) -> Obj:
    """newStatefulSetPod: the template's pod named `<set>-<i>`, hostname itself, subdomain the serviceName."""
    template = ((sts.get("spec") or {}).get("template")) or {}
    pod = pod_from_template(template, sts, controller_ref(sts, API_VERSION, KIND))
    pod["metadata"].pop("generateName", None)
    _update_identity(sts, pod, ordinal)
    pod["spec"]["hostname"] = pod["metadata"]["name"]
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        pod["spec"]["subdomain"] = service
    pod["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL] = revision
    return pod


def _versioned_pod(current_set: Mapping[str, Any], update_set: Mapping[str, Any], current_rev: str,
                   update_rev: str, ordinal: int) -> Obj:
    """newVersionedStatefulSetPod: below the partition (or the current replicas) at the current revision."""
    strategy = _strategy(current_set)
    rolling = strategy.get("rollingUpdate")
    start = _start(current_set)
    current_replicas = int((current_set.get("status") or {}).get("currentReplicas") or 0)
    # Upstream's condition, precedence included: (RollingUpdate and no rollingUpdate and below the current
    # replicas) or (rollingUpdate given and below the partition).
    if (strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling is None
            and ordinal < start + current_replicas) \
            or (rolling is not None and ordinal < start + int(rolling.get("partition") or 0)):
        return new_stateful_pod(current_set, ordinal, current_rev)
    return new_stateful_pod(update_set, ordinal, update_rev)


def replica_status(pods: List[Obj], min_ready: int, current_rev: str, update_rev: str, now: float) -> Dict[str, int]:
    """computeReplicaStatus over the pods (made ones only: a pod not yet created has no phase)."""
    out = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        created = _created(pod)
        if created:
            out["replicas"] += 1
        if _running_and_ready(pod):
            out["readyReplicas"] += 1
            if is_pod_available(pod, min_ready, now):
                out["availableReplicas"] += 1
        if created and not _terminating(pod):
            rev = _revision_of(pod)
            if rev == current_rev:
                out["currentReplicas"] += 1
            if rev == update_rev:
                out["updatedReplicas"] += 1
    return out


async def _run_for_all(count: int, fn: Callable[[int], Awaitable[bool]], monotonic: bool) -> bool:
    """runForAll: in order, stopping at the first that says so (monotonic), else all in slow-start batches;
    True if the caller must stop here."""
    if monotonic:
        for i in range(count):
            if await fn(i):
                return True
        return False
    i = 0
    batch = 1
    while i < count:
        results = await asyncio.gather(*(fn(j) for j in range(i, min(count, i + batch))), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        i += batch
        batch *= 2
    return False


class StatefulSetController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("statefulset-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.sets = client.resource("apps/v1", "statefulsets")
        self.revisions = client.resource("apps/v1", "controllerrevisions")
        self.pods = client.resource("pods")
        self.recorder = EventRecorder(client, "statefulset-controller", clock=clock)
        self.set_informer = self.shared_informer(self.sets)
        self.pod_informer = self.shared_informer(self.pods, indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.revision_informer = self.shared_informer(self.revisions, indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.set_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new), self._deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.revision_informer.add_event_handler(self._pod_added, lambda old, new: self._pod_added(new),
                                                 self._pod_deleted)
        self.created = 0
        self.deleted = 0

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, sts: Obj) -> None:
        self.queue.add(object_key(sts))

    def _deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self.queue.add(object_key(final_state(obj)))

    def _resolve(self, namespace: str, ref: Optional[Mapping[str, Any]]) -> Optional[Obj]:
        return resolve_controller_ref(self.set_informer.lister, namespace, ref, KIND, "apps")

    def _matching_sets(self, obj: Obj) -> List[Obj]:
        return selecting_owners(self.set_informer.lister, obj)

    def _pod_added(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        ref = controller_of(obj)
        if ref is not None:
            sts = self._resolve(meta.get("namespace") or "", ref)
            if sts is not None:
                self._enqueue(sts)
            return
        for sts in self._matching_sets(obj):
            self._enqueue(sts)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        namespace = cur["metadata"].get("namespace") or ""
        old_ref, cur_ref = controller_of(old), controller_of(cur)
        if (old_ref or {}).get("uid") != (cur_ref or {}).get("uid"):
            sts = self._resolve(namespace, old_ref)
            if sts is not None:
                self._enqueue(sts)
        if cur_ref is not None:
            sts = self._resolve(namespace, cur_ref)
            if sts is not None:
                self._enqueue(sts)
                min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    self.queue.add_after(object_key(sts), float(min_ready))
            return
        if old["metadata"].get("labels") != cur["metadata"].get("labels") or old_ref is not None:
            for sts in self._matching_sets(cur):
                self._enqueue(sts)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        o = final_state(obj)
        sts = self._resolve((o.get("metadata") or {}).get("namespace") or "", controller_of(o))
        if sts is not None:
            self._enqueue(sts)

    # -- sync -------------------------------------------------------------------------------------

    def _ref(self, sts: Mapping[str, Any]) -> Dict[str, str]:
        meta = sts["metadata"]
        return {"kind": KIND, "apiVersion": API_VERSION, "name": meta["name"], "namespace": meta["namespace"],
                "uid": meta["uid"], "resourceVersion": str(meta.get("resourceVersion") or "")}

    async def _can_adopt(self, sts: Mapping[str, Any]) -> None:
        meta = sts["metadata"]
        fresh = await self.sets.get(meta["name"], meta["namespace"])
        if fresh["metadata"].get("uid") != meta["uid"]:
            raise CannotAdoptError(f"original StatefulSet {meta['namespace']}/{meta['name']} is gone: got uid "
                                   f"{fresh['metadata'].get('uid')}, wanted {meta['uid']}")
        if fresh["metadata"].get("deletionTimestamp"):
            raise CannotAdoptError(f"{meta['namespace']}/{meta['name']} has just been deleted at "
                                   f"{fresh['metadata']['deletionTimestamp']}")

    def _candidates(self, informer: SharedInformer, sts: Obj) -> List[Obj]:
        meta = sts["metadata"]
        lister = informer.lister
        return lister.by_index(CONTROLLER_UID_INDEX, meta["uid"]) + [
            o for o in lister.by_index(CONTROLLER_UID_INDEX, "") if o["metadata"].get("namespace") == meta["namespace"]]

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        cached = self.set_informer.lister.get(namespace, name)
        if cached is None:
            return
        sts = copy.deepcopy(cached)
        selector = selector_from_dict((sts.get("spec") or {}).get("selector") or {})
        if selector is None:
            return  # an empty selector selects nothing here (upstream refuses to act on it)
        ref = controller_ref(sts, API_VERSION, KIND)

        async def can_adopt() -> None:
            await self._can_adopt(sts)

        revisions = await list_controlled(self.revisions, self._candidates(self.revision_informer, sts), sts, ref,
                                          can_adopt)
        # Pods are members by selector and by name: `<set>-<ordinal>` only (isMemberOf).
        candidates = [p for p in self._candidates(self.pod_informer, sts) if parent_and_ordinal(p)[0] == name]
        pods = await claim(self.pods, candidates, sts, selector, ref, can_adopt)
        status = await self.update_stateful_set(sts, [copy.deepcopy(p) for p in pods], sort_revisions(revisions))
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and status is not None and status.get("availableReplicas", 0) != _replicas(sts):
            self.queue.add_after(key, float(min_ready))

    async def _revisions(self, sts: Obj, revisions: List[Obj]) -> Tuple[Obj, Obj, int]:
        """(current, update, collisionCount): getStatefulSetRevisions."""
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        ref = controller_ref(sts, API_VERSION, KIND)
        labels = (((sts.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        update = new_revision(sts, ref, labels, template_patch(sts), next_revision(revisions), collisions)
        if sts["metadata"].get("annotations"):
            update["metadata"]["annotations"] = dict(sts["metadata"]["annotations"])
        equal = find_equal_revisions(revisions, update)
        if equal and equal_revision(revisions[-1], equal[-1]):
            update = revisions[-1]  # the template has not changed since the newest revision
        elif equal:
            update = await update_revision(self.revisions, equal[-1], int(update["revision"]))  # a rollback
        else:
            update, collisions = await create_revision(self.revisions, sts, update, collisions)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), None) or update
        return current, update, collisions

    async def update_stateful_set(self, sts: Obj, pods: List[Obj], revisions: List[Obj]) -> Optional[Obj]:
        current, update, collisions = await self._revisions(sts, revisions)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        error: Optional[BaseException] = None
        replicas: List[Obj] = []
        condemned: List[Obj] = []
        try:
            replicas, condemned = await self._update_pods(sts, current, update, pods)
        except (StatusError, ValueError) as exc:
            error = exc
            replicas = pods
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        counts = replica_status(replicas + condemned, min_ready, current_name, update_name, self.clock.time())
        status: Obj = {"observedGeneration": int(sts["metadata"].get("generation") or 0),
                       "currentRevision": current_name, "updateRevision": update_name,
                       "collisionCount": collisions, **counts}
        status_error: Optional[BaseException] = None
        try:
            await self._update_status(sts, status)
        except StatusError as exc:
            status_error = exc
        await self._truncate_history(sts, replicas + condemned, revisions, current_name, update_name)
        if error is not None:
            raise error
        if status_error is not None:
            raise status_error
        return status

    async def _update_pods(self, sts: Obj, current: Obj, update: Obj, pods: List[Obj]) -> Tuple[List[Obj], List[Obj]]:
        """updateStatefulSet's pod work; returns (the replicas as they now stand, the condemned)."""
        current_set = apply_revision(sts, current)
        update_set = apply_revision(sts, update)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        start, count = _start(sts), _replicas(sts)
        slots: List[Optional[Obj]] = [None] * count
        condemned: List[Obj] = []
        for pod in pods:
            ordinal = _ordinal(pod)
            if start <= ordinal < start + count:
                slots[ordinal - start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        replicas: List[Obj] = [slot if slot is not None else
                               _versioned_pod(current_set, update_set, current_name, update_name, start + i)
                               for i, slot in enumerate(slots)]
        condemned.sort(key=_ordinal, reverse=True)
        first_unhealthy: Optional[Obj] = next((p for p in replicas if not _healthy(p)), None)
        if first_unhealthy is None:
            first_unhealthy = next((p for p in reversed(condemned) if not _healthy(p)), None)
        if sts["metadata"].get("deletionTimestamp"):
            return replicas, condemned
        monotonic: bool = (sts.get("spec") or {}).get("podManagementPolicy", "OrderedReady") != "Parallel"
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)

        def available(pod: Obj) -> bool:
            return _phase(pod) == "Running" and is_pod_available(pod, min_ready, self.clock.time())

        async def process_replica(i: int) -> bool:
            pod = replicas[i]
            if _phase(pod) in ("Failed", "Succeeded"):
                if not _terminating(pod):
                    await self._delete_pod(sts, pod)  # made again by the next sync
                return True
            if not _created(pod):
                created = await self._create_pod(sts, pod)
                if created is not None:
                    replicas[i] = pod  # counted once the informer shows it with a phase
                return monotonic
            if monotonic and (_terminating(pod) or not _running_and_ready(pod) or not available(pod)):
                return True  # wait: every predecessor must be Running, Ready and available first
            if identity_matches(sts, pod):
                return False
            await self._fix_identity(update_set, pod)
            return False

        if await _run_for_all(len(replicas), process_replica, monotonic):
            return replicas, condemned

        async def process_condemned(i: int) -> bool:
            pod = condemned[i]
            if _terminating(pod):
                return monotonic
            if monotonic and pod is not first_unhealthy and (not _running_and_ready(pod) or not available(pod)):
                return True
            await self._delete_pod(sts, pod)
            return monotonic

        if await _run_for_all(len(condemned), process_condemned, monotonic):
            return replicas, condemned
        if _strategy(sts).get("type", "RollingUpdate") == "OnDelete":
            return replicas, condemned
        partition = _partition(sts) or 0
        # The highest ordinal not at the update revision goes first, one at a time, each waited for.
        for target in range(len(replicas) - 1, partition - 1, -1):
            pod = replicas[target]
            if _revision_of(pod) != update_name and not _terminating(pod):
                if _created(pod):
                    await self._delete_pod(sts, pod)
                break
            if not _healthy(pod):
                break
        return replicas, condemned

    async def _create_pod(self, sts: Obj, pod: Obj) -> Optional[Obj]:
        name = pod["metadata"]["name"]
        try:
            created = await self.pods.create(pod, sts["metadata"]["namespace"])
        except StatusError as exc:
            if "NamespaceTerminating" in str((exc.details or {}).get("causes") or ""):
                return None
            self.recorder.event(self._ref(sts), "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: {exc}")
            raise
        self.created += 1
        self.recorder.event(self._ref(sts), "Normal", "SuccessfulCreate",
                            f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful")
        return created

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.pods.delete(meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
        except NotFoundError:
            return
        except StatusError as exc:
            self.recorder.event(self._ref(sts), "Warning", "FailedDelete",
                                f"delete Pod {meta['name']} in StatefulSet {sts['metadata']['name']} failed "
                                f"error: {exc}")
            raise
        self.deleted += 1
        self.recorder.event(self._ref(sts), "Normal", "SuccessfulDelete",
                            f"delete Pod {meta['name']} in StatefulSet {sts['metadata']['name']} successful")

    async def _fix_identity(self, sts: Obj, pod: Obj) -> None:
        """UpdateStatefulPod: the identity labels put back, re-reading the pod on a conflict."""
        current = pod
        for _ in range(5):
            body = copy.deepcopy(current)
            _update_identity(sts, body, _ordinal(body))
            try:
                await self.pods.update(body)
                return
            except ConflictError:
                current = await self.pods.get(pod["metadata"]["name"], pod["metadata"]["namespace"])

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        if _strategy(sts).get("type", "RollingUpdate") == "RollingUpdate" and \
                status["updatedReplicas"] == status["replicas"] == status["readyReplicas"]:
            status["currentReplicas"] = status["updatedReplicas"]  # completeRollingUpdate
            status["currentRevision"] = status["updateRevision"]
        old = sts.get("status") or {}
        fields = ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas",
                  "currentRevision", "updateRevision", "collisionCount")
        if int(old.get("observedGeneration") or 0) >= status["observedGeneration"] and \
                all((old.get(f) or 0) == (status.get(f) or 0) for f in fields):
            return
        new = dict(old)
        for f in fields + ("observedGeneration",):
            value = status.get(f)
            if value or f in ("replicas", "availableReplicas"):
                new[f] = value or 0
            else:
                new.pop(f, None)  # omitempty, as the server returns it
        body = dict(sts)
        body["status"] = new
        try:
            await self.sets.update_status(body)
        except ConflictError:
            fresh = await self.sets.get(sts["metadata"]["name"], sts["metadata"]["namespace"])
            fresh["status"] = new
            await self.sets.update_status(fresh)
        except NotFoundError:
            pass

    async def _truncate_history(self, sts: Obj, pods: List[Obj], revisions: List[Obj], current: str,
                                update: str) -> None:
        live = {current, update} | {_revision_of(p) for p in pods}
        old = [r for r in revisions if r["metadata"]["name"] not in live]
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
        for r in old[:max(0, len(old) - limit)]:
            try:
                await self.revisions.delete(r["metadata"]["name"], r["metadata"]["namespace"])
            except NotFoundError:
                pass

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(created=float(self.created), deleted=float(self.deleted))
        return stats
