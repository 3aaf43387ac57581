"""The ServiceAccount admission plugin: every pod runs as an existing ServiceAccount, with its token mounted.

As upstream's plugin/pkg/admission/serviceaccount, on pod creates (mirror
pods aside):

* spec.serviceAccountName defaults to `default` (spec.serviceAccount, its
  deprecated alias, follows as v1's conversion writes it);
* the ServiceAccount must exist, else 403 `error looking up service account
  <ns>/<name>: serviceaccount "<name>" not found`. The `default` account of
  a new namespace is made by the serviceaccount controller a moment after
  the namespace: as upstream (ten tries 100-200 ms apart) the plugin waits
  for it briefly (`wait_create`, before the synchronous admission chain);
* unless the pod or the account says automountServiceAccountToken false,
  a projected `kube-api-access-<random>` volume (a bound token, expiring in
  3607 s, the cluster CA from the `kube-root-ca.crt` ConfigMap and the
  namespace) is added and mounted read-only at
  /var/run/secrets/kubernetes.io/serviceaccount in every container and
  init container that mounts nothing there;
* the account's imagePullSecrets are copied to a pod that names none.

Accounts are looked up in the API server's own watch cache (a dict lookup).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Dict, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.meta import generate_name
from megaplane.apimachinery.quota import list_at
from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.watchcache import WatchCache

__all__ = ["ServiceAccountAdmission", "DEFAULT_API_TOKEN_MOUNT_PATH", "SERVICE_ACCOUNT_VOLUME_NAME"]

DEFAULT_SERVICE_ACCOUNT = "default"
DEFAULT_API_TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_VOLUME_NAME = "kube-api-access"
#: serviceaccount.WarnOnlyBoundTokenExpirationSeconds.
TOKEN_EXPIRATION_SECONDS = 3607
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# getServiceAccount: tries for the `default` account (other names are looked up once).
_DEFAULT_TRIES = 10


def _is_pods(resource: Resource) -> bool:
    return resource.group == "" and resource.plural == "pods"


def token_volume(name: str) -> Dict[str, Any]:
    """TokenVolumeSource as the v1 volume the plugin adds."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


class ServiceAccountAdmission:
    """A `MutatingPlugin` for pod creates (see the module docstring), with `wait_create` awaited before it."""

    def __init__(self, cache: WatchCache, mount_token: bool = True) -> None:
        self.cache = cache
        self.resource = cache.resource
        self.mount_token = mount_token

    def _account(self, namespace: str, name: str) -> Optional[bytes]:
        cur = self.cache.get(self.resource.key(namespace, name))
        return None if cur is None else cur.data

    @staticmethod
    def _applies(resource: Resource, obj: Dict[str, Any]) -> bool:
        if not _is_pods(resource) or not isinstance(obj.get("spec"), dict):
            return False
        annotations = (obj.get("metadata") or {}).get("annotations")
        return not (isinstance(annotations, dict) and MIRROR_POD_ANNOTATION in annotations)

    async def wait_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        """Give a new namespace's `default` account the moment the serviceaccount controller needs to make it."""
        if not self._applies(resource, obj):
            return
        name = obj["spec"].get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT
        if name != DEFAULT_SERVICE_ACCOUNT:
            return
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        if self._account(namespace, name) is not None:
            return
        interval = random.uniform(0.1, 0.2)
        for _ in range(_DEFAULT_TRIES - 1):
            await asyncio.sleep(interval)
            if self._account(namespace, name) is not None:
                return

    def admit_create(self, resource: Resource, obj: Dict[str, Any]) -> None:
        if not self._applies(resource, obj):
            return
        spec = obj["spec"]
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        name = spec.get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
        data = self._account(namespace, str(name))
        if data is None:
            raise errors.forbidden("", "pods", str(meta.get("name") or ""),
                                   f"error looking up service account {namespace}/{name}: "
                                   f'serviceaccount "{name}" not found')
        account: Optional[Dict[str, Any]] = None
        if self.mount_token and self._automount(spec, data):
            self._mount(spec)
        if not spec.get("imagePullSecrets") and b'"imagePullSecrets"' in data:
            account = orjson.loads(data)
            secrets = [{"name": s.get("name", "")} for s in account.get("imagePullSecrets") or ()
                       if isinstance(s, dict)]
            if secrets:
                spec["imagePullSecrets"] = secrets

    @staticmethod
    def _automount(spec: Dict[str, Any], account: bytes) -> bool:
        """shouldAutomount: the pod's setting, else the account's, else true."""
        pod = spec.get("automountServiceAccountToken")
        if pod is not None:
            return bool(pod)
        if b'"automountServiceAccountToken"' in account:
            value = orjson.loads(account).get("automountServiceAccountToken")
            if value is not None:
                return bool(value)
        return True

    @staticmethod
    def _mount(spec: Dict[str, Any]) -> None:
        volumes = list_at(spec, "volumes")
        volume_name = ""
        for v in volumes:
            if isinstance(v, dict) and str(v.get("name") or "").startswith(SERVICE_ACCOUNT_VOLUME_NAME + "-"):
                volume_name = v["name"]
                break
        has_volume = bool(volume_name)
        if not volume_name:
            volume_name = generate_name(SERVICE_ACCOUNT_VOLUME_NAME + "-")
        needs_volume = False
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or ():
                if not isinstance(c, dict):
                    continue
                mounts = list_at(c, "volumeMounts")
                if any(isinstance(m, dict) and m.get("mountPath") == DEFAULT_API_TOKEN_MOUNT_PATH for m in mounts):
                    continue
                c["volumeMounts"] = mounts + [{"name": volume_name, "readOnly": True,
                                               "mountPath": DEFAULT_API_TOKEN_MOUNT_PATH}]
                needs_volume = True
        if needs_volume and not has_volume:
            spec["volumes"] = volumes + [token_volume(volume_name)]
