"""Deterministic time for anything time-driven: `FakeClock`, a `megaplane.runtime.Clock` that moves only when told.

Lease expiry, node heartbeats, work-queue backoff and controller timeouts
all read a Clock; give them a `FakeClock` and a test moves time explicitly
(`advance`) instead of sleeping, or turns on autojump and lets time run as
fast as the code allows.

Autojump, after trio's `MockClock(autojump_threshold=0)`: whenever every
task of the event loop is blocked and some sleeper or timer is pending, the
clock jumps to the earliest deadline and fires it. A controller loop that
waits 40 s of fake time finishes in milliseconds, and the order in which
sleepers wake is their deadline order (ties: registration order), every run.

How "every task is blocked" is detected on asyncio. asyncio has no public
"is the loop idle" query (trio's scheduler knows; asyncio's does not say).
A watcher task, running only while deadlines are pending, yields with
`asyncio.sleep(0)` and looks at the loop's ready queue: `loop._ready`, the
deque of callbacks due this turn, a CPython implementation detail of
`asyncio.BaseEventLoop` (stable since 3.4 and used the same way by test
tools such as aiotools' VirtualClock). Empty means no task can run. The
watcher requires `_IDLE_TURNS` such turns in a row, so that I/O already
sitting in a socket (a server answering a client on the same loop) is
polled (`select(timeout=0)` runs each turn the watcher is ready) before
time moves. The check is guarded: on a loop without a `_ready` deque
(uvloop) the watcher falls back to "no clock activity for
`_FALLBACK_TURNS` turns", which is best effort: a task waiting on real I/O
or a thread (run_in_executor) may see time jump under it there, as it also
would in trio with autojump. Use the default asyncio loop in tests.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
from typing import TYPE_CHECKING, Callable, List, Optional

__all__ = ["AutoAdvanceClock", "FakeClock", "FakeTimer"]

#: 2026-01-01T00:00:00Z: the wall clock's default start, so timestamps in tests are stable.
DEFAULT_WALL_START = 1_767_225_600.0

# Consecutive idle loop turns before autojump moves time (see the module docstring).
_IDLE_TURNS = 3
_FALLBACK_TURNS = 50


class FakeTimer:
    """A callback registered with `FakeClock.call_at`; `cancel()` removes its deadline."""

    __slots__ = ("deadline", "callback", "cancelled", "fired", "_clock")

    def __init__(self, clock: FakeClock, deadline: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        if not self.cancelled and not self.fired:
            self.cancelled = True
            self._clock._forget(self)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "fired" if self.fired else "pending"
        return f"<FakeTimer at {self.deadline} {state}>"


def _seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    return float(value)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FakeClock:
    """A `Clock` whose time moves only by `advance()` or, with `autojump`, when every task is blocked.

    Also callable like `time.monotonic` (the store's lessor takes a
    `Callable[[], float]`). `now` is the monotonic reading; `time()` is
    `wall_start` plus the time advanced since `start`.
    """

    def __init__(
        self, start: float = 1000.0, *, wall_start: float = DEFAULT_WALL_START, autojump: bool = False
    ) -> None:
        self.now = _seconds(start, "start")
        self._start = self.now
        self.wall_start = _seconds(wall_start, "wall_start")
        # Heap of (deadline, sequence, timer); cancelled timers leave lazily.
        self._heap: List[tuple[float, int, FakeTimer]] = []
        self._sequence = 0
        self._live = 0
        self._firing = False
        self._activity = 0
        self._autojump = autojump
        self._watcher: Optional[asyncio.Task[None]] = None
        self._parked: Optional[asyncio.Future[None]] = None
        self.jumps = 0

    # -- reading -------------------------------------------------------------

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall_start + (self.now - self._start)

    @property
    def autojump(self) -> bool:
        """Whether time jumps to the next deadline whenever every task is blocked; settable."""
        return self._autojump

    @autojump.setter
    def autojump(self, enabled: bool) -> None:
        self._autojump = bool(enabled)
        if self._autojump:
            self._ensure_watcher()
        else:
            self._unpark()

    def deadlines(self) -> List[float]:
        """Pending deadlines (sleepers and timers), earliest first."""
        return sorted(t.deadline for _, _, t in self._heap if not t.cancelled)

    def next_deadline(self) -> Optional[float]:
        """The earliest pending deadline, or None."""
        self._drop_cancelled_head()
        return self._heap[0][0] if self._heap else None

    @property
    def pending(self) -> int:
        """How many sleepers and timers wait for a deadline."""
        return self._live

    # -- moving time ---------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds`, firing each due deadline in order; returns the new time.

        Each callback runs with `now` at its own deadline, so a timer that
        re-arms itself fires as often as it would have; sleepers resume (in
        deadline order) once control returns to the event loop.
        """
        seconds = _seconds(seconds, "advance")
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        if self._firing:
            raise RuntimeError("FakeClock.advance() called from a timer callback")
        target = self.now + seconds
        self._firing = True
        try:
            while True:
                self._drop_cancelled_head()
                if not self._heap or self._heap[0][0] > target:
                    break
                deadline, _, timer = heapq.heappop(self._heap)
                self._live -= 1
                self._activity += 1
                timer.fired = True
                self.now = max(self.now, deadline)
                timer.callback()
        finally:
            self._firing = False
        self.now = target
        return self.now

    # -- waiting -------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> FakeTimer:
        deadline = _seconds(deadline, "deadline")
        timer = FakeTimer(self, deadline, callback)
        heapq.heappush(self._heap, (deadline, self._sequence, timer))
        self._sequence += 1
        self._live += 1
        self._activity += 1
        if deadline <= self.now:
            # Due already: fire on the next loop turn, as asyncio's call_at would.
            try:
                asyncio.get_running_loop().call_soon(self._fire_due)
            except RuntimeError:
                pass  # no loop: the next advance() fires it
        self._ensure_watcher()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        return self.call_at(self.now + max(0.0, _seconds(delay, "delay")), callback)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now + max(0.0, _seconds(seconds, "sleep")))

    async def sleep_until(self, deadline: float) -> None:
        deadline = _seconds(deadline, "deadline")
        if deadline <= self.now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(deadline, lambda: _wake(future))
        try:
            await future
        finally:
            timer.cancel()  # a cancelled sleeper leaves no deadline behind

    # -- internals -----------------------------------------------------------

    def _forget(self, timer: FakeTimer) -> None:
        self._live -= 1
        self._activity += 1
        # Compact when cancelled entries dominate, so abandoned waits don't pile up.
        if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
            self._heap = [e for e in self._heap if not e[2].cancelled]
            heapq.heapify(self._heap)

    def _drop_cancelled_head(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    def _fire_due(self) -> None:
        if not self._firing:
            self.advance(0)

    def _ensure_watcher(self) -> None:
        if not self._autojump:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        watcher = self._watcher
        if watcher is None or watcher.done() or watcher.get_loop() is not loop:
            self._watcher = loop.create_task(self._autojump_loop(), name="FakeClock autojump")
        else:
            self._unpark()

    def _unpark(self) -> None:
        parked, self._parked = self._parked, None
        if parked is not None and not parked.done():
            parked.set_result(None)

    async def _autojump_loop(self) -> None:
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        introspectable = isinstance(ready, collections.deque)
        needed = _IDLE_TURNS if introspectable else _FALLBACK_TURNS
        idle_turns = 0
        seen_activity = self._activity
        while self._autojump:
            upcoming = self.next_deadline()
            if upcoming is None or upcoming == math.inf:  # nothing a jump could reach
                self._parked = loop.create_future()
                await self._parked
                idle_turns = 0
                continue
            await asyncio.sleep(0)
            if introspectable:
                idle = not ready
            else:
                idle = self._activity == seen_activity
                seen_activity = self._activity
            idle_turns = idle_turns + 1 if idle else 0
            if idle_turns >= needed:
                idle_turns = 0
                self._jump(loop)

    def _jump(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self.next_deadline()
        if deadline is None or deadline == math.inf:
            return
        self.jumps += 1
        try:
            self.advance(max(0.0, deadline - self.now))
        except Exception as exc:
            loop.call_exception_handler(
                {"message": "FakeClock timer callback failed during autojump", "exception": exc}
            )

    def __repr__(self) -> str:
        jump = " autojump" if self._autojump else ""
        return f"<FakeClock now={self.now} pending={self._live}{jump}>"


class AutoAdvanceClock(FakeClock):
    """A `FakeClock` with autojump on: time runs to the next deadline whenever every task is blocked."""

    def __init__(self, start: float = 1000.0, *, wall_start: float = DEFAULT_WALL_START) -> None:
        super().__init__(start, wall_start=wall_start, autojump=True)


if TYPE_CHECKING:  # explicit interface check: mypy proves FakeClock is a Clock
    from megaplane.runtime import Clock

    _conforms: Clock = FakeClock()
