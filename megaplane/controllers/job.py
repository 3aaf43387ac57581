"""The Job controller: pods until `completions` succeed, within `parallelism`, `backoffLimit` and deadlines.

As kube-controller-manager 1.32's job controller (pkg/controller/job):

- informers on Jobs and pods (indexed by controller uid); pod events are
  batched per Job for a second (syncJobBatchPeriod), Job events sync at once;
- pods are created from the template with the `batch.kubernetes.io/job-tracking`
  finalizer, so a finished pod is counted before it can disappear: a sync
  moves it into `status.uncountedTerminatedPods`, writes that, removes the
  finalizer, then moves it into `succeeded`/`failed` (expectations on
  creates, deletes and finalizer removals keep a stale view from acting
  twice); Indexed Jobs give each pod a completion index (annotation,
  label, hostname `<job>-<i>`, `JOB_COMPLETION_INDEX`) and count
  `completedIndexes` instead;
- failures wait a backoff (10 s doubling, 6 min at most, counted from the
  failures since the last success) before a replacement is created; more
  failures than `backoffLimit`, `activeDeadlineSeconds` passed, or a
  `podFailurePolicy` FailJob rule fail the Job (Ignore rules do not count,
  Count rules do); `suspend` deletes the active pods (condition Suspended);
- the end is written in two steps as 1.32 does: the interim condition
  (SuccessCriteriaMet or FailureTarget) first, then, once no pod is left
  uncounted or terminating, Complete (with completionTime) or Failed;
- pods that still carry the finalizer but whose Job is gone or finished
  (an orphan: the Job deleted in the background, the collector deleting
  its pods) get the finalizer removed from a queue of their own.

`workers` is --concurrent-job-syncs (5). Not here: backoffLimitPerIndex and
FailIndex, successPolicy, managedBy, metrics.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Mapping, Optional, Set, Tuple, Union

import orjson

from megaplane.apimachinery.meta import format_rfc3339, parse_rfc3339
from megaplane.apimachinery.selectors import selector_from_dict
from megaplane.client import (
    Client,
    DeletedFinalStateUnknown,
    NotFoundError,
    StatusError,
    object_key,
)
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.client.workers import Workers
from megaplane.client.workqueue import RateLimitingQueue, default_controller_rate_limiter
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .events import EventRecorder
from .expectations import ControllerExpectations
from .jobutil import (
    COMPLETION_INDEX_ANNOTATION,
    COMPLETION_INDEX_ENV,
    DEFAULT_POD_FAILURE_BACKOFF,
    JOB_TRACKING_FINALIZER,
    MAX_POD_FAILURE_BACKOFF,
    BackoffRecord,
    completion_index,
    ensure_condition_status,
    find_condition,
    format_indexes,
    has_tracking_finalizer,
    is_finished,
    is_pod_failed,
    match_pod_failure_policy,
    new_backoff_record,
    new_condition,
    only_replace_failed_pods,
    parse_indexes,
    remaining_backoff,
)
from .podutil import (
    CONTROLLER_UID_INDEX,
    SLOW_START_INITIAL_BATCH_SIZE,
    controller_of,
    controller_ref,
    controller_uid_index,
    is_pod_active,
    is_pod_ready,
    pod_from_template,
    rank_for_deletion,
)
from .refmanager import CannotAdoptError, claim, resolve_controller_ref, selecting_owners

__all__ = ["JobController", "MAX_UNCOUNTED_PODS", "SYNC_JOB_BATCH_PERIOD"]

log = logging.getLogger("megaplane.controllers.job")

API_VERSION, KIND = "batch/v1", "Job"
#: Upstream's syncJobBatchPeriod, MaxUncountedPods and MaxPodCreateDeletePerSync.
SYNC_JOB_BATCH_PERIOD = 1.0
MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500

Obj = Dict[str, Any]




def _uid(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid") or "")


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and _phase(pod) not in ("Succeeded", "Failed")


@dataclass
class _SyncContext:
    """One sync's view (upstream's syncJobCtx)."""

    job: Obj
    pods: List[Obj]
    active_pods: List[Obj]
    uncounted_succeeded: Set[str]
    uncounted_failed: Set[str]
    expected_rm_finalizers: Set[str]
    terminating: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    finished_condition: Optional[Obj] = None
    new_backoff: BackoffRecord = field(default_factory=BackoffRecord)
    prev_succeeded_indexes: Set[int] = field(default_factory=set)
    succeeded_indexes: Set[int] = field(default_factory=set)

    @property
    def status(self) -> Obj:
        status: Obj = self.job["status"]
        return status

    @property
    def spec(self) -> Obj:
        spec: Obj = self.job.get("spec") or {}
        return spec

    @property
    def indexed(self) -> bool:
        return self.spec.get("completionMode") == "Indexed"


class JobController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 pod_failure_backoff: float = DEFAULT_POD_FAILURE_BACKOFF,
                 max_pod_failure_backoff: float = MAX_POD_FAILURE_BACKOFF,
                 batch_period: float = SYNC_JOB_BATCH_PERIOD,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("job-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.jobs = client.resource("batch/v1", "jobs")
        self.pods = client.resource("pods")
        self.pod_failure_backoff = pod_failure_backoff
        self.max_pod_failure_backoff = max_pod_failure_backoff
        self.batch_period = batch_period
        self.expectations = ControllerExpectations(clock)
        #: Job key -> uids of pods whose finalizer removal was sent but not yet seen.
        self.finalizer_expectations: Dict[str, Set[str]] = {}
        self.backoff: Dict[str, BackoffRecord] = {}
        self.job_informer = self.shared_informer(self.jobs)
        self.pod_informer = self.shared_informer(self.pods,
                                                         indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.job_informer.add_event_handler(self._enqueue_now, self._job_updated, self._job_deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.recorder = EventRecorder(client, "job-controller", clock=clock)
        self.orphan_queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name="job_orphan_pod", clock=clock)
        self._orphan_workers: Workers[Hashable] = Workers("job-orphan-pods", self.orphan_queue, self._handle_orphan, 1)
        self.created = 0
        self.deleted = 0

    async def start(self) -> None:
        await super().start()
        self._orphan_workers.start()

    async def stop(self) -> None:
        await self._orphan_workers.stop()
        await super().stop()
        await self.recorder.stop()

    def _event(self, job: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = job["metadata"]
        self.recorder.event({"kind": KIND, "apiVersion": API_VERSION, "name": meta["name"],
                             "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": str(meta.get("resourceVersion") or "")}, event_type, reason, message)

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue_now(self, job: Obj) -> None:
        self.queue.add(object_key(job))

    def _enqueue_batched(self, job: Obj) -> None:
        self.queue.add_after(object_key(job), self.batch_period)

    def _job_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        self._enqueue_now(cur)
        spec, old_spec = cur.get("spec") or {}, old.get("spec") or {}
        deadline = spec.get("activeDeadlineSeconds")
        start = (cur.get("status") or {}).get("startTime")
        if deadline is not None and deadline != old_spec.get("activeDeadlineSeconds") and start:
            started = _time(start)
            if started is not None:
                self.queue.add_after(object_key(cur), max(0.0, started + deadline - self.clock.time()))

    def _job_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        job = final_state(obj)
        key = object_key(job)
        self.queue.add(key)
        # Its pods' finalizers are no longer anyone's to remove but ours, from the orphan queue.
        for pod in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, str(job["metadata"].get("uid") or "")):
            if has_tracking_finalizer(pod):
                self.orphan_queue.add(object_key(pod))

    def _resolve(self, namespace: str, ref: Mapping[str, Any]) -> Optional[Obj]:
        return resolve_controller_ref(self.job_informer.lister, namespace, ref, KIND, "batch")

    def _matching_jobs(self, pod: Obj) -> List[Obj]:
        return selecting_owners(self.job_informer.lister, pod)

    def _pod_added(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._pod_deleted_or_deleting(pod, final=False)
            return
        ref = controller_of(pod)
        if ref is not None:
            job = self._resolve(meta.get("namespace") or "", ref)
            if job is None:
                if has_tracking_finalizer(pod):
                    self.orphan_queue.add(object_key(pod))
                return
            self.expectations.creation_observed(object_key(job))
            self._enqueue_batched(job)
            return
        if has_tracking_finalizer(pod):
            self.orphan_queue.add(object_key(pod))
        for job in self._matching_jobs(pod):
            self._enqueue_batched(job)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        om, cm = old["metadata"], cur["metadata"]
        if om.get("resourceVersion") == cm.get("resourceVersion"):
            return
        if cm.get("deletionTimestamp"):
            self._pod_deleted_or_deleting(cur, final=False)
            return
        finalizer_removed = not has_tracking_finalizer(cur)
        namespace = cm.get("namespace") or ""
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            job = self._resolve(namespace, old_ref)
            if job is not None:
                if finalizer_removed:
                    self._finalizer_removal_observed(object_key(job), _uid(cur))
                self._enqueue_batched(job)
        if cur_ref is not None:
            job = self._resolve(namespace, cur_ref)
            if job is None:
                return
            if finalizer_removed:
                self._finalizer_removal_observed(object_key(job), _uid(cur))
            self._enqueue_batched(job)
            return
        if om.get("labels") != cm.get("labels") or ref_changed:
            for job in self._matching_jobs(cur):
                self._enqueue_batched(job)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._pod_deleted_or_deleting(final_state(obj), final=True)

    def _pod_deleted_or_deleting(self, pod: Obj, *, final: bool) -> None:
        ref = controller_of(pod)
        has_finalizer = has_tracking_finalizer(pod)
        job = self._resolve((pod.get("metadata") or {}).get("namespace") or "", ref) if ref is not None else None
        if job is None or is_finished(job):
            if has_finalizer and not final:
                self.orphan_queue.add(object_key(pod))  # nobody's sync will remove this finalizer
            return
        key = object_key(job)
        self.expectations.deletion_observed(key, object_key(pod))
        if final or not has_finalizer:
            self._finalizer_removal_observed(key, _uid(pod))
        self._enqueue_batched(job)

    def _finalizer_removal_observed(self, key: str, uid: str) -> None:
        uids = self.finalizer_expectations.get(key)
        if uids is not None:
            uids.discard(uid)

    # -- orphan pods ----------------------------------------------------------------------------------

    async def _handle_orphan(self, item: Hashable) -> None:
        namespace, _, name = str(item).rpartition("/")
        pod = self.pod_informer.lister.get(namespace, name)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_of(pod)
        if ref is not None:
            job = self._resolve(namespace, ref)
            if job is not None and not is_finished(job):
                return  # its Job's syncs own the finalizer
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER], "uid": meta["uid"]}}
        try:
            await self.pods.patch(meta["name"], patch, meta.get("namespace"))
        except NotFoundError:
            pass

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        shared = self.job_informer.lister.get(namespace, name)
        if shared is None:
            self.expectations.delete(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            return
        if is_finished(shared):
            self.backoff.pop(key, None)
            return
        spec = shared.get("spec") or {}
        mode = spec.get("completionMode") or "NonIndexed"
        if mode not in ("NonIndexed", "Indexed") or (mode == "Indexed" and spec.get("completions") is None):
            return  # an unknown completion mode is skipped (upstream records UnknownCompletionMode)
        job = dict(shared)
        job["status"] = orjson.loads(orjson.dumps(shared.get("status") or {}))  # ours to change; it is small
        status = job["status"]
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        # Expectations first: a pod created after we list is then only deferred to the next sync.
        satisfied = self.expectations.satisfied(key)
        pods = await self._pods_for_job(job)
        ctx = _SyncContext(
            job, pods, [p for p in pods if is_pod_active(p)],
            set(uncounted.get("succeeded") or ()), set(uncounted.get("failed") or ()),
            set(self.finalizer_expectations.get(key, ())),
        )
        ctx.terminating = sum(1 for p in pods if _is_terminating(p))
        active = len(ctx.active_pods)
        new_succeeded, new_failed = self._new_finished_pods(ctx)
        policy = spec.get("podFailurePolicy")
        counted_failed = sum(1 for p in new_failed if match_pod_failure_policy(policy, p)[1])
        ctx.succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(ctx.uncounted_succeeded)
        ctx.failed = int(status.get("failed") or 0) + counted_failed + len(ctx.uncounted_failed)
        ctx.ready = sum(1 for p in ctx.active_pods if is_pod_ready(p))
        now = self.clock.time()
        suspended = bool(spec.get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = _stamp(now)
        ctx.new_backoff = new_backoff_record(self.backoff.get(key, BackoffRecord()), new_succeeded, new_failed, now)

        ctx.finished_condition = _copy(find_condition(_true(status), "SuccessCriteriaMet"))
        if ctx.finished_condition is None:
            target = find_condition(_true(status), "FailureTarget")
            if target is not None:
                ctx.finished_condition = new_condition("Failed", "True", target.get("reason", ""),
                                                       target.get("message", ""), now)
            else:
                message = self._fail_job_message(job, pods)
                if message is not None:
                    ctx.finished_condition = new_condition("FailureTarget", "True", "PodFailurePolicy", message, now)
        if ctx.finished_condition is None:
            deadline = spec.get("activeDeadlineSeconds")
            if ctx.failed > int(spec.get("backoffLimit", 6)) or _past_backoff_limit_on_failure(job, pods):
                ctx.finished_condition = new_condition("FailureTarget", "True", "BackoffLimitExceeded",
                                                       "Job has reached the specified backoff limit", now)
            elif self._past_active_deadline(job):
                ctx.finished_condition = new_condition("FailureTarget", "True", "DeadlineExceeded",
                                                       "Job was active longer than specified deadline", now)
            elif deadline is not None and not suspended:
                started = _time(status.get("startTime"))
                if started is not None:
                    self.queue.add_after(key, max(0.0, started + deadline - now))

        if ctx.indexed:
            ctx.prev_succeeded_indexes, ctx.succeeded_indexes = _succeeded_indexes(job, pods)
            ctx.succeeded = len(ctx.succeeded_indexes)

        suspend_changed = False
        manage_error: Optional[BaseException] = None
        if ctx.finished_condition is not None:
            deleted_ready, deleted, manage_error = await self._delete_active_pods(job, ctx.active_pods)
            if deleted != active or not satisfied:
                # Not finished yet: finalizers may remain, or pods the informer has not shown us.
                ctx.finished_condition = None
            active -= deleted
            ctx.terminating += deleted
            ctx.ready -= deleted_ready
        else:
            managed = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                try:
                    active = await self._manage(key, ctx)
                except (StatusError, ValueError) as exc:
                    manage_error = exc
                    active = len(ctx.active_pods)
                managed = True
            completions = spec.get("completions")
            if completions is None:
                complete = ctx.succeeded > 0 and active == 0
            else:
                complete = ctx.succeeded >= int(completions) and active == 0
            if complete:
                ctx.finished_condition = new_condition("SuccessCriteriaMet", "True", "CompletionsReached",
                                                       "Reached expected number of succeeded pods", now)
            elif managed:
                conditions = status.setdefault("conditions", [])
                if suspended:
                    suspend_changed = ensure_condition_status(conditions, "Suspended", "True", "JobSuspended",
                                                              "Job suspended", now)
                    if suspend_changed:
                        self._event(job, "Normal", "Suspended", "Job suspended")
                else:
                    suspend_changed = ensure_condition_status(conditions, "Suspended", "False", "JobResumed",
                                                              "Job resumed", now)
                    if suspend_changed:
                        self._event(job, "Normal", "Resumed", "Job resumed")
                        # activeDeadlineSeconds counts the time continuously active: it starts again.
                        status["startTime"] = _stamp(now)
                if not conditions:
                    del status["conditions"]

        needs_update = suspend_changed or active != int(status.get("active") or 0) or \
            ctx.ready != status.get("ready") or ctx.terminating != status.get("terminating")
        status["active"] = active
        status["ready"] = ctx.ready
        status["terminating"] = ctx.terminating
        await self._track_status_and_remove_finalizers(key, ctx, needs_update)
        if manage_error is not None:
            raise manage_error

    # -- sync helpers -----------------------------------------------------------------------------------

    async def _pods_for_job(self, job: Obj) -> List[Obj]:
        meta = job["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        selector = selector_from_dict((job.get("spec") or {}).get("selector") or {})
        candidates = self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, uid) + [
            p for p in self.pod_informer.lister.by_index(CONTROLLER_UID_INDEX, "")
            if (p.get("metadata") or {}).get("namespace") == namespace]
        candidates.sort(key=lambda p: p["metadata"].get("name", ""))

        async def can_adopt() -> None:
            fresh = await self.jobs.get(meta["name"], namespace)
            if fresh["metadata"].get("uid") != uid:
                raise CannotAdoptError(f"original Job {namespace}/{meta['name']} is gone: got uid "
                                       f"{fresh['metadata'].get('uid')}, wanted {uid}")
            if fresh["metadata"].get("deletionTimestamp"):
                raise CannotAdoptError(f"{namespace}/{meta['name']} has just been deleted")

        return await claim(self.pods, candidates, job, selector, controller_ref(job, API_VERSION, KIND), can_adopt)

    def _new_finished_pods(self, ctx: _SyncContext) -> Tuple[List[Obj], List[Obj]]:
        """Finished pods not yet in the status: they still carry the finalizer and are not uncounted."""
        succeeded: List[Obj] = []
        failed: List[Obj] = []
        completions = int(ctx.spec.get("completions") or 0)
        for p in ctx.pods:
            uid = _uid(p)
            if not has_tracking_finalizer(p) or uid in ctx.expected_rm_finalizers:
                continue
            if ctx.indexed:
                ix = completion_index(p)
                if ix is None or ix >= completions:
                    continue
            if _phase(p) == "Succeeded" and uid not in ctx.uncounted_succeeded:
                succeeded.append(p)
            elif is_pod_failed(p, ctx.job) and uid not in ctx.uncounted_failed:
                failed.append(p)
        return succeeded, failed

    @staticmethod
    def _fail_job_message(job: Obj, pods: List[Obj]) -> Optional[str]:
        policy = (job.get("spec") or {}).get("podFailurePolicy")
        if policy is None:
            return None
        for p in pods:
            if is_pod_failed(p, job):
                message = match_pod_failure_policy(policy, p)[0]
                if message is not None:
                    return message
        return None

    def _past_active_deadline(self, job: Obj) -> bool:
        spec, status = job.get("spec") or {}, job.get("status") or {}
        deadline = spec.get("activeDeadlineSeconds")
        started = _time(status.get("startTime"))
        if deadline is None or started is None or spec.get("suspend"):
            return False
        return self.clock.time() - started >= float(deadline)

    async def _manage(self, key: str, ctx: _SyncContext) -> int:
        """Create or delete pods towards the wanted number of active ones (manageJob); the new active count."""
        spec = ctx.spec
        active = len(ctx.active_pods)
        parallelism = int(spec.get("parallelism", 1))
        if spec.get("suspend"):
            victims = self._pods_for_removal(ctx, active)
            ready, removed = await self._delete_job_pods(ctx.job, key, victims)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed
        completions = spec.get("completions")
        if completions is None:
            want = active if ctx.succeeded > 0 else parallelism
        else:
            want = max(0, min(int(completions) - ctx.succeeded, parallelism))
        surplus = max(0, active - want)
        victims = self._pods_for_removal(ctx, surplus)[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if victims:
            ready, removed = await self._delete_job_pods(ctx.job, key, victims)
            ctx.terminating += removed
            ctx.ready -= ready
            return active - removed  # creates and deletes never in one sync; deletes first
        terminating = ctx.terminating if only_replace_failed_pods(ctx.job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active
        wait = remaining_backoff(ctx.new_backoff, self.clock.time(), self.pod_failure_backoff,
                                 self.max_pod_failure_backoff)
        if wait > 0:
            self.queue.add_after(key, wait)
            return active
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: List[Optional[int]] = [None] * diff
        if ctx.indexed:
            indexes = list(_first_pending_indexes(ctx, diff, int(completions or 0)))
            diff = len(indexes)
        if diff == 0:
            return active
        self.expectations.expect_creations(key, diff)
        template = _job_pod_template(ctx.job, ctx.indexed)
        ref = controller_ref(ctx.job, API_VERSION, KIND)
        namespace = ctx.job["metadata"]["namespace"]
        created = 0
        error: Optional[BaseException] = None
        queue = list(indexes)
        batch = min(diff, SLOW_START_INITIAL_BATCH_SIZE)
        while queue:
            now_batch, queue = queue[:batch], queue[batch:]
            results = await asyncio.gather(*(self._create_pod(namespace, template, ctx.job, ref, ix)
                                              for ix in now_batch), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            created += len(now_batch) - len(failures)
            for _ in failures:
                self.expectations.creation_observed(key)
            if failures:
                error = failures[0]
                for _ in queue:  # never sent: never observed
                    self.expectations.creation_observed(key)
                break
            batch = min(2 * batch, len(queue))
        if error is not None and not (isinstance(error, StatusError) and
                                      "NamespaceTerminating" in str((error.details or {}).get("causes") or "")):
            raise error
        return active + created

    async def _create_pod(self, namespace: str, template: Obj, job: Obj, ref: Obj, index: Optional[int]) -> None:
        body = pod_from_template(template, job, ref)
        meta = body["metadata"]
        meta["finalizers"] = list(dict.fromkeys([*(meta.get("finalizers") or ()), JOB_TRACKING_FINALIZER]))
        if index is not None:
            meta.setdefault("annotations", {})[COMPLETION_INDEX_ANNOTATION] = str(index)
            meta.setdefault("labels", {})[COMPLETION_INDEX_ANNOTATION] = str(index)
            name = job["metadata"]["name"]
            body["spec"]["hostname"] = f"{name}-{index}"
            meta["generateName"] = _generate_name_with_index(name, index)
        try:
            created = await self.pods.create(body, namespace)
        except StatusError as exc:
            self._event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.created += 1
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    def _pods_for_removal(self, ctx: _SyncContext, count: int) -> List[Obj]:
        """Which active pods go first (activePodsForRemoval): Indexed duplicates and out-of-range, then ranked."""
        if count <= 0:
            return []
        pods = list(ctx.active_pods)
        first: List[Obj] = []
        if ctx.indexed:
            completions = int(ctx.spec.get("completions") or 0)
            seen: Set[int] = set()
            rest: List[Obj] = []
            for p in sorted(pods, key=lambda p: (not is_pod_ready(p), p["metadata"].get("creationTimestamp", ""))):
                ix = completion_index(p)
                if ix is None or ix >= completions or ix in seen or ix in ctx.succeeded_indexes:
                    first.append(p)
                else:
                    seen.add(ix)
                    rest.append(p)
            pods = rest
        ranked = first + rank_for_deletion(pods, pods, self.clock.time())
        return ranked[:count]

    async def _delete_pod(self, job: Obj, pod: Obj) -> None:
        """podControl.DeletePod: the delete and its event (a pod already gone is not an error here)."""
        meta = pod["metadata"]
        try:
            await self.pods.delete(meta["name"], meta["namespace"])
        except NotFoundError:
            raise
        except StatusError as exc:
            self._event(job, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.deleted += 1
        self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    async def _delete_job_pods(self, job: Obj, key: str, pods: List[Obj]) -> Tuple[int, int]:
        """Remove the finalizer, then delete (deleteJobPods): (ready ones deleted, deleted)."""
        if not pods:
            return 0, 0
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])

        async def one(pod: Obj) -> None:
            try:
                if has_tracking_finalizer(pod):
                    await self._remove_finalizer(pod)
                await self._delete_pod(job, pod)
            except NotFoundError:
                self.expectations.deletion_observed(key, object_key(pod))
            except BaseException:
                self.expectations.deletion_observed(key, object_key(pod))
                raise

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        ready = sum(1 for p, r in zip(pods, results) if not isinstance(r, BaseException) and is_pod_ready(p))
        if errors:
            raise errors[0]
        return ready, len(pods)

    async def _delete_active_pods(self, job: Obj, pods: List[Obj]) -> Tuple[int, int, Optional[BaseException]]:
        """A finished Job's active pods go (deleteActivePods): (ready deleted, deleted, first error)."""

        async def one(pod: Obj) -> None:
            try:
                await self._delete_pod(job, pod)
            except NotFoundError:
                pass

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        ready = sum(1 for p in pods if is_pod_ready(p))
        return ready, len(pods) - len(errors), (errors[0] if errors else None)

    # -- status and finalizers ------------------------------------------------------------------------------

    async def _track_status_and_remove_finalizers(self, key: str, ctx: _SyncContext, needs_flush: bool) -> None:
        """Count finished pods into uncountedTerminatedPods, write it, remove their finalizers, then move them
        into succeeded/failed; finish the Job once nothing is uncounted or terminating
        (trackJobStatusAndRemoveFinalizers)."""
        status = ctx.status
        spec = ctx.spec
        uncounted = status["uncountedTerminatedPods"]
        uncounted.setdefault("succeeded", [])
        uncounted.setdefault("failed", [])
        pods = ctx.pods
        if ctx.indexed:
            pods = sorted(pods, key=lambda p: (completion_index(p) is None, completion_index(p) or 0))
        with_finalizer = {_uid(p) for p in pods if has_tracking_finalizer(p) and _uid(p) not in
                          ctx.expected_rm_finalizers}
        if _clean_uncounted(status, with_finalizer):
            needs_flush = True
        completions = int(spec.get("completions") or 0)
        policy = spec.get("podFailurePolicy")
        finished = ctx.finished_condition
        to_remove: List[Obj] = []
        new_indexes: List[int] = []
        reached_max = False
        for pod in pods:
            uid = _uid(pod)
            if not has_tracking_finalizer(pod) or uid in ctx.expected_rm_finalizers:
                continue  # counted in an earlier sync
            failed = is_pod_failed(pod, ctx.job)
            if not (ctx.job["metadata"].get("deletionTimestamp") or finished is not None
                    or _phase(pod) == "Succeeded" or failed):
                continue
            to_remove.append(pod)
            if _phase(pod) == "Succeeded" and uid not in ctx.uncounted_failed:
                if ctx.indexed:
                    ix = completion_index(pod)
                    if ix is not None and ix < completions and ix not in ctx.prev_succeeded_indexes:
                        new_indexes.append(ix)
                        needs_flush = True
                elif uid not in ctx.uncounted_succeeded:
                    needs_flush = True
                    uncounted["succeeded"].append(uid)
            elif failed or (finished is not None and finished["type"] != "SuccessCriteriaMet"):
                # Once the Job is finished, every pod not terminated yet is a failure.
                ix = completion_index(pod)
                if uid not in ctx.uncounted_failed and (not ctx.indexed or (ix is not None and ix < completions)):
                    if policy is None or match_pod_failure_policy(policy, pod)[1]:
                        needs_flush = True
                        uncounted["failed"].append(uid)
            if len(new_indexes) + len(uncounted["succeeded"]) + len(uncounted["failed"]) >= MAX_UNCOUNTED_PODS:
                reached_max = True
                break
        if ctx.indexed:
            ctx.succeeded_indexes |= set(new_indexes)
            text = format_indexes(ctx.succeeded_indexes)
            if text != status.get("completedIndexes", ""):
                needs_flush = True
            status["succeeded"] = len(ctx.succeeded_indexes)
            status["completedIndexes"] = text
        now = self.clock.time()
        conditions = status.setdefault("conditions", [])
        if finished is not None and finished["type"] == "FailureTarget":
            conditions.append(finished)  # the interim condition, written before the finalizers go
            needs_flush = True
            finished = new_condition("Failed", "True", finished.get("reason", ""), finished.get("message", ""), now)
        if finished is not None and finished["type"] == "SuccessCriteriaMet":
            if find_condition(_true(status), "SuccessCriteriaMet") is None:
                conditions.append(finished)
                needs_flush = True
            finished = new_condition("Complete", "True", finished.get("reason", ""), finished.get("message", ""), now)
        if not conditions:
            del status["conditions"]
        needs_flush = await self._flush_and_remove_finalizers(key, ctx, to_remove, with_finalizer, needs_flush)
        finished_now = not reached_max and self._enact_finished(ctx, finished)
        if finished_now:
            needs_flush = True
        if needs_flush:
            await self._update_status(ctx)
        if finished_now and finished is not None:
            if finished["type"] == "Complete":
                self._event(ctx.job, "Normal", "Completed", "Job completed")
            else:
                self._event(ctx.job, "Warning", finished.get("reason", ""), finished.get("message", ""))

    async def _flush_and_remove_finalizers(self, key: str, ctx: _SyncContext, to_remove: List[Obj],
                                           with_finalizer: Set[str], needs_flush: bool) -> bool:
        if needs_flush:
            await self._update_status(ctx)
            self.backoff[key] = ctx.new_backoff
            needs_flush = False
        error: Optional[BaseException] = None
        if to_remove:
            expected = self.finalizer_expectations.setdefault(key, set())
            expected.update(_uid(p) for p in to_remove)
            results = await asyncio.gather(*(self._remove_finalizer(p) for p in to_remove), return_exceptions=True)
            for pod, result in zip(to_remove, results):
                if isinstance(result, BaseException):
                    expected.discard(_uid(pod))
                    error = error or result
                else:
                    with_finalizer.discard(_uid(pod))
        if _clean_uncounted(ctx.status, with_finalizer):
            needs_flush = True
        if error is not None:
            if needs_flush:
                await self._update_status(ctx)
            raise error
        return needs_flush

    def _enact_finished(self, ctx: _SyncContext, finished: Optional[Obj]) -> bool:
        if finished is None:
            return False
        uncounted = ctx.status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed"):
            return False  # not before every finished pod is counted
        if ctx.terminating > 0:
            return False  # nor before the pods being deleted are gone
        conditions = ctx.status.setdefault("conditions", [])
        ensure_condition_status(conditions, finished["type"], finished["status"], finished.get("reason", ""),
                                finished.get("message", ""), self.clock.time())
        if finished["type"] == "Complete":
            ctx.status["completionTime"] = finished["lastTransitionTime"]
        log.info("%s: job %s/%s %s", self.name, ctx.job["metadata"]["namespace"], ctx.job["metadata"]["name"],
                 "completed" if finished["type"] == "Complete" else f"failed: {finished.get('reason')}")
        return True

    async def _update_status(self, ctx: _SyncContext) -> None:
        body = dict(ctx.job)
        body["status"] = _wire(ctx.status)
        stored = await self.jobs.update_status(body)
        ctx.job = stored
        status = stored.setdefault("status", {})
        unc = status.setdefault("uncountedTerminatedPods", {})
        unc.setdefault("succeeded", [])
        unc.setdefault("failed", [])
        for k in ("active", "ready", "terminating"):
            status.setdefault(k, 0)

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(created=float(self.created), deleted=float(self.deleted),
                     orphan_queue_depth=float(len(self.orphan_queue)))
        return stats


# -- pure helpers --------------------------------------------------------------------------------------------

def _time(stamp: Any) -> Optional[float]:
    at = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    return at.timestamp() if at is not None else None


def _stamp(at: float) -> str:
    return format_rfc3339(datetime.datetime.fromtimestamp(at, datetime.timezone.utc))


def _true(status: Obj) -> List[Obj]:
    return [c for c in status.get("conditions") or () if c.get("status") == "True"]


def _copy(cond: Optional[Obj]) -> Optional[Obj]:
    return dict(cond) if cond is not None else None


def _wire(status: Obj) -> Obj:
    """The status as Go serialises it: counters with omitempty left out at 0, empty uncounted lists dropped."""
    out = dict(status)
    for k in ("active", "succeeded", "failed"):
        if not out.get(k):
            out.pop(k, None)
    unc = {k: v for k, v in (out.get("uncountedTerminatedPods") or {}).items() if v}
    out["uncountedTerminatedPods"] = unc
    if not out.get("completedIndexes"):
        out.pop("completedIndexes", None)
    return out


def _clean_uncounted(status: Obj, with_finalizer: Set[str]) -> bool:
    """Uncounted pods whose finalizer is gone move into the counters (cleanUncountedPodsWithoutFinalizers)."""
    changed = False
    uncounted = status["uncountedTerminatedPods"]
    for field_name, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = list(uncounted.get(field_name) or ())
        kept = [u for u in uids if u in with_finalizer]
        if len(kept) != len(uids):
            changed = True
            status[counter] = int(status.get(counter) or 0) + len(uids) - len(kept)
            uncounted[field_name] = kept
    return changed


def _past_backoff_limit_on_failure(job: Obj, pods: List[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of active pods reach backoffLimit (pastBackoffLimitOnFailure)."""
    spec = job.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    limit = int(spec.get("backoffLimit", 6))
    restarts = 0
    for p in pods:
        if _phase(p) in ("Running", "Pending"):
            status = p.get("status") or {}
            for cs in list(status.get("initContainerStatuses") or ()) + list(status.get("containerStatuses") or ()):
                restarts += int(cs.get("restartCount") or 0)
    if limit == 0:
        return restarts > 0
    return restarts >= limit


def _succeeded_indexes(job: Obj, pods: List[Obj]) -> Tuple[Set[int], Set[int]]:
    """(indexes in status.completedIndexes, those plus succeeded pods' indexes not yet counted)."""
    completions = int((job.get("spec") or {}).get("completions") or 0)
    prev = parse_indexes((job.get("status") or {}).get("completedIndexes") or "", completions)
    now = set(prev)
    for p in pods:
        ix = completion_index(p)
        if _phase(p) == "Succeeded" and has_tracking_finalizer(p) and ix is not None and ix < completions:
            now.add(ix)
    return prev, now


def _first_pending_indexes(ctx: _SyncContext, count: int, completions: int) -> List[int]:
    """The lowest indexes neither succeeded nor held by an active pod (firstPendingIndexes)."""
    taken = set(ctx.succeeded_indexes)
    taken.update(ix for ix in (completion_index(p) for p in ctx.active_pods) if ix is not None)
    if only_replace_failed_pods(ctx.job):
        taken.update(ix for ix in (completion_index(p) for p in ctx.pods if _is_terminating(p)) if ix is not None)
    out: List[int] = []
    for i in range(completions):
        if len(out) >= count:
            break
        if i not in taken:
            out.append(i)
    return out


def _generate_name_with_index(name: str, index: int) -> str:
    """`<job>-<index>-`, the job name cut so the generated name fits 63 characters (podGenerateNameWithIndex)."""
    suffix = f"-{index}-"
    if len(name) + len(suffix) > 58:  # 63 minus the 5 random characters
        name = name[:58 - len(suffix)]
    return name + suffix


def _job_pod_template(job: Obj, indexed: bool) -> Obj:
    """The Job's template; Indexed pods see their index as JOB_COMPLETION_INDEX in every container."""
    template: Obj = orjson.loads(orjson.dumps((job.get("spec") or {}).get("template") or {}))
    if indexed:
        env_var = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}}
        spec = template.setdefault("spec", {})
        for c in list(spec.get("initContainers") or ()) + list(spec.get("containers") or ()):
            env = c.setdefault("env", [])
            if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                env.append(dict(env_var))
    return template
