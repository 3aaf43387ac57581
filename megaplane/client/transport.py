"""The seam between the client and a server: verbs on resources, in bytes.

A `Transport` carries one Kubernetes verb on one resource and answers with
the response body as bytes, or raises the typed error of
`megaplane.client.errors`. It works at the resource level, not the HTTP
level, so two implementations fit behind it: `HTTPTransport` (any API
server, over the network) and an in-process transport that calls
megaplane's registry directly and hands over the stored bytes. Nothing in
the client above this seam knows which one it has.

Contract, for every method:

- `ref` names the resource; `namespace` is "" / None for cluster-scoped
  resources and for all-namespaces lists and watches.
- `params` are the query parameters exactly as the REST API spells them
  (`labelSelector`, `resourceVersion`, `limit`, `continue`,
  `allowWatchBookmarks`, `timeoutSeconds`, `dryRun`, `fieldManager`, ...),
  already strings.
- Bodies in and out are JSON bytes (`application/json`); a patch body is in
  the encoding its `content_type` names (one of `PATCH_CONTENT_TYPES`).
- A non-2xx answer raises the `StatusError` subclass for its Status; a
  server that cannot be reached raises `ConnectionFailedError`; no answer
  in time raises `RequestTimeoutError`. Nothing hangs without a deadline
  except an open watch, whose end the server decides (`timeoutSeconds`).
"""

from __future__ import annotations

from typing import AsyncIterator, Mapping, Optional, Protocol, runtime_checkable

from .resources import ResourceRef

__all__ = ["Transport", "WatchStream", "Params", "PATCH_CONTENT_TYPES"]

Params = Mapping[str, str]

PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
"""Patch type -> the Content-Type upstream clients send for it."""


@runtime_checkable
class WatchStream(Protocol):
    """An open watch: each item is one event's bytes, `{"type": ..., "object": {...}}` without framing.

    Iteration ends when the server ends the watch (its timeout, a restart:
    the caller re-watches from the last resourceVersion it saw). An ERROR
    event (e.g. 410 Expired) is delivered as an item like any other; the
    stream ends after it. `close()` may be called at any time, more than
    once, and ends iteration.
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def close(self) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """Verbs on resources (see the module docstring for the contract every method keeps)."""

    async def get(
        self, ref: ResourceRef, namespace: Optional[str], name: str, subresource: str = "",
        params: Optional[Params] = None,
    ) -> bytes:
        """GET one object (or its subresource): the object's JSON."""
        ...

    async def list(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> bytes:
        """GET the collection: a `<Kind>List` JSON (one page when `limit` is given)."""
        ...

    async def create(
        self, ref: ResourceRef, namespace: Optional[str], body: bytes, subresource: str = "",
        params: Optional[Params] = None, name: str = "",
    ) -> bytes:
        """POST `body` to the collection (or to `name`'s subresource, e.g. pods/binding): the created JSON."""
        ...

    async def update(
        self, ref: ResourceRef, namespace: Optional[str], name: str, body: bytes, subresource: str = "",
        params: Optional[Params] = None,
    ) -> bytes:
        """PUT `body` over the object (its resourceVersion, if set, is a precondition): the stored JSON."""
        ...

    async def patch(
        self, ref: ResourceRef, namespace: Optional[str], name: str, content_type: str, body: bytes,
        subresource: str = "", params: Optional[Params] = None,
    ) -> bytes:
        """PATCH the object with `body` encoded as `content_type`: the stored JSON."""
        ...

    async def delete(
        self, ref: ResourceRef, namespace: Optional[str], name: str, body: Optional[bytes] = None,
        params: Optional[Params] = None,
    ) -> bytes:
        """DELETE the object (`body`: DeleteOptions JSON): a Status, or the object while finalizers hold it."""
        ...

    async def delete_collection(
        self, ref: ResourceRef, namespace: Optional[str], body: Optional[bytes] = None,
        params: Optional[Params] = None,
    ) -> bytes:
        """DELETE the collection (selectors in `params`): the list of deleted objects or a Status."""
        ...

    async def watch(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> WatchStream:
        """Open a watch (`watch=1` is implied): returns once the server accepted it.

        A refusal (400, 403, 410 on the request itself, ...) raises here;
        events, including ERROR events, come from the stream.
        """
        ...

    async def close(self) -> None:
        """Release connections and end open watches. Idempotent."""
        ...
