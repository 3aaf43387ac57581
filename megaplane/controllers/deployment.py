"""The Deployment controller: ReplicaSets per pod template, rolled by the Deployment's strategy.

As kube-controller-manager's deployment controller (pkg/controller/deployment):
a sync claims the Deployment's ReplicaSets (`refmanager.claim`), finds the
new one (its template equal to the Deployment's but for the
pod-template-hash label) or creates `<deploy>-<hash>`, and then

- paused, or a scaling event (an active set's desired-replicas annotation
  differs from spec.replicas): only scale, proportionally across active
  sets (`_scale`), and clean up old sets when paused;
- RollingUpdate (`rollout.py`): scale the new set up within maxSurge, old
  sets down within maxUnavailable (unhealthy replicas first);
- Recreate (`rollout.py`): old sets to 0, wait until their pods are gone,
  then the new set to spec.replicas.

Revisions live in `deployment.kubernetes.io/revision` on the sets and the
Deployment; old sets beyond revisionHistoryLimit with no pods are deleted.
Status: replicas, updatedReplicas, readyReplicas, availableReplicas,
unavailableReplicas, observedGeneration, collisionCount, and the Available
and Progressing conditions (progressDeadlineSeconds timed on the wall
clock, woken up by a delayed requeue).

`workers` is --concurrent-deployment-syncs (5).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple, Union

from megaplane.apimachinery.meta import now_rfc3339, parse_rfc3339
from megaplane.apimachinery.selectors import matches_labels, selector_from_dict
from megaplane.client import (
    AlreadyExistsError,
    Client,
    DeletedFinalStateUnknown,
    NotFoundError,
    object_key,
)
from megaplane.client.cache import deep_copy, final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock

from . import deploymentutil as du
from .podutil import CONTROLLER_UID_INDEX, controller_of, controller_ref, controller_uid_index
from .refmanager import CannotAdoptError, claim
from .rollout import rollout_recreate, rollout_rolling

__all__ = ["DeploymentController", "calculate_status"]

log = logging.getLogger("megaplane.controllers.deployment")

API_VERSION, KIND = "apps/v1", "Deployment"

Obj = Dict[str, Any]




def _replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _omit_zero(status: Obj, fields: Tuple[str, ...]) -> Obj:
    """Drop zero counts as Go's `omitempty` does, so a status compares equal to what the server returns."""
    for f in fields:
        if not status.get(f):
            status.pop(f, None)
    return status


_STATUS_COUNTS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                  "unavailableReplicas")


def calculate_status(all_rss: List[Obj], new_rs: Optional[Obj], d: Obj) -> Obj:
    """The Deployment's status from its sets (calculateStatus), conditions carried over plus Available."""
    available = du.available_replica_count(all_rss)
    unavailable = max(du.replica_count(all_rss) - available, 0)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": du.actual_replica_count(all_rss),
        "updatedReplicas": du.actual_replica_count([new_rs]),
        "readyReplicas": du.ready_replica_count(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    now = now_rfc3339()
    if available >= _replicas(d) - du.max_unavailable(d):
        cond = du.new_condition("Available", "True", "MinimumReplicasAvailable",
                                "Deployment has minimum availability.", now)
    else:
        cond = du.new_condition("Available", "False", "MinimumReplicasUnavailable",
                                "Deployment does not have minimum availability.", now)
    du.set_condition(status, cond)
    return _omit_zero(status, _STATUS_COUNTS)


class DeploymentController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("deployment-controller", workers=workers, clock=clock, informers=informers)
        self.deployments = client.resource("apps/v1", "deployments")
        self.replicasets = client.resource("apps/v1", "replicasets")
        self.d_informer = self.shared_informer(self.deployments)
        self.rs_informer = self.shared_informer(self.replicasets,
                                                        indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.pod_informer = self.shared_informer(client.resource("pods"),
                                                         indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.d_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                          lambda obj: self._enqueue(final_state(obj)))
        self.rs_informer.add_event_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_event_handler(None, None, self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, d: Obj) -> None:
        self.queue.add(object_key(d))

    def _resolve(self, namespace: str, ref: Optional[Mapping[str, Any]]) -> Optional[Obj]:
        if ref is None or ref.get("kind") != KIND or str(ref.get("apiVersion", "")).split("/")[0] != "apps":
            return None
        d = self.d_informer.lister.get(namespace, str(ref.get("name") or ""))
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _matching(self, rs: Obj) -> List[Obj]:
        meta = rs.get("metadata") or {}
        labels = meta.get("labels") or {}
        out = []
        for d in self.d_informer.lister.list(meta.get("namespace") or ""):
            selector = selector_from_dict((d.get("spec") or {}).get("selector") or {})
            if selector and matches_labels(selector, labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = controller_of(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"].get("namespace") or "", ref)
            if d is not None:
                self._enqueue(d)
            return
        for d in self._matching(rs):
            self._enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        namespace = cur["metadata"].get("namespace") or ""
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed:
            d = self._resolve(namespace, old_ref)
            if d is not None:
                self._enqueue(d)
        if cur_ref is not None:
            d = self._resolve(namespace, cur_ref)
            if d is not None:
                self._enqueue(d)
            return
        if ref_changed or old["metadata"].get("labels") != cur["metadata"].get("labels"):
            for d in self._matching(cur):
                self._enqueue(d)

    def _rs_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        rs = final_state(obj)
        d = self._resolve((rs.get("metadata") or {}).get("namespace") or "", controller_of(rs))
        if d is not None:
            self._enqueue(d)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        # Only Recreate waits for pods: the last old pod gone lets the new set scale up.
        pod = final_state(obj)
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.lister.get(namespace, str(ref.get("name") or ""))
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return
        d = self._resolve(namespace, controller_of(rs))
        if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            if not any(self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, r["metadata"]["uid"])
                       for r in self.rs_informer.lister.by_index(CONTROLLER_UID_INDEX, d["metadata"]["uid"])):
                self._enqueue(d)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        cached = self.d_informer.lister.get(namespace, name)
        if cached is None:
            return
        d = deep_copy(cached)  # the sync changes its own copy
        selector = selector_from_dict((d.get("spec") or {}).get("selector") or {})
        if selector is None:
            # An empty selector would select everything: refuse to act, but say we saw this generation.
            generation = int(d["metadata"].get("generation") or 0)
            if int((d.get("status") or {}).get("observedGeneration") or 0) < generation:
                d.setdefault("status", {})["observedGeneration"] = generation
                await self.deployments.update_status(d)
            return
        rs_list = await self._claim_replica_sets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await self.get_all_replica_sets(d, rs_list, False)
            await self.sync_deployment_status(old_rss + ([new_rs] if new_rs else []), new_rs, d)
            return
        await self._check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused") or self._is_scaling_event(d, rs_list):
            await self._sync(d, rs_list)
            return
        if ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            await rollout_recreate(self, d, rs_list, self._pods_by_rs(rs_list))
        else:
            await rollout_rolling(self, d, rs_list)

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> List[Obj]:
        meta = d["metadata"]
        uid, namespace = meta["uid"], meta["namespace"]
        lister = self.rs_informer.lister
        candidates = lister.by_index(CONTROLLER_UID_INDEX, uid) + [
            rs for rs in lister.by_index(CONTROLLER_UID_INDEX, "") if rs["metadata"].get("namespace") == namespace]

        async def can_adopt() -> None:
            fresh = await self.deployments.get(meta["name"], namespace)
            if fresh["metadata"].get("uid") != uid or fresh["metadata"].get("deletionTimestamp"):
                raise CannotAdoptError(f"deployment {namespace}/{meta['name']} changed: cannot adopt")

        claimed = await claim(self.replicasets, candidates, d, selector, controller_ref(d, API_VERSION, KIND),
                              can_adopt)
        # Never change the informer's copies: the sync changes its own.
        return [deep_copy(rs) for rs in claimed]

    def _pods_by_rs(self, rs_list: List[Obj]) -> Dict[str, List[Obj]]:
        return {rs["metadata"]["uid"]: self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, rs["metadata"]["uid"])
                for rs in rs_list}

    def _is_scaling_event(self, d: Obj, rs_list: List[Obj]) -> bool:
        replicas = str(_replicas(d))
        for rs in rs_list:
            if _replicas(rs) > 0:
                desired = ((rs["metadata"].get("annotations") or {}).get(du.DESIRED_REPLICAS))
                if desired is not None and desired != replicas:
                    return True
        return False

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = du.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            return  # a timed-out rollout stays timed out while paused
        paused = bool((d.get("spec") or {}).get("paused"))
        paused_cond = cond is not None and cond.get("reason") == "DeploymentPaused"
        now = now_rfc3339()
        if paused and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", "DeploymentPaused",
                                                      "Deployment is paused", now))
        elif not paused and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", "DeploymentResumed",
                                                      "Deployment is resumed", now))
        else:
            return
        await self._update_status(d)

    async def _update_status(self, d: Obj) -> None:
        updated = await self.deployments.update_status(d)
        d.clear()
        d.update(updated)

    async def _sync(self, d: Obj, rs_list: List[Obj]) -> None:
        """Scale only (paused, or spec.replicas changed mid-rollout), then status."""
        new_rs, old_rss = await self.get_all_replica_sets(d, rs_list, False)
        await self._scale(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self.cleanup(old_rss, d)
        await self.sync_deployment_status(old_rss + ([new_rs] if new_rs else []), new_rs, d)

    async def _scale(self, d: Obj, new_rs: Optional[Obj], old_rss: List[Obj]) -> None:
        replicas = _replicas(d)
        only = du.find_active_or_latest(new_rs, old_rss)
        if only is not None:
            if _replicas(only) != replicas:
                await self.scale_replica_set(only, replicas, d)
            return
        if du.is_saturated(d, new_rs):
            for rs in du.by_creation(old_rss):
                if _replicas(rs) > 0:
                    await self.scale_replica_set(rs, 0, d)
            return
        if not ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            return
        active = [rs for rs in old_rss + ([new_rs] if new_rs else []) if _replicas(rs) > 0]
        allowed = replicas + du.max_surge(d) if replicas > 0 else 0
        to_add = allowed - du.replica_count(active)
        if to_add > 0:  # ReplicaSetsBySizeNewer: bigger first, then newer
            active.sort(key=lambda rs: (-_replicas(rs), _neg(str(rs["metadata"].get("creationTimestamp") or ""))))
        elif to_add < 0:  # ReplicaSetsBySizeOlder: bigger first, then older
            active.sort(key=lambda rs: (-_replicas(rs), str(rs["metadata"].get("creationTimestamp") or "")))
        added = 0
        sizes: Dict[str, int] = {}
        for rs in active:
            share = du.proportion(rs, d, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = _replicas(rs) + share
            added += share
        if to_add and active:
            first = active[0]["metadata"]["name"]
            sizes[first] = max(sizes[first] + to_add - added, 0)
        for rs in active:
            await self.scale_replica_set(rs, sizes[rs["metadata"]["name"]], d, force_annotations=True)

    async def scale_replica_set(self, rs: Obj, new_scale: int, d: Obj, *, force_annotations: bool = False) -> bool:
        """Set `rs` to `new_scale` with the Deployment's desired/max replicas annotations; `rs` is updated in place.

        Without `force_annotations` an unchanged size is a no-op
        (scaleReplicaSetAndRecordEvent); with it, stale annotations alone
        are written too (scaleReplicaSet). Returns whether the size changed.
        """
        size_changed = _replicas(rs) != new_scale
        desired = _replicas(d)
        most = desired + du.max_surge(d)
        if not size_changed and not (force_annotations and du.replicas_annotations_need_update(rs, desired, most)):
            return False
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(body, desired, most)
        updated = await self.replicasets.update(body)
        rs.clear()
        rs.update(updated)
        if size_changed:
            log.info("%s/%s: scaled replica set %s to %d", d["metadata"]["namespace"], d["metadata"]["name"],
                     rs["metadata"]["name"], new_scale)
        return size_changed

    # -- the new and old sets ---------------------------------------------------------------------

    async def get_all_replica_sets(self, d: Obj, rs_list: List[Obj], create: bool) -> Tuple[Optional[Obj], List[Obj]]:
        """(new set, old sets), the new set's revision raised past the old ones' and copied to the Deployment."""
        template = (d.get("spec") or {}).get("template") or {}
        new_rs = next((rs for rs in du.by_creation(rs_list)
                       if du.equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template)), None)
        old_rss = [rs for rs in rs_list if rs is not new_rs]
        new_revision = str(du.max_revision(old_rss) + 1)
        if new_rs is not None:
            return await self._sync_existing(d, new_rs, new_revision), old_rss
        if not create:
            return None, old_rss
        return await self._create_new(d, old_rss, new_revision), old_rss

    async def _sync_existing(self, d: Obj, rs: Obj, new_revision: str) -> Obj:
        annotations_changed = du.set_new_rs_annotations(d, rs, new_revision, True)
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        if annotations_changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            updated = await self.replicasets.update(rs)
            rs.clear()
            rs.update(updated)
            return rs  # the update event brings us back to copy the revision onto the Deployment
        changed = self._set_revision(d, rs["metadata"]["annotations"].get(du.REVISION, new_revision))
        status = d.setdefault("status", {})
        if du.has_progress_deadline(d) and du.get_condition(status, "Progressing") is None:
            du.set_condition(status, du.new_condition("Progressing", "True", "FoundNewReplicaSet",
                                                      f'Found new replica set "{rs["metadata"]["name"]}"',
                                                      now_rfc3339()))
            changed = True
        if changed:
            await self._update_status(d)
        return rs

    @staticmethod
    def _set_revision(d: Obj, value: str) -> bool:
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(du.REVISION) == value:
            return False
        annotations[du.REVISION] = value
        return True

    async def _create_new(self, d: Obj, old_rss: List[Obj], new_revision: str) -> Obj:
        meta = d["metadata"]
        spec = d.get("spec") or {}
        status = d.setdefault("status", {})
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = du.compute_hash(template, status.get("collisionCount"))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = dict(tmeta.get("labels") or {}, **{du.DEFAULT_UNIQUE_LABEL: pod_hash})
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **{du.DEFAULT_UNIQUE_LABEL: pod_hash})
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                         "labels": dict(tmeta["labels"]), "ownerReferences": [controller_ref(d, API_VERSION, KIND)]},
            "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }
        rs["spec"]["replicas"] = du.new_rs_new_replicas(d, old_rss + [rs], rs)
        du.set_new_rs_annotations(d, rs, new_revision, False)
        already_exists = False
        try:
            created = await self.replicasets.create(rs)
        except AlreadyExistsError:
            existing = await self.replicasets.get(rs["metadata"]["name"], meta["namespace"])
            ref = controller_of(existing)
            if ref is None or ref.get("uid") != meta["uid"] or not du.equal_ignore_hash(
                    (existing.get("spec") or {}).get("template") or {}, spec.get("template") or {}):
                # A hash collision: another template (or owner) has the name; the next hash differs.
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                await self._update_status(d)
                raise
            created, already_exists = existing, True
        except Exception as exc:
            if du.has_progress_deadline(d):
                du.set_condition(status, du.new_condition(
                    "Progressing", "False", "ReplicaSetCreateError",
                    f'Failed to create new replica set "{rs["metadata"]["name"]}": {exc}', now_rfc3339()))
                try:
                    await self._update_status(d)
                except Exception as update_exc:  # the create error is the one to report
                    log.debug("recording the create failure: %s", update_exc)
            raise
        changed = self._set_revision(d, new_revision)
        if not already_exists and du.has_progress_deadline(d):
            du.set_condition(status, du.new_condition("Progressing", "True", "NewReplicaSetCreated",
                                                      f'Created new replica set "{created["metadata"]["name"]}"',
                                                      now_rfc3339()))
            changed = True
        if changed:
            await self._update_status(d)
        return created

    async def cleanup(self, old_rss: List[Obj], d: Obj) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit that have no pods (cleanupDeployment)."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - int(limit)
        if surplus <= 0:
            return
        alive.sort(key=lambda rs: (du.revision(rs), str(rs["metadata"].get("creationTimestamp") or "")))
        for rs in alive[:surplus]:
            st = rs.get("status") or {}
            if int(st.get("replicas") or 0) or _replicas(rs) \
                    or int(rs["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0):
                continue  # still has pods, or its controller has not seen its last change
            try:
                await self.replicasets.delete(rs["metadata"]["name"], rs["metadata"]["namespace"])
            except NotFoundError:
                pass

    # -- status -----------------------------------------------------------------------------------

    async def sync_deployment_status(self, all_rss: List[Obj], new_rs: Optional[Obj], d: Obj) -> None:
        status = calculate_status(all_rss, new_rs, d)
        if status != (d.get("status") or {}):
            d["status"] = status
            await self._update_status(d)

    async def sync_rollout_status(self, all_rss: List[Obj], new_rs: Optional[Obj], d: Obj) -> None:
        """Status plus the Progressing condition (syncRolloutStatus); a stuck rollout is looked at again."""
        status = calculate_status(all_rss, new_rs, d)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, "Progressing")
        current = du.get_condition(status, "Progressing")
        complete = status.get("replicas", 0) == status.get("updatedReplicas", 0) and current is not None \
            and current.get("reason") == "NewReplicaSetAvailable"
        now = now_rfc3339()
        if du.has_progress_deadline(d) and not complete:
            what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
            if du.deployment_complete(d, status):
                du.set_condition(status, du.new_condition("Progressing", "True", "NewReplicaSetAvailable",
                                                          f"{what} has successfully progressed.", now))
            elif du.deployment_progressing(d, status):
                cond = du.new_condition("Progressing", "True", "ReplicaSetUpdated", f"{what} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, "Progressing")
                du.set_condition(status, cond)
            elif du.deployment_timed_out(d, status, self.clock.time()):
                du.set_condition(status, du.new_condition("Progressing", "False", "ProgressDeadlineExceeded",
                                                          f"{what} has timed out progressing.", now))
        failures = [c for rs in all_rss for c in (rs.get("status") or {}).get("conditions") or ()
                    if c.get("type") == "ReplicaFailure"]
        if failures:
            f = failures[0]
            du.set_condition(status, {"type": "ReplicaFailure", "status": f.get("status"),
                                      "lastUpdateTime": f.get("lastTransitionTime"),
                                      "lastTransitionTime": f.get("lastTransitionTime"),
                                      "reason": f.get("reason"), "message": f.get("message")})
        else:
            du.remove_condition(status, "ReplicaFailure")
        if status == (d.get("status") or {}):
            self._requeue_stuck(d, status)
            return
        d["status"] = status
        await self._update_status(d)

    def _requeue_stuck(self, d: Obj, status: Obj) -> None:
        current = du.get_condition(status, "Progressing")
        if not du.has_progress_deadline(d) or current is None or du.deployment_complete(d, status) \
                or current.get("reason") == "ProgressDeadlineExceeded":
            return
        since = parse_rfc3339(str(current.get("lastUpdateTime") or ""))
        if since is None:
            return
        after = since.timestamp() + int(d["spec"]["progressDeadlineSeconds"]) - self.clock.time()
        key = object_key(d)
        if after < 1:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, after)


def _neg(text: str) -> Tuple[int, ...]:
    """A sort key that orders strings newest (largest) first."""
    return tuple(-ord(ch) for ch in text)
