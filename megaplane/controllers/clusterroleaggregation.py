"""The ClusterRole aggregation controller: an aggregated ClusterRole's rules are its selected roles' rules.

kube-controller-manager's clusterrole-aggregation-controller
(pkg/controller/clusterroleaggregation): for every ClusterRole with an
aggregationRule, the rules of every ClusterRole its clusterRoleSelectors
match (by labels, in name order, each rule once; itself excluded) replace
its rules whenever they differ. Any ClusterRole change re-checks every
aggregated role (there are few), after the informer has synced.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional

from megaplane.apimachinery.selectors import matches_labels, selector_from_dict
from megaplane.client import Client, ConflictError, NotFoundError
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.runtime import Statistics, cancel_tasks

__all__ = ["ClusterRoleAggregationController", "aggregated_rules"]

log = logging.getLogger("megaplane.controllers.clusterroleaggregation")

NAME = "clusterrole-aggregation-controller"
Obj = Dict[str, Any]


def aggregated_rules(role: Obj, roles: List[Obj]) -> List[Obj]:
    """The rules `role`'s aggregationRule selects from `roles`."""
    selectors = [selector_from_dict(s) for s in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ()
                 if isinstance(s, dict)]
    name = (role.get("metadata") or {}).get("name")
    out: List[Obj] = []
    for other in sorted(roles, key=lambda r: (r.get("metadata") or {}).get("name", "")):
        meta = other.get("metadata") or {}
        if meta.get("name") == name:
            continue
        labels = meta.get("labels") or {}
        if any(matches_labels(sel, labels) for sel in selectors):
            for rule in other.get("rules") or ():
                if rule not in out:
                    out.append(rule)
    return out


class ClusterRoleAggregationController:
    """A `megaplane.runtime.Component` (see the module docstring)."""

    def __init__(self, client: Client, *, informers: Optional[SharedInformerFactory] = None) -> None:
        self.client = client
        self.roles = client.resource("rbac.authorization.k8s.io/v1", "clusterroles")
        self.informers = informers if informers is not None else SharedInformerFactory()  # an empty one is falsy
        self._own_factory = informers is None
        self.informer = self.informers.informer(self.roles)
        self._wake = asyncio.Event()
        self._task: Optional["asyncio.Task[None]"] = None
        self.updates = 0

    @property
    def name(self) -> str:
        return NAME

    def _changed(self, *args: Any) -> None:
        self._wake.set()

    async def start(self) -> None:
        self.informer.add_event_handler(on_add=self._changed, on_update=self._changed, on_delete=self._changed)
        if self._own_factory:
            await self.informers.start()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None
        if self._own_factory:
            await self.informers.stop()

    def ready(self) -> bool:
        return self._task is not None and self.informer.has_synced()

    def statistics(self) -> Statistics:
        return {"updates": self.updates}

    async def _run(self) -> None:
        await self.informer.wait_for_sync()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._sync()
            except Exception:  # the next change tries again; a broken sync must not end the loop
                log.exception("%s: sync failed", NAME)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _sync(self) -> None:
        roles = list(self.informer.indexer.list())
        for role in roles:
            if not role.get("aggregationRule"):
                continue
            want = aggregated_rules(role, roles)
            if (role.get("rules") or []) == want:
                continue
            updated = dict(role, rules=want)
            try:
                await self.roles.update(updated)
                self.updates += 1
            except (ConflictError, NotFoundError):
                self._wake.set()  # the informer brings the newer version; compute again
