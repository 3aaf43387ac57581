"""Names and conditions of CRDs (apiextensions-apiserver's NamingConditionController and
EstablishingController logic, without their queues).

A CRD's requested names are accepted unless another CRD of the same group has
already accepted one of them (plural, singular, short names against the
group's resources; kind, listKind against its kinds): then the names stay as
accepted before and NamesAccepted is False with upstream's reason and message.
Established follows the first accepted names and stays.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from megaplane.apimachinery.meta import now_rfc3339

__all__ = ["accepted_names", "desired_status", "set_condition", "condition"]

Obj = Dict[str, Any]


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def accepted_names(crd: Obj, others: Iterable[Obj]) -> Tuple[Obj, str, str, str]:
    """(acceptedNames, NamesAccepted status, reason, message) given the group's other CRDs."""
    spec = _d(crd.get("spec"))
    group = spec.get("group")
    requested = dict(_d(spec.get("names")))
    accepted = _d(_d(crd.get("status")).get("acceptedNames"))
    resources: Set[str] = set()
    kinds: Set[str] = set()
    for other in others:
        if _d(other.get("spec")).get("group") != group:
            continue
        names = _d(_d(other.get("status")).get("acceptedNames"))
        resources.update(x for x in (names.get("plural"), names.get("singular")) if x)
        resources.update(names.get("shortNames") or ())
        kinds.update(x for x in (names.get("kind"), names.get("listKind")) if x)
    new = dict(requested)
    status, reason, message = "True", "NoConflicts", "no conflicts found"

    def conflict(key: str, why: str, what: str) -> None:
        nonlocal status, reason, message
        if key in accepted:
            new[key] = accepted[key]
        else:
            new.pop(key, None)
        status, reason, message = "False", why, f'"{what}" is already in use'

    if requested.get("plural") in resources:
        conflict("plural", "PluralConflict", requested["plural"])
    elif requested.get("singular") in resources:
        conflict("singular", "SingularConflict", requested["singular"])
    elif any(s in resources for s in requested.get("shortNames") or ()):
        conflict("shortNames", "ShortNamesConflict",
                 next(s for s in requested["shortNames"] if s in resources))
    elif requested.get("kind") in kinds:
        conflict("kind", "KindConflict", requested["kind"])
    elif requested.get("listKind") in kinds:
        conflict("listKind", "ListKindConflict", requested["listKind"])
    if status == "False":
        new.setdefault("plural", accepted.get("plural", ""))
        new.setdefault("kind", accepted.get("kind", ""))
    return new, status, reason, message


def condition(status: Obj, type_: str) -> Optional[Obj]:
    for c in status.get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str) -> None:
    """SetCRDCondition: lastTransitionTime moves only when the status does."""
    conditions: List[Obj] = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    old = condition(status, type_)
    new = {"type": type_, "status": value,
           "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == value
           and old.get("lastTransitionTime") else now_rfc3339(),
           "reason": reason, "message": message}
    if old is not None:
        conditions[conditions.index(old)] = new
    else:
        conditions.append(new)
    status["conditions"] = conditions


def desired_status(crd: Obj, others: Iterable[Obj]) -> Obj:
    """The CRD's status after naming and establishing (a copy; the CRD is not changed)."""
    status = dict(_d(crd.get("status")))
    names, ok, reason, message = accepted_names(crd, others)
    status["acceptedNames"] = names
    set_condition(status, "NamesAccepted", ok, reason, message)
    established = condition(status, "Established")
    if ok == "True":
        if established is None or established.get("status") != "True":
            set_condition(status, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
    elif established is None:
        set_condition(status, "Established", "False", "NotAccepted", "not all names are accepted")
    return status
