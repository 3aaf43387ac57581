"""SharedInformer against a real megaplane: sync, delivery, indexes, relist on 410, resume across kill -9."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from typing import Any, Iterator, List, Tuple

import pytest

from megaplane.client import (
    NODE_NAME_INDEX,
    Backoff,
    Client,
    DeletedFinalStateUnknown,
    HTTPTransport,
    SharedInformer,
    label_index,
    node_name_index,
)
from tests.api.conftest import Cluster
from tests.client.conftest import eventually, start_on
from tests.etcd.conftest import free_port

Event = Tuple[str, str]


class Recorder:
    """Handlers that record (kind, name) of every delivery, in order."""

    def __init__(self) -> None:
        self.events: List[Event] = []
        self.deleted: List[Any] = []

    def add(self, obj: Any) -> None:
        self.events.append(("add", obj["metadata"]["name"]))

    def update(self, old: Any, new: Any) -> None:
        self.events.append(("update", new["metadata"]["name"]))

    def delete(self, obj: Any) -> None:
        self.deleted.append(obj)
        name = obj.key.rpartition("/")[2] if isinstance(obj, DeletedFinalStateUnknown) else obj["metadata"]["name"]
        self.events.append(("delete", name))

    def attach(self, informer: SharedInformer) -> None:
        informer.add_event_handler(self.add, self.update, self.delete)


def pod(name: str, node: str = "", **labels: str) -> Any:
    spec: Any = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, cap=0.5)


def test_sync_delivery_indexes_and_late_handlers(cluster: Cluster) -> None:
    async def main() -> None:
        async with Client(HTTPTransport(cluster.url, qps=0)) as client:
            await client.resource("namespaces").create({"metadata": {"name": "inf"}})
            pods = client.resource("pods")
            for i in range(7):
                await pods.create(pod(f"p{i}", node=f"node-{i % 2}", app="a" if i < 3 else "b"), "inf")
            informer = SharedInformer(pods, namespace="inf", page_size=3, backoff=fast_backoff(),
                                      indexers={NODE_NAME_INDEX: node_name_index, "app": label_index("app")})
            rec = Recorder()
            rec.attach(informer)
            async with informer:
                assert await informer.wait_for_sync(20)
                assert sorted(rec.events) == sorted(("add", f"p{i}") for i in range(7))
                assert informer.statistics()["lists"] == 1

                lister = informer.lister
                assert lister.get("inf", "p1") is not None and lister.get("inf", "nope") is None
                assert {p["metadata"]["name"] for p in informer.indexer.by_index(NODE_NAME_INDEX, "node-0")} == \
                    {"p0", "p2", "p4", "p6"}
                assert len(lister.by_index("app", "a")) == 3
                assert len(lister.list("inf", label_selector="app=b")) == 4
                assert len(lister.list("inf", label_selector="app notin (a,b)")) == 0
                assert lister.list("elsewhere") == []

                rec.events.clear()
                await pods.create(pod("new", node="node-9", app="a"), "inf")
                await pods.patch("p0", {"metadata": {"labels": {"app": "b"}}}, "inf", patch_type="merge")
                await pods.delete("p1", "inf", grace_period_seconds=0)
                await eventually(lambda: len(rec.events) >= 3, what="three events")
                assert rec.events == [("add", "new"), ("update", "p0"), ("delete", "p1")]
                assert informer.indexer.index_keys(NODE_NAME_INDEX, "node-9") == ["inf/new"]
                assert len(lister.by_index("app", "a")) == 2  # p2 and new: p0 moved to b, p1 is gone
                assert lister.get("inf", "p1") is None

                late = Recorder()
                informer.add_event_handler(late.add)
                assert len(late.events) == 7 and all(kind == "add" for kind, _ in late.events)

    asyncio.run(main())


def test_resync_redelivers_every_object(cluster: Cluster) -> None:
    async def main() -> List[Event]:
        async with Client(HTTPTransport(cluster.url, qps=0)) as client:
            await client.resource("namespaces").create({"metadata": {"name": "resync"}})
            cms = client.resource("configmaps")
            for name in ("a", "b"):
                await cms.create({"metadata": {"name": name}}, "resync")
            informer = SharedInformer(cms, namespace="resync", resync_period=0.05)
            rec = Recorder()
            rec.attach(informer)
            async with informer:
                await eventually(lambda: rec.events.count(("update", "a")) >= 2, what="two resyncs")
            return rec.events

    events = asyncio.run(main())
    assert events[:2] == [("add", "a"), ("add", "b")] or events[:2] == [("add", "b"), ("add", "a")]
    assert ("update", "b") in events


@pytest.fixture
def small_window_cluster() -> Iterator[Cluster]:
    from tests.api.conftest import start_cluster

    root = tempfile.mkdtemp(prefix="megaplane-client-")
    c = start_cluster(root, ["--default-watch-cache-size", "5", "--watch-cache-window", "0s"])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_relist_on_410_delivers_the_difference(small_window_cluster: Cluster) -> None:
    cluster = small_window_cluster

    async def main() -> Tuple[Recorder, Any]:
        async with Client(HTTPTransport(cluster.url, qps=0)) as client:
            cms = client.resource("configmaps")
            for name in ("keep", "change", "remove"):
                await cms.create({"metadata": {"name": name}, "data": {"v": "0"}}, "default")
            informer = SharedInformer(cms, namespace="default", backoff=fast_backoff())
            rec = Recorder()
            rec.attach(informer)
            await informer.start()
            assert await informer.wait_for_sync(20)
            await informer.stop()
            old_rv = informer.last_sync_resource_version
            rec.events.clear()

            await cms.create({"metadata": {"name": "added"}}, "default")
            await cms.patch("change", {"data": {"v": "1"}}, "default", patch_type="merge")
            await cms.delete("remove", "default")
            for i in range(10):  # push the informer's resourceVersion out of the 5-event window
                await cms.patch("added", {"data": {"n": str(i)}}, "default", patch_type="merge")

            async def too_old() -> bool:
                async with await cms.watch("default", resource_version=old_rv) as events:
                    async for event in events:
                        return event.type == "ERROR" and event.object.get("code") == 410
                return False

            await eventually(too_old, what="the old resourceVersion to leave the window")
            await informer.start()  # resumes from old_rv: 410 in the stream, then a relist
            await eventually(lambda: len(rec.events) >= 3, what="relist deliveries")
            stats = informer.statistics()
            await informer.stop()
            return rec, stats

    rec, stats = asyncio.run(main())
    assert sorted(rec.events) == [("add", "added"), ("delete", "remove"), ("update", "change")]
    (gone,) = rec.deleted
    assert isinstance(gone, DeletedFinalStateUnknown) and gone.key == "default/remove"
    assert gone.obj["metadata"]["name"] == "remove"
    assert stats["relists"] == 1 and stats["lists"] == 2


def test_resume_after_kill_9_and_restart(tmp_path: Any) -> None:
    root = str(tmp_path)
    port, secure = free_port(), free_port()
    extra = ["--wal-default", "fsync"]
    server = start_on(root, port, secure, extra)
    procs = [server]

    async def main() -> Recorder:
        nonlocal server
        async with Client(HTTPTransport(f"http://127.0.0.1:{port}", qps=0, timeout=10)) as client:
            cms = client.resource("configmaps")
            for name in ("a", "b"):
                await cms.create({"metadata": {"name": name}}, "default")
            informer = SharedInformer(cms, namespace="default", backoff=fast_backoff())
            rec = Recorder()
            rec.attach(informer)
            async with informer:
                assert await informer.wait_for_sync(20)
                await cms.create({"metadata": {"name": "before"}}, "default")
                await eventually(lambda: ("add", "before") in rec.events, what="the pre-crash add")

                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
                await eventually(lambda: informer.statistics()["errors"] >= 1, what="the informer to notice")
                server = await asyncio.get_running_loop().run_in_executor(None, start_on, root, port, secure, extra)
                procs.append(server)

                await cms.create({"metadata": {"name": "c"}}, "default")
                await cms.patch("a", {"data": {"x": "1"}}, "default", patch_type="merge")
                await cms.delete("b", "default")
                await cms.create({"metadata": {"name": "last"}}, "default")
                await eventually(lambda: ("add", "last") in rec.events, timeout=60, what="post-restart events")
                assert {o["metadata"]["name"] for o in informer.lister.list("default")} == \
                    {"a", "before", "c", "last"}
            return rec

    try:
        rec = asyncio.run(main())
    finally:
        for p in procs:
            p.stop()
    initial = sorted(rec.events[:2])
    assert initial == [("add", "a"), ("add", "b")]
    assert rec.events[2:] == [("add", "before"), ("add", "c"), ("update", "a"), ("delete", "b"), ("add", "last")] \
        or sorted(rec.events[3:]) == sorted([("add", "c"), ("update", "a"), ("delete", "b"), ("add", "last")])
    # nothing missed, nothing twice
    assert len(rec.events) == len(set(rec.events)) == 7


def test_backoff_doubles_caps_and_resets() -> None:
    class Manual:
        now = 0.0

        def monotonic(self) -> float:
            return self.now

        async def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Manual()
    backoff = Backoff(clock=clock, rng=lambda: 0.0)
    assert [backoff.next() for _ in range(8)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    clock.now += 121
    assert backoff.next() == 0.8
    jittered = Backoff(clock=clock, rng=lambda: 0.5)
    assert jittered.next() == pytest.approx(1.2)
