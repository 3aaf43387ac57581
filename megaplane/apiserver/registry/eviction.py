"""POST pods/{name}/eviction: delete a pod only if its PodDisruptionBudget allows it, as upstream's EvictionREST.

pkg/registry/core/pod/storage/eviction.go (1.32), step by step:

1. The body is a policy/v1 (or v1beta1) Eviction naming the URL's pod; its
   deleteOptions take the request's dryRun when they have none.
2. A pod that already caused its disruption or never served (Succeeded,
   Failed, Pending, or being deleted) is deleted with no budget check (a
   resourceVersion precondition added for a non-terminal one, so it cannot
   turn Ready in between); conflicts retried (EvictionsRetry: 20 x 500 ms)
   unless the client gave a resourceVersion precondition itself.
3. The pod's PDBs (same namespace, non-empty selector matching its labels):
   more than one is a 500 Status; none deletes the pod.
4. An unready pod under a healthy budget (currentHealthy >= desiredHealthy
   > 0), or any unready pod under `unhealthyPodEvictionPolicy:
   AlwaysAllow`, is deleted without spending the budget, preconditioned on
   the resourceVersion that was judged (a conflict is a 429 to retry).
5. Otherwise the budget is checked and spent: 429 while the controller has
   not observed the PDB's generation or no disruption is allowed, 403 when
   disruptionsAllowed is negative or DisruptedPods is past 2000 entries;
   else disruptionsAllowed - 1 and DisruptedPods[pod] = now are written to
   the PDB's status with its resourceVersion as precondition (the write is
   a compare-and-swap: a conflict re-reads the PDB and checks again). The
   disruption controller drops the entry once the pod is gone, or after 2
   minutes if it never went.
6. The pod gets the DisruptionTarget condition (EvictionByEvictionAPI) in a
   status write, then is deleted with the eviction's deleteOptions
   (gracePeriodSeconds, preconditions, dryRun). A dry run writes nothing.

The answer is a Success Status (201). Uses the pods' and PDBs' stores only.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable, Dict, List, Tuple, TypeVar

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.conditions import update_disruption_allowed_condition
from megaplane.apimachinery.meta import now_rfc3339
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.scheme import REGISTERED_KINDS
from megaplane.apimachinery.selectors import matches_labels, selector_from_dict
from megaplane.apiserver.registry import deletion
from megaplane.apiserver.registry.options import WriteOptions, dry_run
from megaplane.apiserver.registry.store import ResourceStore, Result
from megaplane.apiserver.schema.fieldvalidation import (
    FieldTypeError,
    FieldValidationError,
    InvalidDirectiveError,
    decode_error_message,
    prune,
)
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["PodEviction", "EVICTION", "MAX_DISRUPTED_POD_SIZE", "EVICTION_RETRY_STEPS"]

#: The body's kind, for the decoder's messages ("must be of type Eviction"); not a served resource.
EVICTION = Resource("policy", "v1", "evictions", "eviction", "Eviction", True, b"")
_ACCEPTED_VERSIONS = ("policy/v1", "policy/v1beta1")
#: MaxDisruptedPodSize: evictions approved but not yet seen by the disruption controller.
MAX_DISRUPTED_POD_SIZE = 2000
#: EvictionsRetry: 20 steps of 500 ms, jitter 0.1.
EVICTION_RETRY_STEPS = 20
EVICTION_RETRY_SECONDS = 0.5
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"

T = TypeVar("T")
Obj = Dict[str, Any]


def _status(code: int, status: str, message: str = "") -> bytes:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status}
    if message:
        body["message"] = message
    body["code"] = code
    return orjson.dumps(body)


SUCCESS = Result(_status(201, "Success"), 201, printable=False)


def too_many_requests(why: str, retry_after: int) -> errors.StatusError:
    """NewTooManyRequests with the DisruptionBudget cause; Retry-After only when upstream gives one (> 0)."""
    detail: Obj = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": why}]}
    headers: Dict[str, str] = {}
    if retry_after > 0:
        detail["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return errors.StatusError(429, "TooManyRequests", VIOLATION, detail, headers)


def _still_processing(pdb_name: str) -> errors.StatusError:
    return too_many_requests(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def can_ignore_pdb(pod: Obj) -> bool:
    """canIgnorePDB: terminal or Pending pods, and pods being deleted."""
    return _phase(pod) in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _should_enforce_resource_version(pod: Obj) -> bool:
    return _phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, errors.StatusError) and exc.code == 409 and exc.reason == "Conflict"


async def _retry_on(should_retry: Callable[[BaseException], bool], fn: Callable[[], Awaitable[T]]) -> T:
    """retry.OnError(EvictionsRetry, ...): the last error once the steps are spent."""
    for step in range(EVICTION_RETRY_STEPS):
        try:
            return await fn()
        except errors.StatusError as exc:
            if not should_retry(exc) or step == EVICTION_RETRY_STEPS - 1:
                raise
        await asyncio.sleep(EVICTION_RETRY_SECONDS * (1 + 0.1 * random.random()))
    raise AssertionError("unreachable")


def _check_eviction_kind(obj: Obj) -> None:
    """The decoder's check: an Eviction of policy/v1 or v1beta1 (AcceptsGroupVersion), else upstream's 400."""
    gv = obj.get("apiVersion") or "policy/v1"
    kind = obj.get("kind") or "Eviction"
    if not isinstance(gv, str) or not isinstance(kind, str):
        raise errors.bad_request("the object provided is unrecognized (must be of type Eviction): couldn't get "
                                 "version/kind; json parse error: json: cannot unmarshal value into Go struct field "
                                 ".apiVersion of type string")
    if kind == "Eviction" and gv in _ACCEPTED_VERSIONS:
        obj["apiVersion"], obj["kind"] = gv, kind
        return
    version = gv.rsplit("/", 1)[-1]
    if (gv, kind) in REGISTERED_KINDS:
        why = f"converting ({version}.{kind}) to (policy.Eviction): unknown conversion"
    else:
        why = f'no kind "{kind}" is registered for version "{gv}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
    raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a Eviction: {why}')


def _delete_options(eviction: Obj, request_dry_run: bool) -> Obj:
    """The eviction's deleteOptions, checked as the registry's delete checks them; propagateDryRun."""
    opts = eviction.get("deleteOptions")
    if opts is None:
        opts = {}
    if not isinstance(opts, dict):
        raise errors.bad_request("json: cannot unmarshal value into Go struct field Eviction.deleteOptions of type "
                                 "v1.DeleteOptions")
    opts = dict(opts)
    grace = opts.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("json: cannot unmarshal value into Go struct field DeleteOptions.gracePeriodSeconds "
                                 "of type int64")
    pre = opts.get("preconditions")
    if pre is not None:
        if not isinstance(pre, dict) or any(v is not None and not isinstance(v, str) for v in pre.values()):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field DeleteOptions.preconditions "
                                     "of type v1.Preconditions")
        opts["preconditions"] = {k: v for k, v in pre.items() if v}
    # The body's dryRun wins when it has one; the query's fills it otherwise (both can only be "All").
    opts["dryRun"] = dry_run(opts.get("dryRun"), "DeleteOptions") or request_dry_run
    # ValidateDeleteOptions before the budget is spent (upstream's delete checks the options only after the PDB
    # write and the pod's condition: refused options must change nothing).
    deletion.validate_options(opts)
    return opts


def _resource_version_unset(opts: Obj) -> bool:
    return not (opts.get("preconditions") or {}).get("resourceVersion")


def _with_resource_version(opts: Obj, rv: str) -> Obj:
    out = dict(opts)
    out["preconditions"] = dict(opts.get("preconditions") or {}, resourceVersion=rv)
    return out


def _selects(pdb: Obj, labels: Dict[str, str]) -> bool:
    """A PDB covers the pod when its selector is valid, not empty, and matches (an empty one matches nothing)."""
    selector = (pdb.get("spec") or {}).get("selector")
    if not isinstance(selector, dict):
        return False
    try:
        requirements = selector_from_dict(selector)
    except (KeyError, TypeError, AttributeError):
        return False
    return bool(requirements) and matches_labels(requirements, labels)


class PodEviction:
    """The eviction subresource over the pods' and the PDBs' stores."""

    def __init__(self, pods: ResourceStore, pdbs: ResourceStore) -> None:
        self.pods = pods
        self.pdbs = pdbs

    async def create(self, namespace: str, name: str, eviction: Obj, opts: WriteOptions) -> Result:
        _check_eviction_kind(eviction)
        try:
            warnings = prune(EVICTION.group, EVICTION.version, EVICTION.kind, eviction, opts.field_validation)
        except (FieldValidationError, FieldTypeError) as exc:
            raise errors.bad_request(decode_error_message("Eviction", "v1", exc.message)) from None
        except InvalidDirectiveError as exc:
            st = exc.status()
            raise errors.StatusError(exc.code, exc.reason, st["message"], st["details"]) from None
        meta = eviction.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field Eviction.metadata of type "
                                     "v1.ObjectMeta")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                     "request")
        if meta.get("name") != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        delete_opts = _delete_options(eviction, opts.dry_run)
        result = await self._evict(namespace, name, delete_opts)
        return result._replace(warnings=tuple(warnings)) if warnings else result

    async def _evict(self, namespace: str, name: str, original: Obj) -> Result:
        should_retry = _is_conflict if _resource_version_unset(original) else (lambda exc: False)

        async def delete_if_pdb_can_be_ignored() -> Tuple[Obj, bool]:
            pod = self._pod(namespace, name)
            if not can_ignore_pdb(pod):
                return pod, False
            options = original
            if _should_enforce_resource_version(pod) and _resource_version_unset(original):
                options = _with_resource_version(original, pod["metadata"]["resourceVersion"])
            await self._add_condition_and_delete(namespace, name, options)
            return pod, True

        pod, deleted = await _retry_on(should_retry, delete_if_pdb_can_be_ignored)
        if deleted:
            return SUCCESS
        pdbs = self._pdbs_of(pod)
        if len(pdbs) > 1:
            return Result(_status(500, "Failure", MULTIPLE_PDBS), 500, printable=False)
        pdb_name = ""
        precondition_judged = False
        if pdbs:
            pdb = pdbs[0]
            pdb_name = pdb["metadata"]["name"]
            spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
            if not is_ready(pod):
                desired = int(status.get("desiredHealthy") or 0)
                if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or (
                        int(status.get("currentHealthy") or 0) >= desired > 0):
                    # Unhealthy: spends no budget, but only the pod as judged may go.
                    precondition_judged = True
            if not precondition_judged:
                await self._spend_budget(namespace, name, pdb, bool(original.get("dryRun")))
        options = original
        if precondition_judged:
            options = _with_resource_version(original, pod["metadata"]["resourceVersion"])
        try:
            await self._add_condition_and_delete(namespace, name, options)
        except errors.StatusError as exc:
            if _is_conflict(exc) and precondition_judged and _resource_version_unset(original):
                raise _still_processing(pdb_name) from None
            raise
        return SUCCESS

    # -- reads -------------------------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> Obj:
        pod: Obj = orjson.loads(self.pods.current(namespace, name).data)
        return pod

    def _pdbs_of(self, pod: Obj) -> List[Obj]:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        cache = self.pdbs.cache
        out = []
        for cached in cache.iter_prefix(self.pdbs.resource.namespace_prefix(meta["namespace"])):
            pdb = orjson.loads(cached.data)
            if _selects(pdb, labels):
                out.append(pdb)
        return out

    # -- the budget --------------------------------------------------------------------------------

    async def _spend_budget(self, namespace: str, pod_name: str, pdb: Obj, dry: bool) -> None:
        """checkAndDecrement, retried on conflict against a fresh copy (retry.RetryOnConflict)."""
        name = pdb["metadata"]["name"]
        first = True

        async def attempt() -> None:
            nonlocal first
            current = pdb if first else orjson.loads(self.pdbs.current(namespace, name).data)
            first = False
            await self._check_and_decrement(namespace, pod_name, current, dry)

        await _retry_on(_is_conflict, attempt)

    async def _check_and_decrement(self, namespace: str, pod_name: str, pdb: Obj, dry: bool) -> None:
        meta = pdb["metadata"]
        name = meta["name"]
        status: Obj = dict(pdb.get("status") or {})
        allowed = int(status.get("disruptionsAllowed") or 0)
        if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
            raise _still_processing(name)
        if allowed < 0:
            raise errors.forbidden("policy", "poddisruptionbudget", name, "pdb disruptions allowed is negative")
        disrupted = dict(status.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_POD_SIZE:
            raise errors.forbidden("policy", "poddisruptionbudget", name,
                                   "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
        if allowed == 0:
            raise too_many_requests(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                    f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently", 0)
        status["disruptionsAllowed"] = allowed - 1
        now = now_rfc3339()
        if allowed == 1:
            update_disruption_allowed_condition(status, now)
        if dry:
            return
        # The disruption controller must not count this pod as healthy while its deletion is on its way.
        disrupted[pod_name] = now
        status["disruptedPods"] = disrupted
        body = dict(pdb, status=status)
        await self.pdbs.update(namespace, name, body, WriteOptions(), "status")  # resourceVersion: compare-and-swap

    # -- the pod -----------------------------------------------------------------------------------

    async def _add_condition_and_delete(self, namespace: str, name: str, options: Obj) -> None:
        """addConditionAndDeletePod: DisruptionTarget on the latest pod (preconditions checked on it), then delete."""
        if not options.get("dryRun"):
            written = await self._add_disruption_target(namespace, name, options)
            if not _resource_version_unset(options):
                options = _with_resource_version(options, written)  # our own write moved it
        await self.pods.delete(namespace, name, options)

    async def _add_disruption_target(self, namespace: str, name: str, options: Obj) -> str:
        pre = options.get("preconditions") or {}
        for _ in range(EVICTION_RETRY_STEPS):
            cur = self.pods.current(namespace, name)
            _check_pod_preconditions(cur, name, pre)
            pod = orjson.loads(cur.data)
            status = pod.setdefault("status", {})
            _update_pod_condition(status, {"type": "DisruptionTarget", "status": "True",
                                           "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"})
            try:
                result = await self.pods.update(namespace, name, pod, WriteOptions(), "status")
            except errors.StatusError as exc:
                if _is_conflict(exc):
                    await self.pods.cache.wait_until_fresh(cur.rv + 1, 1.0)  # GuaranteedUpdate: re-read, try again
                    continue
                raise
            return str(orjson.loads(result.data)["metadata"]["resourceVersion"])
        raise errors.conflict_modified("", "pods", name)


def _check_pod_preconditions(cur: CachedObject, name: str, pre: Obj) -> None:
    """getLatestPod's checks (its Conflict names the resource "Pod")."""
    uid, rv = pre.get("uid"), pre.get("resourceVersion")
    if uid and uid != cur.facts.uid:
        raise errors.StatusError(409, "Conflict", f'Operation cannot be fulfilled on Pod "{name}": the UID in the '
                                 f"precondition ({uid}) does not match the UID in record ({cur.facts.uid}). The object "
                                 "might have been deleted and then recreated", errors.details(name, "", "Pod"))
    if rv and rv != str(cur.rv):
        raise errors.StatusError(409, "Conflict", f'Operation cannot be fulfilled on Pod "{name}": the ResourceVersion '
                                 f"in the precondition ({rv}) does not match the ResourceVersion in record ({cur.rv}). "
                                 "The object might have been modified", errors.details(name, "", "Pod"))


def _update_pod_condition(status: Obj, condition: Obj) -> None:
    """podutil.UpdatePodCondition: lastTransitionTime moves only when the condition's status does."""
    now = now_rfc3339()
    conditions = [c for c in status.get("conditions") or () if isinstance(c, dict)]
    for c in conditions:
        if c.get("type") == condition["type"]:
            if c.get("status") != condition["status"]:
                c["lastTransitionTime"] = now
            c.update(condition)
            c["lastProbeTime"] = None
            status["conditions"] = conditions
            return
    conditions.append(dict(condition, lastProbeTime=None, lastTransitionTime=now))
    status["conditions"] = conditions
