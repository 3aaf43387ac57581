"""The resource quota controller: each ResourceQuota's status.hard and status.used kept current.

kube-controller-manager's resourcequota-controller (pkg/controller/resourcequota):
a quota is synced when it is created or its spec changes (status.hard
follows spec.hard), when an object it counts is deleted (or a pod ends,
or a service changes), and every --resource-quota-sync-period (5m) for all
quotas. A sync recounts the namespace from the shared informers' caches
with the evaluators admission uses (apimachinery.quota), so what
admission charged and a create that failed afterwards, or a deletion,
come right; status.used holds every resource of status.hard ("0" when
nothing counts). The status is written only when it changed.

Pods, services, configmaps, secrets and resourcequotas are watched (shared
informers). `count/<resource>.<group>` of other kinds is counted by a list
on each sync; their deletions are seen at the next resync (upstream
watches every quotable resource through discovery).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any, Dict, Hashable, List, Optional

from megaplane.apimachinery.quota import (
    counted_resource,
    format_list,
    guess_format,
    matches_scopes,
    parse_list,
    pod_formats,
    usage,
)
from megaplane.client import Client, ConflictError, NotFoundError, ResourceRef
from megaplane.client.cache import final_state
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.client.resources import BUILTIN
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["ResourceQuotaController", "NAME", "RESOURCE_QUOTA_SYNC_PERIOD"]

log = logging.getLogger("megaplane.controllers.resourcequota")

NAME = "resourcequota-controller"
#: --resource-quota-sync-period (5m).
RESOURCE_QUOTA_SYNC_PERIOD = 300.0
_WATCHED = ("pods", "services", "configmaps", "secrets")

Obj = Dict[str, Any]


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class ResourceQuotaController(QueueController):
    def __init__(self, client: Client, *, workers: int = 5, resync: float = RESOURCE_QUOTA_SYNC_PERIOD,
                 clock: Clock = REAL_CLOCK, informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__(NAME, workers=workers, clock=clock, informers=informers)
        self.client = client
        self.quotas = client.resource("resourcequotas")
        self.resync = resync
        self.quota_informer = self.shared_informer(self.quotas)
        self.quota_informer.add_event_handler(self._quota_added, self._quota_updated, self._quota_deleted)
        self.counted = {}
        for plural in _WATCHED:
            inf = self.shared_informer(client.resource(plural))
            inf.add_event_handler(None, self._counted_updater(plural), self._counted_deleter(plural))
            self.counted[plural] = inf
        self._resync_task: Optional[Any] = None

    # -- event handlers ----------------------------------------------------------------------------

    def _quota_added(self, quota: Obj) -> None:
        self.queue.add(_key(quota))

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        spec, status = new.get("spec") or {}, new.get("status") or {}
        if (old.get("spec") or {}) != spec or status.get("hard") != spec.get("hard") or "used" not in status:
            self.queue.add(_key(new))

    def _quota_deleted(self, quota: Any) -> None:
        self._namespace_changed("", "resourcequotas", (final_state(quota).get("metadata") or {}).get("namespace"))

    def _namespace_changed(self, group: str, plural: str, namespace: Any) -> None:
        """Replenishment: the quotas of `namespace` that count group/plural are recounted."""
        if not namespace:
            return
        for quota in self.quota_informer.lister.list(str(namespace)):
            hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
            if any(counted_resource(name) == (group, plural) for name in hard):
                self.queue.add(_key(quota))

    def _counted_updater(self, plural: str) -> Any:
        def updated(old: Obj, new: Obj) -> None:
            if plural == "pods":
                # A pod that ended or started terminating stops counting for compute resources.
                before, after = old.get("status") or {}, new.get("status") or {}
                if before.get("phase") == after.get("phase") and (
                        (old.get("metadata") or {}).get("deletionTimestamp")
                        == (new.get("metadata") or {}).get("deletionTimestamp")):
                    return
            elif plural != "services" or (old.get("spec") or {}).get("type") == (new.get("spec") or {}).get("type"):
                return
            self._namespace_changed("", plural, (new.get("metadata") or {}).get("namespace"))
        return updated

    def _counted_deleter(self, plural: str) -> Any:
        def deleted(obj: Any) -> None:
            self._namespace_changed("", plural, (final_state(obj).get("metadata") or {}).get("namespace"))
        return deleted

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        import asyncio

        await super().start()
        self._resync_task = asyncio.get_running_loop().create_task(self._resync_loop())

    async def stop(self) -> None:
        if self._resync_task is not None:
            self._resync_task.cancel()
            self._resync_task = None
        await super().stop()

    async def _resync_loop(self) -> None:
        while True:
            await self.clock.sleep(self.resync)
            for quota in self.quota_informer.lister.list():
                self.queue.add(_key(quota))

    # -- sync --------------------------------------------------------------------------------------------

    async def _objects(self, group: str, plural: str, namespace: str) -> List[Obj]:
        if not group and plural in self.counted:
            return list(self.counted[plural].lister.list(namespace))
        if not group and plural == "resourcequotas":
            return list(self.quota_informer.lister.list(namespace))
        ref = _ref(group, plural)
        if ref is None:
            return []
        try:
            return list((await self.client.resource(ref).list(namespace)).get("items") or [])
        except NotFoundError:
            return []

    async def sync(self, key: Hashable) -> None:
        namespace, _, name = str(key).partition("/")
        quota = self.quota_informer.lister.get(namespace, name)
        if quota is None:
            return
        spec = quota.get("spec") or {}
        hard_raw = dict(spec.get("hard") or {})
        hard = parse_list(hard_raw)
        used: Dict[str, Fraction] = {k: Fraction(0) for k in hard}
        formats: Dict[str, str] = {}
        by_kind: Dict[Any, List[str]] = {}
        for resource_name in hard:
            kind = counted_resource(resource_name)
            if kind is not None:
                by_kind.setdefault(kind, []).append(resource_name)
        for (group, plural), names in by_kind.items():
            for obj in await self._objects(group, plural, namespace):
                if not matches_scopes(quota, group, plural, obj):
                    continue
                counts = usage(group, plural, obj)
                if plural == "pods" and not group:
                    for k, fmt in pod_formats(obj).items():
                        formats.setdefault(k, fmt)
                for k in names:
                    v = counts.get(k)
                    if v:
                        used[k] += v
        shown = {**{k: guess_format(k) for k in hard}, **formats}
        status = {"hard": hard_raw, "used": format_list(used, shown)}
        old = quota.get("status") or {}
        if old.get("hard") == status["hard"] and old.get("used") == status["used"]:
            return
        new = {**quota, "status": status}
        try:
            await self.quotas.update_status(new, namespace)
        except NotFoundError:
            return
        except ConflictError:
            self.queue.add_rate_limited(key)  # admission charged it meanwhile: count again from its state


def _ref(group: str, plural: str) -> Optional[ResourceRef]:
    for ref in BUILTIN.values():
        if ref.group == group and ref.plural == plural and ref.namespaced:
            return ref
    return None
