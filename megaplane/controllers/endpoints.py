"""The Endpoints controller: a v1 Endpoints object per Service with a selector, listing its pods.

As kube-controller-manager's endpoints-controller (pkg/controller/endpoint):

- informers on Services, pods and Endpoints; a pod change queues the
  Services it is (or was) a member of, an Endpoints deletion queues its
  Service (recreated), and at start every Endpoints object is queued so
  the ones whose Service is gone are deleted (checkLeftoverEndpoints;
  leader-election records are left alone);
- a sync: no Service -> delete its Endpoints; ExternalName or no selector
  -> nothing (those Endpoints are written by hand); else every pod that
  should be in endpoints (not terminal, has an IP, not deleting unless
  `publishNotReadyAddresses`) gives an address of the Service's IP family
  (`endpointutil.pod_ip_for_family`, IPv6 pods included) with nodeName,
  hostname (when the pod's subdomain is the Service) and targetRef, one
  per Service port whose target resolves on the pod (named targetPorts
  by the containers' port names), ready or in notReadyAddresses;
  `repack_subsets` merges them into subsets as upstream's RepackSubsets;
- the Endpoints get the Service's labels (plus `service.kubernetes.io/headless`
  for a headless Service), the `endpoints.kubernetes.io/last-change-trigger-time`
  annotation, and past 1000 addresses are truncated proportionally with
  `endpoints.kubernetes.io/over-capacity: truncated`. An unchanged result
  writes nothing.

`workers` is --concurrent-endpoint-syncs (5).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, Hashable, List, Mapping, Optional, Tuple, Union

from megaplane.client import (
    Client,
    DeletedFinalStateUnknown,
    ForbiddenError,
    NotFoundError,
    StatusError,
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
    pod_ip_for_family,
    service_family,
    services_for_pod,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from .events import EventRecorder
from .podutil import is_pod_ready

__all__ = ["EndpointsController", "MAX_CAPACITY", "OVER_CAPACITY", "repack_subsets", "truncate_endpoints"]

log = logging.getLogger("megaplane.controllers.endpoints")

#: Upstream's maxCapacity: addresses an Endpoints object keeps before it is truncated.
MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
HEADLESS = "service.kubernetes.io/headless"
#: Endpoints the leader-election of old components keep; never ours to delete.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

Obj = Dict[str, Any]



# -- subsets ---------------------------------------------------------------------------------------

_NO_PORT: Tuple[Any, ...] = ("", -1, "", None)  # the sentinel for a headless Service without ports


def _port_key(port: Mapping[str, Any]) -> Tuple[Any, ...]:
    return (port.get("name") or "", int(port.get("port") or 0), port.get("protocol") or "", port.get("appProtocol"))


def _address_key(addr: Mapping[str, Any]) -> Tuple[str, str]:
    return str(addr.get("ip") or ""), str((addr.get("targetRef") or {}).get("uid") or "")


def repack_subsets(subsets: List[Obj]) -> List[Obj]:
    """One subset per distinct set of (address, ready) offering the same ports, sorted (RepackSubsets).

    An address that is not ready for some port is not ready for it, whatever
    another entry says ("not ready always trumps ready").
    """
    addresses: Dict[Tuple[str, str], Obj] = {}
    ports: Dict[Tuple[Any, ...], Obj] = {}
    by_port: Dict[Tuple[Any, ...], Dict[Tuple[str, str], bool]] = {}
    for subset in subsets:
        subset_ports = subset.get("ports") or [None]
        for port in subset_ports:
            pkey = _port_key(port) if port is not None else _NO_PORT
            if port is not None:
                ports[pkey] = port
            readiness = by_port.setdefault(pkey, {})
            for is_ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
                for addr in subset.get(field) or ():
                    akey = _address_key(addr)
                    addresses.setdefault(akey, addr)
                    if readiness.get(akey, True):
                        readiness[akey] = is_ready
    # Group the ports by the exact (address, ready) set they are offered on.
    groups: Dict[Tuple[Tuple[Tuple[str, str], bool], ...], List[Tuple[Any, ...]]] = {}
    for pkey, readiness in by_port.items():
        group = groups.setdefault(tuple(sorted(readiness.items())), [])
        if pkey != _NO_PORT:
            group.append(pkey)
    final: List[Obj] = []
    for members, pkeys in groups.items():
        packed: Obj = {}
        ready = [addresses[a] for a, r in members if r]
        not_ready = [addresses[a] for a, r in members if not r]
        if ready:
            packed["addresses"] = ready
        if not_ready:
            packed["notReadyAddresses"] = not_ready
        if pkeys:
            packed["ports"] = [ports[p] for p in sorted(pkeys, key=lambda k: (k[0], k[1], k[2], k[3] or ""))]
        final.append(packed)
    final.sort(key=_subset_sort_key)
    return final


def _subset_sort_key(subset: Mapping[str, Any]) -> Tuple[Any, ...]:
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0]
    return (_address_key(first), [_port_key(p) for p in subset.get("ports") or ()].__repr__())


def truncate_endpoints(subsets: List[Obj]) -> bool:
    """Cut `subsets` to MAX_CAPACITY addresses in place (truncateEndpoints); True if anything was cut.

    Not-ready addresses go first; if the ready ones alone are too many,
    every not-ready one goes and each subset keeps its share of ready ones
    (rounded up, so the last subsets may get fewer).
    """
    total_ready = sum(len(s.get("addresses") or ()) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    keep, total = (MAX_CAPACITY, total_ready) if truncate_ready else (MAX_CAPACITY - total_ready, total_not_ready)
    can_add = keep
    for subset in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        have = subset.get(field) or []
        share = min(can_add, int(math.ceil(len(have) / total * keep)))
        subset[field] = have[:share]
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        can_add -= len(subset[field])
        if not subset[field]:
            del subset[field]
    return True


def _capacity_annotation_correct(annotations: Mapping[str, str], subsets: List[Obj]) -> bool:
    count = sum(len(s.get("addresses") or ()) + len(s.get("notReadyAddresses") or ()) for s in subsets)
    return count <= MAX_CAPACITY and OVER_CAPACITY not in annotations


def _strip_resource_versions(subsets: List[Obj]) -> List[Obj]:
    """The subsets with targetRef resourceVersions left out: a pod's unrelated update must not rewrite us."""
    out = []
    for subset in subsets:
        copy = dict(subset)
        for field in ("addresses", "notReadyAddresses"):
            if field in copy:
                copy[field] = [_without_rv(a) for a in copy[field]]
        out.append(copy)
    return out


def _without_rv(addr: Mapping[str, Any]) -> Obj:
    ref = addr.get("targetRef")
    if not ref or "resourceVersion" not in ref:
        return dict(addr)
    return {**addr, "targetRef": {k: v for k, v in ref.items() if k != "resourceVersion"}}


def endpoints_subsets(service: Mapping[str, Any], pods: List[Obj]) -> List[Obj]:
    """The repacked subsets the Service's Endpoints should hold for `pods` (the sync's address loop)."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    subsets: List[Obj] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        ip = pod_ip_for_family(pod, service_family(service, pod))
        if ip is None:
            continue  # no IP of the Service's family (a single-stack pod of the other one)
        pm = pod["metadata"]
        addr: Obj = {"ip": ip, "nodeName": (pod.get("spec") or {}).get("nodeName") or "",
                     "targetRef": {"kind": "Pod", "namespace": pm["namespace"], "name": pm["name"],
                                   "uid": pm["uid"]}}
        if should_set_hostname(pod, service):
            addr["hostname"] = pod["spec"]["hostname"]
        field = "addresses" if publish_not_ready or is_pod_ready(pod) else "notReadyAddresses"
        if not service_ports:
            if spec.get("clusterIP") == "None":  # a headless Service may have no ports
                subsets.append({field: [addr]})
            continue
        for sp in service_ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            port: Obj = {"port": number, "protocol": sp.get("protocol") or "TCP"}
            if sp.get("name"):
                port["name"] = sp["name"]
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            subsets.append({field: [addr], "ports": [port]})
    return repack_subsets(subsets)


def _service_ip_set(service: Mapping[str, Any]) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP") or ""
    return bool(ip) and ip != "None"


class EndpointsController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("endpoints-controller", workers=workers, clock=clock, informers=informers)
        self.client = client
        self.services = client.resource("services")
        self.pods = client.resource("pods")
        self.endpoints = client.resource("endpoints")
        self.service_informer = self.shared_informer(self.services)
        self.pod_informer = self.shared_informer(self.pods)
        self.endpoints_informer = self.shared_informer(self.endpoints)
        self.triggers = TriggerTimeTracker()
        self.recorder = EventRecorder(client, "endpoint-controller", clock=clock)
        self.service_informer.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new), self._deleted)
        self.pod_informer.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.endpoints_informer.add_event_handler(None, None, self._deleted)
        self.writes = 0

    async def start(self) -> None:
        await super().start()
        # checkLeftoverEndpoints: Endpoints whose Service is gone are deleted by their sync.
        for ep in self.endpoints_informer.lister.list():
            if LEADER_ANNOTATION not in ((ep.get("metadata") or {}).get("annotations") or {}):
                self.queue.add(object_key(ep))

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self.queue.add(object_key(final_state(obj)))

    def _pod_added(self, pod: Obj) -> None:
        for key in services_for_pod(self.service_informer.lister, pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in services_to_update_on_pod_change(self.service_informer.lister, old, new):
            self.queue.add(key)

    def _pod_deleted(self, obj: Union[Obj, DeletedFinalStateUnknown]) -> None:
        self._pod_added(final_state(obj))

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        namespace, _, name = key.rpartition("/")
        service = self.service_informer.lister.get(namespace, name)
        if service is None:
            try:
                await self.endpoints.delete(name, namespace)
            except NotFoundError:
                pass
            self.triggers.delete(key)
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            return  # no endpoints from us: ExternalName has none, selector-less ones are written by hand
        selector: Mapping[str, str] = spec["selector"]
        pods = [p for p in self.pod_informer.lister.list(namespace)
                if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]
        # Computed even if nothing is written, so the tracker's view moves on (as upstream).
        trigger = self.triggers.compute(key, service, pods)
        subsets = endpoints_subsets(service, pods)
        current = self.endpoints_informer.lister.get(namespace, name)
        labels = dict((service.get("metadata") or {}).get("labels") or {})
        if current is not None:
            cur_meta = current.get("metadata") or {}
            compare_labels = dict(cur_meta.get("labels") or {})
            compare_labels.pop(HEADLESS, None)
            if (_strip_resource_versions(current.get("subsets") or []) == subsets and compare_labels == labels
                    and _capacity_annotation_correct(cur_meta.get("annotations") or {}, current.get("subsets") or [])):
                return
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints"}
        meta: Obj = dict(current["metadata"]) if current is not None else {"name": name, "namespace": namespace}
        annotations = dict(meta.get("annotations") or {})
        if trigger is not None:
            annotations[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger)
        else:
            annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
        if truncate_endpoints(subsets):
            annotations[OVER_CAPACITY] = TRUNCATED
        else:
            annotations.pop(OVER_CAPACITY, None)
        if _service_ip_set(service):
            labels.pop(HEADLESS, None)
        else:
            labels[HEADLESS] = ""
        meta["labels"] = labels
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        body["metadata"] = meta
        if subsets:
            body["subsets"] = subsets
        try:
            if current is None:
                await self.endpoints.create(body, namespace)
            else:
                await self.endpoints.update(body, namespace)
            self.writes += 1
        except ForbiddenError as exc:
            if current is None and "NamespaceTerminating" in str((exc.details or {}).get("causes") or ""):
                return  # the namespace is going away: creates will keep failing, drop the key
            raise
        except StatusError as exc:
            ref = {"kind": "Endpoints", "apiVersion": "v1", "name": name, "namespace": namespace}
            if current is None:
                self.recorder.event(ref, "Warning", "FailedToCreateEndpoint",
                                    f"Failed to create endpoint for service {namespace}/{name}: {exc}")
            else:
                self.recorder.event(ref, "Warning", "FailedToUpdateEndpoint",
                                    f"Failed to update endpoint {namespace}/{name}: {exc}")
            raise

    def statistics(self) -> Statistics:
        stats = super().statistics()
        stats.update(writes=float(self.writes))
        return stats
