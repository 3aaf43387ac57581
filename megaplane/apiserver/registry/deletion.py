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

Dependents (the garbage collector's side, as the store's
deletionFinalizersForGarbageCollection): `propagationPolicy: Orphan` (or
`orphanDependents: true`, or the kind's default: batch/v1 Jobs orphan for
backwards compatibility) puts the `orphan` finalizer on the object,
`Foreground` puts `foregroundDeletion`; either keeps the object, marked,
until the garbage collector has orphaned or deleted its dependents and
removed the finalizer. `Background` (kubectl's default) or no policy on
other kinds deletes at once and leaves the dependents to the collector.
The policy may still be changed by a later DELETE while finalizers hold
the object, but not during a pending graceful deletion.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.listoptions import ListOptions
from megaplane.apimachinery.meta import ObjectFacts, format_rfc3339, now_rfc3339, parse_rfc3339
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import matches_fields, matches_labels
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.watchcache import CachedObject

__all__ = [
    "FINALIZER_DELETE_DEPENDENTS",
    "FINALIZER_ORPHAN_DEPENDENTS",
    "check_preconditions",
    "default_orphan_warning",
    "gc_finalizers",
    "mark_for_deletion",
    "matches",
    "success_status",
    "validate_options",
]

#: metav1.FinalizerOrphanDependents / FinalizerDeleteDependents.
FINALIZER_ORPHAN_DEPENDENTS = "orphan"
FINALIZER_DELETE_DEPENDENTS = "foregroundDeletion"
_POLICIES = ("Foreground", "Background", "Orphan")
#: Kinds whose DefaultGarbageCollectionPolicy is OrphanDependents in the version megaplane serves
#: (pkg/registry/batch/job/strategy.go: batch/v1 Jobs orphan their pods unless told otherwise).
_ORPHAN_BY_DEFAULT = {("batch", "jobs")}


def validate_options(opts: Dict[str, Any]) -> None:
    """ValidateDeleteOptions: one of orphanDependents / propagationPolicy, and a known policy (422 else)."""
    policy = opts.get("propagationPolicy")
    causes = []
    if opts.get("orphanDependents") is not None and policy is not None:
        causes.append(errors.field_error("", "propagationPolicy", policy,
                                         "orphanDependents and deletionPropagation cannot be both set"))
    if policy is not None and policy not in _POLICIES:
        causes.append(errors.field_error(
            "", "propagationPolicy", policy, 'supported values: "Foreground", "Background", "Orphan", "nil"',
            "FieldValueNotSupported"))
    if causes:
        raise errors.invalid("meta.k8s.io", "DeleteOptions", "", causes)


def default_orphan_warning(r: Resource, opts: Dict[str, Any]) -> str:
    """The warning a DELETE that leaves a Job's pods to the orphaning default gets (job storage's REST.Delete)."""
    if (r.group, r.plural) in _ORPHAN_BY_DEFAULT and opts.get("propagationPolicy") is None \
            and opts.get("orphanDependents") is None:
        return ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to "
                "remove them or set propagationPolicy=Orphan to suppress this warning")
    return ""


def _should_orphan(r: Resource, finalizers: List[str], opts: Dict[str, Any]) -> bool:
    """shouldOrphanDependents: the options, then the object's finalizers, then the kind's default."""
    if opts.get("orphanDependents") is not None:
        return bool(opts["orphanDependents"])
    policy = opts.get("propagationPolicy")
    if policy == "Orphan":
        return True
    if policy in ("Background", "Foreground"):
        return False
    for f in finalizers:
        if f == FINALIZER_ORPHAN_DEPENDENTS:
            return True
        if f == FINALIZER_DELETE_DEPENDENTS:
            return False
    return (r.group, r.plural) in _ORPHAN_BY_DEFAULT


def _should_delete_dependents(finalizers: List[str], opts: Dict[str, Any]) -> bool:
    """shouldDeleteDependents: the options, then the object's finalizers (no kind defaults to foreground)."""
    if opts.get("orphanDependents") is not None:
        return False
    policy = opts.get("propagationPolicy")
    if policy == "Foreground":
        return True
    if policy in ("Background", "Orphan"):
        return False
    for f in finalizers:
        if f == FINALIZER_DELETE_DEPENDENTS:
            return True
        if f == FINALIZER_ORPHAN_DEPENDENTS:
            return False
    return False


def gc_finalizers(r: Resource, meta: Dict[str, Any], opts: Dict[str, Any]) -> Optional[List[str]]:
    """The object's finalizers after this DELETE's propagation policy, or None if they stay as they are."""
    old = [f for f in meta.get("finalizers") or () if isinstance(f, str)]
    new = [f for f in old if f not in (FINALIZER_ORPHAN_DEPENDENTS, FINALIZER_DELETE_DEPENDENTS)]
    if _should_orphan(r, old, opts):
        new.append(FINALIZER_ORPHAN_DEPENDENTS)
    if _should_delete_dependents(old, opts):
        new.append(FINALIZER_DELETE_DEPENDENTS)
    return None if set(new) == set(old) else new


def _mark_as_deleting(meta: Dict[str, Any]) -> None:
    """markAsDeleting: held by finalizers with no grace period: deletionTimestamp now (or sooner), grace 0."""
    stamp = meta.get("deletionTimestamp")
    if not stamp:
        if meta.get("generation"):
            meta["generation"] += 1
        meta["deletionTimestamp"] = now_rfc3339()
    else:
        when = parse_rfc3339(stamp)
        if when is not None and when > datetime.datetime.now(datetime.timezone.utc):
            meta["deletionTimestamp"] = now_rfc3339()
    meta["deletionGracePeriodSeconds"] = 0


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
    None when a graceful deletion is already pending and this request changes nothing.

    rest.BeforeDelete, then the store's updateForGracefulDeletionAndFinalizers: the propagation
    policy's finalizer is put on (or taken off) unless a graceful deletion is pending.
    """
    meta = obj["metadata"]
    graceful = False
    period = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp"):
        if period:  # a graceful deletion is pending: it may only be shortened
            want = opts.get("gracePeriodSeconds")
            if want is not None and want < 0:
                want = 1  # BeforeDelete reads a negative grace period as 1 s
            if want is None or want >= period:
                return None
            start = parse_rfc3339(meta["deletionTimestamp"])
            if start is not None:
                meta["deletionTimestamp"] = format_rfc3339(start - datetime.timedelta(seconds=period - want))
            meta["deletionGracePeriodSeconds"] = want
            graceful = want > 0
    else:
        grace = strategy.grace_period(obj, opts)
        if grace > 0:
            meta["deletionTimestamp"] = now_rfc3339(grace)
            meta["deletionGracePeriodSeconds"] = grace
            if meta.get("generation"):
                meta["generation"] += 1
            graceful = True
    finalizers = gc_finalizers(strategy.resource, meta, opts)
    if finalizers is not None:
        if finalizers:
            meta["finalizers"] = finalizers
        else:
            meta.pop("finalizers", None)
    if graceful:
        return True
    if meta.get("finalizers"):
        _mark_as_deleting(meta)
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
