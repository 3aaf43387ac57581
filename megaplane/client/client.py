"""`Client`: typed verbs on resources over any `Transport`, objects as dicts (orjson).

    async with Client.from_kubeconfig("kubeconfig", qps=50, burst=100) as client:
        pods = client.resource("pods")
        pod = await pods.create({"metadata": {"name": "p"}, "spec": {...}}, namespace="default")
        everything = await pods.list_all(label_selector="app=web")
        async with await pods.watch(namespace="default", resource_version=rv) as events:
            async for event in events: ...

Each verb has a `_raw` twin that takes and returns bytes, for callers that
pass objects on without looking inside (principle 1: bytes are the
currency). Options use upstream's names in snake_case and are sent only
when given. A namespaced verb on one object takes its namespace from the
argument, else from the object's metadata; the all-namespaces collection
is `namespace=None`.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Type, Union

import orjson

from .errors import ExpiredError, GoneError
from .kubeconfig import load_kubeconfig
from .resources import ResourceRef, lookup
from .transport import PATCH_CONTENT_TYPES, Transport, WatchStream

__all__ = ["Client", "ResourceClient", "Watch", "WatchEvent"]

Obj = Dict[str, Any]


class WatchEvent:
    """One decoded watch event: `type` (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and `object`."""

    __slots__ = ("type", "object")

    def __init__(self, type: str, object: Obj) -> None:
        self.type = type
        self.object = object

    def __repr__(self) -> str:
        meta = self.object.get("metadata") or {}
        return f"<WatchEvent {self.type} {meta.get('name', '')} rv={meta.get('resourceVersion', '')}>"


class Watch:
    """Decoded events of an open watch; `async with` closes it."""

    def __init__(self, stream: WatchStream) -> None:
        self.stream = stream

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        line = await self.stream.__anext__()
        event = orjson.loads(line)
        return WatchEvent(event.get("type", ""), event.get("object") or {})

    async def close(self) -> None:
        await self.stream.close()

    async def __aenter__(self) -> "Watch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _params(**options: Any) -> Dict[str, str]:
    """Query parameters from keyword options: None is absent, bools are true/false, the rest str()."""
    out: Dict[str, str] = {}
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _write_params(dry_run: bool, field_manager: Optional[str], field_validation: Optional[str]) -> Dict[str, str]:
    if not dry_run and field_manager is None and field_validation is None:
        return {}  # the usual write: no keyword dict to walk
    return _params(dryRun="All" if dry_run else None, fieldManager=field_manager, fieldValidation=field_validation)


class ResourceClient:
    """The verbs on one resource (see the module docstring)."""

    def __init__(self, transport: Transport, ref: ResourceRef) -> None:
        self.transport = transport
        self.ref = ref

    def __repr__(self) -> str:
        return f"<ResourceClient {self.ref.group_version} {self.ref.plural}>"

    def _ns(self, namespace: Optional[str], obj: Optional[Mapping[str, Any]] = None) -> Optional[str]:
        if not self.ref.namespaced:
            if namespace:
                raise ValueError(f"{self.ref.plural} is cluster-scoped: no namespace may be given ({namespace!r})")
            return None
        if namespace:
            return namespace
        if obj is not None:
            found = (obj.get("metadata") or {}).get("namespace")
            if found:
                return str(found)
        raise ValueError(f"{self.ref.plural} is namespaced: give a namespace (argument or metadata.namespace)")

    @staticmethod
    def _name(obj: Mapping[str, Any]) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return str(name)

    # -- reads ----------------------------------------------------------------------------------

    async def get_raw(
        self, name: str, namespace: Optional[str] = None, *, resource_version: Optional[str] = None,
        subresource: str = "",
    ) -> bytes:
        params = _params(resourceVersion=resource_version) if resource_version is not None else None
        return await self.transport.get(self.ref, self._ns(namespace), name, subresource, params)

    async def get(
        self, name: str, namespace: Optional[str] = None, *, resource_version: Optional[str] = None,
        subresource: str = "",
    ) -> Obj:
        """One object (404: NotFoundError). `resource_version="0"` lets the server answer from its cache."""
        data: Obj = orjson.loads(await self.get_raw(name, namespace, resource_version=resource_version,
                                                    subresource=subresource))
        return data

    async def list_raw(
        self, namespace: Optional[str] = None, *, label_selector: Optional[str] = None,
        field_selector: Optional[str] = None, limit: Optional[int] = None, continue_: Optional[str] = None,
        resource_version: Optional[str] = None, resource_version_match: Optional[str] = None,
    ) -> bytes:
        params = _params(
            labelSelector=label_selector or None, fieldSelector=field_selector or None, limit=limit,
            resourceVersion=resource_version, resourceVersionMatch=resource_version_match,
        )
        if continue_:
            params["continue"] = continue_
        return await self.transport.list(self.ref, namespace or None, params)

    async def list(
        self, namespace: Optional[str] = None, *, label_selector: Optional[str] = None,
        field_selector: Optional[str] = None, limit: Optional[int] = None, continue_: Optional[str] = None,
        resource_version: Optional[str] = None, resource_version_match: Optional[str] = None,
    ) -> Obj:
        """One list request: a `<Kind>List` dict (one page when `limit` is given; `metadata.continue` for more)."""
        data: Obj = orjson.loads(await self.list_raw(
            namespace, label_selector=label_selector, field_selector=field_selector, limit=limit,
            continue_=continue_, resource_version=resource_version, resource_version_match=resource_version_match,
        ))
        return data

    async def list_pages(
        self, namespace: Optional[str] = None, *, label_selector: Optional[str] = None,
        field_selector: Optional[str] = None, page_size: int = 500,
    ) -> AsyncIterator[Obj]:
        """Every page of a paged list, all at the first page's resourceVersion (client-go's pager).

        An expired continue token raises `ExpiredError` after the pages
        already yielded; `list_all` falls back to one unpaged list instead.
        """
        token: Optional[str] = None
        while True:
            page = await self.list(namespace, label_selector=label_selector, field_selector=field_selector,
                                   limit=page_size, continue_=token)
            yield page
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return

    async def list_all(
        self, namespace: Optional[str] = None, *, label_selector: Optional[str] = None,
        field_selector: Optional[str] = None, page_size: int = 500,
    ) -> Obj:
        """The whole collection, read in pages of `page_size` (limit/continue), as one list dict.

        `metadata.resourceVersion` is the list's (all pages are one
        snapshot). An expired continue token falls back to one unpaged
        list, as client-go's pager does.
        """
        items: List[Obj] = []
        first: Optional[Obj] = None
        try:
            async for page in self.list_pages(namespace, label_selector=label_selector,
                                              field_selector=field_selector, page_size=page_size):
                if first is None:
                    first = page
                items.extend(page.get("items") or ())
        except (ExpiredError, GoneError):
            if first is None:
                raise
            return await self.list(namespace, label_selector=label_selector, field_selector=field_selector)
        assert first is not None
        meta = dict(first.get("metadata") or {})
        meta.pop("continue", None)
        meta.pop("remainingItemCount", None)
        first["metadata"] = meta
        first["items"] = items
        return first

    async def watch_raw(
        self, namespace: Optional[str] = None, *, resource_version: Optional[str] = None,
        label_selector: Optional[str] = None, field_selector: Optional[str] = None,
        allow_watch_bookmarks: bool = False, timeout_seconds: Optional[int] = None,
        send_initial_events: Optional[bool] = None, resource_version_match: Optional[str] = None,
    ) -> WatchStream:
        params = _params(
            resourceVersion=resource_version, labelSelector=label_selector or None,
            fieldSelector=field_selector or None, allowWatchBookmarks=True if allow_watch_bookmarks else None,
            timeoutSeconds=timeout_seconds, sendInitialEvents=send_initial_events,
            resourceVersionMatch=resource_version_match,
        )
        return await self.transport.watch(self.ref, namespace or None, params)

    async def watch(
        self, namespace: Optional[str] = None, *, resource_version: Optional[str] = None,
        label_selector: Optional[str] = None, field_selector: Optional[str] = None,
        allow_watch_bookmarks: bool = False, timeout_seconds: Optional[int] = None,
        send_initial_events: Optional[bool] = None, resource_version_match: Optional[str] = None,
    ) -> Watch:
        """Open a watch; iterate it for `WatchEvent`s. ERROR events (410 Expired ...) come as events."""
        return Watch(await self.watch_raw(
            namespace, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, allow_watch_bookmarks=allow_watch_bookmarks,
            timeout_seconds=timeout_seconds, send_initial_events=send_initial_events,
            resource_version_match=resource_version_match,
        ))

    # -- writes ---------------------------------------------------------------------------------

    async def create_raw(
        self, body: bytes, namespace: Optional[str], *, subresource: str = "", name: str = "",
        dry_run: bool = False, field_manager: Optional[str] = None, field_validation: Optional[str] = None,
    ) -> bytes:
        params = _write_params(dry_run, field_manager, field_validation)
        return await self.transport.create(self.ref, self._ns(namespace), body, subresource, params or None, name)

    async def create(
        self, obj: Mapping[str, Any], namespace: Optional[str] = None, *, subresource: str = "", name: str = "",
        dry_run: bool = False, field_manager: Optional[str] = None, field_validation: Optional[str] = None,
    ) -> Obj:
        """POST the object (409 AlreadyExistsError when the name is taken). apiVersion/kind are filled in.

        `subresource` + `name` post to an object's subresource (pods/binding, pods/eviction).
        """
        if not subresource:
            obj = self._typed(obj)
        data: Obj = orjson.loads(await self.create_raw(
            orjson.dumps(obj), self._ns(namespace, obj), subresource=subresource, name=name, dry_run=dry_run,
            field_manager=field_manager, field_validation=field_validation,
        ))
        return data

    def _typed(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        if "apiVersion" in obj and "kind" in obj:
            return obj
        filled = dict(obj)
        filled.setdefault("apiVersion", self.ref.group_version)
        filled.setdefault("kind", self.ref.kind)
        return filled

    async def update_raw(
        self, name: str, body: bytes, namespace: Optional[str], *, subresource: str = "", dry_run: bool = False,
        field_manager: Optional[str] = None, field_validation: Optional[str] = None,
    ) -> bytes:
        params = _write_params(dry_run, field_manager, field_validation)
        return await self.transport.update(self.ref, self._ns(namespace), name, body, subresource, params or None)

    async def update(
        self, obj: Mapping[str, Any], namespace: Optional[str] = None, *, subresource: str = "",
        dry_run: bool = False, field_manager: Optional[str] = None, field_validation: Optional[str] = None,
    ) -> Obj:
        """PUT the object; its metadata.resourceVersion, if set, must be current (else ConflictError)."""
        obj = self._typed(obj)
        data: Obj = orjson.loads(await self.update_raw(
            self._name(obj), orjson.dumps(obj), self._ns(namespace, obj), subresource=subresource,
            dry_run=dry_run, field_manager=field_manager, field_validation=field_validation,
        ))
        return data

    async def update_status(self, obj: Mapping[str, Any], namespace: Optional[str] = None, *,
                            dry_run: bool = False) -> Obj:
        """PUT to the status subresource (only status changes are kept)."""
        return await self.update(obj, namespace, subresource="status", dry_run=dry_run)

    async def patch_raw(
        self, name: str, body: bytes, namespace: Optional[str] = None, *, patch_type: str = "strategic",
        subresource: str = "", dry_run: bool = False, field_manager: Optional[str] = None,
        force: Optional[bool] = None,
    ) -> bytes:
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_CONTENT_TYPES)} (got {patch_type!r})") from None
        params = _write_params(dry_run, field_manager, None)
        if force is not None:
            params["force"] = "true" if force else "false"
        return await self.transport.patch(
            self.ref, self._ns(namespace), name, content_type, body, subresource, params or None
        )

    async def patch(
        self, name: str, patch: Union[Mapping[str, Any], List[Any]], namespace: Optional[str] = None, *,
        patch_type: str = "strategic", subresource: str = "", dry_run: bool = False,
        field_manager: Optional[str] = None, force: Optional[bool] = None,
    ) -> Obj:
        """PATCH: `patch_type` "strategic" (default, as kubectl), "merge", "json" (a list of ops) or "apply"."""
        data: Obj = orjson.loads(await self.patch_raw(
            name, orjson.dumps(patch), namespace, patch_type=patch_type, subresource=subresource,
            dry_run=dry_run, field_manager=field_manager, force=force,
        ))
        return data

    async def delete_raw(
        self, name: str, namespace: Optional[str] = None, *, body: Optional[bytes] = None, dry_run: bool = False,
    ) -> bytes:
        params = _params(dryRun="All" if dry_run else None)
        return await self.transport.delete(self.ref, self._ns(namespace), name, body, params or None)

    async def delete(
        self, name: str, namespace: Optional[str] = None, *, grace_period_seconds: Optional[int] = None,
        propagation_policy: Optional[str] = None, preconditions: Optional[Mapping[str, str]] = None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE: a Status on success, or the object while a grace period or finalizers keep it."""
        body = _delete_options(grace_period_seconds, propagation_policy, preconditions)
        data: Obj = orjson.loads(await self.delete_raw(name, namespace, body=body, dry_run=dry_run))
        return data

    async def delete_collection(
        self, namespace: Optional[str] = None, *, label_selector: Optional[str] = None,
        field_selector: Optional[str] = None, grace_period_seconds: Optional[int] = None,
        propagation_policy: Optional[str] = None, dry_run: bool = False,
    ) -> Obj:
        """DELETE every object the selectors match (in `namespace`, or everywhere if None)."""
        params = _params(labelSelector=label_selector or None, fieldSelector=field_selector or None,
                         dryRun="All" if dry_run else None)
        body = _delete_options(grace_period_seconds, propagation_policy, None)
        data: Obj = orjson.loads(
            await self.transport.delete_collection(self.ref, namespace or None, body, params or None)
        )
        return data


def _delete_options(
    grace_period_seconds: Optional[int], propagation_policy: Optional[str], preconditions: Optional[Mapping[str, str]],
) -> Optional[bytes]:
    options: Obj = {}
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if propagation_policy is not None:
        options["propagationPolicy"] = propagation_policy
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if not options:
        return None
    options["kind"] = "DeleteOptions"
    options["apiVersion"] = "v1"
    return orjson.dumps(options)


class Client:
    """The API, over one transport: `client.resource("pods")` gives the verbs of one resource."""

    def __init__(self, transport: Transport, *, namespace: str = "default") -> None:
        self.transport = transport
        self.namespace = namespace
        self._resources: Dict[ResourceRef, ResourceClient] = {}

    @classmethod
    def from_kubeconfig(
        cls, path: Optional[str] = None, context: Optional[str] = None, *, qps: float = 5.0, burst: int = 10,
        max_connections: int = 4, timeout: Optional[float] = 60.0, **options: Any,
    ) -> "Client":
        """A client over HTTP for a kubeconfig context (defaults as client-go: qps 5, burst 10)."""
        from .http import HTTPTransport

        config = load_kubeconfig(path, context)
        transport = HTTPTransport.from_config(
            config, qps=qps, burst=burst, max_connections=max_connections, timeout=timeout, **options
        )
        return cls(transport, namespace=config.namespace)

    def resource(self, group_version_or_plural: Union[str, ResourceRef], plural: Optional[str] = None) -> ResourceClient:
        """`resource("pods")`, `resource("apps/v1", "deployments")` or `resource(ResourceRef(...))`."""
        if isinstance(group_version_or_plural, ResourceRef):
            ref = group_version_or_plural
        else:
            ref = lookup(group_version_or_plural, plural)
        rc = self._resources.get(ref)
        if rc is None:
            rc = self._resources[ref] = ResourceClient(self.transport, ref)
        return rc

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: object) -> None:
        await self.close()
