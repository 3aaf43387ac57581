"""The CronJob controller: a Job per scheduled time, within the concurrency policy, deadline and history limits.

As kube-controller-manager's cronjob controller v2
(pkg/controller/cronjob/cronjob_controllerv2.go): informers on CronJobs and
Jobs; a sync of one CronJob

1. reconciles `status.active` with its Jobs (finished ones leave it, Jobs
   gone from the API too; `lastSuccessfulTime` follows completions);
2. deletes the oldest finished Jobs beyond successfulJobsHistoryLimit
   and failedJobsHistoryLimit (background propagation);
3. unless suspended or being deleted, finds the most recent unmet schedule
   time since `lastScheduleTime` (or creation) and, if it is not older
   than `startingDeadlineSeconds`, not already run, and the
   concurrencyPolicy allows (Forbid: none active; Replace: the active
   ones are deleted first), creates the Job
   `<cronjob>-<scheduled time in minutes since the epoch>` (the name is the
   lock: a second create for one time is AlreadyExists) with the
   `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation, then
   records it in `status.active` and `lastScheduleTime`;
4. queues itself again for the next schedule time (+100 ms).

Schedules are parsed by `megaplane.apimachinery.cron` (robfig/cron's
grammar), in `spec.timeZone` (UTC when unset). Time is the controller's
clock, so a FakeClock drives it in tests. `workers` is
--concurrent-cron-job-syncs (5). Not here: metrics.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple, Union

from megaplane.apimachinery.cron import CronError, Schedule, load_location, parse_standard
from megaplane.apimachinery.meta import format_rfc3339, parse_rfc3339
from megaplane.client import (
    AlreadyExistsError,
    Client,
    DeletedFinalStateUnknown,
    NotFoundError,
    StatusError,
    object_key,
)
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .events import EventRecorder
from .podutil import controller_of, controller_ref

__all__ = ["CronJobController", "job_name", "most_recent_schedule_time", "next_schedule_delay"]

log = logging.getLogger("megaplane.controllers.cronjob")

API_VERSION, KIND = "batch/v1", "CronJob"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: Upstream's nextScheduleDelta: wake a little after the schedule time, never just before it.
NEXT_SCHEDULE_DELTA = 0.1
#: More missed start times than this are only logged (TooManyMissedTimes).
TOO_MANY_MISSED = 100

Obj = Dict[str, Any]


def _time(stamp: Any) -> Optional[float]:
    at = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    return at.timestamp() if at is not None else None


def _stamp(at: float) -> str:
    return format_rfc3339(datetime.datetime.fromtimestamp(at, datetime.timezone.utc))


def job_name(cronjob: Mapping[str, Any], scheduled: float) -> str:
    """`<cronjob>-<scheduled minutes since the epoch>`: deterministic, so one time makes one Job."""
    return f"{cronjob['metadata']['name']}-{int(scheduled) // 60}"


def _schedule_text(cronjob: Mapping[str, Any]) -> str:
    """formatSchedule: spec.timeZone becomes a TZ= prefix (a TZ already in the schedule wins)."""
    spec = cronjob.get("spec") or {}
    schedule = str(spec.get("schedule") or "")
    if "TZ" in schedule:
        return schedule
    zone = spec.get("timeZone")
    if isinstance(zone, str):
        try:
            load_location(zone)
        except CronError:
            return schedule
        return f"TZ={zone} {schedule}"
    return schedule


def most_recent_schedule_time(cronjob: Mapping[str, Any], now: float, sched: Schedule,
                              with_deadline: bool) -> Tuple[float, Optional[float], int]:
    """(earliest time considered, the most recent unmet schedule time or None, missed count) as upstream's
    mostRecentScheduleTime; CronError for a schedule that never fires."""
    meta, spec, status = cronjob.get("metadata") or {}, cronjob.get("spec") or {}, cronjob.get("status") or {}
    earliest = _time(status.get("lastScheduleTime")) or _time(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        earliest = max(earliest, now - float(deadline))  # nothing before this is scheduled any more
    t1 = sched.next_after(earliest)
    if t1 is None:
        raise CronError("time difference between two schedules is less than 1 second")
    if now < t1:
        return earliest, None, 0
    t2 = sched.next_after(t1)
    if t2 is None or round(t2 - t1) < 1:
        raise CronError("time difference between two schedules is less than 1 second")
    if now < t2:
        return earliest, t1, 1
    between = int(round(t2 - t1))
    missed = int(now - t1) // between + 1
    # Jump close to now by whole intervals, then walk: exact for regular schedules and @every alike.
    t: Optional[float] = sched.next_after(t1 + (missed - 2) * between)
    most_recent = t1
    while t is not None and t <= now:
        most_recent = t
        t = sched.next_after(t)
    return earliest, most_recent, missed


def next_schedule_delay(cronjob: Mapping[str, Any], now: float, sched: Schedule) -> Optional[float]:
    """Seconds until the next schedule time after the most recent one, plus 100 ms (nextScheduleTimeDuration)."""
    try:
        earliest, most_recent, _ = most_recent_schedule_time(cronjob, now, sched, False)
    except CronError:
        return None
    base = most_recent if most_recent is not None else earliest
    nxt = sched.next_after(base)
    if nxt is None:
        return None
    return max(0.0, nxt + NEXT_SCHEDULE_DELTA - now)


def _finished(job: Mapping[str, Any]) -> Optional[str]:
    """"Complete" or "Failed" when the Job has finished (FinishedCondition)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def _job_ref(job: Mapping[str, Any]) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")}


class CronJobController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("cronjob-controller", workers=workers, clock=clock, informers=informers)
        self.cronjobs = client.resource("batch/v1", "cronjobs")
        self.jobs = client.resource("batch/v1", "jobs")
        self.cronjob_informer = self.shared_informer(self.cronjobs)
        self.job_informer = self.shared_informer(self.jobs)
        self.cronjob_informer.add_event_handler(self._enqueue, self._cronjob_updated, self._cronjob_deleted)
        self.job_informer.add_event_handler(self._job_changed, lambda old, new: self._job_changed(new),
                                            self._job_deleted)
        self.recorder = EventRecorder(client, "cronjob-controller", clock=clock)
        self.created = 0
        self.deleted = 0

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    def _event(self, cronjob: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = cronjob["metadata"]
        self.recorder.event({"kind": KIND, "apiVersion": API_VERSION, "name": meta["name"],
                             "namespace": meta["namespace"], "uid": meta["uid"],
                             "resourceVersion": str(meta.get("resourceVersion") or "")}, event_type, reason, message)

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, cronjob: Obj) -> None:
        self.queue.add(object_key(cronjob))

    def _cronjob_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        cj = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        self.queue.add(object_key(cj))

    def _cronjob_updated(self, old: Obj, cur: Obj) -> None:
        spec, old_spec = cur.get("spec") or {}, old.get("spec") or {}
        if spec.get("schedule") != old_spec.get("schedule") or spec.get("timeZone") != old_spec.get("timeZone"):
            # A new schedule: wake at its next time (a sooner wake-up already queued still happens).
            try:
                sched = parse_standard(_schedule_text(cur))
            except CronError as exc:
                log.info("%s: %s: unparseable schedule %r: %s", self.name, object_key(cur), spec.get("schedule"), exc)
                return
            delay = next_schedule_delay(cur, self.clock.time(), sched)
            if delay is not None:
                self.queue.add_after(object_key(cur), delay)
            return
        self._enqueue(cur)

    def _owner_key(self, job: Obj) -> Optional[str]:
        ref = controller_of(job)
        if ref is None or ref.get("kind") != KIND or str(ref.get("apiVersion", "")).split("/")[0] != "batch":
            return None
        namespace = job["metadata"].get("namespace") or ""
        cj = self.cronjob_informer.lister.get(namespace, str(ref.get("name") or ""))
        if cj is None or cj["metadata"].get("uid") != ref.get("uid"):
            return None
        return object_key(cj)

    def _job_changed(self, job: Obj) -> None:
        key = self._owner_key(job)
        if key is not None:
            self.queue.add(key)

    def _job_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._job_changed(obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        namespace, _, name = str(key).rpartition("/")
        shared = self.cronjob_informer.lister.get(namespace, name)
        if shared is None:
            return
        # Jobs whose controller reference names this CronJob (by name, as getJobsToBeReconciled).
        jobs = [j for j in self.job_informer.lister.list(namespace)
                if (controller_of(j) or {}).get("name") == name and (controller_of(j) or {}).get("kind") == KIND]
        cronjob = dict(shared)
        status = dict(shared.get("status") or {})
        status["active"] = list(status.get("active") or ())
        cronjob["status"] = status
        changed = await self._cleanup_finished(cronjob, jobs)
        requeue: Optional[float] = None
        error: Optional[BaseException] = None
        try:
            requeue, synced = await self._sync_cronjob(cronjob, jobs)
            changed = changed or synced
        except StatusError as exc:
            error = exc
        if changed:
            body = dict(cronjob)
            if not status["active"]:
                status.pop("active")
            await self.cronjobs.update_status(body)
        if error is not None:
            raise error
        if requeue is not None:
            self.queue.forget(str(key))
            self.queue.add_after(str(key), requeue)

    async def _sync_cronjob(self, cronjob: Obj, jobs: List[Obj]) -> Tuple[Optional[float], bool]:
        """syncCronJob: (seconds until the next sync or None, whether the status changed)."""
        now = self.clock.time()
        meta, spec, status = cronjob["metadata"], cronjob.get("spec") or {}, cronjob["status"]
        changed = False
        children = set()
        for job in jobs:
            uid = job["metadata"]["uid"]
            children.add(uid)
            in_active = any(a.get("uid") == uid for a in status["active"])
            finished = _finished(job)
            if not in_active and finished is None:
                fresh = await self.cronjobs.get(meta["name"], meta["namespace"])
                if any(a.get("uid") == uid for a in (fresh.get("status") or {}).get("active") or ()):
                    status["active"] = list(fresh["status"]["active"])
                    continue
                self._event(cronjob, "Warning", "UnexpectedJob",
                            f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
            elif in_active and finished is not None:
                status["active"] = [a for a in status["active"] if a.get("uid") != uid]
                self._event(cronjob, "Normal", "SawCompletedJob",
                            f"Saw completed job: {job['metadata']['name']}, condition: {finished}")
                changed = True
            elif finished == "Complete":
                # Not necessarily in the active list: any success moves lastSuccessfulTime.
                done = (job.get("status") or {}).get("completionTime")
                last = _time(status.get("lastSuccessfulTime"))
                at = _time(done)
                if at is not None and (last is None or at > last):
                    status["lastSuccessfulTime"] = done
                    changed = True
        for ref in list(status["active"]):
            if ref.get("uid") in children:
                continue
            # Not in the informer: ask the API server, a slow watch is no proof the Job is gone.
            try:
                await self.jobs.get(str(ref.get("name")), str(ref.get("namespace") or meta["namespace"]))
            except NotFoundError:
                self._event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                status["active"] = [a for a in status["active"] if a.get("uid") != ref.get("uid")]
                changed = True
        if meta.get("deletionTimestamp"):
            return None, changed
        zone = spec.get("timeZone")
        if isinstance(zone, str):
            try:
                load_location(zone)
            except CronError as exc:
                self._event(cronjob, "Warning", "UnknownTimeZone", f'invalid timeZone: "{zone}": {exc}')
                return None, changed
        if spec.get("suspend"):
            return None, changed
        try:
            sched = parse_standard(_schedule_text(cronjob))
        except CronError as exc:
            self._event(cronjob, "Warning", "UnparseableSchedule",
                        f'unparseable schedule: "{spec.get("schedule")}" : {exc}')
            return None, changed
        try:
            _, scheduled, missed = most_recent_schedule_time(cronjob, now, sched, True)
        except CronError as exc:
            self._event(cronjob, "Warning", "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {exc}")
            return None, changed
        if missed > TOO_MANY_MISSED:
            self._event(cronjob, "Warning", "TooManyMissedTimes",
                        f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or "
                        "check clock skew")
        if scheduled is None or scheduled > now:
            return next_schedule_delay(cronjob, now, sched), changed
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + float(deadline) < now:
            when = datetime.datetime.fromtimestamp(scheduled, datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
            self._event(cronjob, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {when}")
            return next_schedule_delay(cronjob, now, sched), changed
        name = job_name(cronjob, scheduled)
        if any(a.get("name") == name for a in status["active"]) or _time(status.get("lastScheduleTime")) == scheduled:
            return next_schedule_delay(cronjob, now, sched), changed
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status["active"]:
            self._event(cronjob, "Normal", "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid")
            return next_schedule_delay(cronjob, now, sched), changed
        if policy == "Replace":
            for ref in list(status["active"]):
                try:
                    running = await self.jobs.get(str(ref.get("name")), str(ref.get("namespace") or meta["namespace"]))
                except NotFoundError:
                    running = None
                if running is not None:
                    await self._delete_job(cronjob, running)
                else:
                    status["active"] = [a for a in status["active"] if a.get("uid") != ref.get("uid")]
                changed = True
        body = self._job_from_template(cronjob, scheduled)
        try:
            created = await self.jobs.create(body, meta["namespace"])
            self.created += 1
            self._event(cronjob, "Normal", "SuccessfulCreate", f"Created job {name}")
        except AlreadyExistsError:
            log.info("%s: %s/%s: job %s already exists", self.name, meta["namespace"], meta["name"], name)
            created = await self.jobs.get(name, meta["namespace"])
            owner = controller_of(created)
            if owner is None or owner.get("uid") != meta["uid"]:
                return None, changed  # someone else's Job: they keep the status
            if any(a.get("uid") == created["metadata"]["uid"] for a in status["active"]):
                return None, changed
        except StatusError as exc:
            if "NamespaceTerminating" not in str((exc.details or {}).get("causes") or ""):
                self._event(cronjob, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
            raise
        status["active"].append(_job_ref(created))
        status["lastScheduleTime"] = _stamp(scheduled)
        return next_schedule_delay(cronjob, now, sched), True

    def _job_from_template(self, cronjob: Obj, scheduled: float) -> Obj:
        """getJobFromTemplate2: the template's labels, annotations and spec; the deterministic name."""
        template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        zone = (cronjob.get("spec") or {}).get("timeZone")
        try:
            location = load_location(zone if isinstance(zone, str) else "")
        except CronError:
            location = datetime.timezone.utc
        local = datetime.datetime.fromtimestamp(scheduled, location)
        stamp = local.isoformat().replace("+00:00", "Z") if local.utcoffset() == datetime.timedelta(0) \
            else local.isoformat()
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = stamp
        meta: Obj = {"name": job_name(cronjob, scheduled), "annotations": annotations,
                     "ownerReferences": [controller_ref(cronjob, API_VERSION, KIND)]}
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template.get("spec") or {}}

    async def _cleanup_finished(self, cronjob: Obj, jobs: List[Obj]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits (cleanupFinishedJobs)."""
        spec = cronjob.get("spec") or {}
        changed = False
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                            ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = [j for j in jobs if _finished(j) == kind]
            surplus = len(done) - int(limit)
            if surplus <= 0:
                continue
            done.sort(key=lambda j: (_time((j.get("status") or {}).get("startTime")) is None,
                                     _time((j.get("status") or {}).get("startTime")) or 0.0, j["metadata"]["name"]))
            for job in done[:surplus]:
                if await self._delete_job(cronjob, job):
                    changed = True
        return changed

    async def _delete_job(self, cronjob: Obj, job: Obj) -> bool:
        meta = job["metadata"]
        try:
            await self.jobs.delete(meta["name"], meta["namespace"], propagation_policy="Background")
        except NotFoundError:
            pass
        except StatusError as exc:
            self._event(cronjob, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
            return False
        self.deleted += 1
        self._event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        status = cronjob["status"]
        status["active"] = [a for a in status["active"] if a.get("uid") != meta["uid"]]
        return True

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(created=float(self.created), deleted=float(self.deleted))
        return stats
