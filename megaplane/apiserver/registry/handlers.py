"""The verbs: get, list, watch, create, update, patch, delete, deletecollection, and subresources.

Each handler takes the parsed `RequestInfo`, the `Request` and its query,
and returns a transport `Response` (or `StreamResponse` for watch); errors
are raised as `StatusError`. Reads are served from the kind's watch cache
(always current with the embedded store) except paginated continuations
and exact-revision lists, which read the store at the list's revision so a
paginated list is consistent at one resourceVersion.

Writes follow kube-apiserver's registry: decode, check kind / namespace /
name against the URL, validate metadata, default, apply the kind's
strategy (`megaplane.apiserver.registry.strategy`), then one compare-and-swap on the
backend. The stored bytes carry their resourceVersion: the embedded
backend tells the encoder which revision the write will get, so the object
is encoded once and the same bytes are stored, cached, watched and
returned.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.errors import field_error, too_large_resource_version
from megaplane.apimachinery.listoptions import list_options, parse_resource_version
from megaplane.apimachinery.meta import generate_name, new_uid
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.selectors import (
    matches_fields,
    matches_labels,
)
from megaplane.apiserver.http.decode import check_kind, content_type, decode_body, dry_run
from megaplane.apiserver.http.encoding import (
    continue_expired,
    core_from_events_v1,
    decode_continue,
    encode_continue,
    event_line,
    events_v1_from_core,
    list_body,
    table_body,
    table_watch_line,
    view_bytes,
    wants_table,
)
from megaplane.apiserver.http.routing import RequestInfo
from megaplane.apiserver.http.transport import Request, Response, StreamResponse
from megaplane.apiserver.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    decode_patch,
)
from megaplane.apiserver.registry import strategy
from megaplane.apiserver.registry.deletion import DeleteVerbs
from megaplane.apiserver.registry.subresources import SubresourceVerbs
from megaplane.apiserver.schema.validation import name_rule, validate_data, validate_metadata
from megaplane.apiserver.watchcache import CachedObject, CacheWatcher, TooOldError, WatchCache
from megaplane.store.errors import CompactedError, FutureRevisionError
from megaplane.store.kv import KeyValue, prefix_end

if TYPE_CHECKING:
    from megaplane.apiserver.server import APIServer

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


class ResourceHandlers(DeleteVerbs, SubresourceVerbs):
    """The verbs over one API server's caches and backend."""

    def __init__(self, server: "APIServer") -> None:
        self.server = server
        self.backend = server.backend
        self._last_write = 0  # revision of the last write a delete made (deletecollection waits for it once)

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
            return Response(200, self.scale_body(r, orjson.loads(obj.data)))
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
                return event_line(etype, orjson.dumps(data))

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
            if send_initial:
                prefix = r.namespace_prefix(ns)
                w.send_initial(list(cache.iter_prefix(prefix)), revision)
                if bookmarks:
                    w.bookmark(revision, initial_events_end=True)
            elif start_rev:
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
            # orjson hands back its 4 KiB working buffer as the bytes object: stored for the object's
            # lifetime that would triple the memory of a typical object, so keep an exact-size copy.
            return memoryview(orjson.dumps(obj)).tobytes()

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

    def create(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        if info.subresource == "binding":
            return self.bind(info, req, q)
        dry = dry_run(q.get("dryRun"), "CreateOptions")
        obj = decode_body(req, r)
        check_kind(obj, r)
        meta = _metadata(obj)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        return self._create_object(info, req, q, obj, dry)

    def _create_object(self, info: RequestInfo, req: Request, q: Dict[str, str], obj: Dict[str, Any], dry: bool) -> Any:
        r = info.resource
        assert r is not None
        meta = obj["metadata"]
        ns = self._ns(info)
        _namespace_matches(r, meta, ns)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        warnings = self._validate(r, obj, q)
        name = meta["name"]
        self._check_namespace(r, ns, name)
        self.server.defaults(r, obj)
        strategy.prepare_for_create(r, obj)
        self.server.fill_zero_values(r, obj)
        meta["uid"] = new_uid()
        stored = self._stored_form(r, obj)
        key = r.key(ns, name)
        cache = self.cache(r)
        if cache.get(key) is not None:
            raise errors.already_exists(r.group, r.plural, name)
        self.server.admit_create(r, obj)  # allocations (service IPs, node ports): given back on any failure
        try:
            if dry:
                self.server.release(r, obj)
                return self._respond(req, r, orjson.dumps(stored), 201)
            ok, kv = self.backend.create(key, self.encoder(stored, r, key), self.server.storage_lease(r))
        except BaseException:
            self.server.release(r, obj)
            raise
        if not ok:
            self.server.release(r, obj)
            raise errors.already_exists(r.group, r.plural, name)
        assert kv is not None
        resp = self._respond(req, r, kv[4], 201)
        if warnings:
            resp.headers = _warning_headers(warnings)
        return self._after(kv[2], resp)

    def update(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        if info.subresource == "scale":
            return self.update_scale(info, req, q)
        dry = dry_run(q.get("dryRun"), "UpdateOptions")
        obj = decode_body(req, r)
        check_kind(obj, r)
        meta = _metadata(obj)
        ns = self._ns(info)
        if meta.get("name") != info.name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({info.name})"
            )
        _namespace_matches(r, meta, ns)
        if info.subresource == "finalize":
            return self.finalize_namespace(info, req, q, obj)
        cur = self.cache(r).get(r.key(ns, info.name))
        if cur is None:
            if not info.subresource and r.allow_create_on_update:
                meta.pop("resourceVersion", None)  # AllowCreateOnUpdate: a PUT of a missing object creates it
                return self._create_object(info, req, q, obj, dry)
            raise errors.not_found(r.group, r.plural, info.name)
        warnings = self._validate(r, obj, q, "update")
        want = meta.get("resourceVersion", "")
        if not want and not r.allow_unconditional_update:
            raise errors.invalid(r.group, r.plural, info.name, [
                field_error("", "metadata.resourceVersion", None, "must be specified for an update", "FieldValueInvalid",
                            shown="0x0")])
        return self._write_update(info, req, q, obj, want, warnings, dry, cur=cur)

    def _write_update(
        self,
        info: RequestInfo,
        req: Request,
        q: Dict[str, str],
        obj: Dict[str, Any],
        want_rv: str,
        warnings: List[str],
        dry: bool,
        subresource: Optional[str] = None,
        cur: Optional[CachedObject] = None,
    ) -> Any:
        r = info.resource
        assert r is not None
        sub = info.subresource if subresource is None else subresource
        if cur is None:
            cur = self._current(info)
        uid = obj["metadata"].get("uid")
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
        obj = self._stored_form(r, obj) if sub != "status" else obj
        self.server.defaults(r, obj)
        strategy.prepare_for_update(r, obj, old, sub)
        self.server.fill_zero_values(r, obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(cur.rv)
        if obj == old:
            return self._respond(req, r, cur.data)  # no-op: nothing written, the revision stays
        old_meta = old["metadata"]
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers") and not old_meta.get(
            "deletionGracePeriodSeconds"
        ):
            # The last finalizer is gone from an object being deleted (not one in its grace period): delete it now.
            if dry:
                return self._respond(req, r, orjson.dumps(obj))
            ok, _, rev = self.backend.delete(cur.key, cur.rv)
            if not ok:
                raise errors.conflict_modified(r.group, r.plural, info.name)
            self.server.release(r, old)
            meta["resourceVersion"] = str(rev)
            return self._after(rev, self._respond(req, r, orjson.dumps(obj)))
        taken = self.server.admit_update(r, obj, old)
        try:
            if dry:
                self.server.release_update(r, taken)
                return self._respond(req, r, orjson.dumps(obj))
            kv = self.cas_update(r, cur, obj)
        except BaseException:
            self.server.release_update(r, taken)
            raise
        self.server.after_update(r, obj, old)
        resp = self._respond(req, r, kv[4])
        if warnings:
            resp.headers = _warning_headers(warnings)
        return self._after(kv[2], resp)

    def cas_update(self, r: Resource, cur: CachedObject, obj: Dict[str, Any]) -> KeyValue:
        """Store `obj` over `cur` if nothing wrote it meanwhile; 404 / 409 as upstream otherwise.

        Kinds stored with a TTL (Events) are re-leased, as the registry's update does."""
        ok, kv = self.backend.update(cur.key, cur.rv, self.encoder(obj, r, cur.key), self.server.storage_lease(r))
        if not ok:
            if kv is None:
                raise errors.not_found(r.group, r.plural, cur.facts.name)
            raise errors.conflict_modified(r.group, r.plural, cur.facts.name)
        assert kv is not None
        return kv

    def patch(self, info: RequestInfo, req: Request, q: Dict[str, str]) -> Any:
        r = info.resource
        assert r is not None
        ctype = content_type(req)
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
        dry = dry_run(q.get("dryRun"), "PatchOptions")
        try:
            patch = decode_patch(req.body, ctype)
        except PatchError as exc:
            raise _patch_status(exc) from None
        patch_meta = patch.get("metadata") if isinstance(patch, dict) else None
        patch_rv = patch_meta.get("resourceVersion", "") if isinstance(patch_meta, dict) else ""
        try:
            return self._patch_once(info, req, q, ptype, patch, patch_rv, dry)
        except errors.StatusError as exc:
            if exc.reason != "Conflict" or patch_rv:
                raise
        # The store moved past the cache (a write still waiting for its fsync): re-read once it caught up and
        # apply the patch again, as upstream's patcher retries a conflict it caused itself.
        return self._patch_when_fresh(info, req, q, ptype, patch, dry)

    async def _patch_when_fresh(
        self, info: RequestInfo, req: Request, q: Dict[str, str], ptype: str, patch: Any, dry: bool
    ) -> Any:
        for _ in range(5):
            await asyncio.sleep(0.01)
            try:
                result = self._patch_once(info, req, q, ptype, patch, "", dry)
            except errors.StatusError as exc:
                if exc.reason != "Conflict":
                    raise
                continue
            return await result if asyncio.iscoroutine(result) else result
        r = info.resource
        assert r is not None
        raise errors.conflict_modified(r.group, r.plural, info.name)

    def _patch_once(
        self, info: RequestInfo, req: Request, q: Dict[str, str], ptype: str, patch: Any, patch_rv: str, dry: bool
    ) -> Any:
        r = info.resource
        assert r is not None
        cur = self._current(info)
        doc = orjson.loads(view_bytes(r, cur.data))
        if info.subresource == "scale":
            doc = orjson.loads(self.scale_body(r, doc))
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
            return self.apply_scale(info, req, q, new, cur, dry)
        check_kind(new, r)
        meta = _metadata(new)
        if meta.get("name", info.name) != info.name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({info.name})"
            )
        meta["name"] = info.name
        warnings = self._validate(r, new, q, "patch")
        return self._write_update(info, req, q, new, patch_rv or str(cur.rv), warnings, dry, cur=cur)


def _metadata(obj: Dict[str, Any]) -> Dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    return meta


def _namespace_matches(r: Resource, meta: Dict[str, Any], ns: str) -> None:
    """EnsureObjectNamespaceMatchesRequestNamespace: the body's namespace is the URL's, or empty."""
    if r.namespaced:
        if meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)


def _warning_headers(warnings: List[str]) -> List[Tuple[bytes, bytes]]:
    return [(b"Warning", b'299 - "' + w.encode() + b'"') for w in warnings]
