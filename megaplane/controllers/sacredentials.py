"""--use-service-account-credentials: each controller talks to the API server as its own ServiceAccount.

kube-controller-manager's SAControllerClientBuilder: for a controller, the
ServiceAccount `kube-system/<its upstream name>` is created if missing and a
token for it requested through the TokenRequest API
(`serviceaccounts/<name>/token`, as the manager's own identity, which
system:kube-controller-manager allows); the controller's writes carry that
token, so RBAC grants it only its `system:controller:<name>` role. Lists and
watches stay on the manager's own client (upstream's shared informers are
fed by it). The token is requested on the controller's first request and
again once 80 % of its lifetime has passed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Optional

import orjson

from megaplane.apimachinery.meta import parse_rfc3339
from megaplane.client import AlreadyExistsError, Client, lookup
from megaplane.client.kubeconfig import KubeConfig

__all__ = ["ServiceAccountTransport", "service_account_name", "TOKEN_SECONDS"]

NAMESPACE = "kube-system"
#: What is asked for (the server may cap it with --service-account-max-token-expiration).
TOKEN_SECONDS = 3600
_SERVICE_ACCOUNTS = lookup("serviceaccounts")

# megaplane controller -> upstream's ServiceAccount name (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
_UPSTREAM = {
    "serviceaccount-controller": "service-account-controller",
    "endpoints-controller": "endpoint-controller",
    "daemonset-controller": "daemon-set-controller",
    "garbage-collector-controller": "generic-garbage-collector",
    "node-lifecycle-controller": "node-controller",
    "pod-garbage-collector-controller": "pod-garbage-collector",
}


def service_account_name(controller: str) -> str:
    return _UPSTREAM.get(controller, controller)


class ServiceAccountTransport:
    """A Transport writing as `controller`'s ServiceAccount, listing and watching through `root`."""

    def __init__(self, root: Client, config: KubeConfig, controller: str, **http_options: Any) -> None:
        self.root = root
        self.config = config
        self.name = service_account_name(controller)
        self.http_options = http_options
        self._own: Optional[Any] = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def _transport(self) -> Any:
        if self._own is not None and time.time() < self._refresh_at:
            return self._own
        async with self._lock:
            if self._own is None or time.time() >= self._refresh_at:
                await self._renew()
        return self._own

    async def _renew(self) -> None:
        from megaplane.client.http import HTTPTransport

        root = self.root.transport
        try:
            await root.create(_SERVICE_ACCOUNTS, NAMESPACE, orjson.dumps(
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.name,
                                                                            "namespace": NAMESPACE}}))
        except AlreadyExistsError:
            pass
        answer = orjson.loads(await root.create(_SERVICE_ACCOUNTS, NAMESPACE, orjson.dumps({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": TOKEN_SECONDS}}), subresource="token", name=self.name))
        status = answer.get("status") or {}
        expires = parse_rfc3339(status.get("expirationTimestamp") or "")
        now = time.time()
        lifetime = (expires.timestamp() - now) if expires is not None else TOKEN_SECONDS
        config = dataclasses.replace(self.config, token=status["token"], client_cert_data=None,
                                     client_key_data=None, username="", password="")
        old, self._own = self._own, HTTPTransport.from_config(config, **self.http_options)
        self._refresh_at = now + 0.8 * lifetime
        if old is not None:
            await old.close()

    # -- the Transport -------------------------------------------------------------------------------------

    async def get(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).get(*args, **kw)

    async def list(self, *args: Any, **kw: Any) -> Any:
        return await self.root.transport.list(*args, **kw)

    async def watch(self, *args: Any, **kw: Any) -> Any:
        return await self.root.transport.watch(*args, **kw)

    async def create(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).create(*args, **kw)

    async def update(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).update(*args, **kw)

    async def patch(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).patch(*args, **kw)

    async def delete(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).delete(*args, **kw)

    async def delete_collection(self, *args: Any, **kw: Any) -> Any:
        return await (await self._transport()).delete_collection(*args, **kw)

    async def close(self) -> None:
        if self._own is not None:
            await self._own.close()
            self._own = None
