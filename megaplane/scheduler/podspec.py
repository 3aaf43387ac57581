"""What the scheduler reads from a Pod, parsed once per pod: requests, tolerations, node affinity, host ports.

Requests follow `resourcehelper.PodRequests` (v1.32): the sum of the
containers, then the max with each init container (a restartable init
container, a sidecar, adds to both what runs alongside the app and what
later init containers run next to), then the pod overhead. `requests` are
the real requests (NodeResourcesFit's filter, BalancedAllocation,
accounting); `non_zero_cpu` / `non_zero_memory` count a container that
leaves a request unset as 100m / 200Mi (LeastAllocated and the node's
NonZeroRequested), an explicit zero stays zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

from .labels import NOTHING, Selector, SelectorError, selector_from
from .quantity import milli_value, value

__all__ = [
    "CPU", "MEMORY", "EPHEMERAL_STORAGE", "PODS", "DEFAULT_MILLI_CPU_REQUEST", "DEFAULT_MEMORY_REQUEST",
    "Toleration", "Requirement", "NodeSelectorTerm", "PodSpecInfo", "HostPort", "pod_key", "parse_pod",
    "tolerates", "AffinityTerm", "WeightedTerm", "PodAffinity", "SpreadConstraint",
]

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container without a request counts as.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Obj = Dict[str, Any]


@dataclass(frozen=True)
class Toleration:
    key: str
    operator: str  # "Equal" or "Exists"
    value: str
    effect: str  # "" matches every effect

    def tolerates(self, key: str, value: str, effect: str) -> bool:
        """v1.Toleration.ToleratesTaint."""
        if self.effect and self.effect != effect:
            return False
        if self.key and self.key != key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == value


def tolerates(tolerations: Tuple[Toleration, ...], key: str, value: str, effect: str) -> bool:
    return any(t.tolerates(key, value, effect) for t in tolerations)


@dataclass(frozen=True)
class Requirement:
    """One node selector requirement: a label key (or a field), an operator, values."""

    key: str
    operator: str  # In NotIn Exists DoesNotExist Gt Lt
    values: Tuple[str, ...]


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Expressions ANDed over labels and fields; a term with neither matches no node."""

    expressions: Tuple[Requirement, ...]
    fields: Tuple[Requirement, ...]


@dataclass(frozen=True)
class HostPort:
    ip: str
    protocol: str
    port: int


@dataclass(frozen=True)
class AffinityTerm:
    """A pod (anti-)affinity term as framework.AffinityTerm: namespaces resolved (default: the pod's own)."""

    namespaces: FrozenSet[str]
    #: nil -> NOTHING; {} -> every namespace.
    namespace_selector: Selector
    selector: Selector
    topology_key: str

    def matches(self, namespace: str, labels: Mapping[str, str], ns_labels: Optional[Mapping[str, str]]) -> bool:
        """AffinityTerm.Matches: the namespace is listed or its labels match, then the pod's labels."""
        if namespace in self.namespaces or self.namespace_selector.matches(ns_labels or {}):
            return self.selector.matches(labels)
        return False


@dataclass(frozen=True)
class WeightedTerm:
    weight: int
    term: AffinityTerm


@dataclass(frozen=True)
class PodAffinity:
    """spec.affinity.podAffinity / podAntiAffinity; hashable, so pods with equal terms share a group."""

    required_affinity: Tuple[AffinityTerm, ...] = ()
    required_anti_affinity: Tuple[AffinityTerm, ...] = ()
    preferred_affinity: Tuple[WeightedTerm, ...] = ()
    preferred_anti_affinity: Tuple[WeightedTerm, ...] = ()


@dataclass(frozen=True)
class SpreadConstraint:
    """One spec.topologySpreadConstraints entry as written (policies and matchLabelKeys applied by the plugin)."""

    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: Selector
    min_domains: int
    node_affinity_policy: str
    node_taints_policy: str
    match_label_keys: Tuple[str, ...]


@dataclass
class PodSpecInfo:
    key: str
    namespace: str
    name: str
    uid: str
    scheduler_name: str
    node_name: str
    priority: int
    #: resource name -> amount (cpu in millicores), real requests; zero entries dropped except cpu/memory.
    requests: Dict[str, int]
    non_zero_cpu: int
    non_zero_memory: int
    tolerations: Tuple[Toleration, ...]
    node_selector: Dict[str, str]
    #: required node affinity terms (ORed); None when the pod has none.
    required_terms: Optional[Tuple[NodeSelectorTerm, ...]]
    #: (weight, term) of preferred node affinity.
    preferred_terms: Tuple[Tuple[int, NodeSelectorTerm], ...]
    host_ports: Tuple[HostPort, ...]
    scheduling_gates: Tuple[str, ...]
    labels: Dict[str, str] = field(default_factory=dict)
    spread_constraints: Tuple[SpreadConstraint, ...] = ()
    affinity: Optional[PodAffinity] = None
    #: metadata.deletionTimestamp is set (PodTopologySpread does not count terminating pods).
    terminating: bool = False
    #: spec.preemptionPolicy (PreemptLowerPriority or Never).
    preemption_policy: str = "PreemptLowerPriority"
    #: status.nominatedNodeName, status.startTime (RFC 3339, "" when unset).
    nominated_node_name: str = ""
    start_time: str = ""
    #: Terminating with DisruptionTarget=True reason PreemptionByScheduler (a victim of preemption).
    preempted_by_scheduler: bool = False


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _container_requests(container: Mapping[str, Any]) -> Tuple[Dict[str, int], bool, bool]:
    """(requests, cpu set, memory set) of one container."""
    raw = ((container.get("resources") or {}).get("requests")) or {}
    out: Dict[str, int] = {}
    for name, qty in raw.items():
        out[name] = milli_value(qty) if name == CPU else value(qty)
    return out, CPU in raw, MEMORY in raw


def _add(into: Dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max(into: Dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def _requests(spec: Mapping[str, Any], non_zero: bool) -> Dict[str, int]:
    def of(container: Mapping[str, Any]) -> Dict[str, int]:
        reqs, has_cpu, has_mem = _container_requests(container)
        if non_zero:
            if not has_cpu:
                reqs[CPU] = DEFAULT_MILLI_CPU_REQUEST
            if not has_mem:
                reqs[MEMORY] = DEFAULT_MEMORY_REQUEST
        return reqs

    total: Dict[str, int] = {}
    for c in spec.get("containers") or ():
        _add(total, of(c))
    restartable: Dict[str, int] = {}
    init_max: Dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        reqs = of(c)
        if c.get("restartPolicy") == "Always":
            _add(total, reqs)
            _add(restartable, reqs)
            running = dict(restartable)
        else:
            running = dict(reqs)
            _add(running, restartable)
        _max(init_max, running)
    _max(total, init_max)
    overhead = spec.get("overhead") or {}
    if overhead:
        _add(total, {k: milli_value(v) if k == CPU else value(v) for k, v in overhead.items()})
    return total


def _requirements(items: Any) -> Tuple[Requirement, ...]:
    out = []
    for r in items or ():
        out.append(Requirement(str(r.get("key", "")), str(r.get("operator", "")),
                               tuple(str(v) for v in r.get("values") or ())))
    return tuple(out)


def _term(term: Mapping[str, Any]) -> NodeSelectorTerm:
    return NodeSelectorTerm(_requirements(term.get("matchExpressions")), _requirements(term.get("matchFields")))


def _selector(obj: Any) -> Selector:
    try:
        return selector_from(obj)
    except SelectorError:
        return NOTHING  # the API server refuses such selectors; a bad one selects nothing


def _affinity_term(namespace: str, term: Mapping[str, Any]) -> AffinityTerm:
    names = tuple(str(n) for n in term.get("namespaces") or ())
    ns_selector = term.get("namespaceSelector")
    # getNamespacesFromPodAffinityTerm: neither namespaces nor a namespaceSelector means the pod's own.
    namespaces = frozenset(names) if names or ns_selector is not None else frozenset((namespace,))
    return AffinityTerm(namespaces, _selector(ns_selector), _selector(term.get("labelSelector")),
                        str(term.get("topologyKey") or ""))


def _pod_affinity(namespace: str, affinity: Mapping[str, Any]) -> Optional[PodAffinity]:
    aff = affinity.get("podAffinity") or {}
    anti = affinity.get("podAntiAffinity") or {}
    if not aff and not anti:
        return None
    req = "requiredDuringSchedulingIgnoredDuringExecution"
    pref = "preferredDuringSchedulingIgnoredDuringExecution"

    def weighted(items: Any) -> Tuple[WeightedTerm, ...]:
        return tuple(WeightedTerm(int(w.get("weight") or 0), _affinity_term(namespace, w.get("podAffinityTerm") or {}))
                     for w in items or ())

    out = PodAffinity(tuple(_affinity_term(namespace, t) for t in aff.get(req) or ()),
                      tuple(_affinity_term(namespace, t) for t in anti.get(req) or ()),
                      weighted(aff.get(pref)), weighted(anti.get(pref)))
    return out if out != PodAffinity() else None


def _spread_constraints(spec: Mapping[str, Any]) -> Tuple[SpreadConstraint, ...]:
    out = []
    for c in spec.get("topologySpreadConstraints") or ():
        min_domains = c.get("minDomains")
        out.append(SpreadConstraint(
            max_skew=int(c.get("maxSkew") or 0), topology_key=str(c.get("topologyKey") or ""),
            when_unsatisfiable=str(c.get("whenUnsatisfiable") or ""), selector=_selector(c.get("labelSelector")),
            min_domains=int(min_domains) if min_domains is not None else 1,
            node_affinity_policy=str(c.get("nodeAffinityPolicy") or "Honor"),
            node_taints_policy=str(c.get("nodeTaintsPolicy") or "Ignore"),
            match_label_keys=tuple(str(k) for k in c.get("matchLabelKeys") or ())))
    return tuple(out)


def _disrupted_by_scheduler(status: Mapping[str, Any]) -> bool:
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "DisruptionTarget":
            return c.get("status") == "True" and c.get("reason") == "PreemptionByScheduler"
    return False


def parse_pod(pod: Mapping[str, Any]) -> PodSpecInfo:
    """The scheduling-relevant facts of `pod` (a dict as the API serves it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    requests = {k: v for k, v in _requests(spec, False).items() if v or k in (CPU, MEMORY)}
    non_zero = _requests(spec, True)
    tolerations = tuple(
        Toleration(str(t.get("key") or ""), str(t.get("operator") or "Equal"), str(t.get("value") or ""),
                   str(t.get("effect") or ""))
        for t in spec.get("tolerations") or ())
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity")) or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    required_terms = None
    if required is not None:
        required_terms = tuple(_term(t) for t in required.get("nodeSelectorTerms") or ())
    preferred = tuple(
        (int(p.get("weight") or 0), _term(p.get("preference") or {}))
        for p in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
        if int(p.get("weight") or 0) != 0)
    ports: List[HostPort] = []
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            host_port = int(p.get("hostPort") or 0)
            if host_port > 0:
                ports.append(HostPort(str(p.get("hostIP") or "0.0.0.0"), str(p.get("protocol") or "TCP"), host_port))
    return PodSpecInfo(
        key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        node_name=str(spec.get("nodeName") or ""),
        priority=int(spec.get("priority") or 0),
        requests=requests,
        non_zero_cpu=non_zero.get(CPU, 0),
        non_zero_memory=non_zero.get(MEMORY, 0),
        tolerations=tolerations,
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_terms=required_terms,
        preferred_terms=preferred,
        host_ports=tuple(ports),
        scheduling_gates=tuple(str(g.get("name", "")) for g in spec.get("schedulingGates") or ()),
        labels=dict(meta.get("labels") or {}),
        spread_constraints=_spread_constraints(spec),
        affinity=_pod_affinity(str(meta.get("namespace", "")), spec.get("affinity") or {}),
        terminating=bool(meta.get("deletionTimestamp")),
        preemption_policy=str(spec.get("preemptionPolicy") or "PreemptLowerPriority"),
        nominated_node_name=str(status.get("nominatedNodeName") or ""),
        start_time=str(status.get("startTime") or ""),
        preempted_by_scheduler=bool(meta.get("deletionTimestamp")) and _disrupted_by_scheduler(status),
    )
