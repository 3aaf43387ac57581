"""megaplane.client.workqueue against the behaviours of client-go's util/workqueue tests.

queue_test.go, delaying_queue_test.go, rate_limiting_queue_test.go,
default_rate_limiters_test.go and metrics_test.go, ported to one asyncio
loop with megaplane.testing's FakeClock (time only moves when the test or
autojump says so). Durations are chosen exactly representable in binary.
"""

from __future__ import annotations

import asyncio
import math
from typing import Dict, Hashable, List, Set

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from megaplane.client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    NotProcessingError,
    Queue,
    QueueShutDown,
    RateLimiter,
    RateLimitingQueue,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)
from megaplane.runtime import REAL_CLOCK
from megaplane.testing import AutoAdvanceClock, FakeClock


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# -- Queue: queue_test.go ----------------------------------------------------------


@pytest.mark.parametrize("drain", [False, True], ids=["shutdown", "shutdown_with_drain"])
def test_basic_producers_and_consumers(drain: bool) -> None:
    async def main() -> None:
        clock = AutoAdvanceClock()
        q: Queue[object] = Queue(clock=clock)
        active: Set[object] = set()
        processed: List[object] = []

        async def producer(i: int) -> None:
            for _ in range(50):
                q.add(i)
                await clock.sleep(0.001)

        async def consumer() -> None:
            while True:
                try:
                    item = await q.get()
                except QueueShutDown:
                    return
                assert item != "added after shutdown!"
                assert item not in active, f"{item} handed to two workers"
                active.add(item)
                await clock.sleep(0.003)
                active.discard(item)
                processed.append(item)
                q.done(item)

        consumers = [asyncio.create_task(consumer()) for _ in range(10)]
        await asyncio.gather(*(producer(i) for i in range(50)))
        if drain:
            await q.shutdown_with_drain()
        else:
            q.shutdown()
        q.add("added after shutdown!")
        await asyncio.gather(*consumers)
        assert len(q) == 0
        assert set(processed) == set(range(50))

    run(main())


@pytest.mark.parametrize("drain", [False, True], ids=["shutdown", "shutdown_with_drain"])
def test_add_while_processing(drain: bool) -> None:
    async def main() -> None:
        q: Queue[int] = Queue()
        for i in range(50):
            q.add(i)
        seen: Dict[int, int] = {}

        async def consumer() -> None:
            counters: Dict[int, int] = {}
            while True:
                try:
                    item = await q.get()
                except QueueShutDown:
                    return
                counters[item] = counters.get(item, 0) + 1
                seen[item] = seen.get(item, 0) + 1
                if counters[item] < 2:
                    q.add(item)  # dirty while processing: comes back after done
                await asyncio.sleep(0)
                q.done(item)

        consumers = [asyncio.create_task(consumer()) for _ in range(10)]
        while any(seen.get(i, 0) < 2 for i in range(50)) or q.statistics().depth:
            await asyncio.sleep(0)
        if drain:
            await q.shutdown_with_drain()
        else:
            q.shutdown()
        await asyncio.gather(*consumers)
        assert len(q) == 0
        assert all(n >= 2 for n in seen.values())

    run(main())


def test_len_counts_each_item_once() -> None:
    q: Queue[str] = Queue()
    q.add("foo")
    assert len(q) == 1
    q.add("bar")
    assert len(q) == 2
    q.add("foo")  # should not increase the queue length
    assert len(q) == 2
    assert q.statistics().adds_total == 2


def test_reinsert_while_processing_comes_back_on_done() -> None:
    q: Queue[str] = Queue()
    q.add("foo")
    item = q.get_nowait()
    assert item == "foo"
    q.add(item)
    assert len(q) == 0  # not handed out again while it is processed
    assert q.statistics().depth == 1
    q.done(item)
    assert len(q) == 1
    assert q.get_nowait() == "foo"
    q.done("foo")
    assert len(q) == 0
    assert q.statistics().processing == 0


def test_collapse() -> None:
    q: Queue[str] = Queue()
    q.add("bar")
    q.add("bar")
    assert q.get_nowait() == "bar"
    q.done("bar")
    assert len(q) == 0
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


def test_collapse_while_processing_blocks_the_second_worker_until_done() -> None:
    async def main() -> None:
        q: Queue[str] = Queue()
        q.add("foo")
        first = await q.get()
        q.add("foo")
        q.add("foo")
        second = asyncio.create_task(q.get())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not second.done(), "worker should be blocked until the first is done"
        q.done(first)
        assert await asyncio.wait_for(second, 5) == "foo"
        q.done("foo")
        assert len(q) == 0
        assert q.statistics().adds_total == 2

    run(main())


def test_queue_drainage_using_shutdown_with_drain() -> None:
    async def main() -> None:
        q: Queue[str] = Queue()
        q.add("foo")
        q.add("bar")
        first, second = await q.get(), await q.get()
        drained = asyncio.create_task(q.shutdown_with_drain())
        with pytest.raises(QueueShutDown):
            await q.get()
        assert q.shutting_down
        for _ in range(10):
            await asyncio.sleep(0)
        assert not drained.done(), "drain must wait for the items being processed"
        q.done(first)
        await asyncio.sleep(0)
        assert not drained.done()
        q.done(second)
        await asyncio.wait_for(drained, 5)

    run(main())


def test_no_queue_drainage_using_shutdown() -> None:
    q: Queue[str] = Queue()
    q.add("foo")
    q.add("bar")
    q.get_nowait()
    q.get_nowait()
    q.shutdown()  # returns at once although two items are not done
    assert q.shutting_down
    with pytest.raises(QueueShutDown):
        q.get_nowait()


def test_force_queue_shutdown_using_shutdown() -> None:
    async def main() -> None:
        q: Queue[str] = Queue()
        q.add("foo")
        q.add("bar")
        q.get_nowait()
        q.get_nowait()
        drained = asyncio.create_task(q.shutdown_with_drain())
        with pytest.raises(QueueShutDown):
            await q.get()
        q.shutdown()  # a second SIGTERM: stop waiting for the drain
        await asyncio.wait_for(drained, 5)

    run(main())


def test_queue_drainage_with_a_dirty_item() -> None:
    async def main() -> None:
        q: Queue[str] = Queue()
        q.add("foo")
        gotten = await q.get()
        q.add("foo")
        drained = asyncio.create_task(q.shutdown_with_drain())
        with pytest.raises(QueueShutDown):
            await q.get()
        q.done(gotten)  # puts the dirty copy back: the queue hands it out once more
        again = await q.get()
        assert again == "foo"
        q.done(again)
        with pytest.raises(QueueShutDown):
            await q.get()
        await asyncio.wait_for(drained, 5)

    run(main())


def test_queued_items_are_still_handed_out_after_shutdown() -> None:
    async def main() -> None:
        q: Queue[int] = Queue()
        for i in range(3):
            q.add(i)
        q.shutdown()
        q.add(99)
        assert [await q.get() for _ in range(3)] == [0, 1, 2]
        with pytest.raises(QueueShutDown):
            await q.get()

    run(main())


def test_shutdown_wakes_every_waiting_getter() -> None:
    async def main() -> None:
        q: Queue[int] = Queue(name="nodes")
        getters = [asyncio.create_task(q.get()) for _ in range(5)]
        await asyncio.sleep(0)
        q.shutdown()
        results = await asyncio.gather(*getters, return_exceptions=True)
        assert all(isinstance(r, QueueShutDown) for r in results)

    run(main())


def test_a_cancelled_woken_getter_passes_the_item_on() -> None:
    async def main() -> None:
        q: Queue[str] = Queue()
        first = asyncio.create_task(q.get())
        second = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.add("key")  # wakes `first`...
        first.cancel()  # ...which is cancelled before it runs
        assert await asyncio.wait_for(second, 5) == "key"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert q.statistics().processing == 1

    run(main())


def test_done_of_an_item_not_processed_is_an_error() -> None:
    q: Queue[str] = Queue(name="pods")
    q.add("a")
    with pytest.raises(NotProcessingError, match="'pods': 'a' is not being processed"):
        q.done("a")
    q.done(q.get_nowait())
    with pytest.raises(NotProcessingError):
        q.done("a")
    assert len(q) == 0


def test_fifo_order_and_repr() -> None:
    q: Queue[str] = Queue(name="deployments")
    for key in ["ns/c", "ns/a", "ns/b", "ns/a"]:
        q.add(key)
    assert repr(q) == "<Queue 'deployments' queued=3 processing=0 waiting=0>"
    assert [q.get_nowait() for _ in range(3)] == ["ns/c", "ns/a", "ns/b"]


# -- DelayingQueue: delaying_queue_test.go ----------------------------------------


def test_simple_delayed_add() -> None:
    clock = FakeClock(start=0.0)
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("foo", 0.0625)
    assert len(q) == 0
    assert q.statistics().waiting == 1
    clock.advance(0.0625 - 2**-20)
    assert len(q) == 0
    clock.advance(2**-20)
    assert len(q) == 1
    q.done(q.get_nowait())
    clock.advance(10)  # past client-go's heartbeat: nothing more arrives
    assert len(q) == 0
    assert q.statistics().waiting == 0


def test_deduping_keeps_the_earliest_deadline() -> None:
    clock = FakeClock(start=0.0)
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("foo", 0.5)
    q.add_after("foo", 0.75)  # later: ignored
    assert q.statistics().waiting == 1
    clock.advance(0.625)
    assert len(q) == 1
    q.done(q.get_nowait())
    clock.advance(0.25)  # past the second add_after's deadline
    assert len(q) == 0
    # the earlier one overrides
    q.add_after("foo", 0.5)
    q.add_after("foo", 0.25)
    assert len(q) == 0
    clock.advance(0.375)
    assert len(q) == 1
    q.done(q.get_nowait())
    clock.advance(0.25)
    assert len(q) == 0
    assert q.statistics().retries_total == 4


def test_add_two_fire_early() -> None:
    clock = FakeClock(start=0.0)
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("foo", 1)
    q.add_after("bar", 0.0625)
    assert len(q) == 0
    clock.advance(0.125)
    assert len(q) == 1
    assert q.get_nowait() == "bar"
    q.add_after("baz", 2)
    clock.advance(1)
    assert len(q) == 1
    assert q.get_nowait() == "foo"
    clock.advance(2)
    assert len(q) == 1
    assert q.get_nowait() == "baz"


def test_copy_shifting_hands_out_in_deadline_order() -> None:
    clock = FakeClock(start=0.0)
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("foo", 1)
    q.add_after("bar", 0.5)
    q.add_after("baz", 0.25)
    assert len(q) == 0
    clock.advance(2)
    assert len(q) == 3
    assert [q.get_nowait() for _ in range(3)] == ["baz", "bar", "foo"]


def test_many_delays_in_random_order_come_out_sorted() -> None:
    import random

    rng = random.Random(7)
    clock = FakeClock(start=0.0)
    q: DelayingQueue[int] = DelayingQueue(clock=clock)
    delays = {i: rng.randrange(1, 600) / 8 for i in range(2000)}
    for i, delay in delays.items():
        q.add_after(i, delay)
        if i % 3 == 0:
            q.add_after(i, delay / 2)  # moved earlier
    clock.advance(1000)
    got = [q.get_nowait() for _ in range(len(q))]
    effective = {i: d / 2 if i % 3 == 0 else d for i, d in delays.items()}
    assert got == sorted(delays, key=lambda i: (effective[i], i))


def test_add_after_now_shutdown_and_bad_delays() -> None:
    clock = FakeClock(start=0.0)
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("now", 0)
    q.add_after("past", -5)
    assert [q.get_nowait(), q.get_nowait()] == ["now", "past"]
    q.add_after("never", math.inf)
    clock.advance(1e9)
    assert len(q) == 0 and q.statistics().waiting == 1
    with pytest.raises(TypeError, match="number of seconds"):
        q.add_after("x", "1s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.add_after("x", math.nan)
    q.add_after("later", 1)
    q.shutdown()
    assert q.statistics().waiting == 0
    assert clock.pending == 0  # its timer is gone too
    retries = q.statistics().retries_total
    q.add_after("ignored", 1)
    clock.advance(2)
    assert len(q) == 0
    assert q.statistics().retries_total == retries


def test_delayed_item_reaches_a_waiting_worker_on_the_real_clock() -> None:
    async def main() -> None:
        q: DelayingQueue[str] = DelayingQueue(clock=REAL_CLOCK)
        worker = asyncio.create_task(q.get())
        q.add_after("key", 0.01)
        q.add_after("first", 0.001)
        assert await asyncio.wait_for(worker, 10) == "first"
        assert await asyncio.wait_for(q.get(), 10) == "key"

    run(main())


# -- rate limiters: default_rate_limiters_test.go ---------------------------------


def test_item_exponential_failure_rate_limiter() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.001, 1)
    assert [limiter.when("one") for _ in range(5)] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert limiter.num_requeues("one") == 5
    assert [limiter.when("two"), limiter.when("two")] == [0.001, 0.002]
    assert limiter.num_requeues("two") == 2
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 0.001


def test_item_exponential_failure_rate_limiter_overflow() -> None:
    limiter: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.001, 1000)
    for _ in range(5):
        limiter.when("one")
    assert limiter.when("one") == 0.032
    for _ in range(1000):
        limiter.when("overflow1")
    assert limiter.when("overflow1") == 1000
    for _ in range(5000):
        limiter.when("overflow2")  # past 2**1024: no OverflowError
    assert limiter.when("overflow2") == 1000
    limiter = ItemExponentialFailureRateLimiter(60, 1000 * 3600)
    limiter.when("two")
    limiter.when("two")
    assert limiter.when("two") == 240


def test_default_controller_limiter_is_5ms_doubling_per_item() -> None:
    clock = FakeClock(start=0.0)
    limiter = default_controller_rate_limiter(clock)
    assert [limiter.when("key") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert limiter.num_requeues("key") == 4
    limiter.forget("key")
    assert limiter.when("key") == 0.005
    assert default_item_based_rate_limiter().when("k") == 0.001


def test_item_fast_slow_rate_limiter() -> None:
    limiter: ItemFastSlowRateLimiter[str] = ItemFastSlowRateLimiter(0.005, 10, 3)
    assert [limiter.when("one") for _ in range(5)] == [0.005, 0.005, 0.005, 10, 10]
    assert limiter.num_requeues("one") == 5
    assert [limiter.when("two"), limiter.when("two")] == [0.005, 0.005]
    assert limiter.num_requeues("two") == 2
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 0.005


def test_max_of_rate_limiter() -> None:
    limiter: MaxOfRateLimiter[str] = MaxOfRateLimiter(
        ItemFastSlowRateLimiter(0.005, 3, 3),
        ItemExponentialFailureRateLimiter(0.001, 1),
    )
    assert [limiter.when("one") for _ in range(5)] == [0.005, 0.005, 0.005, 3, 3]
    assert limiter.num_requeues("one") == 5
    assert [limiter.when("two"), limiter.when("two")] == [0.005, 0.005]
    assert limiter.num_requeues("two") == 2
    limiter.forget("one")
    assert limiter.num_requeues("one") == 0
    assert limiter.when("one") == 0.005
    assert MaxOfRateLimiter[str]().when("x") == 0.0


class StepRateLimiter:
    """default_rate_limiters_test.go's StepRateLimiter: base for `threshold` calls, then max."""

    def __init__(self, base: float, maximum: float, threshold: int) -> None:
        self.base, self.maximum, self.threshold, self.count = base, maximum, threshold, 0

    def when(self, item: Hashable) -> float:
        self.count += 1
        return self.base if self.count <= self.threshold else self.maximum

    def num_requeues(self, item: Hashable) -> int:
        return 0

    def forget(self, item: Hashable) -> None:
        pass


def test_with_max_wait_rate_limiter() -> None:
    step: RateLimiter[Hashable] = StepRateLimiter(0.005, 1000, 100)
    limiter: WithMaxWaitRateLimiter[Hashable] = WithMaxWaitRateLimiter(step, 500)
    assert {limiter.when(i) for i in range(100)} == {0.005}
    assert {limiter.when(i) for i in range(100, 200)} == {500}


def test_bucket_rate_limiter_burst_then_qps_with_reservations() -> None:
    clock = FakeClock(start=0.0)
    bucket: BucketRateLimiter[int] = BucketRateLimiter(qps=10, burst=100, clock=clock)
    assert [bucket.when(i) for i in range(100)] == [0.0] * 100  # the burst
    # each further reservation waits for one more token at 10 qps
    assert [bucket.when(i) for i in range(3)] == [0.1, 0.2, 0.3]
    assert bucket.tokens() == -3
    clock.advance(0.5)  # 5 tokens back: 2 free ones after the 3 reserved
    assert bucket.tokens() == 2
    assert [bucket.when(0), bucket.when(0), bucket.when(0)] == [0.0, 0.0, 0.1]
    clock.advance(3600)
    assert bucket.tokens() == 100  # refills up to the burst only
    assert bucket.num_requeues(0) == 0
    bucket.forget(0)


def test_bucket_rate_limiter_edges_and_bad_input() -> None:
    clock = FakeClock(start=0.0)
    assert BucketRateLimiter[int](qps=math.inf, burst=0, clock=clock).when(1) == 0.0
    assert BucketRateLimiter[int](qps=10, burst=0, clock=clock).when(1) == math.inf
    frozen: BucketRateLimiter[int] = BucketRateLimiter(qps=0, burst=1, clock=clock)
    assert [frozen.when(1), frozen.when(1)] == [0.0, math.inf]
    for bad in [dict(qps=-1), dict(qps=math.nan), dict(burst=-1), dict(burst=1.5)]:
        with pytest.raises(ValueError):
            BucketRateLimiter(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative number of seconds"):
        ItemExponentialFailureRateLimiter(-1, 1)
    with pytest.raises(TypeError):
        ItemFastSlowRateLimiter(1, 2, 1.5)  # type: ignore[arg-type]


def test_default_controller_limiter_overall_bucket_dominates_past_the_burst() -> None:
    clock = FakeClock(start=0.0)
    limiter = default_controller_rate_limiter(clock)
    delays = [limiter.when(f"key-{i}") for i in range(103)]
    assert delays[:100] == [0.005] * 100  # per-item base while the bucket has tokens
    assert delays[100:] == [0.1, 0.2, 0.3]


# -- RateLimitingQueue: rate_limiting_queue_test.go --------------------------------


def test_rate_limiting_queue() -> None:
    clock = FakeClock(start=0.0)
    q: RateLimitingQueue[str] = RateLimitingQueue(ItemExponentialFailureRateLimiter(0.25, 8), clock=clock)
    q.add_rate_limited("one")  # after 0.25
    q.add_rate_limited("one")  # after 0.5: the earlier deadline is kept
    assert q.num_requeues("one") == 2
    q.add_rate_limited("two")
    q.add_rate_limited("two")
    clock.advance(0.25)
    assert len(q) == 2
    q.forget("one")
    assert q.num_requeues("one") == 0
    assert q.num_requeues("two") == 2
    q.done(q.get_nowait())
    q.done(q.get_nowait())
    q.add_rate_limited("one")  # forgotten: back to the base delay
    clock.advance(0.125)
    assert len(q) == 0
    clock.advance(0.125)
    assert q.get_nowait() == "one"
    q.add_rate_limited("two")  # third failure: 1 s
    clock.advance(0.75)
    assert len(q) == 0
    clock.advance(0.25)
    assert q.get_nowait() == "two"


def test_rate_limiting_queue_counts_a_requeue_even_after_shutdown() -> None:
    clock = FakeClock(start=0.0)
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.shutdown()
    q.add_rate_limited("k")
    assert q.num_requeues("k") == 1
    assert q.statistics().waiting == 0


def test_a_controller_retrying_with_backoff_on_fake_time() -> None:
    async def main() -> List[float]:
        clock = AutoAdvanceClock(start=0.0)
        q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
        attempts: List[float] = []

        async def worker() -> None:
            while True:
                try:
                    key = await q.get()
                except QueueShutDown:
                    return
                try:
                    attempts.append(clock.monotonic())
                    if len(attempts) < 5:
                        raise ConnectionError("apiserver unavailable")
                    q.forget(key)
                    q.shutdown()
                except ConnectionError:
                    q.add_rate_limited(key)
                finally:
                    q.done(key)

        q.add("default/web")
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(3))), 30)
        assert q.num_requeues("default/web") == 0
        return attempts

    attempts = run(main())
    gaps = [round(b - a, 9) for a, b in zip(attempts, attempts[1:])]
    assert gaps == [0.005, 0.01, 0.02, 0.04]


# -- metrics: metrics_test.go ---------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, queue: str = "test", **labels: str) -> float:
    value = registry.get_sample_value(name, {"name": queue, **labels})
    assert value is not None, f"{name} missing"
    return value


def test_metrics_follow_adds_gets_and_dones() -> None:
    clock = FakeClock(start=0.0)
    registry = CollectorRegistry()
    q: Queue[str] = Queue(name="test", clock=clock, registry=registry)
    q.add("foo")
    assert sample(registry, "workqueue_adds_total") == 1
    assert sample(registry, "workqueue_depth") == 1
    clock.advance(2**-14)
    item = q.get_nowait()
    assert sample(registry, "workqueue_depth") == 0
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 2**-14
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_bucket", le="0.0001") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_bucket", le="1e-05") == 0
    for _ in range(5):
        q.add(item)  # de-duplicated: one more add, one more in depth
    assert sample(registry, "workqueue_adds_total") == 2
    assert sample(registry, "workqueue_depth") == 1
    clock.advance(2**-15)
    q.done(item)
    assert sample(registry, "workqueue_work_duration_seconds_sum") == 2**-15
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1
    assert sample(registry, "workqueue_depth") == 1
    item = q.get_nowait()
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 2**-14 + 2**-15
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 2
    clock.advance(0.5)
    assert sample(registry, "workqueue_unfinished_work_seconds") == 0.5
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 0.5
    q.done(item)
    assert sample(registry, "workqueue_unfinished_work_seconds") == 0
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 0
    assert sample(registry, "workqueue_work_duration_seconds_count") == 2
    assert sample(registry, "workqueue_work_duration_seconds_bucket", le="+Inf") == 2


def test_retries_metric_and_several_queues_in_one_registry() -> None:
    clock = FakeClock(start=0.0)
    registry = CollectorRegistry()
    nodes: RateLimitingQueue[str] = RateLimitingQueue(name="node", clock=clock, registry=registry)
    pods: Queue[str] = Queue(name="pod", clock=clock, registry=registry)
    nodes.add_rate_limited("n1")
    nodes.add_after("n2", 0)
    pods.add("p1")
    assert sample(registry, "workqueue_retries_total", "node") == 2
    assert sample(registry, "workqueue_retries_total", "pod") == 0
    assert sample(registry, "workqueue_depth", "node") == 1
    assert sample(registry, "workqueue_depth", "pod") == 1
    text = generate_latest(registry).decode()
    for name in ["workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds",
                 "workqueue_work_duration_seconds", "workqueue_retries_total",
                 "workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds"]:
        assert f"# HELP {name} " in text
    assert 'workqueue_depth{name="node"} 1.0' in text
    with pytest.raises(ValueError, match="'pod' already reports"):
        Queue(name="pod", registry=registry)
    with pytest.raises(ValueError, match="needs a name"):
        Queue(registry=registry)


def test_an_unnamed_queue_keeps_plain_counters_only() -> None:
    q: Queue[str] = Queue()
    q.add("a")
    q.add("a")
    q.done(q.get_nowait())
    stats = q.statistics()
    assert (stats.adds_total, stats.queued, stats.depth, stats.processing) == (1, 0, 0, 0)
    assert q._timing is None
