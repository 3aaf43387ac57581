"""megaplane.client over the loopback transport: the same verbs, errors, watches and informers as over HTTP.

A control plane without listeners (store, API server, system bootstrap)
runs on the test's own event loop; the client calls its registry directly. Each test checks
what an HTTP client of the same server would see.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, Tuple, TypeVar

import pytest

from megaplane.apiserver.loopback import LoopbackTransport
from megaplane.apiserver.server import APIServer
from megaplane.client import (
    AlreadyExistsError,
    Client,
    ConflictError,
    InvalidError,
    MethodNotAllowedError,
    NotFoundError,
    SharedInformer,
    node_name_index,
)
from megaplane.controlplane import ControlPlane, ControlPlaneConfig

T = TypeVar("T")


def run(test: Callable[[APIServer, Client], Awaitable[T]], **config: Any) -> T:
    async def main() -> T:
        # The store, the API server and what it keeps in place itself (namespaces); no listeners, no controllers.
        plane = ControlPlane(ControlPlaneConfig(port=0, secure_port=0, controllers=[]))
        await plane.start()
        client = Client(LoopbackTransport(plane.api.registry))
        try:
            return await test(plane.api, client)
        finally:
            await client.close()
            await plane.stop()

    return asyncio.run(main())


async def eventually(what: str, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def cm(name: str, **data: str) -> Any:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def pod(name: str, node: str = "") -> Any:
    spec: Any = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_crud_and_typed_errors() -> None:
    async def body(server: APIServer, client: Client) -> None:
        cms = client.resource("configmaps")
        created = await cms.create(cm("a", k="v"), "default")
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        got = await cms.get("a", "default")
        assert got == created  # the very stored object: same bytes as the create answered
        with pytest.raises(AlreadyExistsError):
            await cms.create(cm("a"), "default")
        with pytest.raises(NotFoundError):
            await cms.get("missing", "default")
        stale = dict(created, data={"k": "w"})
        updated = await cms.update(stale, "default")
        assert updated["data"] == {"k": "w"}
        assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        with pytest.raises(ConflictError):
            await cms.update(dict(created, data={"k": "x"}), "default")  # created's resourceVersion is stale now
        patched = await cms.patch("a", {"data": {"p": "1"}}, "default", patch_type="merge")
        assert patched["data"] == {"k": "w", "p": "1"}
        with pytest.raises(InvalidError):
            await cms.create(cm("Not_Valid"), "default")
        await cms.delete("a", "default")
        with pytest.raises(NotFoundError):
            await cms.get("a", "default")
        with pytest.raises(NotFoundError):  # namespace lifecycle admission applies in process too
            await cms.create(cm("b"), "no-such-namespace")

    run(body)


def test_subresources_and_verbs_as_routed() -> None:
    async def body(server: APIServer, client: Client) -> None:
        pods = client.resource("pods")
        await pods.create(pod("p"), "default")
        bound = await client.transport.create(
            pods.ref, "default",
            b'{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n1"}}',
            subresource="binding", name="p")
        assert b'"Success"' in bound
        assert (await pods.get("p", "default"))["spec"]["nodeName"] == "n1"
        current = await pods.get("p", "default")
        current["status"]["phase"] = "Running"
        after = await pods.update_status(current, "default")
        assert after["status"]["phase"] == "Running"
        with pytest.raises(MethodNotAllowedError):  # the binding route serves create only
            await client.transport.get(pods.ref, "default", "p", subresource="binding")

    run(body)


def test_list_pages_and_watch_from_resource_version() -> None:
    async def body(server: APIServer, client: Client) -> List[Tuple[str, str]]:
        cms = client.resource("configmaps")
        for i in range(7):
            await cms.create(cm(f"c{i}"), "default")
        everything = await cms.list_all("default", page_size=3)
        names = [o["metadata"]["name"] for o in everything["items"]]
        assert names == [f"c{i}" for i in range(7)]
        listed = await cms.list("default")
        rv = listed["metadata"]["resourceVersion"]
        await cms.create(cm("late"), "default")
        await cms.delete("c0", "default")
        seen: List[Tuple[str, str]] = []
        watch = await cms.watch("default", resource_version=rv)
        async for ev in watch:
            seen.append((ev.type, ev.object["metadata"]["name"]))
            if len(seen) == 2:
                break
        await watch.close()
        return seen

    assert run(body) == [("ADDED", "late"), ("DELETED", "c0")]


def test_watch_too_old_is_an_error_event() -> None:
    async def body(server: APIServer, client: Client) -> Any:
        cms = client.resource("configmaps")
        cache = server.registry.cache_for(cms.ref and next(r for r in server.registry.stores if r.plural == "configmaps"))
        cache.oldest = cache.revision  # as if the window had moved past everything before now
        watch = await cms.watch("default", resource_version="1")
        events = [ev async for ev in watch]
        return events

    events = run(body)
    assert len(events) == 1 and events[0].type == "ERROR" and events[0].object["code"] == 410


def test_informer_syncs_and_follows() -> None:
    async def body(server: APIServer, client: Client) -> None:
        pods = client.resource("pods")
        await pods.create(pod("before", node="n1"), "default")
        informer = SharedInformer(pods, indexers={"nodeName": node_name_index})
        seen: List[Tuple[str, str]] = []
        informer.add_event_handler(lambda o: seen.append(("add", o["metadata"]["name"])),
                                   lambda a, b: seen.append(("update", b["metadata"]["name"])),
                                   lambda o: seen.append(("delete", o["metadata"]["name"])))
        await informer.start()
        try:
            assert await informer.wait_for_sync(5)
            assert seen == [("add", "before")]
            await pods.create(pod("after", node="n2"), "default")
            await eventually("the new pod", lambda: ("add", "after") in seen)
            assert [p["metadata"]["name"] for p in informer.indexer.by_index("nodeName", "n2")] == ["after"]
            await pods.delete("before", "default", grace_period_seconds=0)
            await eventually("the deletion", lambda: ("delete", "before") in seen)
            assert informer.lister.get("default", "before") is None
        finally:
            await informer.stop()

    run(body)
