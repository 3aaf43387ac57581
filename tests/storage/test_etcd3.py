"""The storage conformance suite over Etcd3Storage on a real etcd 3.4 and on `megaplane store`, and what only
a networked backend shows: the same keys as kube-apiserver, errors of an unreachable cluster, watches that
resume across a member restart, a relist when compacted, `--etcd-prefix`, endpoint failover.

One server process per module and backend; a test that compacted it leaves it to be wiped before the next
one (the suite watches from revision 1 and expects nothing compacted).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Iterator

import pytest

from megaplane.etcd.client import TRANSPORTS, ClientConfig
from megaplane.storage import (
    ExpiredError,
    RequestTimeoutError,
    StorageError,
    UnavailableError,
    WatchEvent,
    WatchStream,
)
from megaplane.storage.etcd3 import DEFAULT_PREFIX, Etcd3Storage, parse_overrides
from tests.conformance.harness import Harness, MakeHarness, collect, pod
from tests.conformance.storage_suite import StorageSuite

from .etcd_servers import EtcdCluster, EtcdProcess, StoreProcess, TLSEtcdProcess, etcdctl


@pytest.fixture(scope="module", params=["etcd", "megaplane-store"])
def server(request: pytest.FixtureRequest) -> Iterator[EtcdProcess]:
    proc = (EtcdProcess() if request.param == "etcd" else StoreProcess()).start()
    try:
        yield proc
    finally:
        proc.stop()


#: The client transport the module-level tests use (the suite runs over both).
TRANSPORT = "megaplane"


def _storage(url: str, transport: str = TRANSPORT, prefix: bytes = DEFAULT_PREFIX) -> Etcd3Storage:
    return Etcd3Storage.connect(ClientConfig([url], request_timeout=5.0, transport=transport), prefix=prefix)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_harness(server: EtcdProcess, transport: str) -> MakeHarness:
    if server.compacted():
        server.wipe()

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Harness]:
        storage = _storage(server.url, transport)
        try:
            yield Harness(storage, asyncio.sleep)  # real time lets etcd's leases expire
        finally:
            await storage.close()

    return make


class TestEtcd3(StorageSuite):
    pass


# -- what only a networked backend shows -------------------------------------------------------


def _run(body):  # type: ignore[no-untyped-def]
    asyncio.run(body())


def test_keys_and_values_as_kube_apiserver_writes_them(server: EtcdProcess) -> None:
    async def body() -> None:
        s = _storage(server.url)
        try:
            await s.create(b"/registry/pods/keys-ns/a", pod("a"))
            await s.create(b"/registry/minions/node-1", b'{"kind":"Node","metadata":{"name":"node-1"}}')
        finally:
            await s.close()

    _run(body)
    keys = etcdctl(server.endpoint, "get", "/registry/", "--prefix", "--keys-only").split()
    assert "/registry/pods/keys-ns/a" in keys and "/registry/minions/node-1" in keys
    # Stored as upstream stores objects: without a resourceVersion (etcd's revision is it).
    value = etcdctl(server.endpoint, "get", "/registry/pods/keys-ns/a", "--print-value-only")
    assert '"name":"a"' in value and "resourceVersion" not in value


def test_etcd_prefix_rewrites_the_first_segment(server: EtcdProcess) -> None:
    async def body() -> None:
        s = _storage(server.url, prefix=b"/other")
        try:
            made = await s.create(b"/registry/pods/prefix-ns/a", pod("a"))
            assert made.key == b"/registry/pods/prefix-ns/a"
            listed = await s.list(b"/registry/pods/prefix-ns/")
            assert [o.key for o in listed.items] == [b"/registry/pods/prefix-ns/a"]
            async with await WatchStream.open(s, b"/registry/pods/prefix-ns/") as stream:
                await s.delete(b"/registry/pods/prefix-ns/a")
                (ev,) = await collect(stream, 1)
            assert isinstance(ev, WatchEvent) and ev.key == b"/registry/pods/prefix-ns/a"
        finally:
            await s.close()

    _run(body)
    assert etcdctl(server.endpoint, "get", "/other/pods/prefix-ns/", "--prefix", "--keys-only").strip() == ""
    assert "/registry/pods/prefix-ns/a" not in etcdctl(server.endpoint, "get", "/registry/", "--prefix", "--keys-only")


def test_writes_settle_into_own_watches(server: EtcdProcess) -> None:
    """A write returns once this storage's watch on its prefix delivered it (the watch cache is then current)."""

    async def body() -> None:
        s = _storage(server.url)
        got: list[WatchEvent] = []
        try:
            await s.watch(b"/registry/pods/settle/", from_revision=0, on_events=got.extend, on_error=lambda e: None)
            for i in range(20):
                made = await s.create(b"/registry/pods/settle/%d" % i, pod(str(i)))
                assert got and got[-1].revision == made.revision
        finally:
            await s.close()

    _run(body)


def test_watch_compacted_while_disconnected_ends_expired() -> None:
    """A watch that was behind when its history was compacted ends with ExpiredError (its consumer relists)."""
    proc = EtcdProcess().start()
    try:
        async def body() -> None:
            s = _storage(proc.url)
            try:
                first = await s.create(b"/registry/pods/c/a", pod("a"))
                second = await s.update(b"/registry/pods/c/a", pod("a", labels={"v": "2"}),
                                        expected_revision=first.revision)
                await s.compact(second.revision)
                stream = await WatchStream.open(s, b"/registry/pods/c/", from_revision=first.revision)
                with pytest.raises(ExpiredError) as e:
                    await collect(stream, 1)
                assert e.value.compact_revision == second.revision
                with pytest.raises(ExpiredError) as got:
                    await s.get(b"/registry/pods/c/a", revision=first.revision)
                assert got.value.compact_revision == second.revision
            finally:
                await s.close()

        _run(body)
    finally:
        proc.stop()


def test_member_killed_then_restarted() -> None:
    """etcd killed: calls fail promptly with UnavailableError; restarted: served again, the watch resumes
    from the revision after the last one it delivered, with no gap and no duplicate."""
    proc = EtcdProcess().start()
    try:
        async def body() -> None:
            s = _storage(proc.url)
            got: list[WatchEvent] = []
            errors: list[StorageError] = []
            try:
                await s.watch(b"/registry/pods/r/", from_revision=0, on_events=got.extend, on_error=errors.append)
                a = await s.create(b"/registry/pods/r/a", pod("a"))
                proc.kill()
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises((UnavailableError, RequestTimeoutError)):
                    await s.get(b"/registry/pods/r/a")
                with pytest.raises((UnavailableError, RequestTimeoutError)):
                    await s.create(b"/registry/pods/r/b", pod("b"))
                assert loop.time() - started < s.client.timeout * 2  # prompt: never a hang
                proc.start()
                deadline = loop.time() + 30
                while True:
                    try:
                        b = await s.create(b"/registry/pods/r/b", pod("b"))
                        break
                    except (UnavailableError, RequestTimeoutError):
                        assert loop.time() < deadline, "etcd restarted but the storage never recovered"
                        await asyncio.sleep(0.1)
                c = await s.update(b"/registry/pods/r/b", pod("b", labels={"v": "2"}), expected_revision=b.revision)
                while not got or got[-1].revision < c.revision:
                    assert loop.time() < deadline, f"the watch did not resume: {got}"
                    await asyncio.sleep(0.05)
                assert [e.revision for e in got] == [a.revision, b.revision, c.revision]
                assert errors == []
            finally:
                await s.close()

        _run(body)
    finally:
        proc.stop()


def test_failover_to_the_next_endpoint(server: EtcdProcess) -> None:
    """A dead first endpoint: calls move on to the next member."""
    from tests.etcd.conftest import free_port

    async def body() -> None:
        s = Etcd3Storage.connect(ClientConfig([f"http://127.0.0.1:{free_port()}", server.url], request_timeout=5.0,
                                              transport=TRANSPORT))
        try:
            made = await s.create(b"/registry/pods/failover/a", pod("a"))
            assert (await s.get(b"/registry/pods/failover/a")).revision == made.revision
        finally:
            await s.close()

    _run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_with_client_certificates(transport: str) -> None:
    """https:// endpoints with --etcd-cafile/--etcd-certfile/--etcd-keyfile; without a client cert etcd refuses."""
    proc = TLSEtcdProcess().start()
    try:
        pki = proc.pki

        async def body() -> None:
            s = Etcd3Storage.connect(ClientConfig([proc.url], ca_file=pki["ca"], cert_file=pki["client_cert"],
                                                  key_file=pki["client_key"], request_timeout=5.0, transport=transport))
            try:
                async with await WatchStream.open(s, b"/registry/pods/tls/") as stream:
                    made = await s.create(b"/registry/pods/tls/a", pod("a"))
                    (ev,) = await collect(stream, 1)
                assert isinstance(ev, WatchEvent) and ev.revision == made.revision
                assert (await s.get(b"/registry/pods/tls/a")).revision == made.revision
            finally:
                await s.close()
            anonymous = Etcd3Storage.connect(ClientConfig([proc.url], ca_file=pki["ca"], request_timeout=3.0,
                                                          transport=transport))
            try:
                with pytest.raises(StorageError):
                    await anonymous.get(b"/registry/pods/tls/a")
            finally:
                await anonymous.close()

        _run(body)
    finally:
        proc.stop()


def test_overrides_syntax() -> None:
    """--etcd-servers-overrides as kube-apiserver parses it: group/resource#servers, servers ';'-separated."""
    got = parse_overrides("coordination.k8s.io/leases#http://127.0.0.1:2381;http://127.0.0.1:2382,"
                          "/events#http://127.0.0.1:2389, events.k8s.io/events#embedded")
    assert got == {b"/registry/leases/": ["http://127.0.0.1:2381", "http://127.0.0.1:2382"],
                   b"/registry/events/": ["embedded"]}  # events.k8s.io Events live with core Events
    for bad in ("leases#http://x:1", "/events", "/events#", "a/b#c#d"):
        with pytest.raises(ValueError, match="must be of format: group/resource#servers"):
            parse_overrides(bad)
    with pytest.raises(ValueError, match="no resource 'widgets'"):
        parse_overrides("example.com/widgets#http://127.0.0.1:1")
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        parse_overrides("/events#127.0.0.1:2379")


def test_split_storage_routes_by_resource(server: EtcdProcess) -> None:
    """Overridden resources go to their own backend, the rest to the default; embedded and etcd mix."""
    from megaplane.storage import EmbeddedStorage
    from megaplane.storage.etcd3 import BackendConfig, SplitStorage, build_storage
    from megaplane.store import Store

    async def body() -> None:
        store = Store()
        store.attach_loop(asyncio.get_running_loop())
        embedded = EmbeddedStorage(store)
        storage, backends = build_storage(
            BackendConfig(servers=[server.url], overrides=parse_overrides("/events#embedded")), lambda: embedded)
        assert isinstance(storage, SplitStorage) and backends is not None
        try:
            await storage.create(b"/registry/events/split/e1", pod("e1"), ttl=60)
            await storage.create(b"/registry/pods/split/p1", pod("p1"))
            assert store.get(b"/registry/events/split/e1") is not None
            assert store.get(b"/registry/pods/split/p1") is None
            assert (await storage.get(b"/registry/pods/split/p1")).key == b"/registry/pods/split/p1"
            assert storage.backend_for(b"/registry/events/") is embedded
        finally:
            await backends.stop()
            store.close()

    _run(body)
    assert etcdctl(server.endpoint, "get", "/registry/pods/split/", "--prefix", "--keys-only").split() == [
        "/registry/pods/split/p1"]
    assert etcdctl(server.endpoint, "get", "/registry/events/split/", "--prefix", "--keys-only").strip() == ""


def test_hung_member_detected_by_keepalive() -> None:
    """A member that stops answering (SIGSTOP: no RST, as a partition) is found by the HTTP/2 keepalive PING:
    the watch stream is dropped and, once the member answers again, resumed without a gap."""
    import signal

    proc = EtcdProcess().start()
    try:
        async def body() -> None:
            s = Etcd3Storage.connect(ClientConfig([proc.url], request_timeout=2.0, keepalive_time=0.5,
                                                  keepalive_timeout=0.5, transport="megaplane"))
            got: list[WatchEvent] = []
            try:
                handle = await s.watch(b"/registry/pods/k/", from_revision=0, on_events=got.extend,
                                       on_error=lambda e: None)
                a = await s.create(b"/registry/pods/k/a", pod("a"))
                session = s.client.watches()
                assert proc.proc is not None
                proc.proc.send_signal(signal.SIGSTOP)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                try:
                    while session.reconnects == 0:
                        assert loop.time() < deadline, "the keepalive never noticed the stopped member"
                        await asyncio.sleep(0.05)
                finally:
                    proc.proc.send_signal(signal.SIGCONT)
                while True:
                    try:
                        b = await s.create(b"/registry/pods/k/b", pod("b"))
                        break
                    except (UnavailableError, RequestTimeoutError):
                        assert loop.time() < deadline
                        await asyncio.sleep(0.1)
                while not got or got[-1].revision < b.revision:
                    assert loop.time() < deadline, got
                    await asyncio.sleep(0.05)
                assert [e.revision for e in got] == [a.revision, b.revision] and not handle.done
            finally:
                await s.close()

        _run(body)
    finally:
        proc.stop()


def test_compaction_protocol(server: EtcdProcess) -> None:
    """kube-apiserver's compaction: the compact_rev_key election, one compaction per interval for N servers,
    each to the revision seen an interval earlier."""
    from megaplane.storage.etcd3 import Compactor

    async def body() -> None:
        s = _storage(server.url)
        try:
            first, second = Compactor(s.client, 0), Compactor(s.client, 0)
            v1 = await s.create(b"/registry/pods/compactor/a", pod("a"))
            v2 = await s.update(b"/registry/pods/compactor/a", pod("a", labels={"v": "2"}), expected_revision=v1.revision)
            await first.compact_once()   # wins slot 0: records the revision, compacts nothing yet
            assert first.revision >= v2.revision
            await second.compact_once()  # loses slot 0: learns the key's version
            assert first.compactions == second.compactions == 0 and second.compact_time == first.compact_time
            assert (await s.get(b"/registry/pods/compactor/a", revision=v1.revision)).revision == v1.revision
            await first.compact_once()   # wins slot 1: compacts to what it saw last time
            assert first.compactions == 1
            await second.compact_once()  # loses slot 1: the interval's compaction is done
            assert second.compactions == 0
            with pytest.raises(ExpiredError):
                await s.get(b"/registry/pods/compactor/a", revision=v1.revision)
            assert (await s.get(b"/registry/pods/compactor/a")).revision == v2.revision
        finally:
            await s.close()

    _run(body)
    assert etcdctl(server.endpoint, "get", "compact_rev_key", "--print-value-only").strip().isdigit()


def test_request_too_large(server: EtcdProcess) -> None:
    """A value above etcd's --max-request-bytes (1.5 MiB by default) is RequestTooLargeError, which the API
    layer answers as upstream does ("etcdserver: request is too large"), and nothing is written."""
    from megaplane.storage import KeyNotFoundError, RequestTooLargeError

    async def body() -> None:
        s = _storage(server.url)
        try:
            big = b'{"metadata":{"name":"big"},"data":{"x":"' + b"x" * (2 << 20) + b'"}}'
            with pytest.raises(RequestTooLargeError):
                await s.create(b"/registry/configmaps/big/big", big)
            with pytest.raises(KeyNotFoundError):
                await s.get(b"/registry/configmaps/big/big")
        finally:
            await s.close()

    _run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_member_failover_in_a_three_member_cluster(transport: str) -> None:
    """kill -9 of the member the client uses: calls move to the next member, the watch resumes there from
    the revision after the last one delivered (no gap, no duplicate), acknowledged writes are all there."""
    cluster = EtcdCluster().start()
    try:
        async def body() -> None:
            s = Etcd3Storage.connect(ClientConfig(cluster.urls, request_timeout=5.0, transport=transport))
            got: list[WatchEvent] = []
            try:
                await s.watch(b"/registry/pods/fo/", from_revision=0, on_events=got.extend, on_error=lambda e: None)
                made = [await s.create(b"/registry/pods/fo/a%d" % i, pod("a")) for i in range(5)]
                used = s.client.member.url
                victim = next(m for m in cluster.members if m.url == used)
                victim.kill()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                for i in range(5):
                    while True:
                        try:
                            made.append(await s.create(b"/registry/pods/fo/b%d" % i, pod("b")))
                            break
                        except (UnavailableError, RequestTimeoutError):  # only while the leader moves
                            assert loop.time() < deadline, "no other member took over"
                            await asyncio.sleep(0.1)
                assert s.client.member.url != used
                while not got or got[-1].revision < made[-1].revision:
                    assert loop.time() < deadline, f"the watch did not resume on another member: {got}"
                    await asyncio.sleep(0.05)
                assert [e.revision for e in got] == [o.revision for o in made]
                assert (await s.count(b"/registry/pods/fo/")) == 10
            finally:
                await s.close()

        _run(body)
    finally:
        cluster.stop()
