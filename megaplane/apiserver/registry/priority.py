"""The Priority admission plugin: pods get their priority from a PriorityClass; at most one default class.

As upstream's plugin/pkg/admission/priority (enabled by default in
kube-apiserver):

* pod create (mutating): `spec.priorityClassName` is resolved to the class's
  `value` and `preemptionPolicy`, written to `spec.priority` and
  `spec.preemptionPolicy`. A pod that names no class gets the globalDefault
  class (its name is written to priorityClassName too; with several, the
  lowest value), or priority 0 and PreemptLowerPriority when there is none.
  An unknown class is 403 `no PriorityClass with name foo was found`; a pod
  that brings its own priority or preemptionPolicy different from the
  computed one is 403 as well;
* pod update (validating, after the pod's strategy): a body that leaves out
  priority or preemptionPolicy keeps the stored ones (upstream's Admit on
  update), and one that changes them or priorityClassName is 422, as
  ValidatePodUpdate refuses any such spec change;
* PriorityClass create and update (validating): a globalDefault class is 403
  while another class is the default already.

Classes are read from the API server's own PriorityClass watch cache
through `PriorityClassLister` (upstream reads an informer's lister), decoded
once per stored revision, so a pod create costs a dict lookup per class.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Protocol, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.priorityclasses import (
    DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS,
    PREEMPTION_POLICIES,
)
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.watchcache import WatchCache

__all__ = ["CachedPriorityClasses", "PriorityAdmission", "PriorityClassFacts", "PriorityClassLister",
           "UPDATABLE_POD_SPEC_FIELDS"]

#: What ValidatePodUpdate's refusal lists as changeable (InPlacePodVerticalScaling is off in 1.32).
UPDATABLE_POD_SPEC_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
# The pod spec fields this plugin owns, with their Go names for the refusal's diff.
_POD_PRIORITY_FIELDS = (("priorityClassName", "PriorityClassName"), ("priority", "Priority"),
                        ("preemptionPolicy", "PreemptionPolicy"))


class PriorityClassFacts(NamedTuple):
    """What admission reads from one PriorityClass."""

    name: str
    value: int
    global_default: bool
    #: None only for a class stored without one (never defaulted).
    preemption_policy: Optional[str]


class PriorityClassLister(Protocol):
    """The PriorityClasses the plugin sees (upstream: the shared informer's lister)."""

    def get(self, name: str) -> Optional[PriorityClassFacts]:
        """The class called `name`, or None."""

    def list(self) -> Iterator[PriorityClassFacts]:
        """Every class."""


class CachedPriorityClasses:
    """`PriorityClassLister` over the API server's PriorityClass watch cache (no HTTP, no copy per call)."""

    def __init__(self, cache: WatchCache) -> None:
        self._cache = cache
        self._resource = cache.resource
        #: key -> (revision decoded, facts): a class is decoded again only when it changed.
        self._decoded: Dict[bytes, Tuple[int, PriorityClassFacts]] = {}

    def _facts(self, key: bytes, rv: int, data: bytes) -> PriorityClassFacts:
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == rv:
            return hit[1]
        obj = orjson.loads(data)
        value = obj.get("value")
        policy = obj.get("preemptionPolicy")
        facts = PriorityClassFacts(str((obj.get("metadata") or {}).get("name") or ""),
                                   value if isinstance(value, int) else 0, obj.get("globalDefault") is True,
                                   policy if isinstance(policy, str) else None)
        if len(self._decoded) > 4 * max(len(self._cache.objects), 16):
            self._decoded.clear()  # forget deleted classes now and then
        self._decoded[key] = (rv, facts)
        return facts

    def get(self, name: str) -> Optional[PriorityClassFacts]:
        key = self._resource.key("", name)
        cur = self._cache.get(key)
        return None if cur is None else self._facts(key, cur.rv, cur.data)

    def list(self) -> Iterator[PriorityClassFacts]:
        for cur in self._cache.iter_prefix(self._resource.prefix):
            yield self._facts(cur.key, cur.rv, cur.data)


def _is_pods(resource: Resource) -> bool:
    return resource.group == "" and resource.plural == "pods"


def _is_priority_classes(resource: Resource) -> bool:
    return resource.group == "scheduling.k8s.io" and resource.plural == "priorityclasses"


def _go_value(value: Any) -> str:
    """How cmp.Diff shows a pointer field's value (&N, &"s") or an unset one (nil); a string as "s"."""
    if value is None:
        return "nil"
    return "&" + orjson.dumps(value).decode() if not isinstance(value, str) else orjson.dumps(value).decode()


class PriorityAdmission:
    """Upstream's Priority plugin: a `MutatingPlugin` for pod creates, a `ValidatingPlugin` for the rest."""

    def __init__(self, classes: PriorityClassLister) -> None:
        self.classes = classes

    def default_class(self) -> Optional[PriorityClassFacts]:
        """getDefaultPriorityClass: the globalDefault class; of several (a race), the lowest value."""
        best: Optional[PriorityClassFacts] = None
        for pc in self.classes.list():
            if pc.global_default and (best is None or (pc.value, pc.name) < (best.value, best.name)):
                best = pc
        return best

    # -- pods ------------------------------------------------------------------------------------------

    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if not _is_pods(resource):
            return
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        name = str((obj.get("metadata") or {}).get("name") or "")
        class_name = spec.get("priorityClassName") or ""
        policy: Optional[str]
        if not class_name:
            default = self.default_class()
            if default is not None:
                priority, policy = default.value, default.preemption_policy
                spec["priorityClassName"] = default.name
            else:
                priority, policy = DEFAULT_PRIORITY_WHEN_NO_DEFAULT_CLASS_EXISTS, PREEMPTION_POLICIES[0]
        else:
            pc = self.classes.get(str(class_name))
            if pc is None:
                raise errors.forbidden("", "pods", name, f"no PriorityClass with name {class_name} was found")
            priority, policy = pc.value, pc.preemption_policy
        given = spec.get("priority")
        if given is not None and given != priority:
            raise errors.forbidden("", "pods", name, f"the integer value of priority ({given}) must not be provided in "
                                   f"pod spec; priority admission controller computed {priority} from the given "
                                   "PriorityClass name")
        spec["priority"] = priority
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and policy is not None and given_policy != policy:
            raise errors.forbidden("", "pods", name, f"the string value of PreemptionPolicy ({given_policy}) must not "
                                   f"be provided in pod spec; priority admission controller computed {policy} from "
                                   "the given PriorityClass name")
        if policy is None:
            spec.pop("preemptionPolicy", None)
        else:
            spec["preemptionPolicy"] = policy

    def _validate_pod_update(self, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        spec, old_spec = obj.get("spec"), old.get("spec")
        if not isinstance(spec, dict) or not isinstance(old_spec, dict):
            return
        for keep in ("priority", "preemptionPolicy"):  # the plugin's Admit on update
            if spec.get(keep) is None and old_spec.get(keep) is not None:
                spec[keep] = old_spec[keep]
        diff: List[str] = []
        for key, go_name in _POD_PRIORITY_FIELDS:
            before, after = old_spec.get(key), spec.get(key)
            if key == "priorityClassName":
                before, after = before or "", after or ""
            if before != after:
                diff += [f"- \t{go_name}: {_go_value(before)},", f"+ \t{go_name}: {_go_value(after)},"]
        if diff:
            meta = obj.get("metadata") or {}
            detail = (f"pod updates may not change fields other than {','.join(UPDATABLE_POD_SPEC_FIELDS)}\n"
                      "  core.PodSpec{\n  \t... // other fields\n" + "\n".join(diff) + "\n  \t...\n  }\n")
            raise errors.invalid("", "Pod", str(meta.get("name") or ""),
                                 [field_error("", "spec", None, detail, "FieldValueForbidden")])

    # -- priority classes and the ValidatingPlugin hooks -----------------------------------------------

    def _validate_class(self, obj: Dict[str, Any], updating: bool) -> None:
        if obj.get("globalDefault") is not True:
            return
        default = self.default_class()
        name = str((obj.get("metadata") or {}).get("name") or "")
        if default is not None and (not updating or default.name != name):
            raise errors.forbidden("scheduling.k8s.io", "priorityclasses", name,
                                   f"PriorityClass {default.name} is already marked as default. "
                                   "Only one default can exist")

    def validate_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if _is_priority_classes(resource):
            self._validate_class(obj, updating=False)

    def validate_update(self, resource: Resource, obj: Dict[str, Any], old: Dict[str, Any]) -> None:
        if _is_priority_classes(resource):
            self._validate_class(obj, updating=True)
        elif _is_pods(resource):
            self._validate_pod_update(obj, old)
