"""The audit filter: one audit.k8s.io/v1 Event per request stage, at the level the policy gives the request.

It wraps the server's request handler (k8s.io/apiserver's WithAudit): the
request is answered first (authentication sets `req.user`), then the
policy decides its level from the user, verb and resource; level None
records nothing. Otherwise, stages not omitted are queued on the backend:
RequestReceived, ResponseStarted (watches, when the stream starts),
ResponseComplete (with responseStatus; for a watch when it ends) or Panic
(the handler raised something that is not a Status: 500). Metadata events
carry the request's identity, verb, URI, source IPs, user agent,
objectRef, responseStatus and timestamps; Request adds requestObject,
RequestResponse responseObject (JSON or protobuf bodies, decoded on the
writer thread). Every answer carries the event's auditID as the `Audit-Id` header
(a client's own Audit-ID is kept). The authorization.k8s.io/decision
annotation says allow, or forbid for an authorizer's 403.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery.errors import StatusError
from megaplane.apiserver.audit.backend import LogBackend
from megaplane.apiserver.audit.policy import Attributes, Decision, Policy, level_at_least
from megaplane.apiserver.http.routing import parse_path, parse_query
from megaplane.apiserver.http.transport import Request, Response, StreamResponse

__all__ = ["Auditor", "AuditMetrics"]

_NON_RESOURCE_VERBS = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}
_WRITE_VERBS = frozenset({"create", "update", "patch"})
_PROTOBUF_MAGIC = b"k8s\x00"


_second: List[Any] = [-1, ""]


def _timestamp(t: float) -> str:
    """metav1.MicroTime as JSON (RFC 3339, microseconds, UTC); the seconds' part formatted once per second."""
    sec, micros = divmod(int(t * 1_000_000), 1_000_000)
    if _second[0] != sec:
        _second[0] = sec
        _second[1] = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_second[1]}{micros:06d}Z"


class _Record:
    """What one request's events share."""

    __slots__ = ("audit_id", "received", "received_text", "req", "decision", "attrs", "base")

    def __init__(self, audit_id: str, received: float, req: Request) -> None:
        self.audit_id = audit_id
        self.received = received
        self.received_text = ""
        self.req = req
        self.decision: Optional[Decision] = None
        self.attrs: Optional[Attributes] = None
        self.base: Dict[str, Any] = {}


class Auditor:
    """Policy + backend; `wrap(handler)` is the audited handler."""

    def __init__(self, policy: Policy, backend: LogBackend) -> None:
        self.policy = policy
        self.backend = backend
        #: apiserver_audit_level_total by level.
        self.levels: Dict[str, int] = {}

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        self.backend.stop()

    def wrap(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        def audited(req: Request) -> Any:
            given = req.headers.get("audit-id")
            rec = _Record(given or str(uuid.uuid4()), time.time(), req)
            try:
                result = handler(req)
            except Exception as exc:
                self._finish(rec, exc)
                raise
            if hasattr(result, "__await__"):
                return self._awaited(rec, result)
            return self._finish(rec, result)

        return audited

    async def _awaited(self, rec: _Record, coro: Any) -> Any:
        try:
            result = await coro
        except Exception as exc:
            self._finish(rec, exc)
            raise
        return self._finish(rec, result)

    # -- the events ----------------------------------------------------------------------------------

    def _decide(self, rec: _Record) -> Decision:
        req = rec.req
        user = req.user
        name = getattr(user, "name", "") if user is not None else ""
        groups = tuple(getattr(user, "groups", ()) or ()) if user is not None else ()
        info = None
        if req.path.startswith(("/api/", "/apis/")):
            try:
                info = parse_path(req.method, req.path, parse_query(req.query))
            except Exception:  # an unknown resource answered 404: audited as the non-resource URL it is
                info = None
        if info is not None:
            rec.attrs = Attributes(name, groups, info.verb, req.path, True, info.namespace, info.group,
                                   info.plural, info.subresource, info.name)
        else:
            rec.attrs = Attributes(name, groups, _NON_RESOURCE_VERBS.get(req.method, req.method.lower()), req.path,
                                   False)
        decision = self.policy.decide(rec.attrs)
        rec.decision = decision
        self.levels[decision.level] = self.levels.get(decision.level, 0) + 1
        if decision.level != "None":
            rec.base = self._base(rec, info, user, name, groups)
        return decision

    def _base(self, rec: _Record, info: Any, user: Any, name: str, groups: Tuple[str, ...]) -> Dict[str, Any]:
        req = rec.req
        uri = req.path + ("?" + req.query if req.query else "")
        user_info: Dict[str, Any] = {"username": name}
        uid = getattr(user, "uid", "")
        if uid:
            user_info["uid"] = uid
        if groups:
            user_info["groups"] = list(groups)
        extra = getattr(user, "extra", None)
        if extra:
            user_info["extra"] = {k: list(v) for k, v in extra.items()}
        event: Dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": rec.decision.level if rec.decision else "",
            "auditID": rec.audit_id, "stage": "", "requestURI": uri, "verb": rec.attrs.verb if rec.attrs else "",
            "user": user_info, "sourceIPs": _source_ips(req),
        }
        agent = req.headers.get("user-agent")
        if agent:
            event["userAgent"] = agent
        if info is not None:
            ref: Dict[str, Any] = {"resource": info.plural}
            if info.namespace:
                ref["namespace"] = info.namespace
            if info.name:
                ref["name"] = info.name
            if info.group:
                ref["apiGroup"] = info.group
            ref["apiVersion"] = info.version
            if info.subresource:
                ref["subresource"] = info.subresource
            event["objectRef"] = ref
        return event

    def _emit(self, rec: _Record, stage: str, extra: Optional[Dict[str, Any]] = None) -> None:
        decision = rec.decision
        assert decision is not None
        if stage in decision.omit_stages:
            return
        event = dict(rec.base)
        event["stage"] = stage
        if not rec.received_text:
            rec.received_text = _timestamp(rec.received)
        event["requestReceivedTimestamp"] = rec.received_text
        # RequestReceived is stamped when it is received; the later stages when they happen.
        event["stageTimestamp"] = rec.received_text if stage == "RequestReceived" else _timestamp(time.time())
        if extra:
            event.update(extra)
        self.backend.process(event)

    def _finish(self, rec: _Record, result: Any) -> Any:
        decision = self._decide(rec)
        header = (b"Audit-Id", rec.audit_id.encode())
        if isinstance(result, Response):
            result.headers = (result.headers or []) + [header]
        elif isinstance(result, StatusError):
            result.headers = {**(result.headers or {}), "Audit-Id": rec.audit_id}
        if decision.level == "None":
            return result
        self._emit(rec, "RequestReceived")
        if isinstance(result, StreamResponse):
            self._emit(rec, "ResponseStarted", {"responseStatus": {"metadata": {}, "code": result.status}})
            return _audited_stream(result, lambda: self._emit(
                rec, "ResponseComplete", {"responseStatus": {"metadata": {}, "code": result.status}}))
        annotations = {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
        extra: Dict[str, Any] = {"annotations": annotations}
        body: Optional[bytes] = None
        if isinstance(result, BaseException):
            if not isinstance(result, StatusError):  # not a Status: the handler failed (upstream's Panic stage)
                extra["responseStatus"] = {"metadata": {}, "status": "Failure", "message": f"{result}",
                                           "reason": "InternalError", "code": 500}
                self._emit(rec, "Panic", extra)
                return result
            status = _status_of(result)
            extra["responseStatus"] = status
            if result.code == 403 and " cannot " in str(status.get("message", "")):
                annotations["authorization.k8s.io/decision"] = "forbid"
            if level_at_least(decision.level, "RequestResponse"):
                body = result.body()
        else:
            code: int = getattr(result, "status", 200)
            status = {"metadata": {}, "code": code}
            if code >= 400 and isinstance(result, Response) and result.body[:1] == b"{":
                status = _status_from_body(result.body, code)
            extra["responseStatus"] = status
            if level_at_least(decision.level, "RequestResponse") and isinstance(result, Response):
                body = result.body
        if level_at_least(decision.level, "Request") and rec.req.body and rec.attrs is not None and (
                rec.attrs.verb in _WRITE_VERBS or rec.attrs.verb == "delete" or not rec.attrs.resource_request):
            extra["requestObject"] = _LazyJSON(rec.req.body, decision.omit_managed_fields)
        if body is not None and (body[:1] == b"{" or body.startswith(_PROTOBUF_MAGIC)):
            extra["responseObject"] = _LazyJSON(body, decision.omit_managed_fields)
        self._emit(rec, "ResponseComplete", extra)
        return result


class _LazyJSON:
    """A body decoded when the writer thread encodes the event (not on the request's path)."""

    __slots__ = ("data", "omit_managed_fields")

    def __init__(self, data: bytes, omit_managed_fields: bool) -> None:
        self.data = data
        self.omit_managed_fields = omit_managed_fields

    def decode(self) -> Any:
        try:
            if self.data.startswith(_PROTOBUF_MAGIC):  # kubectl's typed writes and protobuf clients
                from megaplane.apiserver.schema import protobuf

                obj = protobuf.decode(self.data)
            else:
                obj = orjson.loads(self.data)
        except Exception:  # a body that does not decode is left out of the event, as upstream's failed conversion
            return None
        if self.omit_managed_fields and isinstance(obj, dict):
            _drop_managed_fields(obj)
        return obj


def _drop_managed_fields(obj: Dict[str, Any]) -> None:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    for item in obj.get("items") or () if isinstance(obj.get("items"), list) else ():
        if isinstance(item, dict) and isinstance(item.get("metadata"), dict):
            item["metadata"].pop("managedFields", None)


def encode_event(event: Dict[str, Any]) -> bytes:
    """The writer thread's encoder: lazy bodies decoded, then one JSON line's bytes."""
    for key in ("requestObject", "responseObject"):
        value = event.get(key)
        if isinstance(value, _LazyJSON):
            decoded = value.decode()
            if decoded is None:
                del event[key]
            else:
                event[key] = decoded
    return orjson.dumps(event)


def _status_of(exc: Any) -> Dict[str, Any]:
    status: Dict[str, Any] = {"metadata": {}, "status": "Failure", "message": getattr(exc, "message", str(exc)),
                              "reason": getattr(exc, "reason", ""), "code": exc.code}
    details = getattr(exc, "details", None)
    if details:
        status["details"] = details
    return status


def _status_from_body(body: bytes, code: int) -> Dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"metadata": {}, "code": code}
    if not isinstance(obj, dict) or obj.get("kind") != "Status":
        return {"metadata": {}, "code": code}
    return {"metadata": {}, **{k: obj[k] for k in ("status", "message", "reason", "details") if k in obj},
            "code": code}


def _source_ips(req: Request) -> List[str]:
    """X-Forwarded-For's addresses, X-Real-Ip, then the peer (utilnet.SourceIPs)."""
    out: List[str] = []
    forwarded = req.headers.get("x-forwarded-for")
    if forwarded:
        out += [p.strip() for p in forwarded.split(",") if p.strip()]
    real = req.headers.get("x-real-ip")
    if real and real.strip() not in out:
        out.append(real.strip())
    peer = req.peer
    host = peer[0] if isinstance(peer, (tuple, list)) and peer else (peer if isinstance(peer, str) else "")
    if host and host not in out:
        out.append(host)
    return out


def _audited_stream(resp: StreamResponse, done: Callable[[], None]) -> StreamResponse:
    """The watch's ResponseComplete when its stream ends (closed by the handler or lost by the client)."""
    start = resp.start
    fired = [False]

    def once() -> None:
        if not fired[0]:
            fired[0] = True
            done()

    def audited_start(sink: Any) -> None:
        start(_SinkProxy(sink, once))

    resp.start = audited_start
    return resp


class _SinkProxy:
    """A StreamSink that reports its end (close, or the connection lost) once."""

    def __init__(self, sink: Any, ended: Callable[[], None]) -> None:
        object.__setattr__(self, "_sink", sink)
        object.__setattr__(self, "_ended", ended)
        object.__setattr__(self, "_on_lost", None)
        sink.on_lost = self._lost

    def _lost(self) -> None:
        self._ended()
        if self._on_lost is not None:
            self._on_lost()

    def write(self, data: bytes) -> bool:
        return bool(self._sink.write(data))

    def write_chunk(self, chunk: bytes) -> bool:
        return bool(self._sink.write_chunk(chunk))

    def close(self) -> None:
        self._sink.close()
        self._ended()

    def __getattr__(self, name: str) -> Any:
        if name == "on_lost":
            return self._on_lost
        return getattr(self._sink, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "on_lost":
            object.__setattr__(self, "_on_lost", value)
        else:
            setattr(self._sink, name, value)


class AuditMetrics:
    """apiserver_audit_event_total, apiserver_audit_error_total{plugin}, apiserver_audit_level_total{level}."""

    def __init__(self, auditor: Auditor) -> None:
        self.auditor = auditor

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        backend = self.auditor.backend
        events = CounterMetricFamily("apiserver_audit_event_total",
                                     "Counter of audit events generated and sent to the audit backend.")
        events.add_metric([], backend.events)
        yield events
        errors = CounterMetricFamily("apiserver_audit_error_total",
                                     "Counter of audit events that failed to be audited properly. Plugin "
                                     "identifies the plugin affected by the error.", labels=["plugin"])
        errors.add_metric([backend.name], backend.errors)
        yield errors
        levels = CounterMetricFamily("apiserver_audit_level_total",
                                     "Counter of policy levels for audit events (1 per request).", labels=["level"])
        for level, n in sorted(self.auditor.levels.items()):
            levels.add_metric([level], n)
        yield levels
