"""FakeClock / AutoAdvanceClock (megaplane.testing.clock) and RealClock (megaplane.runtime)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import List, Tuple

import pytest

from megaplane.runtime import REAL_CLOCK, Clock, RealClock
from megaplane.testing import AutoAdvanceClock, FakeClock
from megaplane.testing.clock import DEFAULT_WALL_START


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# -- manual advance ------------------------------------------------------------


def test_fake_clock_reads_and_is_callable() -> None:
    clock = FakeClock()
    assert clock() == clock.monotonic() == clock.now == 1000.0
    assert clock.time() == DEFAULT_WALL_START
    assert clock.advance(2.5) == 1002.5
    assert clock() == 1002.5
    assert clock.time() == DEFAULT_WALL_START + 2.5
    assert repr(clock) == "<FakeClock now=1002.5 pending=0>"


def test_fake_clock_refuses_going_back_and_bad_input() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="NaN"):
        clock.advance(math.nan)
    with pytest.raises(TypeError, match="number of seconds"):
        clock.advance("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clock.call_at(None, lambda: None)  # type: ignore[arg-type]
    assert clock.now == 1000.0


def test_call_at_fires_in_deadline_order_each_at_its_deadline() -> None:
    clock = FakeClock(start=0.0)
    fired: List[Tuple[str, float]] = []
    for name, deadline in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0), ("late", 10.0)]:
        clock.call_at(deadline, lambda n=name: fired.append((n, clock.now)))
    assert clock.deadlines() == [1.0, 1.0, 2.0, 3.0, 10.0]
    clock.advance(0.5)
    assert fired == []
    clock.advance(3)
    # ties fire in registration order; each callback sees its own deadline
    assert fired == [("a", 1.0), ("a2", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now == 3.5
    assert clock.deadlines() == [10.0]
    assert clock.pending == 1


def test_a_timer_rearming_itself_fires_once_per_period_within_one_advance() -> None:
    clock = FakeClock(start=0.0)
    ticks: List[float] = []

    def tick() -> None:
        ticks.append(clock.now)
        clock.call_at(clock.now + 1, tick)

    clock.call_at(1.0, tick)
    clock.advance(5)
    assert ticks == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_cancelled_timer_never_fires_and_leaves_no_deadline() -> None:
    clock = FakeClock(start=0.0)
    fired: List[int] = []
    keep = clock.call_at(2.0, lambda: fired.append(2))
    drop = clock.call_at(1.0, lambda: fired.append(1))
    drop.cancel()
    drop.cancel()  # idempotent
    assert clock.deadlines() == [2.0]
    assert clock.next_deadline() == 2.0
    assert clock.pending == 1
    clock.advance(5)
    assert fired == [2]
    keep.cancel()  # after firing: a no-op
    assert clock.pending == 0


def test_many_cancelled_timers_are_compacted() -> None:
    clock = FakeClock(start=0.0)
    timers = [clock.call_at(float(i), lambda: None) for i in range(1, 1001)]
    for timer in timers[:-1]:
        timer.cancel()
    assert clock.pending == 1
    assert len(clock._heap) < 200
    assert clock.deadlines() == [1000.0]


def test_advance_from_a_timer_callback_is_refused() -> None:
    clock = FakeClock(start=0.0)
    clock.call_at(1.0, lambda: clock.advance(1))
    with pytest.raises(RuntimeError, match="from a timer callback"):
        clock.advance(2)


def test_sleepers_wake_in_deadline_order_when_advanced() -> None:
    async def main() -> None:
        clock = FakeClock(start=0.0)
        woke: List[str] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(name)

        tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("c", 3), ("a", 1), ("b", 2), ("a2", 1)]]
        while clock.pending < 4:
            await asyncio.sleep(0)
        assert clock.deadlines() == [1.0, 1.0, 2.0, 3.0]
        clock.advance(1.5)
        await asyncio.gather(*tasks[1::2])
        assert woke == ["a", "a2"]
        clock.advance(10)
        await asyncio.gather(*tasks)
        assert woke == ["a", "a2", "b", "c"]
        assert clock.pending == 0

    run(main())


def test_cancelling_a_sleeping_task_removes_its_deadline() -> None:
    async def main() -> None:
        clock = FakeClock(start=0.0)
        task = asyncio.create_task(clock.sleep(30))
        other = asyncio.create_task(clock.sleep_until(40))
        while clock.pending < 2:
            await asyncio.sleep(0)
        assert clock.deadlines() == [30.0, 40.0]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.deadlines() == [40.0]
        clock.advance(40)
        await other
        assert clock.deadlines() == []

    run(main())


def test_sleep_of_zero_or_a_past_deadline_yields_once() -> None:
    async def main() -> None:
        clock = FakeClock(start=5.0)
        await clock.sleep(0)
        await clock.sleep(-3)
        await clock.sleep_until(1.0)
        assert clock.pending == 0
        with pytest.raises(ValueError):
            await clock.sleep(math.nan)

    run(main())


def test_a_due_call_at_fires_on_the_next_loop_turn() -> None:
    async def main() -> None:
        clock = FakeClock(start=5.0)
        fired = asyncio.Event()
        clock.call_at(5.0, fired.set)
        await asyncio.wait_for(fired.wait(), 5)
        assert clock.now == 5.0

    run(main())


# -- autojump ------------------------------------------------------------------


def test_autojump_runs_a_controller_loop_of_40_fake_seconds_at_once() -> None:
    async def main() -> Tuple[float, List[float]]:
        clock = AutoAdvanceClock(start=0.0)
        checks: List[float] = []

        async def controller() -> None:
            # a node-monitor style loop: look every 5 s, give up after 40 s
            deadline = clock.monotonic() + 40
            while clock.monotonic() < deadline:
                await clock.sleep(5)
                checks.append(clock.monotonic())

        began = time.perf_counter()
        await asyncio.wait_for(controller(), timeout=30)
        return time.perf_counter() - began, checks

    elapsed, checks = run(main())
    assert checks == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
    print(f"40 s of fake time took {elapsed * 1000:.1f} ms of real time")


def test_autojump_wakes_sleepers_in_deadline_order_every_run() -> None:
    async def main() -> List[Tuple[str, float]]:
        clock = AutoAdvanceClock(start=0.0)
        woke: List[Tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("slow", 3), sleeper("fast", 1), sleeper("mid", 2), sleeper("fast2", 1))
        return woke

    expected = [
        ("fast", 1.0), ("fast2", 1.0), ("mid", 2.0), ("fast", 2.0), ("fast2", 2.0),
        ("slow", 3.0), ("mid", 4.0), ("slow", 6.0),
    ]
    # sleepers due at the same instant wake in registration order
    for _ in range(5):
        assert run(main()) == expected


def test_autojump_does_not_jump_while_a_task_can_run() -> None:
    async def main() -> None:
        clock = AutoAdvanceClock(start=0.0)
        sleeper = asyncio.create_task(clock.sleep(10))
        for _ in range(200):  # a busy task: the loop is never idle
            await asyncio.sleep(0)
            assert clock.now == 0.0
        await sleeper
        assert clock.now == 10.0

    run(main())


def test_autojump_does_not_move_time_under_a_request_answered_on_the_same_loop() -> None:
    async def main() -> None:
        clock = AutoAdvanceClock(start=0.0)
        echo_ended = asyncio.Event()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
            writer.close()
            echo_ended.set()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        timeout = asyncio.create_task(clock.sleep(60))
        try:
            for i in range(50):
                writer.write(b"ping %d" % i)
                await writer.drain()
                assert await reader.readexactly(len(b"ping %d" % i)) == b"ping %d" % i
                assert clock.now == 0.0, f"time moved while round trip {i} was in flight"
            await timeout
            assert clock.now == 60.0
        finally:
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(echo_ended.wait(), 10)
            server.close()
            await server.wait_closed()

    run(main())


def test_autojump_can_be_switched_on_and_off() -> None:
    async def main() -> None:
        clock = FakeClock(start=0.0)
        task = asyncio.create_task(clock.sleep(5))
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.now == 0.0 and not task.done()
        clock.autojump = True
        await asyncio.wait_for(task, 5)
        assert clock.now == 5.0
        clock.autojump = False
        task = asyncio.create_task(clock.sleep(5))
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.now == 5.0
        clock.advance(5)
        await task

    run(main())


def test_autojump_never_jumps_to_an_infinite_deadline() -> None:
    async def main() -> None:
        clock = AutoAdvanceClock(start=0.0)
        forever = asyncio.create_task(clock.sleep_until(math.inf))
        await clock.sleep(1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.now == 1.0 and not forever.done()
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await forever
        assert clock.pending == 0

    run(main())


def test_autojump_clock_survives_several_event_loops() -> None:
    clock = AutoAdvanceClock(start=0.0)
    run(clock.sleep(3))
    run(clock.sleep(4))
    assert clock.now == 7.0


# -- the real clock ------------------------------------------------------------


def test_real_clock_matches_time_and_sleeps() -> None:
    assert isinstance(REAL_CLOCK, RealClock)
    clock: Clock = REAL_CLOCK
    assert abs(clock.time() - time.time()) < 5
    assert clock.monotonic() <= time.monotonic()

    async def main() -> None:
        start = clock.monotonic()
        await clock.sleep(0.01)
        assert clock.monotonic() >= start + 0.01 - 1e-6
        await clock.sleep_until(clock.monotonic() + 0.01)
        await clock.sleep(-1)
        fired = asyncio.Event()
        clock.call_at(clock.monotonic() + 0.01, fired.set)
        await asyncio.wait_for(fired.wait(), 10)
        cancelled: List[int] = []
        clock.call_at(clock.monotonic(), lambda: cancelled.append(1)).cancel()
        await asyncio.sleep(0.02)
        assert cancelled == []
        with pytest.raises(ValueError):
            await clock.sleep(math.nan)

    run(main())
