"""The pod garbage collector: terminated pods past the threshold, orphaned pods, pods stuck terminating.

kube-controller-manager 1.32's pod-garbage-collector-controller
(pkg/controller/podgc), every `gc_period` (20 s):

- Terminated pods (phase neither Pending, Running nor Unknown) beyond
  `--terminated-pod-gc-threshold` (12500; <= 0 turns this off): the
  oldest are deleted, evicted ones first (sorted by eviction, creation
  time, then name).
- Terminating pods (deletionTimestamp set) on a node that is not Ready and
  carries the `node.kubernetes.io/out-of-service` taint: force deleted.
- Orphaned pods, bound to a node that does not exist: the node name waits
  a quarantine (40 s) and is then looked up on the API server itself (not
  the cache); if it is still missing, its pods get phase Failed with the
  DisruptionTarget condition (DeletionByPodGC, "PodGC: node no longer
  exists") and are force deleted.
- Terminating pods never scheduled (no nodeName): force deleted.

A force deletion first sets phase Failed (unless Succeeded or Failed) so
a pod no kubelet will ever finish does not stay Running, then deletes
with grace period 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Optional, Set

import orjson

from megaplane.client import Client, NotFoundError, StatusError
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.runtime import REAL_CLOCK, Clock, Statistics, cancel_tasks

from .nodelifecycle.records import Node
from .nodelifecycle.reflector import Reflector

__all__ = ["PodGCController", "GC_PERIOD", "QUARANTINE"]

log = logging.getLogger("megaplane.controllers.podgc")

NAME = "pod-garbage-collector-controller"
GC_PERIOD = 20.0
QUARANTINE = 40.0
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
#: Deletions in flight at once (upstream runs one goroutine per pod; bounded here).
WORKERS = 16

Obj = Dict[str, Any]


def _terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Pending", "Running", "Unknown")


def _evicted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def _node_ready(node: Node) -> bool:
    for c in node.status.conditions or ():
        if c.type == "Ready":
            return c.status == "True"
    return False


class PodGCController:
    """A `megaplane.runtime.Component` (see the module docstring)."""

    def __init__(self, client: Client, *, terminated_pod_gc_threshold: int = 12500, gc_period: float = GC_PERIOD,
                 quarantine: float = QUARANTINE, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        self.client = client
        self.threshold = terminated_pod_gc_threshold
        self.gc_period = gc_period
        self.quarantine = quarantine
        self.clock = clock
        self.pods = client.resource("pods")
        self.nodes = client.resource("nodes")
        factory = informers if informers is not None else SharedInformerFactory(clock=clock)
        self.pod_informer = factory.informer(self.pods)  # shared: read-only objects
        self._own_informer = False
        #: Nodes as the few fields read of them (name, Ready, taints), not whole objects.
        self.node_cache: Dict[str, Node] = {}
        self.node_reflector: Reflector[Node] = Reflector(
            self.nodes, Node, lambda n: n.metadata.name, lambda n: self.node_cache.__setitem__(n.metadata.name, n),
            self._node_deleted, clock=clock)
        #: Node names missing from the cache, and when they may be checked (the quarantine's delaying queue).
        self._quarantined: Dict[str, float] = {}
        self._task: Optional["asyncio.Task[None]"] = None
        self.stats = {"passes": 0, "deleted_terminated": 0, "deleted_orphaned": 0,
                      "deleted_terminating_out_of_service": 0, "deleted_terminating_unscheduled": 0, "errors": 0}

    @property
    def name(self) -> str:
        return NAME

    def _node_deleted(self, name: str) -> None:
        self.node_cache.pop(name, None)

    async def gc(self) -> None:
        """One pass (upstream's gc)."""
        pods = self.pod_informer.indexer.list()
        nodes = set(self.node_cache)
        self.stats["passes"] += 1
        if self.threshold > 0:
            await self._gc_terminated(pods)
        await self._gc_terminating(pods)
        await self._gc_orphaned(pods, nodes)
        await self._gc_unscheduled_terminating(pods)

    async def _gc_terminated(self, pods: List[Obj]) -> None:
        terminated = [p for p in pods if _terminated(p)]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return
        log.info("%s: garbage collecting %d terminated pods", NAME, excess)
        terminated.sort(key=lambda p: (not _evicted(p), p["metadata"].get("creationTimestamp") or "",
                                       p["metadata"].get("name", "")))
        await self._delete_all(terminated[:excess], None, "deleted_terminated")

    async def _gc_terminating(self, pods: List[Obj]) -> None:
        out: List[Obj] = []
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                continue
            node = self.node_cache.get((pod.get("spec") or {}).get("nodeName") or "")
            if node is None:
                continue
            if not _node_ready(node) and any(t.key == OUT_OF_SERVICE_TAINT for t in node.spec.taints or ()):
                out.append(pod)
        if out:
            out.sort(key=lambda p: (not _evicted(p), p["metadata"].get("creationTimestamp") or "",
                                    p["metadata"].get("name", "")))
            await self._delete_all(out, None, "deleted_terminating_out_of_service")

    async def _gc_orphaned(self, pods: List[Obj], existing: Set[str]) -> None:
        now = self.clock.monotonic()
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in existing and node not in self._quarantined:
                self._quarantined[node] = now + self.quarantine
        deleted: Set[str] = set()
        for node, due in list(self._quarantined.items()):
            if due > now:
                continue
            del self._quarantined[node]
            if node in existing:
                continue
            try:
                await self.nodes.get_raw(node)  # the API server, not the cache, has the last word
            except NotFoundError:
                deleted.add(node)
            except StatusError as exc:
                log.info("%s: error while getting node %s: %s", NAME, node, exc)
        if not deleted:
            return
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in deleted]
        condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                     "message": "PodGC: node no longer exists"}
        for pod in orphans:
            log.info("%s: found orphaned pod %s/%s assigned to the node %s, deleting", NAME,
                     pod["metadata"].get("namespace"), pod["metadata"]["name"], pod["spec"]["nodeName"])
        await self._delete_all(orphans, condition, "deleted_orphaned")

    async def _gc_unscheduled_terminating(self, pods: List[Obj]) -> None:
        out = [p for p in pods if p["metadata"].get("deletionTimestamp") and not (p.get("spec") or {}).get("nodeName")]
        if out:
            await self._delete_all(out, None, "deleted_terminating_unscheduled")

    async def _delete_all(self, pods: List[Obj], condition: Optional[Obj], counter: str) -> None:
        sem = asyncio.Semaphore(WORKERS)

        async def one(pod: Obj) -> None:
            async with sem:
                try:
                    await self.mark_failed_and_delete(pod, condition)
                    self.stats[counter] += 1
                except NotFoundError:
                    pass
                except StatusError as exc:
                    self.stats["errors"] += 1
                    log.info("%s: pod %s/%s not deleted: %s", NAME, pod["metadata"].get("namespace"),
                             pod["metadata"]["name"], exc)

        await asyncio.gather(*(one(p) for p in pods))

    async def mark_failed_and_delete(self, pod: Obj, condition: Optional[Obj] = None) -> None:
        """markFailedAndDeletePodWithCondition: phase Failed (+ condition) unless finished, then delete now."""
        meta = pod["metadata"]
        name, ns = meta["name"], meta.get("namespace", "")
        log.info("%s: force deleting pod %s/%s", NAME, ns, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed"):
            status: Obj = {"phase": "Failed"}
            if condition is not None:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.time()))
                status["conditions"] = [dict(condition, lastTransitionTime=stamp)]
            body = {"metadata": {"uid": meta.get("uid")}, "status": status} if meta.get("uid") else {"status": status}
            await self.pods.patch_raw(name, orjson.dumps(body), ns, subresource="status")
        await self.pods.delete(name, ns, grace_period_seconds=0)

    async def _loop(self) -> None:
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: pass failed", NAME)
            await self.clock.sleep(self.gc_period)

    async def start(self) -> None:
        self._quarantined.clear()
        if not self.pod_informer.running:
            await self.pod_informer.start()
            self._own_informer = True
        await self.node_reflector.start()
        if not await self.pod_informer.wait_for_sync(60.0):
            raise RuntimeError(f"{NAME}: pods did not sync within 60 s")
        try:
            await asyncio.wait_for(self.node_reflector.synced.wait(), 60.0)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{NAME}: nodes did not sync within 60 s") from None
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=NAME)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_tasks([task])
        await self.node_reflector.stop()
        if self._own_informer:
            self._own_informer = False
            await self.pod_informer.stop()

    def ready(self) -> bool:
        return self._task is not None and self.pod_informer.has_synced() and self.node_reflector.synced.is_set()

    def statistics(self) -> Statistics:
        out: Statistics = {k: float(v) for k, v in self.stats.items()}
        out["quarantined_nodes"] = float(len(self._quarantined))
        return out
