"""The EndpointSlice controller: a Service's pods as discovery.k8s.io/v1 EndpointSlices.

As kube-controller-manager's endpointslice-controller (pkg/controller/endpointslice
and staging/src/k8s.io/endpointslice's reconciler):

- informers on Services, pods, nodes and EndpointSlices; a slice change
  by someone else (not one we wrote: `SliceTracker`) queues its Service;
  a sync whose informer has not caught up with our own writes (a slice we
  wrote at a newer generation, or deleted, or created and not yet seen)
  is retried instead of acting on the stale view;
- per address type of the Service (its ipFamilies; a headless Service
  without them gets both) and per distinct set of resolved ports, the
  desired endpoints: every pod not terminal with an IP (terminating pods
  included, with conditions ready / serving / terminating as upstream),
  with its addresses of that type, nodeName, `zone` from its node's
  topology.kubernetes.io/zone, hostname, targetRef;
- upstream's packing (`reconcile_port_mapping`): existing slices keep
  the endpoints they have that are still wanted (updated in place when an
  endpoint changed), emptied slices are deleted, the rest fills the
  fullest slices being updated, then the one unchanged slice closest to
  fitting, then new slices of at most --max-endpoints-per-slice; creates
  that would replace deletes become updates of the deleted slices; with
  no endpoints at all one empty placeholder slice remains;
- slices carry the Service's labels plus `kubernetes.io/service-name`,
  `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`
  (and `service.kubernetes.io/headless`), generateName `<service>-`, a
  controller ownerReference to the Service and the
  last-change-trigger-time annotation;
- hints: `service.kubernetes.io/topology-mode: Auto` -> per-zone hints by
  the zones' CPU (`topologycache`), removed when not every zone can get
  its share; `trafficDistribution: PreferClose` (beta, on in 1.32) -> each
  ready endpoint hinted to its own zone; neither -> hints removed.

`workers` is --concurrent-service-endpoint-syncs (5).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Dict, Hashable, List, Mapping, Optional, Set, Tuple, Union

from megaplane.client import (
    Client,
    DeletedFinalStateUnknown,
    NotFoundError,
    StatusError,
    label_index,
    object_key,
)
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

from .endpointutil import (
    LAST_CHANGE_TRIGGER_TIME,
    TriggerTimeTracker,
    find_port,
    format_trigger_time,
    is_ipv6,
    services_for_pod,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from .events import EventRecorder
from .podutil import is_pod_ready
from .topologycache import ZONE_LABEL, SliceInfo, TopologyCache, endpoint_ready, remove_hints_from_slices

__all__ = ["EndpointSliceController", "MANAGED_BY", "CONTROLLER_NAME", "SERVICE_NAME_LABEL", "SliceTracker",
           "MAX_ENDPOINTS_PER_SLICE"]

log = logging.getLogger("megaplane.controllers.endpointslice")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS = "service.kubernetes.io/headless"
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
DEPRECATED_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
#: Upstream's default --max-endpoints-per-slice.
MAX_ENDPOINTS_PER_SLICE = 100
_RESERVED = (SERVICE_NAME_LABEL, MANAGED_BY, HEADLESS)
#: The queue key (not a Service's namespace/name) that recomputes the zones' CPU shares.
_TOPOLOGY_KEY = ("topology",)
#: The generation we record for a slice we deleted.
_DELETION_EXPECTED = -1

Obj = Dict[str, Any]
EndpointKey = Tuple[Tuple[str, ...], str, str, str]



def hints_enabled(annotations: Mapping[str, str]) -> bool:
    """The topology annotation (the deprecated one first) says Auto (hintsEnabled)."""
    value = annotations.get(DEPRECATED_TOPOLOGY_HINTS)
    if value is None:
        value = annotations.get(TOPOLOGY_MODE)
    return value in ("Auto", "auto")


def address_types(service: Mapping[str, Any]) -> List[str]:
    """The slice address types a Service gets (getAddressTypesForService)."""
    spec = service.get("spec") or {}
    types = [f for f in ("IPv4", "IPv6") if f in (spec.get("ipFamilies") or ())]
    if types:
        return types
    ip = spec.get("clusterIP") or ""
    if ip and ip != "None":
        return ["IPv6" if is_ipv6(ip) else "IPv4"]
    return ["IPv4", "IPv6"]  # headless without families (an old API server): both until it is defaulted


def _endpoint_key(ep: Mapping[str, Any]) -> EndpointKey:
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or ())), ep.get("hostname") or "", ref.get("namespace") or "",
            ref.get("name") or "")


def _equal_beyond_key(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """EndpointsEqualBeyondHash: conditions, nodeName, zone and the target's uid."""
    ca, cb = a.get("conditions") or {}, b.get("conditions") or {}
    return all(ca.get(c) == cb.get(c) for c in ("ready", "serving", "terminating")) \
        and a.get("nodeName") == b.get("nodeName") and a.get("zone") == b.get("zone") \
        and (a.get("targetRef") or {}).get("uid") == (b.get("targetRef") or {}).get("uid")


def _ports_key(ports: List[Obj]) -> Tuple[Tuple[Any, ...], ...]:
    return tuple(sorted((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "", p.get("appProtocol") or "")
                        for p in ports))


def endpoint_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> List[Obj]:
    """The slice ports of `pod` for the Service's ports whose targets resolve (getEndpointPorts)."""
    spec = service.get("spec") or {}
    out: List[Obj] = []
    for sp in spec.get("ports") or ():
        number = find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def pod_to_endpoint(pod: Mapping[str, Any], node: Optional[Mapping[str, Any]], service: Mapping[str, Any],
                    address_type: str) -> Obj:
    """podToEndpoint: a terminating pod is never `ready` unless the Service publishes not-ready addresses."""
    serving = is_pod_ready(pod)
    meta = pod.get("metadata") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    status = pod.get("status") or {}
    ips: List[str] = [str(p["ip"]) for p in status.get("podIPs") or () if isinstance(p, dict) and p.get("ip")] \
        or ([str(status["podIP"])] if status.get("podIP") else [])
    want6 = address_type == "IPv6"
    ep: Obj = {
        "addresses": [ip for ip in ips if is_ipv6(ip) == want6],
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                      "uid": meta.get("uid")},
    }
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL) if node else None
    if zone:
        ep["zone"] = zone
    if should_set_hostname(pod, service):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def slice_labels(slice_: Mapping[str, Any], service: Mapping[str, Any]) -> Tuple[Dict[str, str], bool]:
    """(the labels the slice should have, whether the Service's labels changed): setEndpointSliceLabels."""
    have = {k: v for k, v in ((slice_.get("metadata") or {}).get("labels") or {}).items() if k not in _RESERVED}
    want = {k: v for k, v in ((service.get("metadata") or {}).get("labels") or {}).items() if k not in _RESERVED}
    changed = have != want
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    if not ip or ip == "None":
        want[HEADLESS] = ""
    want[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    want[MANAGED_BY] = CONTROLLER_NAME
    return want, changed


def _owned_by(slice_: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    uid = service["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("controller") and r.get("kind") == "Service"
               for r in (slice_.get("metadata") or {}).get("ownerReferences") or ())


def new_slice(service: Mapping[str, Any], ports: List[Obj], address_type: str) -> Obj:
    meta = service["metadata"]
    body: Obj = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": meta["name"] + "-", "namespace": meta["namespace"], "labels": {},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports),
    }
    body["metadata"]["labels"], _ = slice_labels(body, service)
    return body


def _fill(slice_: Obj, desired: Dict[EndpointKey, Obj], limit: int) -> None:
    eps = slice_.setdefault("endpoints", [])
    for k in sorted(desired):
        if len(eps) >= limit:
            break
        eps.append(desired.pop(k))


def _slice_to_fill(slices: List[Obj], count: int, limit: int) -> Optional[Obj]:
    """The unchanged slice the `count` leftover endpoints fit into most tightly (getSliceToFill)."""
    best: Optional[Obj] = None
    closest = limit
    for s in slices:
        diff = limit - (count + len(s.get("endpoints") or ()))
        if 0 <= diff < closest:
            closest, best = diff, s
            if diff == 0:
                break
    return best


def reconcile_port_mapping(service: Mapping[str, Any], existing: List[Obj], desired: Dict[EndpointKey, Obj],
                           ports: List[Obj], address_type: str, limit: int) -> Tuple[List[Obj], List[Obj], List[Obj]]:
    """(to create, to update, to delete) for one set of ports (reconcileByPortMapping); `desired` is consumed."""
    by_name: Dict[str, Obj] = {}
    unchanged: List[str] = []
    to_update: List[str] = []
    to_delete: List[str] = []
    for s in existing:
        name = s["metadata"]["name"]
        by_name[name] = s
        kept: List[Obj] = []
        updated = False
        for ep in s.get("endpoints") or ():
            want = desired.pop(_endpoint_key(ep), None)
            if want is not None:
                kept.append(want)
                if not _equal_beyond_key(want, ep):
                    updated = True
        labels, labels_changed = slice_labels(s, service)
        if updated or len(kept) != len(s.get("endpoints") or ()):
            if not kept:
                to_delete.append(name)
            else:
                copy_ = dict(s)
                copy_["metadata"] = {**s["metadata"], "labels": labels}
                copy_["endpoints"] = kept
                by_name[name] = copy_
                to_update.append(name)
        elif labels_changed:
            copy_ = dict(s)
            copy_["metadata"] = {**s["metadata"], "labels": labels}
            copy_["endpoints"] = [copy.deepcopy(e) for e in s.get("endpoints") or ()]
            by_name[name] = copy_
            to_update.append(name)
        else:
            unchanged.append(name)
    # Fill the fullest of the slices being written anyway first.
    if desired and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n].get("endpoints") or ())):
            _fill(by_name[name], desired, limit)
    to_create: List[Obj] = []
    while desired:
        target: Optional[Obj] = None
        if len(desired) < limit and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(desired), limit)
        if target is None:
            target = new_slice(service, ports, address_type)
        else:
            target = copy.deepcopy(target)
            by_name[target["metadata"]["name"]] = target
        _fill(target, desired, limit)
        name = (target.get("metadata") or {}).get("name")
        if name:
            to_update.append(name)
            unchanged.remove(name)
        else:
            to_create.append(target)
    return to_create, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _is_placeholder_of(slice_: Mapping[str, Any], service: Mapping[str, Any], address_type: str) -> bool:
    return not slice_.get("endpoints") and not slice_.get("ports") and slice_.get("addressType") == address_type \
        and _owned_by(slice_, service)


class SliceTracker:
    """The generations of the slices this controller wrote, per Service (upstream's EndpointSliceTracker)."""

    def __init__(self) -> None:
        self._by_service: Dict[str, Dict[str, int]] = {}

    @staticmethod
    def _service_key(slice_: Mapping[str, Any]) -> Optional[str]:
        meta = slice_.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        return f"{meta.get('namespace')}/{name}" if name else None

    def update(self, slice_: Mapping[str, Any]) -> None:
        key = self._service_key(slice_)
        if key is not None:
            meta = slice_["metadata"]
            self._by_service.setdefault(key, {})[meta["uid"]] = int(meta.get("generation") or 0)

    def expect_deletion(self, slice_: Mapping[str, Any]) -> None:
        key = self._service_key(slice_)
        if key is not None:
            self._by_service.setdefault(key, {})[slice_["metadata"]["uid"]] = _DELETION_EXPECTED

    def should_sync(self, slice_: Mapping[str, Any]) -> bool:
        """False for the echo of our own write (the generation we wrote, or older)."""
        key = self._service_key(slice_)
        meta = slice_.get("metadata") or {}
        gen = self._by_service.get(key or "", {}).get(meta.get("uid") or "")
        return gen is None or gen == _DELETION_EXPECTED or int(meta.get("generation") or 0) > gen

    def deleted(self, slice_: Mapping[str, Any]) -> bool:
        """A slice's deletion was seen: True unless we deleted it ourselves."""
        key = self._service_key(slice_)
        gens = self._by_service.get(key or "")
        uid = (slice_.get("metadata") or {}).get("uid")
        if gens is None or uid not in gens:
            return True
        ours = gens.pop(uid) == _DELETION_EXPECTED
        if not gens:
            del self._by_service[key or ""]
        return not ours

    def stale(self, service_key: str, slices: List[Obj]) -> bool:
        gens = self._by_service.get(service_key)
        if not gens:
            return False
        seen: Set[str] = set()
        for s in slices:
            uid = s["metadata"]["uid"]
            seen.add(uid)
            g = gens.get(uid)
            if g is not None and (g == _DELETION_EXPECTED or g > int(s["metadata"].get("generation") or 0)):
                return True
        return any(g != _DELETION_EXPECTED and uid not in seen for uid, g in gens.items())

    def delete_service(self, service_key: str) -> None:
        self._by_service.pop(service_key, None)


class StaleInformerError(Exception):
    """The slice informer has not yet seen our own writes: retry rather than act on it."""


class EndpointSliceController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("endpointslice-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = client.resource("services")
        self.pods = client.resource("pods")
        self.nodes = client.resource("nodes")
        self.slices = client.resource("discovery.k8s.io/v1", "endpointslices")
        self.recorder = EventRecorder(client, "endpoint-slice-controller", clock=clock)
        self.service_informer = self.shared_informer(self.services)
        self.pod_informer = self.shared_informer(self.pods)
        self.node_informer = self.shared_informer(self.nodes)
        self.slice_informer = self.shared_informer(self.slices, label_selector=f"{MANAGED_BY}={CONTROLLER_NAME}",
            indexers={SERVICE_NAME_LABEL: label_index(SERVICE_NAME_LABEL)})
        self.tracker = SliceTracker()
        self.triggers = TriggerTimeTracker()
        self.topology = TopologyCache()
        self.service_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                                self._service_deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.node_informer.add_event_handler(self._node_changed, self._node_updated, self._node_deleted)
        self.slice_informer.add_event_handler(self._slice_changed, lambda old, new: self._slice_changed(new),
                                              self._slice_deleted)
        self.writes = 0

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _service_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self.queue.add(object_key(final_state(obj)))

    def _pod_added(self, pod: Obj) -> None:
        for key in services_for_pod(self.service_informer.lister, pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in services_to_update_on_pod_change(self.service_informer.lister, old, new):
            self.queue.add(key)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._pod_added(final_state(obj))

    def _slice_service(self, slice_: Obj) -> Optional[str]:
        meta = slice_.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY) != CONTROLLER_NAME or not labels.get(SERVICE_NAME_LABEL):
            return None
        return f"{meta.get('namespace')}/{labels[SERVICE_NAME_LABEL]}"

    def _slice_changed(self, slice_: Obj) -> None:
        key = self._slice_service(slice_)
        if key is not None and self.tracker.should_sync(slice_):
            self.queue.add(key)

    def _slice_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        slice_ = final_state(obj)
        key = self._slice_service(slice_)
        if key is not None and self.tracker.deleted(slice_):
            self.queue.add(key)

    def _node_changed(self, node: Obj) -> None:
        # One recompute for a burst of node events (a fleet's 40K nodes arriving is O(nodes) each otherwise).
        self.queue.add(_TOPOLOGY_KEY)

    def _recompute_topology(self) -> None:
        if self.topology.set_nodes(self.node_informer.lister.list()):
            # The zones' shares moved: every Service with hints gets them recomputed.
            for svc in self.service_informer.lister.list():
                if hints_enabled((svc.get("metadata") or {}).get("annotations") or {}):
                    self.queue.add(object_key(svc))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels") \
                or (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable") \
                or _ready(old) != _ready(new):
            self._node_changed(new)

    def _node_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._node_changed(final_state(obj))

    async def start(self) -> None:
        await super().start()
        self.topology.set_nodes(self.node_informer.lister.list())

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        if key == _TOPOLOGY_KEY:
            self._recompute_topology()
            return
        key = str(key)
        namespace, _, name = key.rpartition("/")
        service = self.service_informer.lister.get(namespace, name)
        if service is None:
            # Its slices are the garbage collector's (owner references); forget what we tracked.
            self.triggers.delete(key)
            self.tracker.delete_service(key)
            for address_type in ("IPv4", "IPv6"):
                self.topology.remove_hints(key, address_type)
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            return
        selector: Mapping[str, str] = spec["selector"]
        pods = [p for p in self.pod_informer.lister.list(namespace)
                if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
        slices = [s for s in self.slice_informer.lister.by_index(SERVICE_NAME_LABEL, name)
                  if s["metadata"].get("namespace") == namespace and not s["metadata"].get("deletionTimestamp")]
        if self.tracker.stale(key, slices):
            raise StaleInformerError(f"EndpointSlice informer cache is out of date for service {key}")
        trigger = self.triggers.compute(key, service, pods)
        types = address_types(service)
        errors: List[BaseException] = []
        by_type: Dict[str, List[Obj]] = {}
        stray: List[Obj] = []
        for s in slices:
            if s.get("addressType") in types:
                by_type.setdefault(s["addressType"], []).append(s)
            else:
                self.topology.remove_hints(key, str(s.get("addressType")))
                stray.append(s)
        for address_type in types:
            try:
                await self._reconcile_type(key, service, pods, by_type.get(address_type, []), trigger, address_type)
            except (StatusError, ValueError) as exc:
                errors.append(exc)
        for s in stray:
            try:
                await self._delete(s)
            except StatusError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    async def _reconcile_type(self, key: str, service: Obj, pods: List[Obj], existing: List[Obj],
                              trigger: Optional[float], address_type: str) -> None:
        by_ports: Dict[Tuple[Tuple[Any, ...], ...], List[Obj]] = {}
        to_delete: List[Obj] = []
        for s in existing:
            if _owned_by(s, service):
                by_ports.setdefault(_ports_key(s.get("ports") or []), []).append(s)
            else:
                to_delete.append(s)  # a slice of an older Service of the same name
        desired: Dict[Tuple[Tuple[Any, ...], ...], Tuple[List[Obj], Dict[EndpointKey, Obj]]] = {}
        missing_node = False
        publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
        for pod in pods:
            if not should_pod_be_in_endpoints(pod, True):
                continue
            ports = endpoint_ports(service, pod)
            pkey = _ports_key(ports)
            entry = desired.setdefault(pkey, (ports, {}))
            node_name = (pod.get("spec") or {}).get("nodeName") or ""
            node = self.node_informer.lister.get(None, node_name) if node_name else None
            if node is None and not publish:
                # A pod on a node we do not know: left out now, the sync retried (as upstream).
                missing_node = True
                continue
            ep = pod_to_endpoint(pod, node, service, address_type)
            if ep["addresses"]:
                entry[1][_endpoint_key(ep)] = ep
        to_create: List[Obj] = []
        to_update: List[Obj] = []
        for pkey, (ports, eps) in desired.items():
            c, u, d = reconcile_port_mapping(service, by_ports.get(pkey, []), eps, ports, address_type,
                                             self.max_endpoints_per_slice)
            to_create += c
            to_update += u
            to_delete += d
        for pkey, group in by_ports.items():
            if pkey not in desired:
                to_delete += group
        if len(existing) == len(to_delete) and not to_create:
            if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], service, address_type):
                to_delete = []  # the placeholder we would delete and create again
            else:
                to_create.append(new_slice(service, [], address_type))
        touched = {s["metadata"].get("name") for s in to_update + to_delete}
        unchanged = [s for s in existing if s["metadata"]["name"] not in touched]
        si = SliceInfo(key, address_type, to_create, to_update, unchanged)
        annotations = (service.get("metadata") or {}).get("annotations") or {}
        distribution = (service.get("spec") or {}).get("trafficDistribution")
        events: List[Tuple[str, str, str]] = []
        if hints_enabled(annotations):
            to_create, to_update, events = self.topology.add_hints(si)
        else:
            if self.topology.has_populated_hints(key):
                events.append(("Warning", "TopologyAwareHintsDisabled",
                               f"Topology Aware Hints has been disabled, addressType: {address_type}"))
            self.topology.remove_hints(key, address_type)
            if distribution == "PreferClose":
                to_create, to_update = _prefer_close(si)
            else:
                to_create, to_update = remove_hints_from_slices(si)
        await self._finalize(service, to_create, to_update, to_delete, trigger)
        for etype, reason, message in events:
            self.recorder.event(_service_ref(service), etype, reason, message)
        if missing_node:
            raise ValueError(f"skipping pods of Service {key} on nodes not found")

    async def _finalize(self, service: Obj, to_create: List[Obj], to_update: List[Obj], to_delete: List[Obj],
                        trigger: Optional[float]) -> None:
        # A create next to a delete becomes an update of the slice that would go.
        i = 0
        while i < len(to_delete) and to_create:
            gone, new = to_delete[i], to_create[-1]
            if gone.get("addressType") == new.get("addressType") and _owned_by(gone, service):
                new["metadata"] = {**new["metadata"], "name": gone["metadata"]["name"],
                                   "resourceVersion": gone["metadata"].get("resourceVersion")}
                new["metadata"]["uid"] = gone["metadata"]["uid"]
                to_create.pop()
                to_update.append(new)
                to_delete.pop(i)
            else:
                i += 1
        namespace = service["metadata"]["namespace"]
        if not service["metadata"].get("deletionTimestamp"):
            # Never create next to the garbage collector deleting the Service's slices.
            for s in to_create:
                _set_trigger(s, trigger)
                try:
                    created = await self.slices.create(s, namespace)
                except StatusError as exc:
                    if "NamespaceTerminating" in str((exc.details or {}).get("causes") or ""):
                        return
                    raise
                self.tracker.update(created)
                self.writes += 1
        for s in to_update:
            _set_trigger(s, trigger)
            updated = await self.slices.update(s, namespace)
            self.tracker.update(updated)
            self.writes += 1
        for s in to_delete:
            await self._delete(s)

    async def _delete(self, slice_: Obj) -> None:
        meta = slice_["metadata"]
        try:
            await self.slices.delete(meta["name"], meta["namespace"])
        except NotFoundError:
            pass
        self.tracker.expect_deletion(slice_)
        self.writes += 1

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(writes=float(self.writes))
        return stats


def _service_ref(service: Mapping[str, Any]) -> Dict[str, str]:
    meta = service["metadata"]
    return {"kind": "Service", "apiVersion": "v1", "name": meta["name"], "namespace": meta["namespace"],
            "uid": meta["uid"], "resourceVersion": str(meta.get("resourceVersion") or "")}


def _ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _set_trigger(slice_: Obj, trigger: Optional[float]) -> None:
    meta = slice_["metadata"]
    annotations = dict(meta.get("annotations") or {})
    if trigger is not None:
        annotations[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger)
    else:
        annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)


def _prefer_close(si: SliceInfo) -> Tuple[List[Obj], List[Obj]]:
    """trafficDistribution PreferClose: each ready endpoint hinted to its own zone (trafficdist.ReconcileHints)."""

    def want(ep: Mapping[str, Any]) -> Optional[Obj]:
        zone = ep.get("zone")
        return {"forZones": [{"name": zone}]} if zone and endpoint_ready(ep) else None

    for s in si.to_create + si.to_update:
        for ep in s.get("endpoints") or ():
            hints = want(ep)
            if hints is None:
                ep.pop("hints", None)
            else:
                ep["hints"] = hints
    for s in si.unchanged:
        if any(want(ep) != ep.get("hints") for ep in s.get("endpoints") or ()):
            s = copy.deepcopy(s)
            for ep in s["endpoints"]:
                hints = want(ep)
                if hints is None:
                    ep.pop("hints", None)
                else:
                    ep["hints"] = hints
            si.to_update.append(s)
    return si.to_create, si.to_update
