"""Scheduling Events as kube-scheduler's events.k8s.io/v1 recorder writes them (stored once, seen as core/v1 too).

As client-go's `events` broadcaster: the first event of a kind for an
object is created (`<pod>.<unix nanos in hex>`, reportingController
`default-scheduler`); the second within the series window turns it into a
series (`series.count` 2, PATCHed at once); later ones only count in
memory and are written by the refresh every 30 minutes; a series not
observed for 6 minutes ends, and the next occurrence starts a new event.
So an unschedulable pod retried every 10 s writes two events, not one per
attempt. Writes are fire-and-forget with at most `max_in_flight` at once;
beyond that events are dropped and counted, as the broadcaster's bounded
channel drops them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set, Tuple

from megaplane.client import Client, NotFoundError, StatusError
from megaplane.runtime import REAL_CLOCK, Clock, cancel_tasks

__all__ = ["EventRecorder"]

log = logging.getLogger("megaplane.scheduler.events")

SERIES_REFRESH_PERIOD = 30 * 60.0
SERIES_FINISH_AFTER = 6 * 60.0
MAX_NOTE_LENGTH = 1024

Obj = Dict[str, Any]


def micro_time(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Cached:
    event: Obj
    last_observed: float
    count: int = 1


class EventRecorder:
    def __init__(self, client: Client, controller: str = "default-scheduler", *, clock: Clock = REAL_CLOCK,
                 max_in_flight: int = 64) -> None:
        self.events = client.resource("events.k8s.io/v1", "events")
        self.controller = controller
        self.instance = f"{controller}-{socket.gethostname()}"
        self.clock = clock
        self.max_in_flight = max_in_flight
        self._cache: Dict[Tuple[str, str, str, str, str], _Cached] = {}
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._loop_task: Optional["asyncio.Task[None]"] = None
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def event(self, pod: Obj, event_type: str, reason: str, action: str, note: str) -> None:
        """Record an event about `pod` (non-blocking)."""
        meta = pod.get("metadata") or {}
        ns, name, uid = str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
        key = (ns, name, uid, reason, action)
        now = self.clock.time()
        cached = self._cache.get(key)
        if cached is not None:
            cached.count += 1
            cached.last_observed = now
            if cached.count > 2:
                return  # counted; written by the refresh
            cached.event["series"] = {"count": 2, "lastObservedTime": micro_time(now)}
            self._submit(self._patch_series(cached))
            return
        event: Obj = {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": f"{name}.{int(now * 1e9):x}", "namespace": ns},
            "eventTime": micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action, "reason": reason, "type": event_type, "note": note[:MAX_NOTE_LENGTH],
            "regarding": {"kind": "Pod", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1",
                          "resourceVersion": str(meta.get("resourceVersion", ""))},
        }
        self._cache[key] = _Cached(event, now)
        self._submit(self._create(event))

    def _submit(self, coro: Any) -> None:
        if len(self._tasks) >= self.max_in_flight:
            coro.close()
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, event: Obj) -> None:
        try:
            await self.events.create(event, event["metadata"]["namespace"])
            self.written += 1
        except StatusError as exc:
            self.failed += 1
            log.info("event %s/%s not written: %s", event["metadata"]["namespace"], event["metadata"]["name"], exc)
        except Exception as exc:  # an unreachable server: events are best effort
            self.failed += 1
            log.info("event not written: %s", exc)

    async def _patch_series(self, cached: _Cached) -> None:
        event = cached.event
        series = {"count": cached.count, "lastObservedTime": micro_time(cached.last_observed)}
        event["series"] = series
        meta = event["metadata"]
        try:
            await self.events.patch(meta["name"], {"series": series}, meta["namespace"], patch_type="merge")
            self.written += 1
        except NotFoundError:
            await self._create(event)
        except Exception as exc:
            self.failed += 1
            log.info("event series %s/%s not written: %s", meta["namespace"], meta["name"], exc)

    async def _maintain(self) -> None:
        last_refresh = self.clock.monotonic()
        while True:
            await self.clock.sleep(60.0)
            now = self.clock.time()
            for key, cached in list(self._cache.items()):
                if now - cached.last_observed > SERIES_FINISH_AFTER:
                    del self._cache[key]
            if self.clock.monotonic() - last_refresh >= SERIES_REFRESH_PERIOD:
                last_refresh = self.clock.monotonic()
                for cached in self._cache.values():
                    if cached.count > 2:
                        self._submit(self._patch_series(cached))

    def forget(self, pod: Obj) -> None:
        """Drop the series of a pod that is gone (so the cache does not hold deleted pods)."""
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        for key in [k for k in self._cache if k[0] == ns and k[1] == name]:
            del self._cache[key]

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._maintain())

    async def stop(self) -> None:
        await cancel_tasks(list(self._tasks) + ([self._loop_task] if self._loop_task else []))
        self._tasks.clear()
        self._loop_task = None
