"""What the bench knows of the cluster: counts and transitions from lean list+watches, never objects.

At 100K-1M nodes a Node dict costs kilobytes, so nothing here keeps one:
each list page and watch event is decoded by msgspec into the few fields
read (a node's name, Ready status and NoExecute taints; a pod's name,
node, phase and DisruptionTarget condition) and folded into counters.
A node's state is one byte in a numpy array indexed by the number in its
name when it is one of the fleet's (`node-<i>`), else a small dict.

`Reflector` is the list-then-watch loop (pages, bookmarks, resume from
the last resourceVersion, relist on 410). `NodeTracker` counts Ready
nodes, NotReady transitions and taints; `PodTracker` counts pods by
phase and times clusterloader2's PodStartupLatency phases the way its
informer does: the time the watch delivered the pod first (create), first
with spec.nodeName (schedule), first Running (run and watch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, cast

import msgspec
import numpy as np

from megaplane.client import Backoff, ResourceClient, StatusError

__all__ = ["NodeFields", "NodeTracker", "PodFields", "PodTracker", "Reflector"]

log = logging.getLogger("megaplane.bench")

UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


class _Meta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""
    deletionTimestamp: Optional[str] = None


class _Condition(msgspec.Struct):
    type: str = ""
    status: str = ""
    reason: Optional[str] = None


class _Taint(msgspec.Struct):
    key: str = ""
    effect: str = ""


class _NodeSpec(msgspec.Struct):
    taints: Optional[List[_Taint]] = None


class _NodeStatus(msgspec.Struct):
    conditions: Optional[List[_Condition]] = None


class NodeFields(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _NodeSpec = msgspec.field(default_factory=_NodeSpec)
    status: _NodeStatus = msgspec.field(default_factory=_NodeStatus)


class _PodSpec(msgspec.Struct):
    nodeName: Optional[str] = None


class _PodStatus(msgspec.Struct):
    phase: Optional[str] = None
    conditions: Optional[List[_Condition]] = None


class PodFields(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""
    # `continue` is a Python keyword: renamed.
    continue_: Optional[str] = msgspec.field(default=None, name="continue")


class _ErrorStatus(msgspec.Struct):
    code: int = 0
    message: str = ""


def _list_type(item: type) -> type:
    return msgspec.defstruct(f"{item.__name__}List", [
        ("metadata", _ListMeta, msgspec.field(default_factory=_ListMeta)),
        # `item` is a class known only at run time: the annotation is built as a value.
        ("items", cast(Any, Optional)[cast(Any, List)[item]], None),
    ])


def _event_type(item: type) -> type:
    return msgspec.defstruct(f"{item.__name__}Event", [("type", str, ""), ("object", msgspec.Raw, msgspec.Raw(b"{}"))])


class _Relist(Exception):
    pass


class Reflector:
    """List in pages, then watch from the list's resourceVersion; calls `on_item(type, obj)` for each change.

    `type` is "SYNC" for list items, else the watch event's type; `on_relist()`
    runs before a relist's items so a tracker can forget what it no longer sees.
    """

    def __init__(self, resource: ResourceClient, item: type, on_item: Callable[[str, object], None], *,
                 namespace: Optional[str] = None, label_selector: Optional[str] = None, page_size: int = 500,
                 on_relist: Optional[Callable[[], None]] = None) -> None:
        self.resource = resource
        self.item = item
        self.on_item = on_item
        self.on_relist = on_relist
        self.namespace = namespace
        self.label_selector = label_selector
        self.page_size = page_size
        self._list_decoder: "msgspec.json.Decoder[Any]" = msgspec.json.Decoder(_list_type(item))
        self._event_decoder: "msgspec.json.Decoder[Any]" = msgspec.json.Decoder(_event_type(item))
        self._item_decoder: "msgspec.json.Decoder[Any]" = msgspec.json.Decoder(item)
        self.synced = asyncio.Event()
        self.events = 0
        self._task: Optional["asyncio.Task[None]"] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def list_once(self) -> str:
        """One paged list through `on_item` ("SYNC" items); the list's resourceVersion."""
        token: Optional[str] = None
        rv = ""
        first = True
        while True:
            body = await self.resource.list_raw(self.namespace, label_selector=self.label_selector,
                                                limit=self.page_size, continue_=token)
            page = self._list_decoder.decode(body)
            if first and self.on_relist is not None:
                self.on_relist()
            first = False
            rv = rv or page.metadata.resourceVersion
            for obj in page.items or ():
                self.on_item("SYNC", obj)
            token = page.metadata.continue_
            if not token:
                return rv

    async def _run(self) -> None:
        # Short waits: after a stall the bench must count again within a second or two.
        backoff = Backoff(initial=0.2, cap=5.0, reset_after=30.0)
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self.list_once()
                    self.synced.set()
                stream = await self.resource.watch_raw(self.namespace, resource_version=rv,
                                                       label_selector=self.label_selector,
                                                       allow_watch_bookmarks=True, timeout_seconds=300)
                try:
                    async for line in stream:
                        event = self._event_decoder.decode(line)
                        kind = event.type
                        if kind == "ERROR":
                            status = msgspec.json.decode(event.object, type=_ErrorStatus)
                            if status.code == 410:
                                raise _Relist()
                            raise RuntimeError(f"watch error {status.code}: {status.message}")
                        obj = self._item_decoder.decode(event.object)
                        rv = obj.metadata.resourceVersion or rv
                        if kind != "BOOKMARK":
                            self.events += 1
                            self.on_item(kind, obj)
                finally:
                    await stream.close()
            except asyncio.CancelledError:
                raise
            except _Relist:
                rv = ""
            except StatusError as exc:
                if exc.code == 410:
                    rv = ""
                else:
                    log.warning("bench watch of %s: %s", self.resource.ref.plural, exc)
                    await asyncio.sleep(backoff.next())
            except Exception as exc:  # the API server may be stopped on purpose (stall): retry
                log.debug("bench watch of %s: %s", self.resource.ref.plural, exc)
                await asyncio.sleep(backoff.next())


# Node states (one byte each).
ABSENT, READY, NOT_READY = 0, 1, 2
# Taint flags.
TAINT_UNREACHABLE, TAINT_NOT_READY = 1, 2


class NodeTracker:
    """Ready nodes, NotReady transitions and NoExecute taints, one byte per node."""

    def __init__(self, prefix: str = "node-", capacity: int = 1024) -> None:
        self.prefix = prefix
        self.state = np.zeros(capacity, dtype=np.int8)
        self.taints = np.zeros(capacity, dtype=np.int8)
        self.other_state: Dict[str, int] = {}
        self.other_taints: Dict[str, int] = {}
        self.nodes = 0
        self.ready = 0
        #: Ready -> not Ready changes seen (a node that was Ready and no longer is).
        self.not_ready_transitions = 0
        self.recoveries = 0
        self.tainted = 0
        self.taint_events = 0
        self.deleted = 0
        #: (time, name, what) of the first transitions, for the report.
        self.log: List[Tuple[float, str, str]] = []
        #: Nodes whose transitions are timed individually (zone-outage): name -> {what: time}.
        self.watched: Dict[str, Dict[str, float]] = {}
        self.clock: Callable[[], float] = time.time

    def _index(self, name: str) -> int:
        p = self.prefix
        if name.startswith(p):
            digits = name[len(p):]
            if digits.isdigit() and (len(digits) == 1 or digits[0] != "0"):
                i = int(digits)
                if i >= len(self.state):
                    size = max(i + 1, 2 * len(self.state))
                    self.state = np.concatenate([self.state, np.zeros(size - len(self.state), dtype=np.int8)])
                    self.taints = np.concatenate([self.taints, np.zeros(size - len(self.taints), dtype=np.int8)])
                return i
        return -1

    def _get(self, name: str, i: int) -> Tuple[int, int]:
        if i >= 0:
            return int(self.state[i]), int(self.taints[i])
        return self.other_state.get(name, ABSENT), self.other_taints.get(name, 0)

    def _set(self, name: str, i: int, state: int, taints: int) -> None:
        if i >= 0:
            self.state[i] = state
            self.taints[i] = taints
        elif state == ABSENT:
            self.other_state.pop(name, None)
            self.other_taints.pop(name, None)
        else:
            self.other_state[name] = state
            self.other_taints[name] = taints

    def _note(self, name: str, what: str) -> None:
        now = self.clock()
        if len(self.log) < 1000:
            self.log.append((now, name, what))
        watched = self.watched.get(name)
        if watched is not None:
            watched.setdefault(what, now)

    def on_item(self, kind: str, obj: object) -> None:
        assert isinstance(obj, NodeFields)
        name = obj.metadata.name
        i = self._index(name)
        old_state, old_taints = self._get(name, i)
        if kind == "DELETED":
            state, taints = ABSENT, 0
        else:
            state = NOT_READY
            for c in obj.status.conditions or ():
                if c.type == "Ready":
                    state = READY if c.status == "True" else NOT_READY
                    break
            taints = 0
            for t in obj.spec.taints or ():
                if t.effect == "NoExecute":
                    if t.key == UNREACHABLE_TAINT:
                        taints |= TAINT_UNREACHABLE
                    elif t.key == NOT_READY_TAINT:
                        taints |= TAINT_NOT_READY
        if state != old_state:
            if old_state == ABSENT:
                self.nodes += 1
            if state == ABSENT:
                self.nodes -= 1
                self.deleted += 1
            if old_state == READY:
                self.ready -= 1
                if state == NOT_READY:
                    self.not_ready_transitions += 1
                    self._note(name, "NotReady")
            if state == READY:
                self.ready += 1
                if old_state == NOT_READY:
                    self.recoveries += 1
                    self._note(name, "Ready")
        if bool(taints) != bool(old_taints):
            if taints:
                self.tainted += 1
                self.taint_events += 1
                self._note(name, "Tainted")
            else:
                self.tainted -= 1
                self._note(name, "Untainted")
        self._set(name, i, state, taints)

    def on_relist(self) -> None:
        pass  # a relist's items update states in place; transitions are still counted once


# Pod phases (index into PodTracker.phases).
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
_PHASE_CODE = {p: i + 1 for i, p in enumerate(PHASES)}
_RUNNING = _PHASE_CODE["Running"]
_SCHEDULED = 8  # bit beside the phase code: the pod has spec.nodeName
_DELETING = 16  # bit: the pod has a deletionTimestamp


class PodTracker:
    """Pods by phase, scheduled counts and PodStartupLatency, without keeping pods.

    Per pod in flight: its phase code and, until it runs, the receive times
    of its create and schedule; then the transitions' durations go to
    compact arrays and the times are dropped.
    """

    def __init__(self) -> None:
        self.phase: Dict[str, int] = {}
        self.phases = [0] * (len(PHASES) + 1)  # [0] unused
        self.pending_times: Dict[str, List[float]] = {}  # key -> [create, schedule or 0]
        self.scheduled_total = 0
        self.running_total = 0
        #: Pods with a deletionTimestamp not yet gone (kubectl's "Terminating"; also counted in their phase).
        self.terminating = 0
        #: Durations in seconds (clusterloader2's transitions).
        self.transitions: Dict[str, "array[float]"] = {
            name: array("d") for name in
            ("create_to_schedule", "schedule_to_run", "run_to_watch", "schedule_to_watch", "pod_startup",
             "create_to_run")}
        self.disruption_targets = 0
        #: Set by zone-outage: whether a node is in the faulted zone; evictions there are expected.
        self.in_fault_domain: Optional[Callable[[str], bool]] = None
        self.evictions_in_fault_domain = 0
        self.deleted = 0
        #: Pods deleted while the scenario did not delete any itself (evictions, or somebody else's).
        self.unexpected_deletions = 0
        self.expect_deletions = False
        self._disrupted: Set[str] = set()
        #: Only pods first seen by the watch are timed (those listed at start existed before).
        self.timing = False
        self.clock: Callable[[], float] = time.time

    def on_item(self, kind: str, obj: object) -> None:
        assert isinstance(obj, PodFields)
        now = self.clock()
        key = obj.metadata.namespace + "/" + obj.metadata.name
        old_value = self.phase.get(key, 0)
        old, was_scheduled = old_value & 7, bool(old_value & _SCHEDULED)
        deleting = kind == "DELETED" or obj.metadata.deletionTimestamp is not None
        if deleting and not old_value & _DELETING:
            # The delete call (an eviction, a scale-down, the garbage collector), not its completion: a
            # pod on a node that stopped heartbeating stays Terminating until the node comes back.
            if self._expected(obj):
                self.evictions_in_fault_domain += 1
            elif not self.expect_deletions:
                self.unexpected_deletions += 1
        if kind == "DELETED":
            if old_value & _DELETING:
                self.terminating -= 1
            if old:
                self.phases[old] -= 1
                del self.phase[key]
            self.pending_times.pop(key, None)
            self._disrupted.discard(key)
            self.deleted += 1
            return
        code = _PHASE_CODE.get(obj.status.phase or "Pending", 5)
        scheduled = bool(obj.spec.nodeName)
        if code != old:
            if old:
                self.phases[old] -= 1
            self.phases[code] += 1
        if scheduled and not was_scheduled:
            self.scheduled_total += 1
        self.phase[key] = code | (_SCHEDULED if scheduled else 0) | (_DELETING if deleting else 0)
        if deleting and not old_value & _DELETING:
            self.terminating += 1
        for c in obj.status.conditions or ():
            if c.type == "DisruptionTarget" and c.status == "True" and key not in self._disrupted:
                self._disrupted.add(key)
                if not self._expected(obj):
                    self.disruption_targets += 1
        if deleting:
            self.pending_times.pop(key, None)  # it will not run: not a startup to time
            return
        times = self.pending_times.get(key)
        if times is None:
            if old_value or kind != "ADDED" or not self.timing:
                return  # existed before the measurement started, or already timed
            times = self.pending_times[key] = [now, 0.0]
        if scheduled and not times[1]:
            times[1] = now
        if code == _RUNNING:
            create, schedule = times
            schedule = schedule or now
            t = self.transitions
            t["create_to_schedule"].append(schedule - create)
            t["schedule_to_run"].append(now - schedule)
            t["run_to_watch"].append(0.0)  # run and watch are one receive time, as in clusterloader2
            t["schedule_to_watch"].append(now - schedule)
            t["pod_startup"].append(now - create)
            t["create_to_run"].append(now - create)
            self.running_total += 1
            del self.pending_times[key]

    def _expected(self, obj: PodFields) -> bool:
        f = self.in_fault_domain
        return f is not None and bool(obj.spec.nodeName) and f(obj.spec.nodeName or "")

    def on_relist(self) -> None:
        pass
