"""--etcd-servers-overrides and consistent reads: each resource's freshness is its own cluster's revision.

Two stores whose revisions differ (the default far ahead of the leases' cluster): a consistent read from the
leases' cache through a `CacheDelegator` over `SplitStorage` waits for the leases cluster's revision, so it
answers at once from the cache (no fallback to storage after the block timeout) and sees the latest write.
"""

from __future__ import annotations

import asyncio

from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.watchcache import WatchCache
from megaplane.apiserver.watchcache.delegator import CacheDelegator
from megaplane.storage import EmbeddedStorage
from megaplane.storage.etcd3 import SplitStorage
from megaplane.store import Store

LEASES = b"/registry/leases/"


def _lease(name: str, holder: str):  # type: ignore[no-untyped-def]
    def encode(revision: int) -> bytes:
        rv = f',"resourceVersion":"{revision}"' if revision else ""
        return (f'{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"{name}",'
                f'"namespace":"ns"{rv}}},"spec":{{"holderIdentity":"{holder}"}}}}').encode()

    return encode


def test_consistent_read_of_an_overridden_resource_waits_for_its_own_cluster() -> None:
    async def main() -> None:
        default, leases = EmbeddedStorage(Store()), EmbeddedStorage(Store())
        split = SplitStorage(default, {LEASES: leases})
        for i in range(50):  # the default cluster's revision runs far ahead of the leases cluster's
            await default.create(f"/registry/configmaps/ns/c{i}".encode(), b'{"metadata":{}}')
        resource = lookup("coordination.k8s.io", "leases")
        assert resource is not None
        cache = WatchCache(resource, split.backend_for(LEASES))
        await cache.start()
        try:
            # A block timeout a broken routing would sit out in full before falling back to storage.
            d = CacheDelegator(split, {LEASES: cache}, block_timeout=30.0)
            key = LEASES + b"ns/l1"
            await split.create(key, _lease("l1", "a"))
            assert await split.current_revision(key) == await leases.current_revision()
            assert await split.current_revision(key) < await split.current_revision()
            got = await d.get(key)
            assert b'"holderIdentity":"a"' in got.data
            listed = await d.list(LEASES)
            assert [o.key for o in listed.items] == [key]
            assert await d.count(LEASES) == 1
            assert d.consistent_read_fallbacks == 0
        finally:
            cache.stop()

    asyncio.run(main())
