"""A Python etcd client from PyPI (aetcd) against megaplane's store: CRUD, txn, watch, leases, compaction."""

from __future__ import annotations

import asyncio

import aetcd
import aetcd.exceptions
import pytest


def run(coro):
    return asyncio.run(coro)


async def client_for(server) -> aetcd.Client:
    host, port = server.endpoint.split(":")
    c = aetcd.Client(host=host, port=int(port), timeout=10)
    await c.connect()
    return c


def test_crud_and_ranges(megaplane):
    async def main():
        async with await client_for(megaplane) as c:
            put = await c.put(b"/py/a", b"1")
            assert put.header.revision > 1
            await c.put(b"/py/b", b"2")
            got = await c.get(b"/py/a")
            assert got.value == b"1" and got.version == 1
            prefix = await c.get_prefix(b"/py/")
            assert [kv.key for kv in prefix] == [b"/py/a", b"/py/b"]
            rng = await c.get_range(b"/py/a", b"/py/b")
            assert [kv.key for kv in rng] == [b"/py/a"]
            deleted = await c.delete(b"/py/a", prev_kv=True)
            assert deleted.deleted == 1 and deleted.prev_kv.value == b"1"
            assert await c.get(b"/py/a") is None
            gone = await c.delete_prefix(b"/py/")
            assert gone.deleted == 1

    run(main())


def test_transaction(megaplane):
    async def main():
        async with await client_for(megaplane) as c:
            await c.put(b"/pytx/k", b"v1")
            t = c.transactions
            ok, responses = await c.transaction(
                compare=[t.value(b"/pytx/k") == b"v1", t.version(b"/pytx/k") > 0],
                success=[t.put(b"/pytx/k", b"v2"), t.get(b"/pytx/k")],
                failure=[t.put(b"/pytx/k", b"failed")],
            )
            assert ok and responses[1][0][0] == b"v2"
            ok, _ = await c.transaction(compare=[t.value(b"/pytx/k") == b"v1"], success=[], failure=[t.delete(b"/pytx/k")])
            assert not ok and await c.get(b"/pytx/k") is None

    run(main())


def test_watch_from_revision_and_live(megaplane):
    async def main():
        async with await client_for(megaplane) as c:
            first = await c.put(b"/pyw/a", b"1")
            await c.put(b"/pyw/a", b"2")
            watch = await c.watch(b"/pyw/", range_end=b"/pyw0", start_revision=first.header.revision, prev_kv=True)
            seen = []
            async def consume():
                async for ev in watch:
                    seen.append((ev.kind, ev.kv.key, ev.kv.value, ev.prev_kv.value if ev.prev_kv else None))
                    if len(seen) == 4:
                        break
            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            await c.put(b"/pyw/b", b"x")
            await c.delete(b"/pyw/a")
            await asyncio.wait_for(task, 10)
            await watch.cancel()
            kinds = [s[0].value if hasattr(s[0], "value") else str(s[0]) for s in seen]
            assert [s[1:3] for s in seen] == [(b"/pyw/a", b"1"), (b"/pyw/a", b"2"), (b"/pyw/b", b"x"), (b"/pyw/a", b"")]
            assert seen[1][3] == b"1" and seen[3][3] == b"2"
            assert kinds[-1].lower().endswith("delete")

    run(main())


def test_leases_and_compaction(megaplane):
    async def main():
        async with await client_for(megaplane) as c:
            lease = await c.lease(60)
            await c.put(b"/pyl/a", b"1", lease=lease.id)
            assert await lease.remaining_ttl() in (59, 60)
            assert await lease.keys() == [b"/pyl/a"]
            await lease.refresh()
            await lease.revoke()
            assert await c.get(b"/pyl/a") is None
            r1 = await c.put(b"/pyc", b"1")
            await c.put(b"/pyc", b"2")
            await c.compact(r1.header.revision + 1)
            with pytest.raises(Exception, match="required revision has been compacted"):
                await c.compact(r1.header.revision + 1)
            # A watch from a compacted revision reaches the client as its compaction error.
            watch = await c.watch(b"/pyc", start_revision=r1.header.revision)
            with pytest.raises(aetcd.exceptions.RevisionCompactedError):
                async for _ in watch:
                    pass
            status = await c.status()
            assert status.version >= "3.5.13"

    run(main())
