"""`SplitStorage`: one `Storage` whose resources live in different backends (--etcd-servers-overrides).

Each call goes to the backend of the resource its key belongs to: the
longest registered prefix (``/registry/leases/``, ``/registry/events/``)
that the key starts with, else the default backend. Revisions are each
backend's own, as with kube-apiserver's overrides: a resourceVersion is
only comparable within its resource. `backend_for` lets the API server
give each resource's cache and store its own backend directly; a keyed
`current_revision(key)` answers the revision of the key's own cluster (a
consistent read of an overridden resource waits for that one), only calls
without a key (`current_revision()`, `compact`) reach the default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ..interface import (
    ListResult,
    OnError,
    OnEvents,
    OnProgress,
    Preconditions,
    Storage,
    StoredObject,
    UpdateFunc,
    ValidateDeletion,
    Value,
    WatchHandle,
)

__all__ = ["SplitStorage"]


class SplitStorage:
    """Routes each key to its resource's backend."""

    def __init__(self, default: Storage, overrides: Dict[bytes, Storage]) -> None:
        self.default = default
        # Longest first, so /registry/a/b/ wins over /registry/a/.
        self._routes: List[Tuple[bytes, Storage]] = sorted(overrides.items(), key=lambda kv: -len(kv[0]))

    def __repr__(self) -> str:
        routes = ", ".join(f"{p.decode()}: {s!r}" for p, s in self._routes)
        return f"<SplitStorage default={self.default!r} {routes}>"

    def backend_for(self, key: bytes) -> Storage:
        for prefix, storage in self._routes:
            if key.startswith(prefix):
                return storage
        return self.default

    @property
    def backends(self) -> List[Storage]:
        out: List[Storage] = [self.default]
        for _, s in self._routes:
            if all(s is not o for o in out):
                out.append(s)
        return out

    async def current_revision(self, key: bytes = b"") -> int:
        return await (self.backend_for(key) if key else self.default).current_revision(key)

    async def get(self, key: bytes, *, revision: int = 0) -> StoredObject:
        return await self.backend_for(key).get(key, revision=revision)

    async def list(
        self, prefix: bytes, *, revision: int = 0, limit: int = 0, start_key: bytes = b""
    ) -> ListResult:
        return await self.backend_for(prefix).list(prefix, revision=revision, limit=limit, start_key=start_key)

    async def count(self, prefix: bytes) -> int:
        return await self.backend_for(prefix).count(prefix)

    async def create(self, key: bytes, value: Value, *, ttl: int = 0) -> StoredObject:
        return await self.backend_for(key).create(key, value, ttl=ttl)

    async def update(
        self, key: bytes, value: Value, *, expected_revision: int, ttl: int = 0
    ) -> StoredObject:
        return await self.backend_for(key).update(key, value, expected_revision=expected_revision, ttl=ttl)

    async def guaranteed_update(
        self,
        key: bytes,
        try_update: UpdateFunc,
        *,
        preconditions: Optional[Preconditions] = None,
        ignore_not_found: bool = False,
        cached_existing: Optional[StoredObject] = None,
        ttl: int = 0,
    ) -> StoredObject:
        return await self.backend_for(key).guaranteed_update(
            key, try_update, preconditions=preconditions, ignore_not_found=ignore_not_found,
            cached_existing=cached_existing, ttl=ttl)

    async def delete(
        self,
        key: bytes,
        *,
        preconditions: Optional[Preconditions] = None,
        expected_revision: Optional[int] = None,
        validate_deletion: Optional[ValidateDeletion] = None,
        cached_existing: Optional[StoredObject] = None,
    ) -> StoredObject:
        return await self.backend_for(key).delete(
            key, preconditions=preconditions, expected_revision=expected_revision,
            validate_deletion=validate_deletion, cached_existing=cached_existing)

    async def compact(self, revision: int) -> None:
        await self.default.compact(revision)

    async def watch(
        self,
        prefix: bytes,
        *,
        from_revision: int,
        on_events: OnEvents,
        on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> WatchHandle:
        return await self.backend_for(prefix).watch(
            prefix, from_revision=from_revision, on_events=on_events, on_error=on_error, on_progress=on_progress)


if TYPE_CHECKING:

    def _conforms(s: SplitStorage) -> Storage:  # the explicit interface check
        return s
