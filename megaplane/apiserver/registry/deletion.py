"""DELETE as the generic registry store does it (rest.BeforeDelete, then delete or mark): the rules.

An object with finalizers, or a pod still on its node (graceful deletion),
is only marked: deletionTimestamp (now + grace period) and
deletionGracePeriodSeconds are set and the marked object is the answer. A
later delete may only shorten the grace period. Otherwise the object goes,
and the answer is the deleted object for kinds whose store returns it
(pods, namespaces, services, serviceaccounts) or a Success Status naming it.
Namespaces start termination on their first DELETE (the namespace
controller then removes their content). The writes are the store's
(`ResourceStore.delete`); this module decides.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.listoptions import ListOptions
from megaplane.apimachinery.meta import ObjectFacts, format_rfc3339, now_rfc3339, parse_rfc3339
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import matches_fields, matches_labels
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["check_preconditions", "mark_for_deletion", "success_status", "matches"]


def check_preconditions(r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> None:
    pre = opts.get("preconditions") or {}
    kind = f"{r.kind}.{r.group}" if r.group else r.kind  # BeforeDelete names the kind, not the resource
    if pre.get("uid") and pre["uid"] != cur.facts.uid:
        raise errors.StatusError(
            409, "Conflict",
            f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the UID in the precondition '
            f"({pre['uid']}) does not match the UID in record ({cur.facts.uid}). "
            "The object might have been deleted and then recreated",
            errors.details(cur.facts.name, r.group, r.kind),
        )
    if pre.get("resourceVersion") and pre["resourceVersion"] != str(cur.rv):
        raise errors.StatusError(
            409, "Conflict",
            f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the ResourceVersion in the precondition '
            f"({pre['resourceVersion']}) does not match the ResourceVersion in record ({cur.rv}). "
            "The object might have been modified",
            errors.details(cur.facts.name, r.group, r.kind),
        )


def mark_for_deletion(strategy: Strategy, obj: Dict[str, Any], opts: Dict[str, Any]) -> Optional[bool]:
    """Set the deletion marks on `obj`; True if it must be kept (marked), False to delete it now,
    None when a graceful deletion is already pending and this request changes nothing."""
    meta = obj["metadata"]
    finalizers = bool(meta.get("finalizers"))
    period = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp"):
        if not period:  # held by finalizers (or a grace period already at 0)
            return True if finalizers else False
        want = opts.get("gracePeriodSeconds")
        if want is None or want >= period:
            return None  # only a shorter grace period may be asked for
        start = parse_rfc3339(meta["deletionTimestamp"])
        if start is not None:
            meta["deletionTimestamp"] = format_rfc3339(start - datetime.timedelta(seconds=period - want))
        meta["deletionGracePeriodSeconds"] = want
        return True if want > 0 or finalizers else False
    grace = strategy.grace_period(obj, opts)
    if grace > 0:
        meta["deletionTimestamp"] = now_rfc3339(grace)
        meta["deletionGracePeriodSeconds"] = grace
        return True
    if finalizers:
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        return True
    return False


def success_status(r: Resource, facts: ObjectFacts) -> bytes:
    """The Success Status a DELETE answers for kinds whose store does not return the object."""
    details: Dict[str, Any] = {"name": facts.name}
    if r.group:
        details["group"] = r.group
    details["kind"] = r.plural  # upstream puts the resource in Kind here
    details["uid"] = facts.uid
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    return orjson.dumps(body)


def matches(opts: ListOptions, obj: CachedObject) -> bool:
    if not opts.labels and not opts.fields:
        return True
    f = obj.facts
    return matches_labels(opts.labels, f.labels) and matches_fields(opts.fields, f.fields)
