"""The storage conformance suite: one set of behaviours every `Storage` implementation must show.

Written once, in the manner of k8s.io/apiserver pkg/storage/testing/store_tests.go
(RunTestCreate, RunTestGet, RunTestGuaranteedUpdate, RunTestConditionalDelete,
RunTestListContinuation, ...), against nothing but the `Storage` protocol.

Running it over an implementation takes one small file (see test_embedded.py)::

    # tests/conformance/test_etcd3.py
    import contextlib, pytest
    from .harness import Harness
    from .storage_suite import StorageSuite

    @pytest.fixture
    def make_harness(etcd_server):            # whatever the implementation needs
        @contextlib.asynccontextmanager
        async def make():
            storage = await Etcd3Storage.connect(etcd_server.url)
            try:
                yield Harness(storage, advance=asyncio.sleep)   # real time lets leases expire
            finally:
                await storage.close()
        return make

    class TestEtcd3(StorageSuite):
        pass

A CacheDelegator run is the same shape: its harness wraps the embedded
storage in the delegator. A behaviour an implementation may legitimately
lack gets a class attribute here (as `supports_ttl`), never a skipped test
in the suite's body.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from megaplane.storage import (
    ADDED,
    DELETED,
    MODIFIED,
    ConflictError,
    ExpiredError,
    KeyExistsError,
    KeyNotFoundError,
    PreconditionFailedError,
    Preconditions,
    Progress,
    StoredObject,
    TooLargeResourceVersionError,
    WatchEvent,
    WatchStream,
)

from .harness import Harness, MakeHarness, assert_served, collect, labels_of, pod, run, uid_of


def _relabel(value: str):  # type: ignore[no-untyped-def]
    """A try_update that sets label a=value, keeping the name and uid of the current object."""

    def update(cur: StoredObject | None):  # type: ignore[no-untyped-def]
        assert cur is not None
        meta = orjson.loads(cur.data)["metadata"]
        return pod(meta["name"], uid=meta["uid"], labels={"a": value})

    return update


class StorageSuite:
    """Subclass as `Test<Implementation>` next to a `make_harness` fixture."""

    supports_ttl = True

    # -- create ---------------------------------------------------------------------------

    def test_create_returns_served_object(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            before = await h.storage.current_revision()
            obj = await h.storage.create(h.key("a"), pod("a"))
            assert obj.key == h.key("a")
            assert obj.revision > before and obj.create_revision == obj.revision
            assert_served(obj)
            got = await h.storage.get(h.key("a"))
            assert got.data == obj.data and got.revision == obj.revision
            assert await h.storage.current_revision() >= obj.revision

        run(make_harness, body)

    def test_create_plain_bytes_gets_resource_version(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            obj = await h.storage.create(h.key("a"), pod("a")(0))
            assert_served(obj)
            assert_served(await h.storage.get(h.key("a")))

        run(make_harness, body)

    def test_create_existing_key(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            first = await h.storage.create(h.key("a"), pod("a"))
            with pytest.raises(KeyExistsError):
                await h.storage.create(h.key("a"), pod("a", uid="other"))
            assert (await h.storage.get(h.key("a"))).data == first.data

        run(make_harness, body)

    def test_create_with_ttl_expires(self, make_harness: MakeHarness) -> None:
        if not self.supports_ttl:
            return

        async def body(h: Harness) -> None:
            await h.storage.create(h.key("event"), pod("event"), ttl=2)
            await h.storage.create(h.key("kept"), pod("kept"))
            async with await WatchStream.open(h.storage, h.prefix) as stream:
                await h.advance(5)
                (gone,) = await collect(stream, 1)
            assert isinstance(gone, WatchEvent) and gone.type == DELETED and gone.key == h.key("event")
            with pytest.raises(KeyNotFoundError):
                await h.storage.get(h.key("event"))
            await h.storage.get(h.key("kept"))

        run(make_harness, body)

    # -- get ------------------------------------------------------------------------------

    def test_get_missing(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            with pytest.raises(KeyNotFoundError):
                await h.storage.get(h.key("nope"))

        run(make_harness, body)

    def test_get_at_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a", labels={"a": "1"}))
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"a": "2"}), expected_revision=v1.revision)
            old = await h.storage.get(h.key("a"), revision=v1.revision)
            assert old.revision == v1.revision and labels_of(old.data) == {"a": "1"}
            assert_served(old)
            assert (await h.storage.get(h.key("a"), revision=v2.revision)).data == v2.data
            with pytest.raises(KeyNotFoundError):
                await h.storage.get(h.key("a"), revision=v1.revision - 1)

        run(make_harness, body)

    def test_get_compacted_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"x": "y"}), expected_revision=v1.revision)
            await h.storage.compact(v2.revision)
            with pytest.raises(ExpiredError) as e:
                await h.storage.get(h.key("a"), revision=v1.revision)
            assert e.value.compact_revision >= v2.revision
            assert (await h.storage.get(h.key("a"), revision=v2.revision)).revision == v2.revision

        run(make_harness, body)

    def test_get_future_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            obj = await h.storage.create(h.key("a"), pod("a"))
            with pytest.raises(TooLargeResourceVersionError) as e:
                await h.storage.get(h.key("a"), revision=obj.revision + 1000)
            assert e.value.requested == obj.revision + 1000 and e.value.current >= obj.revision

        run(make_harness, body)

    # -- update ---------------------------------------------------------------------------

    def test_update_with_expected_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"a": "2"}), expected_revision=v1.revision)
            assert v2.revision > v1.revision and v2.create_revision == v1.create_revision
            assert_served(v2)
            assert (await h.storage.get(h.key("a"))).data == v2.data

        run(make_harness, body)

    def test_update_stale_revision_conflicts(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"a": "2"}), expected_revision=v1.revision)
            with pytest.raises(ConflictError) as e:
                await h.storage.update(h.key("a"), pod("a", labels={"a": "3"}), expected_revision=v1.revision)
            assert e.value.current.revision == v2.revision and e.value.current.data == v2.data
            assert (await h.storage.get(h.key("a"))).revision == v2.revision

        run(make_harness, body)

    def test_update_missing_key(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            with pytest.raises(KeyNotFoundError):
                await h.storage.update(h.key("nope"), pod("nope"), expected_revision=5)

        run(make_harness, body)

    # -- guaranteed_update ----------------------------------------------------------------

    def test_guaranteed_update(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            seen: list[int] = []

            def bump(cur: StoredObject | None):  # type: ignore[no-untyped-def]
                assert cur is not None
                seen.append(cur.revision)
                return pod("a", labels={"a": "2"})

            v2 = await h.storage.guaranteed_update(h.key("a"), bump)
            assert seen == [v1.revision] and v2.revision > v1.revision
            assert labels_of(v2.data) == {"a": "2"}
            assert_served(v2)

        run(make_harness, body)

    def test_guaranteed_update_retries_with_fresh_state(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            stale = v1
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"a": "other"}), expected_revision=v1.revision)
            seen: list[int] = []

            def bump(cur: StoredObject | None):  # type: ignore[no-untyped-def]
                assert cur is not None
                seen.append(cur.revision)
                return pod("a", labels={"a": "mine", "was": labels_of(cur.data).get("a", "")})

            out = await h.storage.guaranteed_update(h.key("a"), bump, cached_existing=stale)
            assert seen[-1] == v2.revision  # the write that won was made on the fresh state
            assert labels_of(out.data) == {"a": "mine", "was": "other"}

        run(make_harness, body)

    def test_guaranteed_update_concurrent_writers(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            await h.storage.create(h.key("a"), pod("a", labels={"n": "0"}))

            def increment(cur: StoredObject | None):  # type: ignore[no-untyped-def]
                assert cur is not None
                return pod("a", labels={"n": str(int(labels_of(cur.data)["n"]) + 1)})

            async def writer() -> None:
                for _ in range(10):
                    await h.storage.guaranteed_update(h.key("a"), increment)

            await asyncio.gather(writer(), writer(), writer())
            assert labels_of((await h.storage.get(h.key("a"))).data) == {"n": "30"}

        run(make_harness, body)

    def test_guaranteed_update_preconditions(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a", uid="u1"))
            with pytest.raises(PreconditionFailedError) as e:
                await h.storage.guaranteed_update(h.key("a"), _relabel("x"), preconditions=Preconditions(uid="u2"))
            assert "Precondition failed: UID in precondition: u2, UID in object meta: u1" in str(e.value)
            with pytest.raises(PreconditionFailedError):
                await h.storage.guaranteed_update(
                    h.key("a"), _relabel("x"), preconditions=Preconditions(resource_version=str(v1.revision + 7))
                )
            out = await h.storage.guaranteed_update(
                h.key("a"), _relabel("x"), preconditions=Preconditions(uid="u1", resource_version=str(v1.revision))
            )
            assert labels_of(out.data) == {"a": "x"}

        run(make_harness, body)

    def test_guaranteed_update_missing_key(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            with pytest.raises(KeyNotFoundError):
                await h.storage.guaranteed_update(h.key("nope"), _relabel("x"))

            def create(cur: StoredObject | None):  # type: ignore[no-untyped-def]
                assert cur is None
                return pod("nope")

            made = await h.storage.guaranteed_update(h.key("nope"), create, ignore_not_found=True)
            assert made.create_revision == made.revision
            assert_served(made)

        run(make_harness, body)

    def test_guaranteed_update_no_op(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            same = await h.storage.guaranteed_update(h.key("a"), lambda cur: None)
            assert same.revision == v1.revision and same.data == v1.data
            same = await h.storage.guaranteed_update(h.key("a"), lambda cur: cur.data if cur else None)
            assert same.revision == v1.revision
            assert (await h.storage.get(h.key("a"))).revision == v1.revision

        run(make_harness, body)

    def test_guaranteed_update_error_stops(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))

            def refuse(cur: StoredObject | None):  # type: ignore[no-untyped-def]
                raise _Interrupt()

            with pytest.raises(_Interrupt):
                await h.storage.guaranteed_update(h.key("a"), refuse, cached_existing=v1)
            assert (await h.storage.get(h.key("a"))).revision == v1.revision

        run(make_harness, body)

    # -- delete ---------------------------------------------------------------------------

    def test_delete_returns_last_state(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a", labels={"a": "1"}))
            gone = await h.storage.delete(h.key("a"))
            assert gone.revision > v1.revision and gone.create_revision == v1.create_revision
            assert labels_of(gone.data) == {"a": "1"}
            assert_served(gone)  # the last state at the delete's revision, as upstream returns it
            with pytest.raises(KeyNotFoundError):
                await h.storage.get(h.key("a"))
            with pytest.raises(KeyNotFoundError):
                await h.storage.delete(h.key("a"))

        run(make_harness, body)

    def test_delete_preconditions(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a", uid="u1"))
            with pytest.raises(PreconditionFailedError):
                await h.storage.delete(h.key("a"), preconditions=Preconditions(uid="u2"))
            with pytest.raises(PreconditionFailedError):
                await h.storage.delete(h.key("a"), preconditions=Preconditions(resource_version="1"))
            await h.storage.get(h.key("a"))
            await h.storage.delete(h.key("a"), preconditions=Preconditions(uid="u1", resource_version=str(v1.revision)))

        run(make_harness, body)

    def test_delete_precondition_only_suggestion_passes(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a", uid="myUID"))
            v2 = await h.storage.update(h.key("a"), pod("a", uid="otherUID"), expected_revision=v1.revision)
            with pytest.raises(PreconditionFailedError):
                await h.storage.delete(h.key("a"), preconditions=Preconditions(uid="myUID"), cached_existing=v1)
            assert (await h.storage.get(h.key("a"))).revision == v2.revision

        run(make_harness, body)

    def test_delete_expected_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"a": "2"}), expected_revision=v1.revision)
            with pytest.raises(ConflictError) as e:
                await h.storage.delete(h.key("a"), expected_revision=v1.revision)
            assert e.value.current.revision == v2.revision
            await h.storage.delete(h.key("a"), expected_revision=v2.revision)

        run(make_harness, body)

    def test_delete_validate_deletion(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            calls: list[int] = []

            def refuse(obj: StoredObject) -> None:
                calls.append(obj.revision)
                raise _Interrupt()

            with pytest.raises(_Interrupt):
                await h.storage.delete(h.key("a"), validate_deletion=refuse, cached_existing=v1)
            assert calls == [v1.revision]
            v2 = await h.storage.update(h.key("a"), pod("a", labels={"foo": "bar"}), expected_revision=v1.revision)

            def fresh_only(obj: StoredObject) -> None:
                calls.append(obj.revision)
                if labels_of(obj.data).get("foo") != "bar":
                    raise _Interrupt()

            gone = await h.storage.delete(h.key("a"), validate_deletion=fresh_only, cached_existing=v1)
            assert calls[-1] == v2.revision and len(calls) <= 3  # the suggestion may be tried first
            assert labels_of(gone.data) == {"foo": "bar"}

        run(make_harness, body)

    def test_delete_with_stale_suggestion_of_deleted_object(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            v1 = await h.storage.create(h.key("a"), pod("a"))
            await h.storage.delete(h.key("a"), cached_existing=v1)
            with pytest.raises(KeyNotFoundError):
                await h.storage.delete(h.key("a"), cached_existing=v1)

        run(make_harness, body)

    # -- list and count ---------------------------------------------------------------------

    def test_list_and_count(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            made = [await h.storage.create(h.key(n), pod(n)) for n in ("c", "a", "b")]
            await h.storage.create(h.prefix[:-1] + b"-sibling/x", pod("x"))  # outside the prefix
            res = await h.storage.list(h.prefix)
            assert [o.key for o in res.items] == [h.key("a"), h.key("b"), h.key("c")]
            assert not res.more and res.remaining == 0 and res.next_key == b""
            assert res.revision >= max(o.revision for o in made)
            for o in res.items:
                assert_served(o)
            assert await h.storage.count(h.prefix) == 3

        run(make_harness, body)

    def test_list_at_revision(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            a = await h.storage.create(h.key("a"), pod("a", labels={"v": "1"}))
            await h.storage.update(h.key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
            await h.storage.create(h.key("b"), pod("b"))
            res = await h.storage.list(h.prefix, revision=a.revision)
            assert res.revision == a.revision
            assert [(o.key, labels_of(o.data)) for o in res.items] == [(h.key("a"), {"v": "1"})]

        run(make_harness, body)

    def test_list_pagination_is_consistent(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            objs = {n: await h.storage.create(h.key(n), pod(n)) for n in ("a", "b", "c", "d", "e")}
            page = await h.storage.list(h.prefix, limit=2)
            assert [o.key for o in page.items] == [h.key("a"), h.key("b")]
            assert page.more and page.remaining == 3 and page.next_key == h.key("b") + b"\0"
            # Writes between pages do not show: the next pages read at the first page's revision.
            await h.storage.update(h.key("c"), pod("c", labels={"late": "1"}), expected_revision=objs["c"].revision)
            await h.storage.delete(h.key("d"))
            await h.storage.create(h.key("bb"), pod("bb"))
            page2 = await h.storage.list(h.prefix, limit=2, revision=page.revision, start_key=page.next_key)
            assert page2.revision == page.revision
            assert [o.key for o in page2.items] == [h.key("c"), h.key("d")]
            assert labels_of(page2.items[0].data) == {}
            assert page2.more and page2.remaining == 1
            page3 = await h.storage.list(h.prefix, limit=2, revision=page.revision, start_key=page2.next_key)
            assert [o.key for o in page3.items] == [h.key("e")] and not page3.more and page3.remaining == 0

        run(make_harness, body)

    def test_list_limit_exact(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            for n in ("a", "b"):
                await h.storage.create(h.key(n), pod(n))
            page = await h.storage.list(h.prefix, limit=2)
            assert len(page.items) == 2 and not page.more and page.next_key == b""

        run(make_harness, body)

    def test_list_compacted_and_future(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            a = await h.storage.create(h.key("a"), pod("a"))
            b = await h.storage.create(h.key("b"), pod("b"))
            await h.storage.compact(b.revision)
            with pytest.raises(ExpiredError):
                await h.storage.list(h.prefix, revision=a.revision)
            with pytest.raises(TooLargeResourceVersionError):
                await h.storage.list(h.prefix, revision=b.revision + 1000)
            with pytest.raises(ExpiredError):
                await h.storage.compact(a.revision)

        run(make_harness, body)

    def test_list_empty(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            res = await h.storage.list(h.prefix)
            assert res.items == [] and not res.more and res.revision >= 1
            assert await h.storage.count(h.prefix) == 0

        run(make_harness, body)

    # -- watch ----------------------------------------------------------------------------

    def test_watch_from_now(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            await h.storage.create(h.key("before"), pod("before"))
            async with await WatchStream.open(h.storage, h.prefix) as stream:
                a = await h.storage.create(h.key("a"), pod("a"))
                (ev,) = await collect(stream, 1)
            assert isinstance(ev, WatchEvent)
            assert (ev.type, ev.key, ev.revision, ev.create_revision) == (ADDED, h.key("a"), a.revision, a.revision)
            assert ev.value == a.data and ev.prev_value is None

        run(make_harness, body)

    def test_watch_event_types_and_order(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            async with await WatchStream.open(h.storage, h.prefix) as stream:
                a1 = await h.storage.create(h.key("a"), pod("a"))
                a2 = await h.storage.update(h.key("a"), pod("a", labels={"v": "2"}), expected_revision=a1.revision)
                b1 = await h.storage.create(h.key("b"), pod("b"))
                gone = await h.storage.delete(h.key("a"))
                await h.storage.create(h.prefix[:-1] + b"-other/x", pod("x"))  # not under the prefix
                events = await collect(stream, 4)
            assert all(isinstance(e, WatchEvent) for e in events)
            evs = [e for e in events if isinstance(e, WatchEvent)]
            assert [(e.type, e.key) for e in evs] == [
                (ADDED, h.key("a")), (MODIFIED, h.key("a")), (ADDED, h.key("b")), (DELETED, h.key("a"))
            ]
            assert [e.revision for e in evs] == [a1.revision, a2.revision, b1.revision, gone.revision]
            assert evs[1].prev_value == a1.data and evs[1].value == a2.data
            deleted = evs[3]
            assert deleted.prev_value == a2.data and deleted.create_revision == a1.revision
            assert deleted.value == gone.data  # the last state at the delete's revision
            for e in evs:
                assert_served(StoredObject(e.key, e.value, e.revision, e.create_revision))

        run(make_harness, body)

    def test_watch_replays_history(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            a = await h.storage.create(h.key("a"), pod("a"))
            b = await h.storage.create(h.key("b"), pod("b"))
            a2 = await h.storage.update(h.key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
            async with await WatchStream.open(h.storage, h.prefix, from_revision=b.revision) as stream:
                replayed = await collect(stream, 2)
                c = await h.storage.create(h.key("c"), pod("c"))
                (live,) = await collect(stream, 1)
            assert [(e.type, e.revision) for e in replayed if isinstance(e, WatchEvent)] == [
                (ADDED, b.revision), (MODIFIED, a2.revision)
            ]
            assert isinstance(live, WatchEvent) and live.revision == c.revision

        run(make_harness, body)

    def test_watch_after_list(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            await h.storage.create(h.key("a"), pod("a"))
            listed = await h.storage.list(h.prefix)
            b = await h.storage.create(h.key("b"), pod("b"))
            async with await WatchStream.open(h.storage, h.prefix, from_revision=listed.revision + 1) as stream:
                (ev,) = await collect(stream, 1)
            assert isinstance(ev, WatchEvent) and ev.revision == b.revision

        run(make_harness, body)

    def test_watch_compacted(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            a = await h.storage.create(h.key("a"), pod("a"))
            b = await h.storage.update(h.key("a"), pod("a", labels={"v": "2"}), expected_revision=a.revision)
            await h.storage.compact(b.revision)
            stream = await WatchStream.open(h.storage, h.prefix, from_revision=a.revision)
            with pytest.raises(ExpiredError) as e:
                await collect(stream, 1)
            assert e.value.compact_revision >= b.revision
            assert stream.handle.done

        run(make_harness, body)

    def test_watch_progress(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            async with await WatchStream.open(h.storage, h.prefix, progress=True) as stream:
                a = await h.storage.create(h.key("a"), pod("a"))
                elsewhere = await h.storage.create(h.prefix[:-1] + b"-other/x", pod("x"))
                stream.request_progress()
                ev, progress = await collect(stream, 2)
            assert isinstance(ev, WatchEvent) and ev.revision == a.revision
            assert isinstance(progress, Progress) and progress.revision >= elsewhere.revision
            assert stream.handle.revision >= elsewhere.revision

        run(make_harness, body)

    def test_watch_cancel_stops_events(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            got: list[WatchEvent] = []
            handle = await h.storage.watch(
                h.prefix, from_revision=0, on_events=got.extend, on_error=lambda e: None
            )
            handle.cancel()
            handle.cancel()
            assert handle.done
            await h.storage.create(h.key("a"), pod("a"))
            # A second watch proves the write was published; the cancelled one saw nothing.
            async with await WatchStream.open(h.storage, h.prefix, from_revision=1) as stream:
                await collect(stream, 1)
            assert got == []

        run(make_harness, body)

    def test_served_bytes_carry_uid(self, make_harness: MakeHarness) -> None:
        async def body(h: Harness) -> None:
            obj = await h.storage.create(h.key("a"), pod("a", uid="the-uid"))
            assert uid_of(obj.data) == "the-uid"

        run(make_harness, body)


class _Interrupt(Exception):
    """Raised by a test's callback to stop the storage call it is inside."""
