"""Controller work queues with client-go's semantics (k8s.io/client-go/util/workqueue), on one asyncio loop.

Owns `Queue`, `DelayingQueue`, `RateLimitingQueue`, the rate limiters and
the upstream `workqueue_*` metrics. No threads: every method is called
from the loop that runs the workers, so there are no locks.

The contract every controller relies on (queue.go):

- `add(key)` marks a key dirty. A key already waiting is not queued twice.
- A key a worker holds (got, not done) is never handed to a second worker.
  Added again meanwhile, it stays dirty and is queued again by `done(key)`,
  so the newest state is always processed once more and never concurrently.
- `get()` hands out keys in FIFO order and blocks while the queue is empty.
  After `shutdown()` it keeps handing out what is queued, then raises
  `QueueShutDown`: the Pythonic form of client-go's `(item, shutdown=true)`,
  the same as Python 3.13's `asyncio.Queue.shutdown()`.

A worker is therefore::

    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        try:
            await sync(key)
            queue.forget(key)
        except Exception:
            queue.add_rate_limited(key)
        finally:
            queue.done(key)

Differences from client-go, on purpose: `done()` of a key not being
processed raises `NotProcessingError` (client-go would queue a dirty key a
second time); delays are float seconds rather than integer nanoseconds;
the token bucket reads the injected clock (client-go's calls time.Now());
delayed keys wait on one clock timer for the earliest deadline, so there is
no waiting goroutine and no 10 s heartbeat; the unfinished-work gauges are
computed when scraped rather than every 500 ms.

Metrics (upstream names, label `name`) exist only for a named queue given
a prometheus_client registry, as client-go registers none for an unnamed
queue. Without one, add/get/done do no timing at all; `statistics()`
always has the plain counters.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import heapq
import math
import weakref
from dataclasses import dataclass
from typing import Any, Deque, Dict, Generic, Hashable, Iterator, List, Optional, Protocol, Set, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from megaplane.runtime import REAL_CLOCK, Clock, Timer

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ItemExponentialFailureRateLimiter",
    "ItemFastSlowRateLimiter",
    "MaxOfRateLimiter",
    "NotProcessingError",
    "Queue",
    "QueueShutDown",
    "QueueStatistics",
    "RateLimiter",
    "RateLimitingQueue",
    "WithMaxWaitRateLimiter",
    "default_controller_rate_limiter",
    "default_item_based_rate_limiter",
]

T = TypeVar("T", bound=Hashable)
K = TypeVar("K", bound=Hashable, contravariant=True)


class QueueShutDown(Exception):
    """Raised by `get()` / `get_nowait()` once the queue is shut down and has nothing left to hand out.

    The worker should return. (client-go: `Get()` returning shutdown=true.)
    """


class NotProcessingError(ValueError):
    """Raised by `done(item)` for an item no worker got (never got, or already done)."""


@dataclass(frozen=True)
class QueueStatistics:
    """A queue's state and counters at one moment."""

    #: The queue's name ("" when unnamed).
    name: str
    #: Items waiting to be got (client-go's Len()).
    queued: int
    #: Items marked for processing: queued plus those re-added while a worker holds them
    #: (the workqueue_depth gauge).
    depth: int
    #: Items a worker got and has not marked done.
    processing: int
    #: Items waiting for an add_after deadline (0 for a plain Queue).
    waiting: int
    #: Adds that marked an item dirty (deduplicated adds are not counted): workqueue_adds_total.
    adds_total: int
    #: add_after / add_rate_limited calls before shutdown: workqueue_retries_total.
    retries_total: int
    #: Whether shutdown() or shutdown_with_drain() was called.
    shutting_down: bool


# prometheus ExponentialBuckets(10e-9, 10, 10), as k8s.io/component-base/metrics/prometheus/workqueue.
_DURATION_BUCKETS = (1e-08, 1e-07, 1e-06, 1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0)


class _Histogram:
    __slots__ = ("counts", "total", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_DURATION_BUCKETS) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_DURATION_BUCKETS, value)] += 1
        self.total += 1
        self.sum += value

    def family(self, family: HistogramMetricFamily, name: str) -> None:
        buckets = []
        cumulative = 0
        for bound, count in zip(_DURATION_BUCKETS, self.counts):
            cumulative += count
            buckets.append((repr(bound), float(cumulative)))
        buckets.append(("+Inf", float(self.total)))
        family.add_metric([name], buckets, self.sum)


class _Timing:
    """Per-item timestamps for the duration metrics (client-go's defaultQueueMetrics)."""

    __slots__ = ("now", "add_times", "start_times", "queue_duration", "work_duration")

    def __init__(self, clock: Clock) -> None:
        self.now = clock.monotonic
        self.add_times: Dict[Hashable, float] = {}
        self.start_times: Dict[Hashable, float] = {}
        self.queue_duration = _Histogram()
        self.work_duration = _Histogram()

    def added(self, item: Hashable) -> None:
        if item not in self.add_times:
            self.add_times[item] = self.now()

    def got(self, item: Hashable) -> None:
        now = self.now()
        self.start_times[item] = now
        added = self.add_times.pop(item, None)
        if added is not None:
            self.queue_duration.observe(now - added)

    def done(self, item: Hashable) -> None:
        started = self.start_times.pop(item, None)
        if started is not None:
            self.work_duration.observe(self.now() - started)


class _Collector:
    """All named queues of one registry: one collector, so their series share metric families."""

    def __init__(self) -> None:
        # Any: the collector reads the queues' counters and timings, never their items.
        self.queues: weakref.WeakValueDictionary[str, Queue[Any]] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[Metric]:
        label = ["name"]
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=label)
        adds = CounterMetricFamily("workqueue_adds", "Total number of adds handled by workqueue", labels=label)
        latency = HistogramMetricFamily(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            labels=label,
        )
        work = HistogramMetricFamily(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            labels=label,
        )
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
            "threads by observing the rate at which this increases.",
            labels=label,
        )
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=label,
        )
        retries = CounterMetricFamily("workqueue_retries", "Total number of retries handled by workqueue",
                                      labels=label)
        for name, queue in sorted(self.queues.items()):
            timing = queue._timing
            assert timing is not None
            depth.add_metric([name], len(queue._dirty))
            adds.add_metric([name], queue.adds_total)
            retries.add_metric([name], queue.retries_total)
            timing.queue_duration.family(latency, name)
            timing.work_duration.family(work, name)
            now = queue.clock.monotonic()
            ages = [now - started for started in timing.start_times.values()]
            unfinished.add_metric([name], sum(ages))
            longest.add_metric([name], max(ages, default=0.0))
        yield from (depth, adds, latency, work, unfinished, longest, retries)


_collectors: "weakref.WeakKeyDictionary[CollectorRegistry, _Collector]" = weakref.WeakKeyDictionary()


def _register(registry: CollectorRegistry, queue: Queue[Any]) -> None:
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = _Collector()
        registry.register(collector)
    if queue.name in collector.queues:
        raise ValueError(f"a work queue named {queue.name!r} already reports to this registry")
    collector.queues[queue.name] = queue


class Queue(Generic[T]):
    """client-go's workqueue.Typed: a deduplicating FIFO whose items are never processed concurrently.

    Items must be hashable (controllers queue "namespace/name" keys).
    `name` labels the metrics, which are registered in `registry` when both
    are given.
    """

    def __init__(
        self, *, name: str = "", clock: Clock = REAL_CLOCK, registry: Optional[CollectorRegistry] = None
    ) -> None:
        if registry is not None and not name:
            raise ValueError("a work queue needs a name to report metrics")
        self.name = name
        self.clock = clock
        self._queue: Deque[T] = collections.deque()
        self._dirty: Set[T] = set()
        self._processing: Set[T] = set()
        self._getters: Deque[asyncio.Future[None]] = collections.deque()
        self._drain_waiters: List[asyncio.Future[None]] = []
        self._shutting_down = False
        self._drain = False
        self.adds_total = 0
        self.retries_total = 0
        self._timing: Optional[_Timing] = None
        if registry is not None:
            self._timing = _Timing(clock)
            _register(registry, self)

    def add(self, item: T) -> None:
        """Mark `item` for processing; ignored after shutdown, a no-op if it is already marked."""
        if self._shutting_down or item in self._dirty:
            return
        self.adds_total += 1
        if self._timing is not None:
            self._timing.added(item)
        self._dirty.add(item)
        if item in self._processing:
            return  # queued again by done()
        self._queue.append(item)
        if self._getters:
            self._wake_getter()

    def __len__(self) -> int:
        """Items waiting to be got (not those re-added while processing); informational only."""
        return len(self._queue)

    async def get(self) -> T:
        """The next item, waiting for one; raises `QueueShutDown` once shut down and empty.

        The caller must call `done(item)` when it has finished with it.
        """
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                try:
                    self._getters.remove(getter)
                except ValueError:
                    pass
                # Woken, then cancelled before taking the item: pass the wake-up on.
                if self._queue and not getter.cancelled():
                    self._wake_getter()
                raise
        return self._take()

    def get_nowait(self) -> T:
        """The next item without waiting: `asyncio.QueueEmpty` if none, `QueueShutDown` once shut down and empty."""
        if self._queue:
            return self._take()
        if self._shutting_down:
            raise QueueShutDown(self.name)
        raise asyncio.QueueEmpty()

    def _take(self) -> T:
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        if self._timing is not None:
            self._timing.got(item)
        return item

    def done(self, item: T) -> None:
        """Mark `item` as processed; re-queue it if it was added again meanwhile."""
        try:
            self._processing.remove(item)
        except KeyError:
            raise NotProcessingError(f"work queue {self.name!r}: {item!r} is not being processed") from None
        if self._timing is not None:
            self._timing.done(item)
        if item in self._dirty:
            self._queue.append(item)
            if self._getters:
                self._wake_getter()
        elif not self._processing and self._drain_waiters:
            self._wake_drainers()

    def shutdown(self) -> None:
        """Ignore further adds; `get()` hands out what is queued, then raises `QueueShutDown`.

        Also ends a `shutdown_with_drain()` still waiting (client-go: a second SIGTERM).
        """
        self._shutting_down = True
        self._drain = False
        while self._getters:
            self._wake_getter()
        self._wake_drainers()

    async def shutdown_with_drain(self) -> None:
        """`shutdown()`, then wait until every item got is done (or `shutdown()` is called)."""
        self._shutting_down = True
        self._drain = True
        while self._getters:
            self._wake_getter()
        loop = asyncio.get_running_loop()
        while self._processing and self._drain:
            waiter = loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _waiting_count(self) -> int:
        return 0

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            name=self.name,
            queued=len(self._queue),
            depth=len(self._dirty),
            processing=len(self._processing),
            waiting=self._waiting_count(),
            adds_total=self.adds_total,
            retries_total=self.retries_total,
            shutting_down=self._shutting_down,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        down = " shutting-down" if s.shutting_down else ""
        return (f"<{type(self).__name__} {self.name!r} queued={s.queued} processing={s.processing} "
                f"waiting={s.waiting}{down}>")


class DelayingQueue(Queue[T]):
    """client-go's delaying queue: `add_after(item, delay)` adds `item` once `delay` seconds passed on the clock.

    Adding a waiting item again keeps the earlier deadline. `delay <= 0`
    adds now. Waiting items are dropped by shutdown. With the RealClock the
    delayed adds need a running event loop (they wait on its timers).
    """

    def __init__(
        self, *, name: str = "", clock: Clock = REAL_CLOCK, registry: Optional[CollectorRegistry] = None
    ) -> None:
        super().__init__(name=name, clock=clock, registry=registry)
        # Heap of [deadline, sequence, item, live]; an entry moved earlier is marked dead and pushed again.
        # A list, not a tuple, so that marking is in place; hence Any for its mixed members.
        self._heap: List[List[Any]] = []
        self._waiting: Dict[T, List[Any]] = {}
        self._sequence = 0
        self._timer: Optional[Timer] = None
        self._timer_deadline = math.inf

    def add_after(self, item: T, delay: float) -> None:
        """Add `item` after `delay` seconds (the earliest pending deadline wins); ignored after shutdown."""
        if self._shutting_down:
            return
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or math.isnan(delay):
            raise TypeError(f"add_after delay must be a number of seconds, got {delay!r}")
        self.retries_total += 1
        if delay <= 0:
            self.add(item)
            return
        deadline = self.clock.monotonic() + delay
        entry = self._waiting.get(item)
        if entry is not None:
            if entry[0] <= deadline:
                return
            entry[3] = False
        entry = [deadline, self._sequence, item, True]
        self._sequence += 1
        heapq.heappush(self._heap, entry)
        self._waiting[item] = entry
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._waiting):
            self._heap = [e for e in self._heap if e[3]]
            heapq.heapify(self._heap)
        if deadline < self._timer_deadline:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline != math.inf:  # an infinite delay (a bucket with no tokens ever) never fires
            self._timer = self.clock.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        # The clock says the armed deadline arrived, even if its reading is a hair earlier.
        now = max(self.clock.monotonic(), self._timer_deadline)
        self._timer = None
        self._timer_deadline = math.inf
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if entry[3]:
                item: T = entry[2]
                del self._waiting[item]
                self.add(item)
        while heap and not heap[0][3]:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    def shutdown(self) -> None:
        super().shutdown()
        self._drop_waiting()

    async def shutdown_with_drain(self) -> None:
        self._drop_waiting()
        await super().shutdown_with_drain()

    def _drop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = math.inf
        self._heap.clear()
        self._waiting.clear()

    def _waiting_count(self) -> int:
        return len(self._waiting)


class RateLimiter(Protocol[K]):
    """client-go's TypedRateLimiter: how long an item waits before its next retry."""

    def when(self, item: K) -> float:
        """Seconds `item` should wait now; counts as one more requeue of it."""

    def forget(self, item: K) -> None:
        """Stop tracking `item` (it succeeded or was given up on)."""

    def num_requeues(self, item: K) -> int:
        """How many times `item` was requeued since it was last forgotten."""


def _duration(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


class ItemExponentialFailureRateLimiter(Generic[T]):
    """base * 2**failures per item, capped at `max_delay` (client-go: 5 ms .. 1000 s in the default)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = _duration(base_delay, "base_delay")
        self.max_delay = _duration(max_delay, "max_delay")
        self._failures: Dict[T, int] = {}

    def when(self, item: T) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp > 1023:  # 2.0 ** 1024 overflows a float; the cap has long been reached
            return self.max_delay
        return min(self.base_delay * 2.0**exp, self.max_delay)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)


class ItemFastSlowRateLimiter(Generic[T]):
    """`fast_delay` for the first `max_fast_attempts` retries of an item, `slow_delay` after."""

    def __init__(self, fast_delay: float, slow_delay: float, max_fast_attempts: int) -> None:
        self.fast_delay = _duration(fast_delay, "fast_delay")
        self.slow_delay = _duration(slow_delay, "slow_delay")
        if isinstance(max_fast_attempts, bool) or not isinstance(max_fast_attempts, int):
            raise TypeError(f"max_fast_attempts must be an int, got {max_fast_attempts!r}")
        self.max_fast_attempts = max_fast_attempts
        self._failures: Dict[T, int] = {}

    def when(self, item: T) -> float:
        failures = self._failures[item] = self._failures.get(item, 0) + 1
        return self.fast_delay if failures <= self.max_fast_attempts else self.slow_delay

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)


class BucketRateLimiter(Generic[T]):
    """A token bucket over all items, with golang.org/x/time/rate's reservation semantics.

    The bucket starts full (`burst` tokens) and refills at `qps` tokens a
    second up to `burst`. Each `when()` reserves a token: 0 while tokens
    are left, then the time until the reserved token exists, so the delay
    grows by 1/qps per call until time passes. `burst=0` reserves nothing
    (infinite delay, as rate.Limiter's Reserve().Delay() on a zero burst);
    `qps=math.inf` never delays.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock = REAL_CLOCK) -> None:
        if isinstance(qps, bool) or not isinstance(qps, (int, float)) or math.isnan(qps) or qps < 0:
            raise ValueError(f"qps must be a non-negative number, got {qps!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise ValueError(f"burst must be a non-negative int, got {burst!r}")
        self.qps = float(qps)
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._last: Optional[float] = None

    def tokens(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        return self._advance(self.clock.monotonic())

    def _advance(self, now: float) -> float:
        last = self._last if self._last is not None and self._last <= now else now
        return min(self._tokens + (now - last) * self.qps, float(self.burst))

    def when(self, item: T) -> float:
        if self.qps == math.inf:
            return 0.0
        if self.burst < 1:
            return math.inf
        now = self.clock.monotonic()
        tokens = self._advance(now) - 1.0
        wait = 0.0
        if tokens < 0:
            wait = -tokens / self.qps if self.qps > 0 else math.inf
        self._last = now
        self._tokens = tokens
        return wait

    def num_requeues(self, item: T) -> int:
        return 0

    def forget(self, item: T) -> None:
        pass


class MaxOfRateLimiter(Generic[T]):
    """The longest delay of all `limiters` (each is asked every time, so each counts the retry)."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        self.limiters = limiters

    def when(self, item: T) -> float:
        longest = 0.0
        for limiter in self.limiters:
            longest = max(longest, limiter.when(item))
        return longest

    def num_requeues(self, item: T) -> int:
        return max((limiter.num_requeues(item) for limiter in self.limiters), default=0)

    def forget(self, item: T) -> None:
        for limiter in self.limiters:
            limiter.forget(item)


class WithMaxWaitRateLimiter(Generic[T]):
    """`limiter`, its delays capped at `max_delay`."""

    def __init__(self, limiter: RateLimiter[T], max_delay: float) -> None:
        self.limiter = limiter
        self.max_delay = _duration(max_delay, "max_delay")

    def when(self, item: T) -> float:
        return min(self.limiter.when(item), self.max_delay)

    def num_requeues(self, item: T) -> int:
        return self.limiter.num_requeues(item)

    def forget(self, item: T) -> None:
        self.limiter.forget(item)


def default_controller_rate_limiter(clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter[Hashable]:
    """client-go's DefaultControllerRateLimiter: max(per-item 5 ms * 2**n up to 1000 s, overall 10 qps burst 100)."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock=clock),
    )


def default_item_based_rate_limiter() -> ItemExponentialFailureRateLimiter[Hashable]:
    """client-go's DefaultItemBasedRateLimiter: per-item 1 ms * 2**n up to 1000 s."""
    return ItemExponentialFailureRateLimiter(0.001, 1000.0)


class RateLimitingQueue(DelayingQueue[T]):
    """client-go's rate-limiting queue: `add_rate_limited` waits as long as the rate limiter says.

    The default limiter is `default_controller_rate_limiter()` on this
    queue's clock. `forget()` only resets the limiter's memory of the item;
    `done()` must still be called.
    """

    def __init__(
        self,
        rate_limiter: Optional[RateLimiter[T]] = None,
        *,
        name: str = "",
        clock: Clock = REAL_CLOCK,
        registry: Optional[CollectorRegistry] = None,
    ) -> None:
        super().__init__(name=name, clock=clock, registry=registry)
        self.rate_limiter: RateLimiter[T] = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter(clock)
        )

    def add_rate_limited(self, item: T) -> None:
        """Add `item` after the rate limiter's delay for it (which counts a requeue even after shutdown)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
