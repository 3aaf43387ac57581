"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` after it finished.

As kube-controller-manager's ttlafterfinished controller
(pkg/controller/ttlafterfinished): a Job with the field set and a true
Complete or Failed condition expires at that condition's
lastTransitionTime + TTL; until then its key waits in the queue (a delayed
add). At expiry the TTL is checked again on a fresh read (it may have been
changed), then the Job is deleted with its uid as a precondition and
foreground propagation, so its pods go first (the garbage collector's
part) and the Job last.

`workers` is --concurrent-ttl-after-finished-syncs (5).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Hashable, Mapping, Optional

from megaplane.apimachinery.meta import parse_rfc3339
from megaplane.client import Client, NotFoundError, object_key
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

__all__ = ["TTLAfterFinishedController", "expires_in"]

log = logging.getLogger("megaplane.controllers.ttlafterfinished")

Obj = Dict[str, Any]


def _finish_time(job: Mapping[str, Any]) -> Optional[float]:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            at = parse_rfc3339(c.get("lastTransitionTime") or "")
            return at.timestamp() if at is not None else None
    return None


def expires_in(job: Mapping[str, Any], now: float) -> Optional[float]:
    """Seconds until a finished Job's TTL runs out (<= 0: expired); None if it is not due for clean-up."""
    meta = job.get("metadata") or {}
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if meta.get("deletionTimestamp") or ttl is None:
        return None
    finished = _finish_time(job)
    if finished is None:
        return None
    if finished > now:
        log.info("ttl-after-finished: job %s/%s finished in the future (%.0f s): clock skew?",
                 meta.get("namespace"), meta.get("name"), finished - now)
    return finished + float(ttl) - now


class TTLAfterFinishedController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("ttl-after-finished-controller", workers=workers, clock=clock, informers=informers)
        self.jobs = client.resource("batch/v1", "jobs")
        self.job_informer = self.shared_informer(self.jobs)
        self.job_informer.add_event_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new))
        self.deleted = 0

    def _maybe_enqueue(self, job: Obj) -> None:
        if expires_in(job, self.clock.time()) is not None:
            self.queue.add(object_key(job))

    async def sync(self, key: Hashable) -> None:
        namespace, _, name = str(key).rpartition("/")
        job = self.job_informer.lister.get(namespace, name)
        if job is None or not self._expired(job):
            return
        # The cached TTL may be stale: only a fresh read decides.
        try:
            fresh = await self.jobs.get(name, namespace)
        except NotFoundError:
            return
        if not self._expired(fresh):
            return
        try:
            await self.jobs.delete(name, namespace, propagation_policy="Foreground",
                                   preconditions={"uid": fresh["metadata"]["uid"]})
        except NotFoundError:
            return
        self.deleted += 1
        log.info("%s: deleted job %s/%s (ttlSecondsAfterFinished %s)", self.name, namespace, name,
                 fresh["spec"].get("ttlSecondsAfterFinished"))

    def _expired(self, job: Obj) -> bool:
        left = expires_in(job, self.clock.time())
        if left is None:
            return False
        if left > 0:
            self.queue.add_after(object_key(job), left)
            return False
        return True

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats["deleted"] = float(self.deleted)
        return stats
