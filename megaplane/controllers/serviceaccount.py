"""The service-account controller: every active namespace has its `default` ServiceAccount.

As kube-controller-manager's serviceaccounts-controller: a namespace that
is not terminating gets a `default` ServiceAccount, created again if it is
deleted.
"""

from __future__ import annotations

from typing import Any, Hashable, Optional

from megaplane.client import AlreadyExistsError, Client, ForbiddenError, NotFoundError
from megaplane.client.informerfactory import SharedInformerFactory
from megaplane.controllers.base import QueueController
from megaplane.runtime import REAL_CLOCK, Clock

__all__ = ["ServiceAccountController"]

DEFAULT = "default"


class ServiceAccountController(QueueController):
    def __init__(self, client: Client, *, workers: int = 1, clock: Clock = REAL_CLOCK,
                 informers: Optional[SharedInformerFactory] = None) -> None:
        super().__init__("serviceaccount-controller", workers=workers, clock=clock, informers=informers)
        self.accounts = client.resource("serviceaccounts")
        self.ns_informer = self.shared_informer(client.resource("namespaces"))
        self.ns_informer.add_event_handler(self._namespace, lambda old, new: self._namespace(new), None)
        self.sa_informer = self.shared_informer(self.accounts, field_selector=f"metadata.name={DEFAULT}")
        self.sa_informer.add_event_handler(None, None, self._account_deleted)

    def _namespace(self, ns: Any) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, sa: Any) -> None:
        ns = sa["metadata"]["namespace"] if isinstance(sa, dict) else str(getattr(sa, "key", "")).partition("/")[0]
        if ns:
            self.queue.add(ns)

    async def sync(self, key: Hashable) -> None:
        name = str(key)
        ns = self.ns_informer.lister.get(None, name)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        if self.sa_informer.lister.get(name, DEFAULT) is not None:
            return
        try:
            await self.accounts.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT}},
                                       name)
        except (AlreadyExistsError, NotFoundError, ForbiddenError):
            pass  # there already, or the namespace went away / started terminating meanwhile
