"""The storage conformance suite over EmbeddedStorage, plus what only the embedded store promises.

Two stores: memory only, and one with a data dir whose partitions are all
in fsync mode (acknowledged = on disk). The embedded-only tests check that
calls complete without suspending when no fsync is due, and that in fsync
mode a write's acknowledgement waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator, Coroutine, Iterator, TypeVar

import pytest

from megaplane.storage import EmbeddedStorage, StoredObject, WatchEvent, WatchStream
from megaplane.store import Store, StoreConfig

from .harness import Harness, MakeHarness, collect, pod
from .storage_suite import StorageSuite

T = TypeVar("T")


class _Clock:
    """The store's and the lease manager's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _open_store(mode: str, tmp_path: Path, clock: _Clock) -> Store:
    if mode == "memory":
        return Store(clock=clock)
    return Store(str(tmp_path / "data"), StoreConfig(wal_default="fsync"), clock=clock)


@pytest.fixture(params=["memory", "fsync"])
def make_harness(request: pytest.FixtureRequest, tmp_path: Path) -> MakeHarness:
    mode: str = request.param

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Harness]:
        clock = _Clock()
        store = _open_store(mode, tmp_path, clock)
        store.attach_loop(asyncio.get_running_loop())
        storage = EmbeddedStorage(store, clock=clock)

        async def advance(seconds: float) -> None:
            clock.now += seconds
            store.expire_leases()

        try:
            yield Harness(storage, advance)
        finally:
            store.close()

    return make


class TestEmbedded(StorageSuite):
    pass


# -- what only the embedded store promises ---------------------------------------------------


def _complete_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine as the API server does (`send(None)`); fail if it suspends."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the call suspended")


@pytest.fixture
def memory_storage() -> Iterator[EmbeddedStorage]:
    store = Store()
    yield EmbeddedStorage(store)
    store.close()


def test_memory_calls_never_suspend(memory_storage: EmbeddedStorage) -> None:
    s = memory_storage
    key = b"/registry/pods/ns/a"
    created = _complete_inline(s.create(key, pod("a")))
    updated = _complete_inline(s.update(key, pod("a", labels={"v": "2"}), expected_revision=created.revision))
    assert _complete_inline(s.get(key)).revision == updated.revision
    assert len(_complete_inline(s.list(b"/registry/pods/")).items) == 1
    assert _complete_inline(s.count(b"/registry/pods/")) == 1
    _complete_inline(s.guaranteed_update(key, lambda cur: pod("a", labels={"v": "3"})))
    _complete_inline(s.delete(key))
    _complete_inline(s.create(key, pod("a"), ttl=60))


def test_watch_is_fed_inside_the_write() -> None:
    async def body() -> None:
        store = Store()
        s = EmbeddedStorage(store)
        got: list[WatchEvent] = []
        await s.watch(b"/registry/pods/", from_revision=0, on_events=got.extend, on_error=lambda e: None)
        obj = _complete_inline(s.create(b"/registry/pods/ns/a", pod("a")))
        assert [e.revision for e in got] == [obj.revision]  # delivered before create returned
        store.close()

    asyncio.run(body())


def test_fsync_write_is_acknowledged_after_the_disk(tmp_path: Path) -> None:
    async def body() -> None:
        store = Store(str(tmp_path / "data"), StoreConfig(wal_default="fsync"))
        store.attach_loop(asyncio.get_running_loop())
        s = EmbeddedStorage(store)
        coro = s.create(b"/registry/pods/ns/a", pod("a"))
        waiting = coro.send(None)  # suspends: the record is committed in memory, not yet on disk
        rev = store.revision
        assert store.needs_durability(rev)
        obj: StoredObject = await _finish(coro, waiting)
        assert obj.revision == rev and not store.needs_durability(rev)
        store.close()
        # What was acknowledged is there after a restart.
        reopened = Store(str(tmp_path / "data"), StoreConfig(wal_default="fsync"))
        assert reopened.get(b"/registry/pods/ns/a") is not None
        reopened.close()

    asyncio.run(body())


async def _finish(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Finish a coroutine started by hand: wait for what it yielded, resume, until it returns."""
    while True:
        if waiting is None:
            await asyncio.sleep(0)
        else:
            # Not `await waiting`: the suspended coroutine already awaits that future itself.
            landed = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(lambda _, landed=landed: landed.done() or landed.set_result(None))
            await landed
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def test_fsync_watch_sees_only_durable_writes(tmp_path: Path) -> None:
    async def body() -> None:
        store = Store(str(tmp_path / "data"), StoreConfig(wal_default="fsync"))
        store.attach_loop(asyncio.get_running_loop())
        s = EmbeddedStorage(store)
        got: list[WatchEvent] = []
        await s.watch(b"/registry/pods/", from_revision=0, on_events=got.extend, on_error=lambda e: None)
        coro = s.create(b"/registry/pods/ns/a", pod("a"))
        waiting = coro.send(None)
        assert got == []  # held back until on disk
        obj = await _finish(coro, waiting)
        async with await WatchStream.open(s, b"/registry/pods/", from_revision=obj.revision) as stream:
            await collect(stream, 1)
        assert [e.revision for e in got] == [obj.revision]
        store.close()

    asyncio.run(body())
