"""The component model every megaplane process is built from: clocks, components, one runner.

Owns:

- `Clock`: the only way components read time or wait for it. `RealClock` (the
  module-level `REAL_CLOCK`) reads `time`; `megaplane.testing.FakeClock` moves
  only when told to, or jumps whenever every task is blocked (autojump), so a
  test of a controller that waits 40 s takes milliseconds and runs the same way
  every time.
- `Component`: start / stop / ready / statistics. The store, the API server,
  the etcd endpoint, each controller and each fleet shard is one, so
  `megaplane up` is a list of components and each `megaplane <component>` is a
  list of one.
- `Runner`: starts components in order and stops them in reverse, each stop
  bounded by a timeout; `run_forever` is the one main loop of every process
  (uvloop when installed, SIGINT/SIGTERM, a second signal exits at once as
  Kubernetes' signal handler does).
- `PeriodicTask`: a component that calls a function every `interval` on a
  clock (etcd's lessor revokes expired leases every 500 ms).

Must not import anything else from megaplane: everything imports this.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import math
import os
import signal
import sys
import time
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Union

__all__ = [
    "Clock",
    "Component",
    "ComponentStopError",
    "PeriodicTask",
    "REAL_CLOCK",
    "RealClock",
    "Runner",
    "Timer",
    "cancel_tasks",
    "die_with_parent",
    "run_forever",
]

log = logging.getLogger("megaplane.runtime")

#: Statistics values: counters and gauges only, so they log and export as numbers.
Statistics = Dict[str, Union[int, float, bool, str]]


class Timer(Protocol):
    """A pending `Clock.call_at` callback."""

    def cancel(self) -> None:
        """Do not run the callback; a no-op once it ran or was cancelled."""


class Clock(Protocol):
    """Time as a component sees it.

    `monotonic()` is for deadlines and durations; `time()` is wall-clock
    seconds since the epoch, only for timestamps written into objects
    (lease renewTime, condition lastTransitionTime). Never mix the two.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch."""

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock (<= 0: yield once, then return)."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once `monotonic()` has reached `deadline` (already past: yield once, then return)."""

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` on the event loop once `monotonic()` reaches `deadline`.

        The cheap way to wait for many deadlines (a work queue's delayed items):
        no task per wait. A deadline already past runs at the next loop turn.
        """


def _check_seconds(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    return float(value)


class RealClock:
    """`Clock` on `time.monotonic` / `time.time` and the running event loop's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, _check_seconds(seconds, "sleep")))

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, _check_seconds(deadline, "deadline") - time.monotonic()))

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        # loop.time() is not time.monotonic() on uvloop (a cached millisecond
        # clock), so convert a delay rather than pass the deadline through.
        delay = _check_seconds(deadline, "deadline") - time.monotonic()
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    def __repr__(self) -> str:
        return "RealClock()"


#: The process's clock; components default to it and tests pass a FakeClock.
REAL_CLOCK = RealClock()


class Component(Protocol):
    """One long-lived piece of a process, run by `Runner`.

    `start()` returns once the component is serving (listeners bound, loops
    started); `stop()` releases everything `start()` took and must be safe
    to call after a failed or partial start. `ready()` is cheap and never
    blocks (a /readyz check). `statistics()` is a flat dict of counters and
    gauges for logs and metrics.
    """

    @property
    def name(self) -> str:
        """A short stable name for logs ("store", "apiserver", "nodelifecycle")."""

    async def start(self) -> None:
        """Begin serving; raise if the component cannot."""

    async def stop(self) -> None:
        """Stop serving and release resources."""

    def ready(self) -> bool:
        """True while the component serves as it should."""

    def statistics(self) -> Statistics:
        """Counters and gauges describing the component now."""


class ComponentStopError(ExceptionGroup[Exception]):
    """Raised by `Runner.stop()` after every component was stopped, when some stops failed or timed out.

    Each failure was also logged when it happened; the group carries them
    (a `TimeoutError` for a stop that did not finish in time).
    """


class Runner:
    """Starts components in order, stops them in reverse.

    A failing `start()` stops the components already started, in reverse,
    starting with the one that failed (its `stop()` releases what a partial
    start took, see `Component`), and re-raises the start error. Each `stop()` is bounded by
    `stop_timeout` seconds (the stop is cancelled past it); a failure is
    logged and the remaining components are still stopped, then
    `ComponentStopError` groups the failures. A Runner is itself a
    Component, so runners nest.
    """

    def __init__(self, components: Iterable[Component], *, name: str = "runner", stop_timeout: float = 30.0):
        self.components: List[Component] = list(components)
        names = [c.name for c in self.components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"component names must be unique, repeated: {', '.join(duplicates)}")
        if _check_seconds(stop_timeout, "stop_timeout") <= 0:
            raise ValueError(f"stop_timeout must be positive, got {stop_timeout}")
        self._name = name
        self.stop_timeout = float(stop_timeout)
        self._started: List[Component] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def started(self) -> Sequence[Component]:
        """The components started and not yet stopped, in start order."""
        return tuple(self._started)

    async def start(self) -> None:
        if self._started:
            raise RuntimeError(f"{self._name}: already started")
        for component in self.components:
            try:
                await component.start()
            except BaseException as exc:
                log.error("%s: %s failed to start: %r; stopping the %d started before it",
                          self._name, component.name, exc, len(self._started))
                # The failed component may hold part of what it took.
                self._started.append(component)
                try:
                    await self.stop()
                except ComponentStopError:
                    pass  # each failure is logged; the start error is the one to raise
                raise
            self._started.append(component)
            log.debug("%s: started %s", self._name, component.name)

    async def stop(self) -> None:
        failures: List[Exception] = []
        while self._started:
            component = self._started.pop()
            try:
                await asyncio.wait_for(component.stop(), self.stop_timeout)
            except TimeoutError:
                log.error("%s: %s did not stop within %.1fs; abandoned", self._name, component.name,
                          self.stop_timeout)
                failures.append(TimeoutError(f"{component.name} did not stop within {self.stop_timeout}s"))
            except Exception as exc:
                log.exception("%s: %s failed to stop", self._name, component.name)
                failures.append(exc)
            else:
                log.debug("%s: stopped %s", self._name, component.name)
        if failures:
            raise ComponentStopError(f"{self._name}: {len(failures)} component(s) failed to stop", failures)

    def ready(self) -> bool:
        return len(self._started) == len(self.components) and all(c.ready() for c in self.components)

    def statistics(self) -> Statistics:
        """Every component's statistics, keys prefixed by its name ("store.revision")."""
        out: Statistics = {"started": len(self._started)}
        for component in self.components:
            for key, value in component.statistics().items():
                out[f"{component.name}.{key}"] = value
        return out


OnStarted = Callable[[], Optional[Awaitable[None]]]

#: How often a component's surviving objects are moved out of the cyclic collector's generations.
GC_FREEZE_INTERVAL = 30.0


async def freeze_survivors(interval: float) -> None:
    """Every `interval` seconds, `gc.freeze()`: what survived until then is never scanned again.

    A component's heap is its informers' caches: millions of decoded objects that live as long as the
    process and hold no reference cycles (JSON trees are freed by reference counting alone). CPython's
    full collections scan all of them each time the heap grew by a quarter: at 100K pods a
    controller-manager stalled for seconds on one core, and the fleet beside it renewed its Leases
    late (`megaplane bench density --nodes 10000`: lateness p99 4.6 s). Freezing is O(1) (the lists
    are spliced). The price: a reference cycle that becomes garbage after being frozen is never
    freed; young cycles (a request's, a task's) die in the generations before that.
    """
    while True:
        await asyncio.sleep(interval)
        gc.freeze()


def run_forever(
    components: Union[Iterable[Component], Callable[[], Iterable[Component]]],
    *,
    on_started: Optional[OnStarted] = None,
    stop_timeout: float = 30.0,
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    gc_freeze_interval: float = GC_FREEZE_INTERVAL,
) -> None:
    """Run `components` until SIGINT or SIGTERM: the main loop of every megaplane process.

    Runs on uvloop when it is installed (asyncio otherwise). `components`
    may be a zero-argument factory, called on the running loop, for
    components that must be built there. Signals are handled from before
    the first start, so a signal during start stops the process as soon as
    start finishes; a second signal exits at once with status 1, as
    Kubernetes' SetupSignalHandler does. `on_started` runs once everything
    started (a coroutine function is awaited). Start errors propagate;
    failed stops raise `ComponentStopError`. Every `gc_freeze_interval`
    seconds the survivors are frozen out of the cyclic collector's sight
    (`freeze_survivors`; 0: never).
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(signum: signal.Signals) -> None:
            if stop.is_set():
                log.error("second %s: exiting now", signum.name)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
            log.info("%s: stopping", signum.name)
            stop.set()

        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            built = components() if callable(components) else components
            runner = Runner(built, name="process", stop_timeout=stop_timeout)
            await runner.start()
            try:
                if on_started is not None:
                    result = on_started()
                    if inspect.isawaitable(result):
                        await result
                freezer = asyncio.ensure_future(freeze_survivors(gc_freeze_interval)) if gc_freeze_interval > 0 \
                    else None
                try:
                    await stop.wait()
                finally:
                    if freezer is not None:
                        await cancel_tasks([freezer])
            finally:
                await runner.stop()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
        asyncio.run(main())
    else:
        uvloop.run(main())


SyncOrAsync = Callable[[], Union[None, Awaitable[None]]]


async def cancel_tasks(tasks: Iterable["asyncio.Task[Any]"]) -> None:
    """Cancel `tasks` and wait until each has ended; what they raise while ending is theirs, not ours.

    A component's stop(): its loops are being torn down, so their errors (already logged where they
    happened) and their cancellation are not the caller's to handle.
    """
    tasks = list(tasks)
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass


class PeriodicTask:
    """A component calling `function` every `interval` seconds of `clock`.

    The interval is measured from the end of one call to the start of the
    next (Go's wait.Until: a slow call delays the next one rather than
    piling up). `function` may be sync or async. An exception is logged
    and counted, and the loop goes on. With `immediately`, the first call
    happens at start rather than one interval later. `stop()` cancels a
    call in progress.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        function: SyncOrAsync,
        *,
        clock: Clock = REAL_CLOCK,
        immediately: bool = False,
    ) -> None:
        if _check_seconds(interval, "interval") <= 0:
            raise ValueError(f"{name}: interval must be positive, got {interval}")
        if not callable(function):
            raise TypeError(f"{name}: function must be callable, not {type(function).__name__}")
        self._name = name
        self.interval = float(interval)
        self.function = function
        self.clock = clock
        self.immediately = immediately
        self._task: Optional[asyncio.Task[None]] = None
        self.runs = 0
        self.errors = 0
        self.last_duration = 0.0

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"{self._name}: already started")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"periodic:{self._name}")

    async def _loop(self) -> None:
        if not self.immediately:
            await self.clock.sleep(self.interval)
        while True:
            began = self.clock.monotonic()
            try:
                result = self.function()
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("%s: periodic call failed (%d failures so far)", self._name, self.errors)
            self.runs += 1
            self.last_duration = self.clock.monotonic() - began
            await self.clock.sleep(self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is being cancelled too

    def ready(self) -> bool:
        return self._task is not None and not self._task.done()

    def statistics(self) -> Statistics:
        return {"runs": self.runs, "errors": self.errors, "last_duration_seconds": self.last_duration}

    def __repr__(self) -> str:
        return f"<PeriodicTask {self._name} every {self.interval}s runs={self.runs} errors={self.errors}>"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in a child between fork and exec
    """A subprocess `preexec_fn`: the child gets SIGTERM when the process that started it dies (Linux
    PR_SET_PDEATHSIG), so child processes a supervisor runs (tenant workers, `up --apiservers`) never outlive it,
    even when it is SIGKILLed."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
