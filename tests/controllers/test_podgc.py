"""pod-garbage-collector-controller against a real `megaplane apiserver`, over HTTP.

The controller runs in the test's event loop with a 0.2 s period and a
1 s quarantine (upstream's are 20 s and 40 s, constants there too) and
talks to the API server process through megaplane.client over its socket;
the test drives and checks the pods with the same client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, Optional

import pytest

from megaplane.client import Client, HTTPTransport, NotFoundError
from megaplane.controllers.podgc import PodGCController
from tests.api.conftest import Cluster
from tests.fleet.conftest import server_in_tmp


@pytest.fixture(scope="module")
def api() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-podgc-", "apiserver") as c:
        yield c


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def run(api: Cluster, body: Callable[[Client, PodGCController], Awaitable[None]], threshold: int = 3) -> None:
    async def main() -> None:
        async with Client(HTTPTransport(api.url, qps=100, burst=200)) as client:
            gc = PodGCController(client, terminated_pod_gc_threshold=threshold, gc_period=0.2, quarantine=1.0)
            await gc.start()
            try:
                await body(client, gc)
            finally:
                await gc.stop()

    asyncio.run(main())


def pod(name: str, node: Optional[str] = None, finalizer: bool = False) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name}
    if finalizer:
        meta["finalizers"] = ["example.com/hold"]
    spec: Dict[str, Any] = {"containers": [{"name": "c", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec}


async def get(client: Client, name: str, ns: str) -> Optional[Dict[str, Any]]:
    try:
        return await client.resource("pods").get(name, ns)
    except NotFoundError:
        return None


async def release(client: Client, name: str, ns: str) -> None:
    await client.resource("pods").patch(name, {"metadata": {"finalizers": None}}, ns, patch_type="merge")


def test_terminated_pods_beyond_the_threshold_oldest_and_evicted_first(api: Cluster) -> None:
    async def body(client: Client, gc: PodGCController) -> None:
        pods = client.resource("pods")
        await client.resource("namespaces").create({"metadata": {"name": "gc-terminated"}})
        for i in range(5):
            await pods.create(pod(f"t{i}"), "gc-terminated")
            status: Dict[str, Any] = {"phase": "Succeeded"}
            if i == 4:
                status = {"phase": "Failed", "reason": "Evicted"}
            await pods.patch(f"t{i}", {"status": status}, "gc-terminated", subresource="status")
        await pods.create(pod("running"), "gc-terminated")
        # 5 terminated, threshold 3: two go, the evicted one first, then the oldest (ties by name).
        left = await until(lambda: _names_if(pods, "gc-terminated", 4), "two terminated pods collected")
        assert left == ["running", "t1", "t2", "t3"]

    run(api, body)


async def _names_if(pods: Any, ns: str, count: int) -> Any:
    names = sorted(p["metadata"]["name"] for p in (await pods.list(ns))["items"])
    return names if len(names) == count else None


def test_orphaned_pods_failed_and_force_deleted_after_the_quarantine(api: Cluster) -> None:
    async def body(client: Client, gc: PodGCController) -> None:
        pods = client.resource("pods")
        await client.resource("namespaces").create({"metadata": {"name": "gc-orphans"}})
        await pods.create(pod("orphan", "no-such-node", finalizer=True), "gc-orphans")
        began = time.monotonic()
        gone = await until(lambda: _if_deleting(get(client, "orphan", "gc-orphans")), "the orphan force deleted")
        assert time.monotonic() - began >= 1.0  # not before the quarantine
        assert gone["status"]["phase"] == "Failed"
        target = next(c for c in gone["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"], target["message"]) == (
            "True", "DeletionByPodGC", "PodGC: node no longer exists")
        assert gone["metadata"]["deletionGracePeriodSeconds"] == 0
        await release(client, "orphan", "gc-orphans")
        # A pod on a node that exists is left alone.
        await client.resource("nodes").create({"metadata": {"name": "real-node"}})
        await pods.create(pod("kept", "real-node"), "gc-orphans")
        passes = gc.stats["passes"]
        await until(lambda: _after(gc, passes + int(2.0 / 0.2)), "2 s of passes (past the quarantine)")
        kept = await get(client, "kept", "gc-orphans")
        assert kept is not None and not kept["metadata"].get("deletionTimestamp")

    run(api, body)


async def _after(gc: PodGCController, passes: int) -> bool:
    return gc.stats["passes"] >= passes


async def _if_deleting(pod_: Awaitable[Optional[Dict[str, Any]]]) -> Optional[Dict[str, Any]]:
    p = await pod_
    return p if p is not None and p["metadata"].get("deletionTimestamp") else None


def test_unscheduled_terminating_pods_are_force_deleted(api: Cluster) -> None:
    async def body(client: Client, gc: PodGCController) -> None:
        pods = client.resource("pods")
        await client.resource("namespaces").create({"metadata": {"name": "gc-unscheduled"}})
        await pods.create(pod("stuck", finalizer=True), "gc-unscheduled")
        await pods.delete("stuck", "gc-unscheduled", grace_period_seconds=30)
        failed = await until(lambda: _if_phase(get(client, "stuck", "gc-unscheduled"), "Failed"), "phase Failed")
        assert failed["metadata"]["deletionTimestamp"]
        await release(client, "stuck", "gc-unscheduled")
        await until(lambda: _gone(get(client, "stuck", "gc-unscheduled")), "the pod gone")

    run(api, body)


async def _if_phase(pod_: Awaitable[Optional[Dict[str, Any]]], phase: str) -> Optional[Dict[str, Any]]:
    p = await pod_
    return p if p is not None and (p.get("status") or {}).get("phase") == phase else None


async def _gone(pod_: Awaitable[Optional[Dict[str, Any]]]) -> bool:
    return await pod_ is None


def test_terminating_pods_on_out_of_service_not_ready_nodes(api: Cluster) -> None:
    async def body(client: Client, gc: PodGCController) -> None:
        pods, nodes = client.resource("pods"), client.resource("nodes")
        await client.resource("namespaces").create({"metadata": {"name": "gc-oos"}})
        for name in ("oos", "ready-oos"):
            await nodes.create({"metadata": {"name": name}, "spec": {"taints": [
                {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}})
        await nodes.patch("oos", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                          subresource="status")
        await nodes.patch("ready-oos", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                          subresource="status")
        await pods.create(pod("on-oos", "oos"), "gc-oos")
        await pods.create(pod("on-ready", "ready-oos"), "gc-oos")
        await pods.delete("on-oos", "gc-oos", grace_period_seconds=300)
        await pods.delete("on-ready", "gc-oos", grace_period_seconds=300)
        await until(lambda: _gone(get(client, "on-oos", "gc-oos")), "the terminating pod on the shut down node gone")
        left = await get(client, "on-ready", "gc-oos")  # a Ready node's kubelet finishes its own pods
        assert left is not None and left["metadata"]["deletionTimestamp"]

    run(api, body)
