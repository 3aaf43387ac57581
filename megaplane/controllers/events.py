"""core/v1 Events as client-go's record.EventRecorder writes them, fire and forget.

`EventRecorder(client, component).event(ref, type, reason, message)` creates
`<name>.<unix nanos in hex>` in the object's namespace (`default` for
cluster-scoped objects, as upstream) with `source.component`, count 1 and
first/last timestamps. Writes never block the caller; at most
`max_in_flight` are outstanding and beyond that events are dropped and
counted, as the broadcaster's bounded channel drops them. (No correlator:
repeated events are written again rather than aggregated into a count.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Dict, Mapping, Set

from megaplane.client import Client
from megaplane.runtime import REAL_CLOCK, Clock, cancel_tasks

__all__ = ["EventRecorder", "object_reference"]

log = logging.getLogger("megaplane.controllers.events")


def object_reference(kind: str, name: str, namespace: str = "", uid: str = "", api_version: str = "v1") -> Dict[str, str]:
    ref = {"kind": kind, "name": name, "apiVersion": api_version}
    if namespace:
        ref["namespace"] = namespace
    if uid:
        ref["uid"] = uid
    return ref


class EventRecorder:
    def __init__(self, client: Client, component: str, *, clock: Clock = REAL_CLOCK, max_in_flight: int = 64) -> None:
        self.events = client.resource("events")
        self.component = component
        self.host = socket.gethostname()
        self.clock = clock
        self.max_in_flight = max_in_flight
        self._tasks: Set["asyncio.Task[None]"] = set()
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def event(self, ref: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        if len(self._tasks) >= self.max_in_flight:
            self.dropped += 1
            return
        now = self.clock.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        namespace = ref.get("namespace") or "default"
        body: Dict[str, Any] = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name', '')}.{int(now * 1e9):x}", "namespace": namespace},
            "involvedObject": dict(ref), "reason": reason, "message": message, "type": event_type,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        task = asyncio.get_running_loop().create_task(self._create(body, namespace))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, body: Dict[str, Any], namespace: str) -> None:
        try:
            await self.events.create(body, namespace)
            self.written += 1
        except Exception as exc:  # events are best effort: an unreachable server or a terminating namespace
            self.failed += 1
            log.info("event %s %s not written: %s", body["reason"], body["involvedObject"].get("name"), exc)

    async def stop(self) -> None:
        await cancel_tasks(list(self._tasks))
        self._tasks.clear()
