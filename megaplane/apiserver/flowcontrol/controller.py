"""Admission of resource requests: the inflight limits, or priority levels with fair queuing (APF).

With `--enable-priority-and-fairness` (the default, as upstream) the server's concurrency limit is
`--max-requests-inflight` + `--max-mutating-requests-inflight` (600), divided among the limited
priority levels by their nominal concurrency shares (ceil(600 * shares / 245): node-high 98,
global-default 49, ...). A request is classified (`classifier`), takes its seats at once when its
level has them and nobody is waiting, else waits in the level's queues (`queueset`) for at most a
quarter of its request timeout; a full queue, a level without queues or the wait running out
answers 429 as upstream's filter does: `Retry-After` (1 s, doubled while rejections keep coming, as
upstream's dropped-requests tracker, at most 32) and the plain-text body "Too many requests, please
try again later.". Without APF the two limits are upstream's max-inflight filter: separate seat
pools for reads (get, list) and writes, no queues, 429 when full; watches are not counted. A limit of
0 turns the limit off (upstream: no limit).

What a seat is here. kube-apiserver runs each request on its own goroutine across many cores, so
"requests executing" measures its load. This server runs handlers inline on one event loop: a handler
that answers without waiting is done before the next request is even read, so "executing" would
never be more than one. A seat is therefore held from dispatch to the end of the loop turn in which
its request finished (a handler that waits for storage holds it across turns, as upstream). Each
level then runs at most its limit of seats per loop turn; what arrives beyond that within the turn
waits for the next turns in fair order, so a turn's length (and with it the wait of a lease renewal
that arrives in it) is bounded by the seats, not by the number of clients, while the loop never
idles with work waiting. A LIST costs more than one seat (upstream's work estimate: one seat per 100
objects the list walks, 1..10).

A level's seats are its guarantee, not its cap: while nobody waits and the server's total is not
reached, a busy level borrows the idle levels' seats (`_borrow`), so shares are enforced only when the
server is contended, as upstream lends unused seats between levels.

The uncontended path (a dict probe, a comparison, a list append) costs about a microsecond and
never creates a Task; only a request that has to wait becomes one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from megaplane.apimachinery.resources import Resource
from megaplane.apiserver.flowcontrol.bootstrap import PRIORITY_LEVELS, PriorityLevel
from megaplane.apiserver.flowcontrol.classifier import Classifier
from megaplane.apiserver.flowcontrol.queueset import QueueSet, Waiter
from megaplane.apiserver.http.limits import request_deadline
from megaplane.apiserver.http.transport import Request, Response

__all__ = ["FlowControlConfig", "FlowController", "FlowStats", "too_many_requests"]

log = logging.getLogger("megaplane.apiserver.flowcontrol")

# upstream's http.Error(w, "Too many requests, please try again later.", 429) (priority-and-fairness.go)
TOO_MANY_REQUESTS_BODY = b"Too many requests, please try again later.\n"
# Upstream's wait-duration buckets (apiserver_flowcontrol_request_wait_duration_seconds).
WAIT_BUCKETS = (0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
# A queued request waits at most a quarter of its deadline, and never more than a minute (upstream).
MAX_WAIT = 60.0
# Upstream's list work estimate (pkg/util/flowcontrol/request/config.go).
OBJECTS_PER_SEAT = 100
MAX_LIST_SEATS = 10
MAX_RETRY_AFTER = 32
SWEEP_SECONDS = 0.05
_READ_VERBS = frozenset(("get", "list"))
_SPECIAL_NAMESPACES = frozenset(("kube-system", "kube-node-lease"))

# A resource handler: (routed request info, request, parsed query) -> what the transport answers.
Handler = Callable[[Any, Request, Dict[str, str]], Any]


@dataclass
class FlowControlConfig:
    #: --enable-priority-and-fairness (upstream default true).
    enable_priority_and_fairness: bool = True
    #: --max-requests-inflight: reads (APF: added into the server's concurrency limit). 0: no limit.
    max_requests_inflight: int = 400
    #: --max-mutating-requests-inflight: writes (APF: added into the server's concurrency limit). 0: no limit.
    max_mutating_requests_inflight: int = 200
    #: --request-timeout: a queued request waits at most a quarter of it.
    request_timeout: float = 60.0


class FlowStats:
    """The counters of one (priority level, flow schema): plain ints on the hot path, read at scrape time."""

    __slots__ = ("level", "schema", "dispatched", "executing", "waiting", "rejected", "waits")

    def __init__(self, level: str, schema: str) -> None:
        self.level = level
        self.schema = schema
        self.dispatched = 0
        self.executing = 0
        self.waiting = 0
        self.rejected: Dict[str, int] = {}
        #: execute "true"/"false" -> bucket counts (len(WAIT_BUCKETS) + 1), then the sum.
        self.waits: Dict[str, List[float]] = {}

    def observe_wait(self, seconds: float, executed: bool) -> None:
        key = "true" if executed else "false"
        counts = self.waits.get(key)
        if counts is None:
            counts = self.waits[key] = [0.0] * (len(WAIT_BUCKETS) + 2)
        i = 0
        while i < len(WAIT_BUCKETS) and seconds > WAIT_BUCKETS[i]:
            i += 1
        counts[i] += 1
        counts[-1] += seconds


class _RetryAfter:
    """Upstream's dropped-requests tracker for one level: Retry-After doubles under sustained rejection.

    Per second it counts rejections; when a second ends, if the last `retry_after` seconds saw at least
    3 * retry_after rejections (and the last raise is that long ago) it doubles, up to 32; if they saw
    fewer than retry_after it goes down by one.
    """

    __slots__ = ("value", "current", "count", "history", "raised_at")

    def __init__(self) -> None:
        self.value = 1
        self.current = 0
        self.count = 0
        self.history: List[Tuple[int, int]] = []
        self.raised_at = 0

    def record(self, now: int) -> None:
        if now == self.current:
            self.count += 1
            return
        if self.count:
            self.history.append((self.current, self.count))
        self.current, self.count = now, 1
        keep = min(2 * self.value, MAX_RETRY_AFTER)
        self.history = [(t, n) for t, n in self.history if now - t <= keep]
        dropped = sum(n for t, n in self.history if now - t <= self.value)
        if now - self.raised_at >= self.value and dropped >= 3 * self.value:
            self.value = min(self.value * 2, MAX_RETRY_AFTER)
            self.raised_at = now
        elif dropped < self.value and self.value > 1:
            self.value -= 1


class _Route:
    """One memoised request shape: where it queues and what it is counted as."""

    __slots__ = ("seats", "stats", "by_namespace", "flow_prefix", "list_like", "retry")

    def __init__(self, seats: Optional[QueueSet], stats: Optional[FlowStats], by_namespace: bool, flow_prefix: str,
                 list_like: bool, retry: Optional[_RetryAfter]) -> None:
        self.seats = seats
        self.stats = stats
        self.by_namespace = by_namespace
        self.flow_prefix = flow_prefix
        self.list_like = list_like
        self.retry = retry


def too_many_requests(retry_after: int) -> Response:
    """Upstream's 429: plain text, with Retry-After (client-go turns it into a TooManyRequests Status)."""
    return Response(429, TOO_MANY_REQUESTS_BODY, b"text/plain; charset=utf-8", headers=[
        (b"Retry-After", str(retry_after).encode()), (b"X-Content-Type-Options", b"nosniff")])


def nominal_limits(server_limit: int, levels: Tuple[PriorityLevel, ...] = PRIORITY_LEVELS) -> Dict[str, int]:
    """Each limited level's nominal concurrency limit: ceil(server limit * shares / all shares)."""
    limited = [pl for pl in levels if not pl.exempt]
    total = sum(pl.nominal_concurrency_shares for pl in limited)
    return {pl.name: math.ceil(server_limit * pl.nominal_concurrency_shares / total) for pl in limited}


class FlowController:
    """Admits, queues or rejects each resource request before its handler runs."""

    def __init__(self, config: Optional[FlowControlConfig] = None,
                 object_count: Optional[Callable[[Resource], int]] = None) -> None:
        self.config = cfg = config or FlowControlConfig()
        self._object_count = object_count or (lambda r: 0)
        self.classifier = Classifier()
        self.apf = cfg.enable_priority_and_fairness
        self.server_limit = max(cfg.max_requests_inflight, 0) + max(cfg.max_mutating_requests_inflight, 0)
        self.levels: Dict[str, QueueSet] = {}
        self.nominal: Dict[str, int] = {}
        if self.apf and self.server_limit:
            self.nominal = nominal_limits(self.server_limit)
            for pl in PRIORITY_LEVELS:
                if not pl.exempt:
                    self.levels[pl.name] = QueueSet(pl, self.nominal[pl.name])
        elif not self.apf:
            for kind, limit in (("readOnly", cfg.max_requests_inflight), ("mutating", cfg.max_mutating_requests_inflight)):
                if limit > 0:
                    self.levels[kind] = QueueSet(PriorityLevel(kind, nominal_concurrency_shares=1), limit)
        self.stats: Dict[Tuple[str, str], FlowStats] = {}
        self._retry: Dict[str, _RetryAfter] = {}
        self._routes: Dict[Tuple[str, str, str, str, str, bool], _Route] = {}
        self._ending: List[Tuple[_Route, int]] = []
        self._end_scheduled = False
        self._sweeping = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    @property
    def enabled(self) -> bool:
        return bool(self.levels)

    # -- the request path ------------------------------------------------------------------------

    def handle(self, info: Any, req: Request, query: Dict[str, str], handler: Handler) -> Any:
        """Run `handler(info, req, query)` when admitted; what it returns, or a 429 `Response`."""
        ns = info.namespace
        key = (info.verb, info.group, info.plural, info.subresource,
               "" if not ns else (ns if ns in _SPECIAL_NAMESPACES else "*"), bool(info.name))
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._route(key)
        seats = route.seats
        if seats is None:
            return handler(info, req, query)
        width = self._list_width(info, query, seats) if route.list_like else 1
        if seats.try_acquire_nowait(width) or (self.apf and self._borrow(seats, width)):
            stats = route.stats
            if stats is not None:
                stats.dispatched += 1
                stats.executing += 1
                stats.observe_wait(0.0, True)
            return self._run(route, width, handler, info, req, query)
        return self._enqueue(route, width, info, req, query, handler)

    def _borrow(self, seats: QueueSet, width: int) -> bool:
        """Seats beyond the level's own, lent by the others while the server as a whole has them free.

        Upstream's borrowing, simplified: a level's nominal seats are only its guarantee. While nobody
        waits anywhere and the seats in use across all levels stay within the server's limit, a busy
        level runs on; shares are enforced (by queueing) only when the server is contended. Without
        this a single level's steady load (e.g. 200 clients in one namespace) queued every turn at
        its 49 seats although 500 more were idle, and a queued request costs a Task.
        """
        levels = self.levels.values()
        if seats.waiting or any(level.waiting for level in levels):
            return False
        if sum(level.in_use for level in levels) + width > self.server_limit:
            return False
        seats.in_use += width
        return True

    def _run(self, route: _Route, width: int, handler: Handler, info: Any, req: Request, query: Dict[str, str]) -> Any:
        try:
            result = handler(info, req, query)
        except BaseException:
            self._release_at_turn_end(route, width)
            raise
        if asyncio.iscoroutine(result):
            return self._finish(result, route, width)
        self._release_at_turn_end(route, width)
        return result

    async def _finish(self, coro: Any, route: _Route, width: int) -> Any:
        try:
            return await coro
        finally:
            self._release_at_turn_end(route, width)

    def _enqueue(self, route: _Route, width: int, info: Any, req: Request, query: Dict[str, str],
                 handler: Handler) -> Any:
        seats = route.seats
        assert seats is not None
        loop = self._loop or self._get_loop()
        wait = min(request_deadline(req.query, self.config.request_timeout) / 4, MAX_WAIT)
        waiter = Waiter(loop.create_future(), width, req.started + wait, req.started, route)
        distinguisher = info.namespace if route.by_namespace else req.headers.get("user-agent", "")
        reason = seats.enqueue(hash((route.flow_prefix, distinguisher)) & 0xFFFFFFFFFFFFFFFF, waiter)
        if reason is not None:
            return self._reject(route, reason)
        if route.stats is not None:
            route.stats.waiting += 1
        if not self._sweeping:
            self._sweeping = True
            loop.call_later(SWEEP_SECONDS, self._sweep)
        return self._wait_then_run(waiter, route, handler, info, req, query)

    async def _wait_then_run(self, waiter: Waiter, route: _Route, handler: Handler, info: Any, req: Request,
                             query: Dict[str, str]) -> Any:
        try:
            granted = await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter, route)
            raise
        stats = route.stats
        waited = time.perf_counter() - waiter.enqueued
        if not granted:
            if stats is not None:
                stats.observe_wait(waited, False)
            return self._reject(route, "time-out")
        if stats is not None:
            stats.dispatched += 1
            stats.executing += 1
            stats.observe_wait(waited, True)
        try:
            result = handler(info, req, query)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        finally:
            self._release_at_turn_end(route, waiter.width)

    def _abandon(self, waiter: Waiter, route: _Route) -> None:
        """A waiting request's task was cancelled (server stop): free its place, or its granted seats."""
        q = waiter.queue
        seats = route.seats
        if q is not None and seats is not None:
            q.waiting.remove(waiter)
            q.waiting_seats -= waiter.width
            seats.waiting -= 1
            if route.stats is not None:
                route.stats.waiting -= 1
        elif waiter.future.done() and not waiter.future.cancelled() and waiter.future.result():
            if route.stats is not None:
                route.stats.executing += 1
            self._release_at_turn_end(route, waiter.width)

    def _reject(self, route: _Route, reason: str) -> Response:
        stats = route.stats
        if stats is not None:
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        retry = route.retry
        if retry is None:
            return too_many_requests(1)
        retry.record(int(time.time()))
        return too_many_requests(retry.value)

    # -- seats and turns -------------------------------------------------------------------------

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _release_at_turn_end(self, route: _Route, width: int) -> None:
        self._ending.append((route, width))
        if not self._end_scheduled:
            self._end_scheduled = True
            (self._loop or self._get_loop()).call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._end_scheduled = False
        ending, self._ending = self._ending, []
        released: Dict[int, QueueSet] = {}
        for route, width in ending:
            seats = route.seats
            assert seats is not None
            seats.release(width)
            if route.stats is not None:
                route.stats.executing -= 1
            released[id(seats)] = seats
        for seats in released.values():
            if seats.waiting:
                for w in seats.dispatch():
                    if w.route.stats is not None:
                        w.route.stats.waiting -= 1

    def _sweep(self) -> None:
        now = time.perf_counter()
        waiting = False
        for seats in self.levels.values():
            for w in seats.expire(now):
                if w.route.stats is not None:
                    w.route.stats.waiting -= 1
                if not w.future.done():
                    w.future.set_result(False)
            waiting = waiting or seats.waiting > 0
        if waiting:
            (self._loop or self._get_loop()).call_later(SWEEP_SECONDS, self._sweep)
        else:
            self._sweeping = False

    # -- classification --------------------------------------------------------------------------

    def _route(self, key: Tuple[str, str, str, str, str, bool]) -> _Route:
        verb, group, plural, subresource, ns_class, named = key
        if not self.levels:
            return _Route(None, None, False, "", False, None)
        if not self.apf:
            if verb == "watch":
                return _Route(None, None, False, "", False, None)  # long-running: not counted
            seats = self.levels.get("readOnly" if verb in _READ_VERBS else "mutating")
            return _Route(seats, None, False, "", False, None)
        resource = f"{plural}/{subresource}" if subresource else plural
        # Only the namespace's class matters to the classifier; hand it a representative name.
        namespace = {"": "", "*": "default"}.get(ns_class, ns_class)
        c = self.classifier.classify(verb, group, resource, namespace, named)
        if c.level.exempt:
            return _Route(None, None, False, "", False, None)
        stats = self.stats.get((c.level.name, c.schema.name))
        if stats is None:
            stats = self.stats[(c.level.name, c.schema.name)] = FlowStats(c.level.name, c.schema.name)
        retry = self._retry.get(c.level.name)
        if retry is None:
            retry = self._retry[c.level.name] = _RetryAfter()
        list_like = verb in ("list", "watch") and not named
        return _Route(self.levels[c.level.name], stats, c.distinguisher == "ByNamespace", c.schema.name, list_like,
                      retry)

    def _list_width(self, info: Any, query: Dict[str, str], seats: QueueSet) -> int:
        """Upstream's list work estimate: a seat per 100 objects walked (1..10); a resumed watch costs 1."""
        if info.verb == "watch":
            rv = query.get("resourceVersion", "")
            if rv not in ("", "0") and query.get("sendInitialEvents") != "true":
                return 1
        n = self._object_count(info.resource)
        width = -(-n // OBJECTS_PER_SEAT)
        if width < 1:
            width = 1
        elif width > MAX_LIST_SEATS:
            width = MAX_LIST_SEATS
        return seats.clamp(width)

    # -- introspection ---------------------------------------------------------------------------

    def statistics(self) -> Dict[str, float]:
        return {
            "seats_in_use": float(sum(s.in_use for s in self.levels.values())),
            "waiting": float(sum(s.waiting for s in self.levels.values())),
            "rejected": float(sum(sum(st.rejected.values()) for st in self.stats.values())),
        }
