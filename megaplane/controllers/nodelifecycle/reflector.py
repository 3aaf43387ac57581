"""A lean list-and-watch: each object decoded into a small typed record, nothing else kept.

A SharedInformer keeps every object as a dict; at 100K Nodes and Leases
that is gigabytes for the few fields node lifecycle reads. This reflector
decodes each listed or watched object with msgspec straight into the
record type it is given (only the fields the record declares are read),
hands it to `on_upsert`, and remembers only the keys (for a relist's
deletions). Otherwise it is client-go's reflector: paged list, watch from
the list's resourceVersion with bookmarks and a random timeout, 410 ->
relist (deleted objects reported), a dropped watch resumes, failures back
off. Each failure is reported to `Sight` (the watch is broken until it
works again); a watch that merely reached its timeout is not a failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import types
from typing import Any, Callable, Generic, Optional, Set, Type, TypeVar

import msgspec

from megaplane.client import Backoff, GoneError, ResourceClient, StatusError, error_from_response
from megaplane.runtime import REAL_CLOCK, Clock

from .sight import Sight

__all__ = ["Reflector"]

log = logging.getLogger("megaplane.controllers.nodelifecycle")

T = TypeVar("T")


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""
    # `continue` is a keyword; msgspec renames the field.
    continue_: str = msgspec.field(default="", name="continue")


class _Event(msgspec.Struct):
    type: str = ""
    object: msgspec.Raw = msgspec.Raw(b"{}")


class _Meta(msgspec.Struct):
    resourceVersion: str = ""


class _Versioned(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class Reflector(Generic[T]):
    """List-and-watch `resource` into `on_upsert(record)` / `on_delete(key)` (see the module docstring)."""

    def __init__(
        self, resource: ResourceClient, record: Type[T], key: Callable[[T], str],
        on_upsert: Callable[[T], None], on_delete: Callable[[str], None], *, sight: Optional[Sight] = None,
        namespace: Optional[str] = None, clock: Clock = REAL_CLOCK, page_size: int = 500,
        min_watch_timeout: float = 300.0, on_synced: Optional[Callable[[], None]] = None,
    ) -> None:
        self.resource = resource
        self.key = key
        self.on_upsert = on_upsert
        self.on_delete = on_delete
        self.sight = sight
        self.namespace = namespace
        self.clock = clock
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        self.on_synced = on_synced
        self.what = resource.ref.plural
        self._item = msgspec.json.Decoder(record)
        items = types.GenericAlias(list, (record,))  # list[record], built at run time
        self._list = msgspec.json.Decoder(msgspec.defstruct(
            f"{record.__name__}List", [("metadata", _ListMeta, msgspec.field(default_factory=_ListMeta)),
                                       ("items", items, msgspec.field(default_factory=list))]))
        self._event = msgspec.json.Decoder(_Event)
        self._version = msgspec.json.Decoder(_Versioned)
        self._backoff = Backoff(clock=clock)
        self._keys: Set[str] = set()
        self._rv = ""
        self._task: Optional["asyncio.Task[None]"] = None
        self.synced = asyncio.Event()
        self.events = 0
        self.lists = 0
        self.failures = 0
        #: Controller clock of the last event or bookmark (the watch is flowing).
        self.last_event = -1.0

    async def _list_all(self) -> None:
        token = ""
        seen: Set[str] = set()
        rv = ""
        first = True
        while True:
            body = await self.resource.list_raw(self.namespace, limit=self.page_size, continue_=token or None)
            page: Any = self._list.decode(body)
            if first:
                rv, first = page.metadata.resourceVersion, False
            for obj in page.items:
                k = self.key(obj)
                seen.add(k)
                self.on_upsert(obj)
            token = page.metadata.continue_
            if not token:
                break
        for gone in self._keys - seen:
            self.on_delete(gone)
        self._keys = seen
        self._rv = rv
        self.lists += 1

    async def _watch(self) -> None:
        timeout = int(self.min_watch_timeout * (1.0 + random.random()))
        stream = await self.resource.watch_raw(self.namespace, resource_version=self._rv, allow_watch_bookmarks=True,
                                               timeout_seconds=timeout)
        if self.sight is not None:
            self.sight.mend(self.what)
        keys, clock = self._keys, self.clock
        try:
            async for line in stream:
                self.events += 1
                self.last_event = clock.monotonic()
                event = self._event.decode(line)
                etype = event.type
                raw = event.object
                if etype == "BOOKMARK":
                    self._rv = self._version.decode(raw).metadata.resourceVersion or self._rv
                    continue
                if etype == "ERROR":
                    status = msgspec.json.decode(raw)
                    code = status.get("code") if isinstance(status, dict) else None
                    raise error_from_response(code if isinstance(code, int) else 500, {}, bytes(raw))
                obj: Any = self._item.decode(raw)
                k = self.key(obj)
                if etype == "DELETED":
                    if k in keys:
                        keys.discard(k)
                        self.on_delete(k)
                else:
                    keys.add(k)
                    self.on_upsert(obj)
                rv = obj.metadata.resourceVersion
                if rv:
                    self._rv = rv
        finally:
            await stream.close()

    async def _run(self) -> None:
        need_list = True
        while True:
            began = self.clock.monotonic()
            events = self.events
            try:
                if need_list:
                    await self._list_all()
                    need_list = False
                    if not self.synced.is_set():
                        self.synced.set()
                        if self.on_synced is not None:
                            self.on_synced()
                await self._watch()
                if self.events != events or self.clock.monotonic() - began >= 1.0:
                    continue  # the watch reached its timeout: open the next one
                log.info("node-lifecycle-controller: %s watch ended at once without events", self.what)
            except asyncio.CancelledError:
                raise
            except GoneError:
                need_list = True
            except StatusError as exc:
                if exc.code == 410:
                    need_list = True
                else:
                    log.info("node-lifecycle-controller: %s %s failed: %s", self.what,
                             "list" if need_list else "watch", exc)
            except Exception:
                log.exception("node-lifecycle-controller: %s reflector failed; relisting", self.what)
                need_list = True
            self.failures += 1
            if self.sight is not None:
                self.sight.break_(self.what)
            await self.clock.sleep(self._backoff.next())

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"nodelifecycle-{self.what}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
