"""The scheduler component: informers into the node table and the queue, one scheduling loop, asynchronous binds.

As kube-scheduler's `scheduleOne`, on one event loop:

1. Informers on all pods and all nodes. An unassigned pod whose
   `spec.schedulerName` is one of the profiles enters the queue; an
   assigned, non-terminal pod is accounted on its node; nodes fill the
   NodeTable. Node changes that matter (allocatable, labels, taints,
   unschedulable) and pod deletions move the unschedulable pods back; an
   assigned pod appearing or relabelled moves back those that failed on
   pod affinity or topology spread. Informers on Namespaces, Services,
   ReplicaSets and StatefulSets feed `NodeTable.objects` (namespace labels,
   the default spreading selector).
2. The loop pops a pod, runs the algorithm (filters over every node,
   scores over the feasible ones found) and *assumes* the pod on the chosen
   node in the table at once, so the next cycle sees the slot as taken.
3. The bind (POST pods/{name}/binding, several in flight) runs as its own
   task. The assumption stays until the informer shows the pod bound (it
   then becomes an ordinary assigned pod); a failed bind forgets it and
   the pod is retried after its backoff.
4. A pod that fits nowhere gets PodScheduled=False (reason Unschedulable,
   upstream's message) through pods/status, only when that changed, and a
   FailedScheduling event; a bound pod gets a Scheduled event.

5. A pod that fits nowhere may preempt (`preemption`): the victims get
   DisruptionTarget=True (PreemptionByScheduler) and are deleted
   gracefully, each with a Preempted event, and the pod gets
   `status.nominatedNodeName`; it is retried when the victims are gone.
   Otherwise the PostFilter's message follows `preemption: `.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Dict, Optional, Sequence, Set, Type, Union

import orjson

from megaplane.client import (
    Client,
    ConflictError,
    DeletedFinalStateUnknown,
    NotFoundError,
    SharedInformer,
    StatusError,
)
from megaplane.client.cache import strip_managed_fields
from megaplane.runtime import REAL_CLOCK, Clock, cancel_tasks

from .algorithm import Algorithm, FitError, NoNodesAvailableError
from .events import EventRecorder
from .metrics import SchedulerMetrics
from .nodetable import NodeTable
from .objects import NAMESPACES, REPLICA_SETS, SERVICES, STATEFUL_SETS
from .podspec import PodSpecInfo, parse_pod, pod_key
from .preemption import Candidate, Preemptor, pdb_from
from .profile import Profile
from .queue import DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, QueuedPod, SchedulingQueue
from .tenants import TenantPartition

__all__ = ["Scheduler", "DEFAULT_SCHEDULER_NAME"]

log = logging.getLogger("megaplane.scheduler")

DEFAULT_SCHEDULER_NAME = "default-scheduler"
SYNC_TIMEOUT = 120.0
TERMINAL_PHASES = ("Succeeded", "Failed")

Obj = Dict[str, Any]


#: The reasons of failures a pod added elsewhere (or relabelled) may resolve.
_OTHER_PODS_REASONS = ("pod topology spread constraints", "pod affinity rules", "pod anti-affinity rules",
                       "existing pods anti-affinity rules")


def _waits_on_other_pods(qp: QueuedPod) -> bool:
    return any(reason in qp.failure for reason in _OTHER_PODS_REASONS)


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


class Scheduler:
    """A `megaplane.runtime.Component` scheduling pods of `profiles` (see the module docstring).

    A profile is a schedulerName (the default plugins) or a `Profile` from a configuration file
    (`megaplane.scheduler.config`); `pod_initial_backoff` / `pod_max_backoff` are the queue's (seconds).
    """

    #: The table's class (`shards.ShardedScheduler`'s journals its changes for the shards' replicas).
    table_class: Type[NodeTable] = NodeTable

    def __init__(self, client: Client, *, profiles: Sequence[Union[str, Profile]] = (DEFAULT_SCHEDULER_NAME,),
                 percentage_of_nodes_to_score: int = 0, max_binds_in_flight: int = 256,
                 clock: Clock = REAL_CLOCK, rng: Optional[random.Random] = None,
                 pod_initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
                 pod_max_backoff: float = DEFAULT_MAX_BACKOFF,
                 partition: Optional[TenantPartition] = None) -> None:
        if not profiles:
            raise ValueError("the scheduler needs at least one profile (schedulerName)")
        if max_binds_in_flight < 1:
            raise ValueError(f"max_binds_in_flight must be >= 1, got {max_binds_in_flight}")
        self.client = client
        self.profiles = tuple(p if isinstance(p, str) else p.name for p in profiles)
        #: With --tenant-workers: the pods this worker schedules (all others are only accounted).
        self.partition = partition
        self.clock = clock
        self.table = self.table_class()
        self.algorithm = Algorithm(self.table, percentage_of_nodes_to_score=percentage_of_nodes_to_score, rng=rng,
                                   profiles={p.name: p for p in profiles if not isinstance(p, str)})
        self.queue = SchedulingQueue(clock, initial_backoff=pod_initial_backoff, max_backoff=pod_max_backoff)
        #: One recorder per profile, reporting as its schedulerName (upstream's recorder per framework).
        self.recorders = {name: EventRecorder(client, name, clock=clock) for name in self.profiles}
        self.recorder = self.recorders[self.profiles[0]]
        self.metrics = SchedulerMetrics(self.queue.pending)
        self.pods = client.resource("pods")
        self.nodes = client.resource("nodes")
        # kube-scheduler's informers trim managedFields: nothing here reads them, and they are half a cached
        # Node's or Pod's containers (the cyclic collector's work per event).
        self.node_informer = SharedInformer(self.nodes, clock=clock, transform=strip_managed_fields)
        self.pod_informer = SharedInformer(self.pods, clock=clock, transform=strip_managed_fields)
        self.preemptor = Preemptor(self.table, self.algorithm, rng=rng, start_time=self._start_time)
        #: PodDisruptionBudgets, for preemption's victim selection.
        self.pdb_informer = SharedInformer(client.resource("policy/v1", "poddisruptionbudgets"), clock=clock,
                                           transform=strip_managed_fields)
        self.node_informer.add_event_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        # What PodTopologySpread's default selector and InterPodAffinity's namespaceSelector read.
        self.object_informers: Dict[str, SharedInformer] = {}
        for kind, resource in ((NAMESPACES, client.resource("namespaces")), (SERVICES, client.resource("services")),
                               (REPLICA_SETS, client.resource("apps/v1", "replicasets")),
                               (STATEFUL_SETS, client.resource("apps/v1", "statefulsets"))):
            informer = SharedInformer(resource, clock=clock, transform=strip_managed_fields)
            informer.add_event_handler(*self._object_handlers(kind))
            self.object_informers[kind] = informer
        self.object_informers["poddisruptionbudgets"] = self.pdb_informer
        self.max_binds_in_flight = max_binds_in_flight
        self._bind_slots: Optional[asyncio.Semaphore] = None
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._loop: Optional["asyncio.Task[None]"] = None

    @property
    def name(self) -> str:
        return "scheduler"

    # -- informer handlers ----------------------------------------------------------------------------

    def _responsible(self, pod: Obj) -> bool:
        if str((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME) not in self.profiles:
            return False
        return self.partition is None or self.partition.owns(pod)

    def _pending(self, pod: Obj) -> PodSpecInfo:
        """A pending pod as this scheduler places it (kept off the tenants' pools when it names no tenant)."""
        info = parse_pod(pod)
        return info if self.partition is None else self.partition.restrict(pod, info)

    def _node_added(self, node: Obj) -> None:
        if self.table.upsert_node(node):
            self.queue.move_all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self._node_added(new)

    def _node_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        node = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        self.table.remove_node(str((node.get("metadata") or {}).get("name", "")))

    def _object_handlers(self, kind: str) -> Any:
        # Not cluster events for the queue: upstream's PodTopologySpread and InterPodAffinity register pod and
        # node events only (a new Service changes the default selector of pods scheduled from then on).
        objects = self.table.objects

        def added(obj: Obj) -> None:
            objects.upsert(kind, obj)

        def updated(old: Obj, new: Obj) -> None:
            objects.upsert(kind, new)

        def deleted(obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
            objects.delete(kind, obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj)

        return added, updated, deleted

    def _recorder(self, scheduler_name: str) -> EventRecorder:
        return self.recorders.get(scheduler_name, self.recorder)

    def _track_nomination(self, info: PodSpecInfo) -> None:
        if info.nominated_node_name:
            self.algorithm.nominated[info.key] = (info, info.nominated_node_name)
        else:
            self.algorithm.nominated.pop(info.key, None)

    def _assigned_pod_changed(self) -> None:
        """An assigned pod appeared or changed labels: pods waiting on pod affinity or spreading may fit now."""
        self.queue.move_matching(_waits_on_other_pods)

    def _pod_added(self, pod: Obj) -> None:
        if _terminal(pod):
            return
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if node:
            info = parse_pod(pod)
            known = info.key in self.table.pods
            self.table.add_pod(info, str(node))
            self.queue.done(info.key)
            self.algorithm.nominated.pop(info.key, None)
            if not known:
                self._assigned_pod_changed()
        elif self._responsible(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            info = self._pending(pod)
            self._track_nomination(info)
            self.queue.add(pod, info)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = pod_key(new)
        if _terminal(new):
            self.queue.delete(key)
            self.algorithm.nominated.pop(key, None)
            if self.table.remove_pod(key) is not None:
                self.queue.move_all()
            return
        node = (new.get("spec") or {}).get("nodeName")
        if node:
            placed = self.table.pods.get(key)
            old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
            same_meta = old_meta.get("labels") == new_meta.get("labels") and \
                bool(old_meta.get("deletionTimestamp")) == bool(new_meta.get("deletionTimestamp"))
            if placed is not None and not placed.assumed and old.get("spec") == new.get("spec") and same_meta:
                return  # a status change of a pod already accounted
            self.table.add_pod(parse_pod(new), str(node))
            self.queue.done(key)
            self.algorithm.nominated.pop(key, None)
            if placed is None or not same_meta:
                self._assigned_pod_changed()
        elif self._responsible(new):
            if (new.get("metadata") or {}).get("deletionTimestamp"):
                self.queue.delete(key)
                self.algorithm.nominated.pop(key, None)
            else:
                info = self._pending(new)
                self._track_nomination(info)
                self.queue.update(new, info)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        key = pod_key(pod)
        self.queue.delete(key)
        self.algorithm.nominated.pop(key, None)
        for recorder in self.recorders.values():
            recorder.forget(pod)
        if self.table.remove_pod(key) is not None:
            self.queue.move_all()

    # -- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._bind_slots is not None
        while True:
            qp = await self.queue.pop()
            await self._bind_slots.acquire()
            try:
                bound = self.schedule_one(qp)
            except Exception:
                self._bind_slots.release()
                log.exception("scheduling %s failed", qp.key)
                self.queue.requeue_error(qp)
                continue
            if not bound:
                self._bind_slots.release()
            # Let informers, binds and status writes run between cycles.
            await asyncio.sleep(0)

    def schedule_one(self, qp: QueuedPod) -> bool:
        """One scheduling cycle for `qp`; True when a bind was started (it holds a bind slot)."""
        info = qp.info
        cycle = self.queue.scheduling_cycle
        profile = info.scheduler_name
        started = time.perf_counter()
        try:
            result = self.algorithm.schedule(info)
        except FitError as exc:
            message = exc.message
            post = self._post_filter(qp) if self.algorithm.profile(info).preemption else ""
            if post:
                message += " preemption: " + post
            self.metrics.attempt("unschedulable", profile, time.perf_counter() - started)
            self.queue.requeue_unschedulable(qp, cycle)
            self._failed(qp, "Unschedulable", message)
            return False
        except NoNodesAvailableError as exc:
            self.metrics.attempt("error", profile, time.perf_counter() - started)
            self.queue.requeue_error(qp)
            self._failed(qp, "SchedulerError", str(exc))
            return False
        self.table.add_pod(info, result.node, assumed=True)
        self._spawn(self._bind(qp, info, result.node, started))
        return True

    # -- preemption -----------------------------------------------------------------------------------

    def _start_time(self, placed: Any) -> str:
        """A placed pod's status.startTime from the informer's copy (the table keeps spec-level facts only)."""
        obj = self.pod_informer.lister.get(placed.info.namespace, placed.info.name)
        return str(((obj or {}).get("status") or {}).get("startTime") or "")

    def _post_filter(self, qp: QueuedPod) -> str:
        """DefaultPreemption after a FitError: the PostFilter message ("" when a node was nominated)."""
        info = qp.info
        current = self.pod_informer.lister.get(info.namespace, info.name)
        if current is not None:
            nominated = str((current.get("status") or {}).get("nominatedNodeName") or "")
            if nominated != info.nominated_node_name:
                info = self._pending(current)
        codes = self.algorithm.statuses(info)
        pdbs = [pdb_from(o) for o in self.pdb_informer.indexer.list()]
        candidate, message = self.preemptor.preempt(info, codes, pdbs)
        self.metrics.preemption(len(candidate.victims) if candidate is not None else 0)
        if candidate is None:
            if info.nominated_node_name and message != "" and not message.startswith("not eligible"):
                self._spawn(self._nominate(info, None))
            return message
        self._spawn(self._prepare(qp, info, candidate))
        return ""

    async def _prepare(self, qp: QueuedPod, info: PodSpecInfo, candidate: Candidate) -> None:
        """prepareCandidate: mark and delete the victims, then nominate the node for the preemptor."""
        condition = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                     "message": f"{info.scheduler_name}: preempting to accommodate a higher priority pod",
                     "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.time()))}
        for victim in candidate.victims:
            v = victim.info
            try:
                await self.pods.patch(v.name, {"status": {"conditions": [condition]}}, v.namespace,
                                      subresource="status")
                await self.pods.delete(v.name, v.namespace)
            except NotFoundError:
                continue
            except Exception as exc:
                log.info("preempting %s for %s failed: %s", v.key, info.key, exc)
                return
            obj = self.pod_informer.lister.get(v.namespace, v.name) or {
                "metadata": {"name": v.name, "namespace": v.namespace, "uid": v.uid}}
            self._recorder(info.scheduler_name).event(obj, "Normal", "Preempted", "Preempting",
                                f"Preempted by pod {info.uid} on node {candidate.node}")
        # Less important pods nominated to this node may no longer fit there: they look again elsewhere.
        for other, node in list(self.algorithm.nominated.values()):
            if node == candidate.node and other.priority < info.priority:
                await self._nominate(other, None)
        await self._nominate(info, candidate.node)

    async def _nominate(self, info: PodSpecInfo, node: Optional[str]) -> None:
        try:
            await self.pods.patch(info.name, {"status": {"nominatedNodeName": node}}, info.namespace,
                                  subresource="status")
        except NotFoundError:
            pass
        except Exception as exc:
            log.info("setting the nominated node of %s failed: %s", info.key, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, key: str) -> None:
        placed = self.table.pods.get(key)
        if placed is not None and placed.assumed:
            self.table.remove_pod(key)

    async def _bind(self, qp: QueuedPod, info: PodSpecInfo, node: str, started: float) -> None:
        assert self._bind_slots is not None
        body = orjson.dumps({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": info.name, "namespace": info.namespace, "uid": info.uid},
            "target": {"kind": "Node", "name": node},
        })
        try:
            await self.client.transport.create(self.pods.ref, info.namespace, body, subresource="binding",
                                               name=info.name)
        except NotFoundError:
            self._forget(info.key)  # the pod is gone
            self.queue.done(info.key)
            self.metrics.attempt("error", info.scheduler_name, time.perf_counter() - started)
        except (ConflictError, StatusError, Exception) as exc:
            log.info("binding %s to %s failed: %s", info.key, node, exc)
            self._forget(info.key)
            self.metrics.attempt("error", info.scheduler_name, time.perf_counter() - started)
            self.queue.requeue_error(qp)
        else:
            self.metrics.attempt("scheduled", info.scheduler_name, time.perf_counter() - started)
            self.queue.done(info.key)
            self._recorder(info.scheduler_name).event(qp.pod, "Normal", "Scheduled", "Binding",
                                f"Successfully assigned {info.namespace}/{info.name} to {node}")
        finally:
            self._bind_slots.release()

    def _failed(self, qp: QueuedPod, reason: str, message: str) -> None:
        pod = qp.pod
        qp.failure = message
        self._recorder(qp.info.scheduler_name).event(pod, "Warning", "FailedScheduling", "Scheduling", message)
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "PodScheduled"), None)
        if current is not None and current.get("status") == "False" and current.get("reason") == reason \
                and current.get("message") == message:
            return
        transition = current.get("lastTransitionTime") if current is not None and current.get("status") == "False" \
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.time()))
        condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                     "lastProbeTime": None, "lastTransitionTime": transition}
        self._spawn(self._patch_condition(qp.info, condition))

    async def _patch_condition(self, info: PodSpecInfo, condition: Obj) -> None:
        try:
            await self.pods.patch(info.name, {"status": {"conditions": [condition]}}, info.namespace,
                                  subresource="status")
        except NotFoundError:
            pass
        except Exception as exc:
            log.info("updating the PodScheduled condition of %s failed: %s", info.key, exc)

    # -- component -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._bind_slots = asyncio.Semaphore(self.max_binds_in_flight)
        await self.node_informer.start()
        await self.pod_informer.start()
        for informer in self.object_informers.values():
            await informer.start()
        for inf in (self.node_informer, self.pod_informer, *self.object_informers.values()):
            if not await inf.wait_for_sync(SYNC_TIMEOUT):
                raise RuntimeError(f"scheduler: {inf.name} did not sync within {SYNC_TIMEOUT:.0f} s")
        self.queue.start()
        for recorder in self.recorders.values():
            recorder.start()
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="scheduler-loop")

    async def stop(self) -> None:
        tasks = ([self._loop] if self._loop is not None else []) + list(self._tasks)
        self._loop = None
        await cancel_tasks(tasks)
        self._tasks.clear()
        await self.queue.close()
        for recorder in self.recorders.values():
            await recorder.stop()
        for informer in self.object_informers.values():
            await informer.stop()
        await self.pod_informer.stop()
        await self.node_informer.stop()

    def ready(self) -> bool:
        return self._loop is not None and not self._loop.done() and self.node_informer.has_synced() \
            and self.pod_informer.has_synced() and all(i.has_synced() for i in self.object_informers.values())

    def statistics(self) -> Dict[str, float]:
        stats: Dict[str, float] = {f"pending_{k.replace('-', '_')}": float(v) for k, v in self.queue.pending().items()}
        stats["nodes"] = float(self.table.count)
        stats["assumed_pods"] = float(self.table.assumed_count())
        for result, count in self.metrics.totals().items():
            stats[f"attempts_{result}"] = float(count)
        return stats
