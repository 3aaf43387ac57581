"""POST serviceaccounts/{name}/token: the TokenRequest API (pkg/registry/core/serviceaccount/storage/token.go).

The body is an authentication.k8s.io/v1 TokenRequest: audiences (default:
--api-audiences), expirationSeconds (default 3600, at least 600, at most
2^32; capped by --service-account-max-token-expiration) and an optional
boundObjectRef to a Pod or Secret of the ServiceAccount's namespace or a
Node (a Pod's own ServiceAccount must be this one; a given uid must be the
object's). The answer is the request with status.token (a JWT signed by
`serviceaccount.TokenSigner`) and status.expirationTimestamp; nothing is
stored. A token bound to a Pod also names the Pod's Node, as upstream.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any, Dict, Optional, Sequence

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.resources import Resource, lookup
from megaplane.apimachinery.user import SERVICE_ACCOUNT_USER_PREFIX
from megaplane.apiserver.authn.serviceaccount import TokenSigner
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.registry import Registry
from megaplane.apiserver.registry.store import Result
from megaplane.apiserver.registry.virtual import check_review_kind, created

__all__ = ["TokenRequests", "TOKEN_REQUEST", "MIN_EXPIRATION_SECONDS", "DEFAULT_EXPIRATION_SECONDS"]

Obj = Dict[str, Any]
TOKEN_REQUEST = Resource("authentication.k8s.io", "v1", "tokenrequests", "tokenrequest", "TokenRequest", True, b"",
                         stored=False)
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
DEFAULT_EXPIRATION_SECONDS = 3600


def _core(plural: str) -> Resource:
    r = lookup("", plural)
    assert r is not None
    return r


def _rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenRequests:
    """The serviceaccounts/token subresource."""

    def __init__(self, registry: Registry, signer: TokenSigner, issuer: str, api_audiences: Sequence[str],
                 max_expiration: float = 0) -> None:
        self.body = TOKEN_REQUEST
        self.signer = signer
        self.issuer = issuer
        self.api_audiences = list(api_audiences)
        self.max_expiration = max_expiration
        self.accounts = registry.store(_core("serviceaccounts"))
        self.pods = registry.store(_core("pods"))
        self.secrets = registry.store(_core("secrets"))
        self.nodes = registry.store(_core("nodes"))

    async def create(self, user: Any, namespace: str, name: str, obj: Obj, opts: WriteOptions) -> Result:
        check_review_kind(obj, self.body)
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field TokenRequest.metadata of type "
                                     "v1.ObjectMeta")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                     "request")
        spec = obj.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field TokenRequest.spec of type "
                                     "v1.TokenRequestSpec")
        spec = dict(spec)
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_EXPIRATION_SECONDS
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field TokenRequestSpec.spec."
                                     "expirationSeconds of type int64")
        causes = []
        if seconds < MIN_EXPIRATION_SECONDS:
            causes.append(field_error("", "spec.expirationSeconds", seconds,
                                      "may not specify a duration less than 10 minutes"))
        elif seconds > MAX_EXPIRATION_SECONDS:
            causes.append(field_error("", "spec.expirationSeconds", seconds,
                                      "may not specify a duration larger than 2^32 seconds"))
        if causes:
            raise errors.invalid("authentication.k8s.io", "TokenRequest", name, causes)
        audiences = spec.get("audiences")
        if not audiences:
            audiences = list(self.api_audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field TokenRequestSpec.spec.audiences "
                                     "of type string")
        account = self.accounts.current(namespace, name).facts
        private: Obj = {"namespace": namespace, "serviceaccount": {"name": name, "uid": account.uid}}
        ref = spec.get("boundObjectRef")
        if ref is not None:
            self._bind(namespace, name, ref, private)
        if self.max_expiration and seconds > self.max_expiration:
            seconds = int(self.max_expiration)
        now = int(time.time())
        claims = {
            "aud": audiences,
            "exp": now + seconds,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}",
        }
        spec["audiences"], spec["expirationSeconds"] = audiences, seconds
        out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
               "metadata": dict(meta, name=meta.get("name") or name, namespace=namespace,
                                creationTimestamp=meta.get("creationTimestamp")),
               "spec": spec,
               "status": {"token": self.signer.sign(claims), "expirationTimestamp": _rfc3339(now + seconds)}}
        return created(out)

    def _bind(self, namespace: str, name: str, ref: Any, private: Obj) -> None:
        if not isinstance(ref, dict):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field TokenRequestSpec.spec."
                                     "boundObjectRef of type v1.BoundObjectReference")
        kind, api_version, ref_name = ref.get("kind") or "", ref.get("apiVersion") or "", ref.get("name") or ""
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        if group != "" or kind not in ("Pod", "Secret", "Node"):
            gvk = f"{api_version or '/'}, Kind={kind}" if "/" in api_version else f"/{api_version}, Kind={kind}"
            raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to object of type {gvk}')
        store = {"Pod": self.pods, "Secret": self.secrets, "Node": self.nodes}[kind]
        cached = store.current("" if kind == "Node" else namespace, ref_name)
        uid = cached.facts.uid
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.StatusError(409, "Conflict", f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID '
                                     f'in the bound object reference ({ref["uid"]}) does not match the UID in record. '
                                     "The object might have been deleted and then recreated",
                                     errors.details(ref_name, "", kind))
        if kind != "Pod":  # ServiceAccountTokenNodeBinding (beta, on in 1.32): a token bound to a Node
            private[kind.lower()] = {"name": ref_name, "uid": uid}
            return
        import orjson

        pod = orjson.loads(cached.data)
        pod_spec = pod.get("spec") or {}
        if (pod_spec.get("serviceAccountName") or "default") != name:
            raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to pod running with different '
                                     "serviceaccount name.")
        private["pod"] = {"name": ref_name, "uid": uid}
        node_name: Optional[str] = pod_spec.get("nodeName")
        if node_name:
            node = self.nodes.cache.get(self.nodes.resource.key("", node_name))
            if node is not None:
                private["node"] = {"name": node_name, "uid": node.facts.uid}
