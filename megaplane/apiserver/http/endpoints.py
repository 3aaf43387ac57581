"""Resource endpoints: the thin HTTP adapter over the registry (decode -> registry verb -> encode).

Each endpoint takes the routed `RequestInfo`, the `Request` and its query;
it decodes the body and the options (with upstream's errors for each),
calls the resource's `ResourceStore`, and frames the answer: the stored
bytes as they are, a server-side Table when the client asks for one
(kubectl does), list bodies joined from item bytes, watch event lines;
protobuf bodies, frames and errors when the client prefers protobuf and
the kind has a message (`encoding.negotiate`), else JSON or a 406.
Nothing here knows how objects are stored or what a kind's rules are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

import orjson
import yaml

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error
from megaplane.apimachinery.listoptions import list_options
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.scheme import check_kind
from megaplane.apiserver.fieldmanager import default_manager
from megaplane.apiserver.http.decode import MAX_DEPTH, content_type, decode_body, delete_options
from megaplane.apiserver.http.encoding import (
    PROTOBUF,
    PROTOBUF_STREAM,
    event_line,
    list_body,
    negotiate,
    not_acceptable,
    pb_body,
    pb_cached_body,
    pb_json_frame,
    pb_list_body,
    table_body,
    table_watch_line,
    wants_table,
)
from megaplane.apiserver.http.routing import RequestInfo
from megaplane.apiserver.http.transport import Request, Response, StreamResponse, watch_timeout
from megaplane.apiserver.http.watch import HTTPWatcher, WatchFanout
from megaplane.apiserver.http.yamljson import YAMLBodyError, yaml_to_json_value
from megaplane.apiserver.patch import PatchError, decode_patch
from megaplane.apiserver.registry.eventsv1 import events_v1_from_core
from megaplane.apiserver.registry.eviction import EVICTION
from megaplane.apiserver.registry.options import WriteOptions, write_options
from megaplane.apiserver.registry.registry import Registry
from megaplane.apiserver.registry.store import ListResult, Result, patch_status
from megaplane.apiserver.schema.protobuf_encode import encodable
from megaplane.apiserver.watchcache import CachedObject, WatchCache

__all__ = ["ResourceEndpoints", "WatchObserver", "MIN_REQUEST_TIMEOUT", "protobuf_status", "apply_options", "decode_apply", "with_manager",
           "request_write_options"]

JSON = b"application/json"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
# Watches without timeoutSeconds end after a random 30-60 minutes (kube-apiserver's --min-request-timeout).
MIN_REQUEST_TIMEOUT = 1800


class WatchObserver(Protocol):
    """Where watches report their start and end (the request metrics)."""

    def watchers_started(self, resource: Resource) -> None: ...

    def observe(self, verb: str, resource: Resource, subresource: str, scope: str, code: int, seconds: float,
                dry_run: str = "") -> None: ...


# The warning recorder's budget (endpoints/filters/warning.go): past 4096 runes in all, every text is cut to 256.
WARNINGS_TOTAL_RUNES = 4 * 1024
WARNING_ITEM_RUNES = 256
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _warning_headers(warnings: Tuple[str, ...]) -> List[Tuple[bytes, bytes]]:
    """`Warning: 299 - "text"` headers as upstream's recorder writes them: deduplicated, quoted, bounded.

    Texts are quoted as net.NewWarningHeader does (`"` and `\\` escaped) and a
    text with control characters is dropped, so nothing a client sent can
    break the header block; once the texts pass the total budget, each is
    truncated, so the header block stays small whatever fields were sent.
    """
    texts = [w for w in dict.fromkeys(warnings) if w and not _CONTROL.search(w)]
    if sum(len(w) for w in texts) > WARNINGS_TOTAL_RUNES:
        texts = [w[:WARNING_ITEM_RUNES] for w in texts]
    out = []
    for w in texts:
        quoted = w.replace("\\", "\\\\").replace('"', '\\"')
        out.append((b"Warning", b'299 - "' + quoted.encode("utf-8", "replace") + b'"'))
    return out


_WITH_MANAGER: Dict[Tuple[WriteOptions, str], WriteOptions] = {}


def with_manager(opts: WriteOptions, user_agent: str) -> WriteOptions:
    """managerOrUserAgent: the request's fieldManager, else the prefix of its User-Agent."""
    if opts.field_manager:
        return opts
    key = (opts, user_agent)
    try:
        found = _WITH_MANAGER.get(key)
    except TypeError:  # options holding something unhashable: made per request
        return dataclasses.replace(opts, field_manager=default_manager(user_agent))
    if found is None:
        # Writes without query parameters share their options (kubelets renewing Leases): so do their managers.
        if len(_WITH_MANAGER) > 4096:
            _WITH_MANAGER.clear()
        found = _WITH_MANAGER[key] = dataclasses.replace(opts, field_manager=default_manager(user_agent))
    return found


# The options of writes without query parameters by (requester, User-Agent): the object holding the user
# too, so the id stays its user's. Users and agents repeat (components, kubelets), and the dict lookups by
# value of write_options and with_manager hash the user (a dataclass) twice.
_PLAIN: Dict[Tuple[int, str], Tuple[Any, WriteOptions]] = {}


def request_write_options(q: Optional[Mapping[str, str]], options_kind: str, user: Any, user_agent: str) -> WriteOptions:
    """with_manager(write_options(q, options_kind, user), user_agent)."""
    if q:
        return with_manager(write_options(q, options_kind, user), user_agent)
    key = (id(user), user_agent)
    hit = _PLAIN.get(key)
    if hit is not None and hit[0] is user:
        return hit[1]
    opts = with_manager(write_options(q, options_kind, user), user_agent)  # no query: options_kind unused
    if len(_PLAIN) > 4096:
        _PLAIN.clear()
    _PLAIN[key] = (user, opts)
    return opts


def apply_options(q: Dict[str, str], user: Any = None) -> Tuple[WriteOptions, bool]:
    """PatchOptions of an apply: fieldManager is required (ValidatePatchOptions), force a bool."""
    opts = write_options(q, "PatchOptions", user)
    if not opts.field_manager:
        # kubectl defaults it to "kubectl"; controllers have to set it.
        raise errors.invalid("meta.k8s.io", "PatchOptions", "", [
            field_error("", "fieldManager", None, "is required for apply patch", "FieldValueRequired")])
    force = q.get("force", "")
    if force not in ("", "true", "false", "True", "False", "1", "0", "t", "f", "T", "F", "TRUE", "FALSE"):
        raise errors.bad_request(f'strconv.ParseBool: parsing "{force}": invalid syntax')
    return opts, force in ("true", "True", "1", "t", "T", "TRUE")


def decode_apply(body: bytes) -> Dict[str, Any]:
    """An apply patch body (YAML, or JSON which is YAML) as an object; 400 "error decoding YAML" otherwise."""
    try:
        config = yaml_to_json_value(bytes(body), MAX_DEPTH)
    except YAMLBodyError as exc:
        raise errors.bad_request(f"error decoding YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding YAML: yaml: {exc}") from None
    if not isinstance(config, dict):
        shown = "null" if config is None else type(config).__name__
        raise errors.bad_request(f"error decoding YAML: json: cannot unmarshal {shown} into Go value of type map[string]interface {{}}")
    return config


class ResourceEndpoints:
    """The verbs' HTTP endpoints over one registry."""

    def __init__(self, registry: Registry, observer: WatchObserver, *,
                 min_request_timeout: float = MIN_REQUEST_TIMEOUT) -> None:
        self.registry = registry
        self.observer = observer
        self.min_request_timeout = min_request_timeout
        # One fan-out per cache, made on first use (kinds nobody watches cost nothing per event).
        self.fanouts: Dict[bytes, WatchFanout] = {}

    def fanout(self, cache: WatchCache) -> WatchFanout:
        f = self.fanouts.get(cache.prefix)
        if f is None or f.cache is not cache:  # a custom resource's cache made anew (its CRD recreated)
            f = self.fanouts[cache.prefix] = WatchFanout(cache)
        return f

    def bookmark_all(self) -> None:
        for f in self.fanouts.values():
            f.bookmark_all()

    # -- framing -------------------------------------------------------------------------------

    def respond(self, req: Request, resource: Resource, result: Result) -> Response:
        accept = req.headers.get("accept", "")
        if result.printable and wants_table(accept):
            obj = orjson.loads(result.data)
            rv = (obj.get("metadata") or {}).get("resourceVersion", "0")
            resp = Response(result.status, table_body(resource, [obj], int(rv) if str(rv).isdigit() else 0))
        elif accept and negotiate(accept)[0] == "protobuf" and (body := pb_body(result.data)) is not None:
            resp = Response(result.status, body, PROTOBUF)
        else:
            resp = Response(result.status, result.data)
        if result.warnings:
            resp.headers = _warning_headers(result.warnings)
        return resp

    def respond_list(self, req: Request, r: Resource, result: ListResult) -> Response:
        accept = req.headers.get("accept", "")
        if wants_table(accept):
            objs = [orjson.loads(b) for b in result.items]
            return Response(200, table_body(r, objs, result.revision, result.continue_token, "Metadata"))
        if accept and negotiate(accept)[0] == "protobuf" and encodable(r.group_version, r.kind):
            objects = getattr(result, "objects", None)  # the cached entries, whose messages are memoised
            body = pb_list_body(r, result.items, objects, result.revision, result.continue_token, result.remaining)
            if body is not None:
                return Response(200, body, PROTOBUF)
        return Response(200, list_body(r, result.items, result.revision, result.continue_token, result.remaining))

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        result = await self.registry.store(r).get(info.namespace, info.name, q.get("resourceVersion", ""),
                                                  info.subresource)
        accept = req.headers.get("accept")
        if accept and not info.subresource and negotiate(accept)[0] == "protobuf" and not wants_table(accept):
            # The answer is the cached object's bytes: its memoised message serves every protobuf get of it.
            cached = self.registry.cache_for(r).get(r.key(info.namespace, info.name))
            if cached is not None and cached.data is result.data and encodable(r.group_version, r.kind):
                body = pb_cached_body(r, cached)
                if body is not None:
                    return Response(200, body, PROTOBUF)
        return self.respond(req, r, result)

    async def list(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        opts = list_options(q, r, watch=False)
        return self.respond_list(req, r, await self.registry.store(r).list(info.namespace, opts))

    def watch(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> StreamResponse:
        r = info.resource
        assert r is not None
        opts = list_options(q, r, watch=True)
        plan = self.registry.store(r).watch(info.namespace, info.name, opts)
        bookmarks = opts.allow_bookmarks
        seconds = watch_timeout(opts.timeout_seconds, self.min_request_timeout)  # Go's Duration: may be <= 0 (ends at once)
        accept = req.headers.get("accept", "")
        table = wants_table(accept)
        protobuf = not table and bool(accept) and negotiate(accept)[0] == "protobuf" and encodable(r.group_version,
                                                                                                   r.kind)
        render: Optional[Callable[[str, CachedObject], bytes]] = None
        # A custom resource seen through a version other than its storage one (or with defaults to apply).
        view: Any = r.extra.get("watch_view")
        if table or r.storage_of is not None or view is not None:

            def render(etype: str, obj: CachedObject) -> bytes:
                data = orjson.loads(obj.data)
                if r.storage_of is not None:
                    data = events_v1_from_core(data)
                if view is not None:
                    view(data)
                if table:
                    return table_watch_line(r, etype, data)
                if protobuf:
                    return pb_json_frame(etype, data)
                return event_line(etype, orjson.dumps(data))

        cache = plan.cache
        fanout = self.fanout(cache)
        observer = self.observer
        scope = "resource" if info.name else "namespace" if plan.filter.namespace else "cluster"

        def start(sink: Any) -> None:
            w = HTTPWatcher(fanout, sink, plan.filter, bookmarks=bookmarks, render=render, protobuf=protobuf)
            loop = asyncio.get_event_loop()
            timers = [loop.call_later(seconds, w.close)]
            if bookmarks and seconds > 2:
                # The cacher's last bookmark comes 2 s before the deadline, so a client can resume from it.
                def last_bookmark() -> None:
                    fanout.flush_now()
                    w.bookmark(cache.revision)

                timers.append(loop.call_later(seconds - 2, last_bookmark))

            def closed() -> None:
                for t in timers:
                    t.cancel()
                # Upstream counts a watch in the request metrics when it ends.
                observer.observe("watch", r, "", scope, 200, time.perf_counter() - req.started)

            w.on_close = closed
            sink.on_lost = w.close
            if plan.expired is not None:
                w.error(plan.expired.body())
                return
            if plan.initial is not None:
                w.send_initial(plan.initial)
                if bookmarks:
                    w.bookmark(plan.revision, initial_events_end=True)
            elif plan.replay:
                w.offer(plan.replay)
            fanout.add(w)
            observer.watchers_started(r)

        return StreamResponse(start, PROTOBUF_STREAM if protobuf else b"application/json", timeout=seconds)

    # -- writes --------------------------------------------------------------------------------

    async def create(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        creator = self.registry.creator(r, info.subresource)
        if creator is not None:  # a review or serviceaccounts/token: answered, never stored (registry.virtual)
            opts = write_options(q, "CreateOptions", req.user)
            body = decode_body(req, creator.body)
            return self.respond(req, r, await creator.create(req.user, info.namespace, info.name, body, opts))
        store = self.registry.store(r)
        opts = request_write_options(q, "CreateOptions", req.user, req.headers.get("user-agent", ""))
        if info.subresource == "eviction":
            eviction = decode_body(req, EVICTION)
            return self.respond(req, r, await self.registry.eviction.create(info.namespace, info.name, eviction, opts))
        obj = decode_body(req, r)
        if info.subresource == "binding":
            return self.respond(req, r, await store.bind(info.namespace, info.name, obj, opts))
        check_kind(obj, r)
        return self.respond(req, r, await store.create(info.namespace, obj, opts))

    async def update(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        # Which error a request with both a bad body and a bad dryRun gets follows upstream: the scale
        # handler decodes its Scale first, the others check their options first.
        agent = req.headers.get("user-agent", "")
        if info.subresource == "scale":
            obj = decode_body(req, r)
            opts = request_write_options(q, "UpdateOptions", req.user, agent)
        else:
            opts = request_write_options(q, "UpdateOptions", req.user, agent)
            obj = decode_body(req, r)
        result = await self.registry.store(r).update(info.namespace, info.name, obj, opts, info.subresource)
        return self.respond(req, r, result)

    async def patch(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        ctype = content_type(req)
        ptype = PATCH_TYPES.get(ctype)
        if ptype is None:
            # The PATCH route only consumes patch media types: its router refuses anything else.
            raise errors.StatusError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        if q.get("force") and ptype != "apply":
            raise errors.invalid(
                "meta.k8s.io", "PatchOptions", "",
                [field_error("", "force", None, "may not be specified for non-apply patch", "FieldValueForbidden")],
            )
        if ptype == "apply":
            aopts, force = apply_options(q, req.user)
            config = decode_apply(req.body)
            result = await self.registry.store(r).apply(info.namespace, info.name, config, aopts, force,
                                                        info.subresource)
            return self.respond(req, r, result)
        opts = request_write_options(q, "PatchOptions", req.user, req.headers.get("user-agent", ""))
        try:
            patch = decode_patch(req.body, ctype)
        except PatchError as exc:
            raise patch_status(exc) from None
        result = await self.registry.store(r).patch(info.namespace, info.name, ptype, patch, opts, info.subresource)
        return self.respond(req, r, result)

    async def delete(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        opts = delete_options(req, q)
        return self.respond(req, r, await self.registry.store(r).delete(info.namespace, info.name, opts))

    async def deletecollection(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        lopts = list_options(q, r, watch=False)
        opts = delete_options(req, q)
        result = await self.registry.store(r).delete_collection(info.namespace, lopts, opts)
        return self.respond_list(req, r, result)

    def verbs(self) -> Dict[str, Callable[[RequestInfo, Request, Dict[str, str]], Any]]:
        handlers: Dict[str, Callable[[RequestInfo, Request, Dict[str, str]], Any]] = {
            "get": self.get,
            "list": self.list,
            "watch": self.watch,
            "create": self.create,
            "update": self.update,
            "patch": self.patch,
            "delete": self.delete,
            "deletecollection": self.deletecollection,
        }
        return {verb: _negotiated(h) for verb, h in handlers.items()}


def _negotiated(
    handler: Callable[[RequestInfo, Request, Dict[str, str]], Any]
) -> Callable[[RequestInfo, Request, Dict[str, str]], Any]:
    """The handler behind upstream's output negotiation: 406 before anything runs when no format the resource
    has is acceptable, and its errors as protobuf Status when the client prefers protobuf (JSON clients go
    straight through)."""

    def run(info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        accept = req.headers.get("accept")
        if not accept:
            return handler(info, req, q)
        fmt, json_ok = negotiate(accept)
        if fmt == "json":
            return handler(info, req, q)
        r = info.resource
        protobuf = r is not None and encodable(r.group_version, r.kind)
        if fmt != "protobuf" or not (protobuf or json_ok):
            raise not_acceptable(protobuf)
        if not protobuf:  # a custom resource: JSON, as upstream (its only serializers are JSON and YAML)
            return handler(info, req, q)
        try:
            result = handler(info, req, q)
        except errors.StatusError as exc:
            return _pb_status(exc)
        if asyncio.iscoroutine(result):
            return _pb_errors(result)
        return result

    return run


def protobuf_status(req: Request, r: Optional[Resource], exc: errors.StatusError) -> Optional[Response]:
    """A Status error as protobuf when the client prefers it for this resource (None: send it as JSON)."""
    accept = req.headers.get("accept")
    if not accept or r is None or negotiate(accept)[0] != "protobuf" or wants_table(accept):
        return None
    if not encodable(r.group_version, r.kind):
        return None
    return _pb_status(exc)


def _pb_status(exc: errors.StatusError) -> Response:
    body = pb_body(exc.body())
    headers = [(k.encode(), v.encode()) for k, v in exc.headers.items()] if exc.headers else None
    if body is None:  # pragma: no cover - a Status always has a message
        return Response(exc.code, exc.body(), headers=headers)
    return Response(exc.code, body, PROTOBUF, headers)


async def _pb_errors(coro: Any) -> Any:
    try:
        return await coro
    except errors.StatusError as exc:
        return _pb_status(exc)
