"""The disruption controller: each PodDisruptionBudget's status, which the eviction API spends.

As kube-controller-manager's disruption controller (pkg/controller/disruption, 1.32):

- a sync lists the pods the PDB selects (a null selector selects nothing,
  `{}` every pod of its namespace) and computes
  - expectedPods and desiredHealthy: for an integer minAvailable, the
    number of selected pods and minAvailable; for a percentage, or for
    maxUnavailable, the sum of the scales of the pods' controllers (found
    through ownerReferences: a ReplicaSet's Deployment, a ReplicaSet, a
    StatefulSet, else the owner's `scale` subresource), with the percentage
    of it rounded up (desiredHealthy = expected - maxUnavailable, at least 0);
    pods without a controller are left out of the scale (an UnmanagedPods
    event says so);
  - currentHealthy: Ready pods not being deleted and not in disruptedPods;
  - disruptionsAllowed = currentHealthy - desiredHealthy (0 when negative or
    when no pods are expected);
  - disruptedPods: the evictions' entries for pods still there and not yet
    being deleted, each kept at most DeletionTimeout (2 minutes) after the
    eviction; the sync comes back when the earliest one expires;
  - observedGeneration, and the DisruptionAllowed condition
    (SufficientPods / InsufficientPods);
- a sync that fails for any reason but a conflict (no controller found for
  a pod, a scale that cannot be read) writes the fail-safe status instead:
  disruptionsAllowed 0 and DisruptionAllowed False / SyncFailed with the
  error as its message;
- the stale-disruption cleanup: a pod the eviction API marked with
  DisruptionTarget=True that is still not being deleted 2 minutes later
  (its delete failed) gets the condition back to False.

Events as upstream's (component "controllermanager"): NoPods,
CalculateExpectedPodCountFailed, UnmanagedPods on the PDB, NotDeleted on a
pod whose eviction expired. Pod events requeue every PDB that selects the
pod (upstream picks one of them); status writes carry the informer's
resourceVersion, a conflict is retried with the queue's backoff. One
worker, as upstream (no --concurrent-* flag).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple

from megaplane.apimachinery.conditions import (
    DISRUPTION_ALLOWED,
    SYNC_FAILED,
    disruption_allowed_up_to_date,
    find_status_condition,
    set_status_condition,
    update_disruption_allowed_condition,
)
from megaplane.apimachinery.meta import format_rfc3339, parse_rfc3339
from megaplane.apimachinery.selectors import LabelSelector, matches_labels, selector_from_dict
from megaplane.client import (
    BUILTIN,
    Client,
    ConflictError,
    NotFoundError,
    ResourceRef,
    object_key,
)
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .deploymentutil import InvalidIntOrString, scaled_value
from .events import EventRecorder, object_reference
from .podutil import controller_of, is_pod_ready

__all__ = ["DisruptionController", "DELETION_TIMEOUT", "STALE_POD_DISRUPTION_TIMEOUT", "pdb_status"]

log = logging.getLogger("megaplane.controllers.disruption")

#: How long an eviction's disruptedPods entry holds before the pod is expected to be gone (DeletionTimeout).
DELETION_TIMEOUT = 120.0
#: How long a DisruptionTarget condition may stand on a pod that is not being deleted.
STALE_POD_DISRUPTION_TIMEOUT = 120.0
DISRUPTION_TARGET = "DisruptionTarget"
#: The kubelet's reason for DisruptionTarget: never stale (termination may take arbitrarily long to start).
TERMINATION_BY_KUBELET = "TerminationByKubelet"

Obj = Dict[str, Any]
#: Work items: ("pdb", "ns/name") or ("pod", "ns/name") for the stale-condition cleanup.
Key = Tuple[str, str]


class _NoController(Exception):
    """A selected pod's controller could not be found, or its scale read."""



def _rfc3339(seconds: float) -> str:
    return format_rfc3339(datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def _stamp(value: Any) -> Optional[float]:
    at = parse_rfc3339(value) if isinstance(value, str) else None
    return at.timestamp() if at is not None else None


def _selector(pdb: Mapping[str, Any]) -> Tuple[bool, Optional[LabelSelector]]:
    """(selects anything, requirements): LabelSelectorAsSelector (null: nothing, {}: everything)."""
    selector = (pdb.get("spec") or {}).get("selector")
    if not isinstance(selector, dict):
        return False, None
    return True, selector_from_dict(selector)


def _group(api_version: Any) -> str:
    return str(api_version or "").rpartition("/")[0]


def pdb_status(pdb: Mapping[str, Any], current_healthy: int, desired_healthy: int, expected: int,
               disrupted: Mapping[str, str], now: str) -> Optional[Obj]:
    """The status `pdb` should have (updatePdbStatus), or None when its status already says so."""
    allowed = current_healthy - desired_healthy
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = pdb.get("status") or {}
    generation = int((pdb.get("metadata") or {}).get("generation") or 0)
    if (int(status.get("currentHealthy") or 0) == current_healthy
            and int(status.get("desiredHealthy") or 0) == desired_healthy
            and int(status.get("expectedPods") or 0) == expected
            and int(status.get("disruptionsAllowed") or 0) == allowed
            and dict(status.get("disruptedPods") or {}) == dict(disrupted)
            and int(status.get("observedGeneration") or 0) == generation
            and disruption_allowed_up_to_date(pdb)):
        return None
    new: Obj = {"disruptionsAllowed": allowed, "currentHealthy": current_healthy, "desiredHealthy": desired_healthy,
                "expectedPods": expected}
    if generation:
        new["observedGeneration"] = generation
    if disrupted:
        new["disruptedPods"] = dict(disrupted)
    if status.get("conditions"):
        new["conditions"] = status["conditions"]
    update_disruption_allowed_condition(new, now)
    return new


class DisruptionController(QueueController):
    def __init__(self, client: Client, *, clock: Clock = REAL_CLOCK, deletion_timeout: float = DELETION_TIMEOUT,
                 stale_pod_disruption_timeout: float = STALE_POD_DISRUPTION_TIMEOUT,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("disruption-controller", workers=1, clock=clock, informers=informers)
        self.client = client
        self.deletion_timeout = deletion_timeout
        self.stale_pod_disruption_timeout = stale_pod_disruption_timeout
        # Upstream's disruption controller records as "controllermanager".
        self.recorder = EventRecorder(client, "controllermanager", clock=clock)
        self.pdbs = client.resource("policy/v1", "poddisruptionbudgets")
        self.pods = client.resource("pods")
        self.pdb_informer = self.shared_informer(self.pdbs)
        self.pod_informer = self.shared_informer(self.pods)
        self.rs_informer = self.shared_informer(client.resource("apps/v1", "replicasets"))
        self.deploy_informer = self.shared_informer(client.resource("apps/v1", "deployments"))
        self.sts_informer = self.shared_informer(client.resource("apps/v1", "statefulsets"))
        self.pdb_informer.add_event_handler(self._enqueue_pdb, lambda old, new: self._enqueue_pdb(new),
                                            lambda obj: self._enqueue_pdb(final_state(obj)))
        self.pod_informer.add_event_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                                            lambda obj: self._pod_deleted(final_state(obj)))
        # Kinds whose scale a percentage budget may need, by (group, kind): the owner's `scale` subresource.
        self._scalable: Dict[Tuple[str, str], ResourceRef] = {(ref.group, ref.kind): ref for ref in BUILTIN.values()}
        self.status_writes = 0
        self.sync_failures = 0
        self.stale_conditions_reset = 0

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue_pdb(self, pdb: Obj) -> None:
        self.queue.add(("pdb", object_key(pdb)))

    def _pdbs_for_pod(self, pod: Obj) -> List[Obj]:
        """GetPodPodDisruptionBudgets: a PDB with an empty selector selects no pod here (only in its own sync)."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if not labels:
            return []
        out = []
        for pdb in self.pdb_informer.lister.list(meta.get("namespace") or ""):
            _, selector = _selector(pdb)
            if selector and matches_labels(selector, labels):
                out.append(pdb)
        return out

    def _pod_changed(self, pod: Obj) -> None:
        for pdb in self._pdbs_for_pod(pod):
            self._enqueue_pdb(pdb)
        stale_in = self._stale_disruption_in(pod, self.clock.time())
        if stale_in is not None:
            self.queue.add_after(("pod", object_key(pod)), stale_in)

    def _pod_deleted(self, pod: Obj) -> None:
        for pdb in self._pdbs_for_pod(pod):
            self._enqueue_pdb(pdb)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        kind, name = str(key[0]), str(key[1])
        if kind == "pod":
            await self._sync_stale_pod_disruption(name)
            return
        namespace, _, pdb_name = name.rpartition("/")
        pdb = self.pdb_informer.lister.get(namespace, pdb_name)
        if pdb is None:
            return
        try:
            await self._try_sync(pdb)
        except (ConflictError, NotFoundError):
            raise  # a newer copy is on its way (or the PDB is gone): retried with backoff, no fail-safe
        except Exception as exc:
            self.sync_failures += 1
            log.info("disruption-controller: syncing PDB %s failed: %s", name, exc)
            await self._fail_safe(pdb, exc)

    async def _try_sync(self, pdb: Obj) -> None:
        meta = pdb["metadata"]
        namespace = meta.get("namespace") or ""
        pods = self._pods_for(pdb)
        if not pods:
            self._event(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self._expected_pod_count(pdb, pods)
        except Exception as exc:
            self._event(pdb, "Warning", "CalculateExpectedPodCountFailed",
                        f"Failed to calculate the number of expected pods: {exc}")
            raise
        if unmanaged:
            # Not an error (that would hot-loop): the status is computed without them.
            log.info("disruption-controller: PDB %s/%s selects pods without a controller: %s", namespace,
                     meta.get("name"), ", ".join(unmanaged[:5]))
            self._event(pdb, "Warning", "UnmanagedPods",
                        f"Pods selected by this PodDisruptionBudget (selector: {self._selector_text(pdb)}) were "
                        "found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                        "which may result in undefined behavior. To account for these pods please set "
                        '".spec.minAvailable" field of the PDB to an integer value.')
        now = self.clock.time()
        disrupted, recheck = self._disrupted_pods(pods, pdb, now)
        healthy = self._count_healthy(pods, disrupted, now)
        status = pdb_status(pdb, healthy, desired, expected, disrupted, _rfc3339(now))
        if status is not None:
            await self._write_status(pdb, status)
        if recheck is not None:
            self.queue.add_after(("pdb", object_key(pdb)), max(recheck - now, 0.0))

    def _pods_for(self, pdb: Obj) -> List[Obj]:
        selects, selector = _selector(pdb)
        if not selects:
            return []
        pods = self.pod_informer.lister.list(pdb["metadata"].get("namespace") or "")
        return [p for p in pods if matches_labels(selector, (p.get("metadata") or {}).get("labels") or {})]

    async def _expected_pod_count(self, pdb: Obj, pods: List[Obj]) -> Tuple[int, int, List[str]]:
        """getExpectedPodCount: (expectedPods, desiredHealthy, unmanaged pod names)."""
        spec = pdb.get("spec") or {}
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            expected, unmanaged = await self._expected_scale(pdb, pods)
            desired = max(expected - self._scaled(max_unavailable, expected), 0)
            return expected, desired, unmanaged
        if min_available is not None:
            if isinstance(min_available, int) and not isinstance(min_available, bool):
                return len(pods), min_available, []
            expected, unmanaged = await self._expected_scale(pdb, pods)
            return expected, self._scaled(min_available, expected), unmanaged
        return 0, 0, []

    @staticmethod
    def _scaled(value: Any, total: int) -> int:
        try:
            return scaled_value(value, total, True)
        except InvalidIntOrString as exc:
            raise _NoController(str(exc)) from None

    async def _expected_scale(self, pdb: Obj, pods: List[Obj]) -> Tuple[int, List[str]]:
        """getExpectedScale: the sum of the scales of the selected pods' controllers."""
        scales: Dict[str, int] = {}
        seen: Dict[str, str] = {}  # a pod's controller uid -> the uid its scale is counted under
        unmanaged: List[str] = []
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                unmanaged.append(str(pod["metadata"].get("name")))
                continue
            if str(ref.get("uid")) in seen:
                continue
            found = await self._controller_scale(ref, pod["metadata"].get("namespace") or "")
            if found is None:
                raise _NoController(f'found no controllers for pod "{pod["metadata"].get("name")}"')
            uid, replicas = found
            seen[str(ref.get("uid"))] = uid
            scales[uid] = replicas
        return sum(scales.values()), unmanaged

    async def _controller_scale(self, ref: Mapping[str, Any], namespace: str) -> Optional[Tuple[str, int]]:
        """The finders in upstream's order: Deployment (through its ReplicaSet), ReplicaSet, StatefulSet, scale."""
        kind, group, uid = ref.get("kind"), _group(ref.get("apiVersion")), str(ref.get("uid") or "")
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self.rs_informer.lister.get(namespace, str(ref.get("name") or ""))
            if rs is None or rs["metadata"].get("uid") != uid:
                return None
            owner = controller_of(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                if _group(owner.get("apiVersion")) not in ("apps", "extensions"):
                    return None
                d = self.deploy_informer.lister.get(namespace, str(owner.get("name") or ""))
                if d is None or d["metadata"].get("uid") != owner.get("uid"):
                    return None
                return str(d["metadata"]["uid"]), int((d.get("spec") or {}).get("replicas", 1))
            return uid, int((rs.get("spec") or {}).get("replicas", 1))
        if kind == "StatefulSet" and group == "apps":
            sts = self.sts_informer.lister.get(namespace, str(ref.get("name") or ""))
            if sts is None or sts["metadata"].get("uid") != uid:
                return None
            return uid, int((sts.get("spec") or {}).get("replicas", 1))
        if not uid:
            return None
        resource = self._scalable.get((group, str(kind)))
        if resource is None:
            raise _NoController(f'no matches for kind "{kind}" in version "{ref.get("apiVersion")}"')
        try:
            scale = await self.client.resource(resource).get(str(ref.get("name") or ""), namespace,
                                                             subresource="scale")
        except NotFoundError:
            return None
        if (scale.get("metadata") or {}).get("uid") != uid:
            return None
        return uid, int((scale.get("spec") or {}).get("replicas") or 0)

    def _disrupted_pods(self, pods: List[Obj], pdb: Obj, now: float) -> Tuple[Dict[str, str], Optional[float]]:
        """buildDisruptedPodMap: entries for pods still there, not being deleted, within the timeout."""
        old = (pdb.get("status") or {}).get("disruptedPods") or {}
        result: Dict[str, str] = {}
        recheck: Optional[float] = None
        if not old:
            return result, recheck
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            stamp = old.get(meta.get("name"))
            at = _stamp(stamp)
            if at is None:
                continue
            expected_deletion = at + self.deletion_timeout
            if expected_deletion < now:
                self._event(pod, "Warning", "NotDeleted", f"Pod was expected by PDB {pdb['metadata'].get('namespace')}/"
                            f"{pdb['metadata'].get('name')} to be deleted but it wasn't", kind="Pod", api_version="v1")
                continue
            recheck = expected_deletion if recheck is None else min(recheck, expected_deletion)
            result[str(meta.get("name"))] = str(stamp)
        return result, recheck

    def _count_healthy(self, pods: List[Obj], disrupted: Mapping[str, str], now: float) -> int:
        healthy = 0
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            at = _stamp(disrupted.get(str(meta.get("name"))))
            if at is not None and at + self.deletion_timeout > now:
                continue  # its eviction was approved: about to go
            if is_pod_ready(pod):
                healthy += 1
        return healthy

    def _event(self, obj: Obj, event_type: str, reason: str, message: str, *, kind: str = "PodDisruptionBudget",
               api_version: str = "policy/v1") -> None:
        meta = obj.get("metadata") or {}
        ref = object_reference(kind, str(meta.get("name") or ""), str(meta.get("namespace") or ""),
                               str(meta.get("uid") or ""), api_version)
        self.recorder.event(ref, event_type, reason, message)

    @staticmethod
    def _selector_text(pdb: Obj) -> str:
        """How %v prints the *metav1.LabelSelector (its generated String(); expressions left out)."""
        selector = (pdb.get("spec") or {}).get("selector") or {}
        labels = "".join(f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items()))
        return f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{}},}}"

    async def _write_status(self, pdb: Obj, status: Obj) -> None:
        body = dict(pdb)
        body["status"] = status
        await self.pdbs.update_status(body)
        self.status_writes += 1

    async def _fail_safe(self, pdb: Obj, exc: BaseException) -> None:
        """failSafe: no disruptions allowed, DisruptionAllowed False / SyncFailed with the error."""
        status: Obj = dict(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        set_status_condition(status, {"type": DISRUPTION_ALLOWED, "status": "False", "reason": SYNC_FAILED,
                                      "message": str(exc),
                                      "observedGeneration": int(status.get("observedGeneration") or 0)},
                             _rfc3339(self.clock.time()))
        await self._write_status(pdb, status)

    # -- stale DisruptionTarget conditions ----------------------------------------------------------

    def _stale_disruption_in(self, pod: Obj, now: float) -> Optional[float]:
        """nonTerminatingPodHasStaleDisruptionCondition: seconds until the condition is stale, None if it never is."""
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return None
        status = pod.get("status") or {}
        cond = find_status_condition(status, DISRUPTION_TARGET)
        if (cond is None or cond.get("status") != "True" or cond.get("reason") == TERMINATION_BY_KUBELET
                or status.get("phase") in ("Succeeded", "Failed")):
            return None
        since = _stamp(cond.get("lastTransitionTime"))
        if since is None:
            return 0.0
        return max(self.stale_pod_disruption_timeout - (now - since), 0.0)

    async def _sync_stale_pod_disruption(self, key: str) -> None:
        namespace, _, name = key.rpartition("/")
        pod = self.pod_informer.lister.get(namespace, name)
        if pod is None:
            return
        wait = self._stale_disruption_in(pod, self.clock.time())
        if wait is None:
            return
        if wait > 0:
            self.queue.add_after(("pod", key), wait)
            return
        body = dict(pod)
        status = dict(pod.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or () if isinstance(c, dict)]
        for c in conditions:
            if c.get("type") == DISRUPTION_TARGET:
                c["status"] = "False"
                c["lastTransitionTime"] = _rfc3339(self.clock.time())
        status["conditions"] = conditions
        body["status"] = status
        try:
            await self.pods.update_status(body)  # with the informer's resourceVersion: a conflict retries
        except NotFoundError:
            return
        self.stale_conditions_reset += 1
        log.info("disruption-controller: reset stale DisruptionTarget condition of pod %s to False", key)

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(status_writes=float(self.status_writes), sync_failures=float(self.sync_failures),
                     stale_conditions_reset=float(self.stale_conditions_reset))
        return stats
