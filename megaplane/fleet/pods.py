"""Pods bound to the fleet's nodes, taken through the kubelet's phases.

An informer on every bound pod (`spec.nodeName!=`) feeds a queue of pod
keys; a sync reads the pod and does the one next step a kubelet would,
level-triggered (what to do follows from the pod and the clock, so a
fleet restart picks up where it was):

- Pending: once --pod-startup-latency has passed since the fleet first
  saw it, write Running (podIP(s) from the node's range, hostIP(s),
  startTime, running containerStatuses, terminated initContainerStatuses,
  conditions PodScheduled / Initialized / ContainersReady / Ready).
- Running and meant to finish (a Job's pod after --job-pod-run-time, any
  pod after `fleet.megaplane.io/run-seconds`): at startTime + run time,
  write Succeeded, or Failed with `fleet.megaplane.io/exit-code` if not 0.
- deletionTimestamp set: stop the containers (terminated statuses, a
  terminal phase) and delete with grace 0 and the pod's UID as a
  precondition, as the kubelet's status manager does.

Status goes through the status subresource with the pod's
resourceVersion; a conflict waits for the informer's newer copy. Pods on
nodes the fleet does not own, and pods on nodes whose kubelet is stopped
by a fault, are left alone (the latter until the fault is removed).
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import time
from typing import Any, Callable, Dict, Hashable, Optional

import orjson

from megaplane.client import (
    NODE_NAME_INDEX,
    ConflictError,
    NotFoundError,
    ResourceClient,
    SharedInformer,
    StatusError,
    node_name_index,
)
from megaplane.client.workers import Workers
from megaplane.client.workqueue import ItemExponentialFailureRateLimiter, RateLimitingQueue
from megaplane.runtime import REAL_CLOCK, Clock

from .config import FleetConfig
from .ipam import PodAddresses
from .nodes import format_time

__all__ = ["PodLifecycle", "RUN_SECONDS_ANNOTATION", "EXIT_CODE_ANNOTATION"]

log = logging.getLogger("megaplane.fleet")

RUN_SECONDS_ANNOTATION = "fleet.megaplane.io/run-seconds"
EXIT_CODE_ANNOTATION = "fleet.megaplane.io/exit-code"
TERMINAL = ("Succeeded", "Failed")

Obj = Dict[str, Any]


def _parse_time(stamp: str) -> Optional[float]:
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except (ValueError, TypeError):
        return None


def _container_id(pod: Obj, name: str) -> str:
    uid = (pod.get("metadata") or {}).get("uid") or ""
    return "containerd://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def _image_id(image: str) -> str:
    return f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _condition(kind: str, status: bool, stamp: str, reason: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": kind, "status": "True" if status else "False", "lastProbeTime": None,
                           "lastTransitionTime": stamp}
    if reason:
        out["reason"] = reason
    return out


class PodLifecycle:
    """Pods of this fleet's nodes, from Pending to Running to a terminal phase or deletion."""

    def __init__(self, pods: ResourceClient, config: FleetConfig, addresses: PodAddresses,
                 node_stopped: Callable[[int], bool], *, clock: Clock = REAL_CLOCK, workers: int = 4) -> None:
        self.pods = pods
        self.config = config
        self.addresses = addresses
        self.node_stopped = node_stopped
        self.clock = clock
        self.workers = workers
        self.informer = SharedInformer(pods, field_selector="spec.nodeName!=", clock=clock,
                                       indexers={NODE_NAME_INDEX: node_name_index})
        self.informer.add_event_handler(self._changed, lambda old, new: self._changed(new), self._gone)
        self.queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            ItemExponentialFailureRateLimiter(0.005, 30.0), name="fleet-pods", clock=clock)
        self._first_seen: Dict[str, float] = {}
        # A conflict is forgotten, not retried: the informer brings the newer pod, which queues the key again.
        self._workers: Workers[Hashable] = Workers("fleet-pods", self.queue, self._sync_key, workers,
                                                   forget_on=(ConflictError,))
        self.transitions: Dict[str, int] = {"Running": 0, "Succeeded": 0, "Failed": 0, "Deleted": 0}

    # -- informer handlers ---------------------------------------------------------------------

    def _changed(self, pod: Obj) -> None:
        spec = pod.get("spec") or {}
        local = self.config.node_index(spec.get("nodeName") or "")
        if local < 0:
            return
        meta = pod["metadata"]
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if ip and not spec.get("hostNetwork"):
            self.addresses.seen_pod_ip(local, ip)
        self.queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    def _gone(self, pod: Any) -> None:
        key = pod.key if not isinstance(pod, dict) else \
            f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        self._first_seen.pop(key, None)

    def node_resumed(self, local: int) -> None:
        """A node's kubelet came back from stop-heartbeat: look at its pods again."""
        name = self.config.node_name(self.config.node_index_start + local)
        for key in self.informer.indexer.index_keys(NODE_NAME_INDEX, name):
            self.queue.add(key)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.informer.start()
        self._workers.start()

    async def stop(self) -> None:
        await self._workers.stop()
        await self.informer.stop()

    def ready(self) -> bool:
        return self.informer.has_synced()

    async def _sync_key(self, key: Hashable) -> None:
        await self.sync(str(key))

    # -- one pod ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        pod = self.informer.lister.get(namespace, name)
        if pod is None:
            self._first_seen.pop(key, None)
            return
        spec = pod.get("spec") or {}
        local = self.config.node_index(spec.get("nodeName") or "")
        if local < 0 or self.node_stopped(local):
            return
        meta = pod["metadata"]
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if meta.get("deletionTimestamp"):
            await self._stop_and_delete(pod, phase)
            return
        if phase in TERMINAL:
            return
        now = self.clock.monotonic()
        if phase == "Pending":
            seen = self._first_seen.setdefault(key, now)
            wait = seen + self.config.pod_startup_latency - now
            if wait > 0:
                self.queue.add_after(key, wait)
                return
            await self._write(pod, self._running(pod, local))
            self.transitions["Running"] += 1
            return
        run = self._run_time(pod)
        if run is None:
            return
        started = _parse_time((pod.get("status") or {}).get("startTime") or "")
        wait = (started if started is not None else self.clock.time()) + run - self.clock.time()
        if wait > 0:
            self.queue.add_after(key, wait)
            return
        exit_code = self._exit_code(pod)
        status = self._terminated(pod, exit_code)
        await self._write(pod, status)
        self.transitions[status["phase"]] += 1

    def _run_time(self, pod: Obj) -> Optional[float]:
        annotations = pod["metadata"].get("annotations") or {}
        value = annotations.get(RUN_SECONDS_ANNOTATION)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                log.info("fleet: pod %s: %s=%r is not a number of seconds", pod["metadata"]["name"],
                         RUN_SECONDS_ANNOTATION, value)
        owners = pod["metadata"].get("ownerReferences") or ()
        if any(o.get("kind") == "Job" and o.get("controller") for o in owners) or \
                EXIT_CODE_ANNOTATION in annotations:
            return self.config.job_pod_run_time
        return None

    @staticmethod
    def _exit_code(pod: Obj) -> int:
        value = (pod["metadata"].get("annotations") or {}).get(EXIT_CODE_ANNOTATION, "0")
        try:
            return int(value)
        except ValueError:
            return 1

    async def _write(self, pod: Obj, status: Obj) -> None:
        body = dict(pod)
        body["status"] = status
        meta = pod["metadata"]
        await self.pods.update_raw(meta["name"], orjson.dumps(body), meta.get("namespace"), subresource="status")

    async def _stop_and_delete(self, pod: Obj, phase: str) -> None:
        meta = pod["metadata"]
        if phase not in TERMINAL:
            await self._write(pod, self._terminated(pod, 0))
        try:
            await self.pods.delete(meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                   preconditions={"uid": meta["uid"]})
        except NotFoundError:
            return
        except StatusError as exc:
            if exc.code == 409:  # the UID precondition: a new pod of that name is not ours to delete
                return
            raise
        self.transitions["Deleted"] += 1

    # -- statuses -------------------------------------------------------------------------------

    def _running(self, pod: Obj, local: int) -> Obj:
        spec = pod.get("spec") or {}
        status = dict(pod.get("status") or {})
        stamp = format_time(self.clock.time())
        node_ips = self.addresses.node_ips(local)
        if status.get("podIPs"):
            ips = [entry.get("ip") for entry in status["podIPs"] if isinstance(entry, dict)]
        elif status.get("podIP"):
            ips = [status["podIP"]]
        else:
            ips = node_ips if spec.get("hostNetwork") else self.addresses.pod_ips(local)
        status.update({
            "phase": "Running",
            "hostIP": node_ips[0],
            "hostIPs": [{"ip": ip} for ip in node_ips],
            "podIP": ips[0],
            "podIPs": [{"ip": ip} for ip in ips],
            "startTime": status.get("startTime") or stamp,
            "conditions": [
                _condition("PodReadyToStartContainers", True, stamp),
                _condition("Initialized", True, stamp),
                _condition("Ready", True, stamp),
                _condition("ContainersReady", True, stamp),
                _condition("PodScheduled", True, stamp),
            ],
            "containerStatuses": [
                {"name": c["name"], "image": c.get("image", ""), "imageID": _image_id(c.get("image", "")),
                 "containerID": _container_id(pod, c["name"]), "ready": True, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": stamp}}}
                for c in spec.get("containers") or ()
            ],
        })
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": _image_id(c.get("image", "")),
                 "containerID": _container_id(pod, c["name"]), "ready": True, "started": False, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp,
                                          "finishedAt": stamp, "containerID": _container_id(pod, c["name"])}}}
                for c in spec["initContainers"]
            ]
        return status

    def _terminated(self, pod: Obj, exit_code: int) -> Obj:
        spec = pod.get("spec") or {}
        status = dict(pod.get("status") or {})
        stamp = format_time(self.clock.time())
        started = status.get("startTime") or stamp
        reason = "Completed" if exit_code == 0 else "Error"
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        status["containerStatuses"] = [
            {"name": c["name"], "image": c.get("image", ""), "imageID": _image_id(c.get("image", "")),
             "containerID": _container_id(pod, c["name"]), "ready": False, "started": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                                      "finishedAt": stamp, "containerID": _container_id(pod, c["name"])}}}
            for c in spec.get("containers") or ()
        ]
        kept = [c for c in status.get("conditions") or () if c.get("type") not in ("Ready", "ContainersReady",
                                                                                    "PodReadyToStartContainers")]
        status["conditions"] = kept + [
            _condition("PodReadyToStartContainers", False, stamp),
            _condition("Ready", False, stamp, "PodCompleted"),
            _condition("ContainersReady", False, stamp, "PodCompleted"),
        ]
        return status

    def statistics(self) -> Dict[str, float]:
        out: Dict[str, float] = {f"pods_{k.lower()}": float(v) for k, v in self.transitions.items()}
        out["pods_known"] = float(len(self.informer.indexer))
        out["pod_queue_depth"] = float(len(self.queue))
        out["pod_errors"] = float(self._workers.errors)
        return out
