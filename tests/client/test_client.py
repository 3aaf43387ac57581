"""Client verbs against a real megaplane: CRUD of several kinds, patches, paging, watches; transport policies."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Tuple

import pytest

from megaplane.client import (
    Client,
    ConnectionFailedError,
    HTTPTransport,
    NotFoundError,
    TooManyRequestsError,
    WatchEvent,
)
from megaplane.client.ratelimit import TokenBucket
from tests.api.conftest import Cluster
from tests.client.servers import DROP, ScriptedServer, response
from tests.etcd.conftest import free_port


def http_client(cluster: Cluster, **options: Any) -> Client:
    options.setdefault("qps", 0)
    return Client(HTTPTransport(cluster.url, **options))


def test_crud_of_several_kinds(cluster: Cluster) -> None:
    async def main() -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        async with http_client(cluster) as client:
            await client.resource("namespaces").create({"metadata": {"name": "crud"}})
            deploys = client.resource("apps/v1", "deployments")
            d = await deploys.create({
                "metadata": {"name": "web", "namespace": "crud", "labels": {"app": "web"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            })
            out["deploy_kind"] = (d["apiVersion"], d["kind"])
            d["spec"]["replicas"] = 3
            out["updated"] = (await deploys.update(d))["spec"]["replicas"]
            out["merge"] = (await deploys.patch("web", {"metadata": {"labels": {"tier": "a"}}}, "crud",
                                                patch_type="merge"))["metadata"]["labels"]
            out["json"] = (await deploys.patch("web", [{"op": "replace", "path": "/spec/replicas", "value": 2}],
                                               "crud", patch_type="json"))["spec"]["replicas"]
            out["strategic"] = (await deploys.patch("web", {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "nginx:2"}]}}}}, "crud"))["spec"]["template"]["spec"]["containers"]
            fresh = await deploys.get("web", "crud")
            fresh["status"] = {"replicas": 2, "observedGeneration": 1}
            out["status"] = (await deploys.update_status(fresh))["status"]["replicas"]

            nodes = client.resource("nodes")
            await nodes.create({"metadata": {"name": "n1", "labels": {"zone": "a"}}})
            out["node"] = (await nodes.get("n1"))["metadata"]["labels"]
            leases = client.resource("leases")
            lease = await leases.create({"metadata": {"name": "n1", "namespace": "kube-node-lease"},
                                         "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})
            lease["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z"
            out["lease"] = (await leases.update(lease))["spec"]["renewTime"]
            out["dry"] = (await client.resource("configmaps").create(
                {"metadata": {"name": "dry"}}, "crud", dry_run=True))["metadata"]["name"]
            try:
                await client.resource("configmaps").get("dry", "crud")
            except NotFoundError:
                out["dry_not_stored"] = True
            out["delete"] = (await deploys.delete("web", "crud"))["status"]
            await nodes.delete("n1")
            out["raw"] = await client.resource("namespaces").get_raw("crud")
        return out

    out = asyncio.run(main())
    assert out["deploy_kind"] == ("apps/v1", "Deployment")
    assert out["updated"] == 3 and out["json"] == 2
    assert out["merge"] == {"app": "web", "tier": "a"}
    assert out["strategic"][0]["image"] == "nginx:2"
    assert out["status"] == 2
    assert out["node"] == {"zone": "a"}
    assert out["lease"] == "2026-01-01T00:00:00.000000Z"
    assert out["dry"] == "dry" and out["dry_not_stored"]
    assert out["delete"] == "Success"
    assert isinstance(out["raw"], bytes) and b'"crud"' in out["raw"]


def test_namespace_rules() -> None:
    client = Client(HTTPTransport("http://127.0.0.1:1"))
    with pytest.raises(ValueError, match="namespaced"):
        asyncio.run(client.resource("pods").get("p"))
    with pytest.raises(ValueError, match="cluster-scoped"):
        asyncio.run(client.resource("nodes").get("n", "default"))


def test_list_all_pages_and_delete_collection(cluster: Cluster) -> None:
    async def main() -> Tuple[int, bool, int, int]:
        async with http_client(cluster) as client:
            await client.resource("namespaces").create({"metadata": {"name": "paging"}})
            cms = client.resource("configmaps")
            await asyncio.gather(*(cms.create({"metadata": {"name": f"cm-{i:02}", "labels": {"set": "p"}}},
                                              "paging") for i in range(25)))
            page = await cms.list("paging", limit=10, label_selector="set=p")
            everything = await cms.list_all("paging", label_selector="set=p", page_size=10)
            names = [o["metadata"]["name"] for o in everything["items"]]
            assert names == sorted(names) and len(set(names)) == 25
            assert "continue" not in everything["metadata"]
            await cms.delete_collection("paging", label_selector="set=p")
            left = await cms.list("paging", label_selector="set=p")
            return len(page["items"]), bool(page["metadata"].get("continue")), len(names), len(left["items"])

    assert asyncio.run(main()) == (10, True, 25, 0)


def test_watch_events(cluster: Cluster) -> None:
    async def main() -> List[Tuple[str, str]]:
        async with http_client(cluster) as client:
            cms = client.resource("configmaps")
            start = (await cms.list("default"))["metadata"]["resourceVersion"]
            seen: List[WatchEvent] = []
            async with await cms.watch("default", resource_version=start, label_selector="w=1") as events:
                await cms.create({"metadata": {"name": "w1", "labels": {"w": "1"}}}, "default")
                await cms.create({"metadata": {"name": "other"}}, "default")  # filtered out by the selector
                await cms.patch("w1", {"data": {"k": "v"}}, "default", patch_type="merge")
                await cms.delete("w1", "default")
                async for event in events:
                    seen.append(event)
                    if event.type == "DELETED":
                        break
            await cms.delete("other", "default")
            return [(e.type, e.object["metadata"]["name"]) for e in seen]

    assert asyncio.run(main()) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_connection_refused_is_prompt_and_typed() -> None:
    port = free_port()

    async def main() -> None:
        async with Client(HTTPTransport(f"http://127.0.0.1:{port}")) as client:
            # The deadline only guards against a hang: refusal must come as an error, not a wait.
            await asyncio.wait_for(client.resource("pods").list(), 10)

    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        asyncio.run(main())


class RecordingClock:
    """Real monotonic time; sleeps are recorded and return at once."""

    def __init__(self) -> None:
        import time

        self.monotonic = time.monotonic
        self.sleeps: List[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_429_waits_retry_after_then_succeeds_or_gives_up() -> None:
    busy = response(429, b'{"kind":"Status","code":429,"reason":"TooManyRequests","message":"slow down"}',
                    ["Retry-After: 2"])

    async def main() -> Tuple[Dict[str, Any], List[float], int, Any]:
        server = ScriptedServer([busy, busy, response(200, b'{"kind":"Pod","metadata":{"name":"p"}}')])
        url = await server.start()
        clock = RecordingClock()
        async with Client(HTTPTransport(url, clock=clock, qps=0)) as client:
            pod = await client.resource("pods").get("p", "default")
        server.script = [busy, busy]
        async with Client(HTTPTransport(url, clock=clock, qps=0, max_retries=1)) as client:
            try:
                await client.resource("pods").get("p", "default")
            except TooManyRequestsError as exc:
                gave_up: Any = exc
        await server.stop()
        return pod, clock.sleeps, len(server.requests), gave_up

    pod, sleeps, requests, gave_up = asyncio.run(main())
    assert pod["metadata"]["name"] == "p"
    assert sleeps == [2.0, 2.0, 2.0] and requests == 5
    assert gave_up.retry_after == 2.0 and gave_up.code == 429


def test_dropped_idle_connection_retried_once_for_reads_only() -> None:
    ok = response(200, b'{"kind":"ConfigMap","metadata":{"name":"a"}}')

    async def main() -> Tuple[Dict[str, Any], int, bool]:
        # A pooled connection the server drops as the next request arrives: the race with an idle timeout.
        server = ScriptedServer([ok, DROP, ok, ok, DROP])
        url = await server.start()
        async with Client(HTTPTransport(url, qps=0, max_connections=1)) as client:
            cms = client.resource("configmaps")
            await cms.get("a", "default")
            retried = await cms.get("a", "default")
            await cms.get("a", "default")  # warms the new connection
            try:
                await cms.create({"metadata": {"name": "a"}}, "default")
                write_failed = False
            except ConnectionFailedError:
                write_failed = True
        await server.stop()
        return retried, server.connections, write_failed

    retried, connections, write_failed = asyncio.run(main())
    assert retried["metadata"]["name"] == "a"
    assert connections == 2 and write_failed


def test_token_bucket_qps_and_burst() -> None:
    class Manual:
        now = 0.0

        def monotonic(self) -> float:
            return self.now

        async def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Manual()
    bucket = TokenBucket(qps=2, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]
    clock.now = 10.0  # long idle: back to a full burst, never more
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert TokenBucket(qps=0, burst=0).reserve() == 0.0
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(qps=5, burst=0)


def test_rate_limit_applies_to_requests(cluster: Cluster) -> None:
    clock = RecordingClock()

    async def main() -> None:
        async with Client(HTTPTransport(cluster.url, qps=1, burst=2, clock=clock)) as client:
            for _ in range(4):
                await client.resource("namespaces").get("default")

    asyncio.run(main())
    # two go at once (burst), the next two wait for tokens (the recording clock does not really sleep)
    assert len(clock.sleeps) == 2 and all(s > 0 for s in clock.sleeps)
