"""The verbs: get, list, watch, create, update, patch, delete, deletecollection, and subresources.

Each handler takes the parsed `RequestInfo`, the `Request` and its query,
and returns a transport `Response` (or `StreamResponse` for watch); errors
are raised as `StatusError`. Reads are served from the kind's watch cache
(always current with the embedded store) except paginated continuations
and exact-revision lists, which read the store at the list's revision so a
paginated list is consistent at one resourceVersion.

Writes follow kube-apiserver's registry: decode, check kind / namespace /
name against the URL, validate metadata, default, apply the kind's
strategy (`megaplane.api.strategy`), then one compare-and-swap on the
backend. The stored bytes carry their resourceVersion: the embedded
backend tells the encoder which revision the write will get, so the object
is encoded once and the same bytes are stored, cached, watched and
returned.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import orjson

from ..store.errors import CompactedError, FutureRevisionError
from ..store.kv import prefix_end
from . import errors, protobuf, strategy
from .encoding import (
    continue_expired,
    core_from_events_v1,
    decode_continue,
    encode_continue,
    events_v1_from_core,
    list_body,
    table_body,
    table_watch_line,
    view_bytes,
    wants_table,
)
from .errors import field_error, too_large_resource_version
from .listoptions import list_options, parse_resource_version
from .objects import format_rfc3339, generate_name, new_uid, now_rfc3339, parse_rfc3339
from .patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    decode_patch,
    go_syntax_error,
)
from .resources import RESOURCES, Resource
from .routing import RequestInfo
from .selectors import (
    matches_fields,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
    selector_from_dict,
)
from .transport import Request, Response, StreamResponse
from .validation import name_rule, validate_data, validate_metadata
from .watchcache import CachedObject, CacheWatcher, TooOldError, WatchCache

if TYPE_CHECKING:
    from .server import APIServer

__all__ = ["ResourceHandlers"]

JSON = b"application/json"
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
# Watches without timeoutSeconds end after a random 30-60 minutes (kube-apiserver's --min-request-timeout).
MIN_REQUEST_TIMEOUT = 1800
# How long a read asking for a revision the store has not reached waits for it (the watch cache's wait).
FRESHNESS_WAIT = 3.0


def _patch_status(exc: PatchError) -> errors.StatusError:
    # NewGenericServerResponse (a JSON patch that does not apply) carries empty details; the others none.
    return errors.StatusError(exc.code, exc.reason, exc.message, {} if exc.detail is not None else None)


def _content_type(req: Request) -> str:
    return req.headers.get("content-type", "application/json").split(";")[0].strip().lower()


# What encoding/json names the type the version/kind sniffing decodes into, in its unmarshal errors.
_FIND_KIND = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
_GO_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}
_YAML_PROBLEMS = {"mapping values are not allowed here": "mapping values are not allowed in this context"}
REGISTERED_KINDS = frozenset((r.group_version, r.kind) for r in RESOURCES)


def _summary(body: bytes) -> str:
    """handlers.summarizeData(body, 30): how upstream shows a body it could not decode."""
    if not body:
        return "<empty>"
    if body[:1] == b"{":
        return body[:30].decode("utf-8", "replace") + (" ..." if len(body) > 30 else "")
    return body[:30].hex() + (" ..." if len(body) > 30 else "")


def _unrecognized(resource: Resource, why: str, body: bytes) -> errors.StatusError:
    return errors.bad_request(
        f"the object provided is unrecognized (must be of type {resource.kind}): {why} ({_summary(body)})"
    )


def _json_error(body: bytes) -> str:
    return "couldn't get version/kind; json parse error: " + (go_syntax_error(body) or "unexpected end of JSON input")


def _not_an_object(obj: Any) -> str:
    go_type = _GO_JSON_TYPES.get(type(obj), "value")
    return f"couldn't get version/kind; json parse error: json: cannot unmarshal {go_type} into Go value of type {_FIND_KIND}"


def decode_body(req: Request, resource: Resource) -> Dict[str, Any]:
    """The request body as an object; 400 with upstream's wording (and a summary of the body) otherwise."""
    ctype = _content_type(req)
    body = req.body
    if ctype in ("application/json", "", "*/*") or ctype.endswith("+json"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _unrecognized(resource, _json_error(body), body) from None
    elif ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        import yaml

        try:
            obj = yaml.safe_load(body)
        except yaml.MarkedYAMLError as exc:
            problem = _YAML_PROBLEMS.get(exc.problem or "", exc.problem or str(exc))
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 0
            raise _unrecognized(resource, f"yaml: line {line}: {problem}", body) from None
        except yaml.YAMLError as exc:
            raise _unrecognized(resource, f"yaml: {exc}", body) from None
    elif ctype == protobuf.CONTENT_TYPE:
        try:
            obj = protobuf.decode(body)
        except protobuf.UnknownKindError as exc:
            raise errors.StatusError(415, "UnsupportedMediaType", str(exc)) from None
        except protobuf.ProtobufError as exc:
            raise _unrecognized(resource, str(exc), body) from None
    else:
        raise errors.unsupported_media_type(ctype)
    if not isinstance(obj, dict):
        raise _unrecognized(resource, _not_an_object(obj), body)
    return obj


def check_kind(obj: Dict[str, Any], resource: Resource, kind: str = "", group_version: str = "") -> None:
    """apiVersion / kind in the body must be the URL's (when given); the decoder's errors otherwise."""
    kind = kind or resource.kind
    gv = group_version or resource.group_version
    body_gv = obj.get("apiVersion") or gv
    body_kind = obj.get("kind") or kind
    if body_kind == kind and body_gv != gv and resource.group and str(body_gv).rpartition("/")[0] == resource.group:
        # Another version of the same group: the scheme decodes it, then the handler refuses it.
        raise errors.bad_request(
            f"the API version in the data ({body_gv}) does not match the expected API version ({gv})"
        )
    if body_gv != gv or body_kind != kind:
        version = str(body_gv).rsplit("/", 1)[-1]
        if (body_gv, body_kind) in REGISTERED_KINDS:
            internal = (resource.group.split(".")[0] if resource.group not in ("", "events.k8s.io") else "core")
            why = f"converting ({version}.{body_kind}) to ({internal}.{kind}): unknown conversion"
        else:
            why = f'no kind "{body_kind}" is registered for version "{body_gv}" in scheme "pkg/api/legacyscheme/scheme.go:30"'
        raise errors.bad_request(f'{body_kind} in version "{version}" cannot be handled as a {kind}: {why}')
    obj["apiVersion"] = gv
    obj["kind"] = kind


def _dry_run(q: Dict[str, str]) -> bool:
    v = q.get("dryRun", "")
    if v and v != "All":
        raise errors.bad_request(f'unsupported dry run option "{v}"')
    return v == "All"


class ResourceHandlers:
    """The verbs over one API server's caches and backend."""

    def __init__(self, server: "APIServer") -> None:
        self.server = server
        self.backend = server.backend

    # -- helpers -------------------------------------------------------------------------

    def cache(self, resource: Resource) -> WatchCache:
        return self.server.cache_for(resource)

    def _ns(self, info: RequestInfo) -> str:
        return info.namespace if info.resource and info.resource.namespaced else ""

    def _current(self, info: RequestInfo) -> CachedObject:
        r = info.resource
        assert r is not None
        obj = self.cache(r).get(r.key(self._ns(info), info.name))
        if obj is None:
            raise errors.not_found(r.group, r.plural, info.name)
        return obj

    def _respond(self, req: Request, resource: Resource, data: bytes, status: int = 200) -> Response:
        if wants_table(req.headers.get("accept", "")):
            obj = orjson.loads(view_bytes(resource, data))
            rv = (obj.get("metadata") or {}).get("resourceVersion", "0")
            return Response(status, table_body(resource, [obj], int(rv) if str(rv).isdigit() else 0))
        return Response(status, view_bytes(resource, data))

    def _check_namespace(self, resource: Resource, namespace: str, name: str) -> None:
        self.server.namespaces.admit_content(resource, namespace, name)

    def _after(self, rev: int, response: Response) -> Any:
        """`response` now, or (an awaitable) once `rev` is on disk when its partition needs that."""
        if not self.backend.needs_durability(rev):
            return response

        async def later() -> Response:
            await self.backend.durable(rev)
            return response

        return later()

    # -- get / list ------------------------------------------------------------------------

    def get(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        want = parse_resource_version(q.get("resourceVersion", ""))
        if want > self.backend.revision():
            return self._when_fresh(want, lambda: self.get(info, req, {}))
        obj = self._current(info)
        if info.subresource == "scale":
            return Response(200, self._scale(r, orjson.loads(obj.data)))
        return self._respond(req, r, obj.data)

    def _when_fresh(self, revision: int, serve: Callable[[], Any]) -> Any:
        """Serve once the store has reached `revision` (the watch cache's 3 s wait), else 504 as upstream."""

        async def later() -> Any:
            deadline = time.monotonic() + FRESHNESS_WAIT
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if self.backend.revision() >= revision:
                    return serve()
            raise too_large_resource_version(revision, self.backend.revision())

        return later()

    def list(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        opts = list_options(q, r, watch=False)
        labels, fields, limit = opts.labels, opts.fields, opts.limit
        ns = self._ns(info)
        prefix = r.namespace_prefix(ns)
        rv, match, token = opts.resource_version, opts.match, opts.continue_token
        if token and rv:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        revision_wanted = parse_resource_version(rv)
        if token:
            start, revision = decode_continue(token, prefix)
            return self._list_from_store(req, r, prefix, start, revision, limit, labels, fields)
        # Exact, and (the older rule) a resourceVersion with a limit but no match: the list at exactly that revision.
        if match == "Exact" or (rv not in ("", "0") and limit and not match):
            if revision_wanted < self.backend.compact_revision():
                raise errors.expired(f"too old resource version: {revision_wanted} ({self.backend.compact_revision()})")
            return self._list_from_store(req, r, prefix, prefix, revision_wanted, limit, labels, fields)
        if revision_wanted > self.backend.revision():
            return self._when_fresh(revision_wanted, lambda: self.list(info, req, q))
        cache = self.cache(r)
        revision = cache.revision
        out: List[CachedObject] = []
        next_key = b""
        remaining = None
        for obj in cache.iter_prefix(prefix):
            if labels or fields:
                f = obj.facts
                if not matches_labels(labels, f.labels) or not matches_fields(fields, f.fields):
                    continue
            if limit and len(out) == limit:
                next_key = obj.key
                break
            out.append(obj)
        cont = ""
        if next_key:
            cont = encode_continue(next_key, prefix, revision)
            if not labels and not fields:
                remaining = cache.count_prefix(prefix) - len(out)
        return self._list_response(req, r, [o.data for o in out], revision, cont, remaining)

    def _list_from_store(
        self, req: Request, r: Resource, prefix: bytes, start: bytes, revision: int, limit: int, labels: Any, fields: Any
    ) -> Response:
        decode = self.cache(r).decode_facts
        end = prefix_end(prefix)
        items: List[bytes] = []
        next_key = b""
        cursor = start
        total = -1
        try:
            while True:
                page = self.backend.range(cursor, end, revision=revision, limit=max(limit, 500) if limit else 0)
                if total < 0:
                    total = page.count
                for kv in page.kvs:
                    if limit and len(items) == limit:
                        next_key = kv[0]
                        break
                    if labels or fields:
                        f = decode(kv[4])
                        if not matches_labels(labels, f.labels) or not matches_fields(fields, f.fields):
                            continue
                    items.append(kv[4])
                if next_key or not page.more:
                    break
                cursor = page.kvs[-1][0] + b"\x00"
        except CompactedError:
            raise continue_expired() from None
        except FutureRevisionError:
            raise too_large_resource_version(revision, self.backend.revision()) from None
        cont = encode_continue(next_key, prefix, revision) if next_key else ""
        remaining = total - len(items) if next_key and not labels and not fields else None
        return self._list_response(req, r, items, revision, cont, remaining)

    def _list_response(
        self, req: Request, r: Resource, items: List[bytes], revision: int, cont: str, remaining: Optional[int]
    ) -> Response:
        if wants_table(req.headers.get("accept", "")):
            include = "Metadata"
            objs = [orjson.loads(view_bytes(r, b)) for b in items]
            return Response(200, table_body(r, objs, revision, cont, include))
        if r.storage_of is not None:
            items = [view_bytes(r, b) for b in items]
        return Response(200, list_body(r, items, revision, cont, remaining))

    # -- watch --------------------------------------------------------------------------------

    def watch(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> StreamResponse:
        r = info.resource
        assert r is not None
        opts = list_options(q, r, watch=True)
        labels, fields = opts.labels, opts.fields
        ns = self._ns(info)
        name = info.name
        if fields:
            # metadata.name=X is what `kubectl delete --wait` and `get -w name` use: match it directly.
            names = [v for f, op, v in fields if f == "metadata.name" and op == "="]
            if names and not name:
                name = names[0]
        rv = opts.resource_version
        send_initial = bool(opts.send_initial_events)
        bookmarks = opts.allow_bookmarks
        start_rev = parse_resource_version(rv)
        seconds = float(opts.timeout_seconds) if opts.timeout_seconds else MIN_REQUEST_TIMEOUT * (1 + random.random())
        table = wants_table(req.headers.get("accept", ""))
        render = None
        if table or r.storage_of is not None:

            def render(etype: str, obj: CachedObject) -> bytes:
                data = orjson.loads(obj.data)
                if r.storage_of is not None:
                    data = events_v1_from_core(data)
                if table:
                    return table_watch_line(r, etype, data)
                return b'{"type":"' + etype.encode() + b'","object":' + orjson.dumps(data) + b"}\n"

        cache = self.cache(r)

        def start(sink: Any) -> None:
            w = CacheWatcher(
                cache, sink, namespace=ns, name=name, labels=labels, fields=fields, bookmarks=bookmarks, render=render
            )
            loop = asyncio.get_event_loop()
            timers = [loop.call_later(seconds, w.close)]
            if bookmarks and seconds > 2:
                # The cacher's last bookmark comes 2 s before the deadline, so a client can resume from it.
                def last_bookmark() -> None:
                    cache.flush_now()
                    w.bookmark(cache.revision)

                timers.append(loop.call_later(seconds - 2, last_bookmark))
            scope = "namespace" if ns else "cluster"
            if name and info.name:
                scope = "resource"

            def closed() -> None:
                for t in timers:
                    t.cancel()
                # Upstream counts a watch in the request metrics when it ends.
                self.server.metrics.observe("watch", r, "", scope, 200, time.perf_counter() - req.started)

            w.on_close = closed
            sink.on_lost = w.close
            revision = cache.revision
            if send_initial or rv in ("", "0"):
                prefix = r.namespace_prefix(ns)
                w.send_initial(list(cache.iter_prefix(prefix)), revision)
                if send_initial and bookmarks:
                    w.bookmark(revision, initial_events_end=True)
            else:
                try:
                    w.offer(cache.events_since(start_rev))
                except TooOldError as exc:
                    w.error(errors.expired(str(exc)).body())
                    return
            cache.add_watcher(w)
            self.server.metrics.watchers_started(r)

        return StreamResponse(start)

    # -- writes --------------------------------------------------------------------------------

    def encoder(self, obj: Dict[str, Any], r: Resource, key: bytes) -> Callable[[int], bytes]:
        """Encode `obj` with the revision its write will get; tell the cache its facts."""
        meta = obj["metadata"]
        cache = self.cache(r)

        def encode(revision: int) -> bytes:
            if revision:
                meta["resourceVersion"] = str(revision)
                if r.storage_of is None:
                    cache.expect(key, cache.decode_facts.from_dict(obj))
            else:
                meta.pop("resourceVersion", None)
            return orjson.dumps(obj)

        return encode

    def _stored_form(self, r: Resource, obj: Dict[str, Any]) -> Dict[str, Any]:
        if r.storage_of is not None:
            return core_from_events_v1(obj)
        return obj

    def _validate(self, r: Resource, obj: Dict[str, Any], q: Dict[str, str], verb: str = "create") -> List[str]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        causes = validate_metadata(meta, name_rule(r.plural, r.group), r.namespaced)
        causes += validate_data(r.group, r.plural, obj)
        if causes:
            raise errors.invalid(r.group, r.kind, meta.get("name") or meta.get("generateName") or "", causes)
        return self.server.field_validation(r, obj, q.get("fieldValidation", ""), verb)

    def create(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        if info.subresource == "binding":
            return self.bind(info, req, q)
        if info.subresource:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        obj = decode_body(req, r)
        check_kind(obj, r)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        return self._create_object(info, req, q, obj)

    def _create_object(self, info: RequestInfo, req: Request, q: Dict[str, str], obj: Dict[str, Any]) -> Response:
        r = info.resource
        assert r is not None
        meta = obj["metadata"]
        ns = self._ns(info)
        if r.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        warnings = self._validate(r, obj, q)
        name = meta["name"]
        self._check_namespace(r, ns, name)
        self.server.defaults(r, obj)
        strategy.prepare_for_create(r, obj)
        self.server.fill_zero_values(r, obj)
        meta["uid"] = new_uid()
        self.server.admit_create(r, obj)
        stored = self._stored_form(r, obj)
        key = r.key(ns, name)
        if _dry_run(q):
            if self.cache(r).get(key) is not None:
                raise errors.already_exists(r.group, r.plural, name)
            return self._respond(req, r, orjson.dumps(stored), 201)
        lease = self.server.storage_lease(r)
        ok, kv = self.backend.create(key, self.encoder(stored, r, key), lease)
        if not ok:
            self.server.release_create(r, obj)
            raise errors.already_exists(r.group, r.plural, name)
        assert kv is not None
        resp = self._respond(req, r, kv[4], 201)
        if warnings:
            resp.headers = _warning_headers(warnings)
        return self._after(kv[2], resp)

    def update(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        if info.subresource == "scale":
            return self._update_scale(info, req, q)
        obj = decode_body(req, r)
        check_kind(obj, r)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        ns = self._ns(info)
        if meta.get("name") != info.name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({info.name})"
            )
        if r.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        if info.subresource == "finalize" and r.plural == "namespaces":
            return self._finalize_namespace(info, req, obj)
        if not info.subresource and r.allow_create_on_update and self.cache(r).get(r.key(ns, info.name)) is None:
            meta.pop("resourceVersion", None)  # AllowCreateOnUpdate: a PUT of a missing object creates it
            return self._create_object(info, req, q, obj)
        warnings = self._validate(r, obj, q, "update")
        want = meta.get("resourceVersion", "")
        if not want and not r.allow_unconditional_update:
            raise errors.invalid(r.group, r.plural, info.name, [
                field_error("", "metadata.resourceVersion", None, "must be specified for an update", "FieldValueInvalid",
                            shown="0x0")])
        return self._write_update(info, req, q, obj, want, warnings)

    def _write_update(
        self,
        info: RequestInfo,
        req: Request,
        q: Dict[str, str],
        obj: Dict[str, Any],
        want_rv: str,
        warnings: List[str],
    ) -> Response:
        r = info.resource
        assert r is not None
        cur = self._current(info)
        uid = (obj.get("metadata") or {}).get("uid")
        if uid and uid != cur.facts.uid:  # a uid in the body is a precondition (rest.DefaultUpdatedObjectInfo)
            raise errors.conflict(
                r.group, r.plural, info.name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {cur.facts.uid}",
            )
        if want_rv and want_rv != str(cur.rv):
            if not want_rv.isdigit():
                raise errors.bad_request(f'invalid resource version "{want_rv}"')
            raise errors.conflict_modified(r.group, r.plural, info.name)
        old = orjson.loads(cur.data)
        obj = self._stored_form(r, obj) if info.subresource != "status" else obj
        self.server.defaults(r, obj)
        strategy.prepare_for_update(r, obj, old, info.subresource)
        self.server.fill_zero_values(r, obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(cur.rv)
        if obj == old:
            return self._respond(req, r, cur.data)  # no-op: nothing written, the revision stays
        self.server.admit_update(r, obj, old)
        if _dry_run(q):
            return self._respond(req, r, orjson.dumps(obj))
        old_meta = old.get("metadata") or {}
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone from an object being deleted: delete it now.
            ok, prev = self.backend.delete(cur.key, cur.rv)
            if not ok:
                raise errors.conflict_modified(r.group, r.plural, info.name)
            self.server.release_delete(r, old)
            rev = self.backend.revision()
            meta["resourceVersion"] = str(rev)
            return self._after(rev, self._respond(req, r, orjson.dumps(obj)))
        ok, kv = self.backend.update(cur.key, cur.rv, self.encoder(obj, r, cur.key))
        if not ok:
            if kv is None:
                raise errors.not_found(r.group, r.plural, info.name)
            raise errors.conflict_modified(r.group, r.plural, info.name)
        assert kv is not None
        resp = self._respond(req, r, kv[4])
        if warnings:
            resp.headers = _warning_headers(warnings)
        return self._after(kv[2], resp)

    def patch(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        ctype = _content_type(req)
        ptype = _PATCH_TYPES.get(ctype)
        if ptype is None:
            # The PATCH route only consumes patch media types: its router refuses anything else.
            raise errors.StatusError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        if q.get("force") and ptype != "apply":
            raise errors.invalid(
                "meta.k8s.io", "PatchOptions", "",
                [field_error("", "force", None, "may not be specified for non-apply patch", "FieldValueForbidden")],
            )
        if ptype == "apply":
            raise errors.StatusError(
                415,
                "UnsupportedMediaType",
                "server-side apply (application/apply-patch+yaml) is not implemented by megaplane yet",
            )

        try:
            patch = decode_patch(req.body, ctype)
        except PatchError as exc:
            raise _patch_status(exc) from None
        for _ in range(5):
            cur = self._current(info)
            doc = orjson.loads(view_bytes(r, cur.data))
            if info.subresource == "scale":
                doc = orjson.loads(self._scale(r, doc))
            try:
                if ptype == "json":
                    new = apply_json_patch(doc, patch)
                elif ptype == "merge":
                    new = apply_merge_patch(doc, patch)
                else:
                    new = apply_strategic_merge_patch(doc, patch, self.server.schema_for(r))
            except PatchError as exc:
                raise _patch_status(exc) from None
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            if info.subresource == "scale":
                return self._apply_scale(info, req, q, new, cur)
            check_kind(new, r)
            meta = new.setdefault("metadata", {})
            if meta.get("name", info.name) != info.name:
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({info.name})"
                )
            meta["name"] = info.name
            patch_rv = (patch.get("metadata") or {}).get("resourceVersion", "") if isinstance(patch, dict) else ""
            warnings = self._validate(r, new, q, "patch")
            try:
                return self._write_update(info, req, q, new, patch_rv or str(cur.rv), warnings)
            except errors.StatusError as exc:
                # A concurrent write moved the object: re-read and re-apply (upstream retries too).
                if exc.reason != "Conflict" or patch_rv:
                    raise
                continue
        raise errors.conflict_modified(r.group, r.plural, info.name)

    # -- delete ----------------------------------------------------------------------------------

    def _delete_options(self, req: Request, q: Dict[str, str]) -> Dict[str, Any]:
        opts: Dict[str, Any] = {}
        if req.body:
            try:
                opts = orjson.loads(req.body)
            except orjson.JSONDecodeError as exc:
                raise errors.bad_request(f"error decoding DeleteOptions: {exc}") from None
            if not isinstance(opts, dict):
                raise errors.bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "dryRun" in q:
            opts["dryRun"] = [q["dryRun"]]
        return opts

    def delete(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        opts = self._delete_options(req, q)
        cur = self._current(info)
        return self._delete_one(info, req, r, cur, opts)

    def _delete_one(
        self, info: Optional[RequestInfo], req: Request, r: Resource, cur: CachedObject, opts: Dict[str, Any]
    ) -> Response:
        """Delete as the generic registry store does (rest.BeforeDelete, then delete or mark).

        An object with finalizers, or a pod still on its node (graceful
        deletion), is only marked: deletionTimestamp (now + grace period)
        and deletionGracePeriodSeconds are set and the marked object is the
        answer. A later delete may only shorten the grace period. Otherwise
        the object goes, and the answer is the deleted object for kinds whose
        store returns it (pods, namespaces, ...) or a Success Status naming it.
        """
        name = cur.facts.name
        self._check_delete_preconditions(r, cur, opts)
        dry = "All" in (opts.get("dryRun") or [])
        obj = orjson.loads(cur.data)
        meta = obj["metadata"]
        if r.group == "" and r.plural == "namespaces":
            self.server.namespaces.admit_delete(name)
            if not meta.get("deletionTimestamp"):
                # The first delete starts termination; the namespace lifecycle removes the content.
                meta["deletionTimestamp"] = now_rfc3339()
                obj.setdefault("status", {})["phase"] = "Terminating"
                return self._write_deletion_mark(info, req, r, cur, obj, opts, dry)
            if (obj.get("spec") or {}).get("finalizers"):
                return self._deleted_answer(req, r, cur.data, opts, deleted=False)
        marked = self._mark_for_deletion(r, obj, opts)
        if marked is None:  # graceful deletion already pending with a period no shorter than this one
            return self._finished_delete(req, r, cur.data)
        if marked:
            return self._write_deletion_mark(info, req, r, cur, obj, opts, dry)
        if dry:
            return self._finished_delete(req, r, cur.data)
        ok, prev = self.backend.delete(cur.key, cur.rv)
        if not ok:
            if prev is None:
                raise errors.not_found(r.group, r.plural, name)
            raise errors.conflict_modified(r.group, r.plural, name)
        self.server.release_delete(r, obj)
        return self._after(self.backend.revision(), self._finished_delete(req, r, cur.data))

    def delete_object(self, req: Request, r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> Any:
        """DELETE of `cur` on behalf of a built-in controller."""
        return self._delete_one(None, req, r, cur, opts)

    def _check_delete_preconditions(self, r: Resource, cur: CachedObject, opts: Dict[str, Any]) -> None:
        pre = opts.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise errors.bad_request("preconditions must be an object")
        kind = f"{r.kind}.{r.group}" if r.group else r.kind  # BeforeDelete names the kind, not the resource
        if pre.get("uid") and pre["uid"] != cur.facts.uid:
            raise errors.StatusError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the UID in the precondition '
                f"({pre['uid']}) does not match the UID in record ({cur.facts.uid}). "
                "The object might have been deleted and then recreated",
                errors.details(cur.facts.name, r.group, r.kind),
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != str(cur.rv):
            raise errors.StatusError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {kind} "{cur.facts.name}": the ResourceVersion in the precondition '
                f"({pre['resourceVersion']}) does not match the ResourceVersion in record ({cur.rv}). "
                "The object might have been modified",
                errors.details(cur.facts.name, r.group, r.kind),
            )

    def _mark_for_deletion(self, r: Resource, obj: Dict[str, Any], opts: Dict[str, Any]) -> Optional[bool]:
        """Set the deletion marks on `obj`; True if it must be kept (marked), False to delete it now,
        None when a graceful deletion is already pending and this request changes nothing."""
        meta = obj["metadata"]
        finalizers = bool(meta.get("finalizers"))
        period = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp"):
            if not period:  # held by finalizers (or a grace period already at 0)
                return True if finalizers else False
            want = opts.get("gracePeriodSeconds")
            if want is None or int(want) >= period:
                return None  # only a shorter grace period may be asked for
            start = parse_rfc3339(meta["deletionTimestamp"])
            if start is not None:
                meta["deletionTimestamp"] = format_rfc3339(start - datetime.timedelta(seconds=period - int(want)))
            meta["deletionGracePeriodSeconds"] = int(want)
            return True if int(want) > 0 or finalizers else False
        grace = self.server.grace_period(r, obj, opts)
        if grace > 0:
            meta["deletionTimestamp"] = now_rfc3339(grace)
            meta["deletionGracePeriodSeconds"] = grace
            return True
        if finalizers:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            return True
        return False

    def _write_deletion_mark(
        self, info: Optional[RequestInfo], req: Request, r: Resource, cur: CachedObject, obj: Dict[str, Any],
        opts: Dict[str, Any], dry: bool,
    ) -> Response:
        if dry:
            return self._deleted_answer(req, r, orjson.dumps(obj), opts, deleted=False)
        ok, kv = self.backend.update(cur.key, cur.rv, self.encoder(obj, r, cur.key))
        if not ok:
            raise errors.conflict_modified(r.group, r.plural, cur.facts.name)
        assert kv is not None
        self.server.after_mark_deleted(r, obj)
        return self._after(kv[2], self._deleted_answer(req, r, kv[4], opts, deleted=False))

    def _deleted_answer(self, req: Request, r: Resource, data: bytes, opts: Dict[str, Any], deleted: bool) -> Response:
        """A kept (marked) object: 200, or 202 when the client asked for orphanDependents=false (delete.go)."""
        status = 202 if not deleted and opts.get("orphanDependents") is False else 200
        return self._respond(req, r, data, status)

    def _finished_delete(self, req: Request, r: Resource, data: bytes) -> Response:
        """finalizeDelete: the object itself for stores that return it, else a Success Status naming it."""
        if r.returns_deleted_object:
            return self._respond(req, r, data)
        facts = self.cache(r).decode_facts(data)
        details: Dict[str, Any] = {"name": facts.name}
        if r.group:
            details["group"] = r.group
        details["kind"] = r.plural  # upstream puts the resource in Kind here
        details["uid"] = facts.uid
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return Response(200, orjson.dumps(body))

    def deletecollection(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""), r)
        opts = self._delete_options(req, q)
        cache = self.cache(r)
        victims = [
            o
            for o in cache.iter_prefix(r.namespace_prefix(self._ns(info)))
            if matches_labels(labels, o.facts.labels) and matches_fields(fields, o.facts.fields)
        ]
        items = []
        for cur in victims:
            try:
                resp = self._delete_one(None, req, r, cur, opts)
                if not isinstance(resp, Response):
                    resp.close()  # an awaitable for durability; the final _after covers every write
            except errors.StatusError as exc:
                if exc.reason != "NotFound":
                    raise
                continue
            items.append(cur.data)  # upstream answers with the list as it was before the deletes
        rev = self.backend.revision()
        return self._after(rev, self._list_response(req, r, items, rev, "", None))

    # -- subresources ------------------------------------------------------------------------------

    def bind(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        """POST pods/{name}/binding: assign the pod to a node (the scheduler's write)."""
        r = info.resource
        assert r is not None
        body = decode_body(req, r)
        target = body.get("target") or {}
        node = target.get("name", "")
        if not node:
            raise errors.invalid(
                "", "Binding", info.name, [field_error("", "target.name", "", "name is required", "FieldValueRequired")]
            )
        cur = self._current(info)
        obj = orjson.loads(cur.data)
        spec = obj.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict(
                "", "pods/binding", info.name, f"pod {info.name} is already assigned to node \"{spec['nodeName']}\""
            )
        if obj["metadata"].get("deletionTimestamp"):
            raise errors.conflict(
                "", "pods/binding", info.name, f"pod {info.name} is being deleted, cannot be assigned to a host"
            )
        spec["nodeName"] = node
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        )
        status["conditions"] = conditions
        if _dry_run(q):
            return Response(201, _success(201))
        ok, kv = self.backend.update(cur.key, cur.rv, self.encoder(obj, r, cur.key))
        if not ok:
            raise errors.conflict_modified("", "pods", info.name)
        assert kv is not None
        return self._after(kv[2], Response(201, _success(201)))

    def _scale(self, r: Resource, obj: Dict[str, Any]) -> bytes:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        selector = spec.get("selector") or {}
        reqs = selector_from_dict(selector) or ()
        sel = ",".join(
            f"{k}={next(iter(v))}" if op == "=" else f"{k} {op} ({','.join(sorted(v))})" for k, op, v in reqs
        )
        return orjson.dumps(
            {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                    "creationTimestamp": meta.get("creationTimestamp"),
                },
                "spec": {"replicas": spec.get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0), "selector": sel},
            }
        )

    def _update_scale(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Response:
        r = info.resource
        assert r is not None
        scale = decode_body(req, r)
        check_kind(scale, r, "Scale", "autoscaling/v1")
        return self._apply_scale(info, req, q, scale, self._current(info))

    def _apply_scale(
        self, info: RequestInfo, req: Request, q: Dict[str, str], scale: Dict[str, Any], cur: CachedObject
    ) -> Response:
        r = info.resource
        assert r is not None
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "autoscaling", "Scale", info.name,
                [field_error("", "spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        want = (scale.get("metadata") or {}).get("resourceVersion", "")
        if want and want != str(cur.rv):
            raise errors.conflict_modified(r.group, r.plural, info.name)
        obj = orjson.loads(cur.data)
        obj.setdefault("spec", {})["replicas"] = replicas
        info.subresource = ""
        resp = self._write_update(info, req, q, obj, str(cur.rv), [])
        scale_of = lambda written: Response(200, self._scale(r, orjson.loads(written.body)))  # noqa: E731
        if isinstance(resp, Response):
            return scale_of(resp)

        async def later() -> Response:
            return scale_of(await resp)

        return later()

    def _finalize_namespace(self, info: RequestInfo, req: Request, obj: Dict[str, Any]) -> Response:
        """PUT namespaces/{name}/finalize: only spec.finalizers changes (the namespace controller's write)."""
        r = info.resource
        assert r is not None
        cur = self._current(info)
        old = orjson.loads(cur.data)
        finalizers = (obj.get("spec") or {}).get("finalizers") or []
        old.setdefault("spec", {})["finalizers"] = finalizers
        if old["metadata"].get("deletionTimestamp") and not finalizers and not old["metadata"].get("finalizers"):
            ok, _ = self.backend.delete(cur.key, cur.rv)
            if not ok:
                raise errors.conflict_modified("", "namespaces", info.name)
            return self._respond(req, r, cur.data)
        ok, kv = self.backend.update(cur.key, cur.rv, self.encoder(old, r, cur.key))
        if not ok:
            raise errors.conflict_modified("", "namespaces", info.name)
        assert kv is not None
        return self._after(kv[2], self._respond(req, r, kv[4]))


def _warning_headers(warnings: List[str]) -> List[Tuple[bytes, bytes]]:
    return [(b"Warning", b'299 - "' + w.encode() + b'"') for w in warnings]


def _success(code: int) -> bytes:
    return orjson.dumps(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    )
