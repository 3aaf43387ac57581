"""The LimitRanger admission plugin: container defaults from LimitRanges, and their min/max/ratio enforced.

As upstream's plugin/pkg/admission/limitranger, for pod creates (pods'
containers cannot change later, so updates are not looked at):

* mutating: every container (and init container) gets the `default`
  limits and `defaultRequest` requests of each Container item it does not
  state (requests still default to the container's own limits first, as
  the pod defaulter does before admission upstream); what was set is named
  in the `kubernetes.io/limit-ranger` annotation;
* validating: each Container item's min/max/maxLimitRequestRatio hold for
  every container, each Pod item's for the pod's sums, else 403 with
  upstream's message (`maximum cpu usage per Container is 1, but limit is
  2`; several are listed as Go's aggregate: `[a, b]`).

LimitRanges are read from the API server's own watch cache.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apimachinery import errors
from megaplane.apimachinery.quantity import QuantityError, format_quantity, milli_value, value
from megaplane.apimachinery.quota import dict_at, guess_format, pod_requests_limits
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.decoded import DecodedObjects
from megaplane.apiserver.watchcache import WatchCache

__all__ = ["LimitRanger", "LIMIT_RANGER_ANNOTATION"]

LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (1 << 63) // 1000  # resource.MaxMilliValue


def _is_pods(resource: Resource) -> bool:
    return resource.group == "" and resource.plural == "pods"


def _containers(spec: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    items = spec.get(key)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def _dict(parent: Dict[str, Any], key: str) -> Dict[str, Any]:
    d = parent.get(key)
    if not isinstance(d, dict):
        d = parent[key] = {}
    return d


def _shown(q: Any) -> str:
    return q if isinstance(q, str) else str(q)


def _observed(req: Any, lim: Any, enforced: Any) -> Tuple[int, int, int]:
    """requestLimitEnforcedValues: milli-units when all three fit, units otherwise."""
    vals = [x for x in (req, lim, enforced) if x is not None]
    try:
        if all(value(x) <= _MAX_MILLI for x in vals):
            conv = milli_value
        else:
            conv = value
        return (conv(req) if req is not None else 0, conv(lim) if lim is not None else 0, conv(enforced))
    except QuantityError:
        return 0, 0, 0


def _min(kind: str, name: str, enforced: Any, requests: Dict[str, Any], limits: Dict[str, Any]) -> Optional[str]:
    req, lim = requests.get(name), limits.get(name)
    r, lm, e = _observed(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {_shown(enforced)}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {_shown(enforced)}, but request is {_shown(req)}"
    if lim is not None and lm < e:
        return f"minimum {name} usage per {kind} is {_shown(enforced)}, but limit is {_shown(lim)}"
    return None


def _max(kind: str, name: str, enforced: Any, requests: Dict[str, Any], limits: Dict[str, Any]) -> Optional[str]:
    req, lim = requests.get(name), limits.get(name)
    r, lm, e = _observed(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {_shown(enforced)}.  No limit is specified"
    if lm > e:
        return f"maximum {name} usage per {kind} is {_shown(enforced)}, but limit is {_shown(lim)}"
    if req is not None and r > e:
        return f"maximum {name} usage per {kind} is {_shown(enforced)}, but request is {_shown(req)}"
    return None


def _ratio(kind: str, name: str, enforced: Any, requests: Dict[str, Any], limits: Dict[str, Any]) -> Optional[str]:
    req, lim = requests.get(name), limits.get(name)
    r, lm, _ = _observed(req, lim, enforced)
    if req is None or r == 0:
        return (f"{name} max limit to request ratio per {kind} is {_shown(enforced)}, but no request is specified "
                "or request is 0")
    if lim is None or lm == 0:
        return (f"{name} max limit to request ratio per {kind} is {_shown(enforced)}, but no limit is specified "
                "or limit is 0")
    observed = lm / r
    shown = observed
    try:
        bound = float(value(enforced))
        if value(enforced) <= _MAX_MILLI:
            observed *= 1000
            bound = float(milli_value(enforced))
    except QuantityError:
        return None
    if observed > bound:
        return f"{name} max limit to request ratio per {kind} is {_shown(enforced)}, but provided ratio is {shown:f}"
    return None


def _check(kind: str, item: Dict[str, Any], requests: Dict[str, Any], limits: Dict[str, Any], out: List[str]) -> None:
    for field, check in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        bounds = item.get(field)
        if isinstance(bounds, dict):
            for name in sorted(bounds):
                err = check(kind, name, bounds[name], requests, limits)
                if err is not None:
                    out.append(err)


def aggregate(messages: List[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several deduplicated in brackets."""
    seen: List[str] = []
    for m in messages:
        if m not in seen:
            seen.append(m)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


class LimitRanger:
    """A `MutatingPlugin` and `ValidatingPlugin` for pod creates (see the module docstring)."""

    def __init__(self, cache: WatchCache) -> None:
        self.ranges = DecodedObjects(cache)

    def _items(self, namespace: str, kind: str) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for _, lr in self.ranges.in_namespace(namespace):
            for item in (lr.get("spec") or {}).get("limits") or ():
                if isinstance(item, dict) and item.get("type") == kind:
                    out.append(item)
        return out

    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if not _is_pods(resource):
            return
        meta = obj.get("metadata") or {}
        items = self._items(str(meta.get("namespace") or ""), "Container")
        if not items:
            return
        default_limits: Dict[str, Any] = {}
        default_requests: Dict[str, Any] = {}
        for item in items:  # defaultContainerResourceRequirements: later items win
            default_requests.update(item.get("defaultRequest") or {})
            default_limits.update(item.get("default") or {})
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        notes: List[str] = []
        for key, prefix in (("containers", "container"), ("initContainers", "init container")):
            for c in _containers(spec, key):
                notes += _merge(c, default_requests, default_limits, prefix)
        if notes:
            annotations = meta.get("annotations")
            if not isinstance(annotations, dict):
                annotations = obj.setdefault("metadata", {})["annotations"] = {}
            annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)

    def validate_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if not _is_pods(resource):
            return
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        ranges = self.ranges.in_namespace(namespace)
        if not ranges:
            return
        spec = dict_at(obj, "spec")
        for _, lr in ranges:  # the first LimitRange refusing the pod answers, as upstream's runLimitFunc
            errs: List[str] = []
            for item in (lr.get("spec") or {}).get("limits") or ():
                if not isinstance(item, dict):
                    continue
                if item.get("type") == "Container":
                    for key in ("containers", "initContainers"):
                        for c in _containers(spec, key):
                            res = dict_at(c, "resources")
                            requests = dict_at(res, "requests")
                            limits = dict_at(res, "limits")
                            _check("Container", item, requests, limits, errs)
                elif item.get("type") == "Pod":
                    requests_f, limits_f = pod_requests_limits(obj)
                    _check("Pod", item, _as_strings(requests_f), _as_strings(limits_f), errs)
            if errs:
                raise errors.forbidden("", "pods", str(meta.get("name") or ""), aggregate(errs))

    def validate_update(self, resource: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        """Pods' containers do not change on update: nothing to check (upstream skips pod updates)."""


def _as_strings(values: Dict[str, Fraction]) -> Dict[str, Any]:
    """A pod's summed requests or limits as quantity strings (for the messages, as Go prints the sums)."""
    return {k: format_quantity(v, guess_format(k)) for k, v in values.items()}


def _merge(c: Dict[str, Any], requests: Dict[str, Any], limits: Dict[str, Any], prefix: str) -> List[str]:
    """mergeContainerResources."""
    res = _dict(c, "resources")
    have_limits = _dict(res, "limits")
    have_requests = _dict(res, "requests")
    for k, v in have_limits.items():  # the pod defaulter's requests-from-limits, which upstream ran already
        have_requests.setdefault(k, v)
    set_limits = sorted(k for k in limits if k not in have_limits)
    for k in set_limits:
        have_limits[k] = limits[k]
    set_requests = sorted(k for k in requests if k not in have_requests)
    for k in set_requests:
        have_requests[k] = requests[k]
    if not have_limits:
        del res["limits"]
    if not have_requests:
        del res["requests"]
    name = c.get("name") or ""
    notes = []
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {prefix} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {prefix} {name}")
    return notes
