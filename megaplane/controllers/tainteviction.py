"""The taint eviction controller: pods that do not tolerate a node's NoExecute taints are deleted, after their tolerationSeconds.

kube-controller-manager 1.32's taint-eviction-controller
(pkg/controller/tainteviction): for each pod on a node with NoExecute
taints, if some taint is not tolerated the pod is deleted now; otherwise
it is deleted after the smallest `tolerationSeconds` of the tolerations
used (none of them timed: never), counted from when this controller first
saw the pod under those taints. The timer is per pod and is cancelled when
the taints go, the pod's tolerations change so that it tolerates them
forever, or the pod is gone (an Event `TaintManagerEviction` "Cancelling
deletion of Pod ns/name"). A deletion records `TaintManagerEviction`
"Marking for deletion Pod ns/name", gives the pod the DisruptionTarget
condition (reason DeletionByTaintManager) and deletes it.

Beyond upstream: a deletion is decided from fresh data, never from a cache
the controller may have fallen behind on (its own process stalled, its
watches broke): when a timer fires, the node is read from the API server
and the pod deleted only if that node still has a NoExecute taint the pod
does not tolerate for that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import msgspec
import orjson

from megaplane.client import (
    NODE_NAME_INDEX,
    Client,
    DeletedFinalStateUnknown,
    NotFoundError,
    StatusError,
    node_name_index,
)
from megaplane.client.informer import EventHandler
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.runtime import REAL_CLOCK, Clock, Statistics, Timer, cancel_tasks

from .events import EventRecorder, object_reference
from .nodelifecycle.records import Node, Taint
from .nodelifecycle.reflector import Reflector

__all__ = ["TaintEvictionController", "matching_tolerations", "min_toleration_seconds", "tolerates"]

log = logging.getLogger("megaplane.controllers.tainteviction")

NAME = "taint-eviction-controller"
NO_EXECUTE = "NoExecute"
#: Upstream's retries of addConditionAndDeletePod.
RETRIES = 5
#: Deletions in flight at once (upstream's UpdateWorkerSize).
WORKERS = 8

Obj = Dict[str, Any]


def tolerates(toleration: Obj, taint: Taint) -> bool:
    """Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.effect:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.key:
        return False
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.value or "")
    return False


def matching_tolerations(taints: Sequence[Taint], tolerations: Sequence[Obj]) -> Tuple[bool, List[Obj]]:
    """GetMatchingTolerations: (all taints tolerated, the first toleration used for each)."""
    if not taints:
        return True, []
    used: List[Obj] = []
    for taint in taints:
        for t in tolerations:
            if isinstance(t, dict) and tolerates(t, taint):
                used.append(t)
                break
        else:
            return False, []
    return True, used


def min_toleration_seconds(tolerations: Sequence[Obj]) -> float:
    """getMinTolerationTime: the smallest tolerationSeconds (<= 0: 0); -1 when none is timed (forever)."""
    if not tolerations:
        return 0.0
    best: Optional[int] = None
    for t in tolerations:
        seconds = t.get("tolerationSeconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            if seconds <= 0:
                return 0.0
            best = seconds if best is None else min(best, seconds)
    return -1.0 if best is None else float(best)


class _Work:
    __slots__ = ("created", "fire_at", "timer")

    def __init__(self, created: float, fire_at: float, timer: Timer) -> None:
        self.created = created
        self.fire_at = fire_at
        self.timer = timer


class TaintEvictionController:
    """A `megaplane.runtime.Component` (see the module docstring)."""

    def __init__(self, client: Client, *, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        self.client = client
        self.clock = clock
        self.informer_factory = informers if informers is not None else SharedInformerFactory(clock=clock)
        self._own_informer = False
        self._pod_handler: Optional[EventHandler] = None
        self.pods = client.resource("pods")
        self.nodes = client.resource("nodes")
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._sem = asyncio.Semaphore(WORKERS)
        self._reset()

    @property
    def name(self) -> str:
        return NAME

    def _reset(self) -> None:
        self.recorder = EventRecorder(self.client, NAME, clock=self.clock)
        self.tainted: Dict[str, Tuple[Taint, ...]] = {}
        self.work: Dict[str, _Work] = {}
        # Shared with the process's other controllers (read-only objects); a restart (leadership regained)
        # replaces only the handler, which replays the known pods to it.
        self.pod_informer = self.informer_factory.informer(self.pods, indexers={NODE_NAME_INDEX: node_name_index})
        if self._pod_handler is not None:
            self.pod_informer.remove_event_handler(self._pod_handler)
        self._pod_handler = self.pod_informer.add_event_handler(
            lambda p: self._pod_updated(None, p), self._pod_updated, self._pod_deleted)
        self.node_reflector: Reflector[Node] = Reflector(
            self.nodes, Node, lambda n: n.metadata.name, self._node_updated, self._node_deleted, clock=self.clock)
        self.stats = {"evictions": 0, "cancelled": 0, "scheduled": 0, "spared": 0, "failures": 0}

    # -- nodes ------------------------------------------------------------------------------------

    def _node_updated(self, node: Node) -> None:
        name = node.metadata.name
        taints = tuple(t for t in node.spec.taints or () if t.effect == NO_EXECUTE)
        if self.tainted.get(name, ()) == taints:
            return
        if taints:
            self.tainted[name] = taints
        else:
            self.tainted.pop(name, None)
        pods = self.pod_informer.indexer.by_index(NODE_NAME_INDEX, name)
        if not taints:
            for pod in pods:
                self._cancel(_key(pod))
            return
        now = self.clock.monotonic()
        for pod in pods:
            self._process(pod, name, taints, now)

    def _node_deleted(self, name: str) -> None:
        self.tainted.pop(name, None)

    # -- pods ---------------------------------------------------------------------------------------

    def _pod_updated(self, old: Optional[Obj], new: Obj) -> None:
        spec = new.get("spec") or {}
        if old is not None:
            old_spec = old.get("spec") or {}
            if old_spec.get("tolerations") == spec.get("tolerations") and old_spec.get("nodeName") == spec.get("nodeName"):
                return
        node = spec.get("nodeName")
        if not node:
            return
        taints = self.tainted.get(node)
        if taints is None:
            return
        self._process(new, node, taints, self.clock.monotonic())

    def _pod_deleted(self, pod: Union[Obj, DeletedFinalStateUnknown]) -> None:
        if isinstance(pod, DeletedFinalStateUnknown):
            self._cancel(pod.key)
        else:
            self._cancel(_key(pod))

    # -- decisions (processPodOnNode) -----------------------------------------------------------------

    def _process(self, pod: Obj, node: str, taints: Sequence[Taint], now: float) -> None:
        key = _key(pod)
        if not taints:
            self._cancel(key)
            return
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        all_tolerated, used = matching_tolerations(taints, tolerations)
        if not all_tolerated:
            self._cancel(key)
            self._schedule(key, now, now)
            return
        seconds = min_toleration_seconds(used)
        if seconds < 0:
            self._cancel(key)
            return
        start, trigger = now, now + seconds
        existing = self.work.get(key)
        if existing is not None:
            start = existing.created
            if start + seconds < trigger:
                return
            self._cancel(key)
        self._schedule(key, start, trigger)

    def _schedule(self, key: str, created: float, fire_at: float) -> None:
        if key in self.work:
            return  # AddWork keeps the existing timer
        timer = self.clock.call_at(fire_at, lambda: self._fire(key))
        self.work[key] = _Work(created, fire_at, timer)
        self.stats["scheduled"] += 1

    def _cancel(self, key: str) -> None:
        work = self.work.pop(key, None)
        if work is None:
            return
        work.timer.cancel()
        self.stats["cancelled"] += 1
        ns, _, name = key.partition("/")
        self.recorder.event(object_reference("Pod", name, ns), "Normal", "TaintManagerEviction",
                            f"Cancelling deletion of Pod {key}")

    def _fire(self, key: str) -> None:
        if key not in self.work:
            return
        task = asyncio.get_running_loop().create_task(self._evict(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evict(self, key: str) -> None:
        async with self._sem:
            try:
                await self._evict_now(key)
            finally:
                self.work.pop(key, None)

    async def _still_due(self, pod: Obj) -> bool:
        """Fresh data only: the pod's node, read now, still has a NoExecute taint it does not outlast."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return False
        try:
            node = msgspec.json.decode(await self.nodes.get_raw(node_name), type=Node)
        except NotFoundError:
            return False
        taints = [t for t in node.spec.taints or () if t.effect == NO_EXECUTE]
        if not taints:
            return False
        all_tolerated, used = matching_tolerations(taints, (pod.get("spec") or {}).get("tolerations") or [])
        if not all_tolerated:
            return True
        seconds = min_toleration_seconds(used)
        work = self.work.get(_key(pod))
        # Due if, on the fresh taints, the deadline is not later than the one this timer was set for.
        return seconds >= 0 and work is not None and work.created + seconds <= work.fire_at + 1e-3

    async def _evict_now(self, key: str) -> None:
        ns, _, name = key.partition("/")
        error: Optional[Exception] = None
        checked = False
        for attempt in range(RETRIES):
            try:
                pod = orjson.loads(await self.pods.get_raw(name, ns))
                if not checked:
                    # Until the fresh check has answered, nothing is deleted: a failed check is retried, not skipped.
                    if not await self._still_due(pod):
                        self.stats["spared"] += 1
                        log.info("%s: pod %s no longer due for eviction (its node's taints changed)", NAME, key)
                        return
                    checked = True
                    log.info("%s: deleting pod %s", NAME, key)
                    self.recorder.event(object_reference("Pod", name, ns, pod["metadata"].get("uid", "")), "Normal",
                                        "TaintManagerEviction", f"Marking for deletion Pod {key}")
                await self._add_condition_and_delete(pod)
                self.stats["evictions"] += 1
                return
            except NotFoundError:
                return
            except (StatusError, OSError) as exc:
                error = exc
                await self.clock.sleep(0.01)
        self.stats["failures"] += 1
        log.warning("%s: pod %s not deleted: %s", NAME, key, error)

    async def _add_condition_and_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        name, ns = meta["name"], meta.get("namespace", "")
        conditions = (pod.get("status") or {}).get("conditions") or []
        target = next((c for c in conditions if c.get("type") == "DisruptionTarget"), None)
        if target is None or target.get("status") != "True" or target.get("reason") != "DeletionByTaintManager":
            condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                         "message": "Taint manager: deleting due to NoExecute taint",
                         "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.time()))}
            await self.pods.patch_raw(name, orjson.dumps({"status": {"conditions": [condition]}}), ns,
                                      subresource="status")
        await self.pods.delete(name, ns)

    # -- component ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._reset()
        if not self.pod_informer.running:
            await self.pod_informer.start()
            self._own_informer = True
        if not await self.pod_informer.wait_for_sync(60.0):
            raise RuntimeError(f"{NAME}: pods did not sync within 60 s")
        await self.node_reflector.start()
        try:
            await asyncio.wait_for(self.node_reflector.synced.wait(), 60.0)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{NAME}: nodes did not sync within 60 s") from None

    async def stop(self) -> None:
        for work in self.work.values():
            work.timer.cancel()
        self.work.clear()
        await cancel_tasks(list(self._tasks))
        await self.node_reflector.stop()
        if self._pod_handler is not None:
            self.pod_informer.remove_event_handler(self._pod_handler)
            self._pod_handler = None
        if self._own_informer:
            self._own_informer = False
            await self.pod_informer.stop()
        await self.recorder.stop()

    def ready(self) -> bool:
        return self.pod_informer.has_synced() and self.node_reflector.synced.is_set()

    def statistics(self) -> Statistics:
        out: Statistics = {k: float(v) for k, v in self.stats.items()}
        out["scheduled_now"] = float(len(self.work))
        out["tainted_nodes"] = float(len(self.tainted))
        return out


def _key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
