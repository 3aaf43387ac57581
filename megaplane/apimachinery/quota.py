"""ResourceQuota evaluation: what an object counts for, which quotas see it, and usage arithmetic.

Upstream's pkg/quota/v1 (the evaluators of pods, services and the object
counts, and the ResourceList helpers), shared by the ResourceQuota
admission plugin (apiserver.registry.quota) and the resource quota
controller (controllers.resourcequota) so both count alike:

* pods: `pods` (not once terminal: phase Succeeded/Failed, or deleted past
  its grace period), `count/pods` (always), cpu/memory and
  `requests.*`/`limits.*` of the pod's effective requests and limits (sum of
  containers, at least the largest init container, plus overhead),
  ephemeral-storage, hugepages and extended `requests.<name>`;
* services: `services`, `count/services`, `services.nodeports` (ports of a
  NodePort or node-port-allocating LoadBalancer), `services.loadbalancers`;
* configmaps, secrets, resourcequotas, replicationcontrollers,
  persistentvolumeclaims: their plain name and `count/<plural>`;
* everything else: `count/<plural>.<group>`.

Usage is a dict of resource name -> Fraction (exact); `format_list` prints
it as Go's Quantity.String() would.
"""

from __future__ import annotations

import datetime
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from megaplane.apimachinery.quantity import (
    BINARY_SI,
    DECIMAL_SI,
    QuantityError,
    format_quantity,
    parse_quantity,
    quantity_format,
)

__all__ = ["Usage", "usage", "matching_resources", "matches_scopes", "pod_constraints", "format_list",
           "parse_list", "pretty", "STANDARD_QUOTA_RESOURCES", "STANDARD_SCOPES", "counted_resource",
           "is_integer_resource", "add", "object_count_name", "quota_resources_for", "pod_formats", "formats_of",
           "guess_format", "pod_requests_limits", "dict_at", "list_at"]

Obj = Dict[str, Any]
Usage = Dict[str, Fraction]

_ONE = Fraction(1)
_ZERO = Fraction(0)

#: IsStandardQuotaResourceName.
STANDARD_QUOTA_RESOURCES = frozenset({
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers", "cpu", "memory", "requests.cpu",
    "requests.memory", "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
    "limits.ephemeral-storage", "ephemeral-storage",
})
#: The integer resources (IsIntegerResourceName): counts.
_INTEGER_RESOURCES = frozenset({"pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
                                "configmaps", "persistentvolumeclaims", "services.nodeports",
                                "services.loadbalancers"})
STANDARD_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                   "CrossNamespacePodAffinity")
# Core kinds with an evaluator of their own (their plain names count them, as count/<plural>).
_CORE_COUNTED = ("pods", "services", "configmaps", "secrets", "resourcequotas", "replicationcontrollers",
                 "persistentvolumeclaims")
_POD_RESOURCES = frozenset({"pods", "count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
                            "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
                            "limits.ephemeral-storage"})
_SERVICE_RESOURCES = frozenset({"services", "count/services", "services.nodeports", "services.loadbalancers"})
# The resources whose quota obliges every container to state them (the pod evaluator's validationSet).
_POD_VALIDATION = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def list_at(obj: Any, key: str) -> List[Any]:
    """obj[key] when it is a list, else an empty one."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def dict_at(obj: Any, key: str) -> Obj:
    """obj[key] when it is an object, else an empty one (objects here are decoded JSON, unvalidated)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def is_integer_resource(name: str) -> bool:
    return name in _INTEGER_RESOURCES or name.startswith("count/")


def object_count_name(group: str, plural: str) -> str:
    """ObjectCountQuotaResourceNameFor: count/<plural> for core, count/<plural>.<group> otherwise."""
    return f"count/{plural}" if not group else f"count/{plural}.{group}"


def counted_resource(name: str) -> Optional[Tuple[str, str]]:
    """The (group, plural) a quota resource name counts objects of (None for compute resources)."""
    if name.startswith("count/"):
        rest = name[len("count/"):]
        plural, _, group = rest.partition(".")
        return group, plural
    if name in _CORE_COUNTED:
        return "", name
    if name in ("services.nodeports", "services.loadbalancers"):
        return "", "services"
    if name in _POD_RESOURCES or name.startswith(("requests.", "limits.", "hugepages-")):
        return "", "pods"
    return None


def quota_resources_for(group: str, plural: str, names: Iterable[str]) -> List[str]:
    """MatchingResources: of `names` (a quota's hard resources), those objects of group/plural count for."""
    return [n for n in names if _matches_resource(group, plural, n)]


def _matches_resource(group: str, plural: str, name: str) -> bool:
    if not group and plural == "pods":
        return name in _POD_RESOURCES or name.startswith(("requests.hugepages-", "hugepages-")) or (
            name.startswith("requests.") and "/" in name)
    if not group and plural == "services":
        return name in _SERVICE_RESOURCES
    if not group and plural in _CORE_COUNTED:
        return name in (plural, f"count/{plural}")
    return name == object_count_name(group, plural)


matching_resources = quota_resources_for


def _q(value: Any) -> Optional[Fraction]:
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def _resource_list(value: Any) -> Usage:
    out: Usage = {}
    if isinstance(value, dict):
        for k, v in value.items():
            q = _q(v)
            if q is not None:
                out[str(k)] = q
    return out


def parse_list(value: Any) -> Usage:
    """A ResourceList's quantities (entries that do not parse are left out)."""
    return _resource_list(value)


def add(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> Usage:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, _ZERO) + v
    return out


def _containers(spec: Obj, key: str) -> List[Obj]:
    items = spec.get(key)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def _container_lists(c: Obj) -> Tuple[Usage, Usage]:
    res = dict_at(c, "resources")
    limits = _resource_list(res.get("limits"))
    requests = _resource_list(res.get("requests"))
    for k, v in limits.items():  # requests default to limits (the pod defaulter; admission may run before it)
        requests.setdefault(k, v)
    return requests, limits


def pod_requests_limits(pod: Obj) -> Tuple[Usage, Usage]:
    """resourcehelper.PodRequests / PodLimits: containers summed, at least each init container (sidecars
    with restartPolicy Always add up with the containers), plus spec.overhead."""
    spec = dict_at(pod, "spec")
    requests: Usage = {}
    limits: Usage = {}
    for c in _containers(spec, "containers"):
        r, lim = _container_lists(c)
        requests, limits = add(requests, r), add(limits, lim)
    sidecar_r: Usage = {}
    sidecar_l: Usage = {}
    init_r: Usage = {}
    init_l: Usage = {}
    for c in _containers(spec, "initContainers"):
        r, lim = _container_lists(c)
        if c.get("restartPolicy") == "Always":
            sidecar_r, sidecar_l = add(sidecar_r, r), add(sidecar_l, lim)
            r, lim = dict(sidecar_r), dict(sidecar_l)
        else:
            r, lim = add(r, sidecar_r), add(lim, sidecar_l)
        for k, v in r.items():
            init_r[k] = max(init_r.get(k, _ZERO), v)
        for k, v in lim.items():
            init_l[k] = max(init_l.get(k, _ZERO), v)
    requests, limits = add(requests, sidecar_r), add(limits, sidecar_l)
    for k, v in init_r.items():
        requests[k] = max(requests.get(k, _ZERO), v)
    for k, v in init_l.items():
        limits[k] = max(limits.get(k, _ZERO), v)
    overhead = _resource_list(spec.get("overhead"))
    if overhead:
        requests = add(requests, overhead)
        limits = add(limits, {k: v for k, v in overhead.items() if k in limits})
    return requests, limits


def _compute_usage(requests: Mapping[str, Fraction], limits: Mapping[str, Fraction]) -> Usage:
    """podComputeUsageHelper."""
    out: Usage = {"pods": _ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, v in requests.items():
        if name.startswith("hugepages-"):
            out[name] = v
            out[f"requests.{name}"] = v
        elif "/" in name and not name.startswith("requests."):  # extended resources: requests only
            out[f"requests.{name}"] = v
    return out


def _parse_time(text: Any) -> Optional[datetime.datetime]:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def pod_counts_compute(pod: Obj, now: Optional[datetime.datetime] = None) -> bool:
    """QuotaV1Pod: a pod counts for compute quota until it is terminal or deleted past its grace period."""
    status = dict_at(pod, "status")
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted = _parse_time(meta.get("deletionTimestamp"))
    if deleted is not None and meta.get("deletionGracePeriodSeconds") is not None:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        grace = datetime.timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
        if now > deleted + grace:
            return False
    return True


def usage(group: str, plural: str, obj: Obj, now: Optional[datetime.datetime] = None) -> Usage:
    """Evaluator.Usage: what one object of group/plural counts for."""
    if not group and plural == "pods":
        out: Usage = {"count/pods": _ONE}
        if pod_counts_compute(obj, now):
            requests, limits = pod_requests_limits(obj)
            out.update(_compute_usage(requests, limits))
        return out
    if not group and plural == "services":
        spec = dict_at(obj, "spec")
        ports: List[Any] = spec["ports"] if isinstance(spec.get("ports"), list) else []
        out = {"services": _ONE, "count/services": _ONE, "services.loadbalancers": _ZERO,
               "services.nodeports": _ZERO}
        kind = spec.get("type")
        if kind == "NodePort":
            out["services.nodeports"] = Fraction(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is not False:
                out["services.nodeports"] = Fraction(len(ports))
            out["services.loadbalancers"] = _ONE
        return out
    if not group and plural in _CORE_COUNTED:
        return {plural: _ONE, f"count/{plural}": _ONE}
    return {object_count_name(group, plural): _ONE}


def _best_effort(pod: Obj) -> bool:
    """qos.GetPodQOS == BestEffort: no container requests or limits cpu or memory."""
    spec = dict_at(pod, "spec")
    for key in ("containers", "initContainers"):
        for c in _containers(spec, key):
            r, lim = _container_lists(c)
            for name in ("cpu", "memory"):
                if r.get(name) or lim.get(name):
                    return False
    return True


def _scope_selectors(quota: Obj) -> List[Obj]:
    """getScopeSelectorsFromQuota: spec.scopes as Exists selectors, then spec.scopeSelector's expressions."""
    spec = dict_at(quota, "spec")
    out: List[Obj] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or () if isinstance(s, str)]
    sel = spec.get("scopeSelector")
    if isinstance(sel, dict):
        out += [e for e in sel.get("matchExpressions") or () if isinstance(e, dict)]
    return out


def _pod_matches_scope(selector: Obj, pod: Obj) -> bool:
    spec = dict_at(pod, "spec")
    scope = selector.get("scopeName")
    if scope == "Terminating":
        return isinstance(spec.get("activeDeadlineSeconds"), int) and spec["activeDeadlineSeconds"] >= 0
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _best_effort(pod)
    if scope == "NotBestEffort":
        return not _best_effort(pod)
    if scope == "PriorityClass":
        op, values = selector.get("operator"), selector.get("values") or []
        name = spec.get("priorityClassName") or ""
        if op == "Exists":
            return True  # every pod has a priority class (defaulted or not), as upstream's podMatchesSelector
        if op == "DoesNotExist":
            return False
        if op == "In":
            return name in values
        if op == "NotIn":
            return name not in values
        return False
    if scope == "CrossNamespacePodAffinity":
        return _cross_namespace_affinity(spec)
    return False


def _cross_namespace_affinity(spec: Obj) -> bool:
    affinity = dict_at(spec, "affinity")
    for kind in ("podAffinity", "podAntiAffinity"):
        a = dict_at(affinity, kind)
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []
                  if isinstance(w, dict)]
        for t in terms:
            if isinstance(t, dict) and (t.get("namespaces") or t.get("namespaceSelector") is not None):
                return True
    return False


def matches_scopes(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """The scope half of Evaluator.Matches: every scope selector matches (none: all); only pods have scopes."""
    selectors = _scope_selectors(quota)
    if not selectors:
        return True
    if group or plural != "pods":
        return False
    return all(_pod_matches_scope(s, obj) for s in selectors)


def pod_constraints(required: Iterable[str], pod: Obj) -> Optional[str]:
    """podEvaluator.Constraints: with cpu/memory quota'd, each container states them; the refusal's text."""
    wanted = sorted(set(required) & set(_POD_VALIDATION))
    if not wanted:
        return None
    spec = dict_at(pod, "spec")
    missing: Dict[str, List[str]] = {}
    for key in ("containers", "initContainers"):
        for c in _containers(spec, key):
            r, lim = _container_lists(c)
            have = _compute_usage(r, lim)
            for name in wanted:
                if name not in have:
                    missing.setdefault(name, []).append(str(c.get("name") or ""))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(set(missing[name])))}" for name in sorted(missing)]
    return "must specify " + "; ".join(parts)


def format_list(values: Mapping[str, Fraction], formats: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A ResourceList as JSON: each quantity as Go prints it (memory-like in binary SI when it was given so)."""
    formats = formats or {}
    return {k: format_quantity(v, formats.get(k, DECIMAL_SI)) for k, v in values.items()}


def formats_of(*lists: Any) -> Dict[str, str]:
    """The format of each resource in ResourceLists as sent (the first list naming it wins, as Go's Add)."""
    out: Dict[str, str] = {}
    for lst in lists:
        if isinstance(lst, dict):
            for k, v in lst.items():
                if k not in out:
                    out[k] = quantity_format(v)
    return out


def pretty(values: Mapping[str, Fraction], formats: Optional[Mapping[str, str]] = None) -> str:
    """prettyPrint: sorted `name=quantity` joined by commas."""
    shown = format_list(values, formats)
    return ",".join(f"{k}={shown[k]}" for k in sorted(shown))


def guess_format(name: str) -> str:
    """The format a sum of `name` shows in when nothing said (memory and storage: binary SI)."""
    return BINARY_SI if ("memory" in name or "storage" in name) else DECIMAL_SI


def pod_formats(obj: Obj) -> Dict[str, str]:
    """Formats of the quantities a pod's containers state, under the quota names they count for."""
    spec = dict_at(obj, "spec")
    lists: List[Any] = []
    for key in ("containers", "initContainers"):
        for c in _containers(spec, key):
            res = dict_at(c, "resources")
            lists += [res.get("requests"), res.get("limits")]
    out: Dict[str, str] = {}
    for k, fmt in formats_of(*lists).items():
        out.setdefault(k, fmt)
        out.setdefault(f"requests.{k}", fmt)
        out.setdefault(f"limits.{k}", fmt)
    return out
