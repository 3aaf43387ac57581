"""The loopback transport: `megaplane.client` calling this API server's registry in the same process.

kube-apiserver gives its own controllers a loopback client; here it is a
`megaplane.client.Transport` whose verbs go straight to the registry's
stores: no HTTP, no sockets, no re-encoding of stored objects (the bytes a
store answers are the bytes the client gets; a watch's event lines are the
ones the cache encoded once for every watcher). Components written
against `megaplane.client` run unchanged on it inside `megaplane up` and
on the HTTP transport in a process of their own.

Errors are the client's typed errors, built from the same Status an HTTP
client would have received.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Mapping, Optional

import orjson

from megaplane.apimachinery import errors
from megaplane.apimachinery.listoptions import list_options
from megaplane.apimachinery.resources import SUBRESOURCE_VERBS, Resource, by_path
from megaplane.apimachinery.scheme import check_kind
from megaplane.apimachinery.user import (
    APISERVER_USER,
    FLEET_USER,
    KUBE_CONTROLLER_MANAGER_USER,
    KUBE_SCHEDULER_USER,
    LOOPBACK_USER,
    NODE_USER_PREFIX,
    SERVICE_ACCOUNT_USER_PREFIX,
    UserInfo,
)
from megaplane.apimachinery.watchevent import event_line
from megaplane.apiserver.http.decode import delete_options_from
from megaplane.apiserver.http.encoding import list_body
from megaplane.apiserver.http.endpoints import apply_options, decode_apply, request_write_options
from megaplane.apiserver.patch import PatchError, decode_patch
from megaplane.apiserver.registry.eviction import EVICTION
from megaplane.apiserver.registry.registry import Registry
from megaplane.apiserver.registry.store import ResourceStore, patch_status
from megaplane.apiserver.watchcache import CacheEvent, json_line
from megaplane.client.errors import error_from_response
from megaplane.client.resources import ResourceRef
from megaplane.client.transport import PATCH_CONTENT_TYPES

__all__ = ["LoopbackTransport", "LoopbackWatch"]

_PATCH_TYPES = {ctype: name for name, ctype in PATCH_CONTENT_TYPES.items()}
# A loopback watcher this far behind is ended, as the HTTP server ends a watch whose client does not read.
MAX_QUEUED_EVENTS = 100_000
_EMPTY: Mapping[str, str] = {}


def _typed(exc: errors.StatusError) -> errors.StatusError:
    """The client's typed error for a registry StatusError (what an HTTP client would raise)."""
    return error_from_response(exc.code, exc.headers, exc.body())


def _agent(user: str) -> str:
    """The User-Agent prefix upstream's component would send (its default field manager)."""
    if user == APISERVER_USER:
        return "kube-apiserver"
    if user == KUBE_SCHEDULER_USER:
        return "kube-scheduler"
    if user == KUBE_CONTROLLER_MANAGER_USER or user.startswith(SERVICE_ACCOUNT_USER_PREFIX + "kube-system:"):
        return "kube-controller-manager"
    if user == FLEET_USER or user.startswith(NODE_USER_PREFIX):
        return "kubelet"
    return user


class LoopbackTransport:
    """`megaplane.client.Transport` over a registry in this process."""

    def __init__(self, registry: Registry, user: UserInfo = LOOPBACK_USER, authorizer: Any = None) -> None:
        self.registry = registry
        #: Who this client is (a component's identity inside `megaplane up`), and the server's authorizer
        #: (apiserver.authz.modes.ModeAuthorizer: `check` raises its 403) every verb is checked with; None: the
        #: server's own privileged loopback, never checked.
        self.user = user
        #: Who writes, for managedFields: upstream's components are named by their User-Agent.
        self.agent = _agent(user.name)
        self.authorizer = authorizer
        self._resources: Dict[ResourceRef, Resource] = {}
        self._watches: List["LoopbackWatch"] = []
        self.closed = False

    def _authorize(self, r: Resource, verb: str, subresource: str, namespace: Optional[str], name: str) -> None:
        try:
            self.authorizer.check(self.user, verb, r.group, r.plural, subresource, namespace or "", name)
        except errors.StatusError as exc:
            raise _typed(exc) from None

    def _resource(self, ref: ResourceRef, verb: str, subresource: str = "") -> Resource:
        r = self._resources.get(ref)
        if r is None:
            found = by_path(ref.group, ref.version, ref.plural)
            if found is None:
                raise _typed(errors.not_found(ref.group, ref.plural, ""))
            r = self._resources[ref] = found
        if subresource and subresource not in r.subresources:
            # As the HTTP routes: a subresource the kind does not serve (jobs/scale) is not found.
            raise _typed(errors.StatusError(404, "NotFound", "the server could not find the requested resource", {}))
        allowed = SUBRESOURCE_VERBS.get(subresource, ()) if subresource else r.verbs
        if verb not in allowed:
            raise _typed(errors.method_not_allowed("the server does not allow this method on the requested resource"))
        return r

    def _store(self, r: Resource) -> ResourceStore:
        return self.registry.store(r)

    async def get(self, ref: ResourceRef, namespace: Optional[str], name: str, subresource: str = "",
                  params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "get", subresource)
        if self.authorizer is not None:
            self._authorize(r, "get", subresource, namespace, name)
        try:
            result = await self._store(r).get(namespace or "", name, (params or _EMPTY).get("resourceVersion", ""),
                                              subresource)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return result.data

    async def list(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "list")
        if self.authorizer is not None:
            self._authorize(r, "list", "", namespace, "")
        try:
            opts = list_options(dict(params or _EMPTY), r, watch=False)
            page = await self._store(r).list(namespace or "", opts)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return list_body(r, page.items, page.revision, page.continue_token, page.remaining)

    async def create(self, ref: ResourceRef, namespace: Optional[str], body: bytes, subresource: str = "",
                     params: Optional[Mapping[str, str]] = None, name: str = "") -> bytes:
        r = self._resource(ref, "create", subresource)
        if self.authorizer is not None:
            self._authorize(r, "create", subresource, namespace, name)
        try:
            opts = request_write_options(params, "CreateOptions", self.user, self.agent)
            creator = self.registry.creator(r, subresource)
            if creator is not None:  # reviews, serviceaccounts/token (registry.virtual): the server's own user
                return (await creator.create(self.user, namespace or "", name, _object(body, creator.body),
                                             opts)).data
            if subresource == "eviction":
                result = await self.registry.eviction.create(namespace or "", name, _object(body, EVICTION), opts)
                if result.status >= 400:  # a Failure Status answered, not raised (more than one PDB: 500)
                    raise error_from_response(result.status, {}, result.data)
                return result.data
            obj = _object(body, r)
            store = self._store(r)
            if subresource == "binding":
                result = await store.bind(namespace or "", name, obj, opts)
            else:
                check_kind(obj, r)
                result = await store.create(namespace or "", obj, opts)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return result.data

    async def update(self, ref: ResourceRef, namespace: Optional[str], name: str, body: bytes, subresource: str = "",
                     params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "update", subresource)
        if self.authorizer is not None:
            self._authorize(r, "update", subresource, namespace, name)
        try:
            opts = request_write_options(params, "UpdateOptions", self.user, self.agent)
            result = await self._store(r).update(namespace or "", name, _object(body, r), opts, subresource)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return result.data

    async def patch(self, ref: ResourceRef, namespace: Optional[str], name: str, content_type: str, body: bytes,
                    subresource: str = "", params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "patch", subresource)
        if self.authorizer is not None:
            self._authorize(r, "patch", subresource, namespace, name)
        try:
            ptype = _PATCH_TYPES.get(content_type)
            if ptype is None:
                raise errors.StatusError(415, "UnsupportedMediaType", "415: Unsupported Media Type", {})
            if ptype == "apply":
                aopts, force = apply_options(dict(params or _EMPTY), self.user)
                result = await self._store(r).apply(namespace or "", name, decode_apply(body), aopts, force,
                                                    subresource)
                return result.data
            opts = request_write_options(params, "PatchOptions", self.user, self.agent)
            try:
                patch = decode_patch(body, content_type)
            except PatchError as exc:
                raise patch_status(exc) from None
            result = await self._store(r).patch(namespace or "", name, ptype, patch, opts, subresource)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return result.data

    async def delete(self, ref: ResourceRef, namespace: Optional[str], name: str, body: Optional[bytes] = None,
                     params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "delete")
        if self.authorizer is not None:
            self._authorize(r, "delete", "", namespace, name)
        try:
            opts = delete_options_from(body or b"", dict(params or _EMPTY))
            result = await self._store(r).delete(namespace or "", name, opts)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return result.data

    async def delete_collection(self, ref: ResourceRef, namespace: Optional[str], body: Optional[bytes] = None,
                                params: Optional[Mapping[str, str]] = None) -> bytes:
        r = self._resource(ref, "deletecollection")
        if self.authorizer is not None:
            self._authorize(r, "deletecollection", "", namespace, "")
        try:
            q = dict(params or _EMPTY)
            lopts = list_options(q, r, watch=False)
            opts = delete_options_from(body or b"", q)
            page = await self._store(r).delete_collection(namespace or "", lopts, opts)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        return list_body(r, page.items, page.revision)

    async def watch(self, ref: ResourceRef, namespace: Optional[str],
                    params: Optional[Mapping[str, str]] = None) -> "LoopbackWatch":
        r = self._resource(ref, "watch")
        if self.authorizer is not None:
            self._authorize(r, "watch", "", namespace, "")
        try:
            opts = list_options(dict(params or _EMPTY), r, watch=True)
            plan = self._store(r).watch(namespace or "", "", opts)
        except errors.StatusError as exc:
            raise _typed(exc) from None
        w = LoopbackWatch(r, plan.cache, plan.filter, opts.allow_bookmarks, self._watches)
        if plan.expired is not None:
            w.push(event_line("ERROR", plan.expired.body()))
            w.end()
            return w
        if plan.initial is not None:
            passes = plan.filter.passes
            for obj in plan.initial:
                if passes(obj):
                    w.push(event_line("ADDED", obj.data))
            if opts.allow_bookmarks:
                w.bookmark(plan.revision, initial_events_end=True)
        elif plan.replay:
            w.offer(plan.replay)
        w.follow()
        if opts.timeout_seconds:
            w.end_after(float(opts.timeout_seconds))
        return w

    async def close(self) -> None:
        self.closed = True
        for w in list(self._watches):
            await w.close()


class LoopbackWatch:
    """One in-process watch: the cache's typed events through the watcher's filter, as event lines."""

    def __init__(self, resource: Resource, cache: Any, watch_filter: Any, bookmarks: bool,
                 registry: List["LoopbackWatch"]) -> None:
        self.resource = resource
        self.cache = cache
        self.filter = watch_filter
        self.bookmarks = bookmarks
        self._queue: "asyncio.Queue[Optional[bytes]]" = asyncio.Queue()
        self._following = False
        self._ended = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._registry = registry
        registry.append(self)

    # -- fed by the cache ----------------------------------------------------------------------------

    def follow(self) -> None:
        self.cache.listeners.append(self.offer)
        self.cache.on_reset.append(self.end)
        self._following = True

    def offer(self, events: List[CacheEvent]) -> None:
        if self._ended:
            return
        f = self.filter
        push = self._queue.put_nowait
        if not f.selective:
            ns = f.namespace
            for ev in events:
                if not ns or ev.obj.facts.namespace == ns:
                    push(json_line(ev))
        else:
            for ev in events:
                seen = f.convert(ev)
                if seen is not None:
                    etype, obj = seen
                    push(json_line(ev) if etype == ev.type and obj is ev.obj else event_line(etype, obj.data))
        if self._queue.qsize() > MAX_QUEUED_EVENTS:
            self.end()  # too far behind: the client rewatches from its last resourceVersion

    def push(self, line: bytes) -> None:
        self._queue.put_nowait(line)

    def bookmark(self, revision: int, initial_events_end: bool = False) -> None:
        r = self.resource
        meta: Dict[str, Any] = {"resourceVersion": str(revision), "creationTimestamp": None}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self.push(event_line("BOOKMARK", orjson.dumps({"kind": r.kind, "apiVersion": r.group_version, "metadata": meta})))

    def end_after(self, seconds: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(seconds, self.end)

    def end(self) -> None:
        """No more events: the consumer sees the end of the stream after what is queued."""
        if self._ended:
            return
        self._ended = True
        if self._following:
            self._following = False
            # Copies, not in-place removal: the cache may be iterating its listeners right now (an offer
            # that ends this watch), and removing from that list would skip the next listener.
            self.cache.listeners = [f for f in self.cache.listeners if f != self.offer]
            self.cache.on_reset = [f for f in self.cache.on_reset if f != self.end]
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._registry.remove(self)
        except ValueError:
            pass
        self._queue.put_nowait(None)

    # -- the WatchStream the client reads ---------------------------------------------------------------

    def __aiter__(self) -> "LoopbackWatch":
        return self

    async def __anext__(self) -> bytes:
        line = await self._queue.get()
        if line is None:
            self._queue.put_nowait(None)  # stays ended for any further read
            raise StopAsyncIteration
        return line

    async def close(self) -> None:
        self.end()


def _object(body: bytes, r: Resource) -> Dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {r.kind}): {exc}") from None
    if not isinstance(obj, dict):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {r.kind})")
    return obj
