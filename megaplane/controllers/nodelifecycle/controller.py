"""The node lifecycle controller: node health from Leases and heartbeats, condition taints, zone-aware NoExecute tainting.

kube-controller-manager 1.32's node-lifecycle-controller
(pkg/controller/nodelifecycle), with the state of every node in columns:

- Probe times on this controller's clock: set when it observes a node for
  the first time, a change of its Ready condition's lastHeartbeatTime, or
  its Lease's renewTime moving. A node whose probe is older than
  `--node-monitor-grace-period` (`--node-startup-grace-period` while it
  never posted Ready) gets Ready, MemoryPressure, DiskPressure and
  PIDPressure `Unknown` (reason NodeStatusUnknown, message "Kubelet
  stopped posting node status.") and its pods Ready=False.
- NoExecute taints `node.kubernetes.io/not-ready` (Ready=False) or
  `node.kubernetes.io/unreachable` (Unknown), one swapped for the other,
  added through each zone's rate-limited queue; removed when Ready is True.
- NoSchedule taints for the Ready, pressure and NetworkUnavailable
  conditions and `spec.unschedulable` (taint-node-by-condition).
- Zone states and rates (`zones`), master disruption mode when every zone
  is fully disrupted.
- Beyond upstream, `sight`: the time this controller could not observe the
  cluster never counts against a node (the rule is stated there and
  enforced in `_monitor` and `_taint_one`).

The monitor pass is numpy over the columns (which nodes are past their
grace, per-zone counts), so a pass over 100K nodes is a few milliseconds
plus the work for nodes that actually changed.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Set, Tuple

import msgspec
import numpy as np
import orjson

from megaplane.client import (
    NODE_NAME_INDEX,
    Client,
    ConflictError,
    NotFoundError,
    StatusError,
    node_name_index,
)
from megaplane.client.informer import EventHandler
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.client.workqueue import RateLimitingQueue, default_controller_rate_limiter
from megaplane.runtime import REAL_CLOCK, Clock, Statistics, cancel_tasks

from ..events import EventRecorder, object_reference
from .records import Condition, Lease, Node, Taint, taint_dict
from .reflector import Reflector
from .sight import Sight
from .zones import (
    FULL_DISRUPTION,
    INITIAL,
    RateLimitedTimedQueue,
    ZoneRates,
    compute_zone_state,
    zone_key,
)

__all__ = ["NodeLifecycleConfig", "NodeLifecycleController", "NOT_READY_TAINT", "UNREACHABLE_TAINT"]

log = logging.getLogger("megaplane.controllers.nodelifecycle")

NAME = "node-lifecycle-controller"
NODE_LEASE_NAMESPACE = "kube-node-lease"
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
#: Upstream's scheduler.NodeEvictionPeriod: how often the tainting queues are drained.
NODE_EVICTION_PERIOD = 0.1
#: Upstream's nodeUpdateWorkerSize: node health writes in flight at once.
NODE_UPDATE_WORKERS = 8
#: SwapNodeControllerTaint's retries on conflict.
TAINT_RETRIES = 5

# Ready condition codes in the `ready` column.
TRUE, FALSE, UNKNOWN, ABSENT = 0, 1, 2, 3
_STATUS = {"True": TRUE, "False": FALSE, "Unknown": UNKNOWN}
# Bits of the `noexec` column: which NoExecute taint of ours the node carries.
HAS_NOT_READY, HAS_UNREACHABLE = 1, 2

# taint-node-by-condition: condition type -> {status: taint key}.
CONDITION_TAINTS: Dict[str, Dict[str, str]] = {
    "Ready": {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
_CONDITION_TAINT_KEYS = frozenset(k for m in CONDITION_TAINTS.values() for k in m.values()) | {UNSCHEDULABLE_TAINT}
# The conditions the controller sets Unknown past the grace period (NetworkUnavailable is the cloud's).
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
_NO_TAINTS: Tuple[Taint, ...] = ()
_VERSION = msgspec.json.Decoder(Lease)


@dataclass
class NodeLifecycleConfig:
    """kube-controller-manager's node lifecycle flags (upstream defaults), plus how blindness is judged."""

    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 50.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    #: Seconds without a confirmed canary that count as blindness (default max(2 x monitor period, 2 s)).
    sight_threshold: Optional[float] = None
    #: How often the canary Lease is written (default monitor period / 2).
    probe_interval: Optional[float] = None
    #: A renewal arriving this long after its renewTime is late (default max(monitor period, 5 s)).
    late_renewal_threshold: Optional[float] = None
    canary_namespace: str = "kube-system"
    canary_name: str = NAME

    def threshold(self) -> float:
        return self.sight_threshold if self.sight_threshold is not None else max(2 * self.node_monitor_period, 2.0)


def _parse_time(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _micro_time(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class _Zone:
    __slots__ = ("key", "id", "queue")

    def __init__(self, key: str, zid: int, queue: RateLimitedTimedQueue) -> None:
        self.key = key
        self.id = zid
        self.queue = queue


class NodeLifecycleController:
    """A `megaplane.runtime.Component` (see the module docstring)."""

    def __init__(self, client: Client, config: Optional[NodeLifecycleConfig] = None, *,
                 clock: Clock = REAL_CLOCK, informers: Optional[SharedInformerFactory] = None) -> None:
        self.client = client
        self.informer_factory = informers if informers is not None else SharedInformerFactory(clock=clock)
        self._own_informer = False
        self._pod_handler: Optional[EventHandler] = None
        self.config = cfg = config or NodeLifecycleConfig()
        self.clock = clock
        self.nodes = client.resource("nodes")
        self.pods = client.resource("pods")
        self.leases = client.resource("coordination.k8s.io/v1", "leases")
        self.rates = ZoneRates(cfg.node_eviction_rate, cfg.secondary_node_eviction_rate,
                               cfg.large_cluster_size_threshold)
        self.probe_interval = cfg.probe_interval if cfg.probe_interval is not None else cfg.node_monitor_period / 2
        self.late_threshold = (cfg.late_renewal_threshold if cfg.late_renewal_threshold is not None
                               else max(cfg.node_monitor_period, 5.0))
        self._tasks: List["asyncio.Task[None]"] = []
        self._started = False
        self._reset()

    @property
    def name(self) -> str:
        return NAME

    # -- state ------------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Everything the controller knows, empty: a (re)start observes every node for the first time."""
        clock = self.clock
        self.sight = Sight(self.config.threshold(), clock=clock)
        self.recorder = EventRecorder(self.client, NAME, clock=clock)
        self.index: Dict[str, int] = {}
        self.names: List[str] = []
        self.free: List[int] = []
        cap = 1024
        self.alive = np.zeros(cap, dtype=bool)
        self.probe = np.zeros(cap, dtype=np.float64)
        self.transition = np.zeros(cap, dtype=np.float64)
        self.ready_code = np.full(cap, ABSENT, dtype=np.int8)
        self.counted = np.zeros(cap, dtype=bool)
        self.zone = np.zeros(cap, dtype=np.int32)
        self.noexec = np.zeros(cap, dtype=np.int8)
        # Per-node Python columns (small strings and shared tuples).
        self.rv: List[str] = []
        self.uid: List[str] = []
        self.heartbeat: List[Optional[str]] = []
        self.ready_since: List[Optional[str]] = []
        self.created: List[Optional[str]] = []
        self.taints: List[Tuple[Taint, ...]] = []
        self.conditions: List[Tuple[Tuple[str, str], ...]] = []
        self.unschedulable: List[bool] = []
        self._condition_tuples: Dict[Tuple[Tuple[str, str], ...], Tuple[Tuple[str, str], ...]] = {}
        self.added: List[int] = []
        self.zones: Dict[str, _Zone] = {}
        self.zone_list: List[_Zone] = []
        #: Upstream's zoneStates: the zones that have counted nodes, and their state.
        self.zone_state: Dict[str, str] = {}
        self.lease_renew: Dict[str, str] = {}
        self._listing_leases = True
        self._window_renewals = 0
        self._window_late = 0
        self._canary_rv = ""
        self._canary_tokens: Dict[str, float] = {}
        self._applied_since = -math.inf
        self._blind_logged = -math.inf
        self._retry_pods: Set[str] = set()
        self.noschedule_queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name="node_lifecycle_controller", clock=clock)
        self.pod_queue: RateLimitingQueue[Hashable] = RateLimitingQueue(
            default_controller_rate_limiter(clock), name="node_lifecycle_controller_pods", clock=clock)
        # Shared with the process's other controllers (read-only objects); a restart replaces only the handler.
        self.pod_informer = self.informer_factory.informer(self.pods, indexers={NODE_NAME_INDEX: node_name_index})
        if self._pod_handler is not None:
            self.pod_informer.remove_event_handler(self._pod_handler)
        self._pod_handler = self.pod_informer.add_event_handler(
            lambda p: self._pod_updated(None, p), self._pod_updated, None)
        self.node_reflector: Reflector[Node] = Reflector(
            self.nodes, Node, lambda n: n.metadata.name, self._on_node, self._on_node_deleted,
            sight=self.sight, clock=clock)
        self.lease_reflector: Reflector[Lease] = Reflector(
            self.leases, Lease, lambda x: f"{x.metadata.namespace}/{x.metadata.name}", self._on_lease,
            self._on_lease_deleted, sight=self.sight, clock=clock, on_synced=self._leases_synced)
        self.stats: Dict[str, int] = {"passes": 0, "blind_passes": 0, "marked_unknown": 0, "tainted": 0,
                                      "taints_removed": 0, "pods_marked_not_ready": 0, "lease_events": 0,
                                      "late_renewals": 0, "canaries": 0, "canary_failures": 0,
                                      "dropped_decisions": 0, "write_failures": 0}
        self.last_pass_seconds = 0.0

    def _grow(self) -> int:
        if self.free:
            return self.free.pop()
        idx = len(self.names)
        if idx >= len(self.alive):
            cap = len(self.alive) * 2
            for attr in ("alive", "probe", "transition", "ready_code", "counted", "zone", "noexec"):
                old = getattr(self, attr)
                new = np.zeros(cap, dtype=old.dtype)
                if attr == "ready_code":
                    new[:] = ABSENT
                new[: len(old)] = old
                setattr(self, attr, new)
        self.names.append("")
        for column in (self.rv, self.uid):
            column.append("")
        for c in (self.heartbeat, self.ready_since, self.created):
            c.append(None)
        self.taints.append(_NO_TAINTS)
        self.conditions.append(())
        self.unschedulable.append(False)
        return idx

    def _zone(self, key: str) -> _Zone:
        zone = self.zones.get(key)
        if zone is None:
            zone = _Zone(key, len(self.zone_list),
                         RateLimitedTimedQueue(self.config.node_eviction_rate, clock=self.clock))
            self.zones[key] = zone
            self.zone_list.append(zone)
            log.info("%s: initializing eviction metric for zone %r", NAME, key)
        return zone

    # -- observations (informer handlers: called in event order, never block) -----------------------

    def _on_node(self, node: Node) -> None:
        meta = node.metadata
        name = meta.name
        now = self.clock.monotonic()
        ready_cond: Optional[Condition] = None
        conds: List[Tuple[str, str]] = []
        for c in node.status.conditions or ():
            if c.type == "Ready":
                ready_cond = c
            conds.append((c.type, c.status))
        idx = self.index.get(name)
        if idx is None:
            idx = self._grow()
            self.index[name] = idx
            self.names[idx] = name
            self.alive[idx] = True
            self.added.append(idx)
            if ready_cond is None:
                # Never posted: the startup grace counts from the Node's creation (its wall time on our clock).
                created = _parse_time(meta.creationTimestamp)
                self.probe[idx] = now - max(0.0, self.clock.time() - created) if created is not None else now
            else:
                self.probe[idx] = now
            self.transition[idx] = now
            if name in self.lease_renew:
                self.probe[idx] = now
        else:
            saved_hb = self.heartbeat[idx]
            had_ready = self.ready_code[idx] != ABSENT
            if ready_cond is not None and (not had_ready or ready_cond.lastHeartbeatTime != saved_hb):
                self.probe[idx] = now
                if not had_ready or ready_cond.lastTransitionTime != self.ready_since[idx]:
                    self.transition[idx] = now
            elif ready_cond is None and had_ready:
                log.error("%s: ReadyCondition was removed from Status of Node %s", NAME, name)
                self.probe[idx] = now
                self.transition[idx] = now
        self.ready_code[idx] = ABSENT if ready_cond is None else _STATUS.get(ready_cond.status, UNKNOWN)
        self.heartbeat[idx] = ready_cond.lastHeartbeatTime if ready_cond is not None else None
        self.ready_since[idx] = ready_cond.lastTransitionTime if ready_cond is not None else None
        self.rv[idx] = meta.resourceVersion
        self.uid[idx] = meta.uid
        self.created[idx] = meta.creationTimestamp
        key = tuple(conds)
        self.conditions[idx] = self._condition_tuples.setdefault(key, key)
        taints = tuple(node.spec.taints) if node.spec.taints else _NO_TAINTS
        self.taints[idx] = taints
        bits = 0
        for t in taints:
            if t.effect == NO_EXECUTE:
                if t.key == NOT_READY_TAINT:
                    bits |= HAS_NOT_READY
                elif t.key == UNREACHABLE_TAINT:
                    bits |= HAS_UNREACHABLE
        self.noexec[idx] = bits
        self.unschedulable[idx] = node.spec.unschedulable
        labels = meta.labels
        self.zone[idx] = self._zone(zone_key(labels)).id
        self.counted[idx] = EXCLUDE_DISRUPTION_LABEL not in labels
        if self._noschedule_diff(idx) != ((), ()):
            self.noschedule_queue.add(name)

    def _on_node_deleted(self, name: str) -> None:
        idx = self.index.pop(name, None)
        if idx is None:
            return
        log.info("%s: observed a Node deletion: %s", NAME, name)
        self.recorder.event(object_reference("Node", name, uid=self.uid[idx]), "Normal", "RemovingNode",
                            f"Removing Node {name} from Controller")
        self.zone_list[int(self.zone[idx])].queue.remove(name)
        self.alive[idx] = False
        self.counted[idx] = False
        self.ready_code[idx] = ABSENT
        self.noexec[idx] = 0
        self.taints[idx] = _NO_TAINTS
        self.names[idx] = ""
        self.free.append(idx)

    def _on_lease(self, lease: Lease) -> None:
        meta = lease.metadata
        renew = lease.spec.renewTime
        if meta.namespace != NODE_LEASE_NAMESPACE:
            if meta.name == self.config.canary_name and meta.namespace == self.config.canary_namespace:
                sent = self._canary_tokens.pop(lease.spec.holderIdentity or "", None)
                if sent is not None:
                    self.sight.confirm(sent)
            return
        if not renew:
            return
        name = meta.name
        old = self.lease_renew.get(name)
        if old is not None and not (old < renew if len(old) == len(renew) else _later(old, renew)):
            return
        self.lease_renew[name] = renew
        self.stats["lease_events"] += 1
        idx = self.index.get(name)
        if idx is not None:
            self.probe[idx] = self.clock.monotonic()
        if self._listing_leases or old is None:
            return  # a list shows old renewals; only renewals arriving one by one say how late they are
        written = _parse_time(renew)
        self._window_renewals += 1
        if written is not None and self.clock.time() - written > self.late_threshold:
            self._window_late += 1
            self.stats["late_renewals"] += 1

    def _leases_synced(self) -> None:
        self._listing_leases = False

    def _on_lease_deleted(self, key: str) -> None:
        ns, _, name = key.partition("/")
        if ns == NODE_LEASE_NAMESPACE:
            self.lease_renew.pop(name, None)

    def _pod_updated(self, old: Optional[Dict[str, Any]], new: Dict[str, Any]) -> None:
        node = (new.get("spec") or {}).get("nodeName")
        if node and (old is None or (old.get("spec") or {}).get("nodeName") != node):
            meta = new["metadata"]
            self.pod_queue.add(f"{meta.get('namespace', '')}/{meta['name']}")

    # -- the monitor pass (monitorNodeHealth) -------------------------------------------------------

    async def _monitor_loop(self) -> None:
        period = self.config.node_monitor_period
        while True:
            began = self.clock.monotonic()
            try:
                await self._monitor()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: error monitoring node health", NAME)
            ended = self.clock.monotonic()
            self.last_pass_seconds = ended - began
            await self.clock.sleep(period)
            # Enforcement of the sight rule, part 1: woken far later than asked means this process was not
            # running (stopped, starved), and what it holds is as old as the delay. (A long pass is not a
            # stall: its writes wait for the client's rate limit while events keep arriving.)
            late = self.clock.monotonic() - ended - period
            if late > self.sight.threshold:
                self.sight.restart(f"the monitor pass woke {late:.1f}s late")

    async def _monitor(self) -> None:
        cfg = self.config
        clock = self.clock
        now = clock.monotonic()
        sight = self.sight
        # Part 2: most renewals of the last period arrived long after they were written: the API server was
        # congested, and the renewals not yet arrived are as late as these.
        renewals, late = self._window_renewals, self._window_late
        self._window_renewals = self._window_late = 0
        if late and late * 2 > renewals:
            sight.restart(f"{late} of {renewals} Lease renewals arrived more than {self.late_threshold:g}s late")
        self.stats["passes"] += 1
        await self._handle_added()
        if not sight.seeing(now):
            # Part 3: blind now: decide nothing, write nothing that could hurt a node.
            self.stats["blind_passes"] += 1
            blind_for = now - (sight.confirmed if sight.confirmed > -math.inf else sight.since)
            if blind_for >= 60.0 and now - self._blind_logged >= 60.0:  # say so when it lasts, once a minute
                self._blind_logged = now
                log.warning("%s: no confirmed round trip of the canary Lease %s/%s for %.0fs (%d writes failed%s): "
                            "no node is judged until there is", NAME, cfg.canary_namespace, cfg.canary_name,
                            blind_for, self.stats["canary_failures"],
                            f"; broken watches: {', '.join(sorted(sight.broken))}" if sight.broken else "")
            return
        if sight.since > self._applied_since:
            # Part 4: decisions queued before sight was regained were made from data older than that.
            self._applied_since = sight.since
            for zone in self.zone_list:
                self.stats["dropped_decisions"] += zone.queue.drop_added_before(sight.since)
        n = len(self.names)
        alive = self.alive[:n]
        ready = self.ready_code[:n]
        observed = ready.copy()
        # Part 5: nobody's probe time is older than the moment sight was regained.
        effective = np.maximum(self.probe[:n], sight.since)
        grace = np.where(ready == ABSENT, cfg.node_startup_grace_period, cfg.node_monitor_grace_period)
        stale = alive & (now > effective + grace)
        to_mark = np.flatnonzero(stale & (ready != UNKNOWN))
        transitioned: List[int] = []
        if len(to_mark):
            transitioned = await self._mark_unknown_all(to_mark.tolist(), observed)
        # processTaintBaseEviction, from the Ready condition as it was observed before this pass's writes.
        await self._taint_decisions(observed, stale)
        for idx in transitioned:
            name = self.names[idx]
            self.recorder.event(object_reference("Node", name, uid=self.uid[idx]), "Normal", "NodeNotReady",
                                f"Node {name} status is now: NodeNotReady")
            await self._mark_pods_not_ready(name)
        for name in list(self._retry_pods):
            retry = self.index.get(name)
            if retry is None or self.ready_code[retry] == TRUE:
                self._retry_pods.discard(name)
            elif await self._mark_pods_not_ready(name):
                self._retry_pods.discard(name)
        await self._handle_disruption(now)

    async def _handle_added(self) -> None:
        added, self.added = self.added, []
        for idx in added:
            name = self.names[idx]
            if not name:
                continue
            log.info("%s: observed a new Node: %s", NAME, name)
            self.recorder.event(object_reference("Node", name, uid=self.uid[idx]), "Normal", "RegisteredNode",
                                f"Registered Node {name} in Controller")
            if self.noexec[idx]:
                await self._mark_reachable(idx)

    async def _mark_unknown_all(self, indices: Sequence[int], observed: np.ndarray) -> List[int]:
        """Set the conditions Unknown on each node (bounded concurrency); the nodes that left Ready=True."""
        transitioned: List[int] = []
        sem = asyncio.Semaphore(NODE_UPDATE_WORKERS)

        async def one(idx: int) -> None:
            async with sem:
                if await self._mark_unknown(idx) and observed[idx] == TRUE:
                    transitioned.append(idx)

        await asyncio.gather(*(one(i) for i in indices))
        return transitioned

    def _unknown_patch(self, idx: int) -> Optional[bytes]:
        stamp = _time(self.clock.time())
        present = dict(self.conditions[idx])
        conditions = []
        for kind in UNKNOWN_CONDITIONS:
            status = present.get(kind)
            if status is None:
                conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                                   "message": "Kubelet never posted node status.",
                                   "lastHeartbeatTime": self.created[idx], "lastTransitionTime": stamp})
            elif status != "Unknown":
                conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusUnknown",
                                   "message": "Kubelet stopped posting node status.", "lastTransitionTime": stamp})
        if not conditions:
            return None
        return orjson.dumps({"metadata": {"resourceVersion": self.rv[idx]}, "status": {"conditions": conditions}})

    async def _mark_unknown(self, idx: int) -> bool:
        """tryUpdateNodeHealth's write: True once the node's Ready is Unknown because of this call."""
        name = self.names[idx]
        cfg = self.config
        for _ in range(2):
            now = self.clock.monotonic()
            grace = cfg.node_startup_grace_period if self.ready_code[idx] == ABSENT else cfg.node_monitor_grace_period
            if (not self.sight.seeing(now) or self.index.get(name) != idx
                    or now <= max(float(self.probe[idx]), self.sight.since) + grace or self.ready_code[idx] == UNKNOWN):
                return False  # seen meanwhile (a heartbeat, a fresher copy), or blind again
            body = self._unknown_patch(idx)
            if body is None:
                return False
            try:
                answer = await self.nodes.patch_raw(name, body, subresource="status")
            except ConflictError:
                try:
                    fresh = await self.nodes.get_raw(name)
                except NotFoundError:
                    return False
                self._on_node(msgspec.json.decode(fresh, type=Node))  # a newer heartbeat moves the probe
                continue
            except NotFoundError:
                return False
            except StatusError as exc:
                self.stats["write_failures"] += 1
                log.info("%s: error updating node %s: %s", NAME, name, exc)
                return False
            self.stats["marked_unknown"] += 1
            log.info("%s: node %s: no heartbeat for the grace period; conditions set Unknown", NAME, name)
            self._on_node(msgspec.json.decode(answer, type=Node))
            return True
        return False

    async def _taint_decisions(self, observed: np.ndarray, stale: np.ndarray) -> None:
        n = len(self.names)
        alive = self.alive[:n]
        noexec = self.noexec[:n]
        # Ready: remove our NoExecute taints (markNodeAsReachable) and forget any queued decision.
        for idx in np.flatnonzero(alive & (observed == TRUE) & (noexec != 0)).tolist():
            await self._mark_reachable(idx)
        for zone in self.zone_list:
            for name in list(zone.queue.queued()):
                queued = self.index.get(name)
                if queued is not None and observed[queued] == TRUE:
                    zone.queue.remove(name)
        for idx in np.flatnonzero(alive & (observed == FALSE)).tolist():
            if self.noexec[idx] & HAS_UNREACHABLE:
                await self._swap(idx, NOT_READY_TAINT, UNREACHABLE_TAINT)
            else:
                self._mark_for_tainting(idx, HAS_NOT_READY)
        # Unknown counts only while the node is stale by the sight rule: an Unknown written before a blind
        # spot is not evidence against a node that got a fresh grace period since.
        for idx in np.flatnonzero(alive & (observed == UNKNOWN) & stale).tolist():
            if self.noexec[idx] & HAS_NOT_READY:
                await self._swap(idx, UNREACHABLE_TAINT, NOT_READY_TAINT)
            else:
                self._mark_for_tainting(idx, HAS_UNREACHABLE)

    def _mark_for_tainting(self, idx: int, bit: int) -> None:
        queue = self.zone_list[int(self.zone[idx])].queue
        name = self.names[idx]
        # Tainted once (kept in the set) but the taint is gone: queue it again. Upstream also re-queues a node
        # already waiting, which moves it to the back every pass; kept in place here.
        if not self.noexec[idx] & bit and name in queue and not queue.waiting(name):
            queue.remove(name)
        queue.add(name)

    async def _mark_reachable(self, idx: int) -> None:
        name = self.names[idx]
        if await self._swap_taints(name, (), (NOT_READY_TAINT, UNREACHABLE_TAINT), NO_EXECUTE):
            self.stats["taints_removed"] += 1
        self.zone_list[int(self.zone[idx])].queue.remove(name)

    async def _swap(self, idx: int, add: str, remove: str) -> bool:
        ok = await self._swap_taints(self.names[idx], (add,), (remove,), NO_EXECUTE)
        if ok:
            self.stats["tainted"] += 1
        return ok

    async def _swap_taints(self, name: str, add: Iterable[str], remove: Iterable[str], effect: str) -> bool:
        """SwapNodeControllerTaint: add/remove taints (key + effect) with the node's resourceVersion as precondition."""
        add, remove = tuple(add), tuple(remove)
        idx = self.index.get(name)
        if idx is None:
            return True
        taints, rv = self.taints[idx], self.rv[idx]
        for _ in range(TAINT_RETRIES):
            present = {(t.key, t.effect) for t in taints}
            kept = [t for t in taints if not (t.effect == effect and t.key in remove)]
            stamp = _time(self.clock.time()) if effect == NO_EXECUTE else None
            new = kept + [Taint(key=k, effect=effect, timeAdded=stamp) for k in add if (k, effect) not in present]
            if len(new) == len(taints) and len(kept) == len(taints):
                return True
            body = orjson.dumps({"metadata": {"resourceVersion": rv}, "spec": {"taints": [taint_dict(t) for t in new]}})
            try:
                answer = await self.nodes.patch_raw(name, body)
            except ConflictError:
                try:
                    fresh = msgspec.json.decode(await self.nodes.get_raw(name), type=Node)
                except NotFoundError:
                    return True
                taints, rv = tuple(fresh.spec.taints or ()), fresh.metadata.resourceVersion
                continue
            except NotFoundError:
                return True
            except StatusError as exc:
                self.stats["write_failures"] += 1
                log.info("%s: taints of node %s not updated: %s", NAME, name, exc)
                return False
            self._on_node(msgspec.json.decode(answer, type=Node))
            return True
        return False

    # -- pods (MarkPodsNotReady, processPod) --------------------------------------------------------

    async def _mark_pods_not_ready(self, node: str) -> bool:
        ok = True
        for pod in self.pod_informer.indexer.by_index(NODE_NAME_INDEX, node):
            if not await self._mark_pod_not_ready(pod, node):
                ok = False
        if not ok:
            self._retry_pods.add(node)
        return ok

    async def _mark_pod_not_ready(self, pod: Dict[str, Any], node: str) -> bool:
        if (pod.get("spec") or {}).get("nodeName") != node:
            return True
        for cond in (pod.get("status") or {}).get("conditions") or ():
            if cond.get("type") != "Ready":
                continue
            if cond.get("status") == "False":
                return True
            meta = pod["metadata"]
            body = orjson.dumps({"metadata": {"resourceVersion": meta.get("resourceVersion", "")},
                                 "status": {"conditions": [{"type": "Ready", "status": "False",
                                                            "lastTransitionTime": _time(self.clock.time())}]}})
            try:
                await self.pods.patch_raw(meta["name"], body, meta.get("namespace"), subresource="status")
            except NotFoundError:
                return True
            except StatusError as exc:
                log.info("%s: pod %s/%s not marked NotReady: %s", NAME, meta.get("namespace"), meta["name"], exc)
                return False
            self.stats["pods_marked_not_ready"] += 1
            self.recorder.event(object_reference("Pod", meta["name"], meta.get("namespace", ""), meta.get("uid", "")),
                                "Warning", "NodeNotReady", "Node is not ready")
            return True
        return True

    async def _pod_worker(self) -> None:
        queue = self.pod_queue
        while True:
            key = await queue.get()
            try:
                ns, _, name = str(key).partition("/")
                pod = self.pod_informer.lister.get(ns, name)
                node = (pod.get("spec") or {}).get("nodeName") if pod is not None else None
                idx = self.index.get(node) if node else None
                if pod is not None and node and idx is not None and self.ready_code[idx] not in (TRUE, ABSENT):
                    if not await self._mark_pod_not_ready(pod, node):
                        queue.add_rate_limited(key)
                        continue
                queue.forget(key)
            finally:
                queue.done(key)

    # -- NoSchedule taints from conditions (doNoScheduleTaintingPass) --------------------------------

    def _noschedule_diff(self, idx: int) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        want = set()
        for kind, status in self.conditions[idx]:
            key = CONDITION_TAINTS.get(kind, {}).get(status)
            if key is not None:
                want.add(key)
        if self.unschedulable[idx]:
            want.add(UNSCHEDULABLE_TAINT)
        have = {t.key for t in self.taints[idx] if t.effect == NO_SCHEDULE and t.key in _CONDITION_TAINT_KEYS}
        return tuple(sorted(want - have)), tuple(sorted(have - want))

    async def _noschedule_worker(self) -> None:
        queue = self.noschedule_queue
        while True:
            key = await queue.get()
            try:
                idx = self.index.get(str(key))
                if idx is not None:
                    add, remove = self._noschedule_diff(idx)
                    if (add or remove) and not await self._swap_taints(str(key), add, remove, NO_SCHEDULE):
                        queue.add_rate_limited(key)
                        continue
                queue.forget(key)
            finally:
                queue.done(key)

    # -- zones (handleDisruption) ---------------------------------------------------------------------

    async def _handle_disruption(self, now: float) -> None:
        n = len(self.names)
        counted = self.counted[:n] & self.alive[:n]
        zones = self.zone[:n]
        nz = len(self.zone_list)
        total = np.bincount(zones[counted], minlength=nz)
        ready = np.bincount(zones[counted & (self.ready_code[:n] == TRUE)], minlength=nz)
        sizes = {z.key: int(total[z.id]) for z in self.zone_list if total[z.id] > 0}
        new_states = {key: compute_zone_state(int(ready[self.zones[key].id]), size - int(ready[self.zones[key].id]),
                                              self.config.unhealthy_zone_threshold) for key, size in sizes.items()}
        states = self.zone_state
        all_are_full = all(s == FULL_DISRUPTION for s in new_states.values())
        for key in new_states:
            if key not in states:
                log.info("%s: setting initial state for unseen zone %r", NAME, key)
                states[key] = INITIAL
        for key in [k for k in states if k not in new_states]:
            del states[key]
        all_were_full = all(s == FULL_DISRUPTION for s in states.values())
        if all_are_full and all_were_full:
            return
        if all_are_full:
            log.warning("%s: every node is not Ready: entering master disruption mode (no tainting, NoExecute "
                        "taints removed)", NAME)
            for idx in np.flatnonzero(self.alive[:n] & (self.noexec[:n] != 0)).tolist():
                await self._mark_reachable(idx)
            for key in states:
                self.zones[key].queue.swap_limiter(0.0)
                states[key] = FULL_DISRUPTION
            return
        if all_were_full:
            # Leaving master disruption mode: nobody is judged on the time everything was down.
            log.warning("%s: some nodes are Ready: exiting master disruption mode; every probe time reset", NAME)
            self.probe[:n] = now
            self.transition[:n] = now
            for key in states:
                self.zones[key].queue.swap_limiter(self.rates.rate(new_states[key], sizes[key]))
                states[key] = new_states[key]
            return
        for key, state in list(states.items()):
            new = new_states[key]
            if state == new:
                continue
            log.info("%s: zone %r is now in state %s", NAME, key, new)
            self.zones[key].queue.swap_limiter(self.rates.rate(new, sizes[key]))
            states[key] = new

    def zone_states(self) -> Dict[str, str]:
        """Each zone's state, keyed by zone_key (region:\\x00:zone)."""
        return dict(self.zone_state)

    def zone_rates(self) -> Dict[str, float]:
        return {key: self.zones[key].queue.qps for key in self.zone_state}

    # -- the tainting pass (doNoExecuteTaintingPass) ----------------------------------------------------

    async def _tainting_loop(self) -> None:
        while True:
            await self.clock.sleep(NODE_EVICTION_PERIOD)
            if not self.sight.seeing(self.clock.monotonic()):
                continue
            try:
                for zone in list(self.zone_list):
                    await zone.queue.try_(self._taint_one)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: tainting pass failed", NAME)

    async def _taint_one(self, name: str) -> Tuple[bool, float]:
        idx = self.index.get(name)
        if idx is None:
            return True, 0.0
        status = int(self.ready_code[idx])
        if status == FALSE:
            add, remove = NOT_READY_TAINT, UNREACHABLE_TAINT
        elif status == UNKNOWN:
            # The sight rule again, at the moment of writing: blind, or not stale since sight was regained.
            now = self.clock.monotonic()
            if (not self.sight.seeing(now)
                    or now <= max(float(self.probe[idx]), self.sight.since) + self.config.node_monitor_grace_period):
                self.zone_list[int(self.zone[idx])].queue.remove(name)
                return True, 0.0
            add, remove = UNREACHABLE_TAINT, NOT_READY_TAINT
        else:
            return True, 0.0
        ok = await self._swap(idx, add, remove)
        return ok, 0.0

    # -- the canary (see sight) -----------------------------------------------------------------------

    async def _canary_loop(self) -> None:
        cfg = self.config
        identity = f"{self.recorder.host}_{uuid.uuid4()}"
        seq = 0
        while True:
            seq += 1
            token = f"{identity}/{seq}"
            sent = self.clock.monotonic()
            self._canary_tokens[token] = sent
            if len(self._canary_tokens) > 8:
                for stale in sorted(self._canary_tokens, key=self._canary_tokens.__getitem__)[:-8]:
                    del self._canary_tokens[stale]
            body: Dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": cfg.canary_name, "namespace": cfg.canary_namespace},
                "spec": {"holderIdentity": token, "renewTime": _micro_time(self.clock.time())},
            }
            try:
                if self._canary_rv:
                    body["metadata"]["resourceVersion"] = self._canary_rv
                    answer = await self.leases.update_raw(cfg.canary_name, orjson.dumps(body), cfg.canary_namespace)
                    self._canary_rv = _VERSION.decode(answer).metadata.resourceVersion
                else:
                    try:
                        answer = await self.leases.create_raw(orjson.dumps(body), cfg.canary_namespace)
                        self._canary_rv = _VERSION.decode(answer).metadata.resourceVersion
                    except StatusError as exc:
                        if exc.code != 409:
                            raise
                        current = await self.leases.get(cfg.canary_name, cfg.canary_namespace)
                        self._canary_rv = str(current["metadata"].get("resourceVersion", ""))
                        continue  # left by an earlier run: write over it now
                self.stats["canaries"] += 1
            except asyncio.CancelledError:
                raise
            except ConflictError:
                self._canary_rv = ""
                self.stats["canary_failures"] += 1
            except Exception as exc:  # unreachable, timed out, 5xx: the missing confirmation says it
                self.stats["canary_failures"] += 1
                log.debug("%s: canary write failed: %s", NAME, exc)
            await self.clock.sleep(self.probe_interval)

    # -- component ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError(f"{NAME}: already started")
        self._reset()
        self._started = True
        if not self.pod_informer.running:
            await self.pod_informer.start()
            self._own_informer = True
        await self.lease_reflector.start()
        await self.node_reflector.start()
        for what, ev in (("leases", self.lease_reflector.synced), ("nodes", self.node_reflector.synced)):
            try:
                await asyncio.wait_for(ev.wait(), 60.0)
            except asyncio.TimeoutError:
                raise RuntimeError(f"{NAME}: {what} did not sync within 60 s") from None
        if not await self.pod_informer.wait_for_sync(60.0):
            raise RuntimeError(f"{NAME}: pods did not sync within 60 s")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._canary_loop(), name=f"{NAME}-canary"),
            loop.create_task(self._monitor_loop(), name=f"{NAME}-monitor"),
            loop.create_task(self._tainting_loop(), name=f"{NAME}-tainting"),
            loop.create_task(self._noschedule_worker(), name=f"{NAME}-noschedule"),
            loop.create_task(self._pod_worker(), name=f"{NAME}-pods"),
        ]

    async def stop(self) -> None:
        self._started = False
        await cancel_tasks(self._tasks)
        self._tasks = []
        self.noschedule_queue.shutdown()
        self.pod_queue.shutdown()
        await self.node_reflector.stop()
        await self.lease_reflector.stop()
        if self._pod_handler is not None:
            self.pod_informer.remove_event_handler(self._pod_handler)
            self._pod_handler = None
        if self._own_informer:
            self._own_informer = False
            await self.pod_informer.stop()
        await self.recorder.stop()

    def ready(self) -> bool:
        return self._started and bool(self._tasks) and self.node_reflector.synced.is_set()

    def statistics(self) -> Statistics:
        out: Statistics = {k: float(v) for k, v in self.stats.items()}
        out["nodes"] = float(len(self.index))
        out["seeing"] = self.sight.seeing(self.clock.monotonic())
        out["sight_restarts"] = float(sum(self.sight.restarts.values()))
        out["blind_seconds"] = self.sight.blind_seconds
        out["last_pass_seconds"] = self.last_pass_seconds
        for key, state in self.zone_state.items():
            out[f"zone_state.{key.replace(chr(0), '')}"] = state
        return out


def _later(old: str, new: str) -> bool:
    a, b = _parse_time(old), _parse_time(new)
    return a is not None and b is not None and b > a
