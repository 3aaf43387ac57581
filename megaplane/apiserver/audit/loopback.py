"""Audit of the in-process components' requests: a Transport that audits each call of the loopback it wraps.

kube-apiserver audits its loopback clients and every controller's requests
as it does any other; inside `megaplane up` the scheduler, the controllers
and the fleet reach the registry over `apiserver.loopback` without HTTP, so
the same policy is applied here, per call: the identity is the transport's
user, the requestURI the path the call would have had over HTTP, the source
127.0.0.1, the user agent the component's. Stages RequestReceived and
ResponseComplete (watches: ResponseStarted when the watch is set up, and
ResponseComplete when it is closed); bodies at Request/RequestResponse as
for HTTP. Only built when audit is on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, cast
from urllib.parse import urlencode

from megaplane.apiserver.audit.filter import Auditor, _LazyJSON, _Record, _status_of
from megaplane.apiserver.audit.policy import Attributes, level_at_least

__all__ = ["AuditedTransport"]

_SOURCE = ["127.0.0.1"]


class _Call:
    """What `_Record` needs of a request, for a loopback call."""

    __slots__ = ("body",)

    def __init__(self, body: Optional[bytes]) -> None:
        self.body = body or b""


class AuditedTransport:
    def __init__(self, inner: Any, auditor: Auditor) -> None:
        self.inner = inner
        self.auditor = auditor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _record(self, verb: str, ref: Any, namespace: Optional[str], name: str, subresource: str,
                params: Optional[Mapping[str, str]], body: Optional[bytes]) -> Optional[_Record]:
        user = self.inner.user
        ns = namespace or "" if ref.namespaced else ""
        try:
            path = ref.path(ns or None, name, subresource)
        except ValueError:
            path = f"/{ref.group_version}/{ref.plural}"
        attrs = Attributes(user.name, user.groups, verb, path, True, ns, ref.group, ref.plural, subresource, name)
        decision = self.auditor.policy.decide(attrs)
        levels = self.auditor.levels
        levels[decision.level] = levels.get(decision.level, 0) + 1
        if decision.level == "None":
            return None
        rec = _Record(str(uuid.uuid4()), time.time(), cast(Any, _Call(body)))
        rec.decision, rec.attrs = decision, attrs
        query = urlencode(dict(params)) if params else ""
        user_info: Dict[str, Any] = {"username": user.name}
        if user.uid:
            user_info["uid"] = user.uid
        if user.groups:
            user_info["groups"] = list(user.groups)
        ref_info: Dict[str, Any] = {"resource": ref.plural}
        if ns:
            ref_info["namespace"] = ns
        if name:
            ref_info["name"] = name
        if ref.group:
            ref_info["apiGroup"] = ref.group
        ref_info["apiVersion"] = ref.version
        if subresource:
            ref_info["subresource"] = subresource
        rec.base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": decision.level,
                    "auditID": rec.audit_id, "stage": "", "requestURI": path + ("?" + query if query else ""),
                    "verb": verb, "user": user_info, "sourceIPs": _SOURCE,
                    "userAgent": getattr(self.inner, "agent", "") or "megaplane", "objectRef": ref_info}
        self.auditor._emit(rec, "RequestReceived")
        return rec

    async def _audited(self, verb: str, ref: Any, namespace: Optional[str], name: str, subresource: str,
                       params: Optional[Mapping[str, str]], body: Optional[bytes], call: Callable[[], Awaitable[Any]],
                       created: bool = False) -> Any:
        rec = self._record(verb, ref, namespace, name, subresource, params, body)
        if rec is None:
            return await call()
        assert rec.decision is not None
        extra: Dict[str, Any] = {"annotations": {"authorization.k8s.io/decision": "allow",
                                                 "authorization.k8s.io/reason": ""}}
        try:
            result = await call()
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code is None:
                extra["responseStatus"] = {"metadata": {}, "status": "Failure", "message": str(exc),
                                           "reason": "InternalError", "code": 500}
                self.auditor._emit(rec, "Panic", extra)
                raise
            extra["responseStatus"] = _status_of(exc)
            if code == 403 and " cannot " in str(getattr(exc, "message", "")):
                extra["annotations"]["authorization.k8s.io/decision"] = "forbid"
            if level_at_least(rec.decision.level, "Request") and body:
                extra["requestObject"] = _LazyJSON(body, rec.decision.omit_managed_fields)
            self.auditor._emit(rec, "ResponseComplete", extra)
            raise
        extra["responseStatus"] = {"metadata": {}, "code": 201 if created else 200}
        if level_at_least(rec.decision.level, "Request") and body:
            extra["requestObject"] = _LazyJSON(body, rec.decision.omit_managed_fields)
        if level_at_least(rec.decision.level, "RequestResponse") and isinstance(result, (bytes, bytearray)):
            extra["responseObject"] = _LazyJSON(bytes(result), rec.decision.omit_managed_fields)
        self.auditor._emit(rec, "ResponseComplete", extra)
        return result

    # -- the Transport verbs ---------------------------------------------------------------------------

    async def get(self, ref: Any, namespace: Optional[str], name: str, subresource: str = "",
                  params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited("get", ref, namespace, name, subresource, params, None,
                                   lambda: self.inner.get(ref, namespace, name, subresource, params))

    async def list(self, ref: Any, namespace: Optional[str], params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited("list", ref, namespace, "", "", params, None,
                                   lambda: self.inner.list(ref, namespace, params))

    async def create(self, ref: Any, namespace: Optional[str], body: bytes, subresource: str = "",
                     params: Optional[Mapping[str, str]] = None, name: str = "") -> Any:
        return await self._audited("create", ref, namespace, name, subresource, params, body,
                                   lambda: self.inner.create(ref, namespace, body, subresource, params, name),
                                   created=True)

    async def update(self, ref: Any, namespace: Optional[str], name: str, body: bytes, subresource: str = "",
                     params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited("update", ref, namespace, name, subresource, params, body,
                                   lambda: self.inner.update(ref, namespace, name, body, subresource, params))

    async def patch(self, ref: Any, namespace: Optional[str], name: str, content_type: str, body: bytes,
                    subresource: str = "", params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited(
            "patch", ref, namespace, name, subresource, params, body,
            lambda: self.inner.patch(ref, namespace, name, content_type, body, subresource, params))

    async def delete(self, ref: Any, namespace: Optional[str], name: str, body: Optional[bytes] = None,
                     params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited("delete", ref, namespace, name, "", params, body,
                                   lambda: self.inner.delete(ref, namespace, name, body, params))

    async def delete_collection(self, ref: Any, namespace: Optional[str], body: Optional[bytes] = None,
                                params: Optional[Mapping[str, str]] = None) -> Any:
        return await self._audited("deletecollection", ref, namespace, "", "", params, body,
                                   lambda: self.inner.delete_collection(ref, namespace, body, params))

    async def watch(self, ref: Any, namespace: Optional[str], params: Optional[Mapping[str, str]] = None) -> Any:
        rec = self._record("watch", ref, namespace, "", "", params, None)
        w = await self.inner.watch(ref, namespace, params)
        if rec is None:
            return w
        status = {"responseStatus": {"metadata": {}, "code": 200}}
        self.auditor._emit(rec, "ResponseStarted", status)
        return _AuditedWatch(w, lambda: self.auditor._emit(rec, "ResponseComplete", status))

    async def close(self) -> None:
        await self.inner.close()


class _AuditedWatch:
    """The loopback watch, reporting ResponseComplete once when it is closed."""

    def __init__(self, inner: Any, done: Callable[[], None]) -> None:
        self._inner = inner
        self._done: Optional[Callable[[], None]] = done

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __aiter__(self) -> "_AuditedWatch":
        return self

    async def __anext__(self) -> bytes:
        line: bytes = await self._inner.__anext__()
        return line

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            if self._done is not None:
                done, self._done = self._done, None
                done()
