"""The per-event path: watch lines by batch, the informer over batched and per-line streams, the Indexer's
stored index values, transforms, deep_copy."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import orjson

from megaplane.client import (
    NODE_NAME_INDEX,
    Backoff,
    HTTPTransport,
    Indexer,
    ResourceClient,
    SharedInformer,
    deep_copy,
    label_index,
    lookup,
    node_name_index,
    strip_managed_fields,
)
from tests.client.conftest import eventually
from tests.client.servers import ScriptedServer

PODS = lookup("pods")


def chunked(*chunks: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def event(etype: str, name: str, rv: int, node: str = "", **extra: Any) -> bytes:
    obj: Dict[str, Any] = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}, "spec": {}}
    if node:
        obj["spec"]["nodeName"] = node
    obj.update(extra)
    return orjson.dumps({"type": etype, "object": obj}) + b"\n"


LINES = [event("ADDED", "a", 2), event("ADDED", "b", 3), event("MODIFIED", "a", 4, node="n1")]
# Lines cut across chunk boundaries, two in one chunk, a blank line between events.
BODY = LINES[0][:10], LINES[0][10:] + LINES[1][:-1], b"\n\n" + LINES[2]


def test_watch_stream_batches_and_lines_agree() -> None:
    async def read(batches: bool) -> List[bytes]:
        server = ScriptedServer([chunked(*BODY)])
        base = await server.start()
        transport = HTTPTransport(base, qps=0)
        try:
            stream: Any = await transport.watch(PODS, "ns", {"resourceVersion": "1"})
            got: List[bytes] = []
            if batches:
                while True:
                    batch = await stream.next_batch()
                    if not batch:
                        break
                    got.extend(batch)
                assert await stream.next_batch() == []  # stays ended
            else:
                got = [line async for line in stream]
            await stream.close()
            return got
        finally:
            await transport.close()
            await server.stop()

    want = [line.rstrip(b"\n") for line in LINES]
    assert asyncio.run(read(True)) == want
    assert asyncio.run(read(False)) == want


class _Lines:
    """A WatchStream without next_batch (as the in-process transport's): the informer's per-line path."""

    def __init__(self, lines: List[bytes]) -> None:
        self.lines = list(lines)
        self.closed = False

    def __aiter__(self) -> "_Lines":
        return self

    async def __anext__(self) -> bytes:
        if self.closed or not self.lines:
            raise StopAsyncIteration
        return self.lines.pop(0)

    async def close(self) -> None:
        self.closed = True


class _Batches(_Lines):
    async def next_batch(self) -> List[bytes]:
        batch, self.lines = ([] if self.closed else self.lines), []
        return batch


class _Transport:
    """list answers `listing`; each watch hands out the next scripted stream, then one that never ends."""

    def __init__(self, listing: List[Dict[str, Any]], streams: List[_Lines]) -> None:
        self.listing = listing
        self.streams = streams
        self.lists = 0
        self.watch_rvs: List[Optional[str]] = []

    async def list(self, ref: Any, namespace: Optional[str], params: Any = None) -> bytes:
        self.lists += 1
        return orjson.dumps({"metadata": {"resourceVersion": "1"}, "items": self.listing})

    async def watch(self, ref: Any, namespace: Optional[str], params: Any = None) -> Any:
        self.watch_rvs.append((params or {}).get("resourceVersion"))
        if self.streams:
            return self.streams.pop(0)
        return _Forever()


class _Forever(_Lines):
    def __init__(self) -> None:
        super().__init__([])
        self.done = asyncio.Event()

    async def __anext__(self) -> bytes:
        await self.done.wait()
        raise StopAsyncIteration

    async def close(self) -> None:
        self.done.set()


def _run_informer(stream_type: type, transform: Any = None) -> Dict[str, Any]:
    gone = orjson.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                      "message": "too old resource version"}}) + b"\n"
    managed = {"managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]}
    first = [event("ADDED", "a", 2, node="n1"), event("MODIFIED", "a", 3, node="n2"),
             event("ADDED", "b", 4), event("BOOKMARK", "", 5), gone, event("ADDED", "never", 6)]
    first[1] = orjson.dumps({"type": "MODIFIED", "object": {
        "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "3", **managed}, "spec": {"nodeName": "n2"}}}) + b"\n"
    transport = _Transport([], [stream_type([line.rstrip(b"\n") for line in first])])
    seen: List[Any] = []
    olds: List[Any] = []
    finals: List[Any] = []

    async def run() -> Dict[str, Any]:
        informer = SharedInformer(ResourceClient(transport, PODS), namespace="ns", transform=transform,  # type: ignore[arg-type]
                                  indexers={NODE_NAME_INDEX: node_name_index},
                                  backoff=Backoff(initial=0.01, cap=0.01))
        informer.add_event_handler(lambda o: seen.append(("add", o["metadata"]["name"])),
                                   lambda old, new: (seen.append(("update", new["metadata"]["name"])), olds.append(old)),
                                   lambda o: (seen.append(("delete", o.key)), finals.append(o.obj)))
        transport.listing = []  # the relist after the 410 finds nothing: a and b are deletes
        await informer.start()
        await eventually(lambda: transport.lists >= 2 and len(transport.watch_rvs) >= 2, what="the relist")
        state = {"seen": list(seen), "olds": olds, "finals": finals, "watch_rvs": list(transport.watch_rvs),
                 "objects": len(informer.indexer), "rv": informer.last_sync_resource_version}
        await informer.stop()
        return state

    return asyncio.run(run())


def test_informer_batched_and_per_line_streams_deliver_alike() -> None:
    batched = _run_informer(_Batches)
    per_line = _run_informer(_Lines)
    want = [("add", "a"), ("update", "a"), ("add", "b"), ("delete", "ns/a"), ("delete", "ns/b")]
    assert batched["seen"] == per_line["seen"] == want
    # Watched from the list's revision, then (after the 410 in the stream; the line after it is never read)
    # from the relist's.
    assert batched["watch_rvs"] == per_line["watch_rvs"] == ["1", "1"]
    assert batched["olds"][0]["spec"]["nodeName"] == "n1"
    assert batched["objects"] == 0


def test_transform_applies_before_store_and_handlers() -> None:
    kept = _run_informer(_Batches)
    stripped = _run_informer(_Batches, transform=strip_managed_fields)
    assert kept["seen"] == stripped["seen"]
    # The MODIFIED event carried managedFields; the relist's delete hands back what was stored.
    assert kept["finals"][0]["metadata"]["managedFields"]
    assert "managedFields" not in stripped["finals"][0]["metadata"]
    assert stripped["finals"][0]["spec"] == {"nodeName": "n2"}


def test_indexer_keeps_indexes_exact_across_updates() -> None:
    idx = Indexer({NODE_NAME_INDEX: node_name_index})

    def pod(name: str, node: str, app: str = "") -> Dict[str, Any]:
        meta: Dict[str, Any] = {"name": name, "namespace": "ns", "labels": {"app": app} if app else {}}
        return {"metadata": meta, "spec": {"nodeName": node} if node else {}}

    idx.upsert(pod("a", "n1", "web"))
    idx.upsert(pod("b", "n1"))
    idx.add_indexers({"app": label_index("app")})  # after objects are in
    idx.upsert(pod("a", "n2", "web"))  # node changes, app does not
    idx.upsert(pod("b", "n1", "db"))  # app appears
    assert idx.index_keys(NODE_NAME_INDEX, "n1") == ["ns/b"]
    assert idx.index_keys(NODE_NAME_INDEX, "n2") == ["ns/a"]
    assert idx.index_keys("app", "web") == ["ns/a"] and idx.index_keys("app", "db") == ["ns/b"]
    assert idx.remove("ns/a") is not None
    assert idx.index_values(NODE_NAME_INDEX) == ["n1"] and idx.index_values("app") == ["db"]
    assert idx.remove("ns/a") is None
    idx.upsert(pod("a", "n1"))
    assert sorted(idx.index_keys(NODE_NAME_INDEX, "n1")) == ["ns/a", "ns/b"] and idx.index_keys("app", "web") == []


def test_deep_copy_is_independent_and_handles_what_json_cannot() -> None:
    obj = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [1, 2.5, None, True]}}
    copied = deep_copy(obj)
    assert copied == obj and copied is not obj
    copied["metadata"]["labels"]["x"] = "2"
    assert obj["metadata"]["labels"]["x"] == "1"
    odd = {"big": 2 ** 70, 1: "int key"}
    assert deep_copy(odd) == odd


def test_a_watch_cut_mid_event_ends_without_the_cut_line() -> None:
    """A connection lost inside an event (the server dropped a slow watcher) ends the stream after the last
    whole line: the informer then re-watches from there instead of failing to decode half an event."""
    cut = chunked(*BODY)[:-len(b"0\r\n\r\n")]
    cut = cut[:cut.rindex(b"\n", 0, len(cut) - 40) + 25]  # stop inside the last event's line

    async def read(batches: bool) -> List[bytes]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(cut)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = HTTPTransport(f"http://127.0.0.1:{port}", qps=0)
        try:
            stream: Any = await transport.watch(PODS, "ns", {"resourceVersion": "1"})
            got: List[bytes] = []
            if batches:
                while batch := await stream.next_batch():
                    got.extend(batch)
            else:
                got = [line async for line in stream]
            await stream.close()
            return got
        finally:
            await transport.close()
            server.close()
            await server.wait_closed()

    whole = [line.rstrip(b"\n") for line in LINES[:2]]
    assert asyncio.run(read(True)) == whole
    assert asyncio.run(read(False)) == whole
