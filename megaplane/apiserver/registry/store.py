"""One store per resource: the verbs on objects, callable without HTTP.

`ResourceStore` is the role of k8s.io/apiserver's registry/generic/registry
Store: objects (as decoded dicts) and options in, the object's stored bytes
(or a Status) out as a `Result`, errors raised as typed `StatusError`s.
Every path applies the same steps, in upstream's order: check kind /
namespace / name, validate metadata and data, default, apply the kind's
`Strategy`, admission (namespace lifecycle, allocations), then one
compare-and-swap on storage.

Reads are served from the kind's watch cache, which is current with the
writes this server made (it waits for a revision it has not seen rather
than answering stale); paginated continuations and exact-revision lists
read storage at the list's revision, so a paginated list is consistent at
one resourceVersion. The stored bytes carry their resourceVersion: the
encoder is told which revision the write gets, so the object is encoded
once and the same bytes are stored, cached, watched and returned.

Results are in the resource's own version (events.k8s.io Events are
stored as core Events and converted here); framing them for a protocol
(JSON, Table, watch lines) is the caller's business.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.continuetoken import continue_expired, decode_continue, encode_continue
from megaplane.apimachinery.errors import field_error, too_large_resource_version
from megaplane.apimachinery.listoptions import ListOptions, parse_resource_version
from megaplane.apimachinery.meta import generate_name, new_uid
from megaplane.apimachinery.resources import Resource
from megaplane.apimachinery.scheme import check_kind
from megaplane.apimachinery.selectors import matches_fields, matches_labels
from megaplane.apiserver.fieldmanager import FieldManager
from megaplane.apiserver.fieldmanager.managedfields import now_rfc3339  # formatted once a second
from megaplane.apiserver.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from megaplane.apiserver.registry import deletion, scale
from megaplane.apiserver.registry.admission import NamespaceAdmission
from megaplane.apiserver.registry.eventsv1 import core_from_events_v1, view_bytes
from megaplane.apiserver.registry.options import WriteOptions
from megaplane.apiserver.registry.strategy import Strategy
from megaplane.apiserver.schema.fieldvalidation import (
    FieldTypeError,
    FieldValidationError,
    InvalidDirectiveError,
    decode_error_message,
    patch_invalid,
    prune,
)
from megaplane.apiserver.schema.validation import name_rule, validate_data, validate_metadata
from megaplane.apiserver.watchcache import CachedObject, CacheEvent, TooOldError, WatchCache, WatchFilter
from megaplane.storage import Storage, StoredObject
from megaplane.storage.errors import (
    ExpiredError,
    GroupResource,
    StorageError,
    TooLargeResourceVersionError,
    interpret_create_error,
    interpret_delete_error,
    interpret_list_error,
    interpret_update_error,
)

__all__ = ["ResourceStore", "Result", "ListResult", "WatchPlan", "patch_status"]

# How long a read asking for a revision the store has not reached waits for it (the watch cache's wait).
FRESHNESS_WAIT = 3.0
_OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


class Result(NamedTuple):
    """What a verb answers: bytes, the HTTP-equivalent status, warnings for the client."""

    data: bytes
    status: int = 200
    warnings: Tuple[str, ...] = ()
    #: The resource's own object (a Table can show it), not a Status or a Scale.
    printable: bool = True


class WatchPlan(NamedTuple):
    """How a new watch starts: what it is sent first, and what it filters by, before it follows the cache."""

    cache: WatchCache
    filter: WatchFilter
    #: sendInitialEvents: the current objects as ADDED, then (with bookmarks) the initial-events-end BOOKMARK.
    initial: Optional[List[CachedObject]]
    #: A resourceVersion to resume from: the events since, from the cache's window.
    replay: List[CacheEvent]
    #: The revision the watch starts at.
    revision: int
    #: Too old to resume (410 Expired): sent as the stream's one ERROR event, as upstream's cacher does.
    expired: Optional[errors.StatusError]


class ListResult(NamedTuple):
    items: List[bytes]
    revision: int
    continue_token: str = ""
    remaining: Optional[int] = None
    #: The cache entries the items are the bytes of, when they are (the protobuf encoder memoises on them).
    objects: Optional[List[CachedObject]] = None


def patch_status(exc: PatchError) -> errors.StatusError:
    # NewGenericServerResponse (a JSON patch that does not apply) carries empty details; the others none.
    return errors.StatusError(exc.code, exc.reason, exc.message, {} if exc.detail is not None else None)


class ResourceStore:
    """The verbs of one resource over its watch cache and storage."""

    def __init__(
        self,
        resource: Resource,
        strategy: Strategy,
        cache: WatchCache,
        storage: Storage,
        namespaces: NamespaceAdmission,
        schema: Callable[[], Optional[Dict[str, Any]]],
    ) -> None:
        self.resource = resource
        self.strategy = strategy
        self.cache = cache
        self.storage = storage
        self.namespaces = namespaces
        self.group_resource = GroupResource(resource.group, resource.plural)
        self.ttl = strategy.storage_ttl()
        self._schema = schema
        #: events.k8s.io Events: stored in core form, served in their own.
        self.converted = resource.storage_of is not None
        #: managedFields on every write, and server-side apply (megaplane.apiserver.fieldmanager).
        self.fields = FieldManager(resource.group, resource.version, resource.kind, resource.has_status)

    def __repr__(self) -> str:
        return f"<ResourceStore {self.resource.group_version} {self.resource.plural}>"

    # -- helpers -------------------------------------------------------------------------------

    def _ns(self, namespace: str) -> str:
        return namespace if self.resource.namespaced else ""

    def current(self, namespace: str, name: str) -> CachedObject:
        obj = self.cache.get(self.resource.key(self._ns(namespace), name))
        if obj is None:
            raise errors.not_found(self.resource.group, self.resource.plural, name)
        return obj

    def view(self, data: bytes) -> bytes:
        return view_bytes(self.resource, data) if self.converted else data

    async def _fresh(self, revision: int) -> None:
        """Wait until the cache has seen `revision` (the watch cache's 3 s wait), else 504 as upstream."""
        if revision > self.cache.revision:
            if not await self.cache.wait_until_fresh(revision, FRESHNESS_WAIT):
                raise too_large_resource_version(revision, self.cache.revision)

    async def _consistent(self) -> None:
        """Before a read of "the most recent" (resourceVersion ""): wait until the cache has seen storage's
        current revision (upstream's consistent read from cache), so a read through this API server shows what
        another one on the same etcd acknowledged, and a cache relisting after a restore is not read half-built.
        Storage unreachable: the cache is read as it is, as upstream's cacher serves its reads."""
        try:
            want = await self.storage.current_revision(self.resource.prefix)  # its own cluster's (overrides)
        except StorageError:
            return
        await self._fresh(want)

    def _encoder(self, obj: Dict[str, Any], key: bytes) -> Callable[[int], bytes]:
        """Encode `obj` with the revision its write will get; tell the cache its facts."""
        meta = obj["metadata"]
        cache = self.cache

        def encode(revision: int) -> bytes:
            if revision:
                meta["resourceVersion"] = str(revision)
                # `obj` is the stored form (an events.k8s.io Event's is the core Event the cache holds).
                cache.expect(key, cache.decode_facts.from_dict(obj))
            else:
                meta.pop("resourceVersion", None)
            # orjson hands back its 4 KiB working buffer as the bytes object: stored for the object's
            # lifetime that would triple the memory of a typical object, so keep an exact-size copy.
            return memoryview(orjson.dumps(obj)).tobytes()

        return encode

    def _stored_form(self, obj: Dict[str, Any]) -> Dict[str, Any]:
        return core_from_events_v1(obj) if self.converted else obj

    def _validate(self, obj: Dict[str, Any], field_validation: str, verb: str = "create") -> List[str]:
        r = self.resource
        # Decoding into the typed object comes first, as upstream: unknown fields are dropped from `obj` (warned
        # of, or refused under Strict) and integers that do not fit their Go type are refused (schema.fieldvalidation).
        try:
            warnings = prune(r.group, r.version, r.kind, obj, field_validation, options_kind=_OPTIONS_KIND[verb])
        except (FieldValidationError, FieldTypeError) as exc:
            if verb == "patch":
                raise patch_invalid(obj, exc.message) from None
            raise errors.bad_request(decode_error_message(r.kind, r.version, exc.message)) from None
        except InvalidDirectiveError as exc:
            st = exc.status()
            raise errors.StatusError(exc.code, exc.reason, st["message"], st["details"]) from None
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        causes = validate_metadata(meta, name_rule(r.plural, r.group), r.namespaced)
        causes += validate_data(r.group, r.plural, obj)
        if causes:
            raise errors.invalid(r.group, r.kind, meta.get("name") or meta.get("generateName") or "", causes)
        return warnings

    async def _cas_update(self, cur: CachedObject, obj: Dict[str, Any]) -> StoredObject:
        """Store `obj` over `cur` if nothing wrote it meanwhile; 404 / 409 as upstream otherwise.

        Kinds stored with a TTL (Events) are re-leased, as the registry's update does."""
        try:
            return await self.storage.update(cur.key, self._encoder(obj, cur.key), expected_revision=cur.rv,
                                             ttl=self.ttl)
        except StorageError as err:
            raise interpret_update_error(err, self.group_resource, cur.facts.name) from None

    async def _cas_delete(self, cur: CachedObject) -> StoredObject:
        """Delete `cur` if nothing wrote it meanwhile; 404 / 409 as upstream otherwise."""
        try:
            return await self.storage.delete(cur.key, expected_revision=cur.rv)
        except StorageError as err:
            raise interpret_delete_error(err, self.group_resource, cur.facts.name) from None

    # -- get / list ------------------------------------------------------------------------------

    async def get(self, namespace: str, name: str, resource_version: str = "", subresource: str = "") -> Result:
        want = parse_resource_version(resource_version)
        await (self._consistent() if not resource_version else self._fresh(want))
        obj = self.current(namespace, name)
        if subresource == "scale":
            return Result(scale.scale_body(orjson.loads(obj.data)), printable=False)
        return Result(self.view(obj.data))

    async def list(self, namespace: str, opts: ListOptions) -> ListResult:
        labels, fields, limit = opts.labels, opts.fields, opts.limit
        prefix = self.resource.namespace_prefix(self._ns(namespace))
        rv, match, token = opts.resource_version, opts.match, opts.continue_token
        if token and rv:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        revision_wanted = parse_resource_version(rv)
        if token:
            start, revision = decode_continue(token, prefix)
            return await self._list_from_storage(prefix, start, revision, limit, labels, fields)
        # Exact, and (the older rule) a resourceVersion with a limit but no match: the list at exactly that revision.
        if match == "Exact" or (rv not in ("", "0") and limit and not match):
            return await self._list_from_storage(prefix, prefix, revision_wanted, limit, labels, fields, exact=True)
        await (self._consistent() if not rv else self._fresh(revision_wanted))
        cache = self.cache
        revision = cache.revision
        objs: List[CachedObject] = []
        next_key = b""
        remaining = None
        for obj in cache.iter_prefix(prefix):
            if labels or fields:
                f = obj.facts
                if not matches_labels(labels, f.labels) or not matches_fields(fields, f.fields):
                    continue
            if limit and len(objs) == limit:
                next_key = obj.key
                break
            objs.append(obj)
        out = [obj.data for obj in objs]
        cont = ""
        if next_key:
            cont = encode_continue(next_key, prefix, revision)
            if not labels and not fields:
                remaining = cache.count_prefix(prefix) - len(out)
        return ListResult(self._views(out), revision, cont, remaining, None if self.converted else objs)

    def _views(self, items: List[bytes]) -> List[bytes]:
        return [view_bytes(self.resource, b) for b in items] if self.converted else items

    async def _list_from_storage(
        self, prefix: bytes, start: bytes, revision: int, limit: int, labels: Any, fields: Any, exact: bool = False
    ) -> ListResult:
        decode = self.cache.decode_facts
        items: List[bytes] = []
        next_key = b""
        cursor = start
        total = -1
        try:
            while True:
                page = await self.storage.list(prefix, revision=revision, limit=max(limit, 500) if limit else 0,
                                               start_key=cursor)
                if total < 0:
                    total = len(page.items) + page.remaining
                for item in page.items:
                    if limit and len(items) == limit:
                        next_key = item.key
                        break
                    if labels or fields:
                        f = decode(item.data)
                        if not matches_labels(labels, f.labels) or not matches_fields(fields, f.fields):
                            continue
                    items.append(item.data)
                if next_key or not page.more:
                    break
                cursor = page.next_key
        except ExpiredError as err:
            if exact:
                raise errors.expired(f"too old resource version: {revision} ({err.compact_revision})") from None
            raise continue_expired() from None
        except TooLargeResourceVersionError as err:
            raise too_large_resource_version(revision, err.current) from None
        except StorageError as err:
            raise interpret_list_error(err, self.group_resource) from None
        cont = encode_continue(next_key, prefix, revision) if next_key else ""
        remaining = total - len(items) if next_key and not labels and not fields else None
        return ListResult(self._views(items), revision, cont, remaining)

    # -- watch -----------------------------------------------------------------------------------

    def watch(self, namespace: str, name: str, opts: ListOptions) -> WatchPlan:
        """Plan a watch of the kind (one object with `name`, or a field selector on metadata.name)."""
        ns = self._ns(namespace)
        fields = opts.fields
        if fields and not name:
            # metadata.name=X is what `kubectl delete --wait` and `get -w name` use: match it directly.
            names = [v for f, op, v in fields if f == "metadata.name" and op == "="]
            if names:
                name = names[0]
        cache = self.cache
        watch_filter = WatchFilter(ns, name, opts.labels, fields)
        revision = cache.revision
        start = parse_resource_version(opts.resource_version)
        if opts.send_initial_events:
            return WatchPlan(cache, watch_filter, list(cache.iter_prefix(self.resource.namespace_prefix(ns))), [],
                             revision, None)
        replay: List[CacheEvent] = []
        if start:
            try:
                replay = cache.events_since(start)
            except TooOldError as exc:
                return WatchPlan(cache, watch_filter, None, [], revision, errors.expired(str(exc)))
        return WatchPlan(cache, watch_filter, None, replay, revision, None)

    # -- create ----------------------------------------------------------------------------------

    async def create(self, namespace: str, obj: Dict[str, Any], opts: WriteOptions) -> Result:
        meta = _metadata(obj)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        return await self._create(namespace, obj, opts)

    async def _create(self, namespace: str, obj: Dict[str, Any], opts: WriteOptions, applied: bool = False) -> Result:
        r = self.resource
        strategy = self.strategy
        meta = obj["metadata"]
        ns = self._ns(namespace)
        _namespace_matches(r, meta, ns)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        warnings = self._validate(obj, opts.field_validation)
        name = meta["name"]
        self.namespaces.admit_content(r, ns, name)
        if self.namespaces.waiting:
            await self.namespaces.wait_create(r, obj)
        self.namespaces.admit_create(r, obj)
        strategy.defaults(obj)
        meta["uid"] = new_uid()  # before the strategy: a Job's generated selector names it
        strategy.prepare_for_create(obj)
        strategy.fill_zero_values(obj)
        if not applied and not self.converted:
            self.fields.updated(None, obj, opts.field_manager)
        self.namespaces.validate_create(r, obj)
        if self.namespaces.guards:
            self.namespaces.guard(r, "", obj, None, opts)
        stored = self._stored_form(obj)
        key = r.key(ns, name)
        if self.cache.get(key) is not None:
            raise errors.already_exists(r.group, r.plural, name)
        if self.namespaces.quota is not None:
            await self.namespaces.quota.admit(r, obj, None, opts.dry_run)
        strategy.admit_create(obj)  # allocations (service IPs, node ports): given back on any failure
        try:
            if opts.dry_run:
                strategy.release(obj)
                return Result(self.view(orjson.dumps(stored)), 201, tuple(warnings))
            created = await self.storage.create(key, self._encoder(stored, key), ttl=self.ttl)
        except StorageError as err:
            strategy.release(obj)
            raise interpret_create_error(err, self.group_resource, name) from None
        except BaseException:
            strategy.release(obj)
            raise
        return Result(self.view(created.data), 201, tuple(warnings))

    # -- update ----------------------------------------------------------------------------------

    async def update(
        self, namespace: str, name: str, obj: Dict[str, Any], opts: WriteOptions, subresource: str = ""
    ) -> Result:
        """PUT of the object (subresource "" or "status"), its Scale ("scale") or its finalizers ("finalize")."""
        r = self.resource
        if subresource == "scale":
            check_kind(obj, r, "Scale", "autoscaling/v1")
            return await self._apply_scale(namespace, name, obj, self.current(namespace, name), opts)
        check_kind(obj, r)
        meta = _metadata(obj)
        ns = self._ns(namespace)
        if meta.get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})"
            )
        _namespace_matches(r, meta, ns)
        if subresource == "finalize":
            return await self._finalize_namespace(name, obj, opts)
        cur = self.cache.get(r.key(ns, name))
        if cur is None:
            if not subresource and r.allow_create_on_update:
                meta.pop("resourceVersion", None)  # AllowCreateOnUpdate: a PUT of a missing object creates it
                return await self._create(namespace, obj, opts)
            raise errors.not_found(r.group, r.plural, name)
        warnings = self._validate(obj, opts.field_validation, "update")
        want = meta.get("resourceVersion", "")
        if not want and not r.allow_unconditional_update:
            raise errors.invalid(r.group, r.plural, name, [
                field_error("", "metadata.resourceVersion", None, "must be specified for an update", "FieldValueInvalid",
                            shown="0x0")])
        return await self._write_update(name, obj, want, warnings, opts, subresource, cur)

    async def _write_update(
        self,
        name: str,
        obj: Dict[str, Any],
        want_rv: str,
        warnings: List[str],
        opts: WriteOptions,
        subresource: str,
        cur: CachedObject,
        applied: bool = False,
        record_subresource: Optional[str] = None,
    ) -> Result:
        r = self.resource
        strategy = self.strategy
        uid = obj["metadata"].get("uid")
        if uid and uid != cur.facts.uid:  # a uid in the body is a precondition (rest.DefaultUpdatedObjectInfo)
            raise errors.conflict(
                r.group, r.plural, name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {cur.facts.uid}",
            )
        if want_rv and want_rv != str(cur.rv):
            if not want_rv.isdigit():
                raise errors.bad_request(f'invalid resource version "{want_rv}"')
            raise errors.conflict_modified(r.group, r.plural, name)
        old = orjson.loads(cur.data)
        obj = self._stored_form(obj) if subresource != "status" else obj
        strategy.defaults(obj)
        strategy.prepare_for_update(obj, old, subresource)
        strategy.fill_zero_values(obj)
        if not applied and not self.converted:
            self.fields.updated(old, obj, opts.field_manager, subresource, record_subresource)
        if not subresource:
            self.namespaces.validate_update(r, obj, old)
        if self.namespaces.guards:
            self.namespaces.guard(r, subresource, obj, old, opts)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(cur.rv)
        done = tuple(warnings)
        if obj == old:
            return Result(self.view(cur.data), 200, done)  # no-op: nothing written, the revision stays
        if not subresource and self.namespaces.quota is not None and self.namespaces.quota.evaluates_updates(r):
            await self.namespaces.quota.admit(r, obj, old, opts.dry_run)
        if strategy.should_delete_during_update(obj, old):
            if opts.dry_run:
                return Result(self.view(orjson.dumps(obj)), 200, done)
            gone = await self._cas_delete(cur)
            strategy.release(old)
            meta["resourceVersion"] = str(gone.revision)
            return Result(self.view(orjson.dumps(obj)), 200, done)
        taken = strategy.admit_update(obj, old)
        try:
            if opts.dry_run:
                strategy.release_update(taken)
                return Result(self.view(orjson.dumps(obj)), 200, done)
            written = await self._cas_update(cur, obj)
        except BaseException:
            strategy.release_update(taken)
            raise
        strategy.after_update(obj, old)
        return Result(self.view(written.data), 200, done)

    # -- patch -----------------------------------------------------------------------------------

    async def patch(
        self, namespace: str, name: str, patch_type: str, patch: Any, opts: WriteOptions, subresource: str = ""
    ) -> Result:
        """Apply a decoded patch ("json", "merge" or "strategic") to the current object and store it."""
        patch_meta = patch.get("metadata") if isinstance(patch, dict) else None
        patch_rv = patch_meta.get("resourceVersion", "") if isinstance(patch_meta, dict) else ""
        try:
            return await self._patch_once(namespace, name, patch_type, patch, patch_rv, opts, subresource)
        except errors.StatusError as exc:
            if exc.reason != "Conflict" or patch_rv:
                raise
        # The store moved past the cache (a write still waiting for its fsync): re-read once it caught up and
        # apply the patch again, as upstream's patcher retries a conflict it caused itself.
        for _ in range(5):
            await self._fresh(await self.storage.current_revision())
            await asyncio.sleep(0.01)
            try:
                return await self._patch_once(namespace, name, patch_type, patch, "", opts, subresource)
            except errors.StatusError as exc:
                if exc.reason != "Conflict":
                    raise
        raise errors.conflict_modified(self.resource.group, self.resource.plural, name)

    async def _patch_once(
        self, namespace: str, name: str, ptype: str, patch: Any, patch_rv: str, opts: WriteOptions, subresource: str
    ) -> Result:
        r = self.resource
        cur = self.current(namespace, name)
        doc = orjson.loads(self.view(cur.data))
        if subresource == "scale":
            doc = orjson.loads(scale.scale_body(doc))
        try:
            if ptype == "json":
                new = apply_json_patch(doc, patch)
            elif ptype == "merge":
                new = apply_merge_patch(doc, patch)
            else:
                new = apply_strategic_merge_patch(doc, patch, self._schema())
        except PatchError as exc:
            raise patch_status(exc) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patch did not produce an object")
        if subresource == "scale":
            return await self._apply_scale(namespace, name, new, cur, opts)
        check_kind(new, r)
        meta = _metadata(new)
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        warnings = self._validate(new, opts.field_validation, "patch")
        return await self._write_update(name, new, patch_rv or str(cur.rv), warnings, opts, subresource, cur)

    # -- server-side apply -------------------------------------------------------------------------

    async def apply(
        self, namespace: str, name: str, config: Dict[str, Any], opts: WriteOptions, force: bool = False,
        subresource: str = "",
    ) -> Result:
        """PATCH with application/apply-patch+yaml: merge `config` as `opts.field_manager`'s intent (creates)."""
        for _ in range(6):
            try:
                # Each attempt takes its own copy: the merge hands parts of the config to the result.
                return await self._apply_once(namespace, name, orjson.loads(orjson.dumps(config)), opts, force,
                                              subresource)
            except errors.StatusError as exc:
                # A write that moved the object meanwhile (not a field conflict, which has causes): merge again.
                if exc.reason != "Conflict" or (exc.details or {}).get("causes") or (config.get("metadata") or {}).get(
                        "resourceVersion"):
                    raise
            await self._fresh(await self.storage.current_revision())
        raise errors.conflict_modified(self.resource.group, self.resource.plural, name)

    async def _apply_once(
        self, namespace: str, name: str, config: Dict[str, Any], opts: WriteOptions, force: bool, subresource: str
    ) -> Result:
        r = self.resource
        if subresource == "scale":
            return await self._apply_scale_config(namespace, name, config, opts, force)
        check_kind(config, r)
        meta = _metadata(config)
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        want = meta.get("resourceVersion", "")
        cur = self.cache.get(r.key(self._ns(namespace), name))
        if cur is None:
            if subresource or self.converted:
                raise errors.not_found(r.group, r.plural, name)
            meta.pop("resourceVersion", None)
            obj = self.fields.apply(None, config, opts.field_manager, force)
            return await self._create(namespace, obj, opts, applied=True)
        if self.converted:
            raise errors.StatusError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
        merged = self.fields.apply(orjson.loads(cur.data), config, opts.field_manager, force, subresource)
        warnings = self._validate(merged, opts.field_validation, "patch")
        return await self._write_update(name, merged, want or str(cur.rv), warnings, opts, subresource, cur,
                                        applied=True)

    async def _apply_scale_config(
        self, namespace: str, name: str, config: Dict[str, Any], opts: WriteOptions, force: bool
    ) -> Result:
        """Apply of a Scale: its replicas applied to the workload's spec.replicas, owned with subresource scale."""
        r = self.resource
        check_kind(config, r, "Scale", "autoscaling/v1")
        replicas, want = scale.requested_replicas(config, name)
        cur = self.current(namespace, name)
        if want and want != str(cur.rv):
            raise errors.conflict_modified(r.group, r.plural, name)
        workload = {"apiVersion": r.group_version, "kind": r.kind, "metadata": {"name": name},
                    "spec": {"replicas": replicas}}
        merged = self.fields.apply(orjson.loads(cur.data), workload, opts.field_manager, force, "scale")
        written = await self._write_update(name, merged, str(cur.rv), [], opts, "", cur, applied=True)
        return Result(scale.scale_body(orjson.loads(written.data)), printable=False)

    # -- subresources ------------------------------------------------------------------------------

    async def _apply_scale(
        self, namespace: str, name: str, obj: Dict[str, Any], cur: CachedObject, opts: WriteOptions
    ) -> Result:
        r = self.resource
        replicas, want = scale.requested_replicas(obj, name)
        if want and want != str(cur.rv):
            raise errors.conflict_modified(r.group, r.plural, name)
        workload = orjson.loads(cur.data)
        workload.setdefault("spec", {})["replicas"] = replicas
        written = await self._write_update(name, workload, str(cur.rv), [], opts, "", cur, record_subresource="scale")
        return Result(scale.scale_body(orjson.loads(written.data)), printable=False)

    async def _finalize_namespace(self, name: str, obj: Dict[str, Any], opts: WriteOptions) -> Result:
        """PUT namespaces/{name}/finalize: only spec.finalizers changes (the namespace controller's write)."""
        cur = self.current("", name)
        old = orjson.loads(cur.data)
        finalizers = scale.object_field(obj.get("spec"), "Namespace.spec").get("finalizers") or []
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise errors.bad_request("json: cannot unmarshal value into Go struct field NamespaceSpec.spec.finalizers")
        spec = old.setdefault("spec", {})
        if spec.get("finalizers") == finalizers and not (old["metadata"].get("deletionTimestamp") and not finalizers):
            return Result(cur.data)  # no-op: nothing written, the revision stays
        spec["finalizers"] = finalizers
        if opts.dry_run:
            return Result(orjson.dumps(old))
        if old["metadata"].get("deletionTimestamp") and not finalizers and not old["metadata"].get("finalizers"):
            await self._cas_delete(cur)
            return Result(cur.data)
        return Result((await self._cas_update(cur, old)).data)

    async def bind(self, namespace: str, name: str, binding: Dict[str, Any], opts: WriteOptions) -> Result:
        """POST pods/{name}/binding: assign the pod to a node (the scheduler's write)."""
        target = scale.object_field(binding.get("target"), "Binding.target")
        node = target.get("name", "")
        if not node or not isinstance(node, str):
            raise errors.invalid(
                "", "Binding", name, [field_error("", "target.name", "", "name is required", "FieldValueRequired")]
            )
        cur = self.current(namespace, name)
        obj = orjson.loads(cur.data)
        spec = obj.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict("", "pods/binding", name, f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
        if obj["metadata"].get("deletionTimestamp"):
            raise errors.conflict("", "pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host")
        spec["nodeName"] = node
        status = obj.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
        )
        status["conditions"] = conditions
        if not opts.dry_run:
            await self._cas_update(cur, obj)
        return Result(_BOUND, 201, printable=False)

    # -- delete ----------------------------------------------------------------------------------

    async def delete(self, namespace: str, name: str, opts: Dict[str, Any]) -> Result:
        """DELETE as the generic registry store does it: BeforeDelete, then delete or mark (see deletion.py)."""
        deletion.validate_options(opts)
        self.strategy.before_delete(name)  # the kind's REST Delete: deletecollection does not pass it (upstream)
        result = await self._delete_one(self.current(namespace, name), opts)
        warning = deletion.default_orphan_warning(self.resource, opts)
        return result._replace(warnings=(warning,)) if warning else result

    async def delete_collection(self, namespace: str, list_opts: ListOptions, opts: Dict[str, Any]) -> ListResult:
        deletion.validate_options(opts)
        victims = [
            o for o in self.cache.iter_prefix(self.resource.namespace_prefix(self._ns(namespace)))
            if deletion.matches(list_opts, o)
        ]
        # Concurrently, as upstream's DeleteCollection workers: writes waiting for the disk share its syncs.
        outcomes = await asyncio.gather(*(self._delete_one(cur, opts) for cur in victims), return_exceptions=True)
        items = []
        for cur, outcome in zip(victims, outcomes):
            if isinstance(outcome, errors.StatusError) and outcome.reason == "NotFound":
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            items.append(cur.data)  # upstream answers with the list as it was before the deletes
        return ListResult(self._views(items), await self.storage.current_revision())

    async def _delete_one(self, cur: CachedObject, opts: Dict[str, Any]) -> Result:
        r = self.resource
        name = cur.facts.name
        deletion.check_preconditions(r, cur, opts)
        dry = bool(opts.get("dryRun"))
        obj = orjson.loads(cur.data)
        meta = obj["metadata"]
        if r.group == "" and r.plural == "namespaces":
            self.namespaces.admit_delete(name)
            if not meta.get("deletionTimestamp"):
                # The first delete starts termination; the namespace controller removes the content.
                meta["deletionTimestamp"] = now_rfc3339()
                obj.setdefault("status", {})["phase"] = "Terminating"
                return await self._write_deletion_mark(cur, obj, opts, dry)
            if (obj.get("spec") or {}).get("finalizers"):
                return self._deleted_answer(cur.data, opts)
        marked = deletion.mark_for_deletion(self.strategy, obj, opts)
        if marked is None:  # graceful deletion already pending with a period no shorter than this one
            return self._finished_delete(cur)
        if marked:
            return await self._write_deletion_mark(cur, obj, opts, dry)
        if dry:
            return self._finished_delete(cur)
        await self._cas_delete(cur)
        self.strategy.release(obj)
        return self._finished_delete(cur)

    async def _write_deletion_mark(
        self, cur: CachedObject, obj: Dict[str, Any], opts: Dict[str, Any], dry: bool
    ) -> Result:
        if dry:
            return self._deleted_answer(orjson.dumps(obj), opts)
        return self._deleted_answer((await self._cas_update(cur, obj)).data, opts)

    def _deleted_answer(self, data: bytes, opts: Dict[str, Any]) -> Result:
        """A kept (marked) object: 200, or 202 when the client asked for orphanDependents=false (delete.go)."""
        return Result(self.view(data), 202 if opts.get("orphanDependents") is False else 200)

    def _finished_delete(self, cur: CachedObject) -> Result:
        """finalizeDelete: the object itself for stores that return it, else a Success Status naming it."""
        if self.resource.returns_deleted_object:
            return Result(self.view(cur.data))
        return Result(deletion.success_status(self.resource, cur.facts), printable=False)


# A binding's answer, encoded once.
_BOUND = orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})


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
