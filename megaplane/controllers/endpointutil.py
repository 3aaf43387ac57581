"""What the Endpoints and EndpointSlice controllers share (upstream's pkg/controller/util/endpoint and
staging/src/k8s.io/endpointslice/util).

- which pods belong in a Service's endpoints (`should_pod_be_in_endpoints`)
  and which of a pod's IPs serves a Service's IP family (`pod_ip_for_family`);
- a Service port's target resolved against a pod's container ports
  (`find_port`: a named targetPort is looked up by name and protocol);
- which Services a pod change concerns (`pod_endpoints_changed`, and the
  memberships by selector);
- `TriggerTimeTracker`: the time of the earliest change a sync is about to
  publish, for the `endpoints.kubernetes.io/last-change-trigger-time`
  annotation (the Service's creation for its first sync, else the earliest
  pod Ready transition not published yet).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from megaplane.apimachinery.meta import parse_rfc3339
from megaplane.client import Lister, object_key

from .podutil import is_pod_ready

__all__ = [
    "LAST_CHANGE_TRIGGER_TIME",
    "TriggerTimeTracker",
    "find_port",
    "format_trigger_time",
    "is_ipv6",
    "pod_endpoints_changed",
    "pod_ip_for_family",
    "service_family",
    "services_for_pod",
    "services_to_update_on_pod_change",
    "should_pod_be_in_endpoints",
    "should_set_hostname",
]

Obj = Dict[str, Any]

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """Not terminal, has an IP, and not being deleted unless terminating pods count (ShouldPodBeInEndpoints)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"] \
        and (pod.get("metadata") or {}).get("namespace") == service["metadata"].get("namespace")


def _pod_ips(pod: Mapping[str, Any]) -> List[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or () if isinstance(p, dict) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def service_family(service: Mapping[str, Any], pod: Optional[Mapping[str, Any]] = None) -> str:
    """The IP family a Service's endpoints are in: its first ipFamilies entry; without one (an old API
    server), its cluster IP's, or for a headless Service the pod's primary IP's (podToEndpointAddressForService)."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or ()
    if families:
        return str(families[0])
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None":
        return "IPv6" if is_ipv6(cluster_ip) else "IPv4"
    primary = _pod_ips(pod)[:1] if pod is not None else []
    return "IPv6" if primary and is_ipv6(primary[0]) else "IPv4"


def pod_ip_for_family(pod: Mapping[str, Any], family: str) -> Optional[str]:
    """The pod's first IP of `family`, or None (a pod of the other family only has no address here)."""
    want6 = family == "IPv6"
    for ip in _pod_ips(pod):
        if is_ipv6(ip) == want6:
            return ip
    return None


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> Optional[int]:
    """The pod port a Service port targets (podutil.FindPort): a number as is, a name by the containers'
    port of that name and protocol; None when a named port is not there."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        return int(service_port.get("port") or 0)  # defaulting makes targetPort the port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port.get("containerPort") or 0)
    return None


# -- which Services a pod change concerns ----------------------------------------------------------


def _selects(service: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return False  # a Service without a selector selects nothing (labels.Set(nil) would match all)
    return all(labels.get(k) == v for k, v in selector.items())


def services_for_pod(services: Lister, pod: Mapping[str, Any]) -> Set[str]:
    """Keys of the Services in the pod's namespace whose selector matches its labels (GetPodServiceMemberships)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return {object_key(s) for s in services.list(meta.get("namespace") or "") if _selects(s, labels)}


def pod_endpoints_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> Tuple[bool, bool]:
    """(the pod's endpoint changed, its memberships may have): upstream's podEndpointsChanged."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    osp, nsp = old.get("spec") or {}, new.get("spec") or {}
    labels_changed = om.get("labels") != nm.get("labels") or osp.get("hostname") != nsp.get("hostname") \
        or osp.get("subdomain") != nsp.get("subdomain")
    if om.get("deletionTimestamp") != nm.get("deletionTimestamp"):
        return True, labels_changed
    if is_pod_ready(old) != is_pod_ready(new):
        return True, labels_changed
    if _pod_ips(old) != _pod_ips(new):
        return True, labels_changed
    # Name, namespace and uid are immutable, and nodeName is set before the pod has an IP.
    return False, labels_changed


def services_to_update_on_pod_change(services: Lister, old: Mapping[str, Any], new: Mapping[str, Any]) -> Set[str]:
    """GetServicesToUpdateOnPodChange: none for a resync; with changed labels, the services it left or
    joined (and all of them if its endpoint changed too)."""
    if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
        return set()
    pod_changed, labels_changed = pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    keys = services_for_pod(services, new)
    if labels_changed:
        old_keys = services_for_pod(services, old)
        keys = keys | old_keys if pod_changed else keys ^ old_keys
    return keys


# -- last-change-trigger-time ----------------------------------------------------------------------


def _stamp(value: Any) -> Optional[float]:
    at = parse_rfc3339(value) if isinstance(value, str) else None
    return at.timestamp() if at is not None else None


def _pod_trigger_time(pod: Mapping[str, Any]) -> Optional[float]:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return _stamp(c.get("lastTransitionTime"))
    return None


def format_trigger_time(at: float) -> str:
    """RFC 3339 with nanoseconds' digits trimmed as Go's time.RFC3339Nano prints them."""
    import datetime

    moment = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


class TriggerTimeTracker:
    """Per Service, the trigger times last published (upstream's TriggerTimeTracker)."""

    def __init__(self) -> None:
        self._states: Dict[str, Tuple[Dict[str, float], Optional[float]]] = {}

    def compute(self, key: str, service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> Optional[float]:
        """The trigger time of this sync (None: nothing new), remembering the pods' times for the next."""
        known = self._states.get(key)
        last_pods, last_service = known if known is not None else ({}, None)
        earliest: Optional[float] = None
        times: Dict[str, float] = {}
        for pod in pods:
            at = _pod_trigger_time(pod)
            if at is None:
                continue
            name = str(pod["metadata"]["name"])
            times[name] = at
            before = last_pods.get(name)
            if before is None or at > before:
                earliest = at if earliest is None else min(earliest, at)
        service_at = _stamp(service["metadata"].get("creationTimestamp"))
        if service_at is not None and (last_service is None or service_at > last_service):
            earliest = service_at if earliest is None else min(earliest, service_at)
        self._states[key] = (times, service_at)
        if known is None:
            return service_at  # a Service new to us: its creation started it all
        return earliest

    def delete(self, key: str) -> None:
        self._states.pop(key, None)
