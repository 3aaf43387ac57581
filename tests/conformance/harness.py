"""What the storage conformance suite needs from an implementation, and the helpers its tests share.

An implementation's test file provides a `make_harness` fixture: a
function that returns an async context manager yielding a `Harness`,
entered inside the test's own event loop (stores attach to it).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import AsyncContextManager, Awaitable, Callable, List, Optional

import orjson

from megaplane.storage import Progress, Storage, StoredObject, WatchEvent, WatchStream

__all__ = ["Harness", "MakeHarness", "run", "pod", "rv_of", "uid_of", "labels_of", "collect", "DEADLINE"]

# How long a test waits for a watch to deliver before it fails (a deadline, not a timing assertion).
DEADLINE = 10.0


@dataclass
class Harness:
    """One implementation under test."""

    #: The storage under test, fresh or at least with nothing under `prefix`.
    storage: Storage
    #: Moves the implementation's clock by `seconds` and lets TTL leases expire (etcd: real waiting).
    advance: Callable[[float], Awaitable[None]]
    #: Every key a test writes starts with this (unique per test, so a shared etcd stays usable).
    prefix: bytes = b""

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = b"/registry/pods/t%s/" % uuid.uuid4().hex[:12].encode()

    def key(self, name: str) -> bytes:
        return self.prefix + name.encode()


MakeHarness = Callable[[], AsyncContextManager[Harness]]


def run(make: MakeHarness, body: Callable[[Harness], Awaitable[None]]) -> None:
    """Run one test body on a fresh event loop with a fresh harness (pytest-asyncio is not installed)."""

    async def main() -> None:
        async with make() as h:
            await body(h)

    asyncio.run(main())


def pod(name: str, *, uid: str = "uid-1", labels: Optional[dict[str, str]] = None) -> Callable[[int], bytes]:
    """An encoder as the registry passes one: the object's bytes given its revision (0: unknown)."""

    def encode(revision: int) -> bytes:
        meta: dict[str, object] = {"name": name, "namespace": "ns", "uid": uid}
        if revision:
            meta["resourceVersion"] = str(revision)
        if labels:
            meta["labels"] = labels
        return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": "n1"}})

    return encode


def rv_of(data: bytes) -> str:
    return str(orjson.loads(data)["metadata"].get("resourceVersion", ""))


def uid_of(data: bytes) -> str:
    return str(orjson.loads(data)["metadata"].get("uid", ""))


def labels_of(data: bytes) -> dict[str, str]:
    return dict(orjson.loads(data)["metadata"].get("labels") or {})


def assert_served(obj: StoredObject) -> None:
    """The served bytes carry the object's own revision as resourceVersion."""
    assert rv_of(obj.data) == str(obj.revision), (obj.data, obj.revision)


async def collect(stream: WatchStream, count: int) -> List[WatchEvent | Progress]:
    """The next `count` items of a watch, failing after DEADLINE."""
    out: List[WatchEvent | Progress] = []
    for _ in range(count):
        out.append(await asyncio.wait_for(stream.__anext__(), DEADLINE))
    return out
