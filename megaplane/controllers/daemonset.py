"""The DaemonSet controller: one daemon pod on every node that should run it, rolled as the set says.

As kube-controller-manager's daemonset-controller (pkg/controller/daemon):

- informers on DaemonSets, ControllerRevisions, pods and nodes; pods are
  indexed by their controller's uid; a node added, or changed so that a
  set should (or should no longer) run on it, queues the sets concerned;
- which nodes: the template's nodeName if any, its nodeSelector and
  required node affinity (`nodematch`), and the node's NoSchedule and
  NoExecute taints against the template's tolerations plus the ones
  upstream gives every daemon pod (not-ready and unreachable NoExecute;
  disk-, memory-, pid-pressure and unschedulable NoSchedule;
  network-unavailable for hostNetwork pods). A node whose only untolerated
  taints are NoSchedule keeps the pod it has but gets no new one;
- a sync: history first (`construct_history`: the ControllerRevision
  matching the template, created as `<set>-<template hash>` if missing
  and renumbered to the newest, duplicates folded into one), then, once
  its expectations are met, `manage`: a pod (named `<set>-xxxxx`, with
  `controller-revision-hash`, the daemon tolerations and a required node
  affinity on `metadata.name` so the scheduler binds it, as upstream) for
  each node missing one, failed pods deleted with per-node backoff,
  extra pods deleted (the oldest kept; when surging, old and new as
  upstream keeps them), pods on nodes that should not run them deleted;
- updates: RollingUpdate deletes old pods while at most maxUnavailable
  are unavailable (maxSurge 0), or with maxSurge creates the new pod
  first and deletes the old one once the new is available; OnDelete
  replaces only pods deleted by someone else;
- old revisions past revisionHistoryLimit, not used by a live pod, are
  deleted oldest first;
- status: desiredNumberScheduled, currentNumberScheduled, numberReady,
  numberAvailable, numberUnavailable, updatedNumberScheduled,
  numberMisscheduled, observedGeneration (collisionCount on a hash clash),
  which `kubectl rollout status ds/x` reads.

`workers` is --concurrent-daemonset-syncs (2).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple, Union

from megaplane.apimachinery.meta import parse_rfc3339
from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.client import (
    AlreadyExistsError,
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

from .deploymentutil import InvalidIntOrString, compute_hash, scaled_value
from .events import EventRecorder
from .expectations import ControllerExpectations
from .history import CONTROLLER_REVISION_HASH_LABEL, sort_revisions, template_patch
from .nodematch import matches_required_affinity, target_node_name, untolerated_taint
from .podutil import (
    CONTROLLER_UID_INDEX,
    SLOW_START_INITIAL_BATCH_SIZE,
    controller_of,
    controller_ref,
    controller_uid_index,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
    slow_start_batch,
)
from .refmanager import CannotAdoptError, claim, resolve_controller_ref, selecting_owners

__all__ = ["DaemonSetController", "DAEMON_TOLERATIONS", "add_daemon_tolerations", "node_should_run_daemon_pod"]

log = logging.getLogger("megaplane.controllers.daemonset")

API_VERSION, KIND = "apps/v1", "DaemonSet"
#: Upstream's BurstReplicas for daemon sets.
BURST_REPLICAS = 250
#: The set's template generation (the API server's deprecated annotation) and the pods' label for it.
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
#: Failed pods on a node are deleted at most this often, doubling up to the maximum (failedPodsBackoff).
FAILED_PODS_BACKOFF = (1.0, 15 * 60.0)

#: What AddOrUpdateDaemonPodTolerations adds (the last only for hostNetwork pods).
DAEMON_TOLERATIONS: Tuple[Dict[str, str], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                                  "effect": "NoSchedule"}

Obj = Dict[str, Any]




def add_daemon_tolerations(spec: Obj) -> None:
    """AddOrUpdateTolerationInPodSpec for each daemon toleration: a toleration of the same key, operator,
    value and effect is replaced, else it is appended."""
    tolerations: List[Obj] = list(spec.get("tolerations") or [])
    wanted = list(DAEMON_TOLERATIONS) + ([NETWORK_UNAVAILABLE_TOLERATION] if spec.get("hostNetwork") else [])
    for want in wanted:
        for i, t in enumerate(tolerations):
            if all((t.get(k) or "") == (want.get(k) or "") for k in ("key", "operator", "value", "effect")):
                tolerations[i] = dict(want)
                break
        else:
            tolerations.append(dict(want))
    spec["tolerations"] = tolerations


def _daemon_pod_spec(ds: Mapping[str, Any]) -> Obj:
    spec = copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    add_daemon_tolerations(spec)
    return spec


def node_should_run_daemon_pod(node: Mapping[str, Any], ds: Mapping[str, Any],
                               pod_spec: Optional[Mapping[str, Any]] = None) -> Tuple[bool, bool]:
    """(should run a new daemon pod, may keep the one it has): NodeShouldRunDaemonPod."""
    spec = pod_spec if pod_spec is not None else _daemon_pod_spec(ds)
    name = (node.get("metadata") or {}).get("name")
    wanted = spec.get("nodeName")
    if wanted and wanted != name:
        return False, False
    if not matches_required_affinity(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or ()
    tolerations = spec.get("tolerations") or ()
    if untolerated_taint(taints, tolerations, lambda t: t.get("effect") in ("NoSchedule", "NoExecute")) is None:
        return True, True
    # Scheduled daemon pods keep running unless a NoExecute taint is not tolerated.
    return False, untolerated_taint(taints, tolerations, lambda t: t.get("effect") == "NoExecute") is None


def replace_node_name_affinity(spec: Obj, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become one matchFields metadata.name In [node]."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = spec.setdefault("affinity", {}) or {}
    spec["affinity"] = affinity
    node_affinity = affinity.setdefault("nodeAffinity", {}) or {}
    affinity["nodeAffinity"] = node_affinity
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}
    else:
        required["nodeSelectorTerms"] = [term]


def _stamp(pod: Mapping[str, Any]) -> float:
    at = parse_rfc3339(str((pod.get("metadata") or {}).get("creationTimestamp") or ""))
    return at.timestamp() if at is not None else 0.0


def _by_creation_and_phase(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """podByCreationTimestampAndPhase: scheduled first, then older, then by name."""
    sa, sb = bool((a.get("spec") or {}).get("nodeName")), bool((b.get("spec") or {}).get("nodeName"))
    if sa != sb:
        return -1 if sa else 1
    ta, tb = _stamp(a), _stamp(b)
    if ta != tb:
        return -1 if ta < tb else 1
    na, nb = a["metadata"]["name"], b["metadata"]["name"]
    return -1 if na < nb else (1 if na > nb else 0)


def _sorted_pods(pods: List[Obj]) -> List[Obj]:
    return sorted(pods, key=functools.cmp_to_key(_by_creation_and_phase))


def _template_generation(ds: Mapping[str, Any]) -> Optional[str]:
    value = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    return str(value) if value else None


def is_pod_updated(pod: Mapping[str, Any], hash_: str, generation: Optional[str]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation:
        return True
    return bool(hash_) and labels.get(CONTROLLER_REVISION_HASH_LABEL) == hash_


def _rolling(ds: Mapping[str, Any]) -> Mapping[str, Any]:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    return (strategy.get("rollingUpdate") or {}) if strategy.get("type", "RollingUpdate") == "RollingUpdate" else {}


def _allows_surge(ds: Mapping[str, Any]) -> bool:
    surge = _rolling(ds).get("maxSurge")
    try:
        return surge is not None and scaled_value(surge, 100, True) != 0
    except InvalidIntOrString:
        return False


class StaleCollisionCountError(Exception):
    """The collision count a revision name was hashed with is older than the set's: retry with the new one."""


class _Backoff:
    """Per-key exponential delays (flowcontrol.Backoff, for deleting failed daemon pods)."""

    def __init__(self, clock: Clock, initial: float, most: float) -> None:
        self.clock, self.initial, self.most = clock, initial, most
        self._entries: Dict[str, Tuple[float, float]] = {}  # key -> (delay, last update)

    def in_backoff(self, key: str) -> Optional[float]:
        entry = self._entries.get(key)
        if entry is None:
            return None
        delay, at = entry
        left = at + delay - self.clock.monotonic()
        return left if left > 0 else None

    def next(self, key: str) -> None:
        entry = self._entries.get(key)
        now = self.clock.monotonic()
        if entry is None or now - entry[1] > 2 * self.most:
            self._entries[key] = (self.initial, now)
        else:
            self._entries[key] = (min(entry[0] * 2, self.most), now)


class DaemonSetController(QueueController):
    def __init__(self, client: Client, *, workers: int = 2, clock: Clock = REAL_CLOCK,
                 burst_replicas: int = BURST_REPLICAS,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("daemonset-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.daemonsets = client.resource("apps/v1", "daemonsets")
        self.revisions = client.resource("apps/v1", "controllerrevisions")
        self.pods = client.resource("pods")
        self.nodes = client.resource("nodes")
        self.burst_replicas = burst_replicas
        self.expectations = ControllerExpectations(clock)
        self.failed_backoff = _Backoff(clock, *FAILED_PODS_BACKOFF)
        self._specs: Dict[str, Tuple[str, Obj]] = {}
        self.recorder = EventRecorder(client, "daemonset-controller", clock=clock)
        self.ds_informer = self.shared_informer(self.daemonsets)
        self.revision_informer = self.shared_informer(self.revisions, indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.pod_informer = self.shared_informer(self.pods, indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.node_informer = self.shared_informer(self.nodes)
        self.ds_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new), self._ds_deleted)
        self.revision_informer.add_event_handler(self._owned_changed, lambda old, new: self._owned_changed(new),
                                                 self._owned_deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.node_informer.add_event_handler(self._node_added, self._node_updated, self._node_deleted)
        self.created = 0
        self.deleted = 0

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, ds: Obj) -> None:
        self.queue.add(object_key(ds))

    def _ds_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._specs.pop(str((final_state(obj).get("metadata") or {}).get("uid")), None)
        key = object_key(final_state(obj))
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Optional[Mapping[str, Any]]) -> Optional[Obj]:
        return resolve_controller_ref(self.ds_informer.lister, namespace, ref, KIND, "apps")

    def _matching_sets(self, obj: Obj) -> List[Obj]:
        return selecting_owners(self.ds_informer.lister, obj)

    def _owned_changed(self, obj: Obj) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        ds = self._resolve(namespace, controller_of(obj))
        if ds is not None:
            self._enqueue(ds)
        elif controller_of(obj) is None:
            for ds in self._matching_sets(obj):
                self._enqueue(ds)

    def _owned_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        o = final_state(obj)
        ds = self._resolve((o.get("metadata") or {}).get("namespace") or "", controller_of(o))
        if ds is not None:
            self._enqueue(ds)

    def _pod_added(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            ds = self._resolve(meta.get("namespace") or "", ref)
            if ds is not None:
                key = object_key(ds)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for ds in self._matching_sets(pod):
            self._enqueue(ds)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        om, cm = old["metadata"], cur["metadata"]
        if om.get("resourceVersion") == cm.get("resourceVersion"):
            return
        if cm.get("deletionTimestamp"):
            self._pod_deleted(cur)
            return
        namespace = cm.get("namespace") or ""
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        if (cur_ref or {}).get("uid") != (old_ref or {}).get("uid"):
            ds = self._resolve(namespace, old_ref)
            if ds is not None:
                self._enqueue(ds)
        if cur_ref is not None:
            ds = self._resolve(namespace, cur_ref)
            if ds is not None:
                self._enqueue(ds)
                min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    self.queue.add_after(object_key(ds), float(min_ready))
            return
        if om.get("labels") != cm.get("labels") or old_ref is not None:
            for ds in self._matching_sets(cur):
                self._enqueue(ds)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        pod = final_state(obj)
        ds = self._resolve((pod.get("metadata") or {}).get("namespace") or "", controller_of(pod))
        if ds is None:
            return
        key = object_key(ds)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    def _spec_of(self, ds: Obj) -> Obj:
        """The set's daemon pod spec, built once per resourceVersion (node events ask for it per node)."""
        meta = ds["metadata"]
        cached = self._specs.get(meta["uid"])
        if cached is not None and cached[0] == meta.get("resourceVersion"):
            return cached[1]
        spec = _daemon_pod_spec(ds)
        self._specs[meta["uid"]] = (str(meta.get("resourceVersion")), spec)
        return spec

    def _node_added(self, node: Obj) -> None:
        for ds in self.ds_informer.lister.list():
            if node_should_run_daemon_pod(node, ds, self._spec_of(ds))[0]:
                self._enqueue(ds)

    def _node_updated(self, old: Obj, cur: Obj) -> None:
        if old.get("metadata", {}).get("labels") == cur.get("metadata", {}).get("labels") \
                and old.get("spec") == cur.get("spec"):
            return  # heartbeats and status: nothing daemon placement reads (shouldIgnoreNodeUpdate)
        for ds in self.ds_informer.lister.list():
            spec = self._spec_of(ds)
            if node_should_run_daemon_pod(old, ds, spec) != node_should_run_daemon_pod(cur, ds, spec):
                self._enqueue(ds)

    def _node_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        for ds in self.ds_informer.lister.list():
            self._enqueue(ds)  # its pods are the pod GC's; the status counts change

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        cached = self.ds_informer.lister.get(namespace, name)
        if cached is None:
            self.expectations.delete(key)
            return
        ds = copy.deepcopy(cached)
        meta = ds["metadata"]
        selector = selector_from_dict((ds.get("spec") or {}).get("selector") or {})
        if selector is None:
            self.recorder.event(self._ref(ds), "Warning", "SelectingAll",
                                "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        if meta.get("deletionTimestamp"):
            return
        nodes = self.node_informer.lister.list()
        cur, old = await self.construct_history(ds)
        hash_ = (cur["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
        if not self.expectations.satisfied(key):
            await self._update_status(ds, nodes, hash_, False)
            return
        error: Optional[BaseException] = None
        try:
            await self.manage(ds, nodes, hash_)
            if self.expectations.satisfied(key) and \
                    ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
                await self.rolling_update(ds, nodes, hash_)
        except (StatusError, InvalidIntOrString) as exc:
            error = exc
        await self.cleanup_history(ds, old)
        await self._update_status(ds, nodes, hash_, True)
        if error is not None:
            raise error

    def _ref(self, ds: Mapping[str, Any]) -> Dict[str, str]:
        meta = ds["metadata"]
        return {"kind": KIND, "apiVersion": API_VERSION, "name": meta["name"], "namespace": meta["namespace"],
                "uid": meta["uid"], "resourceVersion": str(meta.get("resourceVersion") or "")}

    async def _can_adopt(self, ds: Mapping[str, Any]) -> None:
        meta = ds["metadata"]
        fresh = await self.daemonsets.get(meta["name"], meta["namespace"])
        if fresh["metadata"].get("uid") != meta["uid"]:
            raise CannotAdoptError(f"original DaemonSet {meta['namespace']}/{meta['name']} is gone: got uid "
                                   f"{fresh['metadata'].get('uid')}, wanted {meta['uid']}")
        if fresh["metadata"].get("deletionTimestamp"):
            raise CannotAdoptError(f"{meta['namespace']}/{meta['name']} has just been deleted at "
                                   f"{fresh['metadata']['deletionTimestamp']}")

    async def _claim(self, informer: SharedInformer, client: Any, ds: Obj) -> List[Obj]:
        meta = ds["metadata"]
        lister = informer.lister
        candidates = lister.by_index(CONTROLLER_UID_INDEX, meta["uid"]) + [
            o for o in lister.by_index(CONTROLLER_UID_INDEX, "") if o["metadata"].get("namespace") == meta["namespace"]]
        candidates.sort(key=lambda o: o["metadata"].get("name", ""))
        selector = selector_from_dict((ds.get("spec") or {}).get("selector") or {})
        return await claim(client, candidates, ds, selector, controller_ref(ds, API_VERSION, KIND),
                           functools.partial(self._can_adopt, ds))

    # -- history ----------------------------------------------------------------------------------

    async def construct_history(self, ds: Obj) -> Tuple[Obj, List[Obj]]:
        """(the current revision, the old ones): constructHistory."""
        revisions = await self._claim(self.revision_informer, self.revisions, ds)
        patch = template_patch(ds)
        current: List[Obj] = []
        old: List[Obj] = []
        for r in revisions:
            labels = (r["metadata"].get("labels") or {})
            if CONTROLLER_REVISION_HASH_LABEL not in labels:
                body = copy.deepcopy(r)
                body["metadata"].setdefault("labels", {})[CONTROLLER_REVISION_HASH_LABEL] = r["metadata"]["name"]
                r = await self.revisions.update(body)
            (current if r.get("data") == patch else old).append(r)
        number = max((int(r.get("revision") or 0) for r in old), default=0) + 1
        if not current:
            cur = await self._snapshot(ds, number)
        else:
            cur = await self._dedup(ds, current)
            if int(cur.get("revision") or 0) < number:
                body = copy.deepcopy(cur)
                body["revision"] = number
                cur = await self.revisions.update(body)
        return cur, old

    async def _snapshot(self, ds: Obj, number: int) -> Obj:
        meta = ds["metadata"]
        collisions = (ds.get("status") or {}).get("collisionCount")
        template = (ds.get("spec") or {}).get("template") or {}
        hash_ = compute_hash(template, collisions)
        labels = dict(((template.get("metadata") or {}).get("labels")) or {})
        labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
        body: Obj = {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{meta['name']}-{hash_}", "namespace": meta["namespace"], "labels": labels,
                         "ownerReferences": [controller_ref(ds, API_VERSION, KIND)]},
            "data": template_patch(ds), "revision": number,
        }
        if meta.get("annotations"):
            body["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            return await self.revisions.create(body, meta["namespace"])
        except AlreadyExistsError:
            existing = await self.revisions.get(body["metadata"]["name"], meta["namespace"])
            if existing.get("data") == body["data"]:
                return existing
            # A different template hashed to this name: bump collisionCount (on a fresh read) and retry.
            fresh = await self.daemonsets.get(meta["name"], meta["namespace"])
            if (fresh.get("status") or {}).get("collisionCount") != collisions:
                raise StaleCollisionCountError(f"found a stale collision count ({collisions}, expected "
                                    f"{(fresh.get('status') or {}).get('collisionCount')}) of DaemonSet "
                                    f"{meta['name']!r} while processing; will retry until it is updated") from None
            status = fresh.setdefault("status", {})
            status["collisionCount"] = int(collisions or 0) + 1
            await self.daemonsets.update_status(fresh)
            raise

    async def _dedup(self, ds: Obj, current: List[Obj]) -> Obj:
        """Keep the newest of several revisions of the same template; relabel its pods (dedupCurHistories)."""
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: int(r.get("revision") or 0))
        keep_hash = (keep["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
        for r in current:
            if r is keep:
                continue
            dup_hash = (r["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
            for pod in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, ds["metadata"]["uid"]):
                if (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) == dup_hash:
                    await self.pods.patch(pod["metadata"]["name"], {"metadata": {"labels": {
                        CONTROLLER_REVISION_HASH_LABEL: keep_hash}}}, pod["metadata"]["namespace"])
            try:
                await self.revisions.delete(r["metadata"]["name"], r["metadata"]["namespace"])
            except NotFoundError:
                pass
        return keep

    async def cleanup_history(self, ds: Obj, old: List[Obj]) -> None:
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10))
        excess = len(old) - limit
        if excess <= 0:
            return
        live = {(p["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
                for p in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, ds["metadata"]["uid"])}
        for r in sort_revisions(old):
            if excess <= 0:
                break
            if (r["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) in live:
                continue
            try:
                await self.revisions.delete(r["metadata"]["name"], r["metadata"]["namespace"])
            except NotFoundError:
                pass
            excess -= 1

    # -- pods per node ----------------------------------------------------------------------------

    async def nodes_to_daemon_pods(self, ds: Obj, include_deleted_terminal: bool = False) -> Dict[str, List[Obj]]:
        pods = await self._claim(self.pod_informer, self.pods, ds)
        out: Dict[str, List[Obj]] = {}
        for pod in pods:
            if not include_deleted_terminal and pod["metadata"].get("deletionTimestamp") and \
                    (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue  # the kubelet or the pod GC finishes it: nothing left for us
            node = target_node_name(pod)
            if node is None:
                log.info("pod %s of DaemonSet %s names no node", object_key(pod), object_key(ds))
                continue
            out.setdefault(node, []).append(pod)
        return out

    def _pods_should_be_on_node(self, node: Obj, by_node: Mapping[str, List[Obj]], ds: Obj, spec: Obj,
                                hash_: str) -> Tuple[List[str], List[Obj]]:
        should_run, should_continue = node_should_run_daemon_pod(node, ds, spec)
        name = node["metadata"]["name"]
        pods = by_node.get(name)
        need: List[str] = []
        delete: List[Obj] = []
        if should_run and not pods:
            need.append(name)
        elif should_continue and pods:
            running: List[Obj] = []
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    backoff_key = f"{ds['metadata']['uid']}/{name}"
                    left = self.failed_backoff.in_backoff(backoff_key)
                    if left is not None:
                        self.queue.add_after(object_key(ds), left)
                        continue
                    self.failed_backoff.next(backoff_key)
                    self.recorder.event(self._ref(ds), "Warning", "FailedDaemonPod",
                                        f"Found failed daemon pod {pod['metadata']['namespace']}/"
                                        f"{pod['metadata']['name']} on node {name}, will try to kill it")
                    delete.append(pod)
                elif phase == "Succeeded":
                    self.recorder.event(self._ref(ds), "Normal", "SucceededDaemonPod",
                                        f"Found succeeded daemon pod {pod['metadata']['namespace']}/"
                                        f"{pod['metadata']['name']} on node {name}, will try to delete it")
                    delete.append(pod)
                else:
                    running.append(pod)
            running = _sorted_pods(running)
            if not _allows_surge(ds):
                delete += running[1:]  # more than one: keep the oldest
            elif not running:
                if should_run:
                    need.append(name)
            elif len(running) > 1:
                # Surging: keep the oldest new pod and the oldest old one, the old one only while it is ready
                # and the new one not yet available.
                oldest_new: Optional[Obj] = None
                oldest_old: Optional[Obj] = None
                for pod in running:
                    is_new = (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) == hash_
                    if is_new and oldest_new is None:
                        oldest_new = pod
                    elif not is_new and oldest_old is None:
                        oldest_old = pod
                    else:
                        delete.append(pod)
                if oldest_new is not None and oldest_old is not None:
                    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
                    if not is_pod_ready(oldest_old) or is_pod_available(oldest_new, min_ready, self.clock.time()):
                        delete.append(oldest_old)
        elif not should_continue and pods:
            delete += [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return need, delete

    async def manage(self, ds: Obj, nodes: List[Obj], hash_: str) -> None:
        by_node = await self.nodes_to_daemon_pods(ds)
        spec = _daemon_pod_spec(ds)
        need: List[str] = []
        delete: List[Obj] = []
        for node in nodes:
            n, d = self._pods_should_be_on_node(node, by_node, ds, spec, hash_)
            need += n
            delete += d
        # Unscheduled pods for nodes that are gone would never be bound nor collected.
        known = {n["metadata"]["name"] for n in nodes}
        for node_name, pods in by_node.items():
            if node_name not in known:
                delete += [p for p in pods if not (p.get("spec") or {}).get("nodeName")
                           and not p["metadata"].get("deletionTimestamp")]
        await self.sync_nodes(ds, delete, need, hash_)

    async def sync_nodes(self, ds: Obj, delete: List[Obj], need: List[str], hash_: str) -> None:
        key = object_key(ds)
        creates = need[:self.burst_replicas]
        deletes = delete[:self.burst_replicas]
        self.expectations.expect(key, len(creates), [object_key(p) for p in deletes])
        template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        add_daemon_tolerations(template.setdefault("spec", {}))
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        generation = _template_generation(ds)
        if generation is not None:
            labels[TEMPLATE_GENERATION_LABEL] = generation
        if hash_:
            labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
        ref = controller_ref(ds, API_VERSION, KIND)
        namespace = ds["metadata"]["namespace"]
        errors: List[BaseException] = []
        pending = list(creates)

        async def create() -> None:
            node_name = pending.pop(0)
            body = pod_from_template(template, ds, ref)
            replace_node_name_affinity(body["spec"], node_name)
            try:
                created = await self.pods.create(body, namespace)
            except StatusError as exc:
                if "NamespaceTerminating" in str((exc.details or {}).get("causes") or ""):
                    return
                self.expectations.creation_observed(key)
                self.recorder.event(self._ref(ds), "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            self.created += 1
            self.recorder.event(self._ref(ds), "Normal", "SuccessfulCreate",
                                f"Created pod: {created['metadata']['name']}")

        if creates:
            done, error = await slow_start_batch(len(creates), SLOW_START_INITIAL_BATCH_SIZE, create)
            skipped = len(pending)
            for _ in range(skipped):
                self.expectations.creation_observed(key)  # never sent: never observed
            if error is not None:
                errors.append(error)

        async def remove(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.pods.delete(meta["name"], meta["namespace"])
            except StatusError as exc:
                self.expectations.deletion_observed(key, object_key(pod))
                if not isinstance(exc, NotFoundError):
                    self.recorder.event(self._ref(ds), "Warning", "FailedDelete", f"Error deleting: {exc}")
                    raise
                return
            self.deleted += 1
            self.recorder.event(self._ref(ds), "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        results = await asyncio.gather(*(remove(p) for p in deletes), return_exceptions=True)
        errors += [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    # -- rolling update ---------------------------------------------------------------------------

    def _desired_counts(self, ds: Obj, nodes: List[Obj], by_node: Dict[str, List[Obj]],
                        spec: Obj) -> Tuple[int, int, int]:
        desired = 0
        for node in nodes:
            if node_should_run_daemon_pod(node, ds, spec)[0]:
                desired += 1
                by_node.setdefault(node["metadata"]["name"], [])
        rolling = _rolling(ds)
        max_unavailable = scaled_value(rolling.get("maxUnavailable", 1), desired, True) if rolling else 0
        max_surge = scaled_value(rolling.get("maxSurge", 0), desired, True) if rolling else 0
        if desired > 0 and max_unavailable == 0 and max_surge == 0:
            max_unavailable = 1  # an impossible configuration: upstream accepts one unavailable
        return max_surge, max_unavailable, desired

    def _updated_pods_on_node(self, ds: Obj, pods: List[Obj],
                              hash_: str) -> Tuple[Optional[Obj], Optional[Obj], bool]:
        new: Optional[Obj] = None
        old: Optional[Obj] = None
        generation = _template_generation(ds)
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if is_pod_updated(pod, hash_, generation):
                if new is not None:
                    return None, None, False
                new = pod
            else:
                if old is not None:
                    return None, None, False
                old = pod
        return new, old, True

    async def rolling_update(self, ds: Obj, nodes: List[Obj], hash_: str) -> None:
        by_node = await self.nodes_to_daemon_pods(ds)
        spec = _daemon_pod_spec(ds)
        max_surge, max_unavailable, desired = self._desired_counts(ds, nodes, by_node, spec)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.clock.time()
        node_by_name = {n["metadata"]["name"]: n for n in nodes}

        def available(pod: Obj) -> bool:
            return is_pod_available(pod, min_ready, now)

        if max_surge == 0:
            unavailable = 0
            replace: List[Obj] = []
            candidates: List[Obj] = []
            for node_name in sorted(by_node):
                new, old, ok = self._updated_pods_on_node(ds, by_node[node_name], hash_)
                if not ok or (old is None) == (new is None):
                    unavailable += 1  # the manage loop settles this node first
                elif new is not None:
                    if not available(new):
                        unavailable += 1
                elif old is not None and not available(old):
                    replace.append(old)
                elif old is not None and unavailable < max_unavailable:
                    candidates.append(old)
            room = max(0, min(max_unavailable - unavailable, len(candidates)))
            await self.sync_nodes(ds, replace + candidates[:room], [], hash_)
            return
        delete: List[Obj] = []
        should_not_run: List[Obj] = []
        candidate_nodes: List[str] = []
        allowed_nodes: List[str] = []
        surging = 0
        available_count = 0
        for node_name in sorted(by_node):
            new, old, ok = self._updated_pods_on_node(ds, by_node[node_name], hash_)
            if not ok:
                surging += 1
                continue
            if old is not None:
                available_count += available(old)
            elif new is not None:
                available_count += available(new)
            if old is None:
                continue
            node = node_by_name.get(node_name)
            runs = node is not None and node_should_run_daemon_pod(node, ds, spec)[0]
            if new is None:
                if not available(old):
                    if not runs:
                        delete.append(old)
                    else:
                        allowed_nodes.append(node_name)
                elif not runs:
                    should_not_run.append(old)
                elif surging < max_surge:
                    candidate_nodes.append(node_name)
            elif not available(new):
                surging += 1
            else:
                delete.append(old)
        deletable = available_count - desired
        if deletable > 0:
            delete += should_not_run[:deletable]
        room = max(0, min(max_surge - surging, len(candidate_nodes)))
        await self.sync_nodes(ds, delete, allowed_nodes + candidate_nodes[:room], hash_)

    # -- status -----------------------------------------------------------------------------------

    async def _update_status(self, ds: Obj, nodes: List[Obj], hash_: str, observe_generation: bool) -> None:
        by_node = await self.nodes_to_daemon_pods(ds)
        spec = _daemon_pod_spec(ds)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        generation = _template_generation(ds)
        now = self.clock.time()
        desired = current = misscheduled = ready = updated = available = 0
        for node in nodes:
            should_run, _ = node_should_run_daemon_pod(node, ds, spec)
            pods = by_node.get(node["metadata"]["name"]) or []
            if should_run:
                desired += 1
                if not pods:
                    continue
                current += 1
                pod = _sorted_pods(pods)[0]
                if is_pod_ready(pod):
                    ready += 1
                    if is_pod_available(pod, min_ready, now):
                        available += 1
                if is_pod_updated(pod, hash_, generation):
                    updated += 1
            elif pods:
                misscheduled += 1
        counts = {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
                  "numberMisscheduled": misscheduled, "numberReady": ready, "updatedNumberScheduled": updated,
                  "numberAvailable": available, "numberUnavailable": desired - available}
        await self._store_status(ds, counts, observe_generation)
        if min_ready > 0 and ready != available:
            self.queue.add_after(object_key(ds), float(min_ready))

    async def _store_status(self, ds: Obj, counts: Mapping[str, int], observe_generation: bool) -> None:
        status = dict(ds.get("status") or {})
        generation = int(ds["metadata"].get("generation") or 0)
        same = all(int(status.get(k) or 0) == v for k, v in counts.items())
        if same and (not observe_generation or int(status.get("observedGeneration") or 0) >= generation):
            return
        for k, v in counts.items():
            if v:
                status[k] = v
            else:
                status.pop(k, None)  # omitempty, as the server returns it
        for k in ("desiredNumberScheduled", "currentNumberScheduled", "numberMisscheduled", "numberReady"):
            status.setdefault(k, 0)  # required fields
        if observe_generation:
            status["observedGeneration"] = generation
        body = dict(ds)
        body["status"] = status
        try:
            await self.daemonsets.update_status(body)
        except ConflictError:
            fresh = await self.daemonsets.get(ds["metadata"]["name"], ds["metadata"]["namespace"])
            fresh["status"] = {**(fresh.get("status") or {}), **status}
            await self.daemonsets.update_status(fresh)
        except NotFoundError:
            pass

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(created=float(self.created), deleted=float(self.deleted),
                     expectations=float(len(self.expectations)))
        return stats

