"""The fault annotations of the fleet's Nodes, watched without keeping the Nodes.

A SharedInformer would hold every Node as a dict (kilobytes each: far
over the fleet's per-node budget), and all the fleet needs of a Node is
one annotation. So this is a lean reflector: list in pages, then watch
from the list's resourceVersion with bookmarks; an event is decoded only
when it can matter (it mentions the fault annotation, or some node of
this fleet currently has a fault); 410 relists, a dropped watch resumes
from the last resourceVersion, failures back off as the reflector does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Dict, Optional

import orjson

from megaplane.client import Backoff, ResourceClient, StatusError, error_from_response
from megaplane.runtime import REAL_CLOCK, Clock

from .config import FleetConfig
from .heartbeats import resource_version
from .nodes import FAULT_ANNOTATION, parse_fault

__all__ = ["NodeFaultWatch"]

log = logging.getLogger("megaplane.fleet")

_ANNOTATION = FAULT_ANNOTATION.encode()


class _Relist(Exception):
    pass


def _list_metadata(body: bytes) -> Optional[Dict[str, Any]]:
    """A list's metadata without decoding its items, when the metadata precedes them (as servers write it)."""
    items_at = body.find(b'"items"')
    if items_at < 0:
        return None
    try:
        head = orjson.loads(body[:items_at].rstrip().rstrip(b",") + b"}")
    except orjson.JSONDecodeError:
        return None
    meta = head.get("metadata") if isinstance(head, dict) else None
    return meta if isinstance(meta, dict) else None


class NodeFaultWatch:
    """Calls `apply(local, fault, slow_every)` for this fleet's nodes as their fault annotation changes."""

    def __init__(self, nodes: ResourceClient, config: FleetConfig,
                 apply: Callable[[int, int, float], None], faulted: Callable[[], int], *,
                 clock: Clock = REAL_CLOCK, min_watch_timeout: int = 300) -> None:
        self.nodes = nodes
        self.config = config
        self.apply = apply
        self.faulted = faulted
        self.clock = clock
        self.min_watch_timeout = min_watch_timeout
        self._backoff = Backoff(clock=clock)
        self._rv = ""
        self._task: Optional["asyncio.Task[None]"] = None
        self._stream: Any = None
        self.synced = asyncio.Event()
        self.events = 0
        self.relists = 0

    def _node(self, obj: Dict[str, Any], deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        local = self.config.node_index(meta.get("name") or "")
        if local < 0:
            return
        value = None if deleted else (meta.get("annotations") or {}).get(FAULT_ANNOTATION)
        fault, every = parse_fault(value)
        self.apply(local, fault, every)

    async def _list(self) -> None:
        token: Optional[str] = None
        while True:
            body = await self.nodes.list_raw(limit=500, continue_=token)
            meta = None if _ANNOTATION in body else _list_metadata(body)
            if meta is None:
                page = orjson.loads(body)
                for obj in page.get("items") or ():
                    self._node(obj)
                meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                self._rv = meta.get("resourceVersion") or ""
                return

    async def _watch(self) -> None:
        timeout = self.min_watch_timeout
        self._stream = stream = await self.nodes.watch_raw(
            resource_version=self._rv, allow_watch_bookmarks=True, timeout_seconds=timeout)
        try:
            async for line in stream:
                self.events += 1
                if _ANNOTATION not in line and not self.faulted():
                    rv = resource_version(line)
                    if rv:
                        self._rv = rv.decode()
                    continue
                event = orjson.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Relist()
                    raise error_from_response(int(obj.get("code") or 500), {}, orjson.dumps(obj))
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self._rv = rv
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._node(obj, deleted=kind == "DELETED")
        finally:
            self._stream = None
            await stream.close()

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    self.synced.set()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except _Relist:
                self.relists += 1
                need_list = True
            except StatusError as exc:
                if exc.code == 410:
                    self.relists += 1
                    need_list = True
                    continue
                delay = self._backoff.next()
                log.info("fleet: node watch failed (%s); again in %.1fs", exc, delay)
                await self.clock.sleep(delay)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fleet-node-faults")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        stream = self._stream
        if stream is not None:
            await stream.close()
