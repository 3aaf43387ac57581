"""What kube-apiserver keeps in place itself: the system namespaces, the `kubernetes` Service, the system
PriorityClasses.

As kube-apiserver's system-namespaces controller and kubernetes-service
controller: `default`, `kube-system`, `kube-public` and `kube-node-lease`
exist, and `default/kubernetes` (Service, Endpoints, EndpointSlice) points
at this API server; and, as the scheduling/bootstrap-system-priority-classes
hook, the PriorityClasses `system-node-critical` (2000001000) and
`system-cluster-critical` (2000000000). Created at start, before the server
is ready, and put back every `interval` if someone deleted them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Tuple

from megaplane.apimachinery.priorityclasses import system_priority_class_objects
from megaplane.client import AlreadyExistsError, Client, NotFoundError, StatusError
from megaplane.runtime import REAL_CLOCK, Clock, Statistics

__all__ = ["SystemBootstrap", "SYSTEM_NAMESPACES"]

log = logging.getLogger("megaplane.controllers.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# kube-apiserver's kubernetes-service controller reconciles every 10 s.
RECONCILE_SECONDS = 10.0


class SystemBootstrap:
    def __init__(self, client: Client, advertise_address: str, port: int, *, clock: Clock = REAL_CLOCK,
                 interval: float = RECONCILE_SECONDS) -> None:
        self.client = client
        self.advertise_address = advertise_address
        self.port = port
        self.clock = clock
        self.interval = interval
        self._task: Optional["asyncio.Task[None]"] = None
        self.created = 0

    @property
    def name(self) -> str:
        return "system-bootstrap"

    def _objects(self) -> List[Tuple[str, str, Dict[str, Any]]]:
        ip, port = self.advertise_address, self.port
        labels = {"component": "apiserver", "provider": "kubernetes"}
        return [
            ("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": "kubernetes", "labels": labels},
                                "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
            ("v1", "endpoints", {"apiVersion": "v1", "kind": "Endpoints",
                                 "metadata": {"name": "kubernetes",
                                              "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                                 "subsets": [{"addresses": [{"ip": ip}],
                                              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
            ("discovery.k8s.io/v1", "endpointslices", {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv6" if ":" in ip else "IPv4",
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        ]

    async def reconcile(self) -> None:
        namespaces = self.client.resource("namespaces")
        for name in SYSTEM_NAMESPACES:
            await self._ensure(namespaces, name, None,
                               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for group_version, plural, obj in self._objects():
            await self._ensure(self.client.resource(group_version, plural), "kubernetes", "default", obj)
        priority_classes = self.client.resource("scheduling.k8s.io/v1", "priorityclasses")
        for pc in system_priority_class_objects():
            await self._ensure(priority_classes, pc["metadata"]["name"], None, pc)

    async def _ensure(self, rc: Any, name: str, namespace: Optional[str], obj: Dict[str, Any]) -> None:
        try:
            await rc.get(name, namespace)
            return
        except NotFoundError:
            pass
        try:
            await rc.create(obj, namespace)
            self.created += 1
        except AlreadyExistsError:
            pass

    async def start(self) -> None:
        await self.reconcile()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.reconcile()
            except StatusError as exc:
                log.warning("system bootstrap: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def ready(self) -> bool:
        return self._task is not None

    def statistics(self) -> Statistics:
        return {"created": float(self.created)}
