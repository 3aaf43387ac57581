"""The ResourceQuota admission plugin: a create that would exceed a namespace's quota is refused.

As upstream's plugin/pkg/admission/resourcequota (its quota evaluator):
the quotas of the object's namespace that match it (it counts for one of
their status.hard resources, and their scopes select it) are checked
against what the object adds (apimachinery.quota.usage):

* cpu/memory quota'd: each container must state them, else 403 `failed
  quota: <name>: must specify limits.cpu for: app`;
* a quota whose status.used lacks a resource of its status.hard (the
  controller has not counted yet): 403 `status unknown for quota: ...`;
* used + requested above hard: 403 `exceeded quota: <name>, requested:
  pods=1, used: pods=2, limited: pods=2`;
* otherwise each matching quota's status.used is raised by the request,
  written with a compare-and-swap on the quota (a conflict re-reads and
  evaluates again), before the object is stored, so the next create sees
  it. The resource quota controller corrects what a failed create or a
  deletion leaves (controllers.resourcequota).

Pods are evaluated on create, services on create and update (type changes
count node ports and load balancers), everything else on create. Quotas
are read from the API server's own watch cache; a namespace without any
costs one empty index scan. dryRun checks without writing.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.quota import (
    dict_at,
    format_list,
    formats_of,
    guess_format,
    matches_scopes,
    parse_list,
    pod_constraints,
    pod_formats,
    pretty,
    quota_resources_for,
    usage,
)
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.registry.decoded import DecodedObjects
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.watchcache import CachedObject

__all__ = ["ResourceQuotaAdmission"]

# Conflicting quota writes re-evaluated before giving up (upstream's evaluator retries its batch too).
_RETRIES = 5
_STATUS_WRITE = WriteOptions(field_manager="resourcequota-admission")


class ResourceQuotaAdmission:
    def __init__(self, store: Any) -> None:
        #: The ResourceQuotas' ResourceStore (status writes) and its decoded cache.
        self.store = store
        self.quotas = DecodedObjects(store.cache)

    @staticmethod
    def evaluates_updates(resource: Resource) -> bool:
        """Services only: a type change counts node ports and load balancers (upstream's service evaluator)."""
        return not resource.group and resource.plural == "services"

    async def admit(self, resource: Resource, obj: Dict[str, Any], old: Optional[Dict[str, Any]],
                    dry_run: bool) -> None:
        """Check `obj` (created, or updated from `old`) against its namespace's quotas and charge them."""
        if not resource.namespaced:
            return
        if old is not None and (resource.group or resource.plural != "services"):
            return
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        if not self.store.cache.count_prefix(self.store.resource.namespace_prefix(namespace)):
            return
        for attempt in range(_RETRIES):
            charges = self._evaluate(resource, obj, old, namespace, str(meta.get("name") or ""))
            if not charges or dry_run:
                return
            try:
                for cur, quota, used, formats in charges:
                    await self._write_used(cur, quota, used, formats)
                return
            except errors.StatusError as exc:
                if exc.reason != "Conflict" or attempt == _RETRIES - 1:
                    raise
            # Another create charged the quota meanwhile: wait until the cache has its write, then again.
            await self.store._fresh(await self.store.storage.current_revision())
            await asyncio.sleep(0)

    def _evaluate(self, resource: Resource, obj: Dict[str, Any], old: Optional[Dict[str, Any]], namespace: str,
                  name: str) -> List[Tuple[CachedObject, Dict[str, Any], Dict[str, Fraction], Dict[str, str]]]:
        group, plural = resource.group, resource.plural
        matched: List[Tuple[CachedObject, Dict[str, Any], Dict[str, Fraction], List[str]]] = []
        for cur, quota in self.quotas.in_namespace(namespace):
            status = dict_at(quota, "status")
            hard_raw = dict_at(status, "hard")
            restricted = quota_resources_for(group, plural, hard_raw)
            if not restricted or not matches_scopes(quota, group, plural, obj):
                continue
            qname = str((quota.get("metadata") or {}).get("name") or "")
            if not group and plural == "pods":
                why = pod_constraints(restricted, obj)
                if why is not None:
                    raise errors.forbidden(group, plural, name, f"failed quota: {qname}: {why}")
            used_raw = dict_at(status, "used")
            missing = [r for r in restricted if r not in used_raw]
            if missing:
                raise errors.forbidden(group, plural, name, f"status unknown for quota: {qname}, resources: "
                                       + ", ".join(sorted(missing)))
            matched.append((cur, quota, parse_list(hard_raw), restricted))
        if not matched:
            return []
        delta = {k: v for k, v in usage(group, plural, obj).items() if v != 0}
        if old is not None:
            before = usage(group, plural, old)
            delta = {k: v - before.get(k, Fraction(0)) for k, v in delta.items()}
            delta = {k: v for k, v in delta.items() if v > 0}
        if not delta:
            return []
        # Each list prints in its own quantities' formats, as Go's; a sum keeps its first non-zero operand's.
        req_fmt = {**{k: guess_format(k) for k in delta}, **pod_formats(obj)}
        out = []
        for cur, quota, hard, _restricted in matched:
            status = quota["status"]
            used = parse_list(status.get("used"))
            used_fmt = formats_of(status.get("used"))
            hard_fmt = formats_of(status.get("hard"))
            requested = {k: v for k, v in delta.items() if k in hard}
            if not requested:
                continue
            new_used = dict(used)
            formats = dict(used_fmt)
            for k, v in requested.items():
                if not new_used.get(k):
                    formats[k] = req_fmt.get(k, guess_format(k))
                new_used[k] = new_used.get(k, Fraction(0)) + v
            exceeded = sorted(k for k in requested if new_used[k] > hard[k])
            if exceeded:
                qname = str((quota.get("metadata") or {}).get("name") or "")
                raise errors.forbidden(group, plural, name, (
                    f"exceeded quota: {qname}, requested: {pretty({k: requested[k] for k in exceeded}, req_fmt)}, "
                    f"used: {pretty({k: used.get(k, Fraction(0)) for k in exceeded}, used_fmt)}, "
                    f"limited: {pretty({k: hard[k] for k in exceeded}, hard_fmt)}"))
            out.append((cur, quota, new_used, formats))
        return out

    async def _write_used(self, cur: CachedObject, quota: Dict[str, Any], used: Dict[str, Fraction],
                          formats: Dict[str, str]) -> None:
        new = orjson.loads(cur.data)  # a copy of its own: the decoded one is shared with other readers
        meta = new["metadata"]
        new.setdefault("status", {})["used"] = format_list(used, formats)
        await self.store.update(str(meta.get("namespace") or ""), str(meta.get("name") or ""), new, _STATUS_WRITE,
                                "status")
