"""What only the CacheDelegator promises: which reads the cache answers, freshness waits, fallbacks.

The counterpart of upstream's delegator_test.go and cacher_whitebox_test.go.
The delegator reads a `_Counting` wrapper of the embedded storage, so each
test can say which calls reached storage. The cache is fed through
`_Feed`, a wrapper of the same storage whose watch can be held (the cache
lags, as behind a slow etcd), broken (the cache relists) and whose list
can be gated (the relist stays unfinished): the fake is only of what a
single in-process store cannot do on its own.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable, List, Optional

import pytest

from megaplane.apimachinery.resources import lookup
from megaplane.apiserver.watchcache import WatchCache, delegator
from megaplane.apiserver.watchcache.delegator import CacheDelegator
from megaplane.storage import (
    ADDED,
    MODIFIED,
    EmbeddedStorage,
    ExpiredError,
    InternalError,
    KeyNotFoundError,
    OnError,
    OnEvents,
    OnProgress,
    StorageError,
    UnavailableError,
    WatchEvent,
    WatchHandle,
    WatchStream,
)
from megaplane.store import Store

from .harness import DEADLINE, collect, pod

PODS = b"/registry/pods/"
NS = b"/registry/pods/ns/"


def key(name: str) -> bytes:
    return NS + name.encode()


class _Counting:
    """A storage whose calls are counted by method name (`calls`)."""

    def __init__(self, inner: EmbeddedStorage) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class _FeedWatch:
    """The cache's storage watch, which `_Feed` can hold back or break."""

    def __init__(self, feed: "_Feed", from_revision: int, on_events: OnEvents, on_error: OnError) -> None:
        self.feed = feed
        self.on_events = on_events
        self.on_error = on_error
        self.inner: Optional[WatchHandle] = None
        self.delivered = max(from_revision - 1, 0)
        self.buffer: List[WatchEvent] = []

    def take(self, events: List[WatchEvent]) -> None:
        if self.feed.held:
            self.buffer.extend(events)
        else:
            self.delivered = events[-1].revision
            self.on_events(events)

    def release(self) -> None:
        events, self.buffer = self.buffer, []
        if events:
            self.take(events)

    @property
    def revision(self) -> int:
        assert self.inner is not None
        return self.delivered if self.feed.held or self.buffer else self.inner.revision

    @property
    def done(self) -> bool:
        assert self.inner is not None
        return self.inner.done

    def request_progress(self) -> None:
        assert self.inner is not None
        self.inner.request_progress()

    def cancel(self) -> None:
        assert self.inner is not None
        self.inner.cancel()


class _Feed:
    """The storage a watch cache is fed from, with a hold, a break and a gate for its relist."""

    def __init__(self, storage: EmbeddedStorage) -> None:
        self.storage = storage
        self.held = False
        self.list_gate: Optional[asyncio.Event] = None
        self.current: Optional[_FeedWatch] = None

    async def list(self, prefix: bytes, **kwargs: Any) -> Any:
        if self.list_gate is not None:
            await self.list_gate.wait()
        return await self.storage.list(prefix, **kwargs)

    async def watch(
        self, prefix: bytes, *, from_revision: int, on_events: OnEvents, on_error: OnError,
        on_progress: Optional[OnProgress] = None,
    ) -> _FeedWatch:
        w = _FeedWatch(self, from_revision, on_events, on_error)
        w.inner = await self.storage.watch(
            prefix, from_revision=from_revision, on_events=w.take, on_error=on_error, on_progress=on_progress)
        self.current = w
        return w

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False
        assert self.current is not None
        self.current.release()

    def break_watch(self) -> None:
        """End the cache's watch as a lost connection would: the cache relists."""
        w = self.current
        assert w is not None and w.inner is not None
        w.inner.cancel()
        w.on_error(UnavailableError(PODS, 0, "connection lost"))


class _Env:
    def __init__(self, store: Store) -> None:
        self.raw = EmbeddedStorage(store)
        self.storage = _Counting(self.raw)
        self.feed = _Feed(self.raw)
        pods = lookup("", "pods")
        assert pods is not None
        self.cache = WatchCache(pods, self.feed)  # type: ignore[arg-type]
        self.delegator = CacheDelegator(self.storage, {PODS: self.cache}, block_timeout=0.05)  # type: ignore[arg-type]

    @property
    def calls(self) -> collections.Counter[str]:
        return self.storage.calls


def run(body: Callable[[_Env], Awaitable[None]], *, start: bool = True) -> None:
    async def main() -> None:
        store = Store()
        store.attach_loop(asyncio.get_running_loop())
        env = _Env(store)
        if start:
            await env.cache.start()
        try:
            await body(env)
        finally:
            env.cache.stop()
            store.close()

    asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds, failing after DEADLINE."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0)


# -- which reads the cache answers ----------------------------------------------------------


def test_reads_route_by_resource_version() -> None:
    async def body(env: _Env) -> None:
        d, raw = env.delegator, env.raw
        a = await d.create(key("a"), pod("a"))
        a2 = await d.update(key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
        await d.create(key("b"), pod("b"))
        assert env.calls["create"] == 2 and env.calls["update"] == 1
        env.calls.clear()

        # Consistent reads: storage is asked only for its revision; the cache answers, in storage's shapes.
        assert await d.get(key("a")) == await raw.get(key("a"))
        with pytest.raises(KeyNotFoundError):
            await d.get(key("nope"))
        assert await d.list(NS) == await raw.list(NS)
        page = await d.list(NS, limit=1)
        assert page == await raw.list(NS, limit=1)
        assert await d.count(NS) == 2
        assert set(env.calls) == {"current_revision"}
        env.calls.clear()

        # Exact revisions and continuations read storage.
        assert (await d.get(key("a"), revision=a.revision)).revision == a.revision
        rest = await d.list(NS, revision=page.revision, start_key=page.next_key)
        assert [o.key for o in rest.items] == [key("b")]
        assert [o.revision for o in (await d.list(NS, revision=a2.revision)).items] == [a2.revision]
        assert env.calls == {"get": 1, "list": 2}
        env.calls.clear()

        # A key no cache covers reads storage.
        await raw.create(b"/registry/configmaps/ns/c", pod("c"))
        await d.get(b"/registry/configmaps/ns/c")
        await d.list(b"/registry/configmaps/")
        assert env.calls == {"get": 1, "list": 1}

    run(body)


def test_cache_for_takes_the_longest_covering_prefix() -> None:
    async def body(env: _Env) -> None:
        wide = WatchCache(env.cache.resource, env.raw)
        d = CacheDelegator(env.raw, {b"/registry/": wide, NS: env.cache})
        assert d.cache_for(key("a")) is env.cache and d.cache_for(NS) is env.cache
        assert d.cache_for(b"/registry/pods/other/x") is wide and d.cache_for(PODS) is wide
        assert d.cache_for(b"/elsewhere/x") is None and d.cache_for(b"") is None

    run(body)


def test_writes_pass_to_storage_with_the_callers_suggestion() -> None:
    async def body(env: _Env) -> None:
        d = env.delegator
        a = await d.create(key("a"), pod("a"))
        seen: List[int] = []

        def bump(cur: Any) -> Any:
            seen.append(cur.revision)
            return pod("a", labels={"v": str(len(seen))})

        await d.guaranteed_update(key("a"), bump, cached_existing=a)
        gone = await d.delete(key("a"))
        await d.compact(gone.revision)
        assert seen == [a.revision]
        assert env.calls == {"create": 1, "guaranteed_update": 1, "delete": 1, "compact": 1}

    run(body)


# -- freshness ------------------------------------------------------------------------------------


def test_consistent_read_waits_until_the_cache_has_storages_revision() -> None:
    async def body(env: _Env) -> None:
        d = CacheDelegator(env.storage, {PODS: env.cache}, block_timeout=DEADLINE)  # type: ignore[arg-type]
        env.feed.hold()
        made = await env.raw.create(key("a"), pod("a"))
        assert env.cache.revision < made.revision
        reading = asyncio.ensure_future(d.get(key("a")))
        # It asked storage for the revision, then waits for the cache (it does not read storage).
        await until(lambda: env.calls["current_revision"] == 1)
        await asyncio.sleep(0)
        assert not reading.done()
        env.feed.release()
        got = await asyncio.wait_for(reading, DEADLINE)
        assert got.revision == made.revision and got.data == made.data
        assert env.calls == {"current_revision": 1} and d.consistent_read_fallbacks == 0

    run(body)


def test_consistent_read_falls_back_to_storage_after_the_block_timeout() -> None:
    async def body(env: _Env) -> None:
        d = env.delegator  # block_timeout 0.05 s: the cache stays behind for longer
        env.feed.hold()
        made = await env.raw.create(key("a"), pod("a"))
        got = await d.get(key("a"))
        assert got == made
        listed = await d.list(NS)
        assert [o.revision for o in listed.items] == [made.revision]
        assert await d.count(NS) == 1
        assert env.calls["get"] == 1 and env.calls["list"] == 1 and env.calls["count"] == 1
        assert d.consistent_read_fallbacks == 3
        env.feed.release()
        env.calls.clear()
        assert await d.get(key("a")) == made
        assert env.calls == {"current_revision": 1}

    run(body)


# -- a cache that is not ready -----------------------------------------------------------------


def test_not_started_cache_delegates_everything() -> None:
    async def body(env: _Env) -> None:
        d = env.delegator
        assert not env.cache.ready
        made = await d.create(key("a"), pod("a"))
        assert await d.get(key("a")) == made
        await d.list(NS)
        await d.count(NS)
        async with await WatchStream.open(d, NS, from_revision=made.revision) as stream:
            (ev,) = await collect(stream, 1)
        assert isinstance(ev, WatchEvent) and ev.revision == made.revision
        assert env.calls == {"create": 1, "get": 1, "list": 1, "count": 1, "watch": 1}

    run(body, start=False)


def test_relisting_cache_delegates_until_it_is_ready_again() -> None:
    async def body(env: _Env) -> None:
        d = env.delegator
        a = await env.raw.create(key("a"), pod("a"))
        env.feed.list_gate = asyncio.Event()
        env.feed.break_watch()
        assert not env.cache.ready
        a2 = await env.raw.update(key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
        assert (await d.get(key("a"))).revision == a2.revision
        assert [o.revision for o in (await d.list(NS)).items] == [a2.revision]
        assert env.calls == {"get": 1, "list": 1}
        env.feed.list_gate.set()
        await until(lambda: env.cache.ready)
        env.calls.clear()
        assert (await d.get(key("a"))).revision == a2.revision
        assert env.calls == {"current_revision": 1}

    run(body)


# -- watches --------------------------------------------------------------------------------------


def test_watch_inside_the_window_is_served_by_the_cache() -> None:
    async def body(env: _Env) -> None:
        d, raw = env.delegator, env.raw
        a = await raw.create(key("a"), pod("a"))
        await raw.update(key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
        await raw.create(b"/registry/pods/other/x", pod("x"))  # in the cache, not under the prefix
        async with await WatchStream.open(d, NS, from_revision=a.revision) as cached:
            async with await WatchStream.open(raw, NS, from_revision=a.revision) as direct:
                b = await raw.create(key("b"), pod("b"))
                served = await collect(cached, 3)
                expected = await collect(direct, 3)
        assert served == expected  # storage's events, exactly
        assert [(e.type, e.revision) for e in served if isinstance(e, WatchEvent)][-1] == (ADDED, b.revision)
        assert env.calls["watch"] == 0

    run(body)


def test_watch_older_than_the_window_goes_to_storage() -> None:
    async def body(env: _Env) -> None:
        env.cache.stop()
        a = await env.raw.create(key("a"), pod("a"))
        await env.cache.start()  # its window starts after `a`
        assert env.cache.oldest >= a.revision
        async with await WatchStream.open(env.delegator, NS, from_revision=a.revision) as stream:
            (ev,) = await collect(stream, 1)
        assert isinstance(ev, WatchEvent) and ev.revision == a.revision
        assert env.calls["watch"] == 1

    run(body, start=False)


def test_watch_older_than_both_is_expired() -> None:
    async def body(env: _Env) -> None:
        a = await env.raw.create(key("a"), pod("a"))
        b = await env.raw.update(key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
        await env.raw.compact(b.revision)
        await env.cache.start()
        stream = await WatchStream.open(env.delegator, NS, from_revision=a.revision)
        with pytest.raises(ExpiredError):
            await collect(stream, 1)
        assert env.calls["watch"] == 1

    run(body, start=False)


def test_watch_below_compaction_inside_the_window_is_served() -> None:
    """Upstream's cacher too: the window does not follow storage compaction (see test_cacher.py)."""

    async def body(env: _Env) -> None:
        a = await env.raw.create(key("a"), pod("a"))
        b = await env.raw.update(key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
        await env.raw.compact(b.revision)
        async with await WatchStream.open(env.delegator, NS, from_revision=a.revision) as stream:
            events = await collect(stream, 2)
        assert [(e.type, e.revision) for e in events if isinstance(e, WatchEvent)] == [
            (ADDED, a.revision), (MODIFIED, b.revision)
        ]
        assert env.calls["watch"] == 0

    run(body)


def test_long_replay_is_delivered_in_batches_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delegator, "REPLAY_BATCH", 3)

    async def body(env: _Env) -> None:
        made = [await env.raw.create(key(f"p{i:02}"), pod(f"p{i:02}")) for i in range(10)]
        batches: List[List[int]] = []
        handle = await env.delegator.watch(
            NS, from_revision=made[0].revision, on_events=lambda evs: batches.append([e.revision for e in evs]),
            on_error=lambda err: None)
        assert batches == []  # the replay comes from the loop, after the caller has the handle
        late = await env.raw.create(key("late"), pod("late"))  # queued behind the replay
        await until(lambda: sum(map(len, batches)) == 11)
        assert [r for batch in batches for r in batch] == [m.revision for m in made] + [late.revision]
        assert len(batches) > 3 and handle.revision >= late.revision
        handle.cancel()

    run(body)


def test_cache_watch_continues_on_storage_when_the_cache_relists() -> None:
    async def body(env: _Env) -> None:
        a = await env.raw.create(key("a"), pod("a"))
        async with await WatchStream.open(env.delegator, NS, from_revision=a.revision) as stream:
            (first,) = await collect(stream, 1)
            env.feed.list_gate = asyncio.Event()  # the relist stays unfinished: the cache cannot serve
            env.feed.break_watch()
            b = await env.raw.create(key("b"), pod("b"))
            c = await env.raw.create(key("c"), pod("c"))
            rest = await collect(stream, 2)
            assert env.calls["watch"] == 1  # resumed on storage after the last revision delivered
            stream.request_progress()
        revisions = [e.revision for e in [first, *rest] if isinstance(e, WatchEvent)]
        assert revisions == [a.revision, b.revision, c.revision]

    run(body)


def test_consumer_that_raises_ends_only_its_own_watch() -> None:
    async def body(env: _Env) -> None:
        errors: List[StorageError] = []

        def explode(events: List[WatchEvent]) -> None:
            raise RuntimeError("consumer bug")

        broken = await env.delegator.watch(NS, from_revision=0, on_events=explode, on_error=errors.append)
        async with await WatchStream.open(env.delegator, NS) as healthy:
            made = await env.delegator.create(key("a"), pod("a"))  # the write still succeeds
            (ev,) = await collect(healthy, 1)
            assert isinstance(ev, WatchEvent) and ev.revision == made.revision
            assert broken.done and len(errors) == 1 and isinstance(errors[0], InternalError)
            assert env.cache.ready and len(env.cache.listeners) == 1  # only the healthy watch follows it
            again = await env.delegator.create(key("b"), pod("b"))
            (ev2,) = await collect(healthy, 1)
            assert isinstance(ev2, WatchEvent) and ev2.revision == again.revision

    run(body)


def test_progress_waits_for_the_cache_to_reach_storage() -> None:
    async def body(env: _Env) -> None:
        d = CacheDelegator(env.storage, {PODS: env.cache}, block_timeout=DEADLINE)  # type: ignore[arg-type]
        async with await WatchStream.open(d, NS, progress=True) as stream:
            env.feed.hold()
            made = await env.raw.create(key("a"), pod("a"))
            stream.request_progress()
            await until(lambda: env.calls["current_revision"] == 1)
            env.feed.release()
            ev, progress = await collect(stream, 2)
        assert isinstance(ev, WatchEvent) and ev.revision == made.revision
        assert not isinstance(progress, WatchEvent) and progress.revision >= made.revision

    run(body)
