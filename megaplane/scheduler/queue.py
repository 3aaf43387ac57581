"""The scheduling queue: activeQ, backoffQ, unschedulable pods and gated pods, as upstream's PriorityQueue (v1.32).

- activeQ is ordered by PrioritySort: higher `spec.priority` first, then
  the earlier queue timestamp (the time the pod last entered the queue).
- A pod that failed goes to the unschedulable pods, or straight to backoffQ
  when a cluster event arrived while it was being scheduled (the event
  might have made it fit: `moveRequestCycle >= podSchedulingCycle`).
- `move_all` (a node added or changed, a pod deleted...) moves the
  unschedulable pods to backoffQ while their backoff runs, else to activeQ.
- Backoff is 1 s doubled per attempt up to 10 s; backoffQ is flushed to
  activeQ every second, and pods unschedulable for 5 minutes are retried
  anyway (podMaxInUnschedulablePodsDuration).
- Pods with `spec.schedulingGates` wait in the gated set until an update
  removes the last gate (SchedulingGates' PreEnqueue).

Entries in the heaps are invalidated lazily: each queued pod carries a
version, and a heap entry with an older version is skipped when popped.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from megaplane.runtime import REAL_CLOCK, Clock

from .podspec import PodSpecInfo

__all__ = ["QueuedPod", "SchedulingQueue"]

Obj = Dict[str, Any]

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_IN_UNSCHEDULABLE = 300.0
BACKOFF_FLUSH_PERIOD = 1.0
UNSCHEDULABLE_FLUSH_PERIOD = 30.0


@dataclass
class QueuedPod:
    key: str
    pod: Obj
    info: PodSpecInfo
    timestamp: float
    attempts: int = 0
    unschedulable_since: float = 0.0
    backoff_expiry: float = 0.0
    version: int = 0
    where: str = ""  # active, backoff, unschedulable, gated, in-flight
    #: The reasons of the last failure ("Insufficient cpu", ...), for metrics and logs.
    failure: str = field(default="")


class SchedulingQueue:
    def __init__(self, clock: Clock = REAL_CLOCK, *, initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
                 max_backoff: float = DEFAULT_MAX_BACKOFF,
                 max_in_unschedulable: float = DEFAULT_MAX_IN_UNSCHEDULABLE) -> None:
        if initial_backoff <= 0 or max_backoff < initial_backoff:
            raise ValueError(f"backoff must satisfy 0 < initial ({initial_backoff}) <= max ({max_backoff})")
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self.pods: Dict[str, QueuedPod] = {}
        self._active: List[Tuple[int, float, int, int, str]] = []
        self._backoff: List[Tuple[float, int, int, str]] = []
        self._counts = {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0, "in-flight": 0}
        self._seq = 0
        self._wake = asyncio.Event()
        self._closed = False
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._tasks: List["asyncio.Task[None]"] = []

    # -- bookkeeping -------------------------------------------------------------------------------

    def _place(self, qp: QueuedPod, where: str) -> None:
        if qp.where:
            self._counts[qp.where] -= 1
        qp.where = where
        self._counts[where] += 1
        qp.version += 1
        self._seq += 1
        if where == "active":
            heapq.heappush(self._active, (-qp.info.priority, qp.timestamp, self._seq, qp.version, qp.key))
            self._wake.set()
        elif where == "backoff":
            heapq.heappush(self._backoff, (qp.backoff_expiry, self._seq, qp.version, qp.key))

    def pending(self) -> Dict[str, int]:
        """Pods per queue (scheduler_pending_pods{queue}); in-flight ones are being scheduled or bound."""
        return dict(self._counts)

    def __len__(self) -> int:
        return len(self.pods)

    def backoff_duration(self, attempts: int) -> float:
        duration = self.initial_backoff
        for _ in range(1, attempts):
            duration *= 2
            if duration >= self.max_backoff:
                return self.max_backoff
        return duration

    # -- informer side -------------------------------------------------------------------------------

    def add(self, pod: Obj, info: PodSpecInfo) -> None:
        """A pending pod appeared (or was seen again)."""
        qp = self.pods.get(info.key)
        if qp is not None:
            self.update(pod, info)
            return
        qp = QueuedPod(info.key, pod, info, self.clock.monotonic())
        self.pods[info.key] = qp
        self._place(qp, "gated" if info.scheduling_gates else "active")

    def update(self, pod: Obj, info: PodSpecInfo) -> None:
        """A newer copy of a pending pod: kept, and a pod waiting on its own spec is retried."""
        qp = self.pods.get(info.key)
        if qp is None:
            self.add(pod, info)
            return
        changed = qp.pod.get("spec") != pod.get("spec") or \
            (qp.pod.get("metadata") or {}).get("labels") != (pod.get("metadata") or {}).get("labels")
        old_priority = qp.info.priority
        qp.pod, qp.info = pod, info
        if qp.where == "gated":
            if not info.scheduling_gates:
                qp.timestamp = self.clock.monotonic()
                self._place(qp, "active")
        elif qp.where == "active":
            if info.priority != old_priority:
                self._place(qp, "active")
        elif qp.where == "unschedulable" and changed:
            self._requeue(qp)

    def delete(self, key: str) -> None:
        qp = self.pods.pop(key, None)
        if qp is not None and qp.where:
            self._counts[qp.where] -= 1
            qp.where = ""
            qp.version += 1

    def _requeue(self, qp: QueuedPod) -> None:
        if qp.backoff_expiry > self.clock.monotonic():
            self._place(qp, "backoff")
        else:
            self._place(qp, "active")

    def move_all(self) -> int:
        """A cluster event that may make unschedulable pods fit: retry them (after their backoff)."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for qp in list(self.pods.values()):
            if qp.where == "unschedulable":
                self._requeue(qp)
                moved += 1
        return moved

    def move_matching(self, wants: Callable[[QueuedPod], bool]) -> int:
        """Like move_all, for the unschedulable pods `wants` picks (an event only they care about)."""
        moved = 0
        if not self._counts["unschedulable"]:
            return 0
        for qp in list(self.pods.values()):
            if qp.where == "unschedulable" and wants(qp):
                self.move_request_cycle = self.scheduling_cycle
                self._requeue(qp)
                moved += 1
        return moved

    # -- scheduler side ------------------------------------------------------------------------------

    async def pop(self) -> QueuedPod:
        """The next pod to schedule (waits while activeQ is empty); it is in flight until `done`/`requeue`."""
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self._closed:
                raise asyncio.CancelledError()
            self._wake.clear()
            await self._wake.wait()

    def pop_nowait(self) -> Optional[QueuedPod]:
        """Like pop, but None when activeQ is empty."""
        while self._active:
            _, _, _, version, key = heapq.heappop(self._active)
            qp = self.pods.get(key)
            if qp is None or qp.version != version or qp.where != "active":
                continue
            self._place(qp, "in-flight")
            qp.attempts += 1
            self.scheduling_cycle += 1
            return qp
        return None

    def done(self, key: str) -> None:
        """The pod left the scheduler's hands (bound, or gone)."""
        self.delete(key)

    def requeue_unschedulable(self, qp: QueuedPod, pod_cycle: int) -> None:
        """The pod did not fit: unschedulable, or backoffQ if a move request came during its cycle."""
        if self.pods.get(qp.key) is not qp:
            return  # deleted or bound meanwhile
        now = self.clock.monotonic()
        qp.timestamp = now
        qp.backoff_expiry = now + self.backoff_duration(qp.attempts)
        if self.move_request_cycle >= pod_cycle:
            self._place(qp, "backoff")
        else:
            qp.unschedulable_since = now
            self._place(qp, "unschedulable")

    def requeue_error(self, qp: QueuedPod) -> None:
        """Scheduling or binding failed with an error: retried after its backoff."""
        if self.pods.get(qp.key) is not qp:
            return
        now = self.clock.monotonic()
        qp.timestamp = now
        qp.backoff_expiry = now + self.backoff_duration(qp.attempts)
        self._place(qp, "backoff")

    # -- flushing -----------------------------------------------------------------------------------

    def flush_backoff(self) -> int:
        now = self.clock.monotonic()
        moved = 0
        while self._backoff and self._backoff[0][0] <= now:
            _, _, version, key = heapq.heappop(self._backoff)
            qp = self.pods.get(key)
            if qp is None or qp.version != version or qp.where != "backoff":
                continue
            self._place(qp, "active")
            moved += 1
        return moved

    def flush_unschedulable(self) -> int:
        now = self.clock.monotonic()
        moved = 0
        for qp in list(self.pods.values()):
            if qp.where == "unschedulable" and now - qp.unschedulable_since > self.max_in_unschedulable:
                self._requeue(qp)
                moved += 1
        return moved

    async def _every(self, period: float, func: Any) -> None:
        while True:
            await self.clock.sleep(period)
            func()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(BACKOFF_FLUSH_PERIOD, self.flush_backoff)),
                       loop.create_task(self._every(UNSCHEDULABLE_FLUSH_PERIOD, self.flush_unschedulable))]

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks = []
